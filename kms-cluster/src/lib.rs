//! Scale-out (beyond KMS): several servers act as one Kurento endpoint.
//!
//! Every node accepts the official clients. A `MediaPipeline` lives on one
//! node, chosen by [`placement`]; every request about an object of a pipeline
//! that lives elsewhere is forwarded to its node over an internal JSON-RPC
//! WebSocket ([`link`]), and the object's events come back the same way.
//! The shared state (node registry with heartbeats, load, pipeline → node
//! directory) lives in Redis ([`store`]); there is no consensus of our own:
//! a pipeline has exactly one owner, the node that created it, and Redis
//! only tells the other nodes where it is.
//!
//! Pure logic (ids, directory records, staleness, placement) is apart from
//! the IO (Redis, WebSockets) and unit-tested on its own. See
//! `docs/cluster.md` for the operator's view.

pub mod backend;
pub mod config;
pub mod directory;
pub mod error;
pub mod ids;
pub mod link;
pub mod placement;
pub mod store;

pub use backend::ClusterBackend;
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use ids::{NodeId, PipelineId};
