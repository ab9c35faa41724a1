//! Group commit of a standalone server's writes, led by the connections themselves.
//!
//! A connection with a write group (the consecutive writes of its pipeline, see
//! [`crate::command::execute_write_group`]) commits it at once on its own task if no
//! commit is running: it becomes the *leader*. A group that arrives while one runs is
//! queued, and its connection awaits the outcome without holding its worker thread.
//! The leader takes every queued group (up to [`MAX_MERGED_BYTES`] of requests) with its
//! own and runs them with [`execute_write_groups`] as one engine batch: one WAL write
//! and, with `--sync`, one `fdatasync` acknowledge all of them. Then it answers the
//! groups it took and hands the leadership to the first group queued meanwhile, whose
//! connection leads the next commit; with none queued, the next group to arrive leads.
//!
//! So the memtable has one writer, which never waits in the engine's commit queue; an
//! uncontended write pays no hand-off to another thread; and under load, groups merge
//! as they did on the dedicated committer thread this replaces (whose wake-ups and
//! hand-offs back cost ~3 µs of server CPU per `--sync` SET under `redis-benchmark
//! -P 1`, about 15 %, see docs/benchmarks.md). With `--sync` the leader's worker thread
//! waits in `fdatasync`, as Redis's event loop does with `appendfsync always`; the
//! runtime's other workers take over the connections scheduled on it meanwhile.
//!
//! The result equals running the groups one after the other: their keys' stripes are
//! held across the commit, and each command sees the writes of the commands before it.
//! Each connection has at most one group queued (it waits for the replies before
//! reading on), so the queue holds at most `maxclients` groups. EXEC still commits on
//! its connection's task; the key stripes order it against the groups.
//!
//! Leadership is a value ([`Leadership`]) that passes itself on when dropped: also if
//! the leader panics, or if the connection it was handed to went away before taking it.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::command::execute_write_groups;
use crate::protocol::{Reply, Request};
use crate::state::ServerState;

/// Most request bytes (keys, values, arguments) merged into one engine batch; the
/// leader's own group is always taken whole.
pub const MAX_MERGED_BYTES: usize = 64 << 20;

/// One connection's write group: `(command table index, request)` pairs.
pub type WriteGroup = Vec<(usize, Request)>;

/// The commit queue connections send their write groups through.
#[derive(Debug, Default)]
pub struct Committer {
    queue: Arc<Mutex<Queue>>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Whether a leader exists: committing, or handed the leadership and not yet
    /// running.
    leading: bool,
    /// Groups waiting for the next commit, in arrival order.
    waiting: VecDeque<Job>,
}

/// A queued group. Dropped unanswered (its leader panicked), it answers every command
/// with an error, so that its connection gets its group back either way.
struct Job {
    group: WriteGroup,
    /// None once answered.
    outcome: Option<oneshot::Sender<Outcome>>,
}

impl Job {
    /// Sends `outcome` unless the connection went away; gives it back if it did.
    fn answer(mut self, outcome: impl FnOnce(WriteGroup) -> Outcome) -> Result<(), Outcome> {
        let Some(tx) = self.outcome.take() else {
            return Ok(());
        };
        tx.send(outcome(std::mem::take(&mut self.group)))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(tx) = self.outcome.take() {
            let n = self.group.len();
            let _ = tx.send(Outcome::Done(
                std::mem::take(&mut self.group),
                vec![Reply::err("ERR write not committed: its commit failed"); n],
            ));
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("commands", &self.group.len())
            .finish()
    }
}

/// What a queued connection is told: its group was committed (here it is back, with
/// its replies), or it leads the next commit.
enum Outcome {
    Done(WriteGroup, Vec<Reply>),
    Lead(WriteGroup, Leadership),
}

/// The right to run the next commit. Dropping it hands it to the first queued group
/// whose connection still waits, or clears [`Queue::leading`] if none does.
#[derive(Debug)]
struct Leadership {
    /// None once passed on.
    queue: Option<Arc<Mutex<Queue>>>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        let Some(queue) = self.queue.take() else {
            return;
        };
        let mut q = queue.lock();
        while let Some(job) = q.waiting.pop_front() {
            let next = Leadership {
                queue: Some(queue.clone()),
            };
            match job.answer(|group| Outcome::Lead(group, next)) {
                Ok(()) => return,
                // That connection is gone (its group is dropped unexecuted, never
                // acknowledged); disarm the returned leadership (the lock is held) and
                // try the next.
                Err(Outcome::Lead(_, mut next)) => next.queue = None,
                Err(Outcome::Done(..)) => {}
            }
        }
        q.leading = false;
    }
}

