//! A quick single-threaded measurement: N random puts (16-byte keys, 100-byte values,
//! default options: WAL written per write, no fsync), then N random gets of existing keys,
//! N gets of missing keys, and a full scan after a flush. Not the benchmark harness (that lives in `benches/`); a
//! smoke number for development.
//!
//! `cargo run --release -p lsm-core --example quick_bench -- [N] [DIR]`

use std::time::Instant;

fn key(i: u64) -> [u8; 16] {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn main() -> lsm_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("lsm-quick-bench-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let db = lsm_core::Db::open(&dir, lsm_core::Options::default())?;
    let mut order: Vec<u64> = (0..n).collect();
    // Fisher-Yates with xorshift: random order, reproducible.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut value = [0u8; 100];
    let t = Instant::now();
    for &i in &order {
        value[..8].copy_from_slice(&i.to_le_bytes());
        db.put(key(i), value)?;
    }
    let put_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for &i in order.iter().rev() {
        let v = db.get(key(i))?.expect("key written");
        assert_eq!(&v[..8], &i.to_le_bytes());
    }
    let get_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in n..2 * n {
        assert!(db.get(key(i))?.is_none());
    }
    let miss_s = t.elapsed().as_secs_f64();
    // The scan reads tables, as after a restart.
    db.flush()?;
    let t = Instant::now();
    let mut scanned = 0u64;
    for item in db.iter() {
        let (k, v) = item?;
        scanned += (k.len() + v.len()) as u64 / 116;
    }
    assert_eq!(scanned, n);
    let scan_s = t.elapsed().as_secs_f64();
    let s = db.stats();
    println!("{n} random puts:  {:>9.0} ops/s", n as f64 / put_s);
    println!("{n} random gets:  {:>9.0} ops/s", n as f64 / get_s);
    println!("{n} missing gets: {:>9.0} ops/s", n as f64 / miss_s);
    println!("full scan:        {:>9.0} entries/s", n as f64 / scan_s);
    println!(
        "flushes {}, compactions {}, trivial moves {}, stalls {}, files per level {:?}",
        s.flushes,
        s.compactions,
        s.trivial_moves,
        s.write_stalls,
        s.levels.iter().map(|l| l.files).collect::<Vec<_>>()
    );
    db.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
