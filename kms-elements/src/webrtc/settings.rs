//! Per-endpoint settings: module configuration (spec §11.3) overridable by
//! the properties of spec §10.5–10.7.

use kms_core::api::core::RembParams;
use kms_core::config::CoreConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub stun_server_address: String,
    pub stun_server_port: i32,
    pub turn_url: String,
    pub network_interfaces: String,
    pub external_ipv4: String,
    pub external_ipv6: String,
    pub ice_tcp: bool,
    /// Beyond upstream: also gather on loopback (config
    /// `WebRtcEndpoint.iceLoopback`, env `KMS_ICE_LOOPBACK=1`), for
    /// machines where both peers only share 127.0.0.1.
    pub ice_loopback: bool,
    pub min_port: u32,
    pub max_port: u32,
    pub mtu: i32,
    pub max_audio_recv_bandwidth: i32,
    pub max_video_recv_bandwidth: i32,
    pub min_video_recv_bandwidth: i32,
    pub min_video_send_bandwidth: i32,
    pub max_video_send_bandwidth: i32,
    pub remb: RembParams,
    pub num_audio_medias: i64,
    pub num_video_medias: i64,
    /// DSCP codepoint marked on every packet sent (spec §10.7 `qosDscp`,
    /// config `qos-dscp`), `None` = not marked.
    pub qos_dscp: Option<u8>,
    /// Beyond upstream: `rtpjitterbuffer` on received streams (config
    /// `WebRtcEndpoint.jitterBuffer`, default off: packets are forwarded as
    /// they arrive, see `nojitter`).
    pub jitter_buffer: bool,
}

pub fn default_remb() -> RembParams {
    RembParams {
        packets_recv_interval_top: 100,
        exponential_factor: 0.04,
        lineal_factor_min: None,
        lineal_factor_grade: 30.0,
        decrement_factor: 0.5,
        threshold_factor: 0.8,
        up_losses: 12,
        remb_on_connect: 300_000,
    }
}

impl Settings {
    pub fn from_config(cfg: &CoreConfig) -> Settings {
        let s = |k: &str| cfg.module_str("kurento", "WebRtcEndpoint", k).unwrap_or_default();
        let port =
            |k: &str, d: i64| cfg.module_i64("kurento", "BaseRtpEndpoint", k).unwrap_or(d).clamp(0, 65535) as u32;
        let env_loopback = std::env::var("KMS_ICE_LOOPBACK").is_ok_and(|v| v == "1" || v == "true");
        Settings {
            stun_server_address: s("stunServerAddress"),
            stun_server_port: cfg.module_i64("kurento", "WebRtcEndpoint", "stunServerPort").unwrap_or(3478) as i32,
            turn_url: cfg
                .module_str("kurento", "WebRtcEndpoint", "turnURL")
                .or_else(|| cfg.module_str("kurento", "WebRtcEndpoint", "turnUrl"))
                .unwrap_or_default(),
            network_interfaces: s("networkInterfaces"),
            external_ipv4: s("externalIPv4"),
            external_ipv6: s("externalIPv6"),
            ice_tcp: cfg.module_bool("kurento", "WebRtcEndpoint", "iceTcp").unwrap_or(true),
            ice_loopback: env_loopback || cfg.module_bool("kurento", "WebRtcEndpoint", "iceLoopback").unwrap_or(false),
            min_port: port("minPort", 1024),
            max_port: port("maxPort", 65535),
            mtu: cfg.module_i64("kurento", "BaseRtpEndpoint", "mtu").unwrap_or(1200).clamp(200, 65000) as i32,
            max_audio_recv_bandwidth: 0,
            max_video_recv_bandwidth: 0,
            min_video_recv_bandwidth: 0,
            min_video_send_bandwidth: 100,
            max_video_send_bandwidth: 500,
            remb: default_remb(),
            num_audio_medias: cfg.module_i64("kurento", "SdpEndpoint", "numAudioMedias").unwrap_or(1).clamp(0, 16),
            num_video_medias: cfg.module_i64("kurento", "SdpEndpoint", "numVideoMedias").unwrap_or(1).clamp(0, 16),
            qos_dscp: cfg.module_str("kurento", "WebRtcEndpoint", "qos-dscp").and_then(|n| dscp_codepoint(n.trim())),
            jitter_buffer: cfg.module_bool("kurento", "WebRtcEndpoint", "jitterBuffer").unwrap_or(false),
        }
    }

    /// `stun://ip:port` for webrtcbin, if configured.
    pub fn stun_uri(&self) -> Option<String> {
        let a = self.stun_server_address.trim();
        (!a.is_empty() && a.parse::<std::net::IpAddr>().is_ok())
            .then(|| format!("stun://{a}:{}", self.stun_server_port))
    }

    /// `turn(s)://user:pass@ip:port?transport=...` for webrtcbin, if
    /// configured (spec §10.7: `user:password@IP:port[?transport=udp|tcp|tls]`).
    pub fn turn_uri(&self) -> Option<String> {
        let u = self.turn_url.trim();
        if u.is_empty() || !u.contains('@') {
            return None;
        }
        let u = u.trim_start_matches("turn:").trim_start_matches("turns:").trim_start_matches("//");
        let (scheme, rest) = if u.contains("transport=tls") {
            ("turns", u.replace("?transport=tls", "").replace("&transport=tls", ""))
        } else {
            ("turn", u.to_string())
        };
        Some(format!("{scheme}://{rest}"))
    }

