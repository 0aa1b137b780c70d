//! Opening the TCP listeners (spec §1.1): the configured address, else
//! `[::]` dual-stack when `ipv6`, falling back to `0.0.0.0`; `SO_REUSEADDR`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::error::Error;

/// Listen backlog (`connqueue`); the kernel caps it at `somaxconn`.
const BACKLOG: i32 = 4096;

/// Binds `port` (0 = any free port) as the spec describes.
pub(crate) async fn bind_tcp(
    address: Option<&str>,
    ipv6: bool,
    port: u16,
    what: &'static str,
) -> Result<TcpListener, Error> {
    let bind_err = |addr: String, source: io::Error| Error::Bind { what, addr, source };
    if let Some(address) = address {
        let host = address.trim_start_matches('[').trim_end_matches(']');
        let candidates: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| bind_err(format!("{address}:{port}"), e))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "address resolved to nothing");
        for addr in candidates {
            match bind_addr(addr) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        return Err(bind_err(format!("{address}:{port}"), last));
    }
    if ipv6 {
        let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        match bind_addr(any6) {
            Ok(l) => return Ok(l),
            Err(e) => {
                tracing::warn!("{what}: cannot bind {any6} ({e}); falling back to IPv4");
            }
        }
    }
    let any4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    bind_addr(any4).map_err(|e| bind_err(any4.to_string(), e))
}

fn bind_addr(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // Dual-stack regardless of the `bindv6only` sysctl.
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// The WebSocket listener: accepted connections get `TCP_NODELAY`.
///
/// Why: responses and events are small writes, often right after one
/// another. With Nagle's algorithm the second one waits for the client's
/// delayed ACK, up to 40 ms on Linux. This showed as 40 ms stalls of
/// `gatherCandidates` answers while candidates were trickling.
pub(crate) struct NoDelayListener(pub TcpListener);

impl axum::serve::Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%addr, "TCP_NODELAY not set: {e}");
        }
        (tcp, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_explicit_address_and_any_port() {
        let l = bind_tcp(Some("127.0.0.1"), true, 0, "ws").await.unwrap();
        let a = l.local_addr().unwrap();
        assert!(a.ip().is_loopback());
        assert_ne!(a.port(), 0);
        // SO_REUSEADDR: rebinding right after close works.
        drop(l);
        bind_tcp(Some("127.0.0.1"), true, a.port(), "ws").await.unwrap();
    }

    #[tokio::test]
    async fn binds_any_address_with_ipv6_fallback() {
        let l = bind_tcp(None, true, 0, "ws").await.unwrap();
        assert!(l.local_addr().unwrap().ip().is_unspecified());
        let l4 = bind_tcp(None, false, 0, "ws").await.unwrap();
        assert!(l4.local_addr().unwrap().is_ipv4());
    }

    #[tokio::test]
    async fn unresolvable_address_is_a_bind_error() {
        let e = bind_tcp(Some("no-such-host.invalid"), true, 0, "ws").await.unwrap_err();
        assert!(matches!(e, Error::Bind { .. }), "{e}");
    }
}
