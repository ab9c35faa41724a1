//! One client connection: read bytes, parse every complete request, execute them in
//! order, write the replies (one write per batch of pipelined requests).
//!
//! Bounds: the input buffer may hold at most [`QUERY_BUFFER_LIMIT`] bytes (Redis's
//! `client-query-buffer-limit`); replies are written out whenever [`OUTPUT_FLUSH_BYTES`]
//! accumulate, so a long pipeline never piles up replies. A protocol error is answered
//! with `-ERR Protocol error: ...` and the connection is closed. Idle clients are closed
//! after `timeout` seconds when configured. On shutdown the connection finishes the
//! requests it has already read, then closes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::command::{
    execute, execute_write_group, forward_unit, groupable_write, lookup, needs_leader, Session,
    COMMANDS, MAX_WRITE_GROUP,
};
use crate::forward::{forward_units, leader_wait, place, LeaderLink, Placement};
use crate::protocol::{parse_request, ParseLimits, ProtocolError, Reply, Request};
use crate::state::{bump, AsyncHeld, KeyLocks, ServerState};
use crate::stop::Registered;

/// Largest input buffer per connection (1 GiB, as Redis's default).
pub const QUERY_BUFFER_LIMIT: usize = 1 << 30;
/// Replies are written once this many bytes are pending.
pub const OUTPUT_FLUSH_BYTES: usize = 64 * 1024;
/// Most requests forwarded to the leader in one batch.
pub const MAX_FORWARD_BATCH: usize = 1024;
/// Bytes requested from the socket per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Whether a command may block the thread long enough to move it off the async workers:
/// writes in fsync mode, admin commands, scans, transactions.
fn may_block(state: &ServerState, req: &Request) -> bool {
    let Some(i) = lookup(&req[0]) else {
        return false;
    };
    let c = &COMMANDS[i];
    (state.config.sync && (c.is_write() || c.name == "exec"))
        || c.flags.contains(&"admin")
        || matches!(c.name, "dbsize" | "lsm.range")
}

fn run_command_now(
    state: &ServerState,
    session: &mut Session,
    req: &Request,
    multi_thread: bool,
) -> (Option<usize>, Reply) {
    if multi_thread && may_block(state, req) {
        tokio::task::block_in_place(|| execute(state, session, req))
    } else {
        execute(state, session, req)
    }
}

/// Executes one request. In cluster mode a write (or EXEC) first takes its keys'
/// stripes, and its reply waits until its log entry is applied (committed), holding
/// them; if leadership changes first, the reply becomes that error.
pub(crate) async fn run_command(
    state: &ServerState,
    session: &mut Session,
    req: &Request,
    multi_thread: bool,
) -> (Option<usize>, Reply) {
    let Some(repl) = state.replication.as_ref() else {
        return run_command_now(state, session, req, multi_thread);
    };
    let held = match hold_stripes(state, &write_stripes(session, req)).await {
        Ok(held) => held,
        Err(reply) => {
            if req[0].eq_ignore_ascii_case(b"exec") {
                // A refused EXEC ends the transaction, as an aborted one does.
                session.multi = None;
                session.multi_failed = false;
            }
            return (lookup(&req[0]), reply);
        }
    };
    crate::replication::take_ticket();
    let (index, reply) = run_command_now(state, session, req, multi_thread);
    (
        index,
        settle(state, repl, vec![reply], held).await.remove(0),
    )
}

/// Cluster mode: takes `stripes`, waiting at most `leader_wait_ms` (a write still
/// waiting for replication holds them).
async fn hold_stripes(state: &ServerState, stripes: &[usize]) -> Result<AsyncHeld, Reply> {
    let limit = leader_wait(state);
    tokio::time::timeout(limit, state.locks.lock_async(stripes))
        .await
        .map_err(|_| {
            Reply::err(format!(
                "TRYAGAIN the keys are held by a write still waiting for replication \
                 (waited {} ms)",
                limit.as_millis()
            ))
        })
}

/// Cluster mode: waits (at most `leader_wait_ms`) for the write the command(s) just
/// executed on this thread appended, if any; on failure every reply that was not
/// already an error becomes the error. After a timeout the stripes stay held until the
/// entry is applied or leadership changes, so that no later command reads around it.
async fn settle(
    state: &ServerState,
    repl: &Arc<crate::replication::Replication>,
    replies: Vec<Reply>,
    held: AsyncHeld,
) -> Vec<Reply> {
    let Some(ticket) = crate::replication::take_ticket() else {
        return replies;
    };
    let limit = leader_wait(state);
    let outcome = match tokio::time::timeout(limit, repl.wait(ticket)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => {
            let repl = repl.clone();
            tokio::spawn(async move {
                let _held = held;
                let _ = repl.wait(ticket).await;
            });
            Err(format!(
                "TIMEOUT the write was not acknowledged by a majority within {} ms; it may \
                 or may not be applied",
                limit.as_millis()
            ))
        }
    };
    match outcome {
        Ok(()) => replies,
        Err(e) => {
            let err = Reply::err(e);
            replies
                .into_iter()
                .map(|r| if r.is_error() { r } else { err.clone() })
                .collect()
        }
    }
}

