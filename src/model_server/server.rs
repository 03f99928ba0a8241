use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::script::{Block, Script, Turn};
use crate::http_serve::{self, Body};

type Response = hyper::Response<Body>;

/// Large prompts are part of what the tests prove arrives whole.
const BODY_LIMIT: usize = 64 << 20;

fn key_header(headers: &HeaderMap) -> Option<String> {
    ["x-api-key", "authorization"]
        .into_iter()
        .find(|h| headers.contains_key(*h))
        .map(String::from)
}

fn beta(headers: &HeaderMap) -> Option<String> {
    headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn key_digest(headers: &HeaderMap) -> Option<String> {
    use sha2::Digest;
    let key = match headers.get("x-api-key") {
        Some(k) => k.as_bytes().to_vec(),
        None => {
            let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
            auth.strip_prefix(b"Bearer ").unwrap_or(auth).to_vec()
        }
    };
    Some(hex::encode(sha2::Sha256::digest(key))[..16].to_string())
}

/// One request as the server saw it (no credentials), as written to the record file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub at: String,
    pub task: String,
    /// Which turn of the script answered (the number of assistant messages in the request).
    pub step: usize,
    /// A request without tools (the CLI's side requests): answered without using the script.
    pub side_request: bool,
    pub stream: bool,
    pub model: String,
    pub system: String,
    pub messages: usize,
    pub tools: Vec<String>,
    pub api_key_present: bool,
    /// The first 16 hex digits of the sha256 of the key the request carried (`x-api-key`, or
    /// a bearer token): which key arrived, without recording it.
    #[serde(default)]
    pub api_key_sha256: Option<String>,
    /// sha256 (hex) and size of each text block of the first user message: proof of what
    /// prompt arrived, without recording it.
    #[serde(default)]
    pub first_user_texts: Vec<(String, usize)>,
    pub answer: String,
    /// The request's method and target (path and query) as they arrived.
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub target: String,
    /// Which header carried the key (`x-api-key` or `authorization`), never its value.
    #[serde(default)]
    pub key_header: Option<String>,
    /// The `anthropic-beta` header as it arrived.
    #[serde(default)]
    pub anthropic_beta: Option<String>,
}

struct Shared {
    script: Script,
    /// When the first model request arrived: a rate-limit window starts there.
    first_request: std::sync::OnceLock<std::time::Instant>,
    record: Option<Mutex<std::fs::File>>,
    recorded: Mutex<Vec<Recorded>>,
    /// Each task's conversation requests answered 529 so far (`Script::overloaded`).
    overloaded: Mutex<std::collections::HashMap<String, u32>>,
}

