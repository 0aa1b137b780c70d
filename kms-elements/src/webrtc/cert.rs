//! DTLS certificates (spec §10.7, §11.3): `certificateKeyType`,
//! `pemCertificateRSA` and `pemCertificateECDSA`.
//!
//! webrtcbin (GStreamer 1.22) has no certificate setting: each transport's
//! `dtlsdec` creates its DTLS connection, with the process-wide self-signed
//! RSA agent, as soon as webrtcbin gives it a connection id. Setting `pem`
//! afterwards only swaps the agent the SDP fingerprint is read from, not the
//! one the handshake uses. So when a transport's bins are added to webrtcbin
//! (before they leave NULL) we set `pem` and then a *fresh* connection id on
//! the decoder, which makes it build a new connection with the new agent,
//! and the same id on the encoder, which looks its connection up by id when
//! it starts. webrtcbin computes the SDP fingerprint while it creates the
//! description, before the transport's bins are added, so the fingerprint
//! lines of our local descriptions are rewritten to this certificate's
//! ([`fingerprint`]). Fingerprint and handshake then agree.
//!
//! Without a configured PEM, RSA endpoints keep GStreamer's generated RSA
//! certificate (one per process, as upstream) and ECDSA endpoints share one
//! P-256 certificate generated here on first use.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use gst::prelude::*;
use kms_core::config::CoreConfig;

use crate::api::elements::CertificateKeyType;

/// The PEM (certificate followed by its private key) an endpoint of this key
/// type presents, or `None` for GStreamer's built-in RSA certificate.
///
/// A configured file that does not exist is ignored with a warning, as
/// upstream does (a generated certificate is used). A file that exists but
/// is no usable certificate is an error: the endpoint would otherwise
/// present another certificate than the one the operator configured (and
/// e.g. pinned), with nothing but a log line to say so.
pub fn pem_for(cfg: &CoreConfig, key_type: CertificateKeyType) -> Result<Option<Arc<str>>, String> {
    let key = match key_type {
        CertificateKeyType::Ecdsa => "pemCertificateECDSA",
        _ => "pemCertificateRSA",
    };
    if let Some(path) = cfg.module_str("kurento", "WebRtcEndpoint", key).filter(|p| !p.trim().is_empty()) {
        match load(cfg, path.trim()) {
            Ok(Some(pem)) => return Ok(Some(pem)),
            Ok(None) => tracing::warn!("{key} '{path}' ignored: file not found"),
            Err(why) => return Err(format!("{key} '{path}' is not a usable certificate: {why}")),
        }
    }
    Ok(match key_type {
        CertificateKeyType::Ecdsa => generated_ecdsa(),
        _ => None,
    })
}

/// Reads a configured PEM, resolving a relative path against the module
/// configuration directories (`<dir>/kurento`, `<dir>`) and `/etc/kurento`.
fn load(cfg: &CoreConfig, path: &str) -> Result<Option<Arc<str>>, String> {
    let p = Path::new(path);
    let candidates: Vec<PathBuf> = if p.is_absolute() {
        vec![p.to_path_buf()]
    } else {
        cfg.config_dirs
            .iter()
            .flat_map(|d| [d.join("kurento").join(p), d.join(p)])
            .chain(std::iter::once(Path::new("/etc/kurento").join(p)))
            .collect()
    };
    let Some(file) = candidates.iter().find(|c| c.is_file()) else { return Ok(None) };
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    validate(&text)?;
    if fingerprint(&text).is_none() {
        return Err("the certificate cannot be decoded".into());
    }
    Ok(Some(Arc::from(text)))
}

/// A usable PEM has a certificate and an unencrypted private key; OpenSSL
/// would otherwise fail later, inside GStreamer, with only a log line.
fn validate(text: &str) -> Result<(), String> {
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("no certificate in the file".into());
    }
    if !text.contains("PRIVATE KEY-----") {
        return Err("no private key in the file".into());
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err("the private key is encrypted".into());
    }
    Ok(())
}

