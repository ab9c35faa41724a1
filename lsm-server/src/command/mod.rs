//! Commands: the table ([`COMMANDS`]: arity, flags and key positions, as `COMMAND`
//! reports them), dispatch with Redis's arity, unknown-command and authentication errors,
//! and MULTI/EXEC. Each command's parsing and execution live side by side in [`data`]
//! (keys and values) and [`admin`] (connection and server commands).
//!
//! Atomicity: every command that writes runs inside a [`Txn`] holding the key-lock
//! stripes of all its keys, and commits one engine write batch. EXEC runs all queued
//! commands in one `Txn`, so a transaction is one atomic batch, isolated from other
//! clients' writes to the same keys.

pub mod admin;
pub mod data;

use std::collections::HashMap;

use bytes::Bytes;
use lsm_core::{Db, WriteBatch};

use crate::protocol::{Protocol, Reply, Request};
use crate::state::{LockMode, ServerState};

/// A row of the command table.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// Key positions: first, last (negative counts from the end), step; 0 = no keys.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    first_key: i32,
    last_key: i32,
    step: i32,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step,
    }
}

const READ: &[&str] = &["readonly", "fast"];
const WRITE: &[&str] = &["write", "denyoom"];
const CONN: &[&str] = &["fast", "loading", "stale"];
const NOAUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

/// Every command the server knows.
pub static COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READ, 1, 1, 1),
    spec("set", -3, WRITE, 1, 1, 1),
    spec("del", -2, &["write"], 1, -1, 1),
    spec("exists", -2, READ, 1, -1, 1),
    spec("mget", -2, READ, 1, -1, 1),
    spec("mset", -3, WRITE, 1, -1, 2),
    spec("dbsize", 1, &["readonly"], 0, 0, 0),
    spec("ping", -1, CONN, 0, 0, 0),
    spec("echo", 2, CONN, 0, 0, 0),
    spec("info", -1, &["loading", "stale"], 0, 0, 0),
    spec("command", -1, &["loading", "stale"], 0, 0, 0),
    spec("config", -2, &["admin", "loading", "stale"], 0, 0, 0),
    spec("client", -2, &["loading", "stale"], 0, 0, 0),
    spec("hello", -1, NOAUTH, 0, 0, 0),
    spec("auth", -2, NOAUTH, 0, 0, 0),
    spec("select", 2, CONN, 0, 0, 0),
    spec("quit", -1, NOAUTH, 0, 0, 0),
    spec(
        "multi",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
    ),
    spec("exec", 1, &["noscript", "loading", "stale"], 0, 0, 0),
    spec(
        "discard",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
    ),
    spec("lsm.range", -3, &["readonly"], 0, 0, 0),
    spec("lsm.flush", 1, &["admin"], 0, 0, 0),
    spec("lsm.compact", 1, &["admin"], 0, 0, 0),
    spec("lsm.forwarded", 2, &["fast", "loading", "stale"], 0, 0, 0),
    spec("lsm.replicate", 7, &["admin", "noscript"], 0, 0, 0),
    spec("lsm.logfetch", 5, &["admin", "noscript"], 0, 0, 0),
    spec("lsm.checkpoint", 2, &["admin", "noscript"], 0, 0, 0),
    spec("lsm.checkpointread", 4, &["admin", "noscript"], 0, 0, 0),
];

/// Index of a command in [`COMMANDS`], case-insensitively.
pub fn lookup(name: &[u8]) -> Option<usize> {
    COMMANDS
        .iter()
        .position(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}

impl CommandSpec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The key arguments of a request for this command.
    pub fn keys<'a>(&self, req: &'a Request) -> impl Iterator<Item = &'a [u8]> + 'a {
        let last = if self.first_key == 0 {
            // No keys: an empty range.
            self.first_key - 1
        } else if self.last_key < 0 {
            req.len() as i32 + self.last_key
        } else {
            self.last_key
        };
        (self.first_key..=last)
            .step_by(self.step.max(1) as usize)
            .filter_map(move |i| req.get(i as usize).map(|b| &b[..]))
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }
}

