//! Replication of the leader's write log to the followers (cluster mode).
//!
//! Every write the leader accepts becomes one log [`Entry`]: an engine write batch with
//! its index and the leader's epoch. The leader appends it to its [`ReplLog`], streams it
//! to every follower (which append it to theirs and acknowledge), and counts it
//! *committed* once a majority of the cluster holds it; only committed entries are applied
//! to any engine, the leader's included, in log order, by one applier thread per node;
//! only then is the client answered. Design, rules and failure cases:
//! `docs/cluster.md` ("Replication").
//!
//! The position of an engine in the log is its [`lsm_core::Db::last_sequence`]: every
//! node applies the same batches in the same order, so after a crash the engine's
//! recovered sequence names the last entry it applied.

pub mod log;
pub mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lsm_core::{Db, WriteBatch};

use crate::engine::EngineSlot;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

pub use log::{Entry, LogError, Point, ReplLog};

/// When a write counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Once a majority of the cluster (leader included) holds it in its log.
    #[default]
    Majority,
    /// Once the leader holds it: faster, but a failover can lose acknowledged writes.
    Leader,
}

impl Acks {
    pub fn parse(s: &str) -> Option<Acks> {
        match s {
            "majority" => Some(Acks::Majority),
            "leader" => Some(Acks::Leader),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Acks::Majority => "majority",
            Acks::Leader => "leader",
        }
    }
}

/// Replication settings.
#[derive(Debug, Clone)]
pub struct ReplSettings {
    pub node_id: String,
    /// Number of nodes in the cluster; a majority is `cluster_size / 2 + 1`.
    pub cluster_size: usize,
    pub acks: Acks,
    /// Bytes of applied log entries kept for followers that fall behind.
    pub retain_bytes: usize,
    /// fsync the log before acknowledging.
    pub sync: bool,
    /// The node's data directory (engine copies from checkpoints go there).
    pub data_dir: PathBuf,
    /// Options to open an engine copy with.
    pub engine_options: lsm_core::Options,
}

/// This node's part in replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplRole {
    /// Neither leading nor following (no leader known, or shutting down).
    Idle,
    /// Following the leader of `epoch`.
    Following { epoch: u64, leader: String },
    /// Won the election in `epoch`; gathering the followers' positions and completing
    /// its log before it may append.
    Recovering { epoch: u64 },
    /// Leading in `epoch`: appends, streams, commits.
    Leading { epoch: u64 },
    /// Stopped after an error it cannot repair by itself.
    Failed(String),
}

/// What the leader knows of one follower.
#[derive(Debug, Clone)]
pub struct FollowerInfo {
    pub addr: String,
    /// Highest index known to be in its log (and equal to ours).
    pub matched: u64,
    pub streaming: bool,
    pub last_ack: Instant,
}

#[derive(Debug)]
struct ReplState {
    role: ReplRole,
    /// Bumped on every role change; a write waits only within its generation.
    generation: u64,
    commit: u64,
    applied: u64,
    /// The leader may serve: its epoch's first entry is applied.
    serving: bool,
    followers: BTreeMap<String, FollowerInfo>,
    /// Log positions announced by followers to this node while it recovers.
    announced: BTreeMap<String, (String, Point)>,
    /// On a follower: whether the stream from the leader is up.
    link_up: bool,
    /// The applier must not start a batch (the engine is being replaced).
    paused: bool,
    /// The applier is applying a batch.
    applying: bool,
    shutdown: bool,
}

/// A write appended to the log: its entry index and the role generation it was
/// appended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub index: u64,
    pub generation: u64,
}

thread_local! {
    /// The ticket of the write the command running on this thread appended (see
    /// [`take_ticket`]).
    static TICKET: std::cell::Cell<Option<Ticket>> = const { std::cell::Cell::new(None) };
}

/// Takes the ticket of the last write appended on this thread since the previous call.
/// The connection calls it right after executing a command (synchronously, so on the
/// same thread) and waits for the ticket before answering.
pub fn take_ticket() -> Option<Ticket> {
    TICKET.with(std::cell::Cell::take)
}

