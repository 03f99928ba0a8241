//! `sandpen gateway`: the program in the gateway container. One socket serves both jobs:
//! `CONNECT` and absolute-form requests are the egress proxy (`proxy`), anything else is the
//! model API (`api`). Commands arrive on stdin; reports leave on stdout; the end of stdin
//! (sandpen gone) ends the gateway.

mod api;
mod body;
mod exchange;
mod limits;
mod out;
mod proxy;
mod route;
mod state;
mod upstream;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;

use self::body::Body;
use self::state::State;
use super::protocol::{Command, Endpoint, Report};

/// Serves until stdin ends. `listen` None: where arrives as the first `listen` command.
/// `commands`: a file of the commands instead (a Swarm secret: a service has no stdin); the
/// gateway then serves until it is stopped.
pub async fn run(listen: Option<Endpoint>, commands: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let state = Arc::new(State::new(std::io::stdout()));
    let clients = Arc::new(upstream::Upstream::default());
    let warm = clients.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.get().await {
            eprintln!("sandpen gateway: {e}; model requests will be answered 502");
        }
    });
    let (told, where_to) = tokio::sync::oneshot::channel();
    let mut commands = match commands {
        Some(file) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading its commands from {}: {e}", file.display()))?;
            text.lines().for_each(|l| apply_line(&state, l, &mut None));
            tokio::spawn(std::future::pending())
        }
        None => tokio::spawn(read_commands(state.clone(), told)),
    };
    let listen = match listen {
        Some(on) => on,
        None => tokio::select! {
            on = where_to => on?,
            _ = &mut commands => return Ok(()),
        },
    };
    let listener = Listener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?;
    state.report(&Report::Ready {
        addr: listener.said(&listen)?,
    });
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok(conn) = accepted else { continue };
                let Ok(open) = connections.clone().try_acquire_owned() else {
                    conn.turn_away();
                    continue;
                };
                let (state, clients) = (state.clone(), clients.clone());
                tokio::spawn(async move {
                    let _open = open;
                    match conn {
                        Conn::Tcp(s) => serve_connection(s, state, clients).await,
                        Conn::Unix(s) => serve_connection(s, state, clients).await,
                    }
                });
            }
            _ = &mut commands => return Ok(()),
        }
    }
}

/// Connections the gateway serves at once, from all tasks (each task also has its own limit of
/// requests in flight, `state::PER_TASK`).
const CONNECTIONS: usize = 1024;

/// One task connection, HTTP/1 with upgrades (the proxy's `CONNECT` tunnels).
async fn serve_connection<S>(stream: S, state: Arc<State>, clients: Arc<upstream::Upstream>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(state.clone(), clients.clone(), req));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// A socket is made connectable by every uid: the tasks' uid differs from the gateway's,
    /// and what may pass is decided per request, by token. Its directory decides who gets to
    /// it at all (`relay::Placement`).
    async fn bind(on: &Endpoint) -> std::io::Result<Self> {
        Ok(match on {
            Endpoint::Tcp(addr) => Self::Tcp(tokio::net::TcpListener::bind(addr).await?),
            Endpoint::Unix(path) => {
                let l = tokio::net::UnixListener::bind(path)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                Self::Unix(l)
            }
        })
    }

    fn said(&self, on: &Endpoint) -> std::io::Result<String> {
        Ok(match self {
            Self::Tcp(l) => l.local_addr()?.to_string(),
            Self::Unix(_) => on.to_string(),
        })
    }

    async fn accept(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Self::Tcp(l) => Conn::Tcp(l.accept().await?.0),
            Self::Unix(l) => Conn::Unix(l.accept().await?.0),
        })
    }
}

impl Conn {
    /// The answer to a connection over [`CONNECTIONS`]: written at once if the socket takes it
    /// (it is small), never waited for, then the connection is closed.
    fn turn_away(self) {
        let body = format!(
            "{{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"sandpen \
             gateway: {CONNECTIONS} connections are open, the most it serves; retry when one has ended\"}}}}"
        );
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        );
        let _ = match &self {
            Self::Tcp(s) => s.try_write(answer.as_bytes()),
            Self::Unix(s) => s.try_write(answer.as_bytes()),
        };
    }
}

/// Applies commands until stdin ends; the first `listen` goes to `told`.
async fn read_commands(state: Arc<State>, told: tokio::sync::oneshot::Sender<Endpoint>) {
    let mut told = Some(told);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        apply_line(&state, &line, &mut told);
    }
}

fn apply_line(state: &State, line: &str, told: &mut Option<tokio::sync::oneshot::Sender<Endpoint>>) {
    match serde_json::from_str::<Command>(line) {
        Ok(Command::Listen { on }) => match told.take() {
            Some(t) => drop(t.send(on)),
            None => eprintln!("sandpen gateway: already listening; {on} ignored"),
        },
        Ok(Command::Exchange { addr }) => exchange::set(addr),
        Ok(cmd) => {
            let ack = match &cmd {
                Command::Admit { task, .. } => Some(Report::Admitted { task: task.clone() }),
                Command::Release { task } => Some(Report::Released { task: task.clone() }),
                _ => None,
            };
            match state.apply(cmd) {
                Ok(()) => ack.into_iter().for_each(|a| state.report(&a)),
                Err(e) => eprintln!("sandpen gateway: {e}"),
            }
        }
        Err(e) => eprintln!("sandpen gateway: an unreadable command ({e})"),
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
    } else if exchange::passes(req.uri().path()) {
        exchange::forward(req).await
    } else {
        api::forward(&state, &clients, req).await
    })
}
