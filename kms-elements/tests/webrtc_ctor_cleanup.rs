//! A WebRtcEndpoint constructor that fails halfway (here: a configured
//! DTLS certificate that is no certificate, found after the endpoint's bin
//! joined the pipeline) leaves the pipeline as it was: `ElementCore`'s
//! `Drop` takes the bin out again. On webrtcbin: the native transport
//! reads the certificate before it builds anything.

use gst::prelude::*;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::json;

fn registry(modules: serde_json::Value) -> Registry {
    kms_core::module::init().unwrap();
    let hub = SessionHub::new(&ServerConfig::default());
    let config = CoreConfig { modules, ..CoreConfig::default() };
    Registry::new(vec![kms_core::module::descriptor(), kms_elements::descriptor()], hub.notifier(), config)
}

fn children(r: &Registry, pipeline: &str) -> Vec<String> {
    let h = r.get(pipeline).unwrap();
    let p = h.remote.pipeline().expect("a pipeline").pipeline.clone();
    p.children().iter().map(|c| c.name().to_string()).collect()
}

#[test]
fn failed_constructor_leaves_no_bin_in_the_pipeline() {
    let dir = std::env::temp_dir().join(format!("kms-ctor-cleanup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pem");
    // Passes the marker check, but the certificate does not decode.
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n").unwrap();
    let r = registry(
        json!({"kurento": {"WebRtcEndpoint": {"pemCertificateRSA": garbage.to_str().unwrap(), "transport": "webrtcbin"}}}),
    );
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    // Something else in the pipeline, so "unchanged" is not just "empty".
    r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let before = children(&r, &p);
    assert_eq!(before.len(), 1, "{before:?}");
    let objects = r.object_count();
    for _ in 0..3 {
        let e = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap_err();
        assert_eq!(e.code, 40108, "{}", e.message);
        assert!(e.message.contains("pemCertificateRSA"), "{}", e.message);
    }
    assert_eq!(children(&r, &p), before, "the failed constructors left nothing behind");
    assert_eq!(r.object_count(), objects, "no object registered");
    // ECDSA endpoints do not use that file: they are created as usual.
    r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p, "certificateKeyType": "ECDSA"}))).unwrap();
    assert_eq!(children(&r, &p).len(), 2);
    r.release(&s, &p).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
