//! STUN Binding for server-reflexive candidates, and one native peer's
//! TURN allocation (RFC 5766, to the server over UDP or TCP; the relayed
//! address is UDP either way), driven by the peer's network loop:
//! `turn-client-proto`'s sans-IO client on a socket of its own.
//!
//! Why a socket per allocation: a TURN server tells allocations apart by
//! the client's 5-tuple, and the loop's shared sockets carry every peer of
//! the loop, so two allocations cannot share one. The socket is registered
//! with the loop's poll: still no thread per endpoint.
//!
//! Over TCP (`?transport=tcp`, for networks that let no UDP out) the
//! allocation sends Send indications and never binds a channel: RFC 5766
//! pads ChannelData to 4 bytes on stream transports, which the client
//! library does not, while STUN messages are always 4-byte aligned.
//!
//! The relayed address becomes a `relay` candidate of the peer's str0m
//! state machine; what str0m transmits from it is wrapped for the server
//! here (a channel once bound, else a Send indication), and what the server
//! relays back is unwrapped and handed to str0m as if it had arrived on the
//! relayed address.

use std::borrow::Cow;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use openssl::ssl::{HandshakeError, MidHandshakeSslStream, SslConnector, SslMethod, SslStream, SslVerifyMode};
use turn_client_proto::api::{SendError, Transmit, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::client::TurnClient;
use turn_client_proto::prelude::*;
use turn_client_proto::stun::types::attribute::{ErrorCode, XorMappedAddress};
pub use turn_client_proto::stun::types::message::TransactionId;
use turn_client_proto::stun::types::message::{BINDING, Message, MessageClass, MessageWriteVec};
use turn_client_proto::stun::types::prelude::*;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::{Instant as TurnInstant, TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

use super::net::{MAX_TCP_QUEUE, PeerHandler};

/// A TURN server from KMS's `turnURL` (`user:password@address:port`,
/// optionally `?transport=udp|tcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnServer {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    /// Reach the server over TCP (`?transport=tcp`), or TLS over TCP
    /// (`?transport=tls`).
    pub tcp: bool,
    pub tls: bool,
}

/// Parses KMS's `turnURL`. Empty: no TURN.
pub fn parse_turn_url(url: &str) -> Result<Option<TurnServer>, String> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let url = url.trim_start_matches("turn:").trim_start_matches("//");
    let (main, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut tcp, mut tls) = (false, false);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("transport", "udp")) => (tcp, tls) = (false, false),
            Some(("transport", "tcp")) => (tcp, tls) = (true, false),
            Some(("transport", "tls")) => (tcp, tls) = (true, true),
            Some(("transport", other)) => return Err(format!("no TURN transport '{other}' (udp, tcp or tls)")),
            _ => {}
        }
    }
    let (creds, host) = main.rsplit_once('@').ok_or("turnURL has no user:password@")?;
    let (user, password) = creds.split_once(':').ok_or("turnURL has no password")?;
    let host = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_owned()
    } else {
        format!("{host}:3478")
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("TURN server {host}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("TURN server {host} has no IPv4 address"))?;
    Ok(Some(TurnServer { addr, user: user.to_owned(), password: password.to_owned(), tcp, tls }))
}

/// What the loop does after a datagram from the TURN server.
pub enum Received<'a> {
    /// TURN's own traffic (responses), already handled.
    Handled,
    /// Data a remote peer sent to our relayed address.
    Peer { from: SocketAddr, relayed: SocketAddr, data: Cow<'a, [u8]> },
}

/// The socket to the TURN server.
enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: Stream,
        /// Application data can be written: the non-blocking connect (and
        /// the TLS handshake, over TLS) completed.
        ready: bool,
        /// What the connection did not take yet (whole messages only).
        wbuf: Vec<u8>,
        /// The connection failed or the server closed it.
        closed: bool,
    },
}

/// A TCP connection to the TURN server, plain or TLS (`?transport=tls`).
enum Stream {
    Plain(TcpStream),
    /// TLS once the TCP connect completes.
    TlsConnecting(TcpStream),
    TlsHandshaking(MidHandshakeSslStream<TcpStream>),
    Tls(SslStream<TcpStream>),
    /// Between two of the above (a failed handshake leaves it).
    Gone,
}

