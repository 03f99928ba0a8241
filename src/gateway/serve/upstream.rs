//! The model API upstream: its client, and the request the gateway sends it for a task's call,
//! with the run's credential in place of anything the task sent.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::route::ApiCall;
use super::state::Config;
use crate::gateway::protocol::{CredentialKind, OAUTH_BETA};

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

/// Headers never passed on: those of one hop, and every one that can carry a credential (only
/// the gateway's own goes upstream). Any `proxy-*` header is dropped too.
const DROPPED: [&str; 12] = [
    "host",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// The headers sent upstream for the task's `headers`.
pub fn headers(task: &HeaderMap, credential: Option<&(CredentialKind, String)>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in task {
        let name = k.as_str();
        if !DROPPED.contains(&name) && !name.starts_with("proxy-") {
            out.append(k.clone(), v.clone());
        }
    }
    let Some((kind, value)) = credential else {
        return out;
    };
    let bearer = || HeaderValue::try_from(format!("Bearer {value}")).ok();
    match kind {
        CredentialKind::ApiKey => {
            if let Ok(v) = HeaderValue::try_from(value.as_str()) {
                out.insert("x-api-key", v);
            }
        }
        CredentialKind::AuthToken => {
            if let Some(v) = bearer() {
                out.insert(header::AUTHORIZATION, v);
            }
        }
        CredentialKind::OauthToken => {
            if let Some(v) = bearer() {
                out.insert(header::AUTHORIZATION, v);
            }
            with_oauth_beta(&mut out);
        }
    }
    out
}

/// `anthropic-beta` with the OAuth beta among the task's own (one header, comma-separated).
fn with_oauth_beta(h: &mut HeaderMap) {
    let mut betas: Vec<String> = h
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if !betas.iter().any(|b| b == OAUTH_BETA) {
        betas.push(OAUTH_BETA.to_string());
    }
    if let Ok(v) = HeaderValue::try_from(betas.join(",")) {
        h.insert("anthropic-beta", v);
    }
}

/// The request upstream for `call` of `task`: the upstream base (with `{task}` filled in),
/// the call's own path, the task's query.
pub fn request(
    config: &Config,
    task: &str,
    call: ApiCall,
    query: Option<&str>,
    task_headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let base = config.upstream.replace("{task}", task);
    let mut url = format!("{}{}", base.trim_end_matches('/'), call.path());
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    let mut up = Request::builder().method(Method::POST).uri(url);
    if let Some(h) = up.headers_mut() {
        *h = headers(task_headers, config.credential.as_ref());
    }
    up.body(Full::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-api-key", "task-token"),
            ("authorization", "Bearer task-token"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-foo", "x"),
            ("cookie", "session=1"),
            ("host", "gateway:1"),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "claude-code-20250219, fine-grained-tool-streaming-2025-05-14",
            ),
            ("content-type", "application/json"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_gateways_credential_goes_upstream() {
        for kind in CredentialKind::ALL {
            let h = headers(&task_headers(), Some(&(kind, "real".into())));
            let all = format!("{h:?}");
            assert!(
                !all.contains("task-token") && !all.contains("session=1"),
                "{kind:?}: {all}"
            );
            assert!(!all.contains("proxy-") && h.get("host").is_none(), "{all}");
            assert_eq!(h["anthropic-version"], "2023-06-01");
            match kind {
                CredentialKind::ApiKey => {
                    assert_eq!(h["x-api-key"], "real");
                    assert!(h.get("authorization").is_none());
                }
                _ => {
                    assert_eq!(h["authorization"], "Bearer real");
                    assert!(h.get("x-api-key").is_none());
                }
            }
            let beta = h["anthropic-beta"].to_str().unwrap();
            assert_eq!(
                beta.contains(OAUTH_BETA),
                kind == CredentialKind::OauthToken,
                "{kind:?}: {beta}"
            );
            assert!(beta.contains("claude-code-20250219"), "{beta}");
        }
        let none = headers(&task_headers(), None);
        assert!(none.get("x-api-key").is_none() && none.get("authorization").is_none());
    }

    #[test]
    fn the_oauth_beta_is_named_once() {
        let mut h = HeaderMap::new();
        h.insert("anthropic-beta", format!("a,{OAUTH_BETA}").parse().unwrap());
        let out = headers(&h, Some(&(CredentialKind::OauthToken, "t".into())));
        assert_eq!(out["anthropic-beta"], format!("a,{OAUTH_BETA}").as_str());
    }
}
