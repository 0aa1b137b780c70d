//! The dashboard's view of the real registry: pipelines with their
//! elements and sessions, the pipeline's `getGstreamerDot`, and — the point
//! of `Registry::invoke_unowned` — looking at objects does not keep them
//! alive once their sessions let go.

mod common;

use kms_core::dashboard::RegistryDashboard;
use kms_jsonrpc::dashboard::DashboardSource;
use kms_jsonrpc::{MediaBackend, SessionId};
use serde_json::json;

#[test]
fn the_dashboard_sees_pipelines_and_graphs_without_owning_them() {
    let r = common::registry();
    let s = SessionId::from("session-a".to_owned());
    let pipeline = r.create(&s, "MediaPipeline", None).unwrap();
    let pt = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": pipeline}))).unwrap();
    let d = RegistryDashboard::new(r.clone());

    let seen = d.pipelines();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, pipeline);
    assert_eq!(seen[0].sessions, vec!["session-a".to_owned()]);
    assert_eq!(seen[0].elements.len(), 1);
    assert_eq!(seen[0].elements[0].id, pt);
    assert_eq!(seen[0].elements[0].class, "PassThrough");
    assert_eq!(seen[0].elements[0].parent, None);

    // The graph is the pipeline's own: the element's bin is named after the
    // last part of its id.
    let dot = d.pipeline_dot(&pipeline).expect("a dot graph");
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains(pt.rsplit('/').next().unwrap()), "{dot}");
    assert_eq!(d.pipeline_dot("no-such-pipeline"), None);
    assert_eq!(d.pipeline_dot(&pt), None, "an element is not a pipeline");
    // No RTP endpoints here.
    assert!(d.endpoint_stats().is_empty());

    // The session goes: nothing the dashboard did keeps the objects.
    r.unref_session(&s);
    assert!(r.get(&pipeline).is_err(), "the pipeline is destroyed");
    assert!(r.get(&pt).is_err(), "the element is destroyed");
    assert!(d.pipelines().is_empty());
}
