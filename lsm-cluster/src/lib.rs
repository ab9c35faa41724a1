//! `lsm-cluster`: leader election, membership and fencing for `lsm-server` nodes through
//! Apache ZooKeeper.
//!
//! A [`Cluster`] joins the ZooKeeper ensemble named by a connect string, registers this
//! node under `/<chroot>/<cluster>/members/<node-id>` (a duplicate id is refused), and
//! runs for leadership with the standard recipe: an ephemeral-sequential candidate under
//! `election/`, lowest sequence wins, each candidate watches only its predecessor. The
//! winner announces itself in the ephemeral `leader` znode; every node watches that one
//! znode to learn who leads. The leader's **epoch** is the `czxid` of its `leader` znode:
//! ZooKeeper's transaction ids only grow, so every new leader has a larger epoch.
//!
//! A leader serves ([`Cluster::fence`]) only while three things hold: it won the
//! election, its session is connected (it stops the moment ZooKeeper reports
//! `Disconnected`), and its **lease** is valid: a ZooKeeper request it sent less than
//! [`LEASE_FRACTION`] of the session timeout ago was answered. A process that was paused
//! therefore refuses to serve when it resumes, before it even learns that its session
//! expired. After `Expired` a new session is built and the node runs again as a
//! candidate. Design and failure cases: `docs/cluster.md`.

mod config;
mod coordinator;
mod znode;

pub use config::{ClusterConfig, ConfigError};
pub use coordinator::{Cluster, ClusterError, ClusterView, NotServing, Role, Route, Unavailable};
pub use znode::{LeaderInfo, Member};

/// The lease a leader holds after a ZooKeeper reply, as a fraction of the session
/// timeout: ZooKeeper cannot expire the session (and so cannot let another node win)
/// sooner than one full timeout after the request was sent.
pub const LEASE_FRACTION: f64 = 0.5;
