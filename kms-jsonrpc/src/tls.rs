//! The wss:// listener (spec §1.1): certificate chain and private key from
//! one PEM file, optionally with a password-protected key, and an accept
//! loop that completes TLS handshakes concurrently.
//!
//! Supported keys: PKCS#8, PKCS#1 (RSA), SEC1 (EC), and PKCS#8
//! `ENCRYPTED PRIVATE KEY` (PBES2: PBKDF2/scrypt + AES-CBC, what
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` and `openssl genpkey -aes256`
//! produce) decrypted with `secure.password`. Legacy OpenSSL-encrypted
//! PEM (`Proc-Type: 4,ENCRYPTED`) is refused with a message saying how to
//! convert it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;
use crate::error::Error;

/// A client that does not finish its handshake in time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections are refused.
const MAX_PENDING_HANDSHAKES: usize = 256;

const LEGACY_KEY: &str = "legacy OpenSSL-encrypted PEM keys (Proc-Type: 4,ENCRYPTED) are not \
     supported; convert the key with \
     `openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key-pkcs8.pem`";

/// Loads the rustls configuration for `tls`.
pub(crate) fn load_server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, Error> {
    let err = |reason: String| Error::Tls { path: tls.certificate.clone(), reason };
    let pem = std::fs::read(&tls.certificate).map_err(|e| err(format!("cannot read: {e}")))?;
    if String::from_utf8_lossy(&pem).contains("Proc-Type: 4,ENCRYPTED") {
        return Err(err(LEGACY_KEY.to_owned()));
    }
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| err(format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".to_owned()));
    }
    let key = load_key(&pem, tls.password.as_deref()).map_err(err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(format!("unusable certificate/key: {e}")))?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_key(pem_bytes: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem_bytes);
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        let Some(password) = password else {
            return Err("the private key is encrypted but no 'secure.password' is configured".to_owned());
        };
        let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| format!("invalid ENCRYPTED PRIVATE KEY block: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| format!("invalid ENCRYPTED PRIVATE KEY: {e}"))?;
        let doc = info
            .decrypt(password)
            .map_err(|e| format!("cannot decrypt the private key (wrong password or unsupported cipher): {e}"))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec())));
    }
    match PrivateKeyDer::from_pem_slice(pem_bytes) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => Err("no private key found in the PEM file".to_owned()),
        Err(e) => Err(format!("invalid private key: {e}")),
    }
}

/// The text of the first `label` PEM block, armour included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

/// Accepted, handshaken TLS connections for `axum::serve`.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` until `stop` turns true.
    pub fn spawn(listener: TcpListener, acceptor: TlsAcceptor, mut stop: watch::Receiver<bool>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("wss accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // As for plain WebSockets (server.rs): no Nagle delays.
                let _ = tcp.set_nodelay(true);
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many pending TLS handshakes; connection dropped");
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local_addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop stopped (shutdown): never yield again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    fn cfg(name: &str, password: Option<&str>) -> TlsConfig {
        TlsConfig { port: 0, certificate: fixture(name), password: password.map(str::to_owned) }
    }

    #[test]
    fn loads_plain_pem_with_chain_and_key() {
        load_server_config(&cfg("server.pem", None)).unwrap();
        // A password on a plain key is ignored.
        load_server_config(&cfg("server.pem", Some("x"))).unwrap();
    }

    #[test]
    fn loads_encrypted_pkcs8_key_with_password() {
        load_server_config(&cfg("server-encrypted.pem", Some("kurento"))).unwrap();
    }

    #[test]
    fn encrypted_key_errors_are_clear() {
        let e = load_server_config(&cfg("server-encrypted.pem", None)).unwrap_err();
        assert!(e.to_string().contains("no 'secure.password'"), "{e}");
        let e = load_server_config(&cfg("server-encrypted.pem", Some("wrong"))).unwrap_err();
        assert!(e.to_string().contains("cannot decrypt"), "{e}");
        let e = load_server_config(&cfg("server-legacy-encrypted.pem", Some("kurento"))).unwrap_err();
        assert!(e.to_string().contains("openssl pkcs8"), "{e}");
    }

    #[test]
    fn missing_file_and_missing_parts_are_errors() {
        let e = load_server_config(&cfg("does-not-exist.pem", None)).unwrap_err();
        assert!(matches!(e, Error::Tls { .. }));
        let e = load_server_config(&cfg("cert.pem", None)).unwrap_err();
        assert!(e.to_string().contains("no private key"), "{e}");
    }
}
