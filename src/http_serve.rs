//! What sandpen's HTTP servers share (the gateway, the Swarm exchange, the model server): one
//! body type and its builders, a bounded read of a request body, and an accept loop serving
//! each TCP connection with hyper's HTTP/1. Kept in one leaf so they answer and stop alike.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The one body type every server answers with.
pub type Body = BoxBody<Bytes, Error>;

/// A body of known bytes (sent with a `content-length`).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed()
}

pub fn empty() -> Body {
    http_body_util::Empty::new().map_err(|e| match e {}).boxed()
}

/// A body sent chunk by chunk as `chunks` yields them (chunked, each flushed as it comes).
pub fn stream<S, E>(chunks: S) -> Body
where
    S: Stream<Item = Result<Bytes, E>> + Send + Sync + 'static,
    E: Into<Error> + 'static,
{
    BodyExt::boxed(StreamBody::new(chunks.map_ok(Frame::data).map_err(Into::into)))
}

/// A status with an empty body.
pub fn status(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// A plain-text answer.
pub fn text(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(text.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A whole request body of at most `limit` bytes, or the answer to give instead: 413 past the
/// limit, 400 when the body failed (the texts these servers have always given).
pub async fn bytes_within(body: Incoming, limit: usize) -> Result<Bytes, Response<Body>> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(all) => Ok(all.to_bytes()),
        Err(e) => {
            let code = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(text(code, format!("Failed to buffer the request body: {e}")))
        }
    }
}

/// A path segment with its `%XX` escapes decoded; None when the result is not UTF-8.
pub fn decoded(segment: &str) -> Option<String> {
    let raw = segment.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Serves each connection `listener` accepts with `handle`, until `shutdown` completes: then
/// it accepts no more, lets requests in flight finish, closes idle connections, and returns
/// once every connection has ended.
pub async fn serve<H, F>(listener: tokio::net::TcpListener, handle: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (handle, stop) = (handle.clone(), stop.clone());
        connections.spawn(async move {
            let handle = move |req| {
                let answer = handle(req);
                async move { Ok::<_, Infallible>(answer.await) }
            };
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handle));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// A failed accept: a connection that went away is nothing; anything else (out of file
/// descriptors) is waited out a second rather than spun on.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        tracing::debug!("accepting a connection: {e}");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_bad_ones_stay() {
        assert_eq!(decoded("a%2Fb%41").as_deref(), Some("a/bA"));
        assert_eq!(decoded("100%").as_deref(), Some("100%"));
        assert_eq!(decoded("%zz").as_deref(), Some("%zz"));
        assert_eq!(decoded("%ff"), None);
    }
}
