//! On a Swarm a task's gateway is also its entry step's way to the run's exchange
//! (`swarm::exchange`): the task's service has no route but to its gateway. The gateway passes
//! the exchange's three paths (`/v1/TOKEN/files`, `/out`, `/stats`) to the one address it was
//! given (`Command::Exchange`), bodies streamed both ways, and nothing else there: the
//! exchange's token still guards each task's files.

use std::sync::OnceLock;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::body::{Body, full};

/// The exchange's `HOST:PORT`, once told.
static TO: OnceLock<String> = OnceLock::new();

pub fn set(addr: String) {
    if TO.set(addr).is_err() {
        eprintln!("sandpen gateway: the exchange's address was given twice; the first kept");
    }
}

/// Whether `path` is one of the exchange's and the gateway knows where the exchange is.
pub fn passes(path: &str) -> bool {
    TO.get().is_some() && exchange_path(path)
}

/// `/v1/TOKEN/files|out|stats`, the token plain hex-like text: matched exactly, never decoded.
fn exchange_path(path: &str) -> bool {
    let Some((token, what)) = path.strip_prefix("/v1/").and_then(|r| r.split_once('/')) else {
        return false;
    };
    (1..=128).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric())
        && matches!(what, "files" | "out" | "stats")
}

/// The request, passed to the exchange as it came (its path, no query), the answer back.
pub async fn forward(req: Request<Incoming>) -> Response<Body> {
    static CLIENT: OnceLock<Client<HttpConnector, Incoming>> = OnceLock::new();
    let client = CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build_http());
    let Some(to) = TO.get() else {
        return answer(StatusCode::NOT_FOUND, "no exchange");
    };
    let (mut parts, body) = req.into_parts();
    let Ok(uri) = format!("http://{to}{}", parts.uri.path()).parse() else {
        return answer(StatusCode::BAD_REQUEST, "not a path of the exchange");
    };
    parts.uri = uri;
    parts.headers.remove(hyper::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(|b| b.map_err(|e| e.into()).boxed()),
        Err(e) => answer(
            StatusCode::BAD_GATEWAY,
            &format!("sandpen gateway: the run's exchange at {to}: {e}"),
        ),
    }
}

fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(full(format!("{text}\n")));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::exchange_path;

    #[test]
    fn only_the_exchange_paths_pass() {
        assert!(exchange_path("/v1/abc123/files"));
        assert!(exchange_path("/v1/abc123/out") && exchange_path("/v1/abc123/stats"));
        for no in [
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1//files",
            "/v1/a/b/files",
            "/v1/a%2F/files",
            "/v1/abc/files/",
            "/v2/abc/files",
            "/api/hello",
        ] {
            assert!(!exchange_path(no), "{no}");
        }
    }
}
