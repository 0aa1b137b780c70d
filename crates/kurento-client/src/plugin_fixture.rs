//! Client code generated for a third-party style module
//! (`tests/fixtures/clientdemo.kmd.json`) with the default paths a module
//! crate would use. That it compiles here proves plugin modules build
//! against the public runtime; the checks below pin the corner cases.

include!(concat!(env!("OUT_DIR"), "/clientdemo_client.rs"));

use clientdemo::events::DemoDetected;
use clientdemo::{DemoFilter, DemoFilterParams, DemoMode, DemoStats, DemoWindow};
use serde_json::json;

use crate::{MediaElement, MediaPipeline, MediaType, PassThrough, Polymorphic, RemoteClass, Result, Stats};

/// Never run: it only has to type-check.
#[allow(dead_code)]
async fn api_shape(pipeline: MediaPipeline, peer: PassThrough) -> Result<()> {
    // Parent from the receiver, other object params as upcast proxies,
    // optional constructor params as chained setters.
    let params = DemoFilterParams::new(MediaElement::from(&peer)).mode(DemoMode::Slow).label("x");
    let filter = pipeline.create::<DemoFilter>(params).await?;
    // The descriptor's `release` does not hide RemoteObject::release.
    filter.release_method().await?;
    let w = DemoWindow { id: "w".into(), height: None };
    filter.set_window(&w).label("left").await?;
    let _: Option<MediaElement> = filter.get_peer().await?;
    let _: std::collections::BTreeMap<String, Polymorphic<Stats>> = filter.get_stats2().await?;
    filter.set_level(3).await?;
    let _: Vec<DemoWindow> = filter.get_windows().await?;
    // Own and inherited events; inherited methods through Deref.
    let _own = filter.on::<DemoDetected>().await?;
    let _inherited = filter.on::<crate::events::ElementConnected>().await?;
    filter.connect(&peer).media_type(MediaType::Audio).await?;
    filter.release().await
}

#[test]
fn class_metadata_is_qualified_with_the_module_name() {
    assert_eq!(DemoFilter::QUALIFIED_TYPE, "clientdemo.DemoFilter");
    assert_eq!(
        DemoFilter::HIERARCHY,
        &["kurento.Filter", "kurento.MediaElement", "kurento.MediaObject"],
        "as describe reports it (spec §4.2)"
    );
}

#[test]
fn plugin_types_use_their_module_namespace() {
    let w = DemoWindow { id: "a".into(), height: Some(2) };
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        json!({"__module__":"clientdemo","__type__":"DemoWindow","id":"a","height":2})
    );
    assert_eq!(serde_json::to_value(DemoMode::Slow).unwrap(), json!("SLOW"));
}

#[test]
fn plugin_events_decode() {
    let ev: DemoDetected = serde_json::from_value(json!({
        "window": {"__module__":"clientdemo","__type__":"DemoWindow","id":"a"},
        "element": "P/E", "source": "P/F", "tags": [], "timestampMillis": "9", "type": "DemoDetected"
    }))
    .unwrap();
    assert_eq!((ev.window.id.as_str(), ev.window.height), ("a", None));
    assert_eq!(ev.element, "P/E");
}

#[test]
fn subtypes_from_other_modules_downcast_from_the_base() {
    let raw = json!({"__module__":"clientdemo","__type__":"DemoStats","id":"d","type":"element","timestampMillis":1,"detections":4});
    let s: Polymorphic<Stats> = serde_json::from_value(raw).unwrap();
    assert_eq!(s.id, "d");
    assert_eq!(s.downcast::<DemoStats>().map(|d| d.detections), Some(4));
}
