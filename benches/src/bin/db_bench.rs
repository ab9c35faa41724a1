//! `db_bench`: runs each workload on lsm-core and its peers, every (workload, engine) pair
//! in its own child process so that peak RSS and bytes written are its own, alternating
//! the engine order between rounds. Prints a table (medians over rounds) with the ratio of
//! lsm-core to each peer, and writes every raw result as CSV.
//!
//! ```text
//! cargo run --release -p benches --bin db_bench -- [--num 1000000] [--value-size 100]
//!     [--key-size 16] [--rounds 3] [--engines lsm,fjall] [--workloads fillrandom,...]
//!     [--csv target/db_bench.csv]
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use benches::engines;
use benches::workload::{self, Shape, WORKLOADS};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Args {
    shape: Shape,
    rounds: usize,
    engines: Vec<String>,
    workloads: Vec<String>,
    csv: PathBuf,
    child: Option<(String, String, PathBuf)>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        shape: Shape {
            num: 1_000_000,
            key_bytes: 16,
            value_bytes: 100,
        },
        rounds: 3,
        engines: engines::available().into_iter().map(String::from).collect(),
        workloads: WORKLOADS.iter().map(|w| w.to_string()).collect(),
        csv: PathBuf::from("target/db_bench.csv"),
        child: None,
    };
    let mut it = std::env::args().skip(1);
    let (mut child_engine, mut child_workload, mut child_dir) = (None, None, None);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--num" => a.shape.num = val()?.parse()?,
            "--value-size" => a.shape.value_bytes = val()?.parse()?,
            "--key-size" => a.shape.key_bytes = val()?.parse()?,
            "--rounds" => a.rounds = val()?.parse()?,
            "--engines" => a.engines = val()?.split(',').map(String::from).collect(),
            "--workloads" => a.workloads = val()?.split(',').map(String::from).collect(),
            "--csv" => a.csv = PathBuf::from(val()?),
            "--child-engine" => child_engine = Some(val()?),
            "--child-workload" => child_workload = Some(val()?),
            "--child-dir" => child_dir = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if let (Some(e), Some(w), Some(d)) = (child_engine, child_workload, child_dir) {
        a.child = Some((e, w, d));
    }
    if a.shape.key_bytes < 16 {
        return Err("--key-size must be at least 16".into());
    }
    for w in &a.workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            return Err(format!("unknown workload {w}; known: {WORKLOADS:?}").into());
        }
    }
    Ok(a)
}

