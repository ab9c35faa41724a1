//! The db_bench workloads. Each runs an optional unmeasured setup, then a measured phase
//! whose per-operation latencies are recorded. Keys are 16 bytes (by default) spread
//! over the key space like hashed keys; values are incompressible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::engines::{BoxError, Engine};

/// Every workload, in the order the harness runs them.
pub const WORKLOADS: &[&str] = &[
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "readseq",
    "seekrandom",
    "deleterandom",
    "readrandom-after-delete",
    "readwhilewriting",
    "fillsync8",
];

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub num: u64,
    pub key_bytes: usize,
    pub value_bytes: usize,
}

/// What the measured phase did.
#[derive(Debug, Default)]
pub struct Measured {
    pub ops: u64,
    pub seconds: f64,
    /// Latency of each operation, in nanoseconds (a sample for very long runs).
    pub latencies_ns: Vec<u64>,
    /// Bytes of keys and values the workload wrote in total (setup included).
    pub user_bytes: u64,
    /// Keys expected to be live at the end (for space amplification).
    pub live_keys: u64,
}

/// A deterministic xorshift generator.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Key `i` of the key space: a hash of `i` first (spreads keys), then `i` itself.
pub fn key(i: u64, len: usize) -> Vec<u8> {
    let mut k = vec![0u8; len.max(16)];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k[8..16].copy_from_slice(&i.to_be_bytes());
    k.truncate(len.max(16));
    k
}

/// Key `i` in sequential order (for fillseq).
pub fn seq_key(i: u64, len: usize) -> Vec<u8> {
    let mut k = vec![0u8; len.max(8)];
    k[..8].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
}

fn fill(db: &dyn Engine, s: Shape, seed: u64) -> Result<u64, BoxError> {
    let mut rng = Rng::new(seed);
    for i in shuffled(s.num, seed) {
        db.put(&key(i, s.key_bytes), &value(&mut rng, s.value_bytes))?;
    }
    Ok(s.num * (s.key_bytes + s.value_bytes) as u64)
}

/// Times `f` once per op.
fn timed(ops: u64, mut f: impl FnMut(u64) -> Result<(), BoxError>) -> Result<Measured, BoxError> {
    let mut lat = Vec::with_capacity(ops as usize);
    let start = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        f(i)?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    Ok(Measured {
        ops,
        seconds: start.elapsed().as_secs_f64(),
        latencies_ns: lat,
        ..Measured::default()
    })
}

