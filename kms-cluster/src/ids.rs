//! Node and pipeline identifiers, and how an object id names its pipeline
//! (spec §4.1: children ids start with their parent's id, so the first
//! path segment of any object id is its pipeline's id).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// The suffix of every pipeline id (`<uuid>_kurento.MediaPipeline`).
pub const PIPELINE_SUFFIX: &str = "_kurento.MediaPipeline";

/// A cluster node's name (`mediaServer.cluster.nodeId`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn new(s: &str) -> Self {
        NodeId(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `MediaPipeline` id: the unit of placement.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId(String);

impl PipelineId {
    /// The pipeline an object id belongs to, or `None` for ids that name no
    /// pipeline (`manager_ServerManager`, `newref:<n>`, garbage).
    pub fn of_object(object: &str) -> Option<PipelineId> {
        let root = object.split('/').next()?;
        let uuid = root.strip_suffix(PIPELINE_SUFFIX)?;
        (!uuid.is_empty() && !root.starts_with("newref:")).then(|| PipelineId(root.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first pipeline named by any string inside `v` (constructor params:
/// `mediaPipeline`, `hub`, …): where a `create` must run.
pub fn first_pipeline_in(v: &Value) -> Option<PipelineId> {
    let mut all = vec![];
    pipelines_in(v, &mut all);
    all.into_iter().next()
}

/// Every pipeline named by a string anywhere in `v`, in document order.
pub fn pipelines_in(v: &Value, out: &mut Vec<PipelineId>) {
    match v {
        Value::String(s) => {
            if let Some(p) = PipelineId::of_object(s)
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| pipelines_in(x, out)),
        Value::Object(m) => m.values().for_each(|x| pipelines_in(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "6ba9a8a2-0000-4000-8000-000000009b1e_kurento.MediaPipeline";

    #[test]
    fn object_ids_name_their_pipeline() {
        assert_eq!(PipelineId::of_object(P).unwrap().as_str(), P);
        let el = format!("{P}/1f0c_kurento.WebRtcEndpoint");
        assert_eq!(PipelineId::of_object(&el).unwrap().as_str(), P);
        let port = format!("{P}/77aa_kurento.Composite/0d3e_kurento.HubPort");
        assert_eq!(PipelineId::of_object(&port).unwrap().as_str(), P);
    }

    #[test]
    fn ids_without_a_pipeline_name_none() {
        for id in ["manager_ServerManager", "newref:0", "", "_kurento.MediaPipeline", "x_kurento.WebRtcEndpoint", "/"] {
            assert_eq!(PipelineId::of_object(id), None, "{id}");
        }
    }

    #[test]
    fn pipelines_found_anywhere_in_params_once_each() {
        let el = format!("{P}/1f0c_kurento.WebRtcEndpoint");
        let other = "aaaa_kurento.MediaPipeline";
        let v = json!({"mediaPipeline": P, "x": [1, {"sink": el}], "y": other, "z": "plain"});
        let mut out = vec![];
        pipelines_in(&v, &mut out);
        assert_eq!(out.iter().map(PipelineId::as_str).collect::<Vec<_>>(), vec![P, other]);
        assert_eq!(first_pipeline_in(&json!({"uri": "file:///a"})), None);
    }
}