/// A running server. Dropping it does not stop it; call `stop`.
pub struct ModelServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    /// Serves `script` on `bind` (port 0 picks a free one). Requests are also appended to
    /// `record` as JSON lines when given.
    pub async fn start(script: Script, bind: SocketAddr, record: Option<PathBuf>) -> std::io::Result<Self> {
        let record = match record {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            script,
            first_request: std::sync::OnceLock::new(),
            record,
            recorded: Mutex::default(),
            overloaded: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let served = shared.clone();
        let handle = move |req| route(served.clone(), req);
        let task = tokio::spawn(http_serve::serve(listener, handle, token.cancelled_owned()));
        Ok(Self {
            addr,
            shared,
            stop,
            task,
        })
    }

    /// The base URL a task's container should be given (`host` as seen from the container).
    pub fn base_url_for(&self, host: &str, task: &str) -> String {
        format!("http://{host}:{}{}{task}", self.addr.port(), super::TASK_PREFIX)
    }

    /// Every request so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The digest and size of every text block of the first user message.
fn first_user_texts(messages: &Value) -> Vec<(String, usize)> {
    use sha2::{Digest, Sha256};
    let Some(first) = messages
        .as_array()
        .and_then(|m| m.iter().find(|x| x["role"] == "user"))
    else {
        return Vec::new();
    };
    let texts: Vec<&str> = match &first["content"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => Vec::new(),
    };
    texts
        .into_iter()
        .map(|t| (hex::encode(Sha256::digest(t.as_bytes())), t.len()))
        .collect()
}

/// `POST /task/{task}/v1/messages` is the one endpoint; anything else is `not_found`.
async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response {
    let task = req
        .uri()
        .path()
        .strip_prefix("/task/")
        .and_then(|p| p.strip_suffix("/v1/messages"))
        .filter(|t| !t.is_empty() && !t.contains('/'));
    let task = match task {
        Some(task) if req.method() == Method::POST => task,
        _ => return not_found(&shared, req.method(), req.uri(), req.headers()),
    };
    let Some(task) = http_serve::decoded(task) else {
        return http_serve::text(StatusCode::BAD_REQUEST, "Invalid URL: the task is not UTF-8");
    };
    let (parts, body) = req.into_parts();
    match http_serve::bytes_within(body, BODY_LIMIT).await {
        Ok(body) => messages(&shared, task, &parts.uri, &parts.headers, body).await,
        Err(refused) => refused,
    }
}

/// Any other request: recorded (so that a test sees all that arrived), answered 404.
fn not_found(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    shared.note(Recorded {
        at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        task: String::new(),
        step: 0,
        side_request: false,
        stream: false,
        model: String::new(),
        system: String::new(),
        messages: 0,
        tools: Vec::new(),
        api_key_present: headers.contains_key("x-api-key") || headers.contains_key(header::AUTHORIZATION),
        api_key_sha256: key_digest(headers),
        first_user_texts: Vec::new(),
        answer: "404 no such endpoint".into(),
        method: method.to_string(),
        target: uri.path_and_query().map_or("", |p| p.as_str()).to_string(),
        key_header: key_header(headers),
        anthropic_beta: beta(headers),
    });
    api_error(
        StatusCode::NOT_FOUND,
        "not_found_error",
        "sandpen model server: no such endpoint (tasks use /task/<id>/v1/messages)",
    )
}

async fn messages(shared: &Shared, task: String, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("body is not JSON: {e}"),
            );
        }
    };
    let stream = req["stream"].as_bool().unwrap_or(false);
    let model = req["model"].as_str().unwrap_or("scripted").to_string();
    let tools: Vec<String> = req["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|x| x["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let messages = req["messages"].as_array().map(Vec::len).unwrap_or(0);
    let step = req["messages"]
        .as_array()
        .map(|m| m.iter().filter(|x| x["role"] == "assistant").count())
        .unwrap_or(0);
    let side_request = tools.is_empty();
    let mut rec = Recorded {
        at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        task: task.clone(),
        step,
        side_request,
        stream,
        model: model.clone(),
        system: system_text(&req["system"]),
        messages,
        tools,
        api_key_present: headers.contains_key("x-api-key") || headers.contains_key(header::AUTHORIZATION),
        api_key_sha256: key_digest(headers),
        first_user_texts: first_user_texts(&req["messages"]),
        answer: String::new(),
        method: "POST".into(),
        target: uri.path_and_query().map_or("", |p| p.as_str()).to_string(),
        key_header: key_header(headers),
        anthropic_beta: beta(headers),
    };

    // The rate-limit window: a 429 (recorded, so a test can count what reached the server).
    let first = *shared.first_request.get_or_init(std::time::Instant::now);
    if let Some(limit) = shared.script.rate_limit
        && first.elapsed() < Duration::from_millis(limit.for_ms)
    {
        rec.answer = "429 rate limited".into();
        shared.note(rec);
        let mut r = api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "sandpen model server: rate limited (scripted)",
        );
        if let Some(s) = limit.retry_after_s {
            r.headers_mut().insert("retry-after", s.into());
        }
        return r;
    }
    if !side_request && shared.overloaded(&task) {
        rec.answer = "529 overloaded".into();
        shared.note(rec);
        let status = StatusCode::from_u16(529).expect("a valid status");
        return api_error(
            status,
            "overloaded_error",
            "sandpen model server: overloaded (scripted)",
        );
    }
    let outcome: Result<Turn, String> = if side_request {
        // Not part of the agent's conversation (titles, summaries): a short answer.
        Ok(Turn::text("ok"))
    } else {
        match shared.script.tasks.get(&task) {
            None => Err(format!("sandpen model server: no script for task {task:?}")),
            Some(s) => s.turns.get(step).cloned().ok_or_else(|| {
                format!("sandpen model server: the script of task {task:?} has {} turns and is finished (asked for turn {})", s.turns.len(), step + 1)
            }),
        }
    };
    rec.answer = match &outcome {
        Ok(t) if side_request => format!("side answer ({} blocks)", t.content.len()),
        Ok(_) => format!("turn {}", step + 1),
        Err(e) => format!("error: {e}"),
    };
    shared.note(rec);
    let turn = match outcome {
        Ok(t) => t,
        // 400 is not retried by the CLI: it reports the error and ends.
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_request_error", &e),
    };
    if turn.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(turn.delay_ms)).await;
    }
    let id = format!("msg_{task}_{step}");
    if stream {
        sse_response(&id, &model, &task, step, &turn)
    } else {
        http_serve::json(StatusCode::OK, &full_message(&id, &model, &task, step, &turn))
    }
}