/// One self-signed P-256 certificate per process (spec §10.7).
fn generated_ecdsa() -> Option<Arc<str>> {
    static CERT: OnceLock<Option<Arc<str>>> = OnceLock::new();
    CERT.get_or_init(|| {
        let made = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).and_then(|key| {
            let mut params = rcgen::CertificateParams::new(vec!["kurento-rs".to_string()])?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(rcgen::DnType::CommonName, "kurento-rs");
            let cert = params.self_signed(&key)?;
            Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
        });
        match made {
            Ok(pem) => Some(Arc::from(pem)),
            Err(e) => {
                tracing::error!("cannot generate the ECDSA DTLS certificate: {e}; using RSA");
                None
            }
        }
    })
    .clone()
}

/// SHA-256 fingerprint of the PEM's (first) certificate, in SDP form
/// (`AB:CD:...`, RFC 8122).
/// The DER bodies of a PEM's certificate and private key (for transports
/// that take DER, the native one).
pub fn der_pair(pem: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    let block = |begin: &dyn Fn(&str) -> bool| -> Option<Vec<u8>> {
        let body: String = pem
            .lines()
            .skip_while(|l| !begin(l))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END "))
            .map(str::trim)
            .collect();
        base64::engine::general_purpose::STANDARD.decode(body).ok().filter(|d| !d.is_empty())
    };
    let cert = block(&|l| l.starts_with("-----BEGIN CERTIFICATE-----"))?;
    let key = block(&|l| l.starts_with("-----BEGIN ") && l.contains("PRIVATE KEY-----"))?;
    Some((cert, key))
}

pub fn fingerprint(pem: &str) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).ok().filter(|d| !d.is_empty())?;
    let digest = sha2::Sha256::digest(&der);
    Some(digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

/// Makes every DTLS transport webrtcbin creates use one PEM (see the
/// module documentation for why this happens when the transport bins are
/// added): [`Rekey::apply`] is given the elements of each bin added.
pub struct Rekey {
    pem: Arc<str>,
    /// Connection id of the transport whose first bin was handled, waiting
    /// for its second. webrtcbin adds the send bin, then the receive bin,
    /// before either changes state, so ids go from whichever comes first.
    pending: parking_lot::Mutex<Option<String>>,
}

impl Rekey {
    pub fn new(pem: Arc<str>) -> Rekey {
        Rekey { pem, pending: parking_lot::Mutex::new(None) }
    }

    pub fn apply(&self, elements: &[gst::Element]) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let find = |factory: &str| elements.iter().find(|e| e.factory().is_some_and(|f| f.name() == factory));
        let (enc, dec) = (find("dtlssrtpenc"), find("dtlssrtpdec"));
        if enc.is_none() && dec.is_none() {
            return;
        }
        let mut pending = self.pending.lock();
        let id = pending.take().unwrap_or_else(|| {
            let id = format!("kms-rs-dtls-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            *pending = Some(id.clone());
            id
        });
        if let Some(dec) = dec {
            dec.set_property("pem", self.pem.as_ref());
            dec.set_property("connection-id", &id);
        }
        if let Some(enc) = enc {
            enc.set_property("connection-id", &id);
        }
        tracing::debug!(connection = %id, "DTLS transport uses the configured certificate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_incomplete_pems() {
        assert!(validate("-----BEGIN CERTIFICATE-----\n").is_err());
        assert!(validate("-----BEGIN PRIVATE KEY-----\n").is_err());
        assert!(validate("-----BEGIN CERTIFICATE-----\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n").is_err());
        assert!(validate("-----BEGIN CERTIFICATE-----\n-----BEGIN EC PRIVATE KEY-----\n").is_ok());
    }

    #[test]
    fn generated_ecdsa_is_cached_and_complete() {
        let a = generated_ecdsa().expect("generated");
        let b = generated_ecdsa().expect("generated");
        assert!(Arc::ptr_eq(&a, &b));
        validate(&a).unwrap();
        let fp = fingerprint(&a).expect("fingerprint");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fingerprint("no certificate").is_none());
    }
}
