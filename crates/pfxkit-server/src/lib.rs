//! `pfxkit serve`: the catalog behind a Keyfactor-Command-compatible HTTP API
//! (the API specification).
//!
//! Layers, top down: [`Server`] accepts TCP connections (bounded), terminates TLS (rustls,
//! HTTP/1.1 and HTTP/2 by ALPN) and serves each connection with hyper; every request passes
//! through one function (`api::handle`) that checks the Keyfactor headers, authenticates the
//! caller ([`auth`]), routes, and maps every error to a status and Keyfactor's
//! `{"ErrorCode", "Message"}` body in one place ([`error`]). Handlers are thin: they parse the
//! request and call the catalog's [`Service`] — always on the blocking pool, never on the async
//! threads — which decides. A runner task runs due jobs ([`runner`]).
//!
//! Shutdown: [`Server::run`] returns once its shutdown future resolves, no new connection is
//! accepted, connections in flight have finished their requests (or [`ServerLimits::drain`]
//! passed) and the runner has finished the batch it was running.

mod agent;
mod api;
pub mod auth;
mod body;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod openapi;
mod query;
pub mod runner;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use crate::error::ServerError;
use pfxkit_catalog::service::Service;

/// Every bound the network controls, with its default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Largest request body (default 1 MiB); larger is a 413.
    pub max_body: usize,
    /// Connections served at once (default 256); more are closed on accept.
    pub max_connections: usize,
    /// Time to finish the TLS handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Time to send a request's headers (default 10 s): slow-loris clients are cut off.
    pub header_timeout: Duration,
    /// Time to answer one request, body upload included (default 60 s): 408 after it.
    pub request_timeout: Duration,
    /// How long shutdown waits for requests in flight and the runner (default 8 s, so the
    /// process exits within the 10 s the spec allows).
    pub drain: Duration,
    /// Password verifications (Argon2id) running at once (default 2).
    pub max_verifications: usize,
    /// How long verified Basic credentials are accepted without a new verification
    /// (default 60 s): a removed user or changed password takes effect within it.
    pub credential_cache: Duration,
    /// How often the runner looks for due jobs (default 250 ms).
    pub runner_interval: Duration,
    /// How often the runner checks the renewal policies (default 1 h; the first check runs at
    /// start): certificates inside their policy's window are renewed and replaced.
    pub renewal_interval: Duration,
    /// Largest page of a list (default 1000).
    pub max_page: usize,
    /// Requests doing catalog work at once (default: twice the CPUs, at least 2). The rest
    /// wait their turn in arrival order: a fair queue in front of the blocking pool keeps the
    /// slowest reads near the median under load (an unfair lock inside let some wait many
    /// rounds) and bounds the blocking threads, and with them memory.
    pub catalog_workers: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_body: 1024 * 1024,
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(8),
            max_verifications: 2,
            credential_cache: Duration::from_secs(60),
            runner_interval: Duration::from_millis(250),
            renewal_interval: Duration::from_secs(3600),
            max_page: 1000,
            catalog_workers: std::thread::available_parallelism()
                .map_or(2, std::num::NonZeroUsize::get)
                .saturating_mul(2)
                .max(2),
        }
    }
}

/// How to serve.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// TLS; `None` is plain HTTP, allowed only on a loopback address.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Run due jobs in the server.
    pub runner: bool,
    /// The bounds.
    pub limits: ServerLimits,
    /// The `StoreMachine` / `ClientMachine` of the stores (their files are on this host).
    pub machine: String,
}

impl ServerConfig {
    /// A configuration listening on `listen` with `tls` (or plain HTTP), the runner on.
    pub fn new(listen: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        ServerConfig {
            listen,
            tls,
            runner: true,
            limits: ServerLimits::default(),
            machine: host_name(),
        }
    }

    /// With or without the job runner.
    #[must_use]
    pub fn runner(mut self, on: bool) -> Self {
        self.runner = on;
        self
    }

    /// With these limits.
    #[must_use]
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// This host's name, as the stores' machine.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// What every request shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) service: Arc<Service>,
    pub(crate) auth: auth::Authenticator,
    pub(crate) limits: ServerLimits,
    pub(crate) machine: String,
    pub(crate) hub: agent::Hub,
    /// Turns at catalog work, handed out first come, first served (tokio's semaphore is fair).
    pub(crate) catalog_work: Semaphore,
}

impl State {
    /// Runs catalog work on the blocking pool once it is this request's turn (see
    /// [`ServerLimits::catalog_workers`]).
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Service) -> Result<T, error::ApiError> + Send + 'static,
    ) -> Result<T, error::ApiError> {
        let internal =
            || error::ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        // Never closed: an error here would be a bug, answered as one.
        let _turn = self.catalog_work.acquire().await.map_err(|_| internal())?;
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || f(&service))
            .await
            .map_err(|_| internal())?
    }
}

/// Counters of a server (see [`Server::stats`]).
#[derive(Clone)]
pub struct Stats(Arc<State>);

impl Stats {
    /// Password verifications (Argon2id runs) made since start: cached credentials make none.
    pub fn password_verifications(&self) -> u64 {
        self.0.auth.verifications()
    }
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("password_verifications", &self.password_verifications())
            .finish()
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    state: Arc<State>,
}