impl Stream {
    fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Plain(s) | Stream::TlsConnecting(s) => Some(s),
            Stream::TlsHandshaking(m) => Some(m.get_mut()),
            Stream::Tls(s) => Some(s.get_mut()),
            Stream::Gone => None,
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(data),
            Stream::Tls(s) => s.write(data),
            _ => Err(ErrorKind::WouldBlock.into()),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            _ => Err(ErrorKind::WouldBlock.into()),
        }
    }

    /// Moves the TLS handshake on. Ok(true): application data can go.
    fn handshake(&mut self) -> std::io::Result<bool> {
        let result = match std::mem::replace(self, Stream::Gone) {
            Stream::TlsConnecting(tcp) => tls_connector()?.connect("", tcp),
            Stream::TlsHandshaking(mid) => mid.handshake(),
            other => {
                *self = other;
                return Ok(matches!(self, Stream::Plain(_) | Stream::Tls(_)));
            }
        };
        match result {
            Ok(s) => {
                *self = Stream::Tls(s);
                Ok(true)
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                *self = Stream::TlsHandshaking(mid);
                Ok(false)
            }
            Err(e) => Err(std::io::Error::other(format!("TLS handshake: {e}"))),
        }
    }
}

/// TLS to a TURN server: encryption for networks that only let TLS out,
/// with the server's certificate not verified, as libnice does not either
/// (KMS's `turnURL` names an IP, and the TURN exchange authenticates with
/// the long-term credential's HMAC; the media inside is SRTP).
fn tls_connector() -> std::io::Result<openssl::ssl::ConnectConfiguration> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(std::io::Error::other)?;
    b.set_verify(SslVerifyMode::NONE);
    let mut c = b.build().configure().map_err(std::io::Error::other)?;
    c.set_verify_hostname(false);
    c.set_use_server_name_indication(false);
    Ok(c)
}

impl Link {
    fn send(&mut self, to: SocketAddr, data: &[u8]) {
        match self {
            Link::Udp(s) => {
                let _ = s.send_to(data, to);
            }
            Link::Tcp { closed: true, .. } => {}
            Link::Tcp { stream, ready, wbuf, .. } => {
                let mut data = data;
                if *ready && wbuf.is_empty() {
                    match stream.write(data) {
                        Ok(n) => data = &data[n..],
                        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => tracing::debug!("TURN over TCP: {e}"),
                    }
                    if data.is_empty() {
                        return;
                    }
                } else if wbuf.len() + data.len() > MAX_TCP_QUEUE {
                    return;
                }
                wbuf.extend_from_slice(data);
            }
        }
    }

