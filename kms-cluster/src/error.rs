//! The crate's one error type, and how each case answers a client (which
//! spec §8 code it becomes).

use kms_jsonrpc::{RpcError, codes};

use crate::ids::NodeId;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Redis did not answer (down, unreachable, timed out).
    #[error("cluster directory (Redis) unavailable: {0}")]
    Directory(String),
    /// A directory record that does not decode: written by another version
    /// or by hand.
    #[error("malformed cluster directory record {key}: {reason}")]
    Record { key: String, reason: String },
    /// The node that owns an object is not (or no longer) in the registry,
    /// or its internal connection broke: its objects are gone.
    #[error("node '{0}' left the cluster")]
    NodeGone(NodeId),
    /// The internal connection could not be opened or a forwarded call
    /// got no answer in time.
    #[error("node '{node}' did not answer: {reason}")]
    Unreachable { node: NodeId, reason: String },
    /// Invalid cluster configuration.
    #[error("invalid cluster configuration: {0}")]
    Config(String),
}

impl ClusterError {
    /// The client's view of a failure to reach `object`. A node that left
    /// took its objects with it: 40101, as for any object that no longer
    /// exists (the JS client maps it to ReferenceError). Everything else
    /// is a transient infrastructure failure: 40003 UNEXPECTED_ERROR with
    /// the reason, never a silent success.
    pub fn for_object(&self, object: &str) -> RpcError {
        match self {
            ClusterError::NodeGone(node) => RpcError::new(
                codes::MEDIA_OBJECT_NOT_FOUND,
                format!("Object '{object}' not found: its node '{node}' left the cluster"),
            ),
            other => RpcError::new(codes::UNEXPECTED_ERROR, format!("Cannot reach object '{object}': {other}")),
        }
    }
}
