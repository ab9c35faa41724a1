//! Followers forward every request that needs the leader over a per-client connection
//! to it (a [`LeaderLink`]) and relay the replies byte for byte, in order.
//!
//! The link opens with `AUTH` (the cluster shares `requirepass`), `HELLO 3` when the
//! client speaks RESP3, and `LSM.FORWARDED <epoch>`: the leader then serves the link
//! only while it leads in that epoch and answers `-STALEEPOCH` otherwise, so a node
//! that lost leadership never executes a request forwarded to it. A pipeline of requests
//! goes out in one write; their replies are read back as they come.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lsm_cluster::{Cluster, LeaderInfo, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::command::Session;
use crate::config::DEFAULT_LEADER_WAIT_MS;
use crate::connection::run_command;
use crate::protocol::{encode_request, reply_frame_len, Protocol, Reply, Request};
use crate::state::ServerState;

/// The error code a leader answers to a request forwarded in another epoch.
pub const STALE_EPOCH: &str = "STALEEPOCH";
/// How long opening a link may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A link on which the leader sends nothing for this long is given up.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Why a link failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the leader refused the link: {0}")]
    Refused(String),
    #[error("{0}")]
    Lost(String),
}

/// A connection from this follower to the leader, for one client.
#[derive(Debug)]
pub struct LeaderLink {
    leader: LeaderInfo,
    stream: TcpStream,
    input: BytesMut,
    protocol: Protocol,
}

fn cmd(args: &[&[u8]]) -> Request {
    args.iter().map(|a| Bytes::copy_from_slice(a)).collect()
}

fn hello(protocol: Protocol) -> Request {
    cmd(&[
        b"HELLO",
        match protocol {
            Protocol::Resp2 => b"2",
            Protocol::Resp3 => b"3",
        },
    ])
}

