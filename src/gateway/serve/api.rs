//! The model API: a task's CLI sends its requests here (`ANTHROPIC_BASE_URL`) with its token as
//! its key. The gateway passes only the calls `route::admit` allows, knows the task by the
//! token, holds each model request's worst case against the task's budget while it is in
//! flight, swaps in the real credential, sends the request on to the upstream, and meters the
//! answer's `usage` as it streams back.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use serde::Deserialize;

use super::body::{Body, Watched, full};
use super::limits;
use super::route::{self, ApiCall, Refusal};
use super::state::{Access, PER_TASK, Reservation, Slot, State, now};
use super::upstream::{self, Upstream};
use crate::gateway::protocol::Report;
use crate::gateway::usage::UsageReader;

/// The largest request body passed on (a long conversation with images stays well under).
const REQUEST_LIMIT: usize = 64 << 20;

/// An answer in the API's own error shape, so the CLI reports it as it reports any API error.
fn api_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": "error",
        "error": { "type": kind, "message": message },
    });
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn token(req: &Request<Incoming>) -> Option<String> {
    let h = req.headers();
    if let Some(k) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.to_string());
    }
    let auth = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(str::to_string)
}

/// A call answered by the gateway itself: audited, never sent upstream.
fn deny(
    state: &State,
    req: &Request<Incoming>,
    task: Option<String>,
    status: StatusCode,
    why: &str,
) -> Response<Body> {
    state.report(&Report::ApiDenied {
        at: now(),
        task,
        method: route::shown(req.method().as_str()),
        path: route::shown(req.uri().path_and_query().map_or("", |p| p.as_str())),
        status: status.as_u16(),
        reason: why.to_string(),
    });
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else {
        "invalid_request_error"
    };
    api_error(status, kind, &format!("sandpen gateway: {why}"))
}

fn spent(cost: f64, max: f64) -> Response<Body> {
    api_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &format!(
            "sandpen gateway: this task's budget of ${max:.4} is spent (${cost:.4} metered); \
             no further model requests are sent"
        ),
    )
}

/// Who asks, for what, with room for it: or the gateway's own answer.
fn check(
    state: &Arc<State>,
    req: &Request<Incoming>,
) -> Result<(Access, ApiCall, Slot), Box<Response<Body>>> {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    let admitted = route::admit(req.method(), target);
    if admitted == Ok(ApiCall::Hello) {
        return Err(Box::new(Response::new(full(""))));
    }
    // Who asks first: a caller without a live token learns nothing of what passes.
    let Some(access) = token(req).and_then(|t| state.access(&t)) else {
        state.report(&Report::Refused {
            at: now(),
            reason: format!(
                "{} {} without a live token of this run",
                req.method(),
                route::shown(req.uri().path())
            ),
        });
        return Err(Box::new(api_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "sandpen gateway: this key is not a live token of this run",
        )));
    };
    let call = match admitted {
        Ok(call) => call,
        Err(Refusal(why)) => {
            return Err(Box::new(deny(
                state,
                req,
                Some(access.task),
                StatusCode::FORBIDDEN,
                &why,
            )));
        }
    };
    let Some(slot) = state.slot(&access.task) else {
        let why =
            format!("this task has {PER_TASK} requests in flight, the most it may; retry when one has ended");
        let task = Some(access.task);
        return Err(Box::new(deny(
            state,
            req,
            task,
            StatusCode::TOO_MANY_REQUESTS,
            &why,
        )));
    };
    if let Some((cost, max)) = access.over_budget {
        return Err(Box::new(spent(cost, max)));
    }
    Ok((access, call, slot))
}

