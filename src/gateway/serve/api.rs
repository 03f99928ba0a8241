//! The model API: a task's CLI sends its requests here (`ANTHROPIC_BASE_URL`) with its token as
//! its key. The gateway knows the task by the token, refuses a task whose budget is spent,
//! swaps in the real credential, sends the request on to the upstream, and meters the answer's
//! `usage` as it streams back.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::body::{Body, Watched, full};
use super::limits;
use super::state::{State, now};
use crate::gateway::protocol::Report;
use crate::gateway::usage::UsageReader;

/// The largest request body passed on (a long conversation with images stays well under).
const REQUEST_LIMIT: usize = 64 << 20;

pub type Clients = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The upstream client, made once off the async workers. Loading the system's CA certificates
/// takes about 200 ms in the gateway's container: the gateway listens and takes commands
/// meanwhile, so a run's first task does not wait for it (only a model request would).
#[derive(Default)]
pub struct Upstream(tokio::sync::OnceCell<Result<Clients, String>>);

impl Upstream {
    pub async fn get(&self) -> Result<&Clients, &str> {
        let made = self
            .0
            .get_or_init(|| async {
                match tokio::task::spawn_blocking(clients).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("loading the system's CA certificates: {e}")),
                }
            })
            .await;
        made.as_ref().map_err(String::as_str)
    }
}

/// The upstream client: HTTPS with the system's roots, or plain HTTP (a scripted server).
fn clients() -> anyhow::Result<Clients> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| anyhow::anyhow!("loading the system's CA certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

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

/// Headers that belong to one hop, or carry a credential: never passed on.
const DROPPED: [&str; 10] = [
    "host",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
];

pub async fn forward(state: &Arc<State>, upstream: &Upstream, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let Some(access) = token(&req).and_then(|t| state.access(&t)) else {
        state.report(&Report::Refused {
            at: now(),
            reason: format!(
                "{} {} without a live token of this run",
                req.method(),
                req.uri().path()
            ),
        });
        return api_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "sandpen gateway: this key is not a live token of this run",
        );
    };
    if let Some((cost, max)) = access.over_budget {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!(
                "sandpen gateway: this task's budget of ${max:.4} is spent (${cost:.4} metered); \
                 no further model requests are sent"
            ),
        );
    }
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
    struct Model {
        model: Option<String>,
    }
    let model = serde_json::from_slice::<Model>(&bytes)
        .ok()
        .and_then(|m| m.model)
        .unwrap_or_default();

    let base = config.upstream.replace("{task}", &access.task);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let request = || {
        let mut up = Request::builder().method(parts.method.clone()).uri(&url);
        for (k, v) in &parts.headers {
            if !DROPPED.contains(&k.as_str()) && !k.as_str().starts_with("proxy-") {
                up = up.header(k, v);
            }
        }
        if let Some((name, value)) = &config.credential {
            up = if name == "authorization" {
                up.header(header::AUTHORIZATION, format!("Bearer {value}"))
            } else {
                up.header(name.as_str(), value.as_str())
            };
        }
        up.body(Full::new(bytes.clone()))
    };
    let metered = parts.method == hyper::Method::POST;
    let report = |status: u16, usage, cost_usd| Report::Model {
        at: now(),
        task: access.task.clone(),
        model: model.clone(),
        status,
        usage,
        cost_usd,
        latency_ms: started.elapsed().as_millis() as u64,
    };
    // Sent, and sent again after each 429 or 529 while the run's gate says to wait.
    let mut holds = 0;
    let answer = loop {
        let turn = if metered { state.gate.pass().await } else { None };
        let up = match request() {
            Ok(r) => r,
            Err(e) => {
                return api_error(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    &format!("sandpen gateway: {e}"),
                );
            }
        };
        let clients = match upstream.get().await {
            Ok(c) => c,
            Err(e) => {
                return api_error(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    &format!("sandpen gateway: {e}"),
                );
            }
        };
        let answer = match clients.request(up).await {
            Ok(a) => a,
            Err(e) => {
                state.report(&report(502, Default::default(), 0.0));
                return api_error(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    &format!("sandpen gateway: the model API could not be reached ({e})"),
                );
            }
        };
        let status = answer.status().as_u16();
        if metered && matches!(status, 429 | 529) && holds < limits::MAX_HOLDS {
            let wait = limits::wait_after(answer.headers());
            state.gate.limited(wait);
            state.report(&report(status, Default::default(), 0.0));
            state.report(&Report::RateLimited {
                at: now(),
                task: access.task.clone(),
                status,
                retry_after_ms: wait.as_millis() as u64,
            });
            holds += 1;
            drop(turn);
            continue;
        }
        if metered && !matches!(status, 429 | 529) {
            state.gate.cleared();
        }
        break answer;
    };
    let status = answer.status().as_u16();
    // The CLI's probes (`HEAD /api/hello`) pass unmetered; every POST is a model request.
    if parts.method != hyper::Method::POST {
        let (p, b) = answer.into_parts();
        return Response::from_parts(p, b.map_err(Into::into).boxed());
    }
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let reader = Arc::new(Mutex::new(Some(UsageReader::new(&content_type))));
    let (parts, body) = answer.into_parts();
    let (seen, state) = (reader.clone(), state.clone());
    let task = access.task;
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
            let cost_usd = state.cost(&model, &usage);
            state.report(&Report::Model {
                at: now(),
                task: task.clone(),
                model,
                status,
                usage,
                cost_usd,
                latency_ms: started.elapsed().as_millis() as u64,
            });
            state.meter(&task, cost_usd);
        },
    );
    Response::from_parts(parts, watched.map_err(Into::into).boxed())
}