    /// The video bitrate range (bps) a receiver of our video may ask for.
    pub fn video_send_range(&self) -> (u32, u32) {
        let min = self.min_video_send_bandwidth.max(0) as u32 * 1000;
        let max =
            if self.max_video_send_bandwidth > 0 { self.max_video_send_bandwidth as u32 * 1000 } else { u32::MAX };
        (min, max.max(min))
    }

    /// The bitrate range (bps) we ask our video senders for (REMB).
    pub fn video_recv_range(&self) -> (u32, u32) {
        let min = (self.min_video_recv_bandwidth.max(30)) as u32 * 1000;
        let max =
            if self.max_video_recv_bandwidth > 0 { self.max_video_recv_bandwidth as u32 * 1000 } else { u32::MAX };
        (min, max.max(min))
    }
}

/// A host candidate with its address replaced by `externalIPv4`/`IPv6`
/// (spec §10.7: what a NAT in front of the server makes of it); other
/// candidates, and families without an external address, unchanged.
pub fn external_candidate(cand: &str, v4: &str, v6: &str) -> String {
    if v4.is_empty() && v6.is_empty() {
        return cand.to_string();
    }
    let mut f: Vec<String> = cand.split(' ').map(str::to_string).collect();
    if f.len() < 8 || f[7] != "host" {
        return cand.to_string();
    }
    match f[4].parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) if !v4.is_empty() => f[4] = v4.to_string(),
        Ok(std::net::IpAddr::V6(_)) if !v6.is_empty() => f[4] = v6.to_string(),
        _ => {}
    }
    f.join(" ")
}

/// The DSCP codepoint for a constructor's `qosDscp` (spec §10.7):
/// `NO_VALUE` defers to the configured default, `NO_DSCP` marks nothing.
pub fn resolve_dscp(ctor: &str, configured: Option<u8>) -> Option<u8> {
    match ctor {
        "NO_VALUE" | "" => configured,
        other => dscp_codepoint(other),
    }
}

/// DSCP codepoint of a DSCPValue name (spec §10.7).
pub fn dscp_codepoint(name: &str) -> Option<u8> {
    Some(match name {
        "NO_VALUE" | "NO_DSCP" => return None,
        "AUDIO_VERYLOW" | "VIDEO_VERYLOW" | "DATA_VERYLOW" | "CHROME_LOW" | "LE" => 1,
        "AUDIO_LOW" | "VIDEO_LOW" | "DATA_LOW" | "CS0" => 0,
        "AUDIO_MEDIUM" | "AUDIO_HIGH" | "EF" => 46,
        "VIDEO_MEDIUM" | "VIDEO_HIGH" => 36,
        "DATA_MEDIUM" | "DATA_HIGH" | "AF11" => 10,
        "AF12" => 12,
        "AF13" => 14,
        "AF21" => 18,
        "AF22" => 20,
        "AF23" => 22,
        "AF31" => 26,
        "AF32" => 28,
        "AF33" => 30,
        "AF41" => 34,
        "AF42" => 36,
        "AF43" => 38,
        "CS1" => 8,
        "CS2" => 16,
        "CS3" => 24,
        "CS4" => 32,
        "CS5" => 40,
        "CS6" => 48,
        "CS7" => 56,
        _ => return None,
    })
}

/// The interface names of a `networkInterfaces` value (comma-separated,
/// as KMS's).
pub fn interface_names(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_addresses_replace_host_candidates_only() {
        let host = "candidate:1 1 udp 2130706431 192.0.2.2 5000 typ host";
        assert_eq!(
            external_candidate(host, "198.51.100.1", ""),
            "candidate:1 1 udp 2130706431 198.51.100.1 5000 typ host"
        );
        assert_eq!(external_candidate(host, "", "2001:db8::1"), host, "no IPv4 external address");
        let relay = "candidate:2 1 udp 16777215 203.0.113.5 6000 typ relay raddr 192.0.2.2 rport 5001";
        assert_eq!(external_candidate(relay, "198.51.100.1", ""), relay);
    }

    #[test]
    fn stun_and_turn_urls_become_webrtcbin_uris() {
        let mut s = Settings::from_config(&CoreConfig::default());
        assert_eq!(s.stun_uri(), None);
        s.stun_server_address = "10.0.0.1".into();
        assert_eq!(s.stun_uri().as_deref(), Some("stun://10.0.0.1:3478"));
        s.stun_server_address = "stun.example.com".into();
        assert_eq!(s.stun_uri(), None, "IP only, no DNS");
        s.turn_url = "user:pass@10.0.0.2:3478".into();
        assert_eq!(s.turn_uri().as_deref(), Some("turn://user:pass@10.0.0.2:3478"));
        s.turn_url = "user:pass@10.0.0.2:5349?transport=tls".into();
        assert_eq!(s.turn_uri().as_deref(), Some("turns://user:pass@10.0.0.2:5349"));
    }

    #[test]
    fn bandwidth_ranges_are_in_bps() {
        let s = Settings::from_config(&CoreConfig::default());
        assert_eq!(s.video_send_range(), (100_000, 500_000));
        assert_eq!(s.video_recv_range(), (30_000, u32::MAX));
        assert_eq!(dscp_codepoint("AUDIO_HIGH"), Some(46));
        assert_eq!(dscp_codepoint("NO_VALUE"), None);
        assert_eq!(resolve_dscp("NO_VALUE", Some(8)), Some(8));
        assert_eq!(resolve_dscp("NO_DSCP", Some(8)), None);
        assert_eq!(resolve_dscp("VIDEO_HIGH", None), Some(36));
    }
}
