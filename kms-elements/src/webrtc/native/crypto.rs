//! The crypto provider of the native transport: str0m's OpenSSL provider
//! with its HMAC-SHA1 replaced.
//!
//! Why: with `SRTP_AES128_CM_SHA1_80` (what GStreamer peers such as
//! webrtcbin and the benchmark's generator negotiate, and what many SIP
//! gateways use) every RTP and RTCP packet is authenticated with
//! HMAC-SHA1 both ways. str0m-openssl computes it by building an
//! `EVP_PKEY` and a signer per call, and on OpenSSL 3 each of those walks
//! the provider tables (`OPENSSL_LH_doall_arg`, name lookups): a perf
//! profile of the loopback benchmark at 48 sessions put 36 % of a loop
//! thread's samples there. RustCrypto's HMAC over SHA-1 (SHA-NI where the
//! CPU has it) keys in two block compressions and allocates nothing.

use std::sync::{Arc, OnceLock};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use str0m::config::CryptoProvider;
use str0m::crypto::Sha1HmacProvider;

/// HMAC-SHA1 without per-call setup (SRTP authentication, STUN integrity).
#[derive(Debug)]
struct HmacSha1;

impl Sha1HmacProvider for HmacSha1 {
    fn sha1_hmac(&self, key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
        // HMAC accepts keys of any length (longer ones are hashed first),
        // so this cannot fail.
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        for p in payloads {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

static HMAC_SHA1: HmacSha1 = HmacSha1;

/// The provider every native peer is built with (one per process).
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(CryptoProvider { sha1_hmac_provider: &HMAC_SHA1, ..str0m::crypto::from_feature_flags() }))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 test cases 1 and 6 (a key longer than the block), and a
    /// split payload equal to the whole.
    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        let h = HmacSha1;
        assert_eq!(h.sha1_hmac(&[0x0b; 20], &[b"Hi There"]), hex("b617318655057264e28bc0b6fb378c8ef146be00"));
        assert_eq!(
            h.sha1_hmac(&[0xaa; 80], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]),
            hex("aa4ae5e15272d00e95705637ce8a3b55ed402112")
        );
        assert_eq!(h.sha1_hmac(b"key", &[b"Hi ", b"There"]), h.sha1_hmac(b"key", &[b"Hi There"]));
        // The same value as the OpenSSL provider it replaces.
        let ossl = str0m::crypto::from_feature_flags();
        assert_eq!(
            h.sha1_hmac(b"0123456789abcdefghij", &[b"an RTP packet", &7u32.to_be_bytes()]),
            ossl.sha1_hmac_provider.sha1_hmac(b"0123456789abcdefghij", &[b"an RTP packet", &7u32.to_be_bytes()])
        );
    }

    fn hex(s: &str) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }
}
