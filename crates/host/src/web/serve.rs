//! The listener: accepts TCP connections (TLS when configured) and serves
//! HTTP/1.1 on each with hyper, so that the port stays reachable when it
//! is exposed to the internet:
//!
//! - a request's headers must arrive within `header_timeout` (hyper's
//!   header-read timer, from the connection's start or the request's first
//!   byte), and a keep-alive connection idle for `idle_timeout` is closed;
//! - at most `max_connections` are served at once (fewer if the open-file
//!   limit is lower); past it the idlest connection (no request under way,
//!   quiet the longest) is closed to admit the new one, and a new one is
//!   refused only when every connection is busy (while shed connections
//!   are still closing, accepting pauses up to a second so that new ones
//!   wait in the backlog rather than being reset);
//! - accept errors (EMFILE: out of file descriptors) are logged once per
//!   burst and recovered from.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{router, tls};
use crate::app::{AppState, ConnectionStats};
use crate::config::ServerConfig;

/// File descriptors kept for everything but connections (the state store,
/// plugin files, the watcher, outbound requests).
const RESERVED_FDS: u64 = 128;

/// How long the accept loop waits for shed connections to give their
/// descriptors back before it refuses a new one.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Accept errors are logged at most this often.
const LOG_ACCEPT_ERRORS_EVERY: Duration = Duration::from_secs(10);

/// Serves the API and the dashboard on `listener` until `shutdown` completes: then stops
/// accepting, ends event streams, and lets requests in flight finish
/// within `[server] shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let server = state.host.config().server.clone();
    let cap = connection_cap(server.max_connections);
    state.connections.max.store(cap, Ordering::Relaxed);
    let tls = match &server.tls {
        Some(files) => Some(
            tls::acceptor(files, state.shutdown.clone())
                .await
                .map_err(io::Error::other)?,
        ),
        None => None,
    };
    let connections = Arc::new(Connections::new(cap, state.connections.clone()));
    // Every request body must arrive within body_timeout (extractors
    // included), so a stalled body cannot hold a busy connection.
    let app = router(state.clone()).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        server.body_timeout,
    ));
    let stop = state.shutdown.clone();
    let forget_clients = spawn_forget_idle_clients(&state);
    let mut accept_errors = Burst::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors: an idle connection gives one back.
                    accept_errors.log(&error);
                    connections.shed_idlest();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = tokio::select! {
            () = &mut shutdown => break,
            admitted = connections.admit_when_drained() => admitted,
        };
        let Some(conn) = admitted else {
            drop(stream);
            continue;
        };
        let serving = Serving {
            app: app.clone(),
            peer,
            conn,
            connections: connections.clone(),
            server: server.clone(),
            stop: stop.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => serving.run(stream).await,
                Some(acceptor) => {
                    // A connection shed (or timed out) mid-handshake closes
                    // at once: the cap counts it until then.
                    let handshake = acceptor.accept(stream);
                    let limit = serving.server.header_timeout;
                    tokio::select! {
                        done = tokio::time::timeout(limit, handshake) => match done {
                            Ok(Ok(stream)) => serving.run(stream).await,
                            Ok(Err(error)) => tracing::debug!(%peer, "TLS handshake failed: {error}"),
                            Err(_) => {}
                        },
                        () = serving.conn.close.notified() => {}
                    }
                }
            }
        });
    }
    stop.cancel();
    forget_clients.abort();
    // Requests in flight finish, within the grace: one held up by a stuck
    // firing must not keep the host from stopping.
    let grace = server.shutdown_grace;
    if tokio::time::timeout(grace, connections.closed_all())
        .await
        .is_err()
    {
        let open = state.connections.open.load(Ordering::Relaxed);
        tracing::warn!(
            open,
            "connections still busy after [server] shutdown_grace; closing them"
        );
    }
    Ok(())
}

