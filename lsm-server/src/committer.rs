//! The write committer of a standalone server: one thread that executes the write
//! groups of all connections and commits what it has collected as one engine batch.
//! With `--sync`, one `fdatasync` then acknowledges every write that arrived while the
//! previous one ran (group commit without parking a thread per waiting client); without
//! it, one `write(2)` to the WAL serves many clients, and the memtable has one writer
//! that never waits for the engine's commit queue.
//!
//! A connection sends its group (the consecutive writes of its pipeline, see
//! [`crate::command::execute_write_group`]) and awaits the replies; the thread takes the
//! first waiting group, then every other one already queued (up to [`MAX_MERGED_BYTES`]
//! of requests), and runs them with [`execute_write_groups`] in arrival order. The result
//! equals running the groups one after the other: their keys' stripes are held across the
//! commit, and each command sees the writes of the commands before it. Each connection
//! has at most one group queued (it waits for the replies before reading on), so the
//! queue holds at most `maxclients` groups. EXEC still commits on its connection's
//! task; the key stripes order it against the committer's writes.
//!
//! Without `--sync`, a connection whose group finds no commit running (the `busy` flag)
//! runs it on its own task ([`Committer::try_execute_here`]): under light load no write
//! pays the hand-off, under heavy load groups still merge here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot};

use crate::command::{execute_write_group, execute_write_groups};
use crate::protocol::{Reply, Request};
use crate::state::ServerState;

/// Most request bytes (keys, values, arguments) merged into one engine batch; the first
/// group is always taken whole.
pub const MAX_MERGED_BYTES: usize = 64 << 20;

/// One connection's write group: `(command table index, request)` pairs.
pub type WriteGroup = Vec<(usize, Request)>;

struct Job {
    group: WriteGroup,
    reply: oneshot::Sender<(WriteGroup, Vec<Reply>)>,
}

/// The handle connections send their write groups through.
#[derive(Debug)]
pub struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
    /// Set while a commit runs, on the committer thread or on a connection's task.
    busy: Arc<AtomicBool>,
}

/// Holds [`Committer::busy`]; clears it on drop, also if the commit panicked.
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn try_busy(busy: &AtomicBool) -> Option<Busy<'_>> {
    busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Busy(busy))
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("commands", &self.group.len())
            .finish()
    }
}

fn request_bytes(group: &WriteGroup) -> usize {
    group
        .iter()
        .flat_map(|(_, r)| r.iter())
        .map(|arg| arg.len())
        .sum()
}

impl Committer {
    /// Starts the committer thread for the server whose state `state` will point to. The
    /// thread ends when the state (which owns the returned handle) is dropped.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(state: Weak<ServerState>) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let busy = Arc::new(AtomicBool::new(false));
        let thread_busy = busy.clone();
        std::thread::Builder::new()
            .name("lsm-committer".into())
            .spawn(move || run(&state, rx, &thread_busy))?;
        Ok(Committer { jobs: tx, busy })
    }

    /// Commits `group` and returns its replies: on the calling task when
    /// [`Committer::try_execute_here`] may and can, else on the committer thread (`group`
    /// travels there and back). If the committer is gone, every command gets an error.
    pub async fn commit(&self, state: &ServerState, group: &mut WriteGroup) -> Vec<Reply> {
        if !state.config.sync {
            if let Some(replies) = self.try_execute_here(state, group) {
                return replies;
            }
        }
        let n = group.len();
        match self.execute(std::mem::take(group)).await {
            Some((sent, replies)) => {
                *group = sent;
                replies
            }
            None => vec![Reply::err("ERR server is shutting down"); n],
        }
    }

    /// Executes `group` on the calling thread if no commit is running at the moment, and
    /// returns its replies; `None` if one is (then send it with [`Committer::execute`]).
    /// A lone writer thus pays no hand-off to the committer thread and back (about 1 µs
    /// of server CPU per `SET` under `redis-benchmark -P 1`, 7 % of it), while
    /// concurrent writers still merge on the committer. Only without `--sync`: an fsync
    /// would block the caller's async worker.
    pub fn try_execute_here(
        &self,
        state: &ServerState,
        group: &[(usize, Request)],
    ) -> Option<Vec<Reply>> {
        let _busy = try_busy(&self.busy)?;
        Some(execute_write_group(state, group))
    }

    /// Executes `group` on the committer thread and returns it with its replies. `None`
    /// if the committer is gone (the server is being dropped).
    pub async fn execute(&self, group: WriteGroup) -> Option<(WriteGroup, Vec<Reply>)> {
        let (reply, replied) = oneshot::channel();
        self.jobs.send(Job { group, reply }).ok()?;
        replied.await.ok()
    }
}

fn run(state: &Weak<ServerState>, mut rx: mpsc::UnboundedReceiver<Job>, busy: &AtomicBool) {
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = request_bytes(&first.group);
        jobs.push(first);
        while bytes < MAX_MERGED_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += request_bytes(&job.group);
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let Some(state) = state.upgrade() else {
            // The server is gone: dropping the jobs tells their connections.
            return;
        };
        let groups: Vec<&[(usize, Request)]> = jobs.iter().map(|j| j.group.as_slice()).collect();
        // A commit running on a connection's task holds `busy` for one group: wait it out
        // rather than queue behind it inside the engine.
        let held = loop {
            if let Some(held) = try_busy(busy) {
                break held;
            }
            std::thread::yield_now();
        };
        let replies = execute_write_groups(&state, &groups);
        drop(held);
        drop(groups);
        drop(state);
        for (job, replies) in jobs.drain(..).zip(replies) {
            // A connection that went away no longer waits for its replies.
            let _ = job.reply.send((job.group, replies));
        }
    }
}