/// Runs workload `name` on `db`.
pub fn run(name: &str, db: &Arc<dyn Engine>, s: Shape) -> Result<Measured, BoxError> {
    let kv = (s.key_bytes + s.value_bytes) as u64;
    let mut rng = Rng::new(42);
    let m = match name {
        "fillseq" => {
            let mut m = timed(s.num, |i| {
                db.put(&seq_key(i, s.key_bytes), &value(&mut rng, s.value_bytes))
            })?;
            m.user_bytes = s.num * kv;
            m.live_keys = s.num;
            m
        }
        "fillrandom" => {
            let order = shuffled(s.num, 7);
            let mut m = timed(s.num, |i| {
                db.put(
                    &key(order[i as usize], s.key_bytes),
                    &value(&mut rng, s.value_bytes),
                )
            })?;
            m.user_bytes = s.num * kv;
            m.live_keys = s.num;
            m
        }
        "overwrite" => {
            let setup = fill(db.as_ref(), s, 7)?;
            let mut m = timed(s.num, |_| {
                let i = rng.next_u64() % s.num;
                db.put(&key(i, s.key_bytes), &value(&mut rng, s.value_bytes))
            })?;
            m.user_bytes = setup + s.num * kv;
            m.live_keys = s.num;
            m
        }
        "readrandom" | "readmissing" => {
            let setup = fill(db.as_ref(), s, 7)?;
            let order = shuffled(s.num, 11);
            let missing = name == "readmissing";
            let mut m = timed(s.num, |i| {
                let k = if missing {
                    key(s.num + order[i as usize], s.key_bytes)
                } else {
                    key(order[i as usize], s.key_bytes)
                };
                let found = db.get(&k)?;
                if found.is_some() == missing {
                    return Err(format!("{name}: unexpected result for key {i}").into());
                }
                Ok(())
            })?;
            m.user_bytes = setup;
            m.live_keys = s.num;
            m
        }
        "readseq" => {
            let setup = fill(db.as_ref(), s, 7)?;
            let start = Instant::now();
            let n = db.scan_all()? as u64;
            if n != s.num {
                return Err(format!("readseq saw {n} keys, expected {}", s.num).into());
            }
            Measured {
                ops: n,
                seconds: start.elapsed().as_secs_f64(),
                latencies_ns: Vec::new(),
                user_bytes: setup,
                live_keys: s.num,
            }
        }
        "seekrandom" => {
            let setup = fill(db.as_ref(), s, 7)?;
            let seeks = (s.num / 100).max(1);
            let mut m = timed(seeks, |_| {
                let start = key(rng.next_u64() % s.num, s.key_bytes);
                db.seek_next(&start, 100).map(|_| ())
            })?;
            m.user_bytes = setup;
            m.live_keys = s.num;
            m
        }
        "deleterandom" | "readrandom-after-delete" => {
            let setup = fill(db.as_ref(), s, 7)?;
            let order = shuffled(s.num, 13);
            let half = s.num / 2;
            let deletes = |db: &Arc<dyn Engine>| -> Result<Measured, BoxError> {
                timed(half, |i| db.delete(&key(order[i as usize], s.key_bytes)))
            };
            let mut m = if name == "deleterandom" {
                deletes(db)?
            } else {
                deletes(db)?;
                let reads = shuffled(s.num, 17);
                timed(s.num, |i| {
                    db.get(&key(reads[i as usize], s.key_bytes)).map(|_| ())
                })?
            };
            m.user_bytes = setup + half * s.key_bytes as u64;
            m.live_keys = s.num - half;
            m
        }
        "readwhilewriting" => {
            let setup = fill(db.as_ref(), s, 7)?;
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (db, stop) = (db.clone(), stop.clone());
                std::thread::spawn(move || -> Result<u64, BoxError> {
                    let mut rng = Rng::new(99);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && n < 10 * s.num {
                        db.put(
                            &key(rng.next_u64() % s.num, s.key_bytes),
                            &value(&mut rng, s.value_bytes),
                        )?;
                        n += 1;
                    }
                    Ok(n)
                })
            };
            let order = shuffled(s.num, 19);
            let m = timed(s.num, |i| {
                db.get(&key(order[i as usize], s.key_bytes)).map(|_| ())
            });
            stop.store(true, Ordering::Relaxed);
            let written = writer.join().map_err(|_| "writer thread panicked")??;
            let mut m = m?;
            m.user_bytes = setup + written * kv;
            m.live_keys = s.num;
            m
        }
        "fillsync8" => {
            // fsync per write: far fewer operations, shared by 8 threads (group commit).
            let total = (s.num / 50).max(8);
            let per_thread = total / 8;
            let start = Instant::now();
            let handles: Vec<_> = (0..8u64)
                .map(|t| {
                    let db = db.clone();
                    std::thread::spawn(move || -> Result<Vec<u64>, BoxError> {
                        let mut rng = Rng::new(1000 + t);
                        let mut lat = Vec::with_capacity(per_thread as usize);
                        for i in 0..per_thread {
                            let v = value(&mut rng, s.value_bytes);
                            let tm = Instant::now();
                            db.put(&key(t * per_thread + i, s.key_bytes), &v)?;
                            lat.push(tm.elapsed().as_nanos() as u64);
                        }
                        Ok(lat)
                    })
                })
                .collect();
            let mut lat = Vec::new();
            for h in handles {
                lat.extend(h.join().map_err(|_| "writer thread panicked")??);
            }
            Measured {
                ops: per_thread * 8,
                seconds: start.elapsed().as_secs_f64(),
                latencies_ns: lat,
                user_bytes: per_thread * 8 * kv,
                live_keys: per_thread * 8,
            }
        }
        other => return Err(format!("unknown workload {other}").into()),
    };
    Ok(m)
}

/// Whether the workload needs fsync per write.
pub fn wants_sync(name: &str) -> bool {
    name == "fillsync8"
}
