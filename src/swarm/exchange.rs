//! How a task's files reach a node that shares no disk with sandpen, and how its result comes
//! back: an HTTP server in the sandpen process, at the address the nodes reach
//! (`--advertise-addr`). Each task has a random token, which is its whole authority:
//!
//! - `GET /v1/TOKEN/files`: a tar of what its container would have had mounted: the checkout
//!   at `workspace/`, every other mount at its target (the prompt, the agents, the borrowed
//!   objects, the collection script and its out directory as sandpen prepared it).
//! - `PUT /v1/TOKEN/out`: a tar of the out directory after the collection ran in the task's
//!   container. Taken once. Only plain regular files at its top, within a size bound, each
//!   written anew without following links; the host then reads them as it reads what a local
//!   container collected in place (untrusted data: a task that forges them forges only its
//!   own result, which it controls anyway).
//!
//! The checkout read here is sandpen's own fresh one: a task on a Swarm never touches it.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use crate::engine::spec::BindMount;

/// The most a task's out directory may weigh (its result bundle is most of it).
pub const OUT_LIMIT: usize = 2 << 30;
/// The most files it may hold.
const OUT_FILES: usize = 64;

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

#[derive(Debug, Default)]
struct Slot {
    delivery: Option<Delivery>,
    fetched: bool,
    returned: bool,
}

type Slots = Arc<Mutex<HashMap<String, Slot>>>;

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
        let app = Router::new()
            .route("/v1/{token}/files", get(files))
            .route("/v1/{token}/out", put(out))
            .layer(DefaultBodyLimit::max(OUT_LIMIT))
            .with_state(slots.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, slots, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A task's files, served under a new token; the URL its entry step is given.
    pub fn register(&self, delivery: Delivery) -> std::io::Result<String> {
        let token = new_token()?;
        let slot = Slot {
            delivery: Some(delivery),
            ..Default::default()
        };
        self.slots.lock().unwrap().insert(token.clone(), slot);
        Ok(format!("http://{}/v1/{token}", self.addr))
    }

    /// Ends a task's token: nothing more is served to it or taken from it.
    pub fn forget(&self, url: &str) {
        if let Some(token) = url.rsplit('/').next() {
            self.slots.lock().unwrap().remove(token);
        }
    }

    /// Where a task's returned out directory is, once it came back.
    pub fn returned_to(&self, url: &str) -> Option<PathBuf> {
        let token = url.rsplit('/').next().unwrap_or_default();
        let slots = self.slots.lock().unwrap();
        let slot = slots.get(token).filter(|s| s.returned)?;
        slot.delivery.as_ref()?.out.clone()
    }

    /// Whether the task fetched its files.
    pub fn fetched(&self, url: &str) -> bool {
        let token = url.rsplit('/').next().unwrap_or_default();
        self.slots.lock().unwrap().get(token).is_some_and(|s| s.fetched)
    }

    /// Whether the task's out directory came back.
    pub fn returned(&self, url: &str) -> bool {
        let token = url.rsplit('/').next().unwrap_or_default();
        self.slots.lock().unwrap().get(token).is_some_and(|s| s.returned)
    }
}

fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    (status, why.into()).into_response()
}

async fn files(State(slots): State<Slots>, UrlPath(token): UrlPath<String>) -> Response {
    let delivery = {
        let mut slots = slots.lock().unwrap();
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
    match tokio::task::spawn_blocking(move || pack(&delivery)).await {
        Ok(Ok(tar)) => Response::new(Body::from(tar)),
        Ok(Err(e)) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("packing the task's files: {e}"),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The tar the entry step unpacks at `/`.
fn pack(d: &Delivery) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    let workdir = crate::engine::spec::WORKDIR.trim_start_matches('/');
    tar.append_dir_all(workdir, &d.workspace)?;
    for m in &d.mounts {
        let target = m.target.trim_start_matches('/');
        if m.source.is_dir() {
            tar.append_dir_all(target, &m.source)?;
        } else {
            tar.append_path_with_name(&m.source, target)?;
        }
    }
    tar.into_inner()
}

async fn out(State(slots): State<Slots>, UrlPath(token): UrlPath<String>, body: Bytes) -> Response {
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
    match tokio::task::spawn_blocking(move || unpack_out(&body, &dir)).await {
        Ok(Ok(n)) => (StatusCode::OK, format!("{n} files\n")).into_response(),
        Ok(Err(e)) => refuse(StatusCode::BAD_REQUEST, e),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Writes the returned files into `dir`: plain names, regular files, a bounded count, each
/// created anew (a link or anything else already there is removed, never followed).
fn unpack_out(tar: &[u8], dir: &Path) -> Result<usize, String> {
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
            &tar_of(&[("hints", b"sandpen-collect: head abc\n"), ("done", b"0\n")]),
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
            assert!(unpack_out(&tar, d).is_err(), "{bad}");
        }
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
        assert_eq!(put(tar_of(&[("done", b"0\n")])).await.unwrap().status(), 200);
        assert!(ex.returned(&url));
        assert_eq!(std::fs::read_to_string(out.join("done")).unwrap(), "0\n");
        assert_eq!(
            put(tar_of(&[("done", b"1\n")])).await.unwrap().status(),
            409,
            "taken once"
        );
        let wrong = format!("http://{}/v1/{}/files", ex.addr(), "0".repeat(64));
        assert_eq!(client.get(wrong.parse().unwrap()).await.unwrap().status(), 404);
    }
}