/// Per-connection state.
#[derive(Debug, Default)]
pub struct Session {
    pub id: u64,
    pub protocol: Protocol,
    pub authenticated: bool,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Commands queued since MULTI.
    pub multi: Option<Vec<Request>>,
    /// A queued command was rejected: EXEC must abort.
    pub multi_failed: bool,
    /// Close the connection after this reply.
    pub quit: bool,
    /// Set by `LSM.FORWARDED <epoch>` on a follower's link to the leader: requests on
    /// this connection run only while this node leads in that epoch.
    pub forwarded_epoch: Option<u64>,
}

pub fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub fn syntax_error() -> Reply {
    Reply::err("ERR syntax error")
}

fn unknown_command(req: &Request) -> Reply {
    let name = String::from_utf8_lossy(&req[0]);
    let mut args = String::new();
    for a in req.iter().skip(1) {
        let a = String::from_utf8_lossy(a);
        let a: String = a.chars().take(128).collect();
        args.push_str(&format!("'{a}' "));
    }
    let name: String = name.chars().take(128).collect();
    Reply::err(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

/// Reads and writes of one command or transaction. All reads come from one engine
/// snapshot taken when the `Txn` is created (after the caller locked the keys it
/// writes), so a multi-key read such as MGET never sees half of another client's
/// transaction; reads also see the transaction's own earlier writes. Writes collect into
/// one batch, committed atomically.
#[derive(Debug)]
pub struct Txn<'a> {
    db: Db,
    /// In cluster mode, the batch is replicated instead of written directly.
    repl: Option<&'a crate::replication::Replication>,
    snapshot: lsm_core::Snapshot,
    overlay: Overlay,
    batch: WriteBatch,
}

/// A transaction's own writes, newest last. Most transactions write a handful of keys,
/// so a vector searched from the end beats hashing; large ones get a map.
#[derive(Debug, Default)]
enum Overlay {
    #[default]
    Empty,
    Few(Vec<(Bytes, Option<Bytes>)>),
    Many(HashMap<Bytes, Option<Bytes>>),
}

/// Writes beyond which the overlay becomes a map.
const OVERLAY_VEC_MAX: usize = 16;

impl Overlay {
    fn get(&self, key: &[u8]) -> Option<&Option<Bytes>> {
        match self {
            Overlay::Empty => None,
            Overlay::Few(v) => v.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            Overlay::Many(m) => m.get(key),
        }
    }

    fn insert(&mut self, key: Bytes, value: Option<Bytes>) {
        match self {
            Overlay::Empty => *self = Overlay::Few(vec![(key, value)]),
            Overlay::Few(v) if v.len() < OVERLAY_VEC_MAX => v.push((key, value)),
            Overlay::Few(v) => {
                let mut m: HashMap<Bytes, Option<Bytes>> = v.drain(..).collect();
                m.insert(key, value);
                *self = Overlay::Many(m);
            }
            Overlay::Many(m) => {
                m.insert(key, value);
            }
        }
    }
}

impl<'a> Txn<'a> {
    pub fn new(db: &Db) -> Self {
        Txn {
            db: db.clone(),
            repl: None,
            snapshot: db.snapshot(),
            overlay: Overlay::Empty,
            batch: WriteBatch::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Reply> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        self.snapshot.get(key).map_err(|e| engine_error(&e))
    }

    pub fn put(&mut self, key: Bytes, value: Bytes) {
        self.batch.put(&key, &value);
        self.overlay.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Bytes) {
        self.batch.delete(&key);
        self.overlay.insert(key, None);
    }

    /// A transaction over the server's engine; in cluster mode its commit goes through
    /// replication.
    pub fn for_state(state: &'a ServerState) -> Self {
        Txn {
            repl: state.replication.as_deref(),
            ..Txn::new(&state.db())
        }
    }

    /// Commits the writes as one batch. In cluster mode the batch is appended to the
    /// replicated log; it is applied once committed.
    pub fn commit(self) -> Result<(), Reply> {
        if self.batch.is_empty() {
            return Ok(());
        }
        match self.repl {
            Some(repl) => {
                // The connection waits for the entry to be applied before answering
                // (`replication::take_ticket`), holding the keys' stripes.
                self.batch.validate().map_err(|e| engine_error(&e))?;
                repl.append(&self.batch)
                    .map(|_| ())
                    .map_err(|e| Reply::err(e.to_string()))
            }
            None => self.db.write(self.batch).map_err(|e| engine_error(&e)),
        }
    }
}

pub fn engine_error(e: &lsm_core::Error) -> Reply {
    Reply::err(format!("ERR {e}"))
}

/// Executes one request; the reply is sent back in order. `index` is its table entry.
pub fn execute(
    state: &ServerState,
    session: &mut Session,
    req: &Request,
) -> (Option<usize>, Reply) {
    let index = lookup(&req[0]);
    let reply = match index {
        None => {
            // As Redis: an unknown command is reported as such even before AUTH.
            if session.multi.is_some() {
                session.multi_failed = true;
            }
            unknown_command(req)
        }
        Some(i) => dispatch(state, session, &COMMANDS[i], req),
    };
    (index, reply)
}

/// Most commands coalesced into one write group.
pub const MAX_WRITE_GROUP: usize = 1024;

/// The table index of `req` if it may join a write group: a known write command with a
/// valid arity, on an authenticated session outside MULTI.
pub fn groupable_write(state: &ServerState, session: &Session, req: &Request) -> Option<usize> {
    let i = lookup(&req[0])?;
    let spec = &COMMANDS[i];
    (spec.is_write()
        && spec.arity_ok(req.len())
        && session.multi.is_none()
        && !needs_auth(state, session))
    .then_some(i)
}

/// Executes consecutive write commands of one connection's pipeline in one [`Txn`]: the
/// stripes of all their keys are locked (shared if every command writes blindly, see
/// [`crate::state::KeyLocks`]), each command runs in order (seeing the earlier ones'
/// writes), and one batch is committed. Every read these commands make is of a key
/// they hold locked, so the outcome equals running them one after the other, with one
/// WAL write instead of one per command. If the commit fails, every command that would
/// have written gets the error.
pub fn execute_write_group(state: &ServerState, group: &[(usize, Request)]) -> Vec<Reply> {
    execute_write_groups(state, &[group])
        .pop()
        .unwrap_or_default()
}

/// Executes the write groups of several connections as [`execute_write_group`] executes
/// one, all in one [`Txn`] committed as one batch: the outcome equals running the groups
/// one after the other in the order given. Returns each group's replies.
pub fn execute_write_groups(
    state: &ServerState,
    groups: &[&[(usize, Request)]],
) -> Vec<Vec<Reply>> {
    let commands = || groups.iter().flat_map(|g| g.iter());
    let mode = if commands().any(|(i, r)| data::reads_before_writing(COMMANDS[*i].name, r)) {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    };
    let _guards = state
        .locks
        .lock(commands().flat_map(|(i, r)| COMMANDS[*i].keys(r)), mode);
    let mut txn = Txn::for_state(state);
    let mut replies: Vec<Vec<Reply>> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|(i, r)| data::run(state, COMMANDS[*i].name, r, &mut txn))
                .collect()
        })
        .collect();
    if let Err(e) = txn.commit() {
        for r in replies.iter_mut().flatten() {
            if !r.is_error() {
                *r = e.clone();
            }
        }
    }
    replies
}

