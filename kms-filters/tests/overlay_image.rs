//! Overlay pictures: loaded from files inside the media roots, refused
//! outside them, load failures named by their Error event type.

use std::path::{Path, PathBuf};

use gst::prelude::*;
use kms_core::CoreConfig;
use kms_core::config::MediaAccess;
use kms_filters::overlay_image::{ImageError, ImageSource, load};

fn config(root: &Path) -> CoreConfig {
    CoreConfig {
        media_access: MediaAccess { media_roots: vec![root.to_path_buf()], allowed_hosts: None },
        ..CoreConfig::default()
    }
}

fn temp_root(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kms-overlay-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `w`×`h` PNG of one colour, written by GStreamer.
fn write_png(path: &Path, w: u32, h: u32, rgb: u32) {
    gst::init().unwrap();
    let desc = format!(
        "videotestsrc pattern=solid-color foreground-color={:#010x} num-buffers=1 ! video/x-raw,width={w},height={h} ! videoconvert ! pngenc snapshot=true ! filesink location={}",
        0xff00_0000u32 | rgb,
        path.display()
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos, gst::MessageType::Error]);
    assert!(matches!(msg.map(|m| m.type_()), Some(gst::MessageType::Eos)));
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_png_inside_the_media_roots_decodes_to_bgra() {
    let root = temp_root("ok");
    let file = root.join("red.png");
    write_png(&file, 40, 30, 0xff0000);
    let src = ImageSource::check(&config(&root), &format!("file://{}", file.display())).unwrap();
    let img = load(&src).unwrap();
    assert_eq!((img.width, img.height), (40, 30));
    let map = img.buffer.map_readable().unwrap();
    assert_eq!(map.len(), 40 * 30 * 4);
    // BGRA: blue, green, red, alpha.
    assert_eq!(&map[..4], &[0, 0, 255, 255]);
    assert!(img.buffer.meta::<gst_video::VideoMeta>().is_some());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn files_outside_the_media_roots_and_other_schemes_are_refused() {
    let root = temp_root("refused");
    let cfg = config(&root);
    for uri in ["file:///etc/passwd", "rtsp://127.0.0.1/x", "fd://0", "not a uri"] {
        assert!(matches!(ImageSource::check(&cfg, uri), Err(ImageError::Refused(_))), "{uri}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn missing_files_and_non_pictures_fail_with_a_kind() {
    let root = temp_root("fail");
    let cfg = config(&root);
    let missing = ImageSource::check(&cfg, &format!("file://{}/none.png", root.display())).unwrap();
    let e = load(&missing).unwrap_err();
    assert!(e.kind().starts_with("RESOURCE_ERROR"), "{e:?}");
    assert!(e.to_string().contains("none.png"), "{e}");

    let text = root.join("text.png");
    std::fs::write(&text, b"this is not a picture at all, just some text").unwrap();
    let e = load(&ImageSource::check(&cfg, &format!("file://{}", text.display())).unwrap()).unwrap_err();
    assert!(e.kind().starts_with("STREAM_ERROR") || e.kind().starts_with("RESOURCE_ERROR"), "{e:?}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_refused_connection_is_a_resource_error() {
    gst::init().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let src = ImageSource::check(&CoreConfig::default(), &format!("http://127.0.0.1:{port}/x.png")).unwrap();
    let e = load(&src).unwrap_err();
    assert!(e.kind().starts_with("RESOURCE_ERROR"), "{e:?}");
}
