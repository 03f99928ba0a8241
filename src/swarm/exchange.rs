//! How a task's files reach a node that shares no disk with sandpen, and how its result comes
//! back: an HTTP server in the sandpen process, at the address the nodes reach
//! (`--advertise-addr`). Each task has a random token, which is its whole authority:
//!
//! - `GET /v1/TOKEN/files`: a tar of what its container would have had mounted: the checkout
//!   at `workspace/`, every other mount at its target (the prompt, the agents, the collection
//!   script and its out directory as sandpen prepared it), the borrowed objects as one pack of
//!   what the checkout needs (`history.rs`), not the whole store. Its size is logged
//!   (`delivered`, at info).
//! - `PUT /v1/TOKEN/out`: a tar of the out directory after the collection ran in the task's
//!   container. Taken once (a sending refused or cut short may come again). Only plain
//!   regular files at its top, within a size bound, each written anew without following
//!   links; the host then reads them as it reads what a local
//!   container collected in place (untrusted data: a task that forges them forges only its
//!   own result, which it controls anyway).
//! - `POST /v1/TOKEN/stats`: one reading of the container's cgroup (`sample.rs`), about once a
//!   second while the command runs; the runner follows them as the task's stats stream.
//!
//! The checkout read here is sandpen's own fresh one: a task on a Swarm never touches it.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderValue};
use hyper::{Method, Request, StatusCode};
use tokio::sync::mpsc;

use super::files_tar::{Counted, pack};
use super::history::Packs;
use super::sample::Reading;
use crate::engine::spec::BindMount;
use crate::http_serve::{self, Body};

/// The most a task's out directory may weigh (its result bundle is most of it).
pub const OUT_LIMIT: usize = 2 << 30;
/// The most files it may hold.
const OUT_FILES: usize = 64;
/// The most a reading may weigh.
const READING_LIMIT: usize = 4096;
/// Readings kept for a runner that does not follow them yet (the rest are dropped).
const READINGS_KEPT: usize = 64;

/// What the exchange serves one task, and where its result goes.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub task: String,
    /// The checkout, served at `workspace/`.
    pub workspace: PathBuf,
    /// Every other mount: its source served at its target.
    pub mounts: Vec<BindMount>,
    /// Where the returned out directory is written (the writable mount at `/sandpen-out`).
    pub out: Option<PathBuf>,
}

#[derive(Debug)]
struct Slot {
    delivery: Option<Delivery>,
    fetched: bool,
    returned: bool,
    readings: mpsc::Sender<Reading>,
    /// Until the runner takes it.
    follower: Option<mpsc::Receiver<Reading>>,
}

type Slots = Arc<Mutex<HashMap<String, Slot>>>;

/// What the handlers share: the tasks, and the history packs made for them.
#[derive(Clone)]
struct Shared {
    slots: Slots,
    packs: Option<Arc<Packs>>,
}

