//! The native transport's network loops: a fixed pool of threads (one per
//! core), each owning one UDP socket per local address and driving the
//! sans-IO [`Rtc`] state machines of every peer placed on it.
//!
//! Nothing here has a thread per endpoint: RPC calls and GStreamer
//! streaming threads talk to a loop through [`LoopHandle::send`] (a
//! channel plus a coalesced `mio::Waker`), and everything a peer's state
//! machine produces comes back through its [`PeerHandler`], called on the
//! loop thread. A panic while one peer is driven closes that peer only
//! (its handler hears why); the loop and the other peers go on.
//!
//! ICE-TCP (RFC 6544), both ways, as libnice does: each loop listens on TCP
//! beside each UDP socket and accepts what browsers connect (our passive
//! candidates), and a peer's checks from its active candidate (port 9)
//! toward a remote passive candidate open a connection out. Packets are
//! framed both ways as RFC 4571 says. An accepted connection belongs to
//! the peer whose state machine accepts its first STUN request; until then
//! it is bounded in number and in time.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::media::Mid;
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Event, Input, Output, Rtc};

use super::relay::{self, Relay, TurnServer};

/// Identifies one peer inside the pool (one per native WebRtcEndpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(u64);

impl PeerId {
    pub fn next() -> PeerId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        PeerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a peer's state machine tells its endpoint. Called on the loop
/// thread: it must not block (no RPC-held lock, no waiting on GStreamer).
pub trait PeerHandler: Send + Sync {
    fn on_event(&self, ev: Event);
    /// The peer was taken off the loop because of a failure (`why`).
    fn on_failed(&self, why: &str);
    /// Once ICE is connected: the (local, remote) addresses media now
    /// travels between (the selected pair; str0m 0.24 tells it no other
    /// way than by where it sends).
    fn on_route(&self, _proto: Protocol, _local: SocketAddr, _remote: SocketAddr) {}
    /// The media a payload type was negotiated for, to receive a stream
    /// the remote neither announced (`a=ssrc`) nor tags with the RTP `mid`
    /// extension (GStreamer's webrtcbin, many SIP gateways).
    fn mid_for_pt(&self, _pt: u8) -> Option<Mid> {
        None
    }
    /// The peer's TURN allocation is ready: `relayed` (the server's
    /// address for us), allocated from our socket `local`.
    fn on_relay(&self, _relayed: SocketAddr, _local: SocketAddr) {}
    /// The allocation failed or closed (`why`); the peer goes on without.
    fn on_relay_failed(&self, _why: &str) {}
    /// About once a second, on the loop with the peer's state machine
    /// (periodic feedback such as REMB).
    fn on_tick(&self, _rtc: &mut Rtc) {}
    /// The STUN server's answers: (server-reflexive address, our socket)
    /// per socket that got one; called once, possibly empty.
    fn on_reflexive(&self, _found: Vec<(SocketAddr, SocketAddr)>) {}
}

/// A closure run on the loop with the peer's state machine.
pub type PeerCall = Box<dyn FnOnce(&mut Rtc) + Send>;

enum Cmd {
    /// A peer, with the DSCP codepoint its packets carry (`qosDscp`).
    Add(PeerId, Box<Rtc>, Arc<dyn PeerHandler>, Option<u8>),
    Remove(PeerId),
    Call(PeerId, PeerCall),
    /// One RTP packet (header included) to send on `Mid`.
    Rtp(PeerId, Mid, gst::Buffer),
    /// Allocate a relay for the peer on this TURN server.
    Relay(PeerId, TurnServer, Arc<dyn PeerHandler>),
    /// Learn the loop's server-reflexive addresses from this STUN server.
    Stun(SocketAddr, Arc<dyn PeerHandler>),
    /// A remote passive ICE-TCP candidate of the peer: its checks from our
    /// active candidate toward it may connect.
    TcpPassive(PeerId, SocketAddr),
}

/// The sending side of one loop.
pub struct LoopHandle {
    tx: parking_lot::Mutex<Sender<Cmd>>,
    waker: Waker,
    /// Set while a wake-up is pending: senders wake the loop only once per
    /// batch of commands.
    woken: Arc<AtomicBool>,
    /// The loop's socket addresses (our host candidates).
    pub addrs: Vec<SocketAddr>,
    /// Its ICE-TCP listeners' addresses (our passive TCP candidates).
    pub tcp_addrs: Vec<SocketAddr>,
    /// Peers placed on this loop (placement: least loaded).
    peers: AtomicUsize,
}

impl LoopHandle {
    fn send(&self, cmd: Cmd) {
        if self.tx.lock().send(cmd).is_ok() && !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    pub fn add(&self, id: PeerId, rtc: Rtc, handler: Arc<dyn PeerHandler>, dscp: Option<u8>) {
        self.send(Cmd::Add(id, Box::new(rtc), handler, dscp));
    }

    pub fn remove(&self, id: PeerId) {
        self.send(Cmd::Remove(id));
    }

    /// Gives back the place [`Pool::pick`] took (once per pick).
    pub fn unreserve(&self) {
        self.peers.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn call(&self, id: PeerId, f: PeerCall) {
        self.send(Cmd::Call(id, f));
    }

    pub fn rtp(&self, id: PeerId, mid: Mid, packet: gst::Buffer) {
        self.send(Cmd::Rtp(id, mid, packet));
    }

    /// Asks `server` for the loop's sockets' server-reflexive addresses
    /// (cached per loop); `handler` hears them.
    pub fn stun(&self, server: SocketAddr, handler: Arc<dyn PeerHandler>) {
        self.send(Cmd::Stun(server, handler));
    }

    /// Starts the peer's TURN allocation (its handler hears the outcome).
    pub fn relay(&self, id: PeerId, server: TurnServer, handler: Arc<dyn PeerHandler>) {
        self.send(Cmd::Relay(id, server, handler));
    }

    /// `remote` is a passive (or simultaneous-open) ICE-TCP candidate of
    /// the peer's remote: one our active candidate may connect to.
    pub fn tcp_passive(&self, id: PeerId, remote: SocketAddr) {
        self.send(Cmd::TcpPassive(id, remote));
    }

    pub fn load(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }
}

/// The pool: created on first use with the addresses and port range of
/// the first native endpoint's settings.
pub struct Pool {
    pub loops: Vec<Arc<LoopHandle>>,
}

static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();

/// The process-wide pool (`threads` loops bound on `ips` within
/// `min_port..=max_port`), started on first call.
pub fn pool(ips: &[IpAddr], min_port: u16, max_port: u16, threads: usize) -> Result<&'static Pool, String> {
    POOL.get_or_init(|| Pool::start(ips, min_port, max_port, threads)).as_ref().map_err(Clone::clone)
}

impl Pool {
    fn start(ips: &[IpAddr], min_port: u16, max_port: u16, threads: usize) -> Result<Pool, String> {
        if ips.is_empty() {
            return Err("no local address to gather on".into());
        }
        let mut loops = vec![];
        let mut next_port = min_port.max(1);
        for n in 0..threads.max(1) {
            let mut sockets = vec![];
            let mut listeners = vec![];
            for ip in ips {
                let (sock, port) = bind_in_range(*ip, next_port, max_port)?;
                next_port = port.saturating_add(1);
                sockets.push(sock);
                // ICE-TCP beside it, on the same port number when free.
                match listen_in_range(*ip, port, max_port) {
                    Ok(l) => listeners.push(l),
                    Err(e) => tracing::warn!("no ICE-TCP on {ip}: {e}"),
                }
            }
            let poll = Poll::new().map_err(|e| e.to_string())?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?;
            for (i, s) in sockets.iter_mut().enumerate() {
                poll.registry().register(s, Token(i), Interest::READABLE).map_err(|e| e.to_string())?;
            }
            for (i, l) in listeners.iter_mut().enumerate() {
                poll.registry().register(l, Token(LISTEN_TOKENS + i), Interest::READABLE).map_err(|e| e.to_string())?;
            }
            let addrs: Vec<SocketAddr> =
                sockets.iter().map(|s| s.local_addr()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
            let tcp_addrs: Vec<SocketAddr> =
                listeners.iter().map(|l| l.local_addr()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
            let (tx, rx) = channel();
            let woken = Arc::new(AtomicBool::new(false));
            let lp = Loop {
                poll,
                sockets,
                local: addrs.clone(),
                listeners: listeners.into_iter().zip(tcp_addrs.iter().copied()).collect(),
                tcp: HashMap::new(),
                tcp_routes: HashMap::new(),
                tcp_passive: HashMap::new(),
                tcp_failed: HashMap::new(),
                tcp_sweep: Instant::now(),
                rx,
                woken: woken.clone(),
                peers: HashMap::new(),
                by_remote: HashMap::new(),
                relays: HashMap::new(),
                relay_tokens: HashMap::new(),
                stun: vec![],
                reflexive: HashMap::new(),
                next_token: RELAY_TOKENS,
                ports: (min_port.max(1), max_port),
            };
            std::thread::Builder::new()
                .name(format!("kms-net-{n}"))
                .spawn(move || lp.run())
                .map_err(|e| e.to_string())?;
            tracing::info!(loop_ = n, ?addrs, "native WebRTC network loop started");
            loops.push(Arc::new(LoopHandle {
                tx: parking_lot::Mutex::new(tx),
                waker,
                woken,
                addrs,
                tcp_addrs,
                peers: AtomicUsize::new(0),
            }));
        }
        Ok(Pool { loops })
    }

    /// The least loaded loop, counting endpoints from their creation (two
    /// endpoints created one after the other land on different loops: two
    /// peers of one loop share its sockets and cannot reach each other).
    pub fn pick(&self) -> Arc<LoopHandle> {
        let l = self.loops.iter().min_by_key(|l| l.load()).cloned().expect("at least one loop");
        l.peers.fetch_add(1, Ordering::Relaxed);
        l
    }
}

/// `sendto` with the IP header's DSCP set for this packet only (an
/// `IP_TOS`/`IPV6_TCLASS` control message): the loop's sockets carry many
/// peers, each with its own `qosDscp`.
fn send_marked(sock: &UdpSocket, data: &[u8], to: SocketAddr, dscp: u8) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let addr = socket2::SockAddr::from(to);
    let (level, kind) =
        if to.is_ipv4() { (libc::IPPROTO_IP, libc::IP_TOS) } else { (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) };
    let value: libc::c_int = (dscp as libc::c_int) << 2;
    // Room for one int-sized control message, 8-byte aligned.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: every pointer in the header points at locals that outlive the
    // call; the control buffer is large enough for CMSG_SPACE(int) (24 bytes)
    // and aligned for cmsghdr.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = addr.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = addr.len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::c_int, value);
        libc::sendmsg(sock.as_raw_fd(), &msg, 0)
    };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// DSCP on an ICE-TCP connection: one peer's, so set on the socket (not
/// per packet as on the shared UDP sockets).
fn set_tcp_dscp(stream: &TcpStream, remote: SocketAddr, dscp: u8) {
    let sock = socket2::SockRef::from(stream);
    let tos = u32::from(dscp) << 2;
    let r = if remote.is_ipv4() { sock.set_tos_v4(tos) } else { sock.set_tclass_v6(tos) };
    if let Err(e) = r {
        tracing::debug!("ICE-TCP DSCP not set: {e}");
    }
}

/// A non-blocking TCP connection from `ip` (any port) to `remote`, under
/// way (the loop's writable event tells when it is up).
fn connect_from(ip: IpAddr, remote: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(remote), Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    sock.bind(&SocketAddr::new(ip, 0).into())?;
    match sock.connect(&remote.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// A socket for a TURN allocation: on the address the kernel would send
/// to `server` from, with a port in the configured range.
fn relay_socket(server: SocketAddr, (from, to): (u16, u16)) -> std::io::Result<UdpSocket> {
    let probe = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0))?;
    probe.connect(server)?;
    let ip = probe.local_addr()?.ip();
    bind_in_range(ip, from, to).map(|(s, _)| s).map_err(std::io::Error::other)
}

fn listen_in_range(ip: IpAddr, from: u16, to: u16) -> Result<TcpListener, String> {
    for port in from..=to.max(from) {
        if let Ok(l) = TcpListener::bind(SocketAddr::new(ip, port)) {
            return Ok(l);
        }
    }
    Err(format!("no free TCP port on {ip} in {from}-{to}"))
}

fn bind_in_range(ip: IpAddr, from: u16, to: u16) -> Result<(UdpSocket, u16), String> {
    for port in from..=to.max(from) {
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)) {
            return Ok((s, port));
        }
    }
    Err(format!("no free UDP port on {ip} in {from}-{to}"))
}

const WAKER: Token = Token(usize::MAX);
/// Tokens of the ICE-TCP listeners (below: the shared UDP sockets).
const LISTEN_TOKENS: usize = 1 << 19;
/// Tokens of relay sockets and TCP connections start here.
const RELAY_TOKENS: usize = 1 << 20;
/// Accepted TCP connections a loop keeps at most: each costs a socket and
/// buffers, and anyone can open one.
const MAX_TCP: usize = 1024;
/// How long an accepted connection may go without reaching a peer.
const TCP_UNCLAIMED: Duration = Duration::from_secs(10);
/// How long a connection out that failed is not tried again (the state
/// machine resends its checks far more often).
const TCP_RETRY: Duration = Duration::from_secs(5);
/// A peer's remote passive ICE-TCP candidates kept, and its connections
/// out at once: the remote names them, so one peer cannot spend the loop's
/// [`MAX_TCP`] (shared with accepted connections) on them.
const MAX_TCP_PASSIVE: usize = 32;
const MAX_TCP_OUT: usize = 8;
/// The port of an active ICE-TCP candidate (RFC 6544 §4.5: the discard
/// port, as libnice and browsers announce it); checks from it connect out.
pub(super) const ACTIVE_TCP_PORT: u16 = 9;
/// Bytes a TCP connection (ICE-TCP, or to a TURN server) queues beyond the
/// kernel's buffer before it drops packets, as a full UDP socket would.
pub(super) const MAX_TCP_QUEUE: usize = 256 * 1024;
/// The longest a loop sleeps without a peer deadline (idle loops).
const IDLE: Duration = Duration::from_millis(500);

struct Peer {
    rtc: Rtc,
    handler: Arc<dyn PeerHandler>,
    deadline: Instant,
    /// Extended sequence numbers of what we send, per media.
    seq: HashMap<Mid, (u64, u16)>,
    /// ICE connected: transmits follow the selected pair.
    connected: bool,
    /// When [`PeerHandler::on_tick`] is next due.
    tick: Instant,
    /// DSCP codepoint of what this peer sends (the sockets are shared, so
    /// it is set per packet).
    dscp: Option<u8>,
    route: Option<(Protocol, SocketAddr, SocketAddr)>,
}

/// One ICE-TCP connection, accepted or opened: RFC 4571 frames (a 16-bit
/// length, then the packet) both ways.
struct TcpConn {
    stream: TcpStream,
    /// Our candidate's address: the listener's, or for a connection we
    /// opened the active candidate's (port 9), as the state machine knows
    /// them.
    local: SocketAddr,
    remote: SocketAddr,
    /// Bytes read that do not make a whole frame yet.
    rbuf: Vec<u8>,
    /// Framed bytes the kernel has not taken yet.
    wbuf: Vec<u8>,
    /// The peer its STUN requests reached (none yet: unclaimed).
    peer: Option<PeerId>,
    accepted: Instant,
    /// A write failed: closed at the next sweep or event.
    broken: bool,
    /// Opened by us (active); not retried for [`TCP_RETRY`] once closed.
    outgoing: bool,
}

impl TcpConn {
    /// `peer`: the owner when known (a connection out); `outgoing`: opened
    /// by us.
    fn new(stream: TcpStream, local: SocketAddr, remote: SocketAddr, peer: Option<PeerId>, outgoing: bool) -> TcpConn {
        TcpConn {
            stream,
            local,
            remote,
            rbuf: vec![],
            wbuf: vec![],
            peer,
            accepted: Instant::now(),
            broken: false,
            outgoing,
        }
    }