impl LeaderLink {
    /// Connects to `leader` and performs the handshake.
    ///
    /// # Errors
    /// The leader is unreachable or refuses the handshake.
    pub async fn open(
        leader: &LeaderInfo,
        protocol: Protocol,
        password: Option<&str>,
    ) -> Result<LeaderLink, LinkError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&leader.addr))
            .await
            .map_err(|_| LinkError::Connect(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| LinkError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut link = LeaderLink {
            leader: leader.clone(),
            stream,
            input: BytesMut::with_capacity(16 * 1024),
            protocol: Protocol::Resp2,
        };
        let mut handshake = Vec::new();
        if let Some(pw) = password {
            handshake.push(cmd(&[b"AUTH", pw.as_bytes()]));
        }
        handshake.push(cmd(&[
            b"LSM.FORWARDED",
            leader.epoch.to_string().as_bytes(),
        ]));
        let replies = tokio::time::timeout(CONNECT_TIMEOUT, link.exchange(&handshake, None))
            .await
            .map_err(|_| LinkError::Refused(format!("no answer within {CONNECT_TIMEOUT:?}")))??;
        if let Some(err) = replies.iter().find(|r| r.first() == Some(&b'-')) {
            return Err(LinkError::Refused(
                String::from_utf8_lossy(&err[1..]).trim_end().to_owned(),
            ));
        }
        link.switch_protocol(protocol).await?;
        Ok(link)
    }

    pub fn leader(&self) -> &LeaderInfo {
        &self.leader
    }

    async fn switch_protocol(&mut self, protocol: Protocol) -> Result<(), LinkError> {
        if self.protocol == protocol {
            return Ok(());
        }
        let replies = self.exchange(&[hello(protocol)], None).await?;
        if replies[0].first() == Some(&b'-') {
            return Err(LinkError::Refused(
                String::from_utf8_lossy(&replies[0][1..])
                    .trim_end()
                    .to_owned(),
            ));
        }
        self.protocol = protocol;
        Ok(())
    }

    /// Sends `reqs` in one write in the client's `protocol` and returns each raw reply.
    /// Gives up when `abandon` reports that another leader took over while replies are
    /// outstanding.
    ///
    /// # Errors
    /// The connection failed or the leader sent something that is not RESP; the
    /// outstanding requests may or may not have been applied.
    pub async fn call(
        &mut self,
        reqs: &[&Request],
        protocol: Protocol,
        abandon: Option<&mut watch::Receiver<lsm_cluster::ClusterView>>,
    ) -> Result<Vec<Bytes>, LinkError> {
        self.switch_protocol(protocol).await?;
        self.send_and_read(reqs, abandon).await
    }

    async fn exchange(
        &mut self,
        reqs: &[Request],
        abandon: Option<&mut watch::Receiver<lsm_cluster::ClusterView>>,
    ) -> Result<Vec<Bytes>, LinkError> {
        let refs: Vec<&Request> = reqs.iter().collect();
        self.send_and_read(&refs, abandon).await
    }

    async fn send_and_read(
        &mut self,
        reqs: &[&Request],
        mut abandon: Option<&mut watch::Receiver<lsm_cluster::ClusterView>>,
    ) -> Result<Vec<Bytes>, LinkError> {
        let mut out = BytesMut::new();
        for r in reqs {
            encode_request(r, &mut out);
        }
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| LinkError::Lost(format!("writing to the leader: {e}")))?;
        let mut replies = Vec::with_capacity(reqs.len());
        while replies.len() < reqs.len() {
            match reply_frame_len(&self.input) {
                Ok(Some(len)) => {
                    replies.push(self.input.split_to(len).freeze());
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(LinkError::Lost(format!("bad reply from the leader: {e}"))),
            }
            self.input.reserve(64 * 1024);
            let epoch = self.leader.epoch;
            let superseded = async {
                match abandon.as_deref_mut() {
                    Some(rx) => loop {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                        let v = rx.borrow_and_update();
                        if v.leader.as_ref().is_some_and(|l| l.epoch != epoch) {
                            return;
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.stream.read_buf(&mut self.input) => match r {
                    Ok(0) => return Err(LinkError::Lost("the leader closed the connection".into())),
                    Ok(_) => {}
                    Err(e) => return Err(LinkError::Lost(format!("reading from the leader: {e}"))),
                },
                () = superseded => {
                    return Err(LinkError::Lost("another node became leader while replies were outstanding".into()));
                }
                () = tokio::time::sleep(STALL_LIMIT) => {
                    return Err(LinkError::Lost(format!("no reply from the leader for {STALL_LIMIT:?}")));
                }
            }
        }
        Ok(replies)
    }
}

/// Pause between attempts to reach a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long a request waits for a leader.
pub fn leader_wait(state: &ServerState) -> Duration {
    Duration::from_millis(
        state
            .config
            .cluster
            .as_ref()
            .map_or(DEFAULT_LEADER_WAIT_MS, |c| c.leader_wait_ms),
    )
}

/// `-CLUSTERDOWN` with the reason.
pub fn cluster_down(reason: &str) -> Reply {
    Reply::err(format!("CLUSTERDOWN no leader is available: {reason}"))
}

/// Where a request that needs the leader runs.
#[derive(Debug)]
pub enum Placement {
    Local,
    Forward(LeaderInfo),
    Refuse(Reply),
}

/// Decides where a request that needs the leader runs. On a follower's link (the session
/// carries the epoch it forwards in), only the leader of exactly that epoch serves; such
/// requests are never forwarded again.
pub async fn place(state: &ServerState, cluster: &Cluster, session: &Session) -> Placement {
    let start = Instant::now();
    match place_by_route(state, cluster, session).await {
        Placement::Local => match await_serving(state, cluster, start).await {
            Ok(()) => Placement::Local,
            Err(reply) => Placement::Refuse(reply),
        },
        other => other,
    }
}

/// In cluster mode, a new leader serves once its log holds every acknowledged write
/// (docs/cluster.md): waits for that until `leader_wait` after `start`.
async fn await_serving(
    state: &ServerState,
    cluster: &Cluster,
    start: Instant,
) -> Result<(), Reply> {
    let Some(repl) = state.replication.as_deref() else {
        return Ok(());
    };
    loop {
        if let Ok(epoch) = cluster.fence() {
            if repl.serving(epoch) {
                return Ok(());
            }
        }
        if start.elapsed() >= leader_wait(state) {
            return Err(cluster_down(&format!(
                "this node leads but is still completing its log ({:?}; waited {} ms)",
                repl.role(),
                start.elapsed().as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn place_by_route(state: &ServerState, cluster: &Cluster, session: &Session) -> Placement {
    let route = cluster.route(leader_wait(state)).await;
    let stale = |e: u64, why: String| {
        Reply::err(format!(
            "{STALE_EPOCH} request forwarded in leader epoch {e}, but {why}"
        ))
    };
    match (session.forwarded_epoch, route) {
        (None, Ok(Route::Local { .. })) => Placement::Local,
        (None, Ok(Route::Forward(l))) => Placement::Forward(l),
        (Some(e), Ok(Route::Local { epoch })) if epoch == e => Placement::Local,
        (Some(e), Ok(Route::Local { epoch })) => {
            Placement::Refuse(stale(e, format!("this node leads in epoch {epoch}")))
        }
        (Some(e), Ok(Route::Forward(l))) => Placement::Refuse(stale(
            e,
            format!(
                "this node is not the leader (the leader is {} in epoch {})",
                l.node_id, l.epoch
            ),
        )),
        (_, Err(u)) => Placement::Refuse(cluster_down(&u.to_string())),
    }
}

/// Answers `n` requests with the error `reply`.
fn refuse(
    reply: &Reply,
    n: usize,
    protocol: Protocol,
    output: &mut BytesMut,
    errors: &mut Vec<bool>,
) {
    for _ in 0..n {
        reply.encode(protocol, output);
    }
    errors.resize(errors.len() + n, true);
}

/// Asks for a route again before `deadline`; with `stale`, a route to that same leader
/// epoch does not count (it just refused us).
async fn reroute(
    cluster: &Cluster,
    deadline: Instant,
    stale: Option<&LeaderInfo>,
) -> Result<Route, String> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match cluster.route(remaining).await {
            Ok(Route::Forward(l)) if stale.is_some_and(|s| s.epoch == l.epoch) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the leader {} left epoch {} and no new leader is known yet",
                        l.node_id, l.epoch
                    ));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => return other.map_err(|u| u.to_string()),
        }
    }
}

/// Forwards `units` (see [`crate::command::forward_unit`]) to `leader` over the
/// client's link and appends one reply per unit to `output`, in order. Requests the
/// leader refused as stale are sent again to the next leader; if this node becomes the
/// leader meanwhile they run here. Returns whether each unit's reply is an error.
#[allow(clippy::too_many_arguments)]
pub async fn forward_units(
    state: &ServerState,
    cluster: &Cluster,
    session: &mut Session,
    link: &mut Option<LeaderLink>,
    mut leader: LeaderInfo,
    units: &[Vec<Request>],
    output: &mut BytesMut,
    multi_thread: bool,
) -> Vec<bool> {
    let deadline = Instant::now() + leader_wait(state);
    let mut errors = Vec::with_capacity(units.len());
    let mut rx = cluster.subscribe();
    while errors.len() < units.len() {
        let rest = &units[errors.len()..];
        if link.as_ref().is_some_and(|l| l.leader() != &leader) {
            *link = None;
        }
        let mut next_route = None;
        if link.is_none() {
            match LeaderLink::open(
                &leader,
                session.protocol,
                state.config.requirepass.as_deref(),
            )
            .await
            {
                Ok(l) => *link = Some(l),
                Err(e) => {
                    tracing::debug!(leader = %leader.node_id, addr = %leader.addr, "forwarding: {e}");
                    let why = format!(
                        "cannot reach the leader {} at {} ({e})",
                        leader.node_id, leader.addr
                    );
                    if Instant::now() >= deadline {
                        next_route = Some(Err(why));
                    } else {
                        tokio::time::sleep(RETRY_PAUSE).await;
                        next_route = Some(
                            reroute(cluster, deadline, None)
                                .await
                                .map_err(|r| format!("{why}; {r}")),
                        );
                    }
                }
            }
        }
        if next_route.is_none() {
            let Some(l) = link.as_mut() else { continue };
            let flat: Vec<&Request> = rest.iter().flatten().collect();
            match l.call(&flat, session.protocol, Some(&mut rx)).await {
                Ok(frames) => {
                    let mut end = 0;
                    let mut stale = false;
                    for unit in rest {
                        end += unit.len();
                        let Some(reply) = frames.get(end - 1) else {
                            break;
                        };
                        if reply.starts_with(b"-") && reply[1..].starts_with(STALE_EPOCH.as_bytes())
                        {
                            stale = true;
                            break;
                        }
                        output.extend_from_slice(reply);
                        errors.push(reply.first() == Some(&b'-'));
                    }
                    if stale {
                        tracing::debug!(leader = %leader.node_id, epoch = leader.epoch, "the leader refused a stale epoch; rerouting");
                        *link = None;
                        next_route = Some(reroute(cluster, deadline, Some(&leader)).await);
                    }
                }
                Err(e) => {
                    *link = None;
                    let reply = Reply::err(format!(
                        "ERR connection to the leader {} was lost ({e}); the command may or may not have been applied",
                        leader.node_id
                    ));
                    refuse(&reply, rest.len(), session.protocol, output, &mut errors);
                }
            }
        }
        match next_route {
            None => {}
            Some(Ok(Route::Forward(l))) => leader = l,
            Some(Ok(Route::Local { .. })) => {
                if let Err(reply) = await_serving(state, cluster, Instant::now()).await {
                    let n = units.len() - errors.len();
                    refuse(&reply, n, session.protocol, output, &mut errors);
                    continue;
                }
                for unit in &units[errors.len()..] {
                    let mut last = Reply::ok();
                    for req in unit {
                        last = run_command(state, session, req, multi_thread).await.1;
                    }
                    last.encode(session.protocol, output);
                    errors.push(last.is_error());
                }
            }
            Some(Err(reason)) => {
                let n = units.len() - errors.len();
                refuse(
                    &cluster_down(&reason),
                    n,
                    session.protocol,
                    output,
                    &mut errors,
                );
            }
        }
    }
    errors
}
