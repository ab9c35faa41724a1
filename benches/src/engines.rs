//! The engines under comparison, behind one small trait so every workload runs the same
//! code on each. Settings are chosen to be comparable (see `docs/benchmarks.md`): WAL on
//! and written to the OS on every write, no fsync unless the workload asks, compression
//! off, bloom filters on, 32 MiB block cache for the peers.

use std::path::Path;

/// Peer block cache, in bytes.
pub const PEER_CACHE_BYTES: u64 = 32 * 1024 * 1024;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a workload needs from an engine. Shared by threads.
pub trait Engine: Send + Sync {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError>;
    fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError>;
    fn delete(&self, key: &[u8]) -> Result<(), BoxError>;
    /// Reads up to `n` entries starting at `start`; returns how many.
    fn seek_next(&self, start: &[u8], n: usize) -> Result<usize, BoxError>;
    /// Reads every entry; returns how many.
    fn scan_all(&self) -> Result<usize, BoxError>;
    /// Orderly shutdown (syncs what the engine syncs at close).
    fn close(&self) -> Result<(), BoxError>;
}

/// What a read of entries looked at: every engine's scans hand each entry here, so each
/// pays for reaching the bytes of every key and value (the last byte of each is read), not
/// only for stepping.
#[derive(Debug, Default)]
pub struct Seen {
    pub count: usize,
    checksum: u64,
}

impl Seen {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.count += 1;
        let last = |s: &[u8]| s.last().copied().unwrap_or(0) as u64;
        self.checksum = self
            .checksum
            .wrapping_add((key.len() + value.len()) as u64 + last(key) + last(value));
    }

    /// The count; the checksum goes to `black_box` so the reads cannot be optimized away.
    pub fn finish(self) -> usize {
        std::hint::black_box(self.checksum);
        self.count
    }
}

/// Engine names accepted on the command line.
pub fn available() -> Vec<&'static str> {
    let mut v = vec!["lsm", "fjall"];
    if cfg!(feature = "rocksdb") {
        v.push("rocksdb");
    }
    v
}