/// The cap on connections: `configured`, lowered to fit the open-file limit.
fn connection_cap(configured: usize) -> usize {
    let Some(limit) = open_file_limit() else {
        return configured;
    };
    let fits = limit.saturating_sub(RESERVED_FDS).max(limit / 2).max(1);
    let cap = configured.min(usize::try_from(fits).unwrap_or(usize::MAX));
    if cap < configured {
        tracing::info!(
            "serving at most {cap} connections at once (the open-file limit is {limit}; \
             [server] max_connections is {configured})"
        );
    }
    cap
}

/// The soft limit on open files (RLIMIT_NOFILE), if known.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Raises the soft limit on open files to the hard limit; returns both
/// (before and after) for the log.
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Some((before, before));
            }
        }
        Some((before, limit.rlim_cur))
    }
}

fn spawn_forget_idle_clients(state: &AppState) -> tokio::task::JoinHandle<()> {
    let limits = state.rate_limits.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticks.tick().await;
            limits.forget_idle_clients();
        }
    })
}

/// Logs an error once per burst, with how many were not logged.
#[derive(Default)]
struct Burst {
    logged: Option<Instant>,
    unlogged: u64,
}

impl Burst {
    fn log(&mut self, error: &io::Error) {
        if self
            .logged
            .is_some_and(|at| at.elapsed() < LOG_ACCEPT_ERRORS_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        let hint = match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => {
                " (out of file descriptors: raise LimitNOFILE, or lower [server] max_connections)"
            }
            _ => "",
        };
        tracing::error!(
            also = self.unlogged,
            "cannot accept connections: {error}{hint}; closing idle ones and retrying"
        );
        self.logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// One open connection, as the cap and the idle timer see it.
struct Conn {
    id: u64,
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last_active_ms: AtomicU64,
    /// Requests under way (their response bodies included).
    in_flight: AtomicUsize,
    /// Requests started.
    requests: AtomicU64,
    /// Asked to close (shed for a new connection).
    close: tokio::sync::Notify,
    /// Set once asked, so that the next shed picks another.
    closing: std::sync::atomic::AtomicBool,
}

impl Conn {
    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// What [`Connections::admit`] decided for a new connection.
enum Admission {
    Admitted(Arc<Conn>),
    /// Over the cap's margin: connections asked to close have not closed yet.
    Draining,
    /// Every connection has a request under way.
    Busy,
}

/// The open connections.
struct Connections {
    cap: usize,
    next_id: AtomicU64,
    open: Mutex<std::collections::HashMap<u64, Arc<Conn>>>,
    stats: Arc<ConnectionStats>,
    all_closed: tokio::sync::Notify,
    closed_one: tokio::sync::Notify,
    shed_log: Mutex<Option<Instant>>,
}

impl Connections {
    fn new(cap: usize, stats: Arc<ConnectionStats>) -> Self {
        Self {
            cap,
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
            stats,
            all_closed: tokio::sync::Notify::new(),
            closed_one: tokio::sync::Notify::new(),
            shed_log: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection, waiting (up to [`DRAIN_WAIT`]) while
    /// connections asked to close still hold their descriptors: the accept
    /// loop pauses and new connections queue in the kernel's backlog
    /// instead of being reset. `None` when every connection is busy.
    async fn admit_when_drained(&self) -> Option<Arc<Conn>> {
        let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            let mut closed = pin!(self.closed_one.notified());
            closed.as_mut().enable();
            match self.admit() {
                Admission::Admitted(conn) => return Some(conn),
                Admission::Busy => return None,
                Admission::Draining => {
                    if tokio::time::timeout_at(deadline, closed).await.is_err() {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        self.log_shedding(
                            "refusing new connections: closing ones still hold descriptors",
                        );
                        return None;
                    }
                }
            }
        }
    }

    /// A place for a new connection: past the cap the idlest one is asked
    /// to close.
    fn admit(&self) -> Admission {
        let mut open = self.lock();
        // Those asked to close but not closed yet still hold descriptors:
        // past a small margin over the cap, wait until they are gone.
        if open.len() >= self.cap + self.cap / 16 + 8 {
            return Admission::Draining;
        }
        // Counting those asked to close but not closed yet would shed more
        // than needed; their descriptors are freed within a moment.
        if open.len() >= self.cap && Self::staying(&open) >= self.cap {
            if !Self::shed(&open) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                self.log_shedding("refusing new connections: every connection is busy");
                return Admission::Busy;
            }
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            self.log_shedding("closing the idlest connections to admit new ones");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            opened: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            close: tokio::sync::Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        open.insert(id, conn.clone());
        self.stats.open.store(open.len(), Ordering::Relaxed);
        Admission::Admitted(conn)
    }

    /// Asks the idlest connection to close; false if none is idle.
    fn shed(open: &std::collections::HashMap<u64, Arc<Conn>>) -> bool {
        let idlest = open
            .values()
            .filter(|c| c.is_idle() && !c.closing.load(Ordering::Relaxed))
            .max_by_key(|c| c.quiet_for());
        match idlest {
            Some(conn) => {
                // It stays in the map until its task ends.
                conn.closing.store(true, Ordering::Relaxed);
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Connections open and not asked to close.
    fn staying(open: &std::collections::HashMap<u64, Arc<Conn>>) -> usize {
        open.values()
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .count()
    }

    fn shed_idlest(&self) {
        if Self::shed(&self.lock()) {
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn log_shedding(&self, what: &str) {
        let mut logged = self.shed_log.lock().unwrap_or_else(|p| p.into_inner());
        if logged.is_none_or(|at| at.elapsed() >= LOG_ACCEPT_ERRORS_EVERY) {
            tracing::warn!(
                max_connections = self.cap,
                "connection limit reached: {what} ([server] max_connections)"
            );
            *logged = Some(Instant::now());
        }
    }

    fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        self.stats.open.store(open.len(), Ordering::Relaxed);
        self.closed_one.notify_waiters();
        if open.is_empty() {
            self.all_closed.notify_waiters();
        }
    }

    async fn closed_all(&self) {
        loop {
            let mut closed = pin!(self.all_closed.notified());
            closed.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            closed.await;
        }
    }
}

/// What serving one connection needs.
struct Serving {
    app: Router,
    peer: SocketAddr,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
    server: ServerConfig,
    stop: CancellationToken,
}

impl Serving {
    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Tracked {
            inner: stream,
            conn: self.conn.clone(),
        });
        let (app, peer, conn) = (self.app.clone(), self.peer, self.conn.clone());

        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let busy = Busy::new(conn.clone());
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                // The connection counts as busy until the body is sent
                // (event streams included).
                response.map(|r| {
                    r.map(|body| {
                        axum::body::Body::new(body.map_frame(move |f| {
                            let _ = &busy;
                            f
                        }))
                    })
                })
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.server.header_timeout)
            .keep_alive(true);
        let mut connection = pin!(builder.serve_connection(io, service));
        let mut draining = false;
        loop {
            let quiet_limit = match self.conn.requests.load(Ordering::Relaxed) {
                0 => self.server.header_timeout,
                _ => self.server.idle_timeout,
            };
            // Busy: a request's body and handler have their own timeouts;
            // look again after a whole quiet period.
            let check_in = match self.conn.is_idle() {
                true => quiet_limit.saturating_sub(self.conn.quiet_for()),
                false => quiet_limit,
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, "connection ended: {error}");
                    }
                    break;
                }
                () = self.conn.close.notified(), if !draining => {
                    if self.conn.is_idle() {
                        break;
                    }
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = self.stop.cancelled(), if !draining => {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = tokio::time::sleep(check_in) => {
                    if self.conn.is_idle() && self.conn.quiet_for() >= quiet_limit {
                        self.connections.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
}

/// The connection leaves the map however serving ends (a panic included).
impl Drop for Serving {
    fn drop(&mut self) {
        self.connections.remove(self.conn.id);
    }
}

/// Marks a connection busy while a request (and its response body) is
/// under way.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        conn.requests.fetch_add(1, Ordering::Relaxed);
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that notes when bytes last moved.
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
