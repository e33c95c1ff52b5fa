//! The listening socket with a bound on open connections. Above the bound a
//! new connection gets a canned `503` with `Retry-After` and is closed at
//! once, before any HTTP is parsed: at ten times the server's capacity,
//! parsing, routing and refusing each request in full took the server's
//! core whole, and connections waited in the kernel's accept queue for
//! seconds. Refusing at accept, on a thread of its own, costs a write and a
//! close. Since idle keep-alive connections count against the bound, a
//! connection that waits too long for its next request is closed.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 85\r\n\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"the server is busy; try again in a moment\"}}";

/// How many finished handshakes the kernel may hold for the accepting
/// thread; Linux lowers it to `net.core.somaxconn` (4096 by default). The
/// standard library's and tokio's `bind` ask for 128: at ten times capacity
/// with every refused client reconnecting, 128 connections arrived in under
/// 10 ms, the queue overflowed and the kernel dropped handshakes, which the
/// client's TCP retried after 1, 3 and 7 seconds.
pub const ACCEPT_BACKLOG: u32 = 65_535;

/// How much lower than the accepting thread the threads that serve
/// requests run (a nice value added to their creator's). Under ten times
/// capacity the accepting thread needs about a fifth of a core to refuse
/// twenty thousand connections a second; at equal priority with the
/// runtime's worker and the searches running, Linux gave it a quarter only
/// when few others were runnable, the kernel's queue of handshakes grew,
/// and refusals waited seconds. At 5 lower it is given about half a core
/// whenever it wants one, and uses only what it needs.
pub const REQUEST_NICE: i32 = 5;

/// How much lower than the accepting thread the search indexer runs: five
/// below the threads that serve requests. Each refresh at busy desks turns
/// about 1,500 availability changes into the index (some 25 ms of reads
/// and work); at the requests' priority and on their connections that
/// burst took a core from the desks twice a second, and every desk's
/// answer waited behind it. On a thread of its own at this priority, with
/// connections of its own, p99 at 16 closed-loop SQLite desks went from
/// 12.1-14.6 ms to 9.7-11.6 ms (three interleaved runs each, throughput
/// unchanged). With both cores busy Linux still gives it about a tenth of
/// a core, several times what 3,000 changes a second need.
pub const INDEXER_NICE: i32 = REQUEST_NICE + 5;

/// Lowers the calling thread's priority by [`REQUEST_NICE`]; for every
/// thread of the async runtime (`on_thread_start`), so that the accepting
/// thread, started by the main thread, outranks them.
pub fn run_below_the_accepting_thread() {
    lower_this_thread(REQUEST_NICE);
}

/// Adds `by` to the calling thread's nice value (threads it starts later
/// inherit it). So a blocking thread that a runtime worker starts (for a
/// search, or SQLite's log flush) is lowered twice, to `2 * REQUEST_NICE`
/// below the main thread: under overload the workers, which refuse what
/// the admission gate turns away, outrank the searches they let in. (Set
/// relative to the main thread instead, the searches ran beside the
/// workers: at 10x the search capacity 4,711 refusals took over 100 ms,
/// against 0 and 635 in two runs of the build before on the same day; see
/// docs/benchmarks.md.) Raising one's own nice value needs no privilege;
/// were it refused, the thread would merely keep its priority. Elsewhere
/// than Linux this does nothing.
pub fn lower_this_thread(by: i32) {
    #[cfg(target_os = "linux")]
    {
        let me = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
        let _ = rustix::process::setpriority_process(Some(me), (now + by).min(19));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

/// Listens on `addr` (`host:port`; the first address it resolves to that
/// can be bound) with [`ACCEPT_BACKLOG`].
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(ACCEPT_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the address resolves to nothing",
        )
    }))
}

/// How many connections may be open and how long one may sit idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Connections open at once (at least 1); above it a new one gets the
    /// canned refusal.
    pub max_open: usize,
    /// How long a connection may wait for its next request once it has had
    /// its answer (or, new, for its first); then it is closed. Idle
    /// keep-alive connections count against `max_open`: browsers keep
    /// theirs for minutes, and a terminal room's would otherwise fill the
    /// bound while the server has nothing to do.
    pub keep_alive: Duration,
}

/// A listener that serves at most `max` connections at once. Connections
/// are accepted, and refused above the bound, on a thread of their own: on
/// a saturated core the operating system still gives it its share, so a
/// refusal comes at once instead of after every request the server is
/// working on.
pub struct BoundedListener {
    incoming: tokio::sync::mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
    local: SocketAddr,
    keep_alive: Duration,
}