/// The run's exchange; dropped, it stops serving.
pub struct Exchange {
    addr: SocketAddr,
    slots: Slots,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Exchange {
    /// Serves on `advertise` (a port of 0 picks a free one).
    pub async fn start(advertise: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(advertise).await?;
        let addr = listener.local_addr()?;
        let slots: Slots = Default::default();
        // Without a place for packs, the whole borrowed store goes, as it did before.
        let packs = match Packs::new_in(&std::env::temp_dir()) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::warn!("no place to pack tasks' history ({e}): each task gets the whole store");
                None
            }
        };
        let shared = Shared {
            slots: slots.clone(),
            packs,
        };
        let handle = move |req| route(shared.clone(), req);
        let server = tokio::spawn(http_serve::serve(listener, handle, std::future::pending()));
        Ok(Self { addr, slots, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A task's files, served under a new token; the URL its entry step is given.
    pub fn register(&self, delivery: Delivery) -> std::io::Result<String> {
        let token = new_token()?;
        let (readings, follower) = mpsc::channel(READINGS_KEPT);
        let slot = Slot {
            delivery: Some(delivery),
            fetched: false,
            returned: false,
            readings,
            follower: Some(follower),
        };
        self.slots.lock().unwrap().insert(token.clone(), slot);
        Ok(format!("http://{}/v1/{token}", self.addr))
    }

    /// Serves a task under the token of `url`, one a dead run's exchange made (`reopen.rs`).
    pub fn adopt(&self, url: &str, delivery: Delivery) {
        let (readings, follower) = mpsc::channel(READINGS_KEPT);
        let slot = Slot {
            delivery: Some(delivery),
            fetched: false,
            returned: false,
            readings,
            follower: Some(follower),
        };
        self.slots.lock().unwrap().insert(token_of(url).to_string(), slot);
    }

    /// Ends a task's token: nothing more is served to it or taken from it.
    pub fn forget(&self, url: &str) {
        self.slots.lock().unwrap().remove(token_of(url));
    }

    /// Where a task's returned out directory is, once it came back.
    pub fn returned_to(&self, url: &str) -> Option<PathBuf> {
        let slots = self.slots.lock().unwrap();
        let slot = slots.get(token_of(url)).filter(|s| s.returned)?;
        slot.delivery.as_ref()?.out.clone()
    }

    /// The task's cgroup readings as they come, once (None for an unknown task or a second
    /// call). The stream ends when the task's token does.
    pub fn readings(&self, url: &str) -> Option<mpsc::Receiver<Reading>> {
        self.slots.lock().unwrap().get_mut(token_of(url))?.follower.take()
    }

    /// Whether the task fetched its files.
    pub fn fetched(&self, url: &str) -> bool {
        self.slots
            .lock()
            .unwrap()
            .get(token_of(url))
            .is_some_and(|s| s.fetched)
    }

    /// Whether the task's out directory came back.
    pub fn returned(&self, url: &str) -> bool {
        self.slots
            .lock()
            .unwrap()
            .get(token_of(url))
            .is_some_and(|s| s.returned)
    }
}

/// The token of a task's URL (its last segment).
fn token_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}

use crate::token::new_token;

type Response = hyper::Response<Body>;

fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    http_serve::text(status, why)
}

/// The three paths, each with its method (GET also answers HEAD); another method on one of
/// them is 405 with what it takes, any other path 404.
async fn route(shared: Shared, req: Request<Incoming>) -> Response {
    let Some((token, what)) = req
        .uri()
        .path()
        .strip_prefix("/v1/")
        .and_then(|p| p.split_once('/'))
        .filter(|(token, _)| !token.is_empty())
    else {
        return http_serve::status(StatusCode::NOT_FOUND);
    };
    let (method, allow) = match what {
        "files" => (Method::GET, "GET,HEAD"),
        "out" => (Method::PUT, "PUT"),
        "stats" => (Method::POST, "POST"),
        _ => return http_serve::status(StatusCode::NOT_FOUND),
    };
    let passes = req.method() == method || (method == Method::GET && req.method() == Method::HEAD);
    if !passes {
        let mut r = http_serve::status(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        return r;
    }
    let Some(token) = http_serve::decoded(token) else {
        return refuse(StatusCode::BAD_REQUEST, "Invalid URL: the token is not UTF-8");
    };
    match what {
        "files" => files(shared, token),
        "out" => out(shared, token, req.into_body()).await,
        _ => match http_serve::bytes_within(req.into_body(), READING_LIMIT).await {
            Ok(body) => stats(shared, token, body),
            Err(refused) => refused,
        },
    }
}

fn files(shared: Shared, token: String) -> Response {
    let delivery = {
        let mut slots = shared.slots.lock().unwrap();
        match slots.get_mut(&token) {
            Some(slot) => {
                slot.fetched = true;
                slot.delivery.clone()
            }
            None => None,
        }
    };
    let Some(delivery) = delivery else {
        return refuse(StatusCode::NOT_FOUND, "no such task");
    };
    // Streamed as it is packed: a checkout of gigabytes never sits in sandpen's memory. A
    // failure cuts the stream short, and the entry step's unpacking says so.
    let packs = shared.packs.clone();
    let (sent, _) = super::pipe::packed(move |into| {
        let mut counted = Counted { into, bytes: 0 };
        match pack(&delivery, packs.as_deref(), &mut counted) {
            Ok(_) => tracing::info!(task = %delivery.task, bytes = counted.bytes, "delivered"),
            Err(e) => tracing::warn!(task = %delivery.task, "sending the task's files: {e}"),
        }
    });
    hyper::Response::new(http_serve::stream(sent))
}

fn stats(Shared { slots, .. }: Shared, token: String, body: Bytes) -> Response {
    let Some(readings) = slots.lock().unwrap().get(&token).map(|s| s.readings.clone()) else {
        return refuse(StatusCode::NOT_FOUND, "no such task");
    };
    let reading: Reading = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("not a reading: {e}")),
    };
    // A runner that is not keeping up loses readings, never blocks the node.
    let _ = readings.try_send(reading);
    http_serve::status(StatusCode::NO_CONTENT)
}

