//! A dead run's exchange, opened again by `sandpen gc`: at the address the run's services were
//! given, with the tokens the run kept (`RunDir::swarm_tokens`), so that the work each task's
//! entry step still offers (`entry::offer_out`) lands in its out directory as it would have
//! in the live run, and `gc` imports it from there as it imports any task's.

use std::net::SocketAddr;

use super::{Delivery, Exchange};
use crate::workspace::RunDir;

/// The run's exchange again, serving only the return of its tasks' work; None when the run
/// kept no tokens (not a Swarm run, or one of an older sandpen) or when this machine cannot
/// listen where it listened (then the work stays on the nodes until the offer ends: said).
pub async fn reopen(layout: &RunDir) -> Option<Exchange> {
    let text = std::fs::read_to_string(layout.swarm_tokens()).ok()?;
    let tasks: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    let addr = tasks.first().and_then(|(url, _)| addr_of(url))?;
    let exchange = match Exchange::start(addr).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "warning: cannot listen at {addr} again to take the work the run's tasks offer ({e}): \
                 run `sandpen gc` on the machine of that address while it is free"
            );
            return None;
        }
    };
    for (url, task) in tasks {
        exchange.adopt(
            url,
            Delivery {
                task: task.to_string(),
                workspace: layout.checkout(task),
                mounts: Vec::new(),
                out: Some(layout.collect_out(task)),
            },
        );
    }
    Some(exchange)
}

/// `ADDR` of `http://ADDR/v1/TOKEN`.
fn addr_of(url: &str) -> Option<SocketAddr> {
    url.strip_prefix("http://")?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn the_kept_tokens_and_no_other_return_work_to_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path());
        std::fs::create_dir_all(layout.collect_out("t1")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v1/{}", "a".repeat(64));
        std::fs::write(layout.swarm_tokens(), format!("{url} t1\n")).unwrap();
        let exchange = reopen(&layout).await.expect("listening again");
        assert_eq!(exchange.addr().port(), port, "where the tasks send");
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<Bytes>>();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        tar.append_data(&mut h, "done", &b"0\n"[..]).unwrap();
        let tar = Bytes::from(tar.into_inner().unwrap());
        let put = |to: String| {
            let req = hyper::Request::put(format!("{to}/out"))
                .body(http_body_util::Full::new(tar.clone()))
                .unwrap();
            client.request(req)
        };
        let forged = format!("http://127.0.0.1:{port}/v1/{}", "b".repeat(64));
        assert_eq!(
            put(forged).await.unwrap().status(),
            404,
            "an unknown token takes nothing"
        );
        assert_eq!(put(url.clone()).await.unwrap().status(), 200);
        let done = std::fs::read_to_string(layout.collect_out("t1").join("done")).unwrap();
        assert_eq!(done, "0\n");
        assert!(exchange.returned(&url));
        // No tokens kept: nothing to listen for.
        std::fs::remove_file(layout.swarm_tokens()).unwrap();
        assert!(reopen(&layout).await.is_none());
    }

    #[test]
    fn the_address_is_read_from_a_url() {
        let url = "http://10.1.2.3:4567/v1/abc";
        assert_eq!(super::addr_of(url), Some("10.1.2.3:4567".parse().unwrap()));
        assert_eq!(super::addr_of("junk"), None);
    }
}
