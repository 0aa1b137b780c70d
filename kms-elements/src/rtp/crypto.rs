//! SDES-SRTP keys of the RtpEndpoint (spec §10.8, RFC 4568): the
//! constructor's `crypto` parameter checked and turned into a master key,
//! the `a=crypto` lines that carry it, and the parameters `srtpenc` /
//! `srtpdec` take. Pure; unit-tested.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_core::Error;

use crate::api::elements::{CryptoSuite, SDES};

/// Master key plus salt, in bytes, of the AES-128 suites.
pub const KEY_LEN_128: usize = 30;
/// Master key plus salt, in bytes, of the AES-256 suites.
pub const KEY_LEN_256: usize = 46;

/// The SRTP master key (key + salt) an endpoint encrypts what it sends with.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub suite: CryptoSuite,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for MasterKey {
    // Never log key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, {} bytes)", self.suite, self.bytes.len())
    }
}

/// Expected key + salt length of a suite.
pub fn key_len(suite: CryptoSuite) -> usize {
    match suite {
        CryptoSuite::Aes128CmHmacSha132 | CryptoSuite::Aes128CmHmacSha180 => KEY_LEN_128,
        CryptoSuite::Aes256CmHmacSha132 | CryptoSuite::Aes256CmHmacSha180 => KEY_LEN_256,
    }
}

/// The suite's name in SDP (RFC 4568 §6.2, RFC 6188 §7.1).
pub fn sdp_name(suite: CryptoSuite) -> &'static str {
    match suite {
        CryptoSuite::Aes128CmHmacSha132 => "AES_CM_128_HMAC_SHA1_32",
        CryptoSuite::Aes128CmHmacSha180 => "AES_CM_128_HMAC_SHA1_80",
        CryptoSuite::Aes256CmHmacSha132 => "AES_256_CM_HMAC_SHA1_32",
        CryptoSuite::Aes256CmHmacSha180 => "AES_256_CM_HMAC_SHA1_80",
    }
}

fn from_sdp_name(name: &str) -> Option<CryptoSuite> {
    CryptoSuite::ALL.iter().copied().find(|s| sdp_name(*s) == name)
}

/// The master key of a constructor's `crypto` (spec §10.8): `None` when no
/// suite is set (plain RTP); `key` (raw) or `keyBase64` must have the
/// suite's exact length (40107 otherwise); neither = a random key.
pub fn master_key(sdes: &SDES) -> Result<Option<MasterKey>, Error> {
    let Some(suite) = sdes.crypto else { return Ok(None) };
    let want = key_len(suite);
    let bytes = if let Some(k) = sdes.key.as_deref().filter(|k| !k.is_empty()) {
        k.as_bytes().to_vec()
    } else if let Some(k) = sdes.key_base64.as_deref().filter(|k| !k.is_empty()) {
        B64.decode(k.trim()).map_err(|_| Error::IllegalParam("Master key is not valid Base64".into()))?
    } else {
        random_bytes(want)?
    };
    if bytes.len() != want {
        return Err(Error::IllegalParam(format!(
            "Master key size is wrong: got {} bytes, {suite} needs {want}",
            bytes.len()
        )));
    }
    Ok(Some(MasterKey { suite, bytes }))
}

/// Bytes from the kernel's CSPRNG (`getrandom`, as KMS).
fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: writes at most `n - filled` bytes into the rest of `out`.
        let r = unsafe { libc::getrandom(out[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Unexpected(format!("Cannot generate an SRTP key: {e}")));
        }
        filled += r as usize;
    }
    Ok(out)
}

/// The value of an `a=crypto` attribute: `<tag> <suite> inline:<key|salt>`.
pub fn attribute(tag: u32, key: &MasterKey) -> String {
    format!("{tag} {} inline:{}", sdp_name(key.suite), B64.encode(&key.bytes))
}

/// One parsed `a=crypto` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub tag: u32,
    pub key: MasterKey,
}

