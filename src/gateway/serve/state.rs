//! The gateway's state: its configuration, the live tokens of the run's tasks with what each
//! may reach, has spent and has in flight, and the reports on their way out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use super::out::Reports;
use crate::gateway::allow::AllowList;
use crate::gateway::budget::{Budget, Decision};
use crate::gateway::price::PriceTable;
use crate::gateway::protocol::{Command, CredentialKind, Report, Usage};

/// Requests (and tunnels) one task may have in flight at once.
pub const PER_TASK: u32 = 64;

pub struct Config {
    pub upstream: String,
    pub credential: Option<(CredentialKind, String)>,
    pub prices: PriceTable,
}

pub struct TaskEntry {
    pub task: String,
    pub allow: AllowList,
    pub budget: Budget,
}

pub struct State {
    /// Upstream rate limits, shared by every task of the run.
    pub gate: super::limits::RateGate,
    config: RwLock<Option<Arc<Config>>>,
    /// token -> task
    tasks: Mutex<HashMap<String, TaskEntry>>,
    /// task -> requests in flight
    active: Mutex<HashMap<String, u32>>,
    /// Woken whenever a reservation ends: requests waiting for room in a budget look again.
    settled: Notify,
    out: Reports,
}

/// What a token may do, looked up once per connection or request.
pub struct Access {
    pub task: String,
    pub allow: AllowList,
    pub over_budget: Option<(f64, f64)>,
}

/// A request's worst case held against its task's budget; released (as spent nothing) when
/// dropped without [`Reservation::settle`].
pub struct Reservation {
    state: Arc<State>,
    task: String,
    worst: f64,
    open: bool,
}

impl Reservation {
    /// The request ended having cost `cost`.
    pub fn settle(mut self, cost: f64) {
        self.open = false;
        self.state.settle(&self.task, self.worst, cost);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.state.settle(&self.task, self.worst, 0.0);
        }
    }
}

/// One of a task's requests in flight, counted until dropped.
pub struct Slot {
    state: Arc<State>,
    task: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut active = self.state.active.lock().unwrap();
        if let Some(n) = active.get_mut(&self.task) {
            *n -= 1;
            if *n == 0 {
                active.remove(&self.task);
            }
        }
    }
}

impl State {
    /// Reports go to `sink` (stdout), written by a thread of their own.
    pub fn new(sink: impl std::io::Write + Send + 'static) -> Self {
        Self {
            gate: Default::default(),
            config: Default::default(),
            tasks: Default::default(),
            active: Default::default(),
            settled: Notify::new(),
            out: Reports::start(sink),
        }
    }

    pub fn apply(&self, cmd: Command) -> Result<(), String> {
        match cmd {
            Command::Listen { .. } | Command::Exchange { .. } => {}
            Command::Config {
                upstream,
                credential_kind,
                credential,
                prices,
            } => {
                let credential = credential_kind.zip(credential);
                *self.config.write().unwrap() = Some(Arc::new(Config {
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
                let budget = Budget::new(max_cost_usd);
                let entry = TaskEntry { task, allow, budget };
                self.tasks.lock().unwrap().insert(token, entry);
            }
            Command::Release { task } => {
                self.tasks.lock().unwrap().retain(|_, t| t.task != task);
                // Its waiting requests find it gone.
                self.settled.notify_waiters();
            }
        }
        Ok(())
    }

    pub fn config(&self) -> Option<Arc<Config>> {
        self.config.read().unwrap().clone()
    }

    pub fn access(&self, token: &str) -> Option<Access> {
        let tasks = self.tasks.lock().unwrap();
        let t = tasks.get(token)?;
        Some(Access {
            task: t.task.clone(),
            allow: t.allow.clone(),
            over_budget: t.budget.spent_out(),
        })
    }

    /// A place for one more of `task`'s requests in flight, if it has fewer than [`PER_TASK`].
    pub fn slot(self: &Arc<Self>, task: &str) -> Option<Slot> {
        let mut active = self.active.lock().unwrap();
        let n = active.entry(task.to_string()).or_default();
        if *n >= PER_TASK {
            return None;
        }
        *n += 1;
        Some(Slot {
            state: self.clone(),
            task: task.to_string(),
        })
    }

    /// Reserves `worst` of `task`'s budget, waiting while its other requests in flight hold
    /// what is left. Err: the budget is spent (spent, max), or the task is gone (None).
    pub async fn reserve(
        self: &Arc<Self>,
        task: &str,
        worst: f64,
    ) -> Result<Reservation, Option<(f64, f64)>> {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            // Registered before looking, so that an end in between is not missed.
            settled.as_mut().enable();
            let decision = {
                let mut tasks = self.tasks.lock().unwrap();
                let t = tasks.values_mut().find(|t| t.task == task).ok_or(None)?;
                t.budget.reserve(worst)
            };
            match decision {
                Decision::Admit => {
                    return Ok(Reservation {
                        state: self.clone(),
                        task: task.to_string(),
                        worst,
                        open: true,
                    });
                }
                Decision::Spent(spent, max) => return Err(Some((spent, max))),
                Decision::Wait => settled.await,
            }
        }
    }

    /// Replaces a reservation by the request's cost; reports the budget the first time it is
    /// reached.
    fn settle(&self, task: &str, worst: f64, cost: f64) {
        let crossed = {
            let mut tasks = self.tasks.lock().unwrap();
            let Some(t) = tasks.values_mut().find(|t| t.task == task) else {
                return;
            };
            t.budget.settle(worst, cost)
        };
        self.settled.notify_waiters();
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

    /// One JSON line on stdout, queued (sandpen reads them through the attach stream).
    pub fn report(&self, r: &Report) {
        self.out.send(r);
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_task(max_cost_usd: Option<f64>) -> Arc<State> {
        let state = Arc::new(State::new(std::io::sink()));
        let admit = Command::Admit {
            task: "t".into(),
            token: "tok".into(),
            allow: vec![],
            max_cost_usd,
        };
        state.apply(admit).unwrap();
        state
    }

    #[test]
    fn a_task_has_at_most_its_share_of_requests_in_flight() {
        let state = with_task(None);
        let held: Vec<Slot> = (0..PER_TASK).map_while(|_| state.slot("t")).collect();
        assert_eq!(held.len(), PER_TASK as usize);
        assert!(state.slot("t").is_none(), "one more than its share");
        assert!(state.slot("other").is_some(), "another task's share is its own");
        drop(held);
        assert!(state.slot("t").is_some(), "freed as they end");
    }

    #[tokio::test]
    async fn a_request_waits_for_room_and_the_spent_budget_refuses() {
        let state = with_task(Some(1.0));
        let first = state.reserve("t", 0.6).await.unwrap();
        let second = {
            let state = state.clone();
            tokio::spawn(async move { state.reserve("t", 0.6).await.map(|r| r.settle(0.8)) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "0.6 beside 0.6 held does not fit in 1.0");
        first.settle(0.3);
        second.await.unwrap().unwrap();
        // 0.3 + 0.8: spent, and said so.
        let (spent, max) = state.access("tok").unwrap().over_budget.expect("spent");
        assert!((spent - 1.1).abs() < 1e-9 && max == 1.0, "{spent} {max}");
        assert!(matches!(state.reserve("t", 0.01).await, Err(Some(_))));
        // A failed request gives back what it held.
        let state = with_task(Some(1.0));
        drop(state.reserve("t", 0.9).await.unwrap());
        assert!(state.reserve("t", 0.9).await.is_ok());
    }
}
