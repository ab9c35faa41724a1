//! State shared by every connection: the engine, the configuration, counters, and the
//! striped key locks that make conditional writes and transactions atomic.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lsm_core::Db;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::Config;
use crate::metrics::Metrics;

/// Number of lock stripes; keys hash onto them.
pub const KEY_LOCK_STRIPES: usize = 4096;

/// Per-key mutual exclusion for read-modify-write commands.
///
/// Every command that writes takes the stripes of its keys (in index order, so two
/// commands can never deadlock); plain reads take none: the engine makes each committed
/// batch visible atomically. A command that reads the keys it writes (SET with NX, XX or
/// GET, DEL, EXEC) takes them exclusively; a blind write (plain SET, MSET) takes them
/// shared, so blind writes never wait for one another (the engine orders them) but do
/// wait for, and hold off, a read-modify-write of the same keys. Standalone, the command
/// takes them itself and its guards are never held across an `.await`. In cluster mode
/// the connection takes them ([`KeyLocks::lock_async`], always exclusively) before
/// executing the command and holds them until its write is applied, which takes a
/// replication round trip; the command's own `lock` is then a no-op.
#[derive(Debug)]
pub struct KeyLocks {
    stripes: Vec<RwLock<()>>,
    /// Cluster mode: the stripes the connection holds across the replication wait.
    async_stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            stripes: (0..KEY_LOCK_STRIPES).map(|_| RwLock::new(())).collect(),
            async_stripes: Vec::new(),
        }
    }
}

/// Stripes held by a connection across an `.await` (cluster mode); released on drop.
pub type AsyncHeld = Vec<tokio::sync::OwnedMutexGuard<()>>;

/// How a command holds its stripes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// A blind write: excludes read-modify-writes of the same keys only.
    Shared,
    /// A read-modify-write: excludes every other write of the same keys.
    Exclusive,
}

/// The stripes one command holds; released on drop.
#[derive(Debug)]
pub enum Held<'a> {
    None,
    /// The common cases, without allocating.
    One(RwLockWriteGuard<'a, ()>),
    OneShared(RwLockReadGuard<'a, ()>),
    Many(Vec<RwLockWriteGuard<'a, ()>>),
    ManyShared(Vec<RwLockReadGuard<'a, ()>>),
}

impl KeyLocks {
    fn stripe(key: &[u8]) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key) % KEY_LOCK_STRIPES as u64) as usize
    }

    /// Key locks for cluster mode (see the type's documentation).
    pub fn for_cluster() -> KeyLocks {
        KeyLocks {
            stripes: Vec::new(),
            async_stripes: (0..KEY_LOCK_STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    /// Whether the connection takes the stripes ([`KeyLocks::lock_async`]).
    pub fn is_async(&self) -> bool {
        !self.async_stripes.is_empty()
    }

    /// The stripes of `keys`, sorted and without repeats.
    pub fn stripes_of<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<usize> {
        let mut idx: Vec<usize> = keys.into_iter().map(Self::stripe).collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }

    /// Cluster mode: waits for and takes `stripes` (from [`KeyLocks::stripes_of`]).
    pub async fn lock_async(&self, stripes: &[usize]) -> AsyncHeld {
        let mut held = Vec::with_capacity(stripes.len());
        for &i in stripes {
            held.push(self.async_stripes[i].clone().lock_owned().await);
        }
        held
    }

    /// Locks the stripes of all `keys` in `mode` (a no-op in cluster mode, where the
    /// connection holds them already).
    pub fn lock<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>, mode: LockMode) -> Held<'_> {
        if self.is_async() {
            return Held::None;
        }
        let mut keys = keys.into_iter();
        let Some(first) = keys.next() else {
            return Held::None;
        };
        let first = Self::stripe(first);
        let mut idx: Vec<usize> = keys.map(Self::stripe).collect();
        if idx.iter().all(|&i| i == first) {
            let stripe = &self.stripes[first];
            return match mode {
                LockMode::Shared => Held::OneShared(stripe.read()),
                LockMode::Exclusive => Held::One(stripe.write()),
            };
        }
        idx.push(first);
        idx.sort_unstable();
        idx.dedup();
        let stripes = idx.into_iter().map(|i| &self.stripes[i]);
        match mode {
            LockMode::Shared => Held::ManyShared(stripes.map(|s| s.read()).collect()),
            LockMode::Exclusive => Held::Many(stripes.map(|s| s.write()).collect()),
        }
    }
}

/// Counters reported by INFO and /metrics.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub next_client_id: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub total_commands: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Commands this node forwarded to the leader.
    pub forwarded_commands: AtomicU64,
}

pub fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Everything a connection needs.
#[derive(Debug)]
pub struct ServerState {
    /// The engine in force (replaced when a follower is rebuilt from a checkpoint).
    pub engine: Arc<crate::engine::EngineSlot>,
    pub config: Config,
    pub locks: KeyLocks,
    pub counters: ServerCounters,
    pub metrics: Metrics,
    pub started: Instant,
    /// The TCP port actually bound (differs from the config when it asked for 0).
    pub port: u16,
    /// Cluster membership; None when standalone.
    pub cluster: Option<Arc<lsm_cluster::Cluster>>,
    /// The replicated log; None when standalone.
    pub replication: Option<Arc<crate::replication::Replication>>,
    /// Standalone: the queue through which connections commit their write groups
    /// together (see [`crate::committer`]); None in cluster mode, where writes commit on
    /// the connection's own task through the replicated log.
    pub committer: Option<crate::committer::Committer>,
}

impl ServerState {
    /// The engine in force.
    pub fn db(&self) -> Db {
        self.engine.get()
    }

    pub fn new(db: Db, config: Config, port: u16) -> Self {
        ServerState {
            engine: Arc::new(crate::engine::EngineSlot::new(db)),
            config,
            locks: KeyLocks::default(),
            counters: ServerCounters::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            port,
            cluster: None,
            replication: None,
            committer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Blind writes share a stripe; a read-modify-write waits for them and holds them
    /// off until it is done.
    #[test]
    fn shared_and_exclusive_stripes() {
        let locks = Arc::new(KeyLocks::default());
        let a = || [&b"a"[..]];
        let first = locks.lock(a(), LockMode::Shared);
        // A second blind write of the same key does not wait.
        drop(locks.lock(a(), LockMode::Shared));
        let (granted, rx) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let rmw = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let held = locks.lock([&b"b"[..], b"a"], LockMode::Exclusive);
                granted.send(()).unwrap();
                released.recv().unwrap();
                drop(held);
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "an exclusive lock was granted while a shared one was held"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // While the read-modify-write holds the stripes, a blind write waits for it.
        let (tx, blind_granted) = mpsc::channel();
        let blind = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                drop(locks.lock(a(), LockMode::Shared));
                tx.send(()).unwrap();
            })
        };
        assert!(
            blind_granted
                .recv_timeout(Duration::from_millis(200))
                .is_err(),
            "a shared lock was granted while an exclusive one was held"
        );
        release.send(()).unwrap();
        rmw.join().unwrap();
        blind_granted.recv_timeout(Duration::from_secs(10)).unwrap();
        blind.join().unwrap();
    }
}
