//! INFO: Redis's sections (`server`, `clients`, `stats`, `persistence`, `replication`,
//! `cluster`) with Redis field names where they fit, plus an `lsm` section with the
//! engine's counters. In cluster mode `replication` shows `role:master` on the leader and
//! `role:slave` elsewhere, with `leader_addr` and `leader_epoch`; `cluster` lists members.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use lsm_core::Stats;

use crate::command::admin::REDIS_COMPAT_VERSION;
use crate::state::{get, ServerState};

/// Sections in the order INFO prints them.
pub const SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "stats",
    "persistence",
    "replication",
    "cluster",
    "lsm",
];

/// The engine's counters as `(name, value, prometheus type)`.
pub fn engine_fields(s: &Stats) -> Vec<(String, String, &'static str)> {
    let mut f: Vec<(String, String, &'static str)> = vec![
        (
            "memtable_bytes".into(),
            s.memtable_bytes.to_string(),
            "gauge",
        ),
        (
            "sealed_memtables".into(),
            s.sealed_memtables.to_string(),
            "gauge",
        ),
        (
            "sealed_memtable_bytes".into(),
            s.sealed_memtable_bytes.to_string(),
            "gauge",
        ),
        (
            "memtable_index_bytes".into(),
            s.memtable_index_bytes.to_string(),
            "gauge",
        ),
        (
            "memtable_unlinked_entries".into(),
            s.memtable_unlinked_entries.to_string(),
            "gauge",
        ),
        ("table_entries".into(), s.table_entries.to_string(), "gauge"),
        (
            "table_tombstones".into(),
            s.table_tombstones.to_string(),
            "gauge",
        ),
        ("flushes".into(), s.flushes.to_string(), "counter"),
        (
            "flush_bytes_written".into(),
            s.flush_bytes_written.to_string(),
            "counter",
        ),
        ("compactions".into(), s.compactions.to_string(), "counter"),
        (
            "trivial_moves".into(),
            s.trivial_moves.to_string(),
            "counter",
        ),
        (
            "compaction_bytes_read".into(),
            s.compaction_bytes_read.to_string(),
            "counter",
        ),
        (
            "compaction_bytes_written".into(),
            s.compaction_bytes_written.to_string(),
            "counter",
        ),
        ("bloom_checks".into(), s.bloom_checks.to_string(), "counter"),
        (
            "bloom_negatives".into(),
            s.bloom_negatives.to_string(),
            "counter",
        ),
        (
            "bloom_false_positives".into(),
            s.bloom_false_positives.to_string(),
            "counter",
        ),
        ("table_probes".into(), s.table_probes.to_string(), "counter"),
        ("write_stalls".into(), s.write_stalls.to_string(), "counter"),
        (
            "write_slowdowns".into(),
            s.write_slowdowns.to_string(),
            "counter",
        ),
        (
            "write_stall_micros".into(),
            s.write_stall_micros.to_string(),
            "counter",
        ),
        (
            "wal_bytes_written".into(),
            s.wal_bytes_written.to_string(),
            "counter",
        ),
        ("wal_syncs".into(), s.wal_syncs.to_string(), "counter"),
        (
            "commit_groups".into(),
            s.commit_groups.to_string(),
            "counter",
        ),
        (
            "user_bytes_written".into(),
            s.user_bytes_written.to_string(),
            "counter",
        ),
        (
            "last_sequence".into(),
            s.last_sequence.to_string(),
            "counter",
        ),
    ];
    for (i, l) in s.levels.iter().enumerate() {
        f.push((format!("level{i}_files"), l.files.to_string(), "gauge"));
        f.push((format!("level{i}_bytes"), l.bytes.to_string(), "gauge"));
    }
    f
}

fn wanted(args: &[Bytes]) -> Vec<&'static str> {
    if args.is_empty() {
        return SECTIONS.to_vec();
    }
    let mut out = Vec::new();
    for a in args {
        let a = String::from_utf8_lossy(a).to_lowercase();
        match a.as_str() {
            "all" | "everything" | "default" => return SECTIONS.to_vec(),
            _ => {
                if let Some(s) = SECTIONS.iter().find(|s| **s == a) {
                    if !out.contains(s) {
                        out.push(*s);
                    }
                }
            }
        }
    }
    out
}