async fn out(Shared { slots, .. }: Shared, token: String, body: Incoming) -> Response {
    let dir = {
        let mut slots = slots.lock().unwrap();
        match slots.get_mut(&token) {
            Some(slot) if slot.returned => {
                return refuse(StatusCode::CONFLICT, "the result was already taken");
            }
            Some(slot) => {
                slot.returned = true;
                slot.delivery.as_ref().and_then(|d| d.out.clone())
            }
            None => return refuse(StatusCode::NOT_FOUND, "no such task"),
        }
    };
    let Some(dir) = dir else {
        return refuse(StatusCode::NOT_FOUND, "this task returns nothing");
    };
    // Unpacked as it comes (a result bundle may be large), within the bound.
    let from = bounded(body, OUT_LIMIT);
    let answer = match tokio::task::spawn_blocking(move || unpack_out(from, &dir)).await {
        Ok(Ok(n)) => return http_serve::text(StatusCode::OK, format!("{n} files\n")),
        Ok(Err(e)) => refuse(StatusCode::BAD_REQUEST, e),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // Not taken: a sending cut short (sandpen's or the node's network) may be offered again.
    if let Some(slot) = slots.lock().unwrap().get_mut(&token) {
        slot.returned = false;
    }
    answer
}

/// A request body as a blocking reader (for a blocking thread) that fails once more than
/// `limit` bytes came.
fn bounded<B>(body: B, limit: usize) -> impl Read + Send + 'static
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<http_serve::Error>,
{
    let body = http_body_util::Limited::new(body, limit)
        .map_err(move |e| format!("{e} (the most is {limit} bytes)"));
    super::pipe::reader(body)
}

/// Writes the returned files into `dir`: plain names, regular files, a bounded count, each
/// created anew (a link or anything else already there is removed, never followed).
fn unpack_out(tar: impl Read, dir: &Path) -> Result<usize, String> {
    let mut archive = tar::Archive::new(tar);
    let mut n = 0;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let name = match path.to_str() {
            Some(name) if plain_name(name) => name.to_string(),
            _ => return Err(format!("{}: not a plain file name", path.display())),
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(format!("{name}: not a regular file"));
        }
        n += 1;
        if n > OUT_FILES {
            return Err(format!("more than {OUT_FILES} files"));
        }
        let target = dir.join(&name);
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&target),
            Ok(_) => std::fs::remove_file(&target),
            Err(_) => Ok(()),
        }
        .map_err(|e| format!("{name}: {e}"))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| format!("{name}: {e}"))?;
        std::io::copy(&mut entry, &mut file).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(n)
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Written raw: the builder itself refuses the names a hostile sender would use.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn only_plain_regular_files_come_back_and_links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let victim = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(victim.path(), d.join("hints")).unwrap();
        let n = unpack_out(
            &tar_of(&[("hints", b"sandpen-collect: head abc\n"), ("done", b"0\n")])[..],
            d,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(std::fs::read_to_string(d.join("done")).unwrap(), "0\n");
        assert!(!std::fs::symlink_metadata(d.join("hints")).unwrap().is_symlink());
        assert_eq!(
            std::fs::read_to_string(victim.path()).unwrap(),
            "",
            "the link's target is untouched"
        );
        for bad in ["../x", "a/b", ".git", "/etc/x"] {
            let tar = tar_of(&[(bad, b"x")]);
            assert!(unpack_out(&tar[..], d).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_body_over_its_bound_fails_as_it_is_read() {
        let read = |len: usize| {
            let mut from = bounded(http_serve::full(vec![7u8; len]), 1000);
            tokio::task::spawn_blocking(move || {
                let mut all = Vec::new();
                from.read_to_end(&mut all).map(|_| all.len())
            })
        };
        assert_eq!(read(1000).await.unwrap().unwrap(), 1000);
        let err = read(1001).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("the most is 1000 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_token_fetches_its_files_and_returns_its_result_once() {
        let repo = tempfile::tempdir().unwrap();
        let ws = repo.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/a.txt"), "hello").unwrap();
        std::fs::write(repo.path().join("prompt"), "do it").unwrap();
        let out = repo.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let ex = Exchange::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = ex
            .register(Delivery {
                task: "t".into(),
                workspace: ws,
                mounts: vec![BindMount::read_only(
                    repo.path().join("prompt"),
                    "/run/sandpen/prompt",
                )],
                out: Some(out.clone()),
            })
            .unwrap();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<Bytes>>();
        let got = client.get(format!("{url}/files").parse().unwrap()).await.unwrap();
        assert_eq!(got.status(), 200);
        let body = http_body_util::BodyExt::collect(got.into_body())
            .await
            .unwrap()
            .to_bytes();
        let mut names: Vec<String> = tar::Archive::new(&body[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert!(names.contains(&"workspace/src/a.txt".to_string()), "{names:?}");
        assert!(names.contains(&"run/sandpen/prompt".to_string()), "{names:?}");
        let put = |tar: Vec<u8>| {
            let req = hyper::Request::put(format!("{url}/out"))
                .body(http_body_util::Full::new(Bytes::from(tar)))
                .unwrap();
            client.request(req)
        };
        assert_eq!(put(tar_of(&[("../x", b"x")])).await.unwrap().status(), 400);
        assert!(!ex.returned(&url), "a refused result is not taken");
        assert_eq!(put(tar_of(&[("done", b"0\n")])).await.unwrap().status(), 200);
        assert!(ex.returned(&url));
        assert_eq!(std::fs::read_to_string(out.join("done")).unwrap(), "0\n");
        assert_eq!(
            put(tar_of(&[("done", b"1\n")])).await.unwrap().status(),
            409,
            "taken once"
        );
        let mut readings = ex.readings(&url).expect("a registered task's readings");
        assert!(ex.readings(&url).is_none(), "taken once");
        let reading = crate::swarm::sample::Reading {
            read: "2026-12-03T10:00:00Z".into(),
            memory_bytes: Some(7 << 20),
            ..Default::default()
        };
        let post = |body: Vec<u8>| {
            let req = hyper::Request::post(format!("{url}/stats"))
                .body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap();
            client.request(req)
        };
        let sent = post(serde_json::to_vec(&reading).unwrap()).await.unwrap();
        assert_eq!(sent.status(), 204);
        assert_eq!(readings.recv().await, Some(reading));
        assert_eq!(post(b"{oops".to_vec()).await.unwrap().status(), 400);
        assert_eq!(post(vec![b' '; 8192]).await.unwrap().status(), 413, "bounded");
        ex.forget(&url);
        assert_eq!(readings.recv().await, None, "the stream ends with the token");

        let wrong = format!("http://{}/v1/{}/files", ex.addr(), "0".repeat(64));
        assert_eq!(client.get(wrong.parse().unwrap()).await.unwrap().status(), 404);
    }
}
