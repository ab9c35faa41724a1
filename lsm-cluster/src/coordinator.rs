//! The ZooKeeper side of a node: one background task per ZooKeeper session runs the
//! election, watches the leader and member znodes, keeps the leader's lease fresh, and
//! follows the session's state. A new session replaces an expired one.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::config::{ClusterConfig, ConfigError};
use crate::znode::{candidate_prefix, election_order, LeaderInfo, Member};
use crate::LEASE_FRACTION;

/// This node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It won the election and announced itself in the `leader` znode.
    Leader { epoch: u64 },
    /// Any other node, also while an election is under way.
    Follower,
}

/// What this node knows of the cluster (published on every change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub node_id: String,
    pub role: Role,
    /// Whether the ZooKeeper session is connected (to a read-write server).
    pub connected: bool,
    /// The current ZooKeeper session id (`0x...`), if any.
    pub session_id: Option<String>,
    /// The leader as the `leader` znode names it; None while none is known.
    pub leader: Option<LeaderInfo>,
    /// Live members, by node id.
    pub members: Vec<Member>,
}

/// Where a request that needs the leader goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node is the leader and may serve now, in `epoch`.
    Local { epoch: u64 },
    /// Another node leads: forward to it.
    Forward(LeaderInfo),
}

/// No leader could be found within the wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (waited {waited_ms} ms)")]
pub struct Unavailable {
    pub reason: String,
    pub waited_ms: u64,
}

/// Why this node may not serve as leader right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotServing {
    #[error("this node is not the leader")]
    NotLeader,
    #[error("this node leads but its ZooKeeper session is disconnected")]
    Disconnected,
    #[error("this node leads but has not heard from ZooKeeper recently enough (lease expired)")]
    LeaseExpired,
}

/// Failures of [`Cluster::join`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach ZooKeeper at {connect}: {reason}")]
    Connect { connect: String, reason: String },
    #[error(
        "node id `{node_id}` is already in use by a live member at {addr}; \
         give every node its own --node-id"
    )]
    DuplicateNodeId { node_id: String, addr: String },
    #[error("ZooKeeper {context}: {source}")]
    Zk {
        context: String,
        #[source]
        source: zk::Error,
    },
}

fn zk_err(context: impl Into<String>) -> impl FnOnce(zk::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Zk { context, source }
}

/// Errors after which the same request may simply be sent again: the connection, not
/// the session or the request, failed. The client library reports some connection
/// failures as custom errors ("no response from connection in ...").
fn transient(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::ConnectionLoss
            | zk::Error::Timeout
            | zk::Error::Throttled
            | zk::Error::NoHosts
            | zk::Error::NotReadOnly
            | zk::Error::Custom(_)
    )
}