/// Whether `req` must run on the leader in cluster mode: it reads or writes data, or is
/// the EXEC of a transaction. Connection commands, commands queued inside MULTI, and
/// requests that fail anyway (unknown, wrong arity, not authenticated) run locally.
pub fn needs_leader(state: &ServerState, session: &Session, req: &Request) -> bool {
    let Some(i) = lookup(&req[0]) else {
        return false;
    };
    let c = &COMMANDS[i];
    if !c.arity_ok(req.len()) || needs_auth(state, session) {
        return false;
    }
    if session.multi.is_some() {
        return c.name == "exec" && !session.multi_failed;
    }
    c.first_key != 0 || matches!(c.name, "dbsize" | "lsm.range" | "lsm.flush" | "lsm.compact")
}

/// What a follower sends to the leader for `req`: the request itself or, for EXEC, the
/// whole transaction (MULTI, the queued commands, EXEC), which leaves the session. The
/// reply of the last request is the reply to `req`.
pub fn forward_unit(session: &mut Session, req: Request) -> Vec<Request> {
    let is_exec = req[0].eq_ignore_ascii_case(b"exec");
    match session.multi.take() {
        Some(queued) if is_exec => {
            session.multi_failed = false;
            let mut unit = Vec::with_capacity(queued.len() + 2);
            unit.push(vec![Bytes::from_static(b"MULTI")]);
            unit.extend(queued);
            unit.push(req);
            unit
        }
        other => {
            session.multi = other;
            vec![req]
        }
    }
}

