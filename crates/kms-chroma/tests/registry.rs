//! `ChromaFilter` through the registry the server uses: created by name in
//! a pipeline, its constructor checks, `setBackground`/`unsetBackground`
//! with images from the media root, and media connections. The key itself
//! is unit tested in `src/key.rs`; pixels through a browser in
//! `tests/browser/chroma.test.js`.

use std::path::PathBuf;

use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::json;

fn registry(media_root: &std::path::Path) -> Registry {
    kms_core::module::init().expect("GStreamer initializes");
    let hub = SessionHub::new(&ServerConfig::default());
    let mut config = CoreConfig::default();
    config.media_access.media_roots = vec![media_root.to_path_buf()];
    Registry::new(
        vec![
            kms_core::module::descriptor(),
            kms_elements::descriptor(),
            kms_filters::descriptor(),
            kms_chroma::descriptor(),
        ],
        hub.notifier(),
        config,
    )
}

/// A media root with a 4×4 blue PNG, encoded by GStreamer itself.
fn media_root() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kms-chroma-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("blue.png");
    if !png.exists() {
        gst::init().unwrap();
        let desc = format!(
            "videotestsrc pattern=blue num-buffers=1 ! video/x-raw,width=4,height=4 ! pngenc ! filesink location={}",
            png.display()
        );
        let p = gst::parse::launch(&desc).unwrap();
        use gst::prelude::*;
        p.set_state(gst::State::Playing).unwrap();
        p.bus().unwrap().timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos]).unwrap();
        p.set_state(gst::State::Null).unwrap();
    }
    dir
}

const WINDOW: fn() -> serde_json::Value = || json!({"__module__": "chroma", "__type__": "WindowParam", "topRightCornerX": 0, "topRightCornerY": 0, "width": 10, "height": 10});

#[test]
fn chroma_filter_is_created_checks_its_parameters_and_loads_backgrounds() {
    let root = media_root();
    let r = registry(&root);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let blue = format!("file://{}/blue.png", root.display());
    let f = r
        .create(
            &s,
            "chroma.ChromaFilter",
            Some(&json!({"mediaPipeline": p, "window": WINDOW(), "backgroundImage": blue})),
        )
        .unwrap();
    assert!(f.ends_with("_chroma.ChromaFilter"), "{f}");
    r.invoke(&s, &f, "unsetBackground", None).unwrap();
    r.invoke(&s, &f, "setBackground", json!({"uri": blue}).as_object()).unwrap();
    // Unreachable or refused images: errors, the filter keeps its image.
    let code = |e: kms_jsonrpc::RpcError| e.code;
    let missing = format!("file://{}/missing.png", root.display());
    assert_eq!(code(r.invoke(&s, &f, "setBackground", json!({"uri": missing}).as_object()).unwrap_err()), 40600);
    assert_eq!(
        code(r.invoke(&s, &f, "setBackground", json!({"uri": "file:///etc/passwd"}).as_object()).unwrap_err()),
        40107
    );
    // Bad constructor parameters.
    let mut bad = WINDOW();
    bad["width"] = json!(-4);
    let e = r.create(&s, "ChromaFilter", Some(&json!({"mediaPipeline": p, "window": bad}))).unwrap_err();
    assert_eq!(e.code, 40001, "{}", e.message);
    let e = r.create(&s, "ChromaFilter", Some(&json!({"mediaPipeline": p}))).unwrap_err();
    assert_eq!(e.code, 40001, "{}", e.message);
    let e = r
        .create(&s, "ChromaFilter", Some(&json!({"mediaPipeline": p, "window": WINDOW(), "backgroundImage": missing})))
        .unwrap_err();
    assert_eq!(e.code, 40600, "{}", e.message);
    // It is a MediaElement: it connects like any other.
    let sink = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    r.invoke(&s, &f, "connect", json!({"sink": sink}).as_object()).unwrap();
    r.release(&s, &p).unwrap();
}

/// Our descriptor files are upstream's, byte for byte (the copies the
/// module-creator fixtures, and thus the descriptor tests, use).
#[test]
fn the_descriptor_is_upstreams() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for f in ["chroma.kmd.json", "chroma.ChromaFilter.kmd.json"] {
        let ours = std::fs::read(here.join("kmd").join(f)).unwrap();
        let upstream = std::fs::read(here.join("../../module-creator/tests/fixtures/kmd").join(f)).unwrap();
        assert!(ours == upstream, "{f} differs from upstream's");
    }
    let d = kms_chroma::descriptor();
    assert_eq!((d.name, d.version), ("chroma", "7.3.1-dev"));
    let kmd: serde_json::Value = serde_json::from_str(d.kmd).unwrap();
    assert_eq!(kmd["remoteClasses"][0]["name"], "ChromaFilter");
    assert_eq!(kmd["complexTypes"][0]["name"], "WindowParam");
}

/// `js/` is what kurento-module-creator generates from `kmd/` today
/// (regenerate: `target/debug/kurento-module-creator -r crates/kms-chroma/kmd
/// -c <dir> --js`, then copy `<dir>/chroma` to `crates/kms-chroma/js`).
#[test]
fn the_checked_in_js_client_is_fresh() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (set, _) = module_creator::Builder::new().rom(here.join("kmd")).builtin_deps().load().unwrap();
    let out = std::env::temp_dir().join(format!("kms-chroma-js-{}", std::process::id()));
    let files = module_creator::js_client::generate_js(&set, "chroma", &out).unwrap();
    assert!(!files.is_empty());
    for f in &files {
        let rel = f.strip_prefix(&out).unwrap();
        let ours = std::fs::read(here.join("js").join(rel)).unwrap_or_default();
        assert!(ours == std::fs::read(f).unwrap(), "js/{} is stale", rel.display());
    }
    let _ = std::fs::remove_dir_all(&out);
}
