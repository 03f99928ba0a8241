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
    #[test]
    fn the_address_is_read_from_a_url() {
        let url = "http://10.1.2.3:4567/v1/abc";
        assert_eq!(super::addr_of(url), Some("10.1.2.3:4567".parse().unwrap()));
        assert_eq!(super::addr_of("junk"), None);
    }
}