fn needs_auth(state: &ServerState, session: &Session) -> bool {
    state.config.requirepass.is_some() && !session.authenticated
}

fn dispatch(
    state: &ServerState,
    session: &mut Session,
    spec: &CommandSpec,
    req: &Request,
) -> Reply {
    if !spec.arity_ok(req.len()) {
        if session.multi.is_some() {
            session.multi_failed = true;
        }
        return wrong_arity(spec.name);
    }
    if needs_auth(state, session) && !spec.flags.contains(&"no_auth") {
        return Reply::err("NOAUTH Authentication required.");
    }
    if session.multi.is_some() {
        match spec.name {
            "multi" => return Reply::err("ERR MULTI calls can not be nested"),
            "exec" => return exec(state, session),
            "discard" => {
                session.multi = None;
                session.multi_failed = false;
                return Reply::ok();
            }
            "quit" => {}
            _ => {
                if let Some(q) = session.multi.as_mut() {
                    // Arguments are slices of the connection's input buffer; a queued
                    // command is kept until EXEC, so it gets its own copy instead of
                    // pinning a whole read buffer per queued command.
                    q.push(req.iter().map(|a| Bytes::copy_from_slice(a)).collect());
                }
                return Reply::Status("QUEUED");
            }
        }
    }
    match spec.name {
        "get" => {
            // The most common command, read at the newest sequence without a snapshot
            // (one key needs no consistent view) or a clone of the engine handle.
            let found = state.engine.with(|db| db.get(&req[1]));
            match found {
                Ok(v) => {
                    data::count_lookup(state, v.is_some());
                    v.map_or(Reply::Nil, Reply::Bulk)
                }
                Err(e) => engine_error(&e),
            }
        }
        "multi" => {
            session.multi = Some(Vec::new());
            session.multi_failed = false;
            Reply::ok()
        }
        "exec" => Reply::err("ERR EXEC without MULTI"),
        "discard" => Reply::err("ERR DISCARD without MULTI"),
        _ if spec.first_key != 0 || spec.name == "dbsize" => {
            let keys = spec.keys(req);
            // Reads take no lock: each committed batch becomes visible atomically.
            let _guards = if spec.is_write() {
                Some(state.locks.lock(keys, LockMode::Exclusive))
            } else {
                None
            };
            let mut txn = Txn::for_state(state);
            let reply = data::run(state, spec.name, req, &mut txn);
            match txn.commit() {
                Ok(()) => reply,
                Err(e) => e,
            }
        }
        _ => admin::run(state, session, spec, req),
    }
}