pub fn render(state: &ServerState, args: &[Bytes]) -> String {
    let mut out = String::new();
    let c = &state.counters;
    for section in wanted(args) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: String| fields.push((k.to_string(), v));
        match section {
            "server" => {
                let up = state.started.elapsed().as_secs();
                add("redis_version", REDIS_COMPAT_VERSION.into());
                add("lsm_version", env!("CARGO_PKG_VERSION").into());
                add("redis_mode", "standalone".into());
                add("os", std::env::consts::OS.into());
                add("arch_bits", (usize::BITS).to_string());
                add("process_id", std::process::id().to_string());
                add("tcp_port", state.port.to_string());
                // The runtime's workers serving connections (`threads`).
                let workers =
                    tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_workers());
                add("worker_threads", workers.to_string());
                add("uptime_in_seconds", up.to_string());
                add("uptime_in_days", (up / 86_400).to_string());
            }
            "clients" => {
                add(
                    "connected_clients",
                    c.connected_clients.load(Ordering::Relaxed).to_string(),
                );
                add("maxclients", state.config.maxclients.to_string());
            }
            "stats" => {
                add(
                    "total_connections_received",
                    get(&c.total_connections).to_string(),
                );
                add(
                    "total_commands_processed",
                    get(&c.total_commands).to_string(),
                );
                add(
                    "rejected_connections",
                    get(&c.rejected_connections).to_string(),
                );
                add("keyspace_hits", get(&c.keyspace_hits).to_string());
                add("keyspace_misses", get(&c.keyspace_misses).to_string());
                add("total_net_input_bytes", get(&c.net_input_bytes).to_string());
                add(
                    "total_net_output_bytes",
                    get(&c.net_output_bytes).to_string(),
                );
                add(
                    "total_error_replies",
                    state.metrics.error_total().to_string(),
                );
            }
            "persistence" => {
                add("loading", "0".into());
                add("aof_enabled", "1".into());
                add(
                    "lsm_durability",
                    if state.config.sync { "sync" } else { "process" }.into(),
                );
                add("lsm_data_dir", state.config.data_dir.display().to_string());
            }
            "replication" => match state.cluster.as_deref() {
                None => {
                    add("role", "master".into());
                    add("connected_slaves", "0".into());
                    add(
                        "master_repl_offset",
                        state.db().stats().last_sequence.to_string(),
                    );
                }
                Some(cluster) => {
                    let v = cluster.view();
                    let leading = matches!(v.role, lsm_cluster::Role::Leader { .. });
                    add("role", if leading { "master" } else { "slave" }.into());
                    let (addr, epoch) = v
                        .leader
                        .as_ref()
                        .map_or((String::new(), 0), |l| (l.addr.clone(), l.epoch));
                    add("leader_addr", addr.clone());
                    add("leader_epoch", epoch.to_string());
                    let repl = state.replication.as_deref();
                    if leading {
                        let followers = repl.map(|r| r.followers()).unwrap_or_default();
                        let online = followers.iter().filter(|(_, f)| f.streaming).count();
                        add("connected_slaves", online.to_string());
                        for (i, (id, f)) in followers.iter().enumerate() {
                            let (ip, port) = f.addr.rsplit_once(':').unwrap_or((&f.addr, ""));
                            add(
                                &format!("slave{i}"),
                                format!(
                                    "ip={ip},port={port},state={},offset={},lag={},node_id={id}",
                                    if f.streaming { "online" } else { "offline" },
                                    f.matched,
                                    f.last_ack.elapsed().as_secs()
                                ),
                            );
                        }
                    } else {
                        let (host, port) = addr.rsplit_once(':').unwrap_or(("", ""));
                        add("master_host", host.into());
                        add("master_port", port.into());
                        let up =
                            v.leader.is_some() && v.connected && repl.is_none_or(|r| r.link_up());
                        add("master_link_status", if up { "up" } else { "down" }.into());
                    }
                    if let Some(r) = repl {
                        let last = r.last();
                        add("master_repl_offset", last.index.to_string());
                        add("slave_repl_offset", last.index.to_string());
                        add("repl_log_first_index", (r.log_base().index + 1).to_string());
                        add("repl_commit_index", r.commit_index().to_string());
                        add("repl_applied_index", r.applied_index().to_string());
                        add("repl_acks", r.settings().acks.as_str().into());
                        add("repl_cluster_size", r.settings().cluster_size.to_string());
                        add("repl_state", r.state_name());
                    }
                }
            },
            "cluster" => match state.cluster.as_deref() {
                None => add("cluster_enabled", "0".into()),
                Some(cluster) => {
                    let v = cluster.view();
                    let cfg = cluster.config();
                    add("cluster_enabled", "1".into());
                    add("cluster_name", cfg.cluster_name.clone());
                    add("node_id", v.node_id.clone());
                    add("advertise_addr", cfg.advertise_addr.clone());
                    add(
                        "cluster_state",
                        if v.leader.is_some() { "ok" } else { "down" }.into(),
                    );
                    add(
                        "leader_node_id",
                        v.leader
                            .as_ref()
                            .map(|l| l.node_id.clone())
                            .unwrap_or_default(),
                    );
                    add("zookeeper", cfg.zookeeper.clone());
                    add("zookeeper_connected", u8::from(v.connected).to_string());
                    add(
                        "zookeeper_session_id",
                        v.session_id.clone().unwrap_or_default(),
                    );
                    add(
                        "zookeeper_session_timeout_ms",
                        cluster.session_timeout().as_millis().to_string(),
                    );
                    add(
                        "forwarded_commands",
                        get(&state.counters.forwarded_commands).to_string(),
                    );
                    add("cluster_members", v.members.len().to_string());
                    for (i, m) in v.members.iter().enumerate() {
                        let leader = v.leader.as_ref().is_some_and(|l| l.node_id == m.node_id);
                        add(
                            &format!("member{i}"),
                            format!(
                                "id={},addr={},leader={}",
                                m.node_id,
                                m.addr,
                                u8::from(leader)
                            ),
                        );
                    }
                }
            },
            _ => {
                for (k, v, _) in engine_fields(&state.db().stats()) {
                    add(&k, v);
                }
            }
        }
        let title = if section == "lsm" {
            "LSM".to_string()
        } else {
            capitalize(section)
        };
        let _ = write!(out, "# {title}\r\n");
        for (k, v) in fields {
            let _ = write!(out, "{k}:{v}\r\n");
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