/// Opens engine `name` in `dir`; `sync` asks for an fsync per write.
pub fn open(name: &str, dir: &Path, sync: bool) -> Result<Box<dyn Engine>, BoxError> {
    match name {
        "lsm" => Ok(Box::new(Lsm::open(dir, sync)?)),
        "fjall" => Ok(Box::new(Fjall::open(dir, sync)?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(Box::new(rocks::Rocks::open(dir, sync)?)),
        other => Err(format!("unknown engine {other}; available: {:?}", available()).into()),
    }
}

struct Lsm(lsm_core::Db);

impl Lsm {
    fn open(dir: &Path, sync: bool) -> Result<Self, BoxError> {
        let opts = lsm_core::Options {
            durability: if sync {
                lsm_core::Durability::Sync
            } else {
                lsm_core::Durability::Process
            },
            ..lsm_core::Options::default()
        };
        Ok(Lsm(lsm_core::Db::open(dir, opts)?))
    }
}

impl Engine for Lsm {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError> {
        Ok(self.0.put(key, value)?)
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError> {
        Ok(self.0.get(key)?.map(|v| v.len()))
    }
    fn delete(&self, key: &[u8]) -> Result<(), BoxError> {
        Ok(self.0.delete(key)?)
    }
    fn seek_next(&self, start: &[u8], n: usize) -> Result<usize, BoxError> {
        let mut it = self.0.range(start..);
        let mut seen = Seen::default();
        while seen.count < n {
            let Some(entry) = it.next_ref() else { break };
            let (k, v) = entry?;
            seen.add(k, v);
        }
        Ok(seen.finish())
    }
    fn scan_all(&self) -> Result<usize, BoxError> {
        let mut it = self.0.iter();
        let mut seen = Seen::default();
        while let Some(entry) = it.next_ref() {
            let (k, v) = entry?;
            seen.add(k, v);
        }
        Ok(seen.finish())
    }
    fn close(&self) -> Result<(), BoxError> {
        if std::env::var_os("DB_BENCH_LSM_STATS").is_some() {
            // Where the bytes went (WAL, flush, compaction), for write-amplification work.
            eprintln!("{:#?}", self.0.stats());
        }
        // Closing any handle closes the engine for all of them.
        Ok(self.0.clone().close()?)
    }
}

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
    sync: bool,
}

impl Fjall {
    fn open(dir: &Path, sync: bool) -> Result<Self, BoxError> {
        let db = fjall::Database::builder(dir)
            .cache_size(PEER_CACHE_BYTES)
            .open()?;
        let ks = db.keyspace("bench", fjall::KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, ks, sync })
    }

    fn persist(&self) -> Result<(), BoxError> {
        if self.sync {
            self.db.persist(fjall::PersistMode::SyncData)?;
        }
        Ok(())
    }
}

impl Engine for Fjall {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError> {
        self.ks.insert(key, value)?;
        self.persist()
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError> {
        Ok(self.ks.get(key)?.map(|v| v.len()))
    }
    fn delete(&self, key: &[u8]) -> Result<(), BoxError> {
        self.ks.remove(key)?;
        self.persist()
    }
    fn seek_next(&self, start: &[u8], n: usize) -> Result<usize, BoxError> {
        let mut seen = Seen::default();
        for item in self.ks.range(start..).take(n) {
            let (k, v) = item.into_inner()?;
            seen.add(&k, &v);
        }
        Ok(seen.finish())
    }
    fn scan_all(&self) -> Result<usize, BoxError> {
        let mut seen = Seen::default();
        for item in self.ks.iter() {
            let (k, v) = item.into_inner()?;
            seen.add(&k, &v);
        }
        Ok(seen.finish())
    }
    fn close(&self) -> Result<(), BoxError> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use super::{BoxError, Engine, Seen, PEER_CACHE_BYTES};
    use std::path::Path;

    pub struct Rocks {
        db: rocksdb::DB,
        write: rocksdb::WriteOptions,
    }

    impl Rocks {
        pub fn open(dir: &Path, sync: bool) -> Result<Self, BoxError> {
            let mut opts = rocksdb::Options::default();
            opts.create_if_missing(true);
            opts.set_compression_type(rocksdb::DBCompressionType::None);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&rocksdb::Cache::new_lru_cache(PEER_CACHE_BYTES as usize));
            table.set_bloom_filter(10.0, false);
            opts.set_block_based_table_factory(&table);
            let mut write = rocksdb::WriteOptions::default();
            write.set_sync(sync);
            Ok(Rocks {
                db: rocksdb::DB::open(&opts, dir)?,
                write,
            })
        }
    }

    impl Rocks {
        /// Reads up to `n` entries from the iterator's position, borrowing each (RocksDB's
        /// own db_bench reads iterators this way).
        fn walk(mut it: rocksdb::DBRawIterator<'_>, n: usize) -> Result<usize, BoxError> {
            let mut seen = Seen::default();
            while seen.count < n {
                let Some((k, v)) = it.item() else { break };
                seen.add(k, v);
                it.next();
            }
            it.status()?;
            Ok(seen.finish())
        }
    }

    impl Engine for Rocks {
        fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError> {
            Ok(self.db.put_opt(key, value, &self.write)?)
        }
        fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError> {
            Ok(self.db.get_pinned(key)?.map(|v| v.len()))
        }
        fn delete(&self, key: &[u8]) -> Result<(), BoxError> {
            Ok(self.db.delete_opt(key, &self.write)?)
        }
        fn seek_next(&self, start: &[u8], n: usize) -> Result<usize, BoxError> {
            let mut it = self.db.raw_iterator();
            it.seek(start);
            Self::walk(it, n)
        }
        fn scan_all(&self) -> Result<usize, BoxError> {
            let mut it = self.db.raw_iterator();
            it.seek_to_first();
            Self::walk(it, usize::MAX)
        }
        fn close(&self) -> Result<(), BoxError> {
            Ok(self.db.flush_wal(true)?)
        }
    }
}
