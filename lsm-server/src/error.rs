//! The server library's error type.

use std::sync::Arc;

/// What can stop the server from starting or running.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Invalid configuration; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The storage engine failed (opening or closing the data directory).
    #[error("storage engine: {0}")]
    Engine(#[from] lsm_core::Error),
    /// Joining the cluster failed (ZooKeeper unreachable, duplicate node id, ...).
    #[error("cluster: {0}")]
    Cluster(String),
    /// The replication log cannot be opened or does not fit the engine.
    #[error("replication: {0}")]
    Replication(String),
    /// The data directory belongs to another node of a cluster.
    #[error("{0}")]
    NodeIdMismatch(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl ServerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ServerError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

impl From<crate::config::ConfigError> for ServerError {
    fn from(e: crate::config::ConfigError) -> Self {
        ServerError::Config(e.0)
    }
}
