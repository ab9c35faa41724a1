//! Cluster settings and their validation.

use std::time::Duration;

/// How a node joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// ZooKeeper connect string: `host:port[,host:port...][/chroot]`.
    pub zookeeper: String,
    /// Names the cluster: its znodes live under `/<chroot>/<cluster_name>`.
    pub cluster_name: String,
    /// This node's id, unique in the cluster: letters, digits, `.`, `_`, `-`.
    pub node_id: String,
    /// `host:port` where the other nodes reach this node's client port.
    pub advertise_addr: String,
    /// The ZooKeeper session timeout to ask for (the server clamps it to
    /// [2, 20] × its tickTime).
    pub session_timeout: Duration,
}

/// A setting that cannot work, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

/// Whether `s` may name a node or a cluster (it becomes a znode name).
pub(crate) fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s != "."
        && s != ".."
}

impl ClusterConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// The first invalid setting, by name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (hosts, chroot) = self.split_connect_string();
        if hosts.is_empty() || hosts.split(',').any(|h| h.trim().is_empty()) {
            return Err(invalid(
                "zookeeper",
                format!(
                    "`{}` is not host:port[,host:port...][/chroot]",
                    self.zookeeper
                ),
            ));
        }
        for h in hosts.split(',') {
            let port = h.rsplit_once(':').map(|(_, p)| p);
            if port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err(invalid("zookeeper", format!("bad port in `{h}`")));
            }
        }
        if let Some(c) = chroot {
            if c.split('/').skip(1).any(|part| !valid_name(part)) {
                return Err(invalid("zookeeper", format!("bad chroot `{c}`")));
            }
        }
        if !valid_name(&self.cluster_name) {
            return Err(invalid(
                "cluster_name",
                format!(
                    "`{}`: use 1-64 letters, digits, '.', '_' or '-'",
                    self.cluster_name
                ),
            ));
        }
        if !valid_name(&self.node_id) {
            return Err(invalid(
                "node_id",
                format!(
                    "`{}`: use 1-64 letters, digits, '.', '_' or '-'",
                    self.node_id
                ),
            ));
        }
        match self.advertise_addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => {
                return Err(invalid(
                    "advertise_addr",
                    format!("`{}` is not host:port", self.advertise_addr),
                ))
            }
        }
        if self.session_timeout < Duration::from_millis(500)
            || self.session_timeout > Duration::from_secs(600)
        {
            return Err(invalid(
                "zookeeper_session_timeout_ms",
                "must be between 500 and 600000 milliseconds",
            ));
        }
        Ok(())
    }

    /// The hosts part and the chroot (starting with `/`) of the connect string.
    pub(crate) fn split_connect_string(&self) -> (&str, Option<&str>) {
        match self.zookeeper.find('/') {
            Some(i) if i + 1 < self.zookeeper.len() => {
                (&self.zookeeper[..i], Some(&self.zookeeper[i..]))
            }
            Some(i) => (&self.zookeeper[..i], None),
            None => (&self.zookeeper, None),
        }
    }

    /// The cluster's root znode: `<chroot>/<cluster_name>`.
    pub(crate) fn root(&self) -> String {
        let (_, chroot) = self.split_connect_string();
        format!("{}/{}", chroot.unwrap_or(""), self.cluster_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClusterConfig {
        ClusterConfig {
            zookeeper: "127.0.0.1:2181".into(),
            cluster_name: "lsm".into(),
            node_id: "n1".into(),
            advertise_addr: "127.0.0.1:7379".into(),
            session_timeout: Duration::from_secs(6),
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(cfg().validate(), Ok(()));
        let bad = |f: fn(&mut ClusterConfig)| {
            let mut c = cfg();
            f(&mut c);
            c.validate().unwrap_err().key
        };
        assert_eq!(bad(|c| c.node_id = "a/b".into()), "node_id");
        assert_eq!(bad(|c| c.node_id = String::new()), "node_id");
        assert_eq!(bad(|c| c.node_id = "..".into()), "node_id");
        assert_eq!(bad(|c| c.cluster_name = "x y".into()), "cluster_name");
        assert_eq!(bad(|c| c.zookeeper = String::new()), "zookeeper");
        assert_eq!(bad(|c| c.zookeeper = "h:1,,h:2".into()), "zookeeper");
        assert_eq!(bad(|c| c.zookeeper = "h:99999".into()), "zookeeper");
        assert_eq!(bad(|c| c.zookeeper = "h:1/a//b".into()), "zookeeper");
        assert_eq!(
            bad(|c| c.advertise_addr = "nohost".into()),
            "advertise_addr"
        );
        assert_eq!(bad(|c| c.advertise_addr = "h:0".into()), "advertise_addr");
        assert_eq!(
            bad(|c| c.session_timeout = Duration::from_millis(10)),
            "zookeeper_session_timeout_ms"
        );
    }

    #[test]
    fn root_includes_the_chroot() {
        let mut c = cfg();
        assert_eq!(c.root(), "/lsm");
        c.zookeeper = "a:1,b:2/apps/kv".into();
        assert_eq!(c.split_connect_string(), ("a:1,b:2", Some("/apps/kv")));
        assert_eq!(c.root(), "/apps/kv/lsm");
        c.zookeeper = "a:1/".into();
        assert_eq!(c.root(), "/lsm");
    }
}
