//! The egress proxy: `CONNECT host:port` (HTTPS, tunnelled as bytes) and plain-HTTP requests in
//! absolute form. Every request names its task by the token in `Proxy-Authorization` (the
//! task's `HTTPS_PROXY` carries it); the task's allowlist decides; the gateway resolves the
//! name itself and connects to the address it checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::body::{Body, Watched, full};
use super::state::{PER_TASK, State, now};
use crate::gateway::allow::is_private;
use crate::gateway::protocol::Report;

/// Why a request may not pass, for the answer and the audit line.
struct Denied {
    status: StatusCode,
    reason: String,
}

/// The task and the address a request may go to.
async fn admit(
    state: &State,
    req: &Request<Incoming>,
    host: &str,
    port: u16,
) -> Result<(String, SocketAddr), (Option<String>, Denied)> {
    let deny = |task: Option<String>, status, reason: String| (task, Denied { status, reason });
    let token = proxy_token(req).ok_or_else(|| {
        deny(
            None,
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "no token of this run (Proxy-Authorization)".into(),
        )
    })?;
    let access = state.access(&token).ok_or_else(|| {
        deny(
            None,
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "no live token of this run".into(),
        )
    })?;
    let task = Some(access.task.clone());
    let Some(entry) = access.allow.find(host, port) else {
        return Err(deny(
            task,
            StatusCode::FORBIDDEN,
            format!("{host}:{port} is not on the task's allowlist"),
        ));
    };
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(deny(
                task,
                StatusCode::BAD_GATEWAY,
                format!("resolving {host}: {e}"),
            ));
        }
    };
    let private_ok = entry.reaches_private();
    match addrs.into_iter().find(|a| private_ok || !is_private(a.ip())) {
        Some(addr) => Ok((access.task, addr)),
        None => Err(deny(
            task,
            StatusCode::FORBIDDEN,
            format!(
                "{host} resolves only to private addresses, which only an exact allowlist entry may reach"
            ),
        )),
    }
}

/// The token from `Proxy-Authorization: Basic base64(user:token)`.
fn proxy_token(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get(header::PROXY_AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
    Some(if pass.is_empty() { user } else { pass }.to_string())
}

fn audit(
    state: &State,
    task: Option<String>,
    method: &str,
    host: &str,
    port: u16,
    outcome: Result<(u64, u64), String>,
    allowed: bool,
) {
    let (bytes_up, bytes_down, reason) = match outcome {
        Ok((up, down)) => (up, down, None),
        Err(why) => (0, 0, Some(why)),
    };
    state.report(&Report::Egress {
        at: now(),
        task,
        method: method.to_string(),
        host: host.to_string(),
        port,
        allowed,
        reason,
        bytes_up,
        bytes_down,
    });
}

fn refuse(status: StatusCode, reason: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("sandpen gateway: {reason}\n")));
    *r.status_mut() = status;
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        r.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"sandpen\""),
        );
    }
    r
}

/// A task over its limit of connections and requests in flight.
fn too_many(state: &State, task: String, method: &str, host: &str, port: u16) -> Response<Body> {
    let why = format!(
        "this task has {PER_TASK} connections and requests in flight, the most it may; retry when one has ended"
    );
    audit(state, Some(task), method, host, port, Err(why.clone()), false);
    refuse(StatusCode::TOO_MANY_REQUESTS, &why)
}

/// Whether a plain-HTTP request's `Host` names its target (the port 80 when it names none).
fn host_matches(named: Option<&str>, host: &str, port: u16) -> bool {
    // No user part: a server may read either side of an `@`.
    let named = named.filter(|n| !n.contains('@'));
    let Some(a) = named.and_then(|n| n.parse::<hyper::http::uri::Authority>().ok()) else {
        return false;
    };
    a.host().trim_matches(['[', ']']).eq_ignore_ascii_case(host) && a.port_u16().unwrap_or(80) == port
}

