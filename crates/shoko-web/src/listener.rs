//! The listening socket with a bound on open connections. Above the bound a
//! new connection gets a canned `503` with `Retry-After` and is closed at
//! once, before any HTTP is parsed: at ten times the server's capacity,
//! parsing, routing and refusing each request in full took the server's
//! core whole, and connections waited in the kernel's accept queue for
//! seconds. Refusing at accept, on a thread of its own, costs a write and a
//! close.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 85\r\n\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"the server is busy; try again in a moment\"}}";

/// A listener that serves at most `max` connections at once. Connections
/// are accepted, and refused above the bound, on a thread of their own: on
/// a saturated core the operating system still gives it its share, so a
/// refusal comes at once instead of after every request the server is
/// working on.
pub struct BoundedListener {
    incoming: tokio::sync::mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
    local: SocketAddr,
}

impl BoundedListener {
    /// Bounds `inner` to `max` open connections (at least 1) and starts the
    /// accepting thread; it ends with the server (the first connection after
    /// the listener is dropped is closed and the thread returns).
    pub fn new(inner: TcpListener, max: usize) -> std::io::Result<BoundedListener> {
        let listener = inner.into_std()?;
        listener.set_nonblocking(false)?;
        let local = listener.local_addr()?;
        let open = Arc::new(AtomicUsize::new(0));
        let max = max.max(1);
        let (tx, incoming) = tokio::sync::mpsc::channel(256);
        let counter = Arc::clone(&open);
        std::thread::Builder::new()
            .name("shoko-accept".into())
            .spawn(move || {
                use std::io::Write;
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
        Ok(BoundedListener {
            incoming,
            open,
            local,
        })
    }
}

/// A served connection, counted until it closes.
pub struct CountedStream {
    inner: TcpStream,
    open: Arc<AtomicUsize>,
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
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
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
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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