fn set_ticket(t: Ticket) {
    TICKET.with(|c| {
        let keep = c
            .get()
            .is_some_and(|old| old.generation == t.generation && old.index > t.index);
        if !keep {
            c.set(Some(t));
        }
    });
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("CLUSTERDOWN this node is not the leader ({0})")]
    NotLeader(String),
    #[error("NOREPLICAS not enough followers connected to acknowledge a write ({connected} of the {needed} needed)")]
    NoReplicas { connected: usize, needed: usize },
    #[error("CLUSTERDOWN leadership changed before the write was acknowledged; it may or may not have been applied")]
    Lost,
    #[error("ERR {0}")]
    Failed(String),
}

/// The replication state of one node.
#[derive(Debug)]
pub struct Replication {
    settings: ReplSettings,
    engine: Arc<EngineSlot>,
    log: Mutex<ReplLog>,
    st: Mutex<ReplState>,
    /// Signalled when commit, applied, role or shutdown change.
    cv: Condvar,
    /// (last index, commit, generation), for the async streams.
    progress: watch::Sender<(u64, u64, u64)>,
    /// (applied index, generation), for writers waiting to answer.
    applied_tx: watch::Sender<(u64, u64)>,
    applier: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Most bytes of entries applied in one engine batch.
const APPLY_BATCH_BYTES: usize = 4 << 20;

impl Replication {
    /// Opens the log in `dir` next to the engine in `engine` and starts the applier
    /// thread. `copied_at`: the log point of the engine copy in force, if it came from a
    /// leader's checkpoint (see [`crate::engine`]).
    ///
    /// # Errors
    /// The log cannot be read, or does not fit the engine (then the node needs its data
    /// rebuilt from the cluster: the message says so).
    pub fn open(
        dir: &Path,
        engine: Arc<EngineSlot>,
        settings: ReplSettings,
        copied_at: Option<Point>,
    ) -> Result<Arc<Replication>, LogError> {
        let mut log = ReplLog::open(dir, settings.sync)?;
        let seq = engine.get().last_sequence();
        let last = log.last();
        let applied = if log.base().seq == seq {
            Some(log.base().index)
        } else {
            (log.base().index + 1..=last.index)
                .find(|&i| log.point_at(i).is_some_and(|p| p.seq == seq))
        };
        let applied = match (applied, copied_at) {
            (Some(i), _) => i,
            (None, Some(p)) if p.seq == seq => {
                // A crash after the engine copy was put in force and before the log was
                // reset to its point: finish that.
                log.reset(p)?;
                p.index
            }
            (None, _) if last == log.base() && last.index == 0 => {
                // A fresh log next to an engine that already holds data (for example a
                // former standalone directory): the leader will find the mismatch and
                // send a checkpoint.
                log.reset(Point {
                    index: 0,
                    epoch: 0,
                    seq,
                })?;
                0
            }
            (None, _) => {
                return Err(LogError::Invalid(format!(
                    "the engine is at sequence {seq}, which no entry of the log in {} ends at \
                     (it covers sequences {} to {}); move this node's data directory away \
                     so that it starts empty and copies the cluster's data",
                    dir.display(),
                    log.base().seq,
                    last.seq
                )))
            }
        };
        // Entries after `applied` may or may not be committed: the leader will say.
        let (progress, _) = watch::channel((last.index, applied, 0));
        let (applied_tx, _) = watch::channel((applied, 0));
        let repl = Arc::new(Replication {
            settings,
            engine,
            log: Mutex::new(log),
            st: Mutex::new(ReplState {
                role: ReplRole::Idle,
                generation: 0,
                commit: applied,
                applied,
                serving: false,
                followers: BTreeMap::new(),
                announced: BTreeMap::new(),
                link_up: false,
                paused: false,
                applying: false,
                shutdown: false,
            }),
            cv: Condvar::new(),
            progress,
            applied_tx,
            applier: Mutex::new(None),
        });
        let r = repl.clone();
        let handle = std::thread::Builder::new()
            .name("lsm-apply".into())
            .spawn(move || r.apply_loop())
            .map_err(|e| LogError::Io {
                context: "starting the applier thread".into(),
                source: e,
            })?;
        *repl.applier.lock() = Some(handle);
        Ok(repl)
    }