fn request_bytes(group: &WriteGroup) -> usize {
    group
        .iter()
        .flat_map(|(_, r)| r.iter())
        .map(|arg| arg.len())
        .sum()
}

/// Where a group stands after [`Committer::enter`].
enum Entry {
    /// No commit was running: the caller leads.
    Lead(Leadership),
    /// The group is queued: await its outcome.
    Queued(oneshot::Receiver<Outcome>),
}

impl Committer {
    pub fn new() -> Committer {
        Committer::default()
    }

    /// Commits `group` and returns its replies, one per command, on the calling task if
    /// it leads, else as part of a leader's commit; `group` is handed back unchanged. If
    /// the commit that took the group failed (its leader panicked), every command's
    /// reply is an error. `None` only if the group was lost without an answer, which
    /// [`Job`]'s drop rules out; the caller then closes the connection.
    pub async fn commit(&self, state: &ServerState, group: &mut WriteGroup) -> Option<Vec<Reply>> {
        let leadership = match self.enter(group) {
            Entry::Lead(l) => l,
            Entry::Queued(outcome) => match outcome.await.ok()? {
                Outcome::Done(sent, replies) => {
                    *group = sent;
                    return Some(replies);
                }
                Outcome::Lead(sent, l) => {
                    *group = sent;
                    l
                }
            },
        };
        Some(self.lead(state, group, leadership))
    }

    /// Leads at once if no commit runs, else queues `group` (taking it).
    fn enter(&self, group: &mut WriteGroup) -> Entry {
        let mut q = self.queue.lock();
        if q.leading {
            let (tx, rx) = oneshot::channel();
            q.waiting.push_back(Job {
                group: std::mem::take(group),
                outcome: Some(tx),
            });
            Entry::Queued(rx)
        } else {
            q.leading = true;
            Entry::Lead(Leadership {
                queue: Some(self.queue.clone()),
            })
        }
    }