pub async fn forward(state: &Arc<State>, upstream: &Upstream, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let (access, call, slot) = match check(state, &req) {
        Ok(ok) => ok,
        Err(answer) => return *answer,
    };
    let Some(config) = state.config() else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "sandpen gateway: not configured yet",
        );
    };
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, REQUEST_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                &format!("sandpen gateway: {e}"),
            );
        }
    };
    #[derive(Deserialize)]
    struct Asked {
        model: Option<String>,
        max_tokens: Option<u64>,
    }
    let asked = serde_json::from_slice::<Asked>(&bytes).ok();
    let max_tokens = asked.as_ref().and_then(|a| a.max_tokens);
    let model = asked.and_then(|a| a.model).unwrap_or_default();
    // Only model requests cost: they hold their worst case until their answer has ended.
    let reservation = if call == ApiCall::Messages {
        let worst = config.prices.worst_case(&model, max_tokens, bytes.len());
        match state.reserve(&access.task, worst).await {
            Ok(r) => Some(r),
            Err(Some((cost, max))) => return spent(cost, max),
            Err(None) => {
                return api_error(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "sandpen gateway: this task has ended",
                );
            }
        }
    } else {
        None
    };
    let exchange = Exchange {
        state: state.clone(),
        task: access.task.clone(),
        call,
        model,
        started,
    };
    let query = parts.uri.query();
    let make = || upstream::request(&config, &access.task, call, query, &parts.headers, bytes.clone());
    match exchange.send(upstream, make).await {
        Ok(answer) => exchange.answer(answer, reservation, slot),
        Err(r) => r,
    }
}

/// One admitted call on its way upstream and back.
struct Exchange {
    state: Arc<State>,
    task: String,
    call: ApiCall,
    model: String,
    started: Instant,
}

impl Exchange {
    fn report(&self, status: u16, usage: crate::gateway::protocol::Usage, cost_usd: f64) -> Report {
        Report::Model {
            at: now(),
            task: self.task.clone(),
            model: self.model.clone(),
            status,
            usage,
            cost_usd,
            latency_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// Sent, and sent again after each 429 or 529 while the run's gate says to wait.
    async fn send(
        &self,
        upstream: &Upstream,
        make: impl Fn() -> Result<Request<http_body_util::Full<Bytes>>, hyper::http::Error>,
    ) -> Result<Response<Incoming>, Response<Body>> {
        let metered = self.call == ApiCall::Messages;
        let bad_gateway = |e: &dyn std::fmt::Display| {
            api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!("sandpen gateway: {e}"),
            )
        };
        let mut holds = 0;
        loop {
            let turn = if metered {
                self.state.gate.pass().await
            } else {
                None
            };
            let up = make().map_err(|e| bad_gateway(&e))?;
            let clients = upstream.get().await.map_err(|e| bad_gateway(&e))?;
            let answer = match clients.request(up).await {
                Ok(a) => a,
                Err(e) => {
                    self.state.report(&self.report(502, Default::default(), 0.0));
                    return Err(bad_gateway(&format!("the model API could not be reached ({e})")));
                }
            };
            let status = answer.status().as_u16();
            if metered && matches!(status, 429 | 529) && holds < limits::MAX_HOLDS {
                let wait = limits::wait_after(answer.headers());
                self.state.gate.limited(wait);
                self.state.report(&self.report(status, Default::default(), 0.0));
                self.state.report(&Report::RateLimited {
                    at: now(),
                    task: self.task.clone(),
                    status,
                    retry_after_ms: wait.as_millis() as u64,
                });
                holds += 1;
                drop(turn);
                continue;
            }
            if metered && !matches!(status, 429 | 529) {
                self.state.gate.cleared();
            }
            return Ok(answer);
        }
    }

    /// The answer streamed back to the task; a model request's usage metered as it passes and
    /// its reservation replaced by its cost when it ends. The task's slot is held till then.
    fn answer(
        self,
        answer: Response<Incoming>,
        reservation: Option<Reservation>,
        slot: Slot,
    ) -> Response<Body> {
        let status = answer.status().as_u16();
        let Some(reservation) = reservation else {
            let (p, b) = answer.into_parts();
            let held = Watched::new(b, |_| {}, move || drop(slot));
            return Response::from_parts(p, held.map_err(Into::into).boxed());
        };
        let content_type = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let reader = Arc::new(Mutex::new(Some(UsageReader::new(&content_type))));
        let (parts, body) = answer.into_parts();
        let seen = reader.clone();
        let watched = Watched::new(
            body,
            move |d| {
                if let Some(r) = seen.lock().unwrap().as_mut() {
                    r.push(d);
                }
            },
            move || {
                let usage = reader
                    .lock()
                    .unwrap()
                    .take()
                    .map(UsageReader::finish)
                    .unwrap_or_default();
                let cost_usd = self.state.cost(&self.model, &usage);
                self.state.report(&self.report(status, usage, cost_usd));
                reservation.settle(cost_usd);
                drop(slot);
            },
        );
        Response::from_parts(parts, watched.map_err(Into::into).boxed())
    }
}