/// `CONNECT host:port`: checked, connected, then a byte tunnel.
pub async fn connect(state: &Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let Some((host, port)) = req.uri().authority().map(|a| {
        (
            a.host().trim_matches(['[', ']']).to_string(),
            a.port_u16().unwrap_or(443),
        )
    }) else {
        return refuse(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let (task, addr) = match admit(state, &req, &host, port).await {
        Ok(ok) => ok,
        Err((task, d)) => {
            audit(state, task, "CONNECT", &host, port, Err(d.reason.clone()), false);
            return refuse(d.status, &d.reason);
        }
    };
    let Some(slot) = state.slot(&task) else {
        return too_many(state, task, "CONNECT", &host, port);
    };
    let upstream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            let why = format!("connecting to {addr}: {e}");
            audit(state, Some(task), "CONNECT", &host, port, Err(why.clone()), true);
            return refuse(StatusCode::BAD_GATEWAY, &why);
        }
    };
    let state = state.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let outcome = match on_upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                tokio::io::copy_bidirectional(&mut client, &mut upstream)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        drop(slot);
        audit(&state, Some(task), "CONNECT", &host, port, outcome, true);
    });
    Response::new(full(""))
}

/// A plain-HTTP request in absolute form: checked, sent on, its answer streamed back.
pub async fn forward(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().to_string();
    let uri = req.uri().clone();
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    if uri.scheme_str() != Some("http") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "only http:// is forwarded; use CONNECT for https",
        );
    }
    let (task, addr) = match admit(state, &req, &host, port).await {
        Ok(ok) => ok,
        Err((task, d)) => {
            audit(state, task, &method, &host, port, Err(d.reason.clone()), false);
            return refuse(d.status, &d.reason);
        }
    };
    // The server reads the Host header, not the target the allowlist checked.
    let named = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    if !host_matches(named, &host, port) {
        let why = format!(
            "the Host header ({}) is not the target {host}:{port}",
            named.map_or("none".to_string(), super::route::shown)
        );
        audit(state, Some(task), &method, &host, port, Err(why.clone()), false);
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    let Some(slot) = state.slot(&task) else {
        return too_many(state, task, &method, &host, port);
    };
    let sent = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let (mut parts, body) = req.into_parts();
        parts.uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
        parts.headers.remove(header::PROXY_AUTHORIZATION);
        parts.headers.remove("proxy-connection");
        let up = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let answer = sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((answer, up))
    }
    .await;
    match sent {
        Ok((answer, up)) => {
            let (parts, body) = answer.into_parts();
            let down = Arc::new(AtomicU64::new(0));
            let counted = down.clone();
            let state = state.clone();
            let watched = Watched::new(
                body,
                move |d| {
                    counted.fetch_add(d.len() as u64, Ordering::Relaxed);
                },
                move || {
                    drop(slot);
                    let down = down.load(Ordering::Relaxed);
                    audit(&state, Some(task), &method, &host, port, Ok((up, down)), true);
                },
            );
            Response::from_parts(parts, watched.map_err(Into::into).boxed())
        }
        Err(why) => {
            audit(state, Some(task), &method, &host, port, Err(why.clone()), true);
            refuse(StatusCode::BAD_GATEWAY, &why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn a_plain_http_request_must_name_its_target_as_its_host() {
        for (named, host, port) in [
            ("pypi.org", "pypi.org", 80),
            ("PyPI.org:80", "pypi.org", 80),
            ("10.0.0.1:8080", "10.0.0.1", 8080),
            ("[::1]:81", "::1", 81),
        ] {
            assert!(host_matches(Some(named), host, port), "{named}");
        }
        for (named, host, port) in [
            (Some("evil.example"), "pypi.org", 80),
            (Some("pypi.org:81"), "pypi.org", 80),
            (Some("pypi.org"), "pypi.org", 8080),
            (Some("pypi.org.evil.example"), "pypi.org", 80),
            (Some("a@pypi.org"), "pypi.org", 80),
            (Some(""), "pypi.org", 80),
            (None, "pypi.org", 80),
        ] {
            assert!(!host_matches(named, host, port), "{named:?}");
        }
    }
}
