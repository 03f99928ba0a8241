//! The gateway's state: its configuration, the live tokens of the run's tasks with what each
//! may reach and has spent, and the report line writer.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, RwLock};

use crate::gateway::allow::AllowList;
use crate::gateway::price::PriceTable;
use crate::gateway::protocol::{Command, Report, Usage};

pub struct Config {
    pub upstream: String,
    pub credential: Option<(String, String)>,
    pub prices: PriceTable,
}

pub struct TaskEntry {
    pub task: String,
    pub allow: AllowList,
    pub max_cost: Option<f64>,
    pub cost: f64,
    pub over_budget: bool,
}

#[derive(Default)]
pub struct State {
    /// Upstream rate limits, shared by every task of the run.
    pub gate: super::limits::RateGate,
    config: RwLock<Option<std::sync::Arc<Config>>>,
    /// token -> task
    tasks: Mutex<HashMap<String, TaskEntry>>,
    out: Mutex<()>,
}

/// What a token may do, looked up once per connection or request.
pub struct Access {
    pub task: String,
    pub allow: AllowList,
    pub over_budget: Option<(f64, f64)>,
}

impl State {
    pub fn apply(&self, cmd: Command) -> Result<(), String> {
        match cmd {
            Command::Listen { .. } => {}
            Command::Config {
                upstream,
                credential_header,
                credential,
                prices,
            } => {
                let credential = credential_header.zip(credential);
                *self.config.write().unwrap() = Some(std::sync::Arc::new(Config {
                    upstream,
                    credential,
                    prices,
                }));
            }
            Command::Admit {
                task,
                token,
                allow,
                max_cost_usd,
            } => {
                let allow = AllowList::parse(&allow)?;
                self.tasks.lock().unwrap().insert(
                    token,
                    TaskEntry {
                        task,
                        allow,
                        max_cost: max_cost_usd,
                        cost: 0.0,
                        over_budget: false,
                    },
                );
            }
            Command::Release { task } => self.tasks.lock().unwrap().retain(|_, t| t.task != task),
        }
        Ok(())
    }

    pub fn config(&self) -> Option<std::sync::Arc<Config>> {
        self.config.read().unwrap().clone()
    }

    pub fn access(&self, token: &str) -> Option<Access> {
        let tasks = self.tasks.lock().unwrap();
        let t = tasks.get(token)?;
        Some(Access {
            task: t.task.clone(),
            allow: t.allow.clone(),
            over_budget: t.over_budget.then(|| (t.cost, t.max_cost.unwrap_or(0.0))),
        })
    }

    /// Adds a request's cost to its task; reports the budget the first time it is reached.
    pub fn meter(&self, task: &str, cost: f64) {
        let crossed = {
            let mut tasks = self.tasks.lock().unwrap();
            let Some(t) = tasks.values_mut().find(|t| t.task == task) else {
                return;
            };
            t.cost += cost;
            match t.max_cost {
                Some(max) if t.cost >= max && !t.over_budget => {
                    t.over_budget = true;
                    Some((t.cost, max))
                }
                _ => None,
            }
        };
        if let Some((cost_usd, max_cost_usd)) = crossed {
            self.report(&Report::BudgetExceeded {
                task: task.to_string(),
                cost_usd,
                max_cost_usd,
            });
        }
    }

    pub fn cost(&self, model: &str, usage: &Usage) -> f64 {
        self.config().map_or(0.0, |c| c.prices.cost(model, usage))
    }

    /// One JSON line on stdout; sandpen reads them through the attach stream.
    pub fn report(&self, r: &Report) {
        let Ok(mut line) = serde_json::to_vec(r) else {
            return;
        };
        line.push(b'\n');
        let _one_at_a_time = self.out.lock().unwrap();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