/// Parses an `a=crypto` value; `None` for suites or keys we cannot use
/// (an unknown suite, session parameters are ignored, a key of the wrong
/// length). Lifetime and MKI suffixes (`|2^31|1:1`) are accepted and
/// ignored.
pub fn parse_attribute(value: &str) -> Option<Offered> {
    let mut parts = value.split_whitespace();
    let tag = parts.next()?.parse::<u32>().ok()?;
    let suite = from_sdp_name(parts.next()?)?;
    let params = parts.next()?;
    let inline = params.strip_prefix("inline:")?;
    let b64 = inline.split('|').next()?;
    let bytes = B64.decode(b64).ok()?;
    (bytes.len() == key_len(suite)).then_some(Offered { tag, key: MasterKey { suite, bytes } })
}

/// `srtpenc`/`srtpdec` parameters of a suite: (cipher, RTP auth, RTCP
/// auth). SRTCP always uses the 80-bit tag (RFC 4568 §6.2.1).
pub fn srtp_params(suite: CryptoSuite) -> (&'static str, &'static str, &'static str) {
    let cipher = match key_len(suite) {
        KEY_LEN_128 => "aes-128-icm",
        _ => "aes-256-icm",
    };
    let auth = match suite {
        CryptoSuite::Aes128CmHmacSha132 | CryptoSuite::Aes256CmHmacSha132 => "hmac-sha1-32",
        _ => "hmac-sha1-80",
    };
    (cipher, auth, "hmac-sha1-80")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdes(suite: Option<CryptoSuite>, key: Option<&str>, b64: Option<&str>) -> SDES {
        SDES { key: key.map(str::to_string), key_base64: b64.map(str::to_string), crypto: suite }
    }

    #[test]
    fn no_suite_means_plain_rtp() {
        assert_eq!(master_key(&sdes(None, Some("x"), None)).unwrap(), None);
    }

    #[test]
    fn every_suite_gets_a_random_key_of_its_length() {
        for s in CryptoSuite::ALL {
            let k = master_key(&sdes(Some(*s), None, None)).unwrap().unwrap();
            assert_eq!(k.bytes.len(), key_len(*s));
            let other = master_key(&sdes(Some(*s), None, None)).unwrap().unwrap();
            assert_ne!(k.bytes, other.bytes, "random");
        }
    }

    #[test]
    fn given_keys_must_have_the_exact_length() {
        let k30 = "0123456789012345678901234567890"[..30].to_string();
        let k = master_key(&sdes(Some(CryptoSuite::Aes128CmHmacSha180), Some(&k30), None)).unwrap().unwrap();
        assert_eq!(k.bytes, k30.as_bytes());
        let e = master_key(&sdes(Some(CryptoSuite::Aes256CmHmacSha180), Some(&k30), None)).unwrap_err();
        assert_eq!(e.code(), 40107);
        assert!(e.to_string().starts_with("Master key size is wrong"));
        let b46 = B64.encode([7u8; 46]);
        let k = master_key(&sdes(Some(CryptoSuite::Aes256CmHmacSha132), None, Some(&b46))).unwrap().unwrap();
        assert_eq!(k.bytes, vec![7u8; 46]);
        let e = master_key(&sdes(Some(CryptoSuite::Aes128CmHmacSha132), None, Some(&b46))).unwrap_err();
        assert_eq!(e.code(), 40107);
        let e = master_key(&sdes(Some(CryptoSuite::Aes128CmHmacSha132), None, Some("***"))).unwrap_err();
        assert_eq!(e.to_string(), "Master key is not valid Base64");
    }

    #[test]
    fn crypto_attributes_round_trip() {
        for s in CryptoSuite::ALL {
            let key = MasterKey { suite: *s, bytes: (0..key_len(*s) as u8).collect() };
            let a = attribute(1, &key);
            assert!(a.starts_with(&format!("1 {} inline:", sdp_name(*s))));
            assert_eq!(parse_attribute(&a), Some(Offered { tag: 1, key: key.clone() }));
            assert_eq!(parse_attribute(&format!("{a}|2^31|1:1")).unwrap().key, key);
        }
        assert_eq!(parse_attribute("1 F8_128_HMAC_SHA1_80 inline:AAAA"), None);
        assert_eq!(parse_attribute("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"), None, "short key");
        assert_eq!(srtp_params(CryptoSuite::Aes256CmHmacSha132), ("aes-256-icm", "hmac-sha1-32", "hmac-sha1-80"));
    }
}