    /// Runs `own` with the groups queued so far as one batch, answers those, then gives
    /// up `leadership` (handing it on) and returns `own`'s replies.
    fn lead(&self, state: &ServerState, own: &WriteGroup, leadership: Leadership) -> Vec<Reply> {
        let mut jobs = Vec::new();
        {
            let mut q = self.queue.lock();
            let mut bytes = request_bytes(own);
            while bytes < MAX_MERGED_BYTES {
                let Some(job) = q.waiting.pop_front() else {
                    break;
                };
                bytes += request_bytes(&job.group);
                jobs.push(job);
            }
        }
        let mut groups: Vec<&[(usize, Request)]> =
            jobs.iter().map(|j| j.group.as_slice()).collect();
        groups.push(own);
        let mut replies = execute_write_groups(state, &groups);
        drop(groups);
        let own_replies = replies.pop().unwrap_or_default();
        for (job, replies) in jobs.into_iter().zip(replies) {
            // A connection that went away no longer waits for its replies.
            let _ = job.answer(|group| Outcome::Done(group, replies));
        }
        drop(leadership);
        own_replies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lookup;
    use bytes::Bytes;
    use lsm_core::Db;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn set(key: &str, value: &str) -> WriteGroup {
        let req = ["set", key, value]
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        vec![(lookup(b"set").unwrap(), req)]
    }

    fn open(dir: &std::path::Path) -> (Db, ServerState) {
        let db = Db::open(dir, lsm_core::Options::default()).unwrap();
        let state = ServerState::new(db.clone(), crate::Config::default(), 0);
        (db, state)
    }

    fn leads(entry: Entry) -> Leadership {
        match entry {
            Entry::Lead(l) => l,
            Entry::Queued(_) => panic!("queued while no commit ran"),
        }
    }

    fn queued(entry: Entry) -> oneshot::Receiver<Outcome> {
        match entry {
            Entry::Queued(rx) => rx,
            Entry::Lead(_) => panic!("led while a commit ran"),
        }
    }

    /// Groups queued while a commit runs go into the leader's commit: one engine batch,
    /// each queued connection answered with its own replies and its group back.
    #[test]
    fn queued_groups_join_the_leaders_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, state) = open(dir.path());
        let committer = Committer::new();
        let own = set("own", "0");
        let leadership = leads(committer.enter(&mut own.clone()));
        let (committer, state) = (&committer, &state);
        let mut waiters: Vec<_> = (0..3)
            .map(|i| {
                let mut g = set(&format!("k{i}"), &i.to_string());
                Box::pin(async move {
                    let replies = committer.commit(state, &mut g).await;
                    (g, replies)
                })
            })
            .collect();
        let mut cx = Context::from_waker(Waker::noop());
        for w in &mut waiters {
            assert!(w.as_mut().poll(&mut cx).is_pending(), "a queued group ran");
        }
        assert_eq!(committer.queue.lock().waiting.len(), 3);
        let before = db.stats().commit_groups;
        assert_eq!(committer.lead(state, &own, leadership), vec![Reply::ok()]);
        for (i, w) in waiters.iter_mut().enumerate() {
            let Poll::Ready((g, replies)) = w.as_mut().poll(&mut cx) else {
                panic!("group {i} not answered");
            };
            assert_eq!(replies, Some(vec![Reply::ok()]));
            assert_eq!(
                g,
                set(&format!("k{i}"), &i.to_string()),
                "group {i} handed back"
            );
        }
        assert_eq!(
            db.stats().commit_groups - before,
            1,
            "one batch for all four"
        );
        let q = committer.queue.lock();
        assert!(!q.leading && q.waiting.is_empty());
        drop(q);
        for i in 0..3 {
            assert_eq!(
                db.get(format!("k{i}")).unwrap().unwrap().to_vec(),
                i.to_string().as_bytes()
            );
        }
    }

    /// Leadership passes over a connection that went away before it was handed the
    /// leadership, and over one that went away after (without taking it); with nobody
    /// left, the next group leads at once.
    #[test]
    fn leadership_passes_over_connections_that_went_away() {
        let committer = Committer::new();
        let leadership = leads(committer.enter(&mut set("a", "1")));
        let gone_before = queued(committer.enter(&mut set("b", "1")));
        let mut taker = queued(committer.enter(&mut set("c", "1")));
        let gone_after = queued(committer.enter(&mut set("d", "1")));
        let last = queued(committer.enter(&mut set("e", "1")));
        drop(gone_before);
        drop(leadership);
        let Ok(Outcome::Lead(group, next)) = taker.try_recv() else {
            panic!("the first waiting connection was not handed the leadership");
        };
        assert_eq!(group, set("c", "1"));
        drop(next);
        assert!(committer.queue.lock().leading);
        // Handed to `gone_after`'s channel, then lost with it: passed on to `last`.
        drop(gone_after);
        let mut last = last;
        assert!(matches!(last.try_recv(), Ok(Outcome::Lead(..))));
        let q = committer.queue.lock();
        assert!(!q.leading && q.waiting.is_empty(), "{q:?}");
        drop(q);
        let again = leads(committer.enter(&mut set("f", "1")));
        drop(again);
        assert!(!committer.queue.lock().leading);
    }

    /// A group dropped unanswered (its leader panicked) answers every command with an
    /// error and hands the group back.
    #[test]
    fn a_group_dropped_unanswered_gets_errors() {
        let (tx, mut rx) = oneshot::channel();
        let mut group = set("a", "1");
        group.extend(set("b", "2"));
        drop(Job {
            group: group.clone(),
            outcome: Some(tx),
        });
        let Ok(Outcome::Done(back, replies)) = rx.try_recv() else {
            panic!("no answer");
        };
        assert_eq!(back, group);
        assert_eq!(replies.len(), 2);
        assert!(replies.iter().all(Reply::is_error), "{replies:?}");
    }
}
