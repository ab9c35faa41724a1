//! Connection and server commands: PING ECHO SELECT QUIT AUTH HELLO CLIENT CONFIG
//! COMMAND INFO, and the admin commands LSM.FLUSH and LSM.COMPACT.

use super::{syntax_error, CommandSpec, Session, COMMANDS};
use crate::glob::glob_match;
use crate::protocol::{Protocol, Reply, Request};
use crate::state::ServerState;

/// The Redis version this server answers to (its commands and replies follow 7.0).
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

pub fn run(state: &ServerState, session: &mut Session, spec: &CommandSpec, req: &Request) -> Reply {
    match spec.name {
        "ping" => match req.len() {
            1 => Reply::Status("PONG"),
            2 => Reply::Bulk(req[1].clone()),
            _ => super::wrong_arity("ping"),
        },
        "echo" => Reply::Bulk(req[1].clone()),
        "select" => match &req[1][..] {
            b"0" => Reply::ok(),
            _ if std::str::from_utf8(&req[1])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some() =>
            {
                Reply::err("ERR DB index is out of range")
            }
            _ => Reply::err("ERR value is not an integer or out of range"),
        },
        "quit" => {
            session.quit = true;
            Reply::ok()
        }
        "auth" => auth(state, session, req),
        "hello" => hello(state, session, req),
        "client" => client(session, req),
        "config" => config(state, req),
        "command" => command(req),
        "info" => Reply::Verbatim(crate::info::render(state, &req[1..])),
        "lsm.range" => super::data::range(req, &state.db()),
        "lsm.flush" => state
            .db()
            .flush()
            .map_or_else(|e| super::engine_error(&e), |()| Reply::ok()),
        "lsm.compact" => state
            .db()
            .compact()
            .map_or_else(|e| super::engine_error(&e), |()| Reply::ok()),
        "lsm.forwarded" => forwarded(state, session, req),
        // Reached only when the connection did not switch to a replication stream.
        "lsm.replicate" => Reply::err("ERR LSM.REPLICATE is only served by a cluster node"),
        "lsm.logfetch" | "lsm.checkpoint" | "lsm.checkpointread" => match &state.replication {
            Some(repl) => match spec.name {
                "lsm.logfetch" => crate::replication::stream::log_fetch(repl, req),
                "lsm.checkpoint" => crate::replication::stream::make_checkpoint(repl, req),
                _ => crate::replication::stream::read_checkpoint(repl, req),
            },
            None => Reply::err(format!(
                "ERR {} is only served by a cluster node",
                spec.name.to_ascii_uppercase()
            )),
        },
        other => Reply::err(format!("ERR '{other}' is not an admin command")),
    }
}

