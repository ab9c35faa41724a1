//! Key and value commands: GET SET DEL EXISTS MGET MSET DBSIZE and the range scan
//! LSM.RANGE. Each parses its arguments and executes against a [`Txn`].

use std::ops::Bound;

use lsm_core::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

use super::{syntax_error, wrong_arity, Txn};
use crate::protocol::{Reply, Request};
use crate::state::{bump, ServerState};

/// Most entries one LSM.RANGE returns.
pub const MAX_RANGE_LIMIT: usize = 100_000;
/// Entries LSM.RANGE returns without LIMIT.
pub const DEFAULT_RANGE_LIMIT: usize = 1_000;

fn check_key(key: &[u8]) -> Result<(), Reply> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Reply::err(format!(
            "ERR key of {} bytes exceeds the limit of {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), Reply> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Reply::err(format!(
            "ERR value of {} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Runs a keyed command (the caller holds the key locks for writes).
pub fn run(state: &ServerState, name: &str, req: &Request, txn: &mut Txn<'_>) -> Reply {
    let result = match name {
        "get" => get(state, req, txn),
        "set" => set(req, txn),
        "del" => del(req, txn),
        "exists" => exists(req, txn),
        "mget" => mget(state, req, txn),
        "mset" => mset(req, txn),
        "dbsize" => dbsize(state),
        _ => Err(Reply::err(format!("ERR '{name}' is not a data command"))),
    };
    result.unwrap_or_else(|e| e)
}

pub(crate) fn count_lookup(state: &ServerState, found: bool) {
    let c = &state.counters;
    bump(
        if found {
            &c.keyspace_hits
        } else {
            &c.keyspace_misses
        },
        1,
    );
}

fn get(state: &ServerState, req: &Request, txn: &Txn<'_>) -> Result<Reply, Reply> {
    let v = txn.get(&req[1])?;
    count_lookup(state, v.is_some());
    Ok(v.map_or(Reply::Nil, Reply::Bulk))
}

/// Whether write command `name` reads a key it writes (SET NX/XX/GET, DEL, ...), and so
/// must exclude every other write of its keys; plain SET and MSET write blindly.
pub fn reads_before_writing(name: &str, req: &Request) -> bool {
    match name {
        "set" => req.get(3..).unwrap_or_default().iter().any(|o| {
            o.eq_ignore_ascii_case(b"NX")
                || o.eq_ignore_ascii_case(b"XX")
                || o.eq_ignore_ascii_case(b"GET")
        }),
        "mset" => false,
        _ => true,
    }
}

/// `SET key value [NX|XX] [GET]`. Expiry options are refused: keys do not expire here.
fn set(req: &Request, txn: &mut Txn<'_>) -> Result<Reply, Reply> {
    let (mut nx, mut xx, mut get) = (false, false, false);
    for opt in &req[3..] {
        let o = opt.to_ascii_uppercase();
        match o.as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return Err(Reply::err(
                    "ERR EX, PX, EXAT, PXAT and KEEPTTL are not supported: keys do not expire on this server",
                ))
            }
            _ => return Err(syntax_error()),
        }
    }
    let (key, value) = (&req[1], &req[2]);
    check_key(key)?;
    check_value(value)?;
    let old = if nx || xx || get { txn.get(key)? } else { None };
    let allowed = !(nx && old.is_some() || xx && old.is_none());
    if allowed {
        txn.put(key.clone(), value.clone());
    }
    Ok(match (get, allowed) {
        (true, _) => old.map_or(Reply::Nil, Reply::Bulk),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    })
}

fn del(req: &Request, txn: &mut Txn<'_>) -> Result<Reply, Reply> {
    let mut deleted = 0;
    for key in &req[1..] {
        if txn.get(key)?.is_some() {
            txn.delete(key.clone());
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

fn exists(req: &Request, txn: &Txn<'_>) -> Result<Reply, Reply> {
    let mut n = 0;
    for key in &req[1..] {
        if txn.get(key)?.is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn mget(state: &ServerState, req: &Request, txn: &Txn<'_>) -> Result<Reply, Reply> {
    let mut out = Vec::with_capacity(req.len() - 1);
    for key in &req[1..] {
        let v = txn.get(key)?;
        count_lookup(state, v.is_some());
        out.push(v.map_or(Reply::Nil, Reply::Bulk));
    }
    Ok(Reply::Array(out))
}

fn mset(req: &Request, txn: &mut Txn<'_>) -> Result<Reply, Reply> {
    if req.len().is_multiple_of(2) {
        return Err(wrong_arity("mset"));
    }
    for pair in req[1..].chunks(2) {
        check_key(&pair[0])?;
        check_value(&pair[1])?;
    }
    for pair in req[1..].chunks(2) {
        txn.put(pair[0].clone(), pair[1].clone());
    }
    Ok(Reply::ok())
}

/// Counts live keys by scanning: O(keys), unlike Redis's O(1).
fn dbsize(state: &ServerState) -> Result<Reply, Reply> {
    let mut n = 0i64;
    // Borrowed entries: counting needs no copy of each key.
    let mut it = state.db().iter();
    while let Some(item) = it.next_ref() {
        item.map_err(|e| super::engine_error(&e))?;
        n += 1;
    }
    Ok(Reply::Int(n))
}

/// `LSM.RANGE start end [LIMIT n]`: keys `start <= key < end` in order, as a flat array
/// `[key1, value1, key2, value2, ...]`. An empty `end` means no upper bound. To page,
/// repeat with `start` = last key returned + `"\x00"`.
pub fn range(req: &Request, db: &lsm_core::Db) -> Reply {
    let mut limit = DEFAULT_RANGE_LIMIT;
    let mut opts = req[3..].iter();
    while let Some(opt) = opts.next() {
        if !opt.eq_ignore_ascii_case(b"LIMIT") {
            return syntax_error();
        }
        let Some(n) = opts.next() else {
            return syntax_error();
        };
        match std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(n) if (1..=MAX_RANGE_LIMIT).contains(&n) => limit = n,
            _ => {
                return Reply::err(format!(
                    "ERR LIMIT must be an integer in 1..={MAX_RANGE_LIMIT}"
                ))
            }
        }
    }
    let start = Bound::Included(req[1].to_vec());
    let end = if req[2].is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(req[2].to_vec())
    };
    let mut out = Vec::new();
    for item in db.range::<Vec<u8>, _>((start, end)).take(limit) {
        match item {
            Ok((k, v)) => {
                out.push(Reply::Bulk(k));
                out.push(Reply::Bulk(v));
            }
            Err(e) => return super::engine_error(&e),
        }
    }
    Reply::Array(out)
}
