//! Server configuration. Every setting is a command-line flag, an environment variable
//! `LSM_<KEY>` and a key of the TOML file given by `--config`; flags win over the
//! environment, the environment over the file, the file over the defaults. Invalid
//! settings are errors that name the key. Reference: `docs/operations.md`.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Default TCP port: not Redis's 6379, so both can run side by side.
pub const DEFAULT_PORT: u16 = 7379;
/// Default Prometheus port.
pub const DEFAULT_METRICS_PORT: u16 = 9379;
/// Default connection limit (as Redis).
pub const DEFAULT_MAXCLIENTS: usize = 10_000;
/// Upper bound on `maxclients`.
pub const MAX_MAXCLIENTS: usize = 1_000_000;
/// Upper bound on `threads`.
pub const MAX_THREADS: usize = 1024;
/// Default cluster name (the znode under the ZooKeeper chroot).
pub const DEFAULT_CLUSTER_NAME: &str = "lsm";
/// Default ZooKeeper session timeout asked for, in milliseconds.
pub const DEFAULT_ZK_SESSION_TIMEOUT_MS: u64 = 6_000;
/// Default bound on how long a request waits for a leader, in milliseconds.
pub const DEFAULT_LEADER_WAIT_MS: u64 = 5_000;
/// Default number of nodes in a cluster.
pub const DEFAULT_CLUSTER_SIZE: usize = 3;
/// Default size of applied replication log kept for followers that fall behind, in MiB.
pub const DEFAULT_REPLICATION_LOG_MB: u64 = 64;

impl ClusterSettings {
    /// The settings as `lsm-cluster` takes them, for a server bound to `bind:port`.
    pub fn cluster_config(&self, bind: &str, port: u16) -> lsm_cluster::ClusterConfig {
        lsm_cluster::ClusterConfig {
            zookeeper: self.zookeeper.clone(),
            cluster_name: self.cluster_name.clone(),
            node_id: self.node_id.clone(),
            advertise_addr: self
                .advertise_addr
                .clone()
                .unwrap_or_else(|| format!("{bind}:{port}")),
            session_timeout: std::time::Duration::from_millis(self.session_timeout_ms),
        }
    }
}

/// Cluster settings; present when `zookeeper` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// ZooKeeper connect string `host:port[,host:port...][/chroot]`.
    pub zookeeper: String,
    pub node_id: String,
    pub cluster_name: String,
    /// `host:port` other nodes use; None means the bind address and the bound port.
    pub advertise_addr: Option<String>,
    pub session_timeout_ms: u64,
    /// How long a request waits for a leader before `-CLUSTERDOWN`.
    pub leader_wait_ms: u64,
    /// Number of nodes in the cluster; writes need a majority of it.
    pub cluster_size: usize,
    /// When a write is acknowledged: `majority` or `leader`.
    pub replication_acks: crate::replication::Acks,
    /// MiB of applied log entries kept for followers that fall behind.
    pub replication_log_mb: u64,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bind: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// 0 disables the metrics endpoint.
    pub metrics_port: u16,
    pub requirepass: Option<String>,
    pub maxclients: usize,
    /// Idle seconds before a client is disconnected; 0 = never.
    pub timeout_secs: u64,
    /// fsync the WAL before acknowledging each write (group commit).
    pub sync: bool,
    /// Worker threads serving connections; 0 = one per CPU core.
    pub threads: usize,
    /// A `tracing` filter, e.g. `info` or `lsm_server=debug`.
    pub log_level: String,
    /// Cluster mode; None = standalone.
    pub cluster: Option<ClusterSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            data_dir: PathBuf::from("./data"),
            metrics_port: DEFAULT_METRICS_PORT,
            requirepass: None,
            maxclients: DEFAULT_MAXCLIENTS,
            timeout_secs: 0,
            sync: false,
            threads: 0,
            log_level: "info".into(),
            cluster: None,
        }
    }
}