/// Runs `op` until it succeeds or fails for a reason other than a lost connection.
async fn retry<T, F, Fut>(mut op: F) -> Result<T, zk::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, zk::Error>>,
{
    loop {
        match op().await {
            Err(e) if transient(&e) => {
                tracing::debug!("ZooKeeper request failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

const PERSISTENT: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const EPHEMERAL_SEQUENTIAL: zk::CreateOptions<'static> =
    zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());

/// One established ZooKeeper session with this node registered and running.
struct Session {
    client: zk::Client,
    sid: i64,
    candidate: String,
    candidate_name: String,
}

struct Inner {
    cfg: ClusterConfig,
    election: String,
    members: String,
    leader: String,
    me: Member,
    base: Instant,
    /// The epoch while this node leads with a connected session; 0 otherwise.
    serving_epoch: AtomicU64,
    /// End of the lease, in nanoseconds since `base`.
    lease_until: AtomicU64,
    /// The negotiated session timeout, in milliseconds.
    timeout_ms: AtomicU64,
    view: watch::Sender<ClusterView>,
    wake_heartbeat: Notify,
}

/// A node's membership in a cluster; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("cfg", &self.cfg)
            .field("view", &*self.view.borrow())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to ZooKeeper, registers this node (refusing a node id that a live member
    /// holds), and starts running for leadership in the background. Must run inside a
    /// tokio runtime.
    ///
    /// If a member with this id and this node's address exists (a previous run of this
    /// node whose session has not expired yet), waits up to two session timeouts for it
    /// to go away.
    ///
    /// # Errors
    /// Invalid settings, ZooKeeper unreachable, a duplicate node id.
    pub async fn join(cfg: ClusterConfig) -> Result<Cluster, ClusterError> {
        cfg.validate()?;
        let root = cfg.root();
        let (view, _) = watch::channel(ClusterView {
            node_id: cfg.node_id.clone(),
            role: Role::Follower,
            connected: false,
            session_id: None,
            leader: None,
            members: Vec::new(),
        });
        let inner = Arc::new(Inner {
            election: format!("{root}/election"),
            members: format!("{root}/members"),
            leader: format!("{root}/leader"),
            me: Member {
                node_id: cfg.node_id.clone(),
                addr: cfg.advertise_addr.clone(),
            },
            base: Instant::now(),
            serving_epoch: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            timeout_ms: AtomicU64::new(cfg.session_timeout.as_millis() as u64),
            view,
            wake_heartbeat: Notify::new(),
            cfg,
        });
        let client = inner.connect().await?;
        let session = inner.establish(client).await?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(inner.clone().run(session, stop_rx));
        Ok(Cluster {
            inner,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.cfg
    }

    /// What this node knows now.
    pub fn view(&self) -> ClusterView {
        self.inner.view.borrow().clone()
    }

    /// Changes of the view.
    pub fn subscribe(&self) -> watch::Receiver<ClusterView> {
        self.inner.view.subscribe()
    }

    /// The negotiated ZooKeeper session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.inner.timeout()
    }

    /// The epoch in which this node may serve as leader at this instant: it won the
    /// election, its session is connected and its lease is valid. Check it right before
    /// executing each request that needs the leader.
    ///
    /// # Errors
    /// Why it may not serve.
    pub fn fence(&self) -> Result<u64, NotServing> {
        let epoch = self.inner.serving_epoch.load(Ordering::Acquire);
        if epoch == 0 {
            return Err(match self.inner.view.borrow().role {
                Role::Leader { .. } => NotServing::Disconnected,
                Role::Follower => NotServing::NotLeader,
            });
        }
        if self.inner.now_nanos() >= self.inner.lease_until.load(Ordering::Acquire) {
            return Err(NotServing::LeaseExpired);
        }
        Ok(epoch)
    }

    /// Where a request that needs the leader should go. While no leader can serve (an
    /// election under way, this leader disconnected or without lease), waits up to
    /// `wait` for one.
    ///
    /// # Errors
    /// [`Unavailable`] when the wait ends without a leader.
    pub async fn route(&self, wait: Duration) -> Result<Route, Unavailable> {
        let start = Instant::now();
        let mut rx = self.inner.view.subscribe();
        loop {
            if let Ok(epoch) = self.fence() {
                return Ok(Route::Local { epoch });
            }
            let reason = {
                let v = rx.borrow_and_update();
                match (&v.role, &v.leader) {
                    (Role::Follower, Some(l)) if l.node_id != v.node_id => {
                        return Ok(Route::Forward(l.clone()))
                    }
                    (Role::Leader { .. }, _) if !v.connected => {
                        "this node leads but its ZooKeeper session is disconnected"
                    }
                    (Role::Leader { .. }, _) => {
                        "this node leads but has not heard from ZooKeeper recently enough"
                    }
                    _ if !v.connected => "no leader is known: not connected to ZooKeeper",
                    _ => "no leader is known: an election is under way",
                }
            };
            let waited = start.elapsed();
            if waited >= wait {
                return Err(Unavailable {
                    reason: reason.to_owned(),
                    waited_ms: waited.as_millis() as u64,
                });
            }
            // The lease comes back without a view change, so poll as well.
            let step = (wait - waited).min(Duration::from_millis(20));
            let _ = tokio::time::timeout(step, rx.changed()).await;
        }
    }

    /// Leaves the cluster: a leader first deletes its `leader` znode and candidate, so a
    /// successor takes over at once instead of after a session timeout; then the session
    /// is closed. Idempotent.
    pub async fn leave(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Inner {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    fn now_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// A ZooKeeper request sent at `sent` was answered: the session cannot expire before
    /// `sent + timeout`, so this node may serve until `sent + timeout * LEASE_FRACTION`.
    fn renew_lease(&self, sent: Instant) {
        let until =
            sent.saturating_duration_since(self.base) + self.timeout().mul_f64(LEASE_FRACTION);
        self.lease_until
            .fetch_max(until.as_nanos() as u64, Ordering::AcqRel);
    }

    /// Publishes a view change and recomputes whether this node serves.
    fn update(&self, f: impl FnOnce(&mut ClusterView)) {
        self.view.send_if_modified(|v| {
            let before = v.clone();
            f(v);
            let epoch = match v.role {
                Role::Leader { epoch } if v.connected => epoch,
                _ => 0,
            };
            self.serving_epoch.store(epoch, Ordering::Release);
            *v != before
        });
    }

    async fn connect(&self) -> Result<zk::Client, ClusterError> {
        let (hosts, _) = self.cfg.split_connect_string();
        let limit = self.cfg.session_timeout * 2 + Duration::from_secs(2);
        let connecting = zk::Client::connector()
            .with_session_timeout(self.cfg.session_timeout)
            .connect(hosts);
        let client = match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(ClusterError::Connect {
                    connect: self.cfg.zookeeper.clone(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClusterError::Connect {
                    connect: self.cfg.zookeeper.clone(),
                    reason: format!("no session within {} ms", limit.as_millis()),
                })
            }
        };
        self.timeout_ms.store(
            client.session_timeout().as_millis() as u64,
            Ordering::Relaxed,
        );
        Ok(client)
    }

    /// Creates the cluster's znodes if needed, registers this node and its candidate.
    async fn establish(&self, client: zk::Client) -> Result<Session, ClusterError> {
        for dir in [&self.election, &self.members] {
            retry(|| client.mkdir(dir, &PERSISTENT))
                .await
                .map_err(zk_err(format!("creating {dir}")))?;
        }
        let sid = client.session_id().0;
        self.register(&client, sid).await?;
        let (candidate, candidate_name) = self.create_candidate(&client, sid).await?;
        tracing::info!(
            node_id = %self.cfg.node_id,
            session = %client.session_id(),
            candidate = %candidate_name,
            "joined the cluster at {}",
            self.cfg.zookeeper
        );
        Ok(Session {
            client,
            sid,
            candidate,
            candidate_name,
        })
    }

    /// Creates `members/<node-id>`; refuses an id held by another live member.
    async fn register(&self, client: &zk::Client, sid: i64) -> Result<(), ClusterError> {
        let path = format!("{}/{}", self.members, self.cfg.node_id);
        let data = self.me.encode();
        let deadline = Instant::now() + self.timeout() * 2 + Duration::from_secs(1);
        let mut waiting_logged = false;
        loop {
            match retry(|| client.create(&path, &data, &EPHEMERAL)).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(zk_err(format!("creating {path}"))(e)),
            }
            let (other, stat, watcher) = match retry(|| client.get_and_watch_data(&path)).await {
                Ok(found) => found,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(zk_err(format!("reading {path}"))(e)),
            };
            if stat.ephemeral_owner == sid {
                // Our own create, whose reply was lost with the connection.
                return Ok(());
            }
            let other_addr = Member::decode(&other).map_or_else(|e| format!("? ({e})"), |m| m.addr);
            let now = Instant::now();
            if other_addr != self.me.addr || now >= deadline {
                return Err(ClusterError::DuplicateNodeId {
                    node_id: self.cfg.node_id.clone(),
                    addr: other_addr,
                });
            }
            if !waiting_logged {
                tracing::info!(
                    node_id = %self.cfg.node_id,
                    "a previous session of this node is still registered; waiting for it to expire"
                );
                waiting_logged = true;
            }
            let _ = tokio::time::timeout(deadline - now, watcher.changed()).await;
        }
    }

    /// Creates this session's election candidate; returns its path and name.
    async fn create_candidate(
        &self,
        client: &zk::Client,
        sid: i64,
    ) -> Result<(String, String), ClusterError> {
        let prefix = candidate_prefix(sid, &self.cfg.node_id);
        let path = format!("{}/{prefix}", self.election);
        let data = self.me.encode();
        loop {
            match client.create(&path, &data, &EPHEMERAL_SEQUENTIAL).await {
                Ok((_, seq)) => {
                    let name = format!("{prefix}{seq}");
                    return Ok((format!("{}/{name}", self.election), name));
                }
                Err(e) if transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // The create may have succeeded without its reply reaching us.
                    if let Ok(children) = client.list_children(&self.election).await {
                        if let Some(name) = children.into_iter().find(|n| n.starts_with(&prefix)) {
                            return Ok((format!("{}/{name}", self.election), name));
                        }
                    }
                }
                Err(e) => return Err(zk_err("creating the election candidate")(e)),
            }
        }
    }

    /// Serves sessions until told to stop; an expired session is replaced.
    async fn run(self: Arc<Self>, first: Session, mut stop: watch::Receiver<bool>) {
        let mut next = Some(first);
        loop {
            let session = match next.take() {
                Some(s) => s,
                None => {
                    let attempt = async {
                        let client = self.connect().await?;
                        self.establish(client).await
                    };
                    let result = tokio::select! {
                        r = attempt => r,
                        _ = stop.changed() => return,
                    };
                    match result {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!("rejoining the cluster failed: {e}; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
            };
            let sid = session.client.session_id().to_string();
            self.update(|v| {
                v.connected = true;
                v.session_id = Some(sid.clone());
            });
            let ended = tokio::select! {
                e = self.serve(&session) => Some(e),
                _ = stop.changed() => None,
            };
            match ended {
                Some(e) => {
                    tracing::warn!(session = %sid, "ZooKeeper session ended ({e}); joining again with a new session");
                    self.update(|v| {
                        v.role = Role::Follower;
                        v.connected = false;
                        v.session_id = None;
                        v.leader = None;
                    });
                    drop(session);
                }
                None => {
                    self.resign(session).await;
                    return;
                }
            }
        }
    }

    /// Runs one session's duties; returns the error that ended it.
    async fn serve(&self, s: &Session) -> zk::Error {
        tokio::select! {
            e = self.follow_state(s.client.state_watcher()) => e,
            e = self.heartbeat(s) => e,
            e = self.elect(s) => e,
            e = self.watch_leader(s) => e,
            e = self.watch_members(s) => e,
        }
    }

    async fn follow_state(&self, mut w: zk::StateWatcher) -> zk::Error {
        loop {
            match w.changed().await {
                zk::SessionState::SyncConnected => {
                    tracing::info!("ZooKeeper connection restored");
                    self.update(|v| v.connected = true);
                    self.wake_heartbeat.notify_one();
                }
                zk::SessionState::Disconnected | zk::SessionState::ConnectedReadOnly => {
                    tracing::warn!(
                        "ZooKeeper connection lost; not serving as leader until it is back"
                    );
                    self.update(|v| v.connected = false);
                }
                zk::SessionState::Expired => return zk::Error::SessionExpired,
                zk::SessionState::AuthFailed => return zk::Error::AuthFailed,
                zk::SessionState::Closed => return zk::Error::ClientClosed,
            }
        }
    }

    /// Keeps the lease fresh: a cheap read every sixth of the session timeout.
    async fn heartbeat(&self, s: &Session) -> zk::Error {
        loop {
            let sent = Instant::now();
            match tokio::time::timeout(self.timeout() / 3, s.client.check_stat(&s.candidate)).await
            {
                Ok(Ok(Some(stat))) if stat.ephemeral_owner == s.sid => self.renew_lease(sent),
                Ok(Ok(_)) => return zk::Error::NoNode,
                Ok(Err(e)) if !transient(&e) => return e,
                _ => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.timeout() / 6) => {}
                () = self.wake_heartbeat.notified() => {}
            }
        }
    }

    /// The election: lowest candidate leads; every other watches its predecessor.
    async fn elect(&self, s: &Session) -> zk::Error {
        loop {
            let children = match retry(|| s.client.list_children(&self.election)).await {
                Ok(c) => c,
                Err(e) => return e,
            };
            let order = election_order(&children);
            let Some(pos) = order.iter().position(|n| *n == s.candidate_name) else {
                tracing::warn!("this node's election candidate is gone");
                return zk::Error::NoNode;
            };
            if pos == 0 {
                if let Err(e) = self.lead(s).await {
                    return e;
                }
                continue;
            }
            let predecessor = format!("{}/{}", self.election, order[pos - 1]);
            match retry(|| s.client.check_and_watch_stat(&predecessor)).await {
                Ok((None, _)) => {}
                Ok((Some(_), watcher)) => {
                    tracing::debug!(%predecessor, "waiting for the predecessor candidate");
                    watcher.changed().await;
                }
                Err(e) => return e,
            }
        }
    }

    /// Announces this node in the `leader` znode and holds leadership while that znode is
    /// ours. Returns Ok when leadership was lost without the session ending.
    async fn lead(&self, s: &Session) -> Result<(), zk::Error> {
        let data = self.me.encode();
        let epoch = loop {
            let sent = Instant::now();
            match s.client.create(&self.leader, &data, &EPHEMERAL).await {
                Ok((stat, _)) if stat.czxid > 0 => {
                    self.renew_lease(sent);
                    break stat.czxid;
                }
                Ok(_) | Err(zk::Error::NodeExists) => {
                    match retry(|| s.client.get_and_watch_data(&self.leader)).await {
                        Ok((_, stat, _)) if stat.ephemeral_owner == s.sid => {
                            self.renew_lease(sent);
                            break stat.czxid;
                        }
                        Ok((_, _, watcher)) => {
                            tracing::info!("waiting for the previous leader's znode to go");
                            watcher.changed().await;
                        }
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if transient(&e) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(e),
            }
        };
        let epoch = epoch as u64;
        tracing::info!(node_id = %self.cfg.node_id, epoch, "this node is now the leader");
        self.update(|v| {
            v.role = Role::Leader { epoch };
            v.leader = Some(LeaderInfo {
                node_id: self.me.node_id.clone(),
                addr: self.me.addr.clone(),
                epoch,
            });
        });
        loop {
            match retry(|| s.client.check_and_watch_stat(&self.leader)).await {
                Ok((Some(stat), watcher)) if stat.ephemeral_owner == s.sid => {
                    watcher.changed().await;
                }
                Ok(_) => {
                    tracing::warn!("the leader znode was removed; stepping down");
                    self.update(|v| v.role = Role::Follower);
                    return Ok(());
                }
                Err(e) => {
                    self.update(|v| v.role = Role::Follower);
                    return Err(e);
                }
            }
        }
    }

    /// Follows the `leader` znode.
    async fn watch_leader(&self, s: &Session) -> zk::Error {
        loop {
            match retry(|| s.client.get_and_watch_data(&self.leader)).await {
                Ok((data, stat, watcher)) => {
                    let leader = match Member::decode(&data) {
                        Ok(m) => Some(LeaderInfo {
                            node_id: m.node_id,
                            addr: m.addr,
                            epoch: stat.czxid as u64,
                        }),
                        Err(why) => {
                            tracing::warn!("the leader znode holds bad data: {why}");
                            None
                        }
                    };
                    if let Some(l) = &leader {
                        tracing::info!(leader = %l.node_id, addr = %l.addr, epoch = l.epoch, "leader known");
                    }
                    self.update(|v| v.leader = leader);
                    watcher.changed().await;
                }
                Err(zk::Error::NoNode) => {
                    self.update(|v| v.leader = None);
                    match retry(|| s.client.check_and_watch_stat(&self.leader)).await {
                        Ok((None, watcher)) => {
                            watcher.changed().await;
                        }
                        Ok((Some(_), _)) => {}
                        Err(e) => return e,
                    }
                }
                Err(e) => return e,
            }
        }
    }

    /// Follows the member znodes.
    async fn watch_members(&self, s: &Session) -> zk::Error {
        loop {
            let (names, watcher) =
                match retry(|| s.client.list_and_watch_children(&self.members)).await {
                    Ok(found) => found,
                    Err(e) => return e,
                };
            let mut members = Vec::with_capacity(names.len());
            for name in names {
                let path = format!("{}/{name}", self.members);
                match retry(|| s.client.get_data(&path)).await {
                    Ok((data, _)) => match Member::decode(&data) {
                        Ok(m) => members.push(m),
                        Err(why) => tracing::warn!(%path, "bad member znode: {why}"),
                    },
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return e,
                }
            }
            members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            self.update(|v| v.members = members);
            watcher.changed().await;
        }
    }

    /// Steps down and removes this node's znodes so that others need not wait for the
    /// session to expire, then closes the session.
    async fn resign(&self, s: Session) {
        let was_leader = matches!(self.view.borrow().role, Role::Leader { .. });
        self.update(|v| {
            v.role = Role::Follower;
            v.connected = false;
        });
        let limit = Duration::from_secs(2);
        let removals = async {
            if was_leader {
                // Only our own leader znode; a new leader's must stay.
                if let Ok(Some(stat)) = s.client.check_stat(&self.leader).await {
                    if stat.ephemeral_owner == s.sid {
                        let _ = s.client.delete(&self.leader, Some(stat.version)).await;
                    }
                }
            }
            let _ = s.client.delete(&s.candidate, None).await;
            let member = format!("{}/{}", self.members, self.cfg.node_id);
            if let Ok(Some(stat)) = s.client.check_stat(&member).await {
                if stat.ephemeral_owner == s.sid {
                    let _ = s.client.delete(&member, Some(stat.version)).await;
                }
            }
        };
        if tokio::time::timeout(limit, removals).await.is_err() {
            tracing::warn!(
                "could not remove this node's znodes in time; they go when the session expires"
            );
        }
        let mut state = s.client.state_watcher();
        drop(s);
        // Dropping the last client closes the session; wait briefly for that to happen.
        let _ = tokio::time::timeout(limit, async {
            loop {
                if matches!(
                    state.changed().await,
                    zk::SessionState::Closed | zk::SessionState::Expired
                ) {
                    break;
                }
            }
        })
        .await;
        tracing::info!(node_id = %self.cfg.node_id, was_leader, "left the cluster");
    }
}
