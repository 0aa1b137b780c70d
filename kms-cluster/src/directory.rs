//! What the cluster keeps in Redis, as plain values: key names, the node
//! record and the pipeline entry, their encoding, and the rules that say
//! whether an entry is still true. No IO here.
//!
//! Keys (all under [`PREFIX`]):
//! * `node:<id>`: the node's [`NodeRecord`] (JSON), written every heartbeat
//!   with a TTL of the expiry: a node that stops heartbeating disappears
//!   by itself.
//! * `nodes`: set of node ids ever registered and not yet purged (lets a
//!   survivor find the directory entries of a node whose record expired).
//! * `pipelines`: hash pipeline id → [`PipelineEntry`] (JSON).
//! * `node-pipelines:<id>`: set of the pipeline ids a node registered (its
//!   index into `pipelines`, for purging).
//!
//! An entry is *live* only if its node's record exists and carries the same
//! boot epoch: a node restarted under the same id gets a new epoch, so the
//! entries of its previous life are stale even before they are purged.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::ids::NodeId;

/// Prefix of every key the cluster writes.
pub const PREFIX: &str = "kms:cluster:";

pub fn node_key(node: &NodeId) -> String {
    format!("{PREFIX}node:{node}")
}

pub fn nodes_key() -> String {
    format!("{PREFIX}nodes")
}

pub fn pipelines_key() -> String {
    format!("{PREFIX}pipelines")
}

/// `session:<id>`: hash with `tenant`, `home` (the node the client talks
/// to) and `link:<node>` → the remote session of its link to that node;
/// lets another node adopt the session when the client reconnects there.
pub fn session_key(session: &str) -> String {
    format!("{PREFIX}session:{session}")
}

/// How long a session record outlives its last update: sessions end with
/// `closeSession` or the garbage collector, which delete it; this only
/// bounds what a crashed node leaves behind.
pub const SESSION_TTL_MS: u64 = 24 * 3600 * 1000;

pub fn node_index_key(node: &NodeId) -> String {
    format!("{PREFIX}node-pipelines:{node}")
}

/// What a node reports about its load; placement reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    /// Process CPU % over the last heartbeat interval, averaged over cores.
    pub cpu_percent: f32,
    pub pipelines: u32,
    pub webrtc_endpoints: u32,
    /// SIGUSR1 drain: the node takes no new pipelines.
    pub draining: bool,
}

/// A node's registry record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub id: String,
    /// `host:port` of the node's WebSocket listener, for internal links.
    pub address: String,
    /// Random per boot: tells a restarted node from its previous life.
    pub epoch: String,
    pub load: Load,
    /// Wall clock of the heartbeat that wrote this record (ms since epoch).
    pub updated_ms: u64,
}

impl NodeRecord {
    pub fn node_id(&self) -> NodeId {
        NodeId::new(&self.id)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(key: &str, text: &str) -> Result<NodeRecord, ClusterError> {
        serde_json::from_str(text).map_err(|e| ClusterError::Record { key: key.to_owned(), reason: e.to_string() })
    }
}

/// Where a pipeline lives, and for whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineEntry {
    pub node: String,
    /// The owner's boot epoch when it registered the pipeline.
    pub epoch: String,
    /// The pipeline's tenant (`getPipelines` answers per tenant).
    pub tenant: String,
}

impl PipelineEntry {
    pub fn node_id(&self) -> NodeId {
        NodeId::new(&self.node)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(key: &str, text: &str) -> Result<PipelineEntry, ClusterError> {
        serde_json::from_str(text).map_err(|e| ClusterError::Record { key: key.to_owned(), reason: e.to_string() })
    }

    /// Whether the entry describes a pipeline that still exists: its node
    /// is registered under the same boot epoch.
    pub fn is_live(&self, node: Option<&NodeRecord>) -> bool {
        node.is_some_and(|n| n.id == self.node && n.epoch == self.epoch)
    }
}

/// Node ids in `known` (the `nodes` set) without a live record: their
/// heartbeats stopped, so their directory entries must go.
pub fn expired_nodes(known: &[NodeId], live: &HashMap<NodeId, NodeRecord>) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = known.iter().filter(|n| !live.contains_key(*n)).cloned().collect();
    v.sort();
    v
}

/// What to write and delete so the directory matches a node's local
/// pipelines: `(to_add, to_remove)`. `registered` is what this node last
/// wrote successfully.
pub fn reconcile<'a>(
    local: &'a HashMap<String, String>,
    registered: &'a HashMap<String, String>,
) -> (Vec<(&'a str, &'a str)>, Vec<&'a str>) {
    let mut add: Vec<(&str, &str)> =
        local.iter().filter(|(p, _)| !registered.contains_key(*p)).map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let mut remove: Vec<&str> = registered.keys().filter(|p| !local.contains_key(*p)).map(String::as_str).collect();
    add.sort();
    remove.sort();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, epoch: &str) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            address: "127.0.0.1:1".into(),
            epoch: epoch.into(),
            load: Load::default(),
            updated_ms: 1,
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_errors() {
        let r = record("a", "e1");
        assert_eq!(NodeRecord::decode("k", &r.encode()).unwrap(), r);
        let e = PipelineEntry { node: "a".into(), epoch: "e1".into(), tenant: "default".into() };
        assert_eq!(PipelineEntry::decode("k", &e.encode()).unwrap(), e);
        assert!(e.encode().contains("\"tenant\":\"default\""));
        assert!(matches!(PipelineEntry::decode("k", "{}"), Err(ClusterError::Record { .. })));
    }

    #[test]
    fn an_entry_of_a_restarted_or_dead_node_is_stale() {
        let e = PipelineEntry { node: "a".into(), epoch: "boot1".into(), tenant: "t".into() };
        assert!(e.is_live(Some(&record("a", "boot1"))));
        // Same id, new boot: the old entries must not come back to life.
        assert!(!e.is_live(Some(&record("a", "boot2"))));
        // Record expired.
        assert!(!e.is_live(None));
        assert!(!e.is_live(Some(&record("b", "boot1"))));
    }

    #[test]
    fn nodes_without_a_record_have_expired() {
        let live: HashMap<NodeId, NodeRecord> = [(NodeId::new("a"), record("a", "1"))].into_iter().collect();
        let known = [NodeId::new("c"), NodeId::new("a"), NodeId::new("b")];
        assert_eq!(expired_nodes(&known, &live), vec![NodeId::new("b"), NodeId::new("c")]);
    }

    #[test]
    fn reconcile_adds_new_and_removes_released_pipelines() {
        let m = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<HashMap<_, _>>();
        let local = m(&[("p1", "t"), ("p3", "u")]);
        let registered = m(&[("p1", "t"), ("p2", "t")]);
        let (add, remove) = reconcile(&local, &registered);
        assert_eq!(add, vec![("p3", "u")]);
        assert_eq!(remove, vec!["p2"]);
    }
}