    /// Queues one packet and writes what the kernel takes now.
    fn send(&mut self, data: &[u8]) {
        let Ok(len) = u16::try_from(data.len()) else { return };
        if self.broken || self.wbuf.len() > MAX_TCP_QUEUE {
            return;
        }
        self.wbuf.extend_from_slice(&len.to_be_bytes());
        self.wbuf.extend_from_slice(data);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.wbuf.is_empty() && !self.broken {
            match self.stream.write(&self.wbuf) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
    }

    /// Reads what arrived; the whole frames in it, and whether the
    /// connection ended.
    fn read_frames(&mut self, buf: &mut [u8]) -> (Vec<Vec<u8>>, bool) {
        let mut frames = vec![];
        loop {
            match self.stream.read(buf) {
                Ok(0) => return (frames, true),
                Ok(n) => {
                    self.rbuf.extend_from_slice(&buf[..n]);
                    let mut at = 0;
                    while let [hi, lo, rest @ ..] = &self.rbuf[at..] {
                        let len = u16::from_be_bytes([*hi, *lo]) as usize;
                        if rest.len() < len {
                            break;
                        }
                        frames.push(rest[..len].to_vec());
                        at += 2 + len;
                    }
                    self.rbuf.drain(..at);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return (frames, false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return (frames, true),
            }
        }
    }
}

struct Loop {
    poll: Poll,
    sockets: Vec<UdpSocket>,
    /// Each socket's address, read once (not a `getsockname` per packet).
    local: Vec<SocketAddr>,
    /// ICE-TCP listeners (token `LISTEN_TOKENS + index`) and their addresses.
    listeners: Vec<(TcpListener, SocketAddr)>,
    /// Accepted connections by token, and by (our address, theirs).
    tcp: HashMap<usize, TcpConn>,
    tcp_routes: HashMap<(SocketAddr, SocketAddr), usize>,
    /// Each peer's remote passive ICE-TCP addresses (connected to on
    /// demand), and the connections out that failed lately.
    tcp_passive: HashMap<PeerId, HashSet<SocketAddr>>,
    tcp_failed: HashMap<(SocketAddr, SocketAddr), Instant>,
    /// When unclaimed and broken connections were last swept.
    tcp_sweep: Instant,
    rx: Receiver<Cmd>,
    woken: Arc<AtomicBool>,
    peers: HashMap<PeerId, Peer>,
    /// (our socket, remote address) → peer, learnt from accepted input.
    by_remote: HashMap<(usize, SocketAddr), PeerId>,
    /// TURN allocations, per peer, and their sockets' poll tokens.
    relays: HashMap<PeerId, Relay>,
    relay_tokens: HashMap<usize, PeerId>,
    next_token: usize,
    /// The configured port range (relay sockets are bound in it too).
    ports: (u16, u16),
    /// STUN Binding transactions under way, one per (socket, server).
    stun: Vec<StunQuery>,
    /// What the STUN servers answered, per (socket, server), and when.
    reflexive: HashMap<(usize, SocketAddr), (Option<SocketAddr>, Instant)>,
}

/// One Binding transaction from one of the loop's sockets, with the
/// handlers waiting for it.
struct StunQuery {
    sock: usize,
    server: SocketAddr,
    tid: relay::TransactionId,
    request: Vec<u8>,
    tries: u32,
    next: Instant,
    waiting: Vec<Arc<StunWait>>,
}

/// A handler waiting for the answers of all the loop's sockets.
struct StunWait {
    handler: Arc<dyn PeerHandler>,
    state: parking_lot::Mutex<(usize, Vec<(SocketAddr, SocketAddr)>)>,
}

impl StunWait {
    fn answer(&self, found: Option<(SocketAddr, SocketAddr)>) {
        let done = {
            let mut st = self.state.lock();
            st.1.extend(found);
            st.0 = st.0.saturating_sub(1);
            (st.0 == 0).then(|| std::mem::take(&mut st.1))
        };
        if let Some(found) = done {
            self.handler.on_reflexive(found);
        }
    }
}

/// How often [`PeerHandler::on_tick`] runs.
const TICK: Duration = Duration::from_secs(1);
/// Binding retransmissions: 4 tries, 0.5 s doubling (RFC 5389 §7.2.1,
/// shortened: gathering should not wait long for an absent server).
const STUN_TRIES: u32 = 4;
/// How long a learnt server-reflexive address is reused.
const STUN_REUSE: Duration = Duration::from_secs(60);

impl Loop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; 2048];
        loop {
            let now = Instant::now();
            let next = self
                .peers
                .values()
                .map(|p| p.deadline.min(p.tick))
                .chain(self.relays.values().map(|r| r.deadline))
                .chain(self.stun.iter().map(|q| q.next))
                .min()
                .unwrap_or(now + IDLE);
            let timeout = next.saturating_duration_since(now).min(IDLE);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!("network loop poll failed: {e}");
                return;
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let token = ev.token().0;
                // The shared UDP sockets first: the hot path, no lookup.
                if token < LISTEN_TOKENS {
                    self.receive(token, &mut buf);
                    continue;
                }
                if let Some(id) = self.relay_tokens.get(&token).copied() {
                    if let Some(r) = self.relays.get_mut(&id) {
                        r.progress();
                    }
                    self.receive_relayed(id, &mut buf);
                    continue;
                }
                if (LISTEN_TOKENS..RELAY_TOKENS).contains(&token) {
                    self.accept(token - LISTEN_TOKENS);
                    continue;
                }
                if self.tcp.contains_key(&token) {
                    if ev.is_writable()
                        && let Some(c) = self.tcp.get_mut(&token)
                    {
                        c.flush();
                    }
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        self.receive_tcp(token, &mut buf);
                    }
                }
            }
            self.commands();
            self.timeouts();
        }
    }

    fn commands(&mut self) {
        self.woken.store(false, Ordering::Release);
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Add(id, rtc, handler, dscp) => {
                    let deadline = Instant::now();
                    self.peers.insert(
                        id,
                        Peer {
                            rtc: *rtc,
                            handler,
                            deadline,
                            seq: HashMap::new(),
                            connected: false,
                            route: None,
                            tick: deadline + TICK,
                            dscp,
                        },
                    );
                    self.drive(id, |_| {});
                }
                Cmd::Remove(id) => {
                    if let Some(mut p) = self.peers.remove(&id) {
                        p.rtc.disconnect();
                    }
                    self.by_remote.retain(|_, p| *p != id);
                    self.drop_relay(id, None);
                    self.drop_tcp(id);
                    self.tcp_passive.remove(&id);
                }
                Cmd::TcpPassive(id, remote) => {
                    let known = self.tcp_passive.entry(id).or_default();
                    if known.len() < MAX_TCP_PASSIVE {
                        known.insert(remote);
                    }
                }
                Cmd::Relay(id, server, handler) => self.start_relay(id, &server, handler),
                Cmd::Stun(server, handler) => self.start_stun(server, handler),
                Cmd::Call(id, f) => self.drive(id, f),
                Cmd::Rtp(id, mid, packet) => self.drive_peer(id, |p| write_rtp(p, mid, &packet)),
            }
        }
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        for r in self.relays.values_mut().filter(|r| r.deadline <= now) {
            r.flush(now);
        }
        if self.stun.iter().any(|q| q.next <= now) {
            self.stun_timeouts(now);
        }
        if !self.tcp.is_empty() && now.duration_since(self.tcp_sweep) >= TICK {
            self.tcp_sweep = now;
            let stale: Vec<usize> = self
                .tcp
                .iter()
                .filter(|(_, c)| c.broken || (c.peer.is_none() && now.duration_since(c.accepted) > TCP_UNCLAIMED))
                .map(|(t, _)| *t)
                .collect();
            for t in stale {
                self.close_tcp(t);
            }
            self.tcp_failed.retain(|_, at| now.duration_since(*at) < TCP_RETRY);
        }
        let due: Vec<PeerId> =
            self.peers.iter().filter(|(_, p)| p.deadline.min(p.tick) <= now).map(|(id, _)| *id).collect();
        for id in due {
            self.drive_peer(id, move |p| {
                if p.tick <= now {
                    p.tick = now + TICK;
                    let handler = p.handler.clone();
                    handler.on_tick(&mut p.rtc);
                }
                let _ = p.rtc.handle_input(Input::Timeout(now));
            });
        }
    }

    fn receive(&mut self, sock: usize, buf: &mut [u8]) {
        let Some(&local) = self.local.get(sock) else { return };
        loop {
            let (n, source) = match self.sockets[sock].recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors of earlier sends surface here; keep going.
                    tracing::debug!(%local, "recv: {e}");
                    continue;
                }
            };
            let now = Instant::now();
            if !self.stun.is_empty() && relay::maybe_stun(&buf[..n]) && self.stun_answer(sock, source, &buf[..n], now) {
                continue;
            }
            let Ok(contents) = buf[..n].try_into() else { continue };
            let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: local, contents });
            let id = match self.by_remote.get(&(sock, source)) {
                Some(id) if self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)) => Some(*id),
                _ => self.peers.iter().find(|(_, p)| p.rtc.accepts(&input)).map(|(id, _)| *id),
            };
            let Some(id) = id else {
                tracing::trace!(%source, "datagram for no peer");
                continue;
            };
            self.by_remote.insert((sock, source), id);
            self.deliver(id, input, &buf[..n]);
        }
    }

    /// Received input into the peer's state machine (`raw`: the datagram,
    /// for [`learn_ssrc`]), then what it produced out.
    fn deliver(&mut self, id: PeerId, input: Input, raw: &[u8]) {
        let handled = {
            let Some(peer) = self.peers.get_mut(&id) else { return };
            catch_unwind(AssertUnwindSafe(|| {
                learn_ssrc(peer, raw);
                peer.rtc.handle_input(input)
            }))
        };
        match handled {
            Ok(Ok(())) => self.drive(id, |_| {}),
            Ok(Err(e)) => tracing::debug!(peer = id.0, "input refused: {e}"),
            Err(_) => self.fail(id, "panic while handling input"),
        }
    }

    /// Datagrams (or a TCP stream's bytes) from the TURN server: TURN's
    /// own, or a remote's data relayed to our allocation.
    fn receive_relayed(&mut self, id: PeerId, buf: &mut [u8]) {
        loop {
            let Some(relay) = self.relays.get_mut(&id) else { return };
            let (n, from) = match relay.read(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("relay recv: {e}");
                    continue;
                }
            };
            let now = Instant::now();
            if let Some(relay::Received::Peer { from, relayed, data }) = relay.receive(from, &buf[..n], now) {
                self.deliver_relayed(id, now, from, relayed, &data);
            }
            while let Some((from, relayed, data)) = self.relays.get_mut(&id).and_then(|r| r.more(now)) {
                self.deliver_relayed(id, now, from, relayed, &data);
            }
        }
    }

    /// What a remote sent to our relayed address, as if it had arrived
    /// there.
    fn deliver_relayed(&mut self, id: PeerId, now: Instant, from: SocketAddr, relayed: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else { return };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source: from, destination: relayed, contents });
        self.deliver(id, input, data);
    }

    /// Accepts ICE-TCP connections on listener `i`.
    fn accept(&mut self, i: usize) {
        loop {
            let Some((listener, local)) = self.listeners.get(i) else { return };
            let local = *local;
            let (mut stream, remote) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(%local, "ICE-TCP accept: {e}");
                    return;
                }
            };
            if self.tcp.len() >= MAX_TCP {
                tracing::debug!(%remote, "ICE-TCP connection refused: {MAX_TCP} open");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let token = self.next_token;
            if let Err(e) =
                self.poll.registry().register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
            {
                tracing::debug!("ICE-TCP register: {e}");
                continue;
            }
            self.next_token += 1;
            tracing::debug!(%local, %remote, "ICE-TCP connection accepted");
            self.tcp_routes.insert((local, remote), token);
            self.tcp.insert(token, TcpConn::new(stream, local, remote, None, false));
        }
    }

    /// Frames on an ICE-TCP connection, into the peer that takes them (the
    /// first one claims the connection for its peer).
    fn receive_tcp(&mut self, token: usize, buf: &mut [u8]) {
        let Some(c) = self.tcp.get_mut(&token) else { return };
        let (frames, ended) = c.read_frames(buf);
        let (local, remote) = (c.local, c.remote);
        for frame in frames {
            let now = Instant::now();
            let Ok(contents) = frame.as_slice().try_into() else { continue };
            let input =
                Input::Receive(now, Receive { proto: Protocol::Tcp, source: remote, destination: local, contents });
            let owner = self.tcp.get(&token).and_then(|c| c.peer);
            let id = match owner {
                Some(id) => self.peers.get(&id).filter(|p| p.rtc.accepts(&input)).map(|_| id),
                None => self.peers.iter().find(|(_, p)| p.rtc.accepts(&input)).map(|(id, _)| *id),
            };
            let Some(id) = id else {
                tracing::trace!(%remote, "ICE-TCP frame for no peer");
                continue;
            };
            if owner.is_none()
                && let Some(c) = self.tcp.get_mut(&token)
            {
                c.peer = Some(id);
                if let Some(d) = self.peers.get(&id).and_then(|p| p.dscp) {
                    set_tcp_dscp(&c.stream, remote, d);
                }
            }
            self.deliver(id, input, &frame);
        }
        if ended {
            self.close_tcp(token);
        }
    }

    fn close_tcp(&mut self, token: usize) {
        if let Some(mut c) = self.tcp.remove(&token) {
            tracing::debug!(local = %c.local, remote = %c.remote, "ICE-TCP connection closed");
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.tcp_routes.remove(&(c.local, c.remote));
            if c.outgoing {
                self.tcp_failed.insert((c.local, c.remote), Instant::now());
            }
        }
    }

    /// Opens a connection from our active candidate `local` (its address,
    /// any port) to the remote passive candidate `remote` for peer `id`,
    /// with `first` (a STUN check) queued until it is up.
    fn connect_tcp(&mut self, id: PeerId, local: SocketAddr, remote: SocketAddr, first: &[u8]) {
        if let Some(c) = self.tcp_routes.get(&(local, remote)).and_then(|t| self.tcp.get_mut(t)) {
            c.send(first);
            return;
        }
        let out = self.tcp.values().filter(|c| c.outgoing && c.peer == Some(id)).count();
        if self.tcp.len() >= MAX_TCP || out >= MAX_TCP_OUT || self.tcp_failed.contains_key(&(local, remote)) {
            return;
        }
        let mut stream = match connect_from(local.ip(), remote) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%remote, "ICE-TCP connect: {e}");
                self.tcp_failed.insert((local, remote), Instant::now());
                return;
            }
        };
        let token = self.next_token;
        if let Err(e) =
            self.poll.registry().register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
        {
            tracing::debug!("ICE-TCP register: {e}");
            return;
        }
        self.next_token += 1;
        if let Some(d) = self.peers.get(&id).and_then(|p| p.dscp) {
            set_tcp_dscp(&stream, remote, d);
        }
        tracing::debug!(%local, %remote, "ICE-TCP connecting out");
        self.tcp_routes.insert((local, remote), token);
        let mut c = TcpConn::new(stream, local, remote, Some(id), true);
        // Queued: the kernel takes nothing before the handshake (EAGAIN);
        // the writable event that ends it flushes.
        c.send(first);
        self.tcp.insert(token, c);
    }

    /// Closes the peer's ICE-TCP connections (the peer is gone).
    fn drop_tcp(&mut self, id: PeerId) {
        let theirs: Vec<usize> = self.tcp.iter().filter(|(_, c)| c.peer == Some(id)).map(|(t, _)| *t).collect();
        for t in theirs {
            self.close_tcp(t);
        }
    }

    fn start_stun(&mut self, server: SocketAddr, handler: Arc<dyn PeerHandler>) {
        let now = Instant::now();
        let socks: Vec<usize> =
            (0..self.sockets.len()).filter(|i| self.local[*i].is_ipv4() == server.is_ipv4()).collect();
        let wait = Arc::new(StunWait { handler, state: parking_lot::Mutex::new((socks.len(), vec![])) });
        if socks.is_empty() {
            wait.handler.on_reflexive(vec![]);
            return;
        }
        for sock in socks {
            let base = self.local[sock];
            match self.reflexive.get(&(sock, server)) {
                Some((found, at)) if now.duration_since(*at) < STUN_REUSE => {
                    wait.answer(found.map(|m| (m, base)));
                }
                _ => match self.stun.iter_mut().find(|q| q.sock == sock && q.server == server) {
                    Some(q) => q.waiting.push(wait.clone()),
                    None => {
                        let (tid, request) = relay::binding_request();
                        let _ = self.sockets[sock].send_to(&request, server);
                        self.stun.push(StunQuery {
                            sock,
                            server,
                            tid,
                            request,
                            tries: 1,
                            next: now + Duration::from_millis(500),
                            waiting: vec![wait.clone()],
                        });
                    }
                },
            }
        }
    }

    /// A Binding response for one of our transactions (consumed), else false.
    fn stun_answer(&mut self, sock: usize, source: SocketAddr, data: &[u8], now: Instant) -> bool {
        let Some(i) = self.stun.iter().position(|q| q.sock == sock && q.server == source) else { return false };
        let Some(mapped) = relay::binding_mapped(data, self.stun[i].tid) else { return false };
        let q = self.stun.swap_remove(i);
        tracing::debug!(%mapped, server = %q.server, "server-reflexive address");
        self.reflexive.retain(|_, (_, at)| now.duration_since(*at) < STUN_REUSE);
        self.reflexive.insert((sock, q.server), (Some(mapped), now));
        let base = self.local[sock];
        for w in q.waiting {
            w.answer(Some((mapped, base)));
        }
        true
    }

    fn stun_timeouts(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.stun.len() {
            let q = &mut self.stun[i];
            if q.next > now {
                i += 1;
            } else if q.tries < STUN_TRIES {
                let _ = self.sockets[q.sock].send_to(&q.request, q.server);
                q.next = now + Duration::from_millis(500 << q.tries);
                q.tries += 1;
                i += 1;
            } else {
                let q = self.stun.swap_remove(i);
                tracing::warn!(server = %q.server, "STUN server did not answer");
                self.reflexive.insert((q.sock, q.server), (None, now));
                for w in q.waiting {
                    w.answer(None);
                }
            }
        }
    }

    fn start_relay(&mut self, id: PeerId, server: &TurnServer, handler: Arc<dyn PeerHandler>) {
        let started = if server.tcp {
            Relay::start_tcp(server, handler.clone())
        } else {
            relay_socket(server.addr, self.ports).and_then(|socket| Relay::start(socket, server, handler.clone()))
        };
        let token = self.next_token;
        let made = started.and_then(|mut r| r.register(self.poll.registry(), Token(token)).map(|()| r));
        match made {
            Ok(r) => {
                self.next_token += 1;
                self.drop_relay(id, None);
                self.relay_tokens.insert(token, id);
                self.relays.insert(id, r);
            }
            Err(e) => handler.on_relay_failed(&format!("no socket for TURN: {e}")),
        }
    }

    /// Ends the peer's allocation (on the server too); `failed`: the peer
    /// failed, so a handler still waiting for the allocation hears why.
    fn drop_relay(&mut self, id: PeerId, failed: Option<&str>) {
        if let Some(mut r) = self.relays.remove(&id) {
            r.close(Instant::now());
            if let Some(why) = failed
                && !r.reported()
            {
                r.abandon(why);
            }
            r.deregister(self.poll.registry());
            self.relay_tokens.retain(|_, p| *p != id);
        }
    }

    /// Runs `f` on the peer's state machine, then sends what it produced.
    fn drive(&mut self, id: PeerId, f: impl FnOnce(&mut Rtc)) {
        self.drive_peer(id, |p| f(&mut p.rtc));
    }

    fn drive_peer(&mut self, id: PeerId, f: impl FnOnce(&mut Peer)) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let (sockets, local) = (&self.sockets, &self.local);
        let (tcp, tcp_routes) = (&mut self.tcp, &self.tcp_routes);
        let passive = &self.tcp_passive;
        let mut connects: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = vec![];
        let mut relay = self.relays.get_mut(&id);
        let r = catch_unwind(AssertUnwindSafe(|| {
            f(peer);
            loop {
                match peer.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        peer.deadline = t;
                        return Ok(());
                    }
                    Ok(Output::Transmit(t)) => {
                        match relay.as_deref_mut().filter(|r| r.is_for(t.source)) {
                            // On a connection, else one opened from our
                            // active candidate to a remote passive one;
                            // others (remote active candidates, or from our
                            // passive one) have no way out.
                            _ if t.proto == Protocol::Tcp => {
                                match tcp_routes.get(&(t.source, t.destination)).and_then(|k| tcp.get_mut(k)) {
                                    Some(c) => c.send(&t.contents),
                                    None if t.source.port() == ACTIVE_TCP_PORT
                                        && passive.get(&id).is_some_and(|p| p.contains(&t.destination)) =>
                                    {
                                        connects.push((t.source, t.destination, t.contents.to_vec()));
                                    }
                                    None => {}
                                }
                            }
                            Some(r) => r.send(t.destination, &t.contents, Instant::now()),
                            None => {
                                let i = local.iter().position(|a| *a == t.source).unwrap_or(0);
                                if let Some(s) = sockets.get(i) {
                                    let _ = match peer.dscp {
                                        Some(d) => send_marked(s, &t.contents, t.destination, d),
                                        None => s.send_to(&t.contents, t.destination),
                                    };
                                }
                            }
                        }
                        // The selected pair is where DTLS and media go. ICE
                        // keeps checking other pairs after connecting (more
                        // remote candidates, consent): STUN (first byte
                        // 0–3, RFC 7983) does not select a pair.
                        let route = (t.proto, t.source, t.destination);
                        let stun = t.contents.first().is_none_or(|b| *b < 4);
                        if peer.connected && !stun && peer.route != Some(route) {
                            peer.route = Some(route);
                            peer.handler.on_route(route.0, route.1, route.2);
                        }
                    }
                    Ok(Output::Event(Event::Closed)) => return Err("closed".to_owned()),
                    Ok(Output::Event(Event::IceConnectionStateChange(s))) => {
                        peer.connected =
                            matches!(s, str0m::IceConnectionState::Connected | str0m::IceConnectionState::Completed);
                        peer.handler.on_event(Event::IceConnectionStateChange(s));
                    }
                    Ok(Output::Event(e)) => peer.handler.on_event(e),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }));
        match r {
            Ok(Ok(())) => {
                for (local, remote, first) in connects {
                    self.connect_tcp(id, local, remote, &first);
                }
            }
            Ok(Err(why)) => self.fail(id, &why),
            Err(_) => self.fail(id, "panic in the peer's state machine"),
        }
    }

    fn fail(&mut self, id: PeerId, why: &str) {
        if let Some(p) = self.peers.remove(&id) {
            self.by_remote.retain(|_, p| *p != id);
            self.drop_relay(id, Some(why));
            self.drop_tcp(id);
            tracing::warn!(peer = id.0, "native WebRTC peer closed: {why}");
            let handler = p.handler.clone();
            drop(p);
            let _ = catch_unwind(AssertUnwindSafe(|| handler.on_failed(why)));
        }
    }
}

