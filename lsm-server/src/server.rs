//! The accept loop ([`run`]) and a [`Server`] that opens the engine, binds the sockets,
//! serves until a shutdown future resolves, and closes the engine cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::error::ServerError;
use crate::state::{bump, ServerState};
use crate::stop::Stops;

/// Decrements the connected-clients gauge however the connection task ends.
struct ConnectedGuard(Arc<ServerState>);

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        self.0
            .counters
            .connected_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts clients on `listener` until `shutdown` resolves, then stops accepting, lets
/// every connection finish the requests it already read, and returns when all are gone.
pub async fn run(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()>,
) {
    let stops = Arc::new(Stops::default());
    // Each connection holds a sender; `recv` returns None once all are dropped.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                bump(&state.counters.total_connections, 1);
                let connected = state.counters.connected_clients.fetch_add(1, Ordering::Relaxed);
                let guard = ConnectedGuard(state.clone());
                if connected >= state.config.maxclients {
                    bump(&state.counters.rejected_connections, 1);
                    tracing::warn!(%peer, "refusing connection: max number of clients reached");
                    tokio::spawn(async move {
                        let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
                        drop(guard);
                    });
                    continue;
                }
                let (state, stop, done) = (state.clone(), stops.register(), done_tx.clone());
                tokio::spawn(async move {
                    crate::connection::handle(socket, state, stop).await;
                    drop(guard);
                    drop(done);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stops.stop_all();
    drop(done_tx);
    let _ = done_rx.recv().await;
}

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    state: Arc<ServerState>,
    listener: TcpListener,
    metrics: Option<TcpListener>,
}

impl Server {
    /// Opens the data directory and binds the client and metrics sockets.
    ///
    /// # Errors
    /// An invalid configuration, an engine error opening the data directory, or a socket
    /// that cannot be bound.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        let opts = lsm_core::Options {
            durability: if config.sync {
                lsm_core::Durability::Sync
            } else {
                lsm_core::Durability::Process
            },
            ..lsm_core::Options::default()
        };
        if let Some(c) = &config.cluster {
            // Before the engine's lock, so that a wrong id is named as such.
            check_node_id(&config.data_dir, &c.node_id)?;
        }
        // The engine in force: the data directory itself, or the copy `ENGINE` names.
        crate::engine::remove_stale_engines(&config.data_dir)?;
        let engine_dir = crate::engine::engine_dir(&config.data_dir)?;
        let engine_opts = opts.clone();
        let db = tokio::task::spawn_blocking(move || lsm_core::Db::open(&engine_dir, engine_opts))
            .await
            .map_err(|e| {
                ServerError::io("opening the data directory", std::io::Error::other(e))
            })??;
        let addr = format!("{}:{}", config.bind, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| ServerError::io(format!("binding {addr}"), e))?;
        let metrics = if config.metrics_port == 0 {
            None
        } else {
            let maddr = format!("{}:{}", config.bind, config.metrics_port);
            Some(
                TcpListener::bind(&maddr)
                    .await
                    .map_err(|e| ServerError::io(format!("binding the metrics port {maddr}"), e))?,
            )
        };
        let port = listener
            .local_addr()
            .map_err(|e| ServerError::io("reading the bound address", e))?
            .port();
        if let Some(warning) = config.exposure_warning() {
            tracing::warn!("{warning}");
        }
        let mut state = ServerState::new(db, config, port);
        if let Some(settings) = state.config.cluster.clone() {
            let settings = (settings, opts);
            let (data_dir, bind) = (state.config.data_dir.clone(), state.config.bind.clone());
            let joined = async {
                claim_node_id(&data_dir, &settings.0.node_id)?;
                let cc = settings.0.cluster_config(&bind, port);
                lsm_cluster::Cluster::join(cc)
                    .await
                    .map_err(|e| ServerError::Cluster(e.to_string()))
            };
            let opened = match open_replication(&state, &settings.0, settings.1.clone()) {
                Ok(repl) => {
                    state.replication = Some(repl);
                    state.locks = crate::state::KeyLocks::for_cluster();
                    joined.await
                }
                Err(e) => Err(e),
            };
            match opened {
                Ok(cluster) => state.cluster = Some(Arc::new(cluster)),
                Err(e) => {
                    if let Some(r) = state.replication.take() {
                        let _ = tokio::task::spawn_blocking(move || r.shutdown()).await;
                    }
                    let db = state.db();
                    let _ = tokio::task::spawn_blocking(move || db.close()).await;
                    return Err(e);
                }
            }
        }
        // Standalone, write groups commit through the group-commit queue; in cluster mode
        // the replication log orders them instead.
        if state.replication.is_none() {
            state.committer = Some(crate::committer::Committer::new());
        }
        let state = Arc::new(state);
        Ok(Server {
            state,
            listener,
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then closes the engine.
    ///
    /// # Errors
    /// The engine's error if closing it failed (its final WAL sync).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        tracing::info!(addr = %self.local_addr(), data_dir = %self.state.config.data_dir.display(), "lsm-server listening");
        let (stop_metrics, stopped) = watch::channel(false);
        if let Some(m) = self.metrics {
            tracing::info!(addr = %m.local_addr().map_err(|e| ServerError::io("metrics address", e))?, "metrics on /metrics");
            let state = self.state.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(crate::metrics::serve(m, state, async move {
                let _ = stopped.changed().await;
            }));
        }
        let cluster = self.state.cluster.clone();
        let driver = match (&self.state.replication, &self.state.cluster) {
            (Some(repl), Some(c)) => Some(tokio::spawn(crate::replication::stream::drive(
                repl.clone(),
                c.clone(),
                c.config().advertise_addr.clone(),
                self.state.config.requirepass.clone(),
            ))),
            _ => None,
        };
        let shutdown = async move {
            shutdown.await;
            // Hand leadership over first, so that the other nodes serve again at once; the
            // requests already read here are then forwarded to the new leader.
            if let Some(c) = cluster {
                tracing::info!("leaving the cluster");
                c.leave().await;
            }
        };
        run(self.listener, self.state.clone(), shutdown).await;
        let _ = stop_metrics.send(true);
        if let Some(d) = driver {
            d.abort();
        }
        if let Some(r) = self.state.replication.clone() {
            tracing::info!("stopping replication");
            let _ = tokio::task::spawn_blocking(move || r.shutdown()).await;
        }
        tracing::info!("connections closed; closing the engine");
        let db = self.state.db();
        tokio::task::spawn_blocking(move || db.close())
            .await
            .map_err(|e| ServerError::io("closing the engine", std::io::Error::other(e)))??;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Opens the replication log (`<data_dir>/replog`) next to the engine.
fn open_replication(
    state: &ServerState,
    settings: &crate::config::ClusterSettings,
    engine_options: lsm_core::Options,
) -> Result<Arc<crate::replication::Replication>, ServerError> {
    let dir = state.config.data_dir.join(REPLOG_DIR);
    let copied_at = crate::engine::pointer(&state.config.data_dir)?.map(|(_, p)| p);
    crate::replication::Replication::open(
        &dir,
        state.engine.clone(),
        crate::replication::ReplSettings {
            node_id: settings.node_id.clone(),
            cluster_size: settings.cluster_size,
            acks: settings.replication_acks,
            retain_bytes: usize::try_from(settings.replication_log_mb << 20).unwrap_or(usize::MAX),
            sync: state.config.sync,
            data_dir: state.config.data_dir.clone(),
            engine_options,
        },
        copied_at,
    )
    .map_err(|e| ServerError::Replication(e.to_string()))
}

/// The replication log's directory inside the data directory.
pub const REPLOG_DIR: &str = "replog";

/// Name of the file in the data directory that records the node id it belongs to.
pub const NODE_ID_FILE: &str = "NODE_ID";

/// Refuses a data directory that belongs to another node (its data would be served under
/// the wrong identity). Returns whether the directory already records `node_id`.
///
/// # Errors
/// The directory belongs to another node, or its node id file cannot be read.
pub fn check_node_id(data_dir: &std::path::Path, node_id: &str) -> Result<bool, ServerError> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(found) => {
            let found = found.trim();
            if found == node_id {
                Ok(true)
            } else {
                Err(ServerError::NodeIdMismatch(format!(
                    "data directory {} belongs to node `{found}` (per {}), not `{node_id}`; \
                     start it with --node-id {found} or use another --data-dir",
                    data_dir.display(),
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ServerError::io(format!("reading {}", path.display()), e)),
    }
}

/// Records `node_id` in the data directory on first use (see [`check_node_id`]).
///
/// # Errors
/// The directory belongs to another node, or the file cannot be read or written.
pub fn claim_node_id(data_dir: &std::path::Path, node_id: &str) -> Result<(), ServerError> {
    let path = data_dir.join(NODE_ID_FILE);
    if check_node_id(data_dir, node_id)? {
        Ok(())
    } else {
        {
            let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                use std::io::Write as _;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(format!("{node_id}\n").as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(data_dir)?.sync_all()
            };
            write().map_err(|e| ServerError::io(format!("writing {}", path.display()), e))
        }
    }
}
