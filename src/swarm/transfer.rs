//! The entry step's traffic with the run's exchange (through the task's gateway in gateway
//! mode): the task's files in, its cgroup's readings out once a second, and its out directory
//! back, offered again for a while when sandpen is gone.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;

use super::job::OUT_DIR as OUT;

/// How often the container's cgroup is read and sent.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A reading the exchange does not take within this is dropped.
const SAMPLE_SEND_LIMIT: Duration = Duration::from_secs(2);
/// How long the work is offered to an exchange that cannot be reached, and the longest wait
/// between two offers.
const OFFER_FOR: Duration = Duration::from_secs(15 * 60);
const OFFER_EVERY_MAX: Duration = Duration::from_secs(5);

/// Sends the out directory back; while the exchange cannot be reached (sandpen died), offers
/// it again, more and more seldom, for up to `OFFER_FOR`: `sandpen gc` listens again at the
/// same address with the run's tokens and takes it. An answer of the exchange, whatever it
/// is, ends the offer.
pub(super) async fn offer_out(client: &Http, url: &str) {
    use tokio::signal::unix::{SignalKind, signal};
    let until = Instant::now() + OFFER_FOR;
    let mut wait = Duration::from_millis(500);
    // A stop (gc removing the service) cuts a wait short: the exchange may be back.
    let mut term = signal(SignalKind::terminate()).ok();
    let mut said = false;
    loop {
        let Err(e) = send_out(client, url).await else {
            return;
        };
        let unreachable = e
            .chain()
            .any(|c| c.downcast_ref::<hyper_util::client::legacy::Error>().is_some());
        if !unreachable || Instant::now() >= until {
            eprintln!("sandpen entry: sending the result back: {e:#}");
            return;
        }
        if !std::mem::replace(&mut said, true) {
            eprintln!(
                "sandpen entry: the exchange at {} cannot be reached ({e:#}); offering the work \
                 again for up to {} min, for `sandpen gc`",
                host_of(url),
                OFFER_FOR.as_secs() / 60
            );
        }
        let stopped = async {
            match term.as_mut() {
                Some(t) => drop(t.recv().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped => {}
        }
        wait = (wait * 2).min(OFFER_EVERY_MAX);
    }
}

/// Sends a reading of the container's cgroup about once a second, from the command's start.
pub(super) async fn send_readings(client: Http, url: String) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        send_reading(&client, &url).await;
    }
}

/// One reading, sent; a reading that cannot be made or sent is a figure missing, not an error
/// of the task.
pub(super) async fn send_reading(client: &Http, url: &str) {
    let Some(reading) = super::sample::Reading::of_own_cgroup() else {
        return;
    };
    let Ok(body) = serde_json::to_vec(&reading) else {
        return;
    };
    let Ok(req) = hyper::Request::post(format!("{url}/stats")).body(whole(body)) else {
        return;
    };
    let _ = tokio::time::timeout(SAMPLE_SEND_LIMIT, client.request(req)).await;
}

/// Request bodies: whole, or streamed as they are made.
pub(super) type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub(super) type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

fn whole(data: Vec<u8>) -> Body {
    Full::new(Bytes::from(data))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The task's files, unpacked at `/` (the checkout into the workspace volume, the rest into
/// the service's tmpfs mounts): only into places delivered files may go.
pub(super) async fn fetch(client: &Http, url: &str) -> anyhow::Result<()> {
    let got = client
        .get(format!("{url}/files").parse()?)
        .await
        .map_err(|e| anyhow::anyhow!("fetching the task's files from {}: {e}", host_of(url)))?;
    if !got.status().is_success() {
        anyhow::bail!(
            "fetching the task's files: the exchange answered {}",
            got.status()
        );
    }
    // Unpacked as it comes: the files never sit whole in the task's memory.
    let from = super::pipe::reader(got.into_body());
    tokio::task::spawn_blocking(move || unpack(from, Path::new("/"))).await??;
    Ok(())
}

fn unpack(tar: impl std::io::Read, root: &Path) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let target = format!("/{}", path.display());
        if !super::job::deliverable(&target) {
            anyhow::bail!("the exchange sent {target}, outside the places it may fill");
        }
        // A place that exists (a mount point: root's, open to all) keeps its mode: only its
        // owner could change it.
        let here = root.join(&path);
        if entry.header().entry_type().is_dir() && here.is_dir() {
            continue;
        }
        // `unpack_in` refuses `..` and links out of the root.
        entry.unpack_in(root)?;
    }
    Ok(())
}

/// The out directory's regular files, sent back as they are packed (its result bundle may be
/// large: it never sits whole in the task's memory).
async fn send_out(client: &Http, url: &str) -> anyhow::Result<()> {
    let (sent, packing) = super::pipe::packed(|into| pack_out(Path::new(OUT), into));
    let frames = sent.map_ok(Frame::data);
    let req = hyper::Request::put(format!("{url}/out")).body(StreamBody::new(frames).boxed_unsync())?;
    let answer = client.request(req).await;
    let packed = packing.await?;
    // A request that failed explains a packing cut short, not the other way round.
    let answer = answer?;
    packed?;
    if !answer.status().is_success() {
        let why = answer.into_body().collect().await?.to_bytes();
        anyhow::bail!("the exchange answered: {}", String::from_utf8_lossy(&why).trim());
    }
    Ok(())
}

fn pack_out<W: std::io::Write>(dir: &Path, into: W) -> anyhow::Result<W> {
    let mut tar = tar::Builder::new(into);
    tar.follow_symlinks(false);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            tar.append_path_with_name(entry.path(), entry.file_name())?;
        }
    }
    let mut into = tar.into_inner()?;
    into.flush()?;
    Ok(into)
}

fn host_of(url: &str) -> &str {
    url.trim_start_matches("http://").split('/').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_go_only_where_deliveries_may() {
        let root = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "etc/passwd", &b"x\n"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let err = unpack(&tar[..], root.path()).unwrap_err();
        assert!(err.to_string().contains("/etc/passwd"), "{err}");
        assert!(!root.path().join("etc/passwd").exists());

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "workspace/a.txt", &b"a\n"[..]).unwrap();
        unpack(&b.into_inner().unwrap()[..], root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("workspace/a.txt")).unwrap(),
            "a\n"
        );
    }

    #[test]
    fn only_regular_files_of_the_out_directory_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("done"), "0\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("hints")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let tar = pack_out(dir.path(), Vec::new()).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["done"]);
    }
}
