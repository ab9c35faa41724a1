//! A linearizability checker for a history of reads and writes of one register (one
//! key), after Wing and Gong's search with Lowe's memoization: find an order of the
//! operations that respects real time (an operation that returned before another was
//! called comes first) and in which every read returns the value of the latest write
//! before it.
//!
//! A write whose outcome the client does not know (an error or a lost connection: it
//! may or may not have been applied) never returns: it may take effect at any point
//! after its call, or never. Reads that failed are simply left out of the history.

use std::collections::HashSet;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Set the register to this value.
    Write(String),
    /// Read this value (None: the key did not exist).
    Read(Option<String>),
}

/// One operation, with its call and return times (any monotonic unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub call: u64,
    /// None: a write whose outcome is unknown.
    pub ret: Option<u64>,
    pub kind: Kind,
}

/// Most search states visited before giving up (the answer is then `Err`).
const MAX_STATES: usize = 5_000_000;

/// Checks that `ops` (all on one register that starts absent) are linearizable.
///
/// # Errors
/// A description of the first operations that could not be placed, or that the search
/// grew beyond its bound.
pub fn check(ops: &[Op]) -> Result<(), String> {
    let mut ops: Vec<Op> = ops.to_vec();
    ops.sort_by_key(|o| o.call);
    let n = ops.len();
    // Values as small integers; 0 is "absent".
    let mut values: Vec<Option<String>> = vec![None];
    let mut id = |v: &Option<String>| match values.iter().position(|x| x == v) {
        Some(i) => i,
        None => {
            values.push(v.clone());
            values.len() - 1
        }
    };
    let coded: Vec<(u64, u64, bool, usize)> = ops
        .iter()
        .map(|o| {
            let (is_write, v) = match &o.kind {
                Kind::Write(v) => (true, id(&Some(v.clone()))),
                Kind::Read(v) => (false, id(v)),
            };
            (o.call, o.ret.unwrap_or(u64::MAX), is_write, v)
        })
        .collect();
    let required: Vec<bool> = ops.iter().map(|o| o.ret.is_some()).collect();
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let is_done = |d: &[u64], i: usize| d[i / 64] >> (i % 64) & 1 == 1;
    let mut seen: HashSet<(Vec<u64>, usize)> = HashSet::new();
    // Depth-first search; each frame: the state before it and the next candidate to try.
    let mut stack: Vec<(usize, usize, usize)> = Vec::new(); // (op placed, state before, next i)
    let mut state = 0usize;
    let mut next = 0usize;
    let mut deepest = 0usize;
    loop {
        let remaining_required = (0..n).any(|i| required[i] && !is_done(&done, i));
        if !remaining_required {
            return Ok(());
        }
        // Earliest return among the operations not placed yet: nothing called after it
        // may be placed before it.
        let horizon = (0..n)
            .filter(|&i| !is_done(&done, i))
            .map(|i| coded[i].1)
            .min()
            .unwrap_or(u64::MAX);
        let mut placed = false;
        let mut i = next;
        while i < n && coded[i].0 <= horizon {
            if !is_done(&done, i) {
                let (_, _, is_write, v) = coded[i];
                let ok = is_write || v == state;
                if ok {
                    let new_state = if is_write { v } else { state };
                    done[i / 64] |= 1 << (i % 64);
                    if seen.insert((done.clone(), new_state)) {
                        stack.push((i, state, i + 1));
                        state = new_state;
                        next = 0;
                        placed = true;
                        deepest = deepest.max(stack.len());
                        if seen.len() > MAX_STATES {
                            return Err(format!(
                                "search gave up after {MAX_STATES} states ({n} operations)"
                            ));
                        }
                        break;
                    }
                    done[i / 64] &= !(1 << (i % 64));
                }
            }
            i += 1;
        }
        if placed {
            continue;
        }
        // Dead end: undo the last placement and try its next sibling.
        let Some((op, before, sibling)) = stack.pop() else {
            let stuck: Vec<&Op> = ops
                .iter()
                .take(deepest + 3)
                .skip(deepest.saturating_sub(3))
                .collect();
            return Err(format!(
                "not linearizable: no order places more than {deepest} of {n} operations; \
                 around there: {stuck:?}"
            ));
        };
        done[op / 64] &= !(1 << (op % 64));
        state = before;
        next = sibling;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(call: u64, ret: Option<u64>, v: &str) -> Op {
        Op {
            call,
            ret,
            kind: Kind::Write(v.into()),
        }
    }

    fn r(call: u64, ret: u64, v: Option<&str>) -> Op {
        Op {
            call,
            ret: Some(ret),
            kind: Kind::Read(v.map(Into::into)),
        }
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        assert!(check(&[]).is_ok());
        assert!(check(&[r(0, 1, None), w(2, Some(3), "a"), r(4, 5, Some("a"))]).is_ok());
        // Concurrent writes: a read may see either, later reads must agree.
        let h = [
            w(0, Some(10), "a"),
            w(1, Some(9), "b"),
            r(11, 12, Some("a")),
            r(13, 14, Some("a")),
        ];
        assert!(check(&h).is_ok());
        // A read overlapping a write may see the old or the new value.
        assert!(check(&[w(0, Some(10), "a"), r(1, 2, None), r(3, 4, Some("a"))]).is_ok());
    }

    #[test]
    fn violations_are_found() {
        // A stale read after the write returned.
        let e = check(&[w(0, Some(1), "a"), r(2, 3, None)]).unwrap_err();
        assert!(e.contains("not linearizable"), "{e}");
        // Reads flip back to an overwritten value.
        let h = [
            w(0, Some(1), "a"),
            w(2, Some(3), "b"),
            r(4, 5, Some("b")),
            r(6, 7, Some("a")),
        ];
        assert!(check(&h).is_err());
        // Two readers disagree on the order of two concurrent writes.
        let h = [
            w(0, Some(10), "a"),
            w(0, Some(10), "b"),
            r(11, 12, Some("a")),
            r(13, 14, Some("b")),
            r(15, 16, Some("a")),
        ];
        assert!(check(&h).is_err());
        // A value nobody wrote.
        assert!(check(&[r(0, 1, Some("x"))]).is_err());
    }

    #[test]
    fn writes_of_unknown_outcome_may_apply_late_or_never() {
        // Applied after the client gave up on it.
        assert!(check(&[w(0, None, "a"), r(5, 6, None), r(7, 8, Some("a"))]).is_ok());
        // Never applied.
        assert!(check(&[w(0, None, "a"), r(5, 6, None)]).is_ok());
        // But not before it was called.
        assert!(check(&[r(0, 1, Some("a")), w(2, None, "a")]).is_err());
        // And once overwritten by a later completed write, it cannot reappear after it
        // unless it was still pending then.
        let h = [w(0, Some(1), "a"), w(2, Some(3), "b"), r(4, 5, Some("a"))];
        assert!(check(&h).is_err());
    }

    #[test]
    fn many_clients_stay_fast() {
        // 4 clients, 2000 operations, each read sees the latest completed write.
        let mut ops = Vec::new();
        let mut t = 0;
        let mut last = None;
        for i in 0..500 {
            for c in 0..4u64 {
                if (i + c) % 2 == 0 {
                    let v = format!("{c}-{i}");
                    ops.push(w(t, Some(t + 3), &v));
                    last = Some(v);
                } else {
                    ops.push(r(t + 1, t + 2, last.as_deref()));
                }
            }
            t += 10;
        }
        check(&ops).unwrap();
    }
}
