//! Per-command request counts and latency histograms, rendered with the engine's
//! counters in the Prometheus text format, and the tiny HTTP endpoint serving them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::command::COMMANDS;
use crate::state::{get, ServerState};

/// Upper bounds of the latency buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

/// Largest HTTP request head accepted by the metrics endpoint.
const MAX_HTTP_REQUEST_BYTES: usize = 8 * 1024;

#[derive(Debug)]
struct CommandMetrics {
    calls: AtomicU64,
    errors: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
}

impl Default for CommandMetrics {
    fn default() -> Self {
        CommandMetrics {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One entry per command of the table, plus one for unknown commands.
#[derive(Debug)]
pub struct Metrics {
    per_command: Vec<CommandMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            per_command: (0..=COMMANDS.len())
                .map(|_| CommandMetrics::default())
                .collect(),
        }
    }
}

impl Metrics {
    /// Records one call of command `index` (`None`: unknown command).
    pub fn record(&self, index: Option<usize>, elapsed: Duration, error: bool) {
        let m = &self.per_command[index.unwrap_or(COMMANDS.len())];
        let us = elapsed.as_micros() as u64;
        m.calls.fetch_add(1, Ordering::Relaxed);
        if error {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
        m.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Some(b) = LATENCY_BUCKETS_US.iter().position(|&ub| us <= ub) {
            m.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Error replies of every command so far.
    pub fn error_total(&self) -> u64 {
        self.per_command
            .iter()
            .map(|m| m.errors.load(Ordering::Relaxed))
            .sum()
    }
}

/// Renders every metric in the Prometheus text exposition format (version 0.0.4).
pub fn render(state: &ServerState) -> String {
    let mut out = String::new();
    let m = &state.metrics;
    let name_of = |i: usize| COMMANDS.get(i).map_or("unknown", |c| c.name);
    out.push_str("# HELP lsm_commands_total Commands processed, by command.\n# TYPE lsm_commands_total counter\n");
    for (i, c) in m.per_command.iter().enumerate() {
        let calls = c.calls.load(Ordering::Relaxed);
        if calls > 0 {
            let _ = writeln!(
                out,
                "lsm_commands_total{{command=\"{}\"}} {calls}",
                name_of(i)
            );
        }
    }
    out.push_str("# HELP lsm_command_errors_total Commands that replied with an error.\n# TYPE lsm_command_errors_total counter\n");
    for (i, c) in m.per_command.iter().enumerate() {
        let errors = c.errors.load(Ordering::Relaxed);
        if errors > 0 {
            let _ = writeln!(
                out,
                "lsm_command_errors_total{{command=\"{}\"}} {errors}",
                name_of(i)
            );
        }
    }
    out.push_str("# HELP lsm_command_duration_seconds Command execution time.\n# TYPE lsm_command_duration_seconds histogram\n");
    for (i, c) in m.per_command.iter().enumerate() {
        let calls = c.calls.load(Ordering::Relaxed);
        if calls == 0 {
            continue;
        }
        let name = name_of(i);
        let mut cumulative = 0;
        for (b, ub) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += c.buckets[b].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "lsm_command_duration_seconds_bucket{{command=\"{name}\",le=\"{}\"}} {cumulative}",
                *ub as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "lsm_command_duration_seconds_bucket{{command=\"{name}\",le=\"+Inf\"}} {calls}"
        );
        let _ = writeln!(
            out,
            "lsm_command_duration_seconds_sum{{command=\"{name}\"}} {}",
            c.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "lsm_command_duration_seconds_count{{command=\"{name}\"}} {calls}"
        );
    }
    let c = &state.counters;
    let gauges = [
        (
            "lsm_connected_clients",
            "Clients connected now.",
            c.connected_clients.load(Ordering::Relaxed) as u64,
        ),
        (
            "lsm_uptime_seconds",
            "Seconds since the server started.",
            state.started.elapsed().as_secs(),
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let counters = [
        (
            "lsm_connections_total",
            "Connections accepted.",
            get(&c.total_connections),
        ),
        (
            "lsm_rejected_connections_total",
            "Connections refused at maxclients.",
            get(&c.rejected_connections),
        ),
        (
            "lsm_protocol_errors_total",
            "Connections closed for a protocol error.",
            get(&c.protocol_errors),
        ),
        (
            "lsm_keyspace_hits_total",
            "Key lookups that found a value.",
            get(&c.keyspace_hits),
        ),
        (
            "lsm_keyspace_misses_total",
            "Key lookups that found nothing.",
            get(&c.keyspace_misses),
        ),
        (
            "lsm_net_input_bytes_total",
            "Bytes read from clients.",
            get(&c.net_input_bytes),
        ),
        (
            "lsm_net_output_bytes_total",
            "Bytes written to clients.",
            get(&c.net_output_bytes),
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    for (name, value, kind) in crate::info::engine_fields(&state.db().stats()) {
        let _ = writeln!(
            out,
            "# TYPE lsm_engine_{name} {kind}\nlsm_engine_{name} {value}"
        );
    }
    out
}

/// Serves `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut socket, _)) = accepted else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    let read = tokio::time::timeout(Duration::from_secs(5), async {
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HTTP_REQUEST_BYTES {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return false,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        true
                    })
                    .await;
                    if read != Ok(true) {
                        return;
                    }
                    let response = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
                        let body = render(&state);
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n".to_string()
                    };
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
            () = &mut shutdown => return,
        }
    }
}