/// Command-line flags (each also read from its environment variable).
#[derive(Debug, Default, Parser)]
#[command(
    name = "lsm-server",
    version,
    about = "A Redis-protocol key-value server over the lsm-core engine"
)]
pub struct Cli {
    /// An offline tool instead of the server.
    #[command(subcommand)]
    pub tool: Option<crate::tools::Tool>,
    /// TOML configuration file.
    #[arg(long, env = "LSM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LSM_BIND")]
    pub bind: Option<String>,
    /// TCP port (0 picks a free one).
    #[arg(long, env = "LSM_PORT")]
    pub port: Option<u16>,
    /// Data directory.
    #[arg(long, env = "LSM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Prometheus metrics port on the bind address; 0 disables.
    #[arg(long, env = "LSM_METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// Password clients must send with AUTH.
    #[arg(long, env = "LSM_REQUIREPASS")]
    pub requirepass: Option<String>,
    /// Maximum simultaneous clients.
    #[arg(long, env = "LSM_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Close clients idle for this many seconds (0 = never).
    #[arg(long, env = "LSM_TIMEOUT")]
    pub timeout: Option<u64>,
    /// fsync before acknowledging each write (with group commit).
    #[arg(long, env = "LSM_SYNC", num_args = 0..=1, default_missing_value = "true")]
    pub sync: Option<bool>,
    /// Worker threads serving connections (0 = one per CPU core).
    #[arg(long, env = "LSM_THREADS")]
    pub threads: Option<usize>,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "LSM_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// ZooKeeper connect string (host:port[,host:port...][/chroot]); joins a cluster.
    /// Without it the server runs standalone.
    #[arg(long, env = "LSM_ZOOKEEPER")]
    pub zookeeper: Option<String>,
    /// This node's id in the cluster (required with --zookeeper).
    #[arg(long, env = "LSM_NODE_ID")]
    pub node_id: Option<String>,
    /// The cluster to join (default "lsm").
    #[arg(long, env = "LSM_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// host:port the other nodes use to reach this one (default: bind address and port).
    #[arg(long, env = "LSM_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// ZooKeeper session timeout in milliseconds (default 6000).
    #[arg(long, env = "LSM_ZOOKEEPER_SESSION_TIMEOUT_MS")]
    pub zookeeper_session_timeout_ms: Option<u64>,
    /// How long a request waits for a leader before failing, in milliseconds (default 5000).
    #[arg(long, env = "LSM_LEADER_WAIT_MS")]
    pub leader_wait_ms: Option<u64>,
    /// Number of nodes in the cluster (default 3); a write needs a majority of them.
    #[arg(long, env = "LSM_CLUSTER_SIZE")]
    pub cluster_size: Option<usize>,
    /// When writes are acknowledged: "majority" (default) or "leader" (faster; a
    /// failover can lose acknowledged writes).
    #[arg(long, env = "LSM_REPLICATION_ACKS")]
    pub replication_acks: Option<String>,
    /// MiB of applied replication log kept for followers that fall behind (default 64).
    #[arg(long, env = "LSM_REPLICATION_LOG_MB")]
    pub replication_log_mb: Option<u64>,
}

/// The TOML file: the same keys, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub metrics_port: Option<u16>,
    pub requirepass: Option<String>,
    pub maxclients: Option<usize>,
    pub timeout: Option<u64>,
    pub sync: Option<bool>,
    pub threads: Option<usize>,
    pub log_level: Option<String>,
    pub zookeeper: Option<String>,
    pub node_id: Option<String>,
    pub cluster_name: Option<String>,
    pub advertise_addr: Option<String>,
    pub zookeeper_session_timeout_ms: Option<u64>,
    pub leader_wait_ms: Option<u64>,
    pub cluster_size: Option<usize>,
    pub replication_acks: Option<String>,
    pub replication_log_mb: Option<u64>,
}

/// A configuration error; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
    }
}

