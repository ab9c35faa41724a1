//! Crash recovery: a child process writes and reports each acknowledged write on stdout;
//! the parent kills it with SIGKILL at a random moment, reopens the database, and checks
//! that the recovered state is exactly the state after a prefix of the write order that
//! contains every acknowledged write. The next cycle continues from there, so later
//! cycles recover databases that earlier crashes left behind.
//!
//! `LSM_CRASH_CYCLES` sets the number of cycles (default 24); `LSM_CRASH_SEED` replays a
//! run.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lsm_core::{Db, Options, WriteBatch};

/// Writes a child performs at most before exiting on its own.
const OPS_PER_CHILD: u64 = 20_000;

fn options() -> Options {
    Options {
        memtable_size_bytes: 32 * 1024,
        ..common::small_options()
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(n: u64) -> String {
    format!("key{:04}", n.wrapping_mul(2_654_435_761) % 500)
}

/// Operation `i` of the deterministic workload, applied to a batch and to the model.
fn op(i: u64, batch: &mut WriteBatch, model: &mut BTreeMap<String, String>) {
    let value = format!("value-{i}-{}", "x".repeat((i % 90) as usize));
    if i % 10 == 9 {
        for j in 0..3 {
            batch.put(key(i * 7 + j), &value);
            model.insert(key(i * 7 + j), value.clone());
        }
        batch.delete(key(i + 11));
        model.remove(&key(i + 11));
    } else if i % 7 == 3 {
        batch.delete(key(i));
        model.remove(&key(i));
    } else {
        batch.put(key(i), &value);
        model.insert(key(i), value);
    }
}

/// Advances `model` from the state after `from` ops to the state after `to` ops.
fn advance(model: &mut BTreeMap<String, String>, from: u64, to: u64) {
    for i in from..to {
        op(i, &mut WriteBatch::new(), model);
    }
}

/// The child: not a test on its own; the parent runs it with the environment set.
#[test]
#[ignore = "child process of crash_recovery_keeps_every_acknowledged_write"]
fn crash_child() {
    let dir = std::env::var("LSM_CRASH_DIR").expect("LSM_CRASH_DIR");
    let start: u64 = std::env::var("LSM_CRASH_START").unwrap().parse().unwrap();
    let db = Db::open(&dir, options()).unwrap();
    println!("open");
    let mut scratch = BTreeMap::new();
    for i in start..start + OPS_PER_CHILD {
        let mut b = WriteBatch::new();
        op(i, &mut b, &mut scratch);
        db.write(b).unwrap();
        println!("ack {i}");
    }
}

#[test]
fn crash_recovery_keeps_every_acknowledged_write() {
    let cycles: u32 = std::env::var("LSM_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let seed: u64 = std::env::var("LSM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        });
    eprintln!("crash test: {cycles} cycles, LSM_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut applied = 0u64; // ops in the database so far
    let mut model = BTreeMap::new(); // the state after `applied` ops
    let mut total_acked = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LSM_CRASH_DIR", dir.path())
            .env("LSM_CRASH_START", applied.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints "test crash_child ... " before the child's first line.
                let line = line.rsplit("... ").next().unwrap_or_default();
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = tx.send(Some(n.parse::<u64>().unwrap()));
                } else if line == "open" {
                    let _ = tx.send(None);
                }
            }
        });
        // Kill at a random point: sometimes during open, mostly while writing.
        let wait_ms = rng.next() % 80;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut acked: Vec<u64> = Vec::new();
        if !rng.next().is_multiple_of(5) {
            // Wait for the open to finish before the kill timer starts.
            while Instant::now() < deadline {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(None) => break,
                    Ok(Some(n)) => acked.push(n),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(rx.try_iter().flatten());
        let last_acked = acked.last().copied();
        if let Some(&first) = acked.first() {
            assert_eq!(first, applied, "child resumed at the wrong op");
        }
        total_acked += acked.len() as u64;

        // Recover and find which prefix survived: every acknowledged op, and possibly
        // the one in flight.
        let db = Db::open(dir.path(), options()).unwrap();
        let state: BTreeMap<String, String> = common::collect(db.iter())
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        let must = last_acked.map_or(applied, |a| a + 1);
        advance(&mut model, applied, must);
        applied = must;
        if model != state {
            // The op in flight at the kill may have survived too.
            advance(&mut model, must, must + 1);
            applied = must + 1;
            assert!(
                model == state,
                "cycle {cycle} (seed {seed}): recovered state is not the state after {must} or {} ops",
                must + 1
            );
        }
        db.close().unwrap();
    }
    eprintln!("crash test: {total_acked} acknowledged writes over {cycles} kills, {applied} ops recovered");
    assert!(total_acked > 0, "no child ever acknowledged a write");
}