/// `write_bytes` of /proc/self/io: bytes this process caused to be written to storage.
fn disk_bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("write_bytes:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// Peak resident set size in KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            total += if md.is_dir() {
                dir_bytes(&e.path())
            } else {
                md.len()
            };
        }
    }
    total
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The child: one workload on one engine; prints one `RESULT` line.
fn child(engine: &str, name: &str, dir: &Path, shape: Shape) -> Result<(), BoxError> {
    let before = disk_bytes_written();
    let db: Arc<dyn engines::Engine> =
        Arc::from(engines::open(engine, dir, workload::wants_sync(name))?);
    let mut m = workload::run(name, &db, shape)?;
    db.close()?;
    let written = disk_bytes_written().saturating_sub(before);
    m.latencies_ns.sort_unstable();
    let live = m.live_keys * (shape.key_bytes + shape.value_bytes) as u64;
    println!(
        "RESULT engine={engine} workload={name} ops={} seconds={:.6} ops_per_sec={:.1} p50_us={:.3} p99_us={:.3} write_amp={:.3} space_amp={:.3} peak_rss_mib={:.1}",
        m.ops,
        m.seconds,
        m.ops as f64 / m.seconds,
        percentile(&m.latencies_ns, 0.50),
        percentile(&m.latencies_ns, 0.99),
        written as f64 / m.user_bytes.max(1) as f64,
        dir_bytes(dir) as f64 / live.max(1) as f64,
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

fn parse_result(line: &str) -> Option<BTreeMap<String, String>> {
    let rest = line.strip_prefix("RESULT ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if let Some((engine, name, dir)) = &args.child {
        return child(engine, name, dir, args.shape);
    }
    let exe = std::env::current_exe()?;
    let mut results: Vec<BTreeMap<String, String>> = Vec::new();
    let total = args.workloads.len() * args.rounds * args.engines.len();
    let mut done = 0;
    for name in &args.workloads {
        for round in 0..args.rounds {
            let mut order = args.engines.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for engine in &order {
                let dir = tempfile::tempdir_in(std::env::temp_dir())?;
                let mut child = Command::new(&exe)
                    .args(["--child-engine", engine, "--child-workload", name])
                    .arg("--child-dir")
                    .arg(dir.path())
                    .args(["--num", &args.shape.num.to_string()])
                    .args(["--value-size", &args.shape.value_bytes.to_string()])
                    .args(["--key-size", &args.shape.key_bytes.to_string()])
                    .stdout(Stdio::piped())
                    .spawn()?;
                let stdout = child.stdout.take().ok_or("no child stdout")?;
                let mut result = None;
                for line in BufReader::new(stdout).lines() {
                    if let Some(r) = parse_result(&line?) {
                        result = Some(r);
                    }
                }
                let status = child.wait()?;
                done += 1;
                let Some(mut r) = result.filter(|_| status.success()) else {
                    return Err(format!("{engine} failed on {name} ({status})").into());
                };
                eprintln!(
                    "[{done}/{total}] {name} round {} {engine}: {} ops/s",
                    round + 1,
                    r.get("ops_per_sec").map_or("?", |s| s.as_str())
                );
                r.insert("round".into(), (round + 1).to_string());
                results.push(r);
            }
        }
    }

    // CSV of every raw result.
    if let Some(parent) = args.csv.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let cols = [
        "workload",
        "engine",
        "round",
        "ops",
        "seconds",
        "ops_per_sec",
        "p50_us",
        "p99_us",
        "write_amp",
        "space_amp",
        "peak_rss_mib",
    ];
    let mut csv = std::fs::File::create(&args.csv)?;
    writeln!(csv, "{}", cols.join(","))?;
    for r in &results {
        let row: Vec<&str> = cols
            .iter()
            .map(|c| r.get(*c).map_or("", |s| s.as_str()))
            .collect();
        writeln!(csv, "{}", row.join(","))?;
    }

    // The table: medians over rounds.
    let get = |w: &str, e: &str, col: &str| -> f64 {
        median(
            results
                .iter()
                .filter(|r| r["workload"] == w && r["engine"] == e)
                .filter_map(|r| r.get(col).and_then(|v| v.parse().ok()))
                .collect(),
        )
    };
    let peers: Vec<&String> = args
        .engines
        .iter()
        .filter(|e| e.as_str() != "lsm")
        .collect();
    println!(
        "\n{} keys, {}-byte keys, {}-byte values, medians of {} rounds",
        args.shape.num, args.shape.key_bytes, args.shape.value_bytes, args.rounds
    );
    print!(
        "{:<24}{:<8}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "workload", "engine", "ops/s", "p50 us", "p99 us", "w-amp", "s-amp", "RSS MiB"
    );
    for p in &peers {
        print!("{:>12}", format!("lsm/{p}"));
    }
    println!();
    for name in &args.workloads {
        for e in &args.engines {
            print!(
                "{:<24}{:<8}{:>12.0}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.1}",
                name,
                e,
                get(name, e, "ops_per_sec"),
                get(name, e, "p50_us"),
                get(name, e, "p99_us"),
                get(name, e, "write_amp"),
                get(name, e, "space_amp"),
                get(name, e, "peak_rss_mib")
            );
            if e == "lsm" {
                for p in &peers {
                    print!(
                        "{:>12.2}",
                        get(name, "lsm", "ops_per_sec") / get(name, p, "ops_per_sec")
                    );
                }
            }
            println!();
        }
    }
    println!("\nraw results: {}", args.csv.display());
    Ok(())
}
