//! UDP port pairs of the RtpEndpoint (spec §10.6, §10.8): RTP on an even
//! port and RTCP on the next one, both inside the BaseRtpEndpoint range
//! `[minPort, maxPort]`. The sockets are bound here, before the SDP that
//! announces them is written, and handed to `udpsrc`/`udpsink`, so no other
//! process can take a port between choosing and using it. They close when
//! the last owner (the pair or the GStreamer elements) drops them.

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// One bound RTP/RTCP pair.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl PortPair {
    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn rtcp_port(&self) -> u16 {
        self.rtcp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// Even RTP ports of `[min, max]` whose RTCP port (+1) is in range too.
fn candidates(min: u16, max: u16) -> Vec<u16> {
    let first = min.max(1024).div_ceil(2) * 2;
    (first..max).step_by(2).filter(|p| p.checked_add(1).is_some_and(|r| r <= max)).collect()
}

/// Binds a pair on `ip` within `[min, max]`, starting at a random even
/// port (parallel endpoints then rarely race for the same one).
pub fn bind_pair(ip: IpAddr, min: u16, max: u16) -> std::io::Result<PortPair> {
    let ports = candidates(min, max);
    if ports.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no port pair in [{min}, {max}]")));
    }
    let start = (gst::glib::random_int() as usize) % ports.len();
    let mut last = None;
    for i in 0..ports.len() {
        let p = ports[(start + i) % ports.len()];
        let rtp = match UdpSocket::bind(SocketAddr::new(ip, p)) {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match UdpSocket::bind(SocketAddr::new(ip, p + 1)) {
            Ok(rtcp) => return Ok(PortPair { rtp, rtcp }),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_odd_inside_the_range() {
        assert_eq!(candidates(40001, 40006), vec![40002, 40004]);
        assert_eq!(candidates(40000, 40001), vec![40000]);
        assert!(candidates(40001, 40002).is_empty());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let a = bind_pair(lo, 41000, 41003).unwrap();
        assert_eq!(a.rtp_port() % 2, 0);
        assert_eq!(a.rtcp_port(), a.rtp_port() + 1);
        let b = bind_pair(lo, 41000, 41003).unwrap();
        assert_ne!(a.rtp_port(), b.rtp_port());
        assert!(bind_pair(lo, 41000, 41003).is_err(), "range exhausted");
        drop(a);
        assert!(bind_pair(lo, 41000, 41003).is_ok(), "ports are released on drop");
    }
}