impl Config {
    /// Merges flags/environment over the file over the defaults, then validates.
    pub fn resolve(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let zookeeper = cli.zookeeper.or(file.zookeeper).filter(|z| !z.is_empty());
        let node_id = cli.node_id.or(file.node_id);
        let cluster = match zookeeper {
            None => None,
            Some(zookeeper) => Some(ClusterSettings {
                zookeeper,
                node_id: node_id
                    .ok_or_else(|| ConfigError("node_id: required when zookeeper is set".into()))?,
                cluster_name: cli
                    .cluster_name
                    .or(file.cluster_name)
                    .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.into()),
                advertise_addr: cli.advertise_addr.or(file.advertise_addr),
                session_timeout_ms: cli
                    .zookeeper_session_timeout_ms
                    .or(file.zookeeper_session_timeout_ms)
                    .unwrap_or(DEFAULT_ZK_SESSION_TIMEOUT_MS),
                leader_wait_ms: cli
                    .leader_wait_ms
                    .or(file.leader_wait_ms)
                    .unwrap_or(DEFAULT_LEADER_WAIT_MS),
                cluster_size: cli
                    .cluster_size
                    .or(file.cluster_size)
                    .unwrap_or(DEFAULT_CLUSTER_SIZE),
                replication_acks: match cli.replication_acks.or(file.replication_acks) {
                    None => crate::replication::Acks::default(),
                    Some(a) => crate::replication::Acks::parse(&a).ok_or_else(|| {
                        ConfigError(format!(
                            "replication_acks: '{a}' is neither 'majority' nor 'leader'"
                        ))
                    })?,
                },
                replication_log_mb: cli
                    .replication_log_mb
                    .or(file.replication_log_mb)
                    .unwrap_or(DEFAULT_REPLICATION_LOG_MB),
            }),
        };
        let cfg = Config {
            bind: cli.bind.or(file.bind).unwrap_or(d.bind),
            port: cli.port.or(file.port).unwrap_or(d.port),
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            metrics_port: cli
                .metrics_port
                .or(file.metrics_port)
                .unwrap_or(d.metrics_port),
            requirepass: cli
                .requirepass
                .or(file.requirepass)
                .filter(|p| !p.is_empty()),
            maxclients: cli.maxclients.or(file.maxclients).unwrap_or(d.maxclients),
            timeout_secs: cli.timeout.or(file.timeout).unwrap_or(d.timeout_secs),
            sync: cli.sync.or(file.sync).unwrap_or(d.sync),
            threads: cli.threads.or(file.threads).unwrap_or(d.threads),
            log_level: cli.log_level.or(file.log_level).unwrap_or(d.log_level),
            cluster,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bind.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError(format!(
                "bind: '{}' is not an IP address",
                self.bind
            )));
        }
        if !(1..=MAX_MAXCLIENTS).contains(&self.maxclients) {
            return Err(ConfigError(format!(
                "maxclients: must be in 1..={MAX_MAXCLIENTS}, got {}",
                self.maxclients
            )));
        }
        if self.threads > MAX_THREADS {
            return Err(ConfigError(format!(
                "threads: must be in 0..={MAX_THREADS} (0 = one per CPU core), got {}",
                self.threads
            )));
        }
        if self.metrics_port != 0 && self.metrics_port == self.port {
            return Err(ConfigError(format!(
                "metrics_port: {} is also the server port",
                self.metrics_port
            )));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(ConfigError(format!(
                "log_level: '{}' is not a valid filter",
                self.log_level
            )));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError("data_dir: must not be empty".into()));
        }
        if let Some(c) = &self.cluster {
            // The port may still be 0 here; any valid port stands in for the check.
            let cc = c.cluster_config(&self.bind, self.port.max(1));
            cc.validate()
                .map_err(|e| ConfigError(format!("{}: {}", e.key, e.reason)))?;
            let unspecified = self
                .bind
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_unspecified());
            if c.advertise_addr.is_none() && unspecified {
                return Err(ConfigError(format!(
                    "advertise_addr: required when bind is {} (other nodes cannot connect to it)",
                    self.bind
                )));
            }
            if !(1..=600_000).contains(&c.leader_wait_ms) {
                return Err(ConfigError(
                    "leader_wait_ms: must be between 1 and 600000".into(),
                ));
            }
            if !(1..=99).contains(&c.cluster_size) {
                return Err(ConfigError(format!(
                    "cluster_size: must be between 1 and 99, got {}",
                    c.cluster_size
                )));
            }
            if c.replication_log_mb > 1 << 20 {
                return Err(ConfigError(format!(
                    "replication_log_mb: at most {} MiB, got {}",
                    1u64 << 20,
                    c.replication_log_mb
                )));
            }
        }
        Ok(())
    }

    /// Whether the bind address is reachable only from this machine.
    pub fn is_loopback(&self) -> bool {
        self.bind
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
    }

    /// The warning to log loudly at start-up, if this configuration exposes every key to
    /// the network without a password.
    pub fn exposure_warning(&self) -> Option<String> {
        (!self.is_loopback() && self.requirepass.is_none()).then(|| {
            format!(
                "!!! listening on {} without requirepass: anyone who can reach this address can read and write every key !!!",
                self.bind
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["lsm-server"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lsm.toml");
        std::fs::write(
            &path,
            "port = 7000\nmaxclients = 5\ndata_dir = \"/tmp/x\"\nsync = true\nthreads = 3\n",
        )
        .unwrap();
        let c =
            Config::resolve(cli(&["--config", path.to_str().unwrap(), "--port", "7100"])).unwrap();
        assert_eq!(c.port, 7100);
        assert_eq!(c.maxclients, 5);
        assert_eq!(c.threads, 3);
        let one = Config::resolve(cli(&["--config", path.to_str().unwrap(), "--threads", "1"]));
        assert_eq!(one.unwrap().threads, 1);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert!(c.sync);
        assert_eq!(c.bind, "127.0.0.1");
        let c = Config::resolve(cli(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert!(Config::resolve(cli(&["--sync"])).unwrap().sync);
    }

    #[test]
    fn cluster_settings_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lsm.toml");
        std::fs::write(
            &path,
            "zookeeper = \"127.0.0.1:2181/kv\"\nnode_id = \"n1\"\ncluster_name = \"c1\"\n\
             zookeeper_session_timeout_ms = 4000\n",
        )
        .unwrap();
        let c = Config::resolve(cli(&[
            "--config",
            path.to_str().unwrap(),
            "--node-id",
            "n2",
            "--port",
            "7001",
        ]))
        .unwrap();
        let s = c.cluster.clone().unwrap();
        assert_eq!(s.node_id, "n2");
        assert_eq!(s.cluster_name, "c1");
        assert_eq!(s.leader_wait_ms, DEFAULT_LEADER_WAIT_MS);
        let cc = s.cluster_config(&c.bind, 7001);
        assert_eq!(cc.advertise_addr, "127.0.0.1:7001");
        assert_eq!(cc.zookeeper, "127.0.0.1:2181/kv");
        assert_eq!(cc.session_timeout, std::time::Duration::from_secs(4));
        // Without zookeeper the server is standalone, whatever else is set.
        assert_eq!(
            Config::resolve(cli(&["--node-id", "n1"])).unwrap().cluster,
            None
        );
    }

    #[test]
    fn exposure_warning_only_for_open_non_loopback_binds() {
        let mut c = Config::default();
        assert_eq!(c.exposure_warning(), None);
        c.bind = "0.0.0.0".into();
        assert!(c
            .exposure_warning()
            .unwrap()
            .contains("without requirepass"));
        c.requirepass = Some("pw".into());
        assert_eq!(c.exposure_warning(), None);
        c.bind = "::1".into();
        c.requirepass = None;
        assert_eq!(c.exposure_warning(), None);
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lsm.toml");
        std::fs::write(&path, "prot = 7000\n").unwrap();
        let e = Config::resolve(cli(&["--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
        std::fs::write(&path, "port = \"x\"\n").unwrap();
        let e = Config::resolve(cli(&["--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        let e = Config::resolve(cli(&["--maxclients", "0"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("maxclients"), "{e}");
        let e = Config::resolve(cli(&["--threads", "5000"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("threads"), "{e}");
        let e = Config::resolve(cli(&["--bind", "nowhere"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bind"), "{e}");
        let e = Config::resolve(cli(&["--zookeeper", "127.0.0.1:2181"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("node_id"), "{e}");
        let e = Config::resolve(cli(&["--zookeeper", "h:1", "--node-id", "a/b"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("node_id"), "{e}");
        let e = Config::resolve(cli(&[
            "--zookeeper",
            "h:1",
            "--node-id",
            "n1",
            "--bind",
            "0.0.0.0",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("advertise_addr"), "{e}");
        let e = Cli::try_parse_from(["lsm-server", "--port", "x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--port"), "{e}");
    }
}