/// The stripes a command holds in cluster mode: its keys if it writes, every queued
/// command's keys for EXEC; none for reads and commands queued inside MULTI.
fn write_stripes(session: &Session, req: &Request) -> Vec<usize> {
    let Some(i) = lookup(&req[0]) else {
        return Vec::new();
    };
    let c = &COMMANDS[i];
    match &session.multi {
        Some(queued) if c.name == "exec" => KeyLocks::stripes_of(queued.iter().flat_map(|q| {
            lookup(&q[0])
                .into_iter()
                .flat_map(move |j| COMMANDS[j].keys(q))
        })),
        None if c.is_write() && c.arity_ok(req.len()) => KeyLocks::stripes_of(c.keys(req)),
        _ => Vec::new(),
    }
}

/// Serves one client until it quits, errs, idles out, or the server shuts down.
pub async fn handle(mut socket: TcpStream, state: Arc<ServerState>, shutdown: Registered) {
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    let mut session = Session {
        id: state
            .counters
            .next_client_id
            .fetch_add(1, Ordering::Relaxed)
            + 1,
        authenticated: state.config.requirepass.is_none(),
        ..Session::default()
    };
    let idle =
        (state.config.timeout_secs > 0).then(|| Duration::from_secs(state.config.timeout_secs));
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    // A request parsed while collecting a write group that did not belong to it.
    let mut carry: Option<Request> = None;
    // Cluster mode on a follower: this client's connection to the leader.
    let mut link: Option<LeaderLink> = None;
    loop {
        loop {
            let limits = ParseLimits {
                authenticated: session.authenticated,
            };
            let mut deferred_error = None;
            let next = match carry.take() {
                Some(req) => Ok(Some(req)),
                None => parse_request(&mut input, limits),
            };
            let req = match next {
                Ok(Some(req)) => req,
                Ok(None) => break,
                Err(e) => {
                    protocol_error(&mut socket, &mut output, &state, &session, &e).await;
                    return;
                }
            };
            if let Some(repl) = state.replication.as_ref() {
                if session.authenticated && req[0].eq_ignore_ascii_case(b"lsm.replicate") {
                    // The connection becomes the log stream to a follower.
                    if flush(&mut socket, &mut output, &state).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = crate::replication::stream::serve_follower(repl.clone(), socket, req) => {}
                        () = shutdown.stopped() => {}
                    }
                    return;
                }
            }
            let started = Instant::now();
            let placement = match state.cluster.as_deref() {
                Some(cluster) if needs_leader(&state, &session, &req) => {
                    place(&state, cluster, &session).await
                }
                _ => Placement::Local,
            };
            match (placement, state.cluster.as_deref()) {
                (Placement::Refuse(reply), _) => {
                    if req[0].eq_ignore_ascii_case(b"exec") {
                        // A refused EXEC ends the transaction, as an aborted one does.
                        session.multi = None;
                        session.multi_failed = false;
                    }
                    state
                        .metrics
                        .record(lookup(&req[0]), started.elapsed(), true);
                    bump(&state.counters.total_commands, 1);
                    reply.encode(session.protocol, &mut output);
                }
                (Placement::Forward(leader), Some(cluster)) => {
                    let mut indices = vec![lookup(&req[0])];
                    let mut units = vec![forward_unit(&mut session, req)];
                    while units.len() < MAX_FORWARD_BATCH {
                        match parse_request(&mut input, limits) {
                            Ok(Some(next)) if needs_leader(&state, &session, &next) => {
                                indices.push(lookup(&next[0]));
                                units.push(forward_unit(&mut session, next));
                            }
                            Ok(Some(next)) => {
                                carry = Some(next);
                                break;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                deferred_error = Some(e);
                                break;
                            }
                        }
                    }
                    let errors = forward_units(
                        &state,
                        cluster,
                        &mut session,
                        &mut link,
                        leader,
                        &units,
                        &mut output,
                        multi_thread,
                    )
                    .await;
                    let per_command = started.elapsed() / units.len() as u32;
                    for (index, error) in indices.into_iter().zip(errors) {
                        state.metrics.record(index, per_command, error);
                    }
                    bump(&state.counters.total_commands, units.len() as u64);
                    bump(&state.counters.forwarded_commands, units.len() as u64);
                }
                // `place` only runs in cluster mode, so a forward always has a cluster.
                (Placement::Local | Placement::Forward(_), _) => {
                    if let Some(first) = groupable_write(&state, &session, &req) {
                        // Coalesce the consecutive writes already received into one commit.
                        let mut group = vec![(first, req)];
                        while group.len() < MAX_WRITE_GROUP {
                            match parse_request(&mut input, limits) {
                                Ok(Some(next)) => match groupable_write(&state, &session, &next) {
                                    Some(i) => group.push((i, next)),
                                    None => {
                                        carry = Some(next);
                                        break;
                                    }
                                },
                                Ok(None) => break,
                                Err(e) => {
                                    deferred_error = Some(e);
                                    break;
                                }
                            }
                        }
                        let stripes = if state.locks.is_async() {
                            KeyLocks::stripes_of(
                                group.iter().flat_map(|(i, r)| COMMANDS[*i].keys(r)),
                            )
                        } else {
                            Vec::new()
                        };
                        let held = if state.locks.is_async() {
                            hold_stripes(&state, &stripes).await
                        } else {
                            Ok(Vec::new())
                        };
                        crate::replication::take_ticket();
                        let run = || {
                            if multi_thread && state.config.sync {
                                tokio::task::block_in_place(|| execute_write_group(&state, &group))
                            } else {
                                execute_write_group(&state, &group)
                            }
                        };
                        let replies = match (held, state.replication.as_ref()) {
                            (Err(reply), _) => vec![reply; group.len()],
                            (Ok(held), Some(repl)) => settle(&state, repl, run(), held).await,
                            (Ok(_), None) => match state.committer.as_ref() {
                                Some(committer) => {
                                    match committer.commit(&state, &mut group).await {
                                        Some(replies) => replies,
                                        None => {
                                            tracing::error!(
                                                client = session.id,
                                                "closing connection: its write group was lost \
                                                 unanswered"
                                            );
                                            return;
                                        }
                                    }
                                }
                                None => run(),
                            },
                        };
                        let per_command = started.elapsed() / group.len() as u32;
                        for ((index, _), reply) in group.iter().zip(&replies) {
                            state
                                .metrics
                                .record(Some(*index), per_command, reply.is_error());
                            reply.encode(session.protocol, &mut output);
                        }
                        bump(&state.counters.total_commands, group.len() as u64);
                    } else {
                        let (index, reply) =
                            run_command(&state, &mut session, &req, multi_thread).await;
                        state
                            .metrics
                            .record(index, started.elapsed(), reply.is_error());
                        bump(&state.counters.total_commands, 1);
                        reply.encode(session.protocol, &mut output);
                        if session.quit {
                            let _ = flush(&mut socket, &mut output, &state).await;
                            return;
                        }
                    }
                }
            }
            if let Some(e) = deferred_error {
                protocol_error(&mut socket, &mut output, &state, &session, &e).await;
                return;
            }
            if output.len() >= OUTPUT_FLUSH_BYTES
                && flush(&mut socket, &mut output, &state).await.is_err()
            {
                return;
            }
        }
        if flush(&mut socket, &mut output, &state).await.is_err() {
            return;
        }
        if input.len() >= QUERY_BUFFER_LIMIT {
            tracing::warn!(
                client = session.id,
                "closing connection: query buffer limit of {QUERY_BUFFER_LIMIT} bytes reached"
            );
            return;
        }
        input.reserve(READ_CHUNK_BYTES);
        let read = async {
            match idle {
                Some(limit) => tokio::time::timeout(limit, socket.read_buf(&mut input))
                    .await
                    .ok(),
                None => Some(socket.read_buf(&mut input).await),
            }
        };
        tokio::select! {
            r = read => match r {
                Some(Ok(0)) | Some(Err(_)) => return,
                Some(Ok(n)) => bump(&state.counters.net_input_bytes, n as u64),
                None => {
                    tracing::debug!(client = session.id, "closing idle connection");
                    return;
                }
            },
            () = shutdown.stopped() => return,
        }
    }
}

/// Answers a malformed request (after the replies already due) before closing.
async fn protocol_error(
    socket: &mut TcpStream,
    output: &mut BytesMut,
    state: &ServerState,
    session: &Session,
    e: &ProtocolError,
) {
    bump(&state.counters.protocol_errors, 1);
    tracing::debug!(client = session.id, "closing connection: {e}");
    Reply::err(format!("ERR {e}")).encode(session.protocol, output);
    let _ = flush(socket, output, state).await;
}

async fn flush(
    socket: &mut TcpStream,
    output: &mut BytesMut,
    state: &ServerState,
) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    socket.write_all(output).await?;
    bump(&state.counters.net_output_bytes, output.len() as u64);
    output.clear();
    Ok(())
}
