//! Where a new `MediaPipeline` goes: the least loaded live node that is not
//! draining, or the node the client names in the `clusterNode` property.
//! Pure: the caller passes the node records it read and its own live load.

use kms_jsonrpc::{RpcError, codes};

use crate::directory::NodeRecord;
use crate::ids::NodeId;

/// The `create` property (JS: `client.create('MediaPipeline', {clusterNode:
/// 'node-b'})`) that asks for a node. Not a constructor param: the official
/// client sends unknown params as `properties`, which KMS ignores.
pub const NODE_PROPERTY: &str = "clusterNode";

/// Weight of one WebRTC endpoint against one pipeline: endpoints (DTLS,
/// SRTP, often transcoding) cost far more than an empty pipeline.
const WEBRTC_WEIGHT: f64 = 4.0;
/// CPU percent worth one pipeline.
const CPU_PER_UNIT: f64 = 10.0;

/// A node as placement sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub record: NodeRecord,
    /// Placements this node made on it since the record was written
    /// (records lag by up to one heartbeat; a burst must still spread).
    pub pending: u32,
}

/// The load score: lower is better.
pub fn score(c: &Candidate) -> f64 {
    let l = &c.record.load;
    f64::from(l.pipelines + c.pending)
        + WEBRTC_WEIGHT * f64::from(l.webrtc_endpoints)
        + f64::from(l.cpu_percent) / CPU_PER_UNIT
}

/// Chooses the node for a new pipeline. `local` is this node (preferred on
/// equal scores: no forwarding). Errors are what the client gets.
pub fn place(candidates: &[Candidate], local: &NodeId, requested: Option<&str>) -> Result<NodeId, RpcError> {
    if let Some(name) = requested {
        let Some(c) = candidates.iter().find(|c| c.record.id == name) else {
            return Err(RpcError::new(
                codes::MEDIA_OBJECT_ILLEGAL_PARAM_ERROR,
                format!("{NODE_PROPERTY} '{name}': no such live node in the cluster"),
            ));
        };
        if c.record.load.draining {
            return Err(RpcError::new(
                codes::NOT_ENOUGH_RESOURCES,
                format!("{NODE_PROPERTY} '{name}': the node is draining and takes no new pipelines"),
            ));
        }
        return Ok(c.record.node_id());
    }
    candidates
        .iter()
        .filter(|c| !c.record.load.draining)
        .min_by(|a, b| {
            score(a)
                .total_cmp(&score(b))
                .then_with(|| (a.record.id != local.as_str()).cmp(&(b.record.id != local.as_str())))
                .then_with(|| a.record.id.cmp(&b.record.id))
        })
        .map(|c| c.record.node_id())
        .ok_or_else(|| {
            RpcError::new(codes::NOT_ENOUGH_RESOURCES, "No cluster node takes new pipelines (all are draining)")
        })
}

/// The `clusterNode` property of a `create`'s `properties`, if it is a
/// non-empty string.
pub fn requested_node(properties: Option<&serde_json::Value>) -> Option<&str> {
    properties?.get(NODE_PROPERTY)?.as_str().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Load;
    use serde_json::json;

    fn c(id: &str, pipelines: u32, webrtc: u32, cpu: f32, draining: bool) -> Candidate {
        Candidate {
            record: NodeRecord {
                id: id.into(),
                address: String::new(),
                epoch: "e".into(),
                load: Load { cpu_percent: cpu, pipelines, webrtc_endpoints: webrtc, draining },
                updated_ms: 0,
            },
            pending: 0,
        }
    }

    #[test]
    fn least_loaded_wins_webrtc_weighs_more_than_pipelines() {
        let nodes = [c("a", 3, 0, 0.0, false), c("b", 0, 1, 0.0, false), c("c", 2, 0, 5.0, false)];
        // a: 3, b: 4, c: 2.5
        assert_eq!(place(&nodes, &NodeId::new("a"), None).unwrap().as_str(), "c");
    }

    #[test]
    fn ties_prefer_the_local_node_then_the_smallest_id() {
        let nodes = [c("a", 0, 0, 0.0, false), c("b", 0, 0, 0.0, false), c("c", 0, 0, 0.0, false)];
        assert_eq!(place(&nodes, &NodeId::new("b"), None).unwrap().as_str(), "b");
        assert_eq!(place(&nodes, &NodeId::new("z"), None).unwrap().as_str(), "a");
    }

    #[test]
    fn pending_placements_spread_a_burst() {
        let mut nodes = vec![c("a", 0, 0, 0.0, false), c("b", 0, 0, 0.0, false)];
        nodes[0].pending = 1;
        assert_eq!(place(&nodes, &NodeId::new("a"), None).unwrap().as_str(), "b");
    }

    #[test]
    fn draining_nodes_get_nothing() {
        let nodes = [c("a", 9, 0, 0.0, false), c("b", 0, 0, 0.0, true)];
        assert_eq!(place(&nodes, &NodeId::new("b"), None).unwrap().as_str(), "a");
        let e = place(&nodes, &NodeId::new("a"), Some("b")).unwrap_err();
        assert_eq!(e.code, codes::NOT_ENOUGH_RESOURCES);
        assert!(e.message.contains("draining"), "{}", e.message);
        let e = place(&[c("b", 0, 0, 0.0, true)], &NodeId::new("b"), None).unwrap_err();
        assert_eq!(e.code, codes::NOT_ENOUGH_RESOURCES);
    }

    #[test]
    fn a_named_node_is_honoured_or_refused() {
        let nodes = [c("a", 0, 0, 0.0, false), c("b", 50, 9, 90.0, false)];
        assert_eq!(place(&nodes, &NodeId::new("a"), Some("b")).unwrap().as_str(), "b");
        let e = place(&nodes, &NodeId::new("a"), Some("zz")).unwrap_err();
        assert_eq!(e.code, codes::MEDIA_OBJECT_ILLEGAL_PARAM_ERROR);
        assert!(e.message.contains("'zz'"), "{}", e.message);
    }

    #[test]
    fn requested_node_reads_the_property() {
        assert_eq!(requested_node(Some(&json!({"clusterNode": "b"}))), Some("b"));
        assert_eq!(requested_node(Some(&json!({"clusterNode": ""}))), None);
        assert_eq!(requested_node(Some(&json!({"clusterNode": 3}))), None);
        assert_eq!(requested_node(None), None);
    }
}