impl BoundedListener {
    /// Bounds `inner` to `limits` and starts the
    /// accepting thread; it ends with the server (the first connection after
    /// the listener is dropped is closed and the thread returns).
    pub fn new(inner: TcpListener, limits: Connections) -> std::io::Result<BoundedListener> {
        let max = limits.max_open;
        let listener = inner.into_std()?;
        listener.set_nonblocking(false)?;
        let local = listener.local_addr()?;
        let open = Arc::new(AtomicUsize::new(0));
        let max = max.max(1);
        let (tx, incoming) = tokio::sync::mpsc::channel(256);
        let counter = Arc::clone(&open);
        let (running, started) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("shoko-accept".into())
            .spawn(move || {
                use std::io::Write;
                let _ = running.send(());
                for conn in listener.incoming() {
                    let stream = match conn {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot accept a connection");
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            continue;
                        }
                    };
                    if tx.is_closed() {
                        return;
                    }
                    if counter.load(Ordering::Relaxed) >= max {
                        // A fresh socket's send buffer takes 200 bytes at once.
                        let _ = stream.set_nonblocking(true);
                        let _ = (&stream).write(REFUSAL);
                        metrics::counter!("shoko_connections_refused_total").increment(1);
                        continue;
                    }
                    let Ok(addr) = stream.peer_addr() else {
                        continue;
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if tx.blocking_send((stream, addr)).is_err() {
                        counter.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                }
            })?;
        // Once it runs it has its name and priority, and is accepting.
        started
            .recv()
            .map_err(|_| std::io::Error::other("the accepting thread stopped as it started"))?;
        Ok(BoundedListener {
            incoming,
            open,
            local,
            keep_alive: limits.keep_alive,
        })
    }
}

/// A served connection, counted until it closes, and ended (its reads see
/// the end of the stream) when it has waited `keep_alive` for a request
/// after its last answer. While a request is being worked on the last
/// thing on the connection was a read, so a slow answer is never cut
/// short; an answer whose client stops reading it for that long is.
pub struct CountedStream {
    inner: TcpStream,
    open: Arc<AtomicUsize>,
    keep_alive: Duration,
    /// The last thing that happened was a write (an answer), or nothing yet.
    answered: bool,
    /// Armed by each write, and by a new connection's first read that finds
    /// nothing.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl CountedStream {
    /// After a write: the idle clock starts again from here. It is armed
    /// at once, with the writer's waker: hyper has usually asked to read
    /// already (while the answer was being made) and will not ask again
    /// until it is woken.
    fn wrote(&mut self, written: &Poll<std::io::Result<usize>>, cx: &mut Context<'_>) {
        if let Poll::Ready(Ok(n)) = written
            && *n > 0
        {
            self.answered = true;
            let until = tokio::time::Instant::now() + self.keep_alive;
            let idle = match &mut self.idle {
                Some(idle) => {
                    idle.as_mut().reset(until);
                    idle
                }
                None => self.idle.insert(Box::pin(tokio::time::sleep_until(until))),
            };
            // Registers the waker; the deadline is in the future.
            let _ = idle.as_mut().poll(cx);
        }
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.answered = false;
                this.idle = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.answered => {
                let after = this.keep_alive;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                match idle.as_mut().poll(cx) {
                    // Waited long enough: the end of the stream, which
                    // hyper takes as the client having gone.
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&written, cx);
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&written, cx);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The peer of a connection, for `ConnectInfo` (the admission gate's
/// per-client rate).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, BoundedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, BoundedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        loop {
            let Some((stream, addr)) = self.incoming.recv().await else {
                // The accepting thread is gone: nothing more will come.
                std::future::pending::<()>().await;
                continue;
            };
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            match stream {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        CountedStream {
                            inner: stream,
                            open: Arc::clone(&self.open),
                            keep_alive: self.keep_alive,
                            answered: true,
                            idle: None,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot take an accepted connection");
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use shoko_testkit::my_nice;

    /// The nice value of each thread of this process named `name`.
    #[cfg(target_os = "linux")]
    fn nice_of(name: &str) -> Vec<i32> {
        shoko_testkit::thread_nice_values()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, nice)| nice)
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_accepting_thread_outranks_the_runtimes_threads() {
        let me = my_nice();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(run_below_the_accepting_thread)
            .build()
            .expect("a runtime");
        // As in `shoko serve`: the listener is made on the thread that
        // drives the runtime, which keeps the process's priority.
        let listener = runtime.block_on(async {
            let inner = bind("127.0.0.1:0").await.expect("bind");
            let limits = Connections {
                max_open: 4,
                keep_alive: Duration::from_secs(15),
            };
            BoundedListener::new(inner, limits).expect("a bounded listener")
        });
        let lower = (me + REQUEST_NICE).min(19);
        let worker = runtime.block_on(async { tokio::spawn(async { my_nice() }).await });
        assert_eq!(worker.expect("a task"), lower, "a worker thread");
        let blocking = runtime.block_on(async { tokio::task::spawn_blocking(my_nice).await });
        assert_eq!(
            blocking.expect("a blocking task"),
            lower,
            "a blocking thread"
        );
        // A blocking thread started by a worker thread (a fresh runtime's
        // first, so that none is reused): lowered again, below the workers.
        let fresh = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(run_below_the_accepting_thread)
            .build()
            .expect("a runtime");
        let from_a_worker = fresh.block_on(async {
            tokio::spawn(async { tokio::task::spawn_blocking(my_nice).await }).await
        });
        assert_eq!(
            from_a_worker.expect("a task").expect("a blocking task"),
            (lower + REQUEST_NICE).min(19),
            "a blocking thread started by a worker"
        );
        assert_eq!(nice_of("shoko-accept"), vec![me]);
        drop(listener);
    }

    /// Serves `app` on a bounded listener; its address.
    async fn serve(app: axum::Router, limits: Connections) -> SocketAddr {
        let listener = BoundedListener::new(bind("127.0.0.1:0").await.expect("bind"), limits)
            .expect("a bounded listener");
        let addr = axum::serve::Listener::local_addr(&listener).expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Sends one GET on `conn`; the status and whether the server said it
    /// closes the connection.
    async fn get(conn: &mut TcpStream) -> (u16, bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        // The test's answers are short: the head and body come together.
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before an answer: {got:?}");
            got.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&got).to_lowercase();
        let status = text[9..12].parse().expect("a status");
        (status, text.contains("connection: close"))
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_its_keep_alive_and_frees_its_place() {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = Connections {
            max_open: 1,
            keep_alive: Duration::from_millis(300),
        };
        let addr = serve(app, limits).await;
        let mut first = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(get(&mut first).await, (200, false));
        // Nothing more is sent: the server ends the connection.
        let mut rest = [0u8; 64];
        let end = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut first, &mut rest),
        )
        .await
        .expect("the idle connection was never closed");
        assert_eq!(end.expect("a clean end"), 0);
        // Its place is free again (the bound is one): a new connection is
        // served, not given the canned refusal. The count falls when the
        // server's side is dropped, just after the close was sent.
        let mut answer = (503, true);
        for _ in 0..1000 {
            let mut next = TcpStream::connect(addr).await.expect("connect");
            answer = get(&mut next).await;
            if answer.0 == 200 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(answer, (200, false));
    }

    #[tokio::test]
    async fn a_request_answered_after_longer_than_the_keep_alive_is_answered() {
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            "slow but sure"
        };
        let app = axum::Router::new().route("/", axum::routing::get(slow));
        let limits = Connections {
            max_open: 4,
            keep_alive: Duration::from_millis(200),
        };
        let addr = serve(app, limits).await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(get(&mut conn).await, (200, false));
        // And the connection is still there for the next request.
        assert_eq!(get(&mut conn).await, (200, false));
    }

    #[tokio::test]
    async fn the_kernel_holds_far_more_than_128_handshakes_for_the_accepting_thread() {
        // Nothing accepts: every connection that completes its handshake
        // waits in the listening socket's queue. With the standard
        // library's backlog of 128 the 130th would get no answer (the
        // kernel drops its handshake and the client retries for minutes).
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        let n = 1000.min(somaxconn);
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            let connected =
                tokio::time::timeout(std::time::Duration::from_secs(10), TcpStream::connect(addr))
                    .await;
            match connected {
                Ok(Ok(c)) => clients.push(c),
                other => panic!("connection {i} of {n} not taken into the queue: {other:?}"),
            }
        }
        assert_eq!(clients.len(), n);
    }

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(REFUSAL).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("a length");
        assert_eq!(body.len(), length);
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