/// `LSM.FORWARDED <epoch>`: this connection carries requests a follower forwards in
/// `epoch`; they run only while this node leads in exactly that epoch.
fn forwarded(state: &ServerState, session: &mut Session, req: &Request) -> Reply {
    if state.cluster.is_none() {
        return Reply::err("ERR LSM.FORWARDED is only valid in cluster mode");
    }
    match std::str::from_utf8(&req[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(epoch) if epoch > 0 => {
            session.forwarded_epoch = Some(epoch);
            Reply::ok()
        }
        _ => Reply::err("ERR epoch is not a positive integer"),
    }
}

/// Compares without an early exit on the first differing byte.
fn password_matches(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, &e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    diff == 0
}

/// Checks `user`/`pass`; sets the session authenticated on success. `legacy` is the
/// one-argument `AUTH password` form.
fn check_credentials(
    state: &ServerState,
    session: &mut Session,
    user: &[u8],
    pass: &[u8],
    legacy: bool,
) -> Result<(), Reply> {
    let Some(expected) = &state.config.requirepass else {
        // Without requirepass the default user has no password: Redis accepts any
        // password for it, but rejects the legacy form as a likely misconfiguration.
        if legacy {
            return Err(Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        if user == b"default" {
            session.authenticated = true;
            return Ok(());
        }
        return Err(Reply::err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    };
    if user == b"default" && password_matches(pass, expected.as_bytes()) {
        session.authenticated = true;
        Ok(())
    } else {
        Err(Reply::err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

fn auth(state: &ServerState, session: &mut Session, req: &Request) -> Reply {
    let (user, pass) = match req.len() {
        2 => (&b"default"[..], &req[1][..]),
        3 => (&req[1][..], &req[2][..]),
        _ => return syntax_error(),
    };
    match check_credentials(state, session, user, pass, req.len() == 2) {
        Ok(()) => Reply::ok(),
        Err(e) => e,
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
fn hello(state: &ServerState, session: &mut Session, req: &Request) -> Reply {
    let mut proto = session.protocol;
    if let Some(v) = req.get(1) {
        proto = match std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        };
    }
    let mut name = None;
    let mut i = 2;
    let mut authed_now = false;
    while i < req.len() {
        let opt = req[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"AUTH" if i + 2 < req.len() => {
                if let Err(e) = check_credentials(state, session, &req[i + 1], &req[i + 2], false) {
                    return e;
                }
                authed_now = true;
                i += 3;
            }
            b"SETNAME" if i + 1 < req.len() => {
                if let Err(e) = valid_client_name(&req[i + 1]) {
                    return e;
                }
                name = Some(req[i + 1].clone());
                i += 2;
            }
            _ => {
                return Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&req[i])
                ))
            }
        }
    }
    if state.config.requirepass.is_some() && !session.authenticated && !authed_now {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    session.protocol = proto;
    if name.is_some() {
        session.name = name;
    }
    let proto_num = if proto == Protocol::Resp3 { 3 } else { 2 };
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_COMPAT_VERSION)),
        (Reply::text("proto"), Reply::Int(proto_num)),
        (Reply::text("id"), Reply::Int(session.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(Vec::new())),
    ])
}

fn valid_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client(session: &mut Session, req: &Request) -> Reply {
    let sub = req[1].to_ascii_uppercase();
    match (sub.as_slice(), req.len()) {
        (b"ID", 2) => Reply::Int(session.id as i64),
        (b"GETNAME", 2) => session.name.clone().map_or(Reply::Nil, Reply::Bulk),
        (b"SETNAME", 3) => match valid_client_name(&req[2]) {
            Ok(()) => {
                session.name = (!req[2].is_empty()).then(|| req[2].clone());
                Reply::ok()
            }
            Err(e) => e,
        },
        (b"SETINFO", 4) => {
            let attr = req[2].to_ascii_uppercase();
            match attr.as_slice() {
                b"LIB-NAME" | b"LIB-VER" => {
                    if req[3].iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                        return Reply::err("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.");
                    }
                    if attr.as_slice() == b"LIB-NAME" {
                        session.lib_name = Some(req[3].clone());
                    } else {
                        session.lib_ver = Some(req[3].clone());
                    }
                    Reply::ok()
                }
                _ => Reply::err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(&req[2])
                )),
            }
        }
        (b"ID" | b"GETNAME" | b"SETNAME" | b"SETINFO", _) => Reply::err(format!(
            "ERR wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&req[1]).to_lowercase()
        )),
        _ => Reply::err(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&req[1])
        )),
    }
}

/// The parameters CONFIG GET reports, with their current values.
fn config_params(state: &ServerState) -> Vec<(&'static str, String)> {
    let c = &state.config;
    vec![
        ("bind", c.bind.clone()),
        ("port", state.port.to_string()),
        ("dir", c.data_dir.display().to_string()),
        ("maxclients", c.maxclients.to_string()),
        ("timeout", c.timeout_secs.to_string()),
        ("requirepass", c.requirepass.clone().unwrap_or_default()),
        ("appendonly", "yes".into()),
        ("appendfsync", if c.sync { "always" } else { "no" }.into()),
        ("save", String::new()),
        ("databases", "1".into()),
        ("maxmemory", "0".into()),
        (
            "proto-max-bulk-len",
            crate::protocol::MAX_BULK_BYTES.to_string(),
        ),
        ("lsm-metrics-port", c.metrics_port.to_string()),
    ]
}