impl Server {
    /// Binds the listening socket.
    ///
    /// # Errors
    /// [`ServerError::Config`] for plain HTTP on a non-loopback address; [`ServerError::Io`]
    /// when the address cannot be bound.
    pub async fn bind(config: ServerConfig, service: Service) -> Result<Server, ServerError> {
        if config.tls.is_none() && !config.listen.ip().is_loopback() {
            return Err(ServerError::Config(format!(
                "plain HTTP is allowed only on a loopback address, not {}",
                config.listen
            )));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServerError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
        let state = Arc::new(State {
            service: Arc::new(service),
            auth: auth::Authenticator::new(&config.limits)?,
            limits: config.limits.clone(),
            machine: config.machine.clone(),
            hub: agent::Hub::new(),
            catalog_work: Semaphore::new(config.limits.catalog_workers.max(1)),
        });
        Ok(Server {
            listener,
            config,
            state,
        })
    }

    /// A handle on the server's counters, valid while and after it runs.
    pub fn stats(&self) -> Stats {
        Stats(self.state.clone())
    }

    /// The address actually bound (port 0 resolved).
    ///
    /// # Errors
    /// [`ServerError::Io`] when the socket cannot say.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener
            .local_addr()
            .map_err(|e| ServerError::Io(e.to_string()))
    }

    /// The API base URL, e.g. `https://127.0.0.1:40123/KeyfactorAPI`.
    ///
    /// # Errors
    /// As [`Server::local_addr`].
    pub fn base_url(&self) -> Result<String, ServerError> {
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(format!("{scheme}://{}/KeyfactorAPI", self.local_addr()?))
    }

    /// Serves until `shutdown` resolves, then drains (see the crate docs).
    ///
    /// # Errors
    /// None in practice: accept errors are logged and retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            listener,
            config,
            state,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = config
            .runner
            .then(|| tokio::spawn(runner::run(state.clone(), stop_rx.clone())));
        let hub = tokio::spawn(agent::watch_due(state.clone(), stop_rx.clone()));
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.limits.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(64);
        let builder = Arc::new(builder);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                tracing::warn!(peer = %peer.ip(), "connection limit reached: connection closed");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let state = state.clone();
            let builder = builder.clone();
            let acceptor = acceptor.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            state.limits.handshake_timeout,
                            acceptor.accept(tcp),
                        )
                        .await;
                        match handshake {
                            Ok(Ok(tls)) => {
                                // The client certificate the handshake verified (agents only).
                                let cert = tls
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(<[_]>::first)
                                    .map(|c| Arc::new(c.as_ref().to_vec()));
                                serve_connection(&builder, tls, peer, state, stop, cert).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer.ip(), error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer.ip(), "TLS handshake timed out");
                            }
                        }
                    }
                    None => serve_connection(&builder, tcp, peer, state, stop, None).await,
                }
                drop(permit);
            });
        }
        drop(listener);
        state.hub.stop();
        let _ = stop_tx.send(true);
        let deadline = tokio::time::Instant::now() + config.limits.drain;
        // Every connection holds a permit until it ends: all permits back means all done.
        let max = u32::try_from(config.limits.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout_at(deadline, connections.acquire_many(max))
            .await
            .is_err()
        {
            tracing::warn!("shutdown: connections still open after the drain time");
        }
        let _ = tokio::time::timeout_at(deadline, hub).await;
        if let Some(runner) = runner
            && tokio::time::timeout_at(deadline, runner).await.is_err()
        {
            tracing::warn!("shutdown: the job runner's batch is left to be resumed");
        }
        Ok(())
    }
}

async fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    stream: S,
    peer: SocketAddr,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    client_cert: Option<Arc<Vec<u8>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        api::handle(
            state.clone(),
            req.map(body::req_body),
            peer,
            client_cert.clone(),
        )
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            // Finish the requests in flight, then close (idle keep-alive closes at once).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer.ip(), error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Threat: a flood of requests, each taking a thread of the blocking pool (tokio allows
    /// 512) for catalog work: memory grows with the flood, and the catalog's lock decides
    /// unfairly who goes next, so some requests wait many rounds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn catalog_work_runs_at_most_catalog_workers_at_once_and_all_of_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::init(&dir.path().join("catalog")).unwrap();
        let limits = ServerLimits {
            catalog_workers: 2,
            ..ServerLimits::default()
        };
        let state = Arc::new(State {
            service: Arc::new(service),
            auth: auth::Authenticator::new(&limits).unwrap(),
            catalog_work: Semaphore::new(limits.catalog_workers),
            limits,
            machine: "here".into(),
            hub: agent::Hub::new(),
        });
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let requests: Vec<_> = (0..32)
            .map(|_| {
                let (state, running, peak) = (state.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    state
                        .blocking(move |service| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                            let users = service.catalog().users().map_err(error::ApiError::from);
                            running.fetch_sub(1, Ordering::SeqCst);
                            users.map(|u| u.len())
                        })
                        .await
                })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap().unwrap(), 0);
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "at most two at once");
    }
}