    pub fn settings(&self) -> &ReplSettings {
        &self.settings
    }

    /// A majority of the cluster.
    pub fn majority(&self) -> usize {
        self.settings.cluster_size / 2 + 1
    }

    pub fn role(&self) -> ReplRole {
        self.st.lock().role.clone()
    }

    /// The last entry of this node's log.
    pub fn last(&self) -> Point {
        self.log.lock().last()
    }

    /// The point before the first entry this node still holds.
    pub fn log_base(&self) -> Point {
        self.log.lock().base()
    }

    pub fn commit_index(&self) -> u64 {
        self.st.lock().commit
    }

    pub fn applied_index(&self) -> u64 {
        self.st.lock().applied
    }

    /// Whether this node may serve as leader in `epoch` (its log is complete and its
    /// epoch's first entry applied).
    pub fn serving(&self, epoch: u64) -> bool {
        let st = self.st.lock();
        st.serving && st.role == ReplRole::Leading { epoch }
    }

    /// Followers known to the leader (empty elsewhere), by node id.
    pub fn followers(&self) -> Vec<(String, FollowerInfo)> {
        self.st
            .lock()
            .followers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The role as INFO shows it: `leading`, `recovering`, `following`, `idle`, or
    /// `failed: <reason>`.
    pub fn state_name(&self) -> String {
        match self.role() {
            ReplRole::Idle => "idle".into(),
            ReplRole::Following { .. } => "following".into(),
            ReplRole::Recovering { .. } => "recovering".into(),
            ReplRole::Leading { .. } => "leading".into(),
            ReplRole::Failed(r) => format!("failed: {r}"),
        }
    }

    /// On a follower: whether the stream from the leader is up.
    pub fn link_up(&self) -> bool {
        self.st.lock().link_up
    }

    pub fn subscribe(&self) -> watch::Receiver<(u64, u64, u64)> {
        self.progress.subscribe()
    }

    fn publish(&self, st: &ReplState, last: u64) {
        self.progress.send_replace((last, st.commit, st.generation));
    }

    /// Changes the role; every write waiting in the old role fails.
    fn set_role(&self, role: ReplRole) {
        let last = self.log.lock().last().index;
        let mut st = self.st.lock();
        if st.role == role {
            return;
        }
        tracing::info!(from = ?st.role, to = ?role, "replication role");
        st.role = role;
        st.generation += 1;
        st.serving = false;
        st.followers.clear();
        st.announced.clear();
        st.link_up = false;
        self.publish(&st, last);
        self.applied_tx.send_replace((st.applied, st.generation));
        self.cv.notify_all();
    }

    fn fail(&self, reason: String) {
        tracing::error!("replication stopped: {reason}");
        self.set_role(ReplRole::Failed(reason));
    }

    fn failed(&self) -> Option<String> {
        match &self.st.lock().role {
            ReplRole::Failed(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// Appends `batch` to the log as the leader and returns its ticket; the caller
    /// answers the client once [`Replication::wait`] says the entry is applied here
    /// (committed by a majority, or with [`Acks::Leader`] appended here), and holds the
    /// keys' stripes until then.
    ///
    /// # Errors
    /// This node does not lead, too few followers are connected, or the log failed.
    pub fn append(&self, batch: &WriteBatch) -> Result<Ticket, WriteError> {
        let mut log = self.log.lock();
        let (epoch, generation) = {
            let st = self.st.lock();
            let epoch = match &st.role {
                ReplRole::Leading { epoch } if st.serving => *epoch,
                ReplRole::Failed(r) => return Err(WriteError::Failed(r.clone())),
                other => return Err(WriteError::NotLeader(format!("{other:?}"))),
            };
            if self.settings.acks == Acks::Majority {
                let connected = st.followers.values().filter(|f| f.streaming).count();
                let needed = self.majority() - 1;
                if connected < needed {
                    return Err(WriteError::NoReplicas { connected, needed });
                }
            }
            (epoch, st.generation)
        };
        let last = log.last();
        let entry = Entry::new(
            last.index + 1,
            epoch,
            Bytes::from(batch.to_bytes(last.seq + 1)),
        )
        .map_err(WriteError::Failed)?;
        if let Err(e) = log.append(std::slice::from_ref(&entry)) {
            drop(log);
            self.fail(e.to_string());
            return Err(WriteError::Failed(e.to_string()));
        }
        let mut st = self.st.lock();
        self.advance_commit(&log, &mut st);
        self.progress
            .send_replace((entry.index, st.commit, st.generation));
        let ticket = Ticket {
            index: entry.index,
            generation,
        };
        set_ticket(ticket);
        Ok(ticket)
    }

    /// Waits until the ticket's entry is applied here.
    ///
    /// # Errors
    /// Leadership changed first (the outcome is unknown), or replication failed.
    pub async fn wait(&self, ticket: Ticket) -> Result<(), WriteError> {
        let mut rx = self.applied_tx.subscribe();
        let seen = rx
            .wait_for(|&(applied, generation)| {
                generation != ticket.generation || applied >= ticket.index
            })
            .await
            .map(|v| *v);
        match seen {
            Ok((applied, generation))
                if generation == ticket.generation && applied >= ticket.index =>
            {
                Ok(())
            }
            _ => Err(match self.failed() {
                Some(r) => WriteError::Failed(r),
                None => WriteError::Lost,
            }),
        }
    }

    /// Recomputes the commit index on the leader: the highest index a majority holds,
    /// if it is of the current epoch (entries of earlier epochs commit with it).
    fn advance_commit(&self, log: &ReplLog, st: &mut ReplState) {
        let ReplRole::Leading { epoch } = st.role else {
            return;
        };
        let own = log.last().index;
        let candidate = match self.settings.acks {
            Acks::Leader => own,
            Acks::Majority => {
                let mut matched: Vec<u64> = st.followers.values().map(|f| f.matched).collect();
                matched.push(own);
                matched.sort_unstable_by(|a, b| b.cmp(a));
                match matched.get(self.majority() - 1) {
                    Some(&m) => m,
                    None => return,
                }
            }
        };
        if candidate > st.commit && log.point_at(candidate).is_some_and(|p| p.epoch == epoch) {
            st.commit = candidate;
            self.cv.notify_all();
        }
    }

    /// On the leader: a follower holds our log up to `matched`.
    fn follower_acked(&self, node: &str, generation: u64, matched: u64) {
        let log = self.log.lock();
        let mut st = self.st.lock();
        if st.generation != generation {
            return;
        }
        if let Some(f) = st.followers.get_mut(node) {
            f.matched = f.matched.max(matched);
            f.last_ack = Instant::now();
        }
        let before = st.commit;
        self.advance_commit(&log, &mut st);
        if st.commit != before {
            self.publish(&st, log.last().index);
        }
    }

    /// On a follower: the leader says entries up to `commit` are committed.
    fn leader_committed(&self, commit: u64) {
        let last = self.log.lock().last().index;
        let mut st = self.st.lock();
        let commit = commit.min(last);
        if commit > st.commit {
            st.commit = commit;
            self.cv.notify_all();
        }
    }

    /// The applier thread: applies committed entries in order, several per engine batch.
    fn apply_loop(&self) {
        loop {
            let (applied, commit) = {
                let mut st = self.st.lock();
                while !st.shutdown
                    && (st.commit <= st.applied || st.paused || self.failed_locked(&st))
                {
                    self.cv.wait(&mut st);
                }
                if st.shutdown {
                    return;
                }
                st.applying = true;
                (st.applied, st.commit)
            };
            let entries: Vec<Entry> = self
                .log
                .lock()
                .entries_after(applied, APPLY_BATCH_BYTES)
                .into_iter()
                .take_while(|e| e.index <= commit)
                .collect();
            let result = match entries.last().map(Entry::point) {
                None => Err(format!(
                    "committed entry {} is missing from the log (applied up to {applied})",
                    applied + 1
                )),
                Some(last) => self.apply(&entries).map(|()| last),
            };
            let mut st = self.st.lock();
            st.applying = false;
            self.cv.notify_all();
            let last = match result {
                Ok(last) => last,
                Err(e) => {
                    drop(st);
                    self.fail(e);
                    continue;
                }
            };
            st.applied = last.index;
            self.applied_tx.send_replace((st.applied, st.generation));
            drop(st);
            let retain = self.settings.retain_bytes;
            if let Err(e) = self.log.lock().release(last.index, retain) {
                tracing::warn!("replication log: {e}");
            }
        }
    }

    fn failed_locked(&self, st: &ReplState) -> bool {
        matches!(st.role, ReplRole::Failed(_))
    }

    fn apply(&self, entries: &[Entry]) -> Result<(), String> {
        let db = self.engine.get();
        let mut merged = WriteBatch::new();
        let mut expect = db.last_sequence() + 1;
        for e in entries {
            let (first, batch) = WriteBatch::from_bytes(&e.batch)
                .map_err(|err| format!("entry {}: {err}", e.index))?;
            if first != expect {
                return Err(format!(
                    "entry {} starts at engine sequence {first}, but the engine is at {}",
                    e.index,
                    expect - 1
                ));
            }
            expect += batch.len() as u64;
            merged.append(batch);
        }
        if !merged.is_empty() {
            db.write(merged).map_err(|e| {
                format!(
                    "applying entries {}..={}: {e}",
                    entries[0].index,
                    entries[entries.len() - 1].index
                )
            })?;
        }
        Ok(())
    }

    /// Puts in force the engine copy in `dir` (complete and durable), made by the leader
    /// at `point`: the applier pauses, the copy is opened and checked, `ENGINE` names
    /// it, the log restarts after `point`, the old engine is closed and its files
    /// removed. Blocks the thread.
    ///
    /// # Errors
    /// The copy does not open or is not at `point`, or a file operation failed; the old
    /// engine then stays in force unless the pointer was already written.
    pub fn install_copy(&self, dir: &Path, point: Point) -> Result<(), String> {
        let db = Db::open(dir, self.settings.engine_options.clone())
            .map_err(|e| format!("opening the engine copy in {}: {e}", dir.display()))?;
        if db.last_sequence() != point.seq {
            let found = db.last_sequence();
            let _ = db.close();
            return Err(format!(
                "the engine copy is at sequence {found}, the leader said {}",
                point.seq
            ));
        }
        {
            let mut st = self.st.lock();
            st.paused = true;
            while st.applying {
                self.cv.wait(&mut st);
            }
        }
        let result = (|| {
            crate::engine::write_pointer(&self.settings.data_dir, dir, point)
                .map_err(|e| e.to_string())?;
            self.log.lock().reset(point).map_err(|e| e.to_string())?;
            let old = self.engine.replace(db);
            let mut st = self.st.lock();
            st.applied = point.index;
            st.commit = point.index;
            drop(st);
            if let Err(e) = old.close() {
                tracing::warn!("closing the replaced engine: {e}");
            }
            crate::engine::remove_stale_engines(&self.settings.data_dir).map_err(|e| e.to_string())
        })();
        let mut st = self.st.lock();
        st.paused = false;
        self.cv.notify_all();
        drop(st);
        if result.is_ok() {
            tracing::info!(index = point.index, seq = point.seq, dir = %dir.display(), "engine rebuilt from the leader's checkpoint");
        }
        result
    }

    /// The engine in force.
    pub fn db(&self) -> Db {
        self.engine.get()
    }

    /// Stops the applier (after it finishes the batch at hand) and every role.
    pub fn shutdown(&self) {
        self.set_role(ReplRole::Idle);
        self.st.lock().shutdown = true;
        self.cv.notify_all();
        if let Some(h) = self.applier.lock().take() {
            let _ = h.join();
        }
    }
}
