//! `sandpen gateway`: the program in the gateway container. One port serves both jobs:
//! `CONNECT` and absolute-form requests are the egress proxy (`proxy`), anything else is the
//! model API (`api`). Commands arrive on stdin; reports leave on stdout; the end of stdin
//! (sandpen gone) ends the gateway.

mod api;
mod body;
mod limits;
mod out;
mod proxy;
mod route;
mod state;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;

use self::body::Body;
use self::state::State;
use super::protocol::{Command, Report};

/// Serves until stdin ends. `listen` None: the address arrives as the first `listen` command.
pub async fn run(listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let state = Arc::new(State::new(std::io::stdout()));
    let clients = Arc::new(upstream::Upstream::default());
    let warm = clients.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.get().await {
            eprintln!("sandpen gateway: {e}; model requests will be answered 502");
        }
    });
    let (told, where_to) = tokio::sync::oneshot::channel();
    let mut commands = tokio::spawn(read_commands(state.clone(), told));
    let listen = match listen {
        Some(addr) => addr,
        None => tokio::select! {
            addr = where_to => addr?,
            _ = &mut commands => return Ok(()),
        },
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?;
    state.report(&Report::Ready {
        addr: listener.local_addr()?.to_string(),
    });
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let Ok(open) = connections.clone().try_acquire_owned() else {
                    turn_away(&stream);
                    continue;
                };
                let (state, clients) = (state.clone(), clients.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let service = service_fn(move |req| handle(state.clone(), clients.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
            _ = &mut commands => return Ok(()),
        }
    }
}

/// Connections the gateway serves at once, from all tasks (each task also has its own limit of
/// requests in flight, `state::PER_TASK`).
const CONNECTIONS: usize = 1024;

/// The answer to a connection over [`CONNECTIONS`]: written at once if the socket takes it
/// (it is small), never waited for, then the connection is closed.
fn turn_away(stream: &tokio::net::TcpStream) {
    let body = format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"sandpen \
         gateway: {CONNECTIONS} connections are open, the most it serves; retry when one has ended\"}}}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Applies commands until stdin ends; the first `listen` goes to `told`.
async fn read_commands(state: Arc<State>, told: tokio::sync::oneshot::Sender<SocketAddr>) {
    let mut told = Some(told);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Command>(&line) {
            Ok(Command::Listen { addr }) => match told.take() {
                Some(t) => drop(t.send(addr)),
                None => eprintln!("sandpen gateway: already listening; {addr} ignored"),
            },
            Ok(cmd) => {
                let ack = match &cmd {
                    Command::Admit { task, .. } => Some(Report::Admitted { task: task.clone() }),
                    Command::Release { task } => Some(Report::Released { task: task.clone() }),
                    Command::Config { .. } | Command::Listen { .. } => None,
                };
                match state.apply(cmd) {
                    Ok(()) => ack.into_iter().for_each(|a| state.report(&a)),
                    Err(e) => eprintln!("sandpen gateway: {e}"),
                }
            }
            Err(e) => eprintln!("sandpen gateway: an unreadable command ({e})"),
        }
    }
}

async fn handle(
    state: Arc<State>,
    clients: Arc<upstream::Upstream>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(if req.method() == Method::CONNECT {
        proxy::connect(&state, req).await
    } else if req.uri().scheme().is_some() {
        proxy::forward(&state, req).await
    } else {
        api::forward(&state, &clients, req).await
    })
}