    /// Moves the connection on (connect, TLS handshake) and writes what is
    /// queued. Err: the connection failed.
    fn progress(&mut self) -> std::io::Result<()> {
        let Link::Tcp { stream, ready, wbuf, closed } = self else { return Ok(()) };
        if *closed {
            return Ok(());
        }
        if !*ready {
            if let Stream::Plain(tcp) | Stream::TlsConnecting(tcp) = stream {
                if let Some(e) = tcp.take_error()? {
                    return Err(e);
                }
                match tcp.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            *ready = stream.handshake()?;
            if !*ready {
                return Ok(());
            }
        }
        let mut sent = 0;
        while sent < wbuf.len() {
            match stream.write(&wbuf[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        wbuf.drain(..sent);
        Ok(())
    }
}

pub struct Relay {
    turn: TurnClient,
    link: Link,
    /// The socket's address (the candidate's base).
    local: SocketAddr,
    server: SocketAddr,
    pub relayed: Option<SocketAddr>,
    /// When the client next needs to be polled.
    pub deadline: Instant,
    handler: Arc<dyn PeerHandler>,
    /// TURN's clock is its own (nanoseconds since an epoch): ours.
    epoch: Instant,
    /// Reported to the handler once.
    done: bool,
    buf: Vec<u8>,
}

impl Relay {
    /// Starts an allocation on `server` from `socket` (bound, not yet
    /// registered with the loop's poll).
    pub fn start(socket: UdpSocket, server: &TurnServer, handler: Arc<dyn PeerHandler>) -> std::io::Result<Relay> {
        let local = socket.local_addr()?;
        Ok(Self::new(Link::Udp(socket), local, server, handler))
    }

    /// Starts an allocation on `server` over TCP (or TLS): the connection
    /// is made without blocking, the Allocate request waits for it (and
    /// the handshake) in the queue.
    pub fn start_tcp(server: &TurnServer, handler: Arc<dyn PeerHandler>) -> std::io::Result<Relay> {
        let tcp = TcpStream::connect(server.addr)?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr()?;
        let stream = if server.tls { Stream::TlsConnecting(tcp) } else { Stream::Plain(tcp) };
        let link = Link::Tcp { stream, ready: false, wbuf: Vec::new(), closed: false };
        Ok(Self::new(link, local, server, handler))
    }

    fn new(link: Link, local: SocketAddr, server: &TurnServer, handler: Arc<dyn PeerHandler>) -> Relay {
        let mut config = TurnConfig::new(TurnCredentials::new(&server.user, &server.password));
        // As the loops' STUN: 4 tries from 0.5 s, then 4 s to answer
        // (7.5 s), not RFC 8489's ~39.5 s: gathering waits for this.
        config.set_request_retransmits(Duration::from_millis(500), Duration::from_secs(2), 4, Duration::from_secs(4));
        let epoch = Instant::now();
        let turn = if matches!(link, Link::Tcp { .. }) {
            TurnClient::from(TurnClientTcp::allocate(local, server.addr, config))
        } else {
            TurnClient::from(TurnClientUdp::allocate(local, server.addr, config))
        };
        let mut r = Relay {
            turn,
            link,
            local,
            server: server.addr,
            relayed: None,
            deadline: epoch,
            handler,
            epoch,
            done: false,
            buf: vec![0u8; 2048],
        };
        r.flush(epoch);
        r
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        match &mut self.link {
            Link::Udp(s) => registry.register(s, token, Interest::READABLE),
            Link::Tcp { stream, .. } => match stream.tcp() {
                Some(tcp) => registry.register(tcp, token, Interest::READABLE | Interest::WRITABLE),
                None => Ok(()),
            },
        }
    }

    pub fn deregister(&mut self, registry: &Registry) {
        let _ = match &mut self.link {
            Link::Udp(s) => registry.deregister(s),
            Link::Tcp { stream, .. } => match stream.tcp() {
                Some(tcp) => registry.deregister(tcp),
                None => Ok(()),
            },
        };
    }

    /// Something happened on the TCP link: its connect or TLS handshake
    /// may move on, it may take more of the queue.
    pub fn progress(&mut self) {
        if let Err(e) = self.link.progress() {
            self.close_link(&format!("TCP connection failed: {e}"));
        }
    }

    fn close_link(&mut self, why: &str) {
        if let Link::Tcp { closed, wbuf, .. } = &mut self.link
            && !std::mem::replace(closed, true)
        {
            wbuf.clear();
            self.failed(why);
        }
    }

    /// Reads what arrived from the server: a datagram, or what the TCP
    /// stream holds (the client reassembles messages). WouldBlock: no more.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match &mut self.link {
            Link::Udp(s) => s.recv_from(buf),
            Link::Tcp { closed: true, .. } => Err(ErrorKind::WouldBlock.into()),
            Link::Tcp { stream, .. } => match stream.read(buf) {
                Ok(0) => {
                    self.close_link("the server closed the TCP connection");
                    Err(ErrorKind::WouldBlock.into())
                }
                Ok(n) => Ok((n, self.server)),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => Err(e),
                Err(e) => {
                    self.close_link(&format!("TCP connection failed: {e}"));
                    Err(ErrorKind::WouldBlock.into())
                }
            },
        }
    }

    fn at(&self, now: Instant) -> TurnInstant {
        TurnInstant::from_nanos(now.saturating_duration_since(self.epoch).as_nanos() as i64)
    }

    /// Timers, then whatever the client wants sent, then its events.
    pub fn flush(&mut self, now: Instant) {
        let t = self.at(now);
        let _ = self.turn.poll(t);
        while let Some(tx) = self.turn.poll_transmit(t) {
            self.link.send(tx.to, &tx.data);
        }
        while let Some(ev) = self.turn.poll_event() {
            match ev {
                TurnEvent::AllocationCreated(TransportType::Udp, relayed) if self.relayed.is_none() => {
                    tracing::debug!(%relayed, server = %self.server, "TURN allocation");
                    self.relayed = Some(relayed);
                    self.done = true;
                    self.handler.on_relay(relayed, self.local);
                }
                TurnEvent::AllocationCreateFailed(_) => self.failed("the server refused the allocation"),
                TurnEvent::PermissionCreateFailed(_, ip) => tracing::debug!(%ip, "TURN permission refused"),
                TurnEvent::ChannelCreateFailed(_, peer) => tracing::debug!(%peer, "TURN channel refused"),
                _ => {}
            }
        }
        // Polled again: after a timeout the first poll only arms the
        // close, the second reports it.
        match self.turn.poll(t) {
            TurnPollRet::WaitUntil(at) => {
                let after = Duration::from_nanos(at.as_nanos().saturating_sub(t.as_nanos()).max(0) as u64);
                self.deadline = now + after.min(Duration::from_secs(60));
            }
            TurnPollRet::Closed => {
                self.failed("the allocation closed");
                self.deadline = now + Duration::from_secs(3600);
            }
            _ => self.deadline = now + Duration::from_millis(50),
        }
    }

    fn failed(&mut self, why: &str) {
        if !std::mem::replace(&mut self.done, true) {
            tracing::warn!(server = %self.server, "TURN: {why}");
            self.handler.on_relay_failed(&format!("TURN server {}: {why}", self.server));
        }
    }

    /// A datagram that arrived on the relay socket.
    pub fn receive<'a>(&mut self, from: SocketAddr, data: &'a [u8], now: Instant) -> Option<Received<'a>> {
        let t = self.at(now);
        match self.turn.recv(Transmit::new(data, self.turn.transport(), from, self.local), t) {
            TurnRecvRet::Handled => {
                self.flush(now);
                Some(Received::Handled)
            }
            TurnRecvRet::PeerData(pd) => {
                // The payload is a range of `data` (ChannelData or a Data
                // indication): taken as a slice of it, without a copy.
                let inner = pd.data();
                let start = (inner.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
                let data = match data.get(start..start.wrapping_add(inner.len())) {
                    Some(d) if d.as_ptr() == inner.as_ptr() => Cow::Borrowed(d),
                    _ => Cow::Owned(inner.to_vec()),
                };
                Some(Received::Peer { from: pd.peer, relayed: self.relayed?, data })
            }
            TurnRecvRet::Ignored(_) => {
                // Wrong credentials come back as a second 401 the client
                // ignores (it would only give up after ~30 s): fail now.
                if from == self.server && !self.done && is_unauthorized(data) {
                    self.failed("401 Unauthorized (check the turnURL's user and password)");
                }
                None
            }
            _ => None,
        }
    }

    /// More peer data from the last TCP read: a read can hold several
    /// messages, `receive` returns the first.
    pub fn more(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        if matches!(self.link, Link::Udp(_)) {
            return None;
        }
        let t = self.at(now);
        let relayed = self.relayed?;
        let pd = self.turn.poll_recv(t)?;
        Some((pd.peer, relayed, pd.data().to_vec()))
    }

    /// Sends `data` to `to` through the relay. Before the permission is
    /// installed the packet is dropped (ICE retransmits its checks) and a
    /// channel is bound, which installs the permission too.
    pub fn send(&mut self, to: SocketAddr, data: &[u8], now: Instant) {
        let t = self.at(now);
        match self.turn.send_to(TransportType::Udp, to, data, t) {
            Ok(Some(tb)) => {
                let len = tb.data.len();
                if len <= self.buf.len() {
                    let out = tb.write_into(&mut self.buf[..len]);
                    self.link.send(out.to, out.data);
                } else {
                    let out = tb.build();
                    self.link.send(out.to, &out.data);
                }
            }
            Err(SendError::NoPermission) if matches!(self.link, Link::Tcp { .. }) => {
                let _ = self.turn.create_permission(TransportType::Udp, to.ip(), t);
                self.flush(now);
            }
            Err(SendError::NoPermission) => {
                if let Err(e) = self.turn.bind_channel(TransportType::Udp, to, t) {
                    tracing::trace!(%to, "TURN channel: {e}");
                    let _ = self.turn.create_permission(TransportType::Udp, to.ip(), t);
                }
                self.flush(now);
            }
            _ => {}
        }
    }

    /// Ends the allocation on the server (a Refresh with lifetime 0), so
    /// its port and the user's quota are free at once, not when it expires.
    pub fn close(&mut self, now: Instant) {
        if self.relayed.is_some() {
            let t = self.at(now);
            if self.turn.delete(t).is_ok() {
                while let Some(tx) = self.turn.poll_transmit(t) {
                    self.link.send(tx.to, &tx.data);
                }
            }
        }
    }

    /// Whether the outcome (relayed address or failure) was reported.
    pub fn reported(&self) -> bool {
        self.done
    }

    /// Tells the handler the allocation is gone, if it never heard of one.
    pub fn abandon(&mut self, why: &str) {
        self.failed(why);
    }

    pub fn is_for(&self, source: SocketAddr) -> bool {
        self.relayed == Some(source)
    }
}

/// A STUN Binding request (RFC 5389) and its transaction id: what the
/// loops send a STUN server to learn a socket's server-reflexive address.
pub fn binding_request() -> (TransactionId, Vec<u8>) {
    let mut msg = Message::builder_request(BINDING, MessageWriteVec::new());
    let _ = msg.add_fingerprint();
    let tid = msg.transaction_id();
    (tid, msg.finish())
}

/// The XOR-MAPPED-ADDRESS of a successful Binding response to `tid`.
pub fn binding_mapped(data: &[u8], tid: TransactionId) -> Option<SocketAddr> {
    let msg = Message::from_bytes(data).ok()?;
    if msg.transaction_id() != tid || !msg.has_method(BINDING) || !msg.has_class(MessageClass::Success) {
        return None;
    }
    Some(msg.attribute::<XorMappedAddress>().ok()?.addr(tid))
}

/// Whether a datagram can be STUN at all (RFC 7983: first byte 0–3).
pub fn maybe_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 4
}