/// An RTP packet (RFC 7983: first byte 128–191, not an RTCP type) from an
/// SSRC the state machine does not know: declared for the media its payload
/// type was negotiated for, so str0m takes it instead of dropping it. The
/// RTP header is not encrypted by SRTP, so it can be read here.
fn learn_ssrc(peer: &mut Peer, d: &[u8]) {
    if d.len() < 12 || !(128..=191).contains(&d[0]) || (64..=95).contains(&(d[1] & 0x7f)) {
        return;
    }
    let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]).into();
    if peer.rtc.direct_api().stream_rx(&ssrc).is_some() {
        return;
    }
    if let Some(mid) = peer.handler.mid_for_pt(d[1] & 0x7f)
        && peer.rtc.media(mid).is_some()
    {
        tracing::debug!(%mid, ?ssrc, "receiving an SSRC announced neither by SDP nor by the mid extension");
        peer.rtc.direct_api().expect_stream_rx(ssrc, None, mid, None);
    }
}

/// Hands one RTP packet from the pipeline to the peer's send stream of
/// `mid` (str0m encrypts, keeps it for NACKs, and paces it).
fn write_rtp(peer: &mut Peer, mid: Mid, packet: &gst::Buffer) {
    let Ok(rtp) = gst_rtp::RTPBuffer::from_buffer_readable(packet) else { return };
    let Ok(payload) = rtp.payload() else { return };
    let seq16 = rtp.seq();
    let (ext, last) = peer.seq.entry(mid).or_insert((seq16 as u64, seq16));
    let delta = seq16.wrapping_sub(*last) as i16 as i64;
    *ext = (*ext as i64 + delta).max(0) as u64;
    *last = seq16;
    let seq: SeqNo = (*ext).into();
    let w = RtpWrite::new(rtp.payload_type().into(), seq, rtp.timestamp(), Instant::now(), payload)
        .marker(rtp.is_marker())
        .nackable(true);
    if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(mid, None) {
        tx.write_rtp(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Record {
        failed: Mutex<Vec<String>>,
    }

    impl PeerHandler for Record {
        fn on_event(&self, _ev: Event) {}
        fn on_failed(&self, why: &str) {
            self.failed.lock().push(why.to_owned());
        }
    }

    fn rtc() -> Rtc {
        str0m::RtcConfig::new().build(Instant::now())
    }

    /// A panic while one peer is driven closes that peer (its handler hears
    /// why); the loop keeps serving the others.
    #[test]
    fn a_panicking_peer_is_closed_alone() {
        let pool = Pool::start(&[IpAddr::from([127, 0, 0, 1])], 41000, 41999, 1).expect("a loop");
        let lp = &pool.loops[0];
        let (a, b) = (PeerId::next(), PeerId::next());
        let (ha, hb) = (Arc::new(Record::default()), Arc::new(Record::default()));
        lp.add(a, rtc(), ha.clone(), None);
        lp.add(b, rtc(), hb.clone(), None);
        lp.call(a, Box::new(|_| panic!("a bug in one peer")));
        let (tx, rx) = std::sync::mpsc::channel();
        lp.call(b, Box::new(move |rtc: &mut Rtc| tx.send(rtc.is_alive()).expect("receiver")));
        assert!(rx.recv_timeout(Duration::from_secs(5)).expect("the loop still answers"), "b alive");
        assert_eq!(ha.failed.lock().len(), 1, "a was closed");
        assert!(ha.failed.lock()[0].contains("panic"));
        assert!(hb.failed.lock().is_empty(), "b untouched");
        // a is gone: calls for it are dropped, the loop goes on.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        lp.call(a, Box::new(move |_| tx.send(()).expect("receiver")));
        let (tx2, rx2) = std::sync::mpsc::channel();
        lp.call(b, Box::new(move |_| tx2.send(()).expect("receiver")));
        rx2.recv_timeout(Duration::from_secs(5)).expect("b still served");
        assert!(rx.try_recv().is_err(), "nothing runs for a closed peer");
    }

    /// A claimed ICE-TCP connection carries the peer's DSCP on its socket.
    #[test]
    fn tcp_dscp_is_set_on_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, remote) = listener.accept().expect("accept");
        let stream = TcpStream::from_std(server);
        set_tcp_dscp(&stream, remote, 46);
        assert_eq!(socket2::SockRef::from(&stream).tos_v4().expect("tos"), 46 << 2, "EF");
    }

    /// RFC 4571 framing on an ICE-TCP connection: frames split across reads
    /// and several in one read come out whole and in order; what we send
    /// is length-prefixed.
    #[test]
    fn tcp_frames_are_reassembled_and_prefixed() {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, remote) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        let mut conn =
            TcpConn::new(TcpStream::from_std(server), listener.local_addr().expect("addr"), remote, None, false);
        let mut buf = vec![0u8; 2048];
        let mut read_until = |conn: &mut TcpConn, n: usize| {
            let mut got = vec![];
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.len() < n && Instant::now() < deadline {
                let (frames, ended) = conn.read_frames(&mut buf);
                assert!(!ended);
                got.extend(frames);
                std::thread::sleep(Duration::from_millis(5));
            }
            got
        };
        // One frame in two writes, then a whole one and half of a third.
        client.write_all(&[0, 5, b'h', b'e']).expect("write");
        std::thread::sleep(Duration::from_millis(20));
        client.write_all(&[b'l', b'l', b'o', 0, 1, b'!', 0, 3, b'a']).expect("write");
        assert_eq!(read_until(&mut conn, 2), vec![b"hello".to_vec(), b"!".to_vec()]);
        assert_eq!(conn.rbuf, vec![0, 3, b'a'], "the partial frame waits");
        client.write_all(b"bc").expect("write");
        assert_eq!(read_until(&mut conn, 1), vec![b"abc".to_vec()]);
        assert!(conn.rbuf.is_empty());
        conn.send(b"pong");
        conn.send(&[]);
        let mut out = [0u8; 8];
        client.read_exact(&mut out).expect("read");
        assert_eq!(&out, &[0, 4, b'p', b'o', b'n', b'g', 0, 0]);
        // The peer hangs up: the connection ends.
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !conn.read_frames(&mut buf).1 {
            assert!(Instant::now() < deadline, "end of stream seen");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A connection out (active ICE-TCP) starts non-blocking from the given
    /// address; what is sent before its handshake ends waits in the queue
    /// and arrives framed once it is up.
    #[test]
    fn a_connection_out_queues_until_it_is_up() {
        use std::io::Read as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream =
            connect_from("127.0.0.1".parse().expect("ip"), listener.local_addr().expect("addr")).expect("connect");
        let mut conn = TcpConn::new(
            stream,
            SocketAddr::new("127.0.0.1".parse().expect("ip"), ACTIVE_TCP_PORT),
            listener.local_addr().expect("addr"),
            None,
            true,
        );
        conn.send(b"check");
        let (mut server, from) = listener.accept().expect("accept");
        assert_eq!(from.ip().to_string(), "127.0.0.1", "bound to the candidate's address");
        assert_ne!(from.port(), ACTIVE_TCP_PORT, "from an ephemeral port");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !conn.wbuf.is_empty() && Instant::now() < deadline {
            conn.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!conn.broken);
        let mut got = [0u8; 7];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"\x00\x05check");
    }

    /// A refused connection out breaks on its first write.
    #[test]
    fn a_refused_connection_out_is_broken() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        // The listener is gone: nothing accepts on `port` now.
        let stream = connect_from("127.0.0.1".parse().expect("ip"), port).expect("connect under way");
        let mut conn =
            TcpConn::new(stream, SocketAddr::new("127.0.0.1".parse().expect("ip"), ACTIVE_TCP_PORT), port, None, true);
        let deadline = Instant::now() + Duration::from_secs(5);
        conn.send(b"check");
        while !conn.broken && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            conn.flush();
        }
        assert!(conn.broken, "the refusal surfaces as a failed write");
    }
}