fn config(state: &ServerState, req: &Request) -> Reply {
    let sub = req[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" => {
            if req.len() < 3 {
                return Reply::err("ERR wrong number of arguments for 'config|get' command");
            }
            let mut out = Vec::new();
            for (name, value) in config_params(state) {
                if req[2..]
                    .iter()
                    .any(|p| glob_match(p, name.as_bytes(), true))
                {
                    out.push((Reply::text(name), Reply::text(&value)));
                }
            }
            Reply::Map(out)
        }
        b"SET" => {
            Reply::err("ERR CONFIG SET is not supported: restart the server with the new setting")
        }
        b"RESETSTAT" => Reply::ok(),
        _ => Reply::err(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&req[1])
        )),
    }
}

fn command_info(c: &CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::text(c.name),
        Reply::Int(i64::from(c.arity)),
        Reply::Set(c.flags.iter().map(|f| Reply::Status(f)).collect()),
        Reply::Int(i64::from(c.first_key)),
        Reply::Int(i64::from(c.last_key)),
        Reply::Int(i64::from(c.step)),
        Reply::Set(Vec::new()),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn command_docs(c: &CommandSpec) -> Reply {
    let group = if c.first_key != 0 || c.name == "dbsize" {
        "generic"
    } else if c.name.starts_with("lsm.") {
        "server"
    } else {
        "connection"
    };
    Reply::Map(vec![
        (Reply::text("summary"), Reply::text(summary(c.name))),
        (Reply::text("since"), Reply::text("1.0.0")),
        (Reply::text("group"), Reply::text(group)),
        (Reply::text("arguments"), Reply::Array(Vec::new())),
    ])
}

fn summary(name: &str) -> &'static str {
    match name {
        "get" => "Returns the value of a key.",
        "set" => "Sets the value of a key (NX, XX, GET supported; no expiry).",
        "del" => "Deletes keys; returns how many existed.",
        "exists" => "Counts how many of the keys exist.",
        "mget" => "Returns the values of several keys.",
        "mset" => "Sets several keys atomically.",
        "dbsize" => "Counts the keys (scans the database).",
        "lsm.range" => "LSM.RANGE start end [LIMIT n]: key-value pairs with start <= key < end.",
        "lsm.flush" => "Writes the memtable to an SSTable.",
        "lsm.compact" => "Runs a full compaction.",
        "lsm.forwarded" => {
            "Marks a follower's link to the leader with the leader epoch it forwards in (internal)."
        }
        "lsm.replicate" => "Turns a follower's connection into the leader's log stream (internal).",
        "lsm.logfetch" => "Returns log entries after a given one to a new leader (internal).",
        "lsm.checkpoint" => "Makes a checkpoint for a follower to rebuild from (internal).",
        "lsm.checkpointread" => "Returns part of a checkpoint file (internal).",
        _ => "See docs/protocol.md.",
    }
}

fn command(req: &Request) -> Reply {
    let Some(sub) = req.get(1).map(|s| s.to_ascii_uppercase()) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect());
    };
    let named = || {
        req[2..]
            .iter()
            .map(|n| super::lookup(n).map(|i| &COMMANDS[i]))
    };
    match sub.as_slice() {
        b"COUNT" => Reply::Int(COMMANDS.len() as i64),
        b"LIST" => Reply::Array(COMMANDS.iter().map(|c| Reply::text(c.name)).collect()),
        b"INFO" if req.len() == 2 => Reply::Array(COMMANDS.iter().map(command_info).collect()),
        b"INFO" => Reply::Array(
            named()
                .map(|c| c.map_or(Reply::NilArray, command_info))
                .collect(),
        ),
        b"DOCS" => {
            let list: Vec<&CommandSpec> = if req.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                named().flatten().collect()
            };
            Reply::Map(
                list.into_iter()
                    .map(|c| (Reply::text(c.name), command_docs(c)))
                    .collect(),
            )
        }
        _ => Reply::err(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&req[1])
        )),
    }
}
