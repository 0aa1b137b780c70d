//! `PointerDetectorFilter` through the registry the server uses: created
//! by name, its parameter checks, its window methods, and media
//! connections. Tracking itself is unit tested in `src/track.rs`; pixels
//! and events through a browser in `tests/browser/pointerdetector.test.js`.

use std::path::PathBuf;

use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::{Value, json};

fn registry() -> Registry {
    kms_core::module::init().expect("GStreamer initializes");
    let hub = SessionHub::new(&ServerConfig::default());
    let mut config = CoreConfig::default();
    config.media_access.media_roots = vec![std::env::temp_dir()];
    Registry::new(
        vec![
            kms_core::module::descriptor(),
            kms_elements::descriptor(),
            kms_filters::descriptor(),
            kms_pointerdetector::descriptor(),
        ],
        hub.notifier(),
        config,
    )
}

fn region() -> Value {
    json!({"__module__": "pointerdetector", "__type__": "WindowParam", "topRightCornerX": 0, "topRightCornerY": 0, "width": 10, "height": 10})
}

fn window(id: &str, x: i32) -> Value {
    json!({"__module__": "pointerdetector", "__type__": "PointerDetectorWindowMediaParam", "id": id, "upperRightX": x, "upperRightY": 0, "width": 20, "height": 20})
}

#[test]
fn pointer_detector_is_created_checks_its_parameters_and_keeps_windows() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let params = json!({"mediaPipeline": p, "calibrationRegion": region(), "windows": [window("a", 0)]});
    let f = r.create(&s, "pointerdetector.PointerDetectorFilter", Some(&params)).unwrap();
    assert!(f.ends_with("_pointerdetector.PointerDetectorFilter"), "{f}");
    r.invoke(&s, &f, "addWindow", json!({"window": window("b", 40)}).as_object()).unwrap();
    r.invoke(&s, &f, "removeWindow", json!({"windowId": "a"}).as_object()).unwrap();
    r.invoke(&s, &f, "removeWindow", json!({"windowId": "nope"}).as_object()).unwrap();
    r.invoke(&s, &f, "clearWindows", None).unwrap();
    r.invoke(&s, &f, "trackColorFromCalibrationRegion", None).unwrap();
    // Bad windows and regions: 40001; missing images: 40600.
    let mut bad = window("c", 0);
    bad["width"] = json!(-1);
    assert_eq!(r.invoke(&s, &f, "addWindow", json!({"window": bad}).as_object()).unwrap_err().code, 40001);
    let mut img = window("d", 0);
    img["image"] = json!(format!("file://{}/kms-pd-missing.png", std::env::temp_dir().display()));
    assert_eq!(r.invoke(&s, &f, "addWindow", json!({"window": img}).as_object()).unwrap_err().code, 40600);
    let mut bad_region = region();
    bad_region["height"] = json!(0);
    let e = r
        .create(&s, "PointerDetectorFilter", Some(&json!({"mediaPipeline": p, "calibrationRegion": bad_region})))
        .unwrap_err();
    assert_eq!(e.code, 40001, "{}", e.message);
    let e = r.create(&s, "PointerDetectorFilter", Some(&json!({"mediaPipeline": p}))).unwrap_err();
    assert_eq!(e.code, 40001, "{}", e.message);
    let sink = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    r.invoke(&s, &f, "connect", json!({"sink": sink}).as_object()).unwrap();
    r.release(&s, &p).unwrap();
}

/// Our descriptor files are upstream's, byte for byte.
#[test]
fn the_descriptor_is_upstreams() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for f in ["pointerdetector.kmd.json", "pointerdetector.PointerDetectorFilter.kmd.json"] {
        let ours = std::fs::read(here.join("kmd").join(f)).unwrap();
        let upstream = std::fs::read(here.join("../../module-creator/tests/fixtures/kmd").join(f)).unwrap();
        assert!(ours == upstream, "{f} differs from upstream's");
    }
    let d = kms_pointerdetector::descriptor();
    assert_eq!((d.name, d.version), ("pointerdetector", "7.3.1-dev"));
}

/// `js/` is what kurento-module-creator generates from `kmd/` today
/// (regenerate: `target/debug/kurento-module-creator -r crates/kms-pointerdetector/kmd
/// -c <dir> --js`, then copy `<dir>/pointerdetector` to `crates/kms-pointerdetector/js`).
#[test]
fn the_checked_in_js_client_is_fresh() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (set, _) = module_creator::Builder::new().rom(here.join("kmd")).builtin_deps().load().unwrap();
    let out = std::env::temp_dir().join(format!("kms-pointerdetector-js-{}", std::process::id()));
    let files = module_creator::js_client::generate_js(&set, "pointerdetector", &out).unwrap();
    assert!(!files.is_empty());
    for f in &files {
        let rel = f.strip_prefix(&out).unwrap();
        let ours = std::fs::read(here.join("js").join(rel)).unwrap_or_default();
        assert!(ours == std::fs::read(f).unwrap(), "js/{} is stale", rel.display());
    }
    let _ = std::fs::remove_dir_all(&out);
}