impl Shared {
    /// Whether this request of `task`'s conversation is one of its first `overloaded`.
    fn overloaded(&self, task: &str) -> bool {
        let Some(n) = self.script.overloaded else {
            return false;
        };
        let mut seen = self.overloaded.lock().unwrap_or_else(|e| e.into_inner());
        let count = seen.entry(task.to_string()).or_default();
        *count += 1;
        *count <= n
    }

    fn note(&self, rec: Recorded) {
        if let Some(f) = &self.record
            && let Ok(line) = serde_json::to_string(&rec)
        {
            let mut f = f.lock().unwrap();
            let _ = writeln!(f, "{line}");
        }
        self.recorded.lock().unwrap().push(rec);
    }
}

fn system_text(system: &Value) -> String {
    match system {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Every tool call gets an id unique in the run: reusing one makes the CLI merge turns.
fn tool_id(task: &str, step: usize, i: usize) -> String {
    format!(
        "toolu_{}_{step}_{i}",
        task.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

fn stop_reason(turn: &Turn) -> &'static str {
    if turn.has_tool_use() {
        "tool_use"
    } else {
        "end_turn"
    }
}

fn content_json(task: &str, step: usize, turn: &Turn) -> Vec<Value> {
    turn.content
        .iter()
        .enumerate()
        .map(|(i, b)| match b {
            Block::Text { text } => json!({ "type": "text", "text": text }),
            Block::ToolUse { name, input } => {
                json!({ "type": "tool_use", "id": tool_id(task, step, i), "name": name, "input": input })
            }
        })
        .collect()
}

fn full_message(id: &str, model: &str, task: &str, step: usize, turn: &Turn) -> Value {
    json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": content_json(task, step, turn),
        "stop_reason": stop_reason(turn), "stop_sequence": null,
        "usage": { "input_tokens": turn.usage.input_tokens, "output_tokens": turn.usage.output_tokens },
    })
}

/// The SSE sequence the CLI expects: message_start, per block start/delta/stop,
/// message_delta (stop reason, usage), message_stop.
fn sse_response(id: &str, model: &str, task: &str, step: usize, turn: &Turn) -> Response {
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": turn.usage.input_tokens, "output_tokens": 1 } } }),
    )];
    for (i, block) in turn.content.iter().enumerate() {
        let (start, delta) = match block {
            Block::Text { text } => (
                json!({ "type": "text", "text": "" }),
                json!({ "type": "text_delta", "text": text }),
            ),
            Block::ToolUse { name, input } => (
                json!({ "type": "tool_use", "id": tool_id(task, step, i), "name": name, "input": {} }),
                json!({ "type": "input_json_delta", "partial_json": input.to_string() }),
            ),
        };
        events.push((
            "content_block_start",
            json!({ "type": "content_block_start", "index": i, "content_block": start }),
        ));
        events.push((
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": i, "delta": delta }),
        ));
        events.push((
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": i }),
        ));
    }
    events.push((
        "message_delta",
        json!({ "type": "message_delta", "delta": { "stop_reason": stop_reason(turn), "stop_sequence": null },
                "usage": { "output_tokens": turn.usage.output_tokens } }),
    ));
    events.push(("message_stop", json!({ "type": "message_stop" })));
    let body: String = events
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    let chunks = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(Bytes::from(body))));
    hyper::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(http_serve::stream(chunks))
        .expect("valid response")
}

fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    http_serve::json(
        status,
        &json!({ "type": "error", "error": { "type": kind, "message": message } }),
    )
}