/// Runs the queued transaction as one atomic batch.
fn exec(state: &ServerState, session: &mut Session) -> Reply {
    let queued = session.multi.take().unwrap_or_default();
    if std::mem::take(&mut session.multi_failed) {
        return Reply::err("EXECABORT Transaction discarded because of previous errors.");
    }
    let specs: Vec<&CommandSpec> = queued
        .iter()
        .filter_map(|r| lookup(&r[0]).map(|i| &COMMANDS[i]))
        .collect();
    let keys: Vec<&[u8]> = queued
        .iter()
        .zip(&specs)
        .flat_map(|(r, s)| s.keys(r))
        .collect();
    let _guards = state.locks.lock(keys, LockMode::Exclusive);
    let mut txn = Txn::for_state(state);
    let mut replies = Vec::with_capacity(queued.len());
    for (req, spec) in queued.iter().zip(&specs) {
        let reply = if spec.first_key != 0 || spec.name == "dbsize" {
            data::run(state, spec.name, req, &mut txn)
        } else {
            admin::run(state, session, spec, req)
        };
        replies.push(reply);
    }
    match txn.commit() {
        Ok(()) => Reply::Array(replies),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str]) -> Request {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn key_positions() {
        let mset = &COMMANDS[lookup(b"MSET").unwrap()];
        assert_eq!(
            mset.keys(&req(&["mset", "a", "1", "b", "2"]))
                .collect::<Vec<_>>(),
            [&b"a"[..], b"b"]
        );
        let del = &COMMANDS[lookup(b"del").unwrap()];
        assert_eq!(del.keys(&req(&["del", "a", "b", "c"])).count(), 3);
        let ping = &COMMANDS[lookup(b"ping").unwrap()];
        assert_eq!(ping.keys(&req(&["ping"])).count(), 0);
    }

    #[test]
    fn arity_and_unknown_command_texts() {
        let get = &COMMANDS[lookup(b"get").unwrap()];
        assert!(get.arity_ok(2) && !get.arity_ok(3));
        let set = &COMMANDS[lookup(b"set").unwrap()];
        assert!(set.arity_ok(5) && !set.arity_ok(2));
        assert_eq!(
            unknown_command(&req(&["foo", "a", "b"])),
            Reply::err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
    }

    fn group(requests: &[&[&str]]) -> Vec<(usize, Request)> {
        requests
            .iter()
            .map(|r| (lookup(r[0].as_bytes()).unwrap(), req(r)))
            .collect()
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Groups of several connections merged into one batch answer as if run one after
    /// the other, and commit as one engine write.
    #[test]
    fn merged_write_groups_run_in_order_and_commit_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), lsm_core::Options::default()).unwrap();
        let state = ServerState::new(db.clone(), crate::Config::default(), 0);
        let a = group(&[&["set", "x", "1"], &["mset", "y", "2", "z", "3"]]);
        let b = group(&[
            &["set", "x", "2", "GET"],
            &["set", "y", "9", "NX"],
            &["set", "w", "4", "XX"],
        ]);
        let c = group(&[
            &["del", "x", "z", "nosuch"],
            &["set", "x", "5", "NX", "GET"],
        ]);
        let before = db.stats().commit_groups;
        let replies = execute_write_groups(&state, &[&a, &b, &c]);
        assert_eq!(db.stats().commit_groups - before, 1);
        assert_eq!(
            replies,
            vec![
                vec![Reply::ok(), Reply::ok()],
                vec![bulk("1"), Reply::Nil, Reply::Nil],
                vec![Reply::Int(2), Reply::Nil],
            ]
        );
        let get = |k: &str| db.get(k).unwrap().map(|v| v.to_vec());
        assert_eq!(get("x"), Some(b"5".to_vec()));
        assert_eq!(get("y"), Some(b"2".to_vec()));
        assert_eq!((get("z"), get("w")), (None, None));
        // A failed commit fails every command that would have written.
        db.close().unwrap();
        let replies = execute_write_groups(&state, &[&a, &group(&[&["set", "q", "1"]])]);
        assert_eq!(replies.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        assert!(replies.iter().flatten().all(Reply::is_error), "{replies:?}");
    }

    #[test]
    fn blind_writes_are_told_from_read_modify_writes() {
        let blind = |r: &[&str]| !data::reads_before_writing(r[0], &req(r));
        assert!(blind(&["set", "k", "v"]));
        assert!(blind(&["mset", "k", "v", "l", "w"]));
        for rmw in [
            &["set", "k", "v", "nx"][..],
            &["set", "k", "v", "XX"],
            &["set", "k", "v", "Get"],
            &["del", "k"],
        ] {
            assert!(!blind(rmw), "{rmw:?}");
        }
    }
}