fn is_unauthorized(data: &[u8]) -> bool {
    Message::from_bytes(data).is_ok_and(|m| {
        m.has_class(MessageClass::Error)
            && m.attribute::<ErrorCode>().is_ok_and(|e| e.code() == ErrorCode::UNAUTHORIZED)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_round_trip() {
        let (tid, req) = binding_request();
        assert!(maybe_stun(&req));
        let req = Message::from_bytes(&req).unwrap();
        assert!(req.has_method(BINDING) && req.has_class(MessageClass::Request));
        let mapped: SocketAddr = "203.0.113.7:5000".parse().unwrap();
        let mut resp = Message::builder_success(&req, MessageWriteVec::new());
        resp.add_attribute(&XorMappedAddress::new(mapped, tid)).unwrap();
        let resp = resp.finish();
        assert_eq!(binding_mapped(&resp, tid), Some(mapped));
        let (other, _) = binding_request();
        assert_eq!(binding_mapped(&resp, other), None, "another transaction's answer");
    }

    #[test]
    fn kms_turn_urls() {
        let s = parse_turn_url("user:pa:ss@127.0.0.1:3479").unwrap().unwrap();
        assert_eq!(s.addr, "127.0.0.1:3479".parse().unwrap());
        assert_eq!((s.user.as_str(), s.password.as_str()), ("user", "pa:ss"));
        let s = parse_turn_url("u:p@127.0.0.1?transport=udp").unwrap().unwrap();
        assert_eq!(s.addr.port(), 3478);
        assert!(!s.tcp && !parse_turn_url("u:p@127.0.0.1").unwrap().unwrap().tcp);
        assert!(parse_turn_url("u:p@127.0.0.1:3478?transport=tcp").unwrap().unwrap().tcp);
        let s = parse_turn_url("u:p@127.0.0.1:5349?transport=tls").unwrap().unwrap();
        assert!(s.tcp && s.tls);
        assert!(parse_turn_url("u:p@127.0.0.1:3478?transport=sctp").unwrap_err().contains("sctp"));
        assert!(parse_turn_url("127.0.0.1:3478").is_err());
    }
}
