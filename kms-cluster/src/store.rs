//! The Redis side of the directory: thin async IO over
//! [`crate::directory`]'s keys and records. Every call is bounded in time
//! (connection and response timeouts): a node must answer its clients
//! promptly when Redis is down, not queue behind a dead socket.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::directory::{self, NodeRecord, PipelineEntry};
use crate::error::ClusterError;
use crate::ids::{NodeId, PipelineId};

/// Bound on one Redis round trip (and on connecting).
const REDIS_TIMEOUT: Duration = Duration::from_millis(800);

/// A cheap-to-clone handle on the directory. The connection manager
/// reconnects by itself after Redis comes back.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
}

fn err(e: redis::RedisError) -> ClusterError {
    ClusterError::Directory(e.to_string())
}

impl Store {
    /// Does not connect: the first command does. So a node starts (and
    /// serves its local pipelines) while Redis is down.
    pub fn new(url: &str) -> Result<Store, ClusterError> {
        let client = redis::Client::open(url).map_err(|e| ClusterError::Config(format!("redisUrl: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(err)?;
        Ok(Store { conn })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ClusterError> {
        let mut c = self.conn.clone();
        match tokio::time::timeout(REDIS_TIMEOUT * 2, cmd.query_async::<T>(&mut c)).await {
            Ok(r) => r.map_err(err),
            Err(_) => Err(ClusterError::Directory("timed out".into())),
        }
    }

    async fn run(&self, pipe: &redis::Pipeline) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        match tokio::time::timeout(REDIS_TIMEOUT * 2, pipe.query_async::<()>(&mut c)).await {
            Ok(r) => r.map_err(err),
            Err(_) => Err(ClusterError::Directory("timed out".into())),
        }
    }

    /// Writes the node's record with the expiry as TTL. Returns whether the
    /// record was still there: `false` on first registration, after the
    /// record expired, or after Redis lost its data (restart): then the
    /// caller registers all its pipelines again.
    pub async fn heartbeat(&self, record: &NodeRecord, expiry: Duration) -> Result<bool, ClusterError> {
        let key = directory::node_key(&record.node_id());
        let ttl = expiry.as_millis() as u64;
        let refreshed: Option<String> =
            self.query(redis::cmd("SET").arg(&key).arg(record.encode()).arg("PX").arg(ttl).arg("XX")).await?;
        if refreshed.is_some() {
            return Ok(true);
        }
        let mut p = redis::pipe();
        p.cmd("SET").arg(&key).arg(record.encode()).arg("PX").arg(ttl).ignore();
        p.cmd("SADD").arg(directory::nodes_key()).arg(&record.id).ignore();
        self.run(&p).await?;
        Ok(false)
    }

    /// Deletes a node's record (clean shutdown: no wait for the expiry).
    pub async fn unregister(&self, node: &NodeId) -> Result<(), ClusterError> {
        self.purge_node(node).await?;
        let mut p = redis::pipe();
        p.cmd("DEL").arg(directory::node_key(node)).ignore();
        self.run(&p).await
    }

    /// Live node records, and the known node ids whose record expired.
    pub async fn nodes(&self) -> Result<(HashMap<NodeId, NodeRecord>, Vec<NodeId>), ClusterError> {
        let mut known: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(directory::nodes_key())).await?;
        known.sort();
        let mut live = HashMap::new();
        if known.is_empty() {
            return Ok((live, vec![]));
        }
        let keys: Vec<String> = known.iter().map(|n| directory::node_key(&NodeId::new(n))).collect();
        let values: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
        for (key, v) in keys.iter().zip(values) {
            if let Some(text) = v {
                match NodeRecord::decode(key, &text) {
                    Ok(r) => {
                        live.insert(r.node_id(), r);
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
        let known: Vec<NodeId> = known.iter().map(|n| NodeId::new(n)).collect();
        let expired = directory::expired_nodes(&known, &live);
        Ok((live, expired))
    }

    /// One node's record, if it is alive.
    pub async fn node(&self, node: &NodeId) -> Result<Option<NodeRecord>, ClusterError> {
        let key = directory::node_key(node);
        let v: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        v.map(|t| NodeRecord::decode(&key, &t)).transpose()
    }

    /// Registers pipelines of `node` (`(pipeline, entry)`).
    pub async fn put_pipelines(&self, node: &NodeId, entries: &[(String, PipelineEntry)]) -> Result<(), ClusterError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        let mut hset = redis::cmd("HSET");
        hset.arg(directory::pipelines_key());
        let mut sadd = redis::cmd("SADD");
        sadd.arg(directory::node_index_key(node));
        for (pid, e) in entries {
            hset.arg(pid).arg(e.encode());
            sadd.arg(pid);
        }
        p.add_command(hset).ignore();
        p.add_command(sadd).ignore();
        self.run(&p).await
    }

    pub async fn remove_pipelines(&self, node: &NodeId, pipelines: &[String]) -> Result<(), ClusterError> {
        if pipelines.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        p.cmd("HDEL").arg(directory::pipelines_key()).arg(pipelines).ignore();
        p.cmd("SREM").arg(directory::node_index_key(node)).arg(pipelines).ignore();
        self.run(&p).await
    }

    /// Removes every directory entry `node` registered, and the node from
    /// the known set: its previous life (at boot) or its death.
    pub async fn purge_node(&self, node: &NodeId) -> Result<usize, ClusterError> {
        let index = directory::node_index_key(node);
        let pids: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(&index)).await?;
        let mut p = redis::pipe();
        if !pids.is_empty() {
            p.cmd("HDEL").arg(directory::pipelines_key()).arg(&pids).ignore();
        }
        p.cmd("DEL").arg(&index).ignore();
        p.cmd("SREM").arg(directory::nodes_key()).arg(node.as_str()).ignore();
        self.run(&p).await?;
        Ok(pids.len())
    }

    /// Removes the entries registered under this node's id (by a previous
    /// life, or before Redis lost our record), keeping the node known.
    pub async fn purge_own(&self, node: &NodeId) -> Result<usize, ClusterError> {
        let index = directory::node_index_key(node);
        let pids: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(&index)).await?;
        let mut p = redis::pipe();
        if !pids.is_empty() {
            p.cmd("HDEL").arg(directory::pipelines_key()).arg(&pids).ignore();
        }
        p.cmd("DEL").arg(&index).ignore();
        self.run(&p).await?;
        Ok(pids.len())
    }

    /// Records that `session` (of `tenant`) talks to its client through
    /// `home`.
    pub async fn note_session(&self, session: &str, tenant: &str, home: &NodeId) -> Result<(), ClusterError> {
        let key = directory::session_key(session);
        let mut p = redis::pipe();
        p.cmd("HSET").arg(&key).arg("tenant").arg(tenant).arg("home").arg(home.as_str()).ignore();
        p.cmd("PEXPIRE").arg(&key).arg(directory::SESSION_TTL_MS).ignore();
        self.run(&p).await
    }

    /// Records the remote session of `session`'s link to `node`.
    pub async fn note_link(&self, session: &str, node: &NodeId, remote: &str) -> Result<(), ClusterError> {
        let key = directory::session_key(session);
        let mut p = redis::pipe();
        p.cmd("HSET").arg(&key).arg(format!("link:{node}")).arg(remote).ignore();
        p.cmd("PEXPIRE").arg(&key).arg(directory::SESSION_TTL_MS).ignore();
        self.run(&p).await
    }

    /// A session's record (empty if unknown).
    pub async fn session(&self, session: &str) -> Result<HashMap<String, String>, ClusterError> {
        self.query(redis::cmd("HGETALL").arg(directory::session_key(session))).await
    }

    pub async fn forget_session(&self, session: &str) -> Result<(), ClusterError> {
        let mut p = redis::pipe();
        p.cmd("DEL").arg(directory::session_key(session)).ignore();
        self.run(&p).await
    }

    /// The entry of one pipeline, whatever its liveness.
    pub async fn pipeline(&self, pipeline: &PipelineId) -> Result<Option<PipelineEntry>, ClusterError> {
        let v: Option<String> =
            self.query(redis::cmd("HGET").arg(directory::pipelines_key()).arg(pipeline.as_str())).await?;
        v.map(|t| PipelineEntry::decode(pipeline.as_str(), &t)).transpose()
    }

    /// The whole directory (ids → entries), whatever their liveness.
    pub async fn pipelines(&self) -> Result<Vec<(String, PipelineEntry)>, ClusterError> {
        let all: HashMap<String, String> = self.query(redis::cmd("HGETALL").arg(directory::pipelines_key())).await?;
        let mut v: Vec<(String, PipelineEntry)> = all
            .into_iter()
            .filter_map(|(k, t)| match PipelineEntry::decode(&k, &t) {
                Ok(e) => Some((k, e)),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}
