//! Where a node's engine lives, and the handle every connection reads it through.
//!
//! The engine's files are in the data directory itself, until a cluster node is rebuilt
//! from a leader's checkpoint: the copy goes to `engine-<n>/`, and the file `ENGINE`
//! (written atomically, so a crash leaves either the old or the new engine in force)
//! names it, with the log point the copy corresponds to (`engine-<n> <index> <epoch>
//! <sequence>`). Files of an engine no longer named are removed at the next start.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use arc_swap::ArcSwap;
use lsm_core::Db;

use crate::error::ServerError;
use crate::replication::Point;

/// The file naming the engine directory in force.
pub const ENGINE_FILE: &str = "ENGINE";

/// The engine in force, replaceable while the server runs (a follower rebuilt from a
/// checkpoint). Requests read it through [`EngineSlot::with`] (no shared counter is
/// touched) or clone the handle; a request that still holds the replaced engine gets
/// `database is closed` errors.
#[derive(Debug)]
pub struct EngineSlot {
    db: ArcSwap<Db>,
}

impl EngineSlot {
    pub fn new(db: Db) -> EngineSlot {
        EngineSlot {
            db: ArcSwap::from_pointee(db),
        }
    }

    /// The engine in force.
    pub fn get(&self) -> Db {
        Db::clone(&self.db.load())
    }

    /// Runs `f` on the engine in force without cloning its handle.
    pub fn with<T>(&self, f: impl FnOnce(&Db) -> T) -> T {
        f(&self.db.load())
    }

    /// Puts `db` in force and returns the engine it replaces (still open).
    pub fn replace(&self, db: Db) -> Db {
        Db::clone(&self.db.swap(Arc::new(db)))
    }
}

/// The engine named by `ENGINE` in `data_dir`, if any: its directory and the log point
/// its copy was made at.
///
/// # Errors
/// The file cannot be read or does not parse.
pub fn pointer(data_dir: &Path) -> Result<Option<(PathBuf, Point)>, ServerError> {
    let path = data_dir.join(ENGINE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ServerError::io(format!("reading {}", path.display()), e)),
    };
    let bad = || {
        ServerError::Replication(format!(
            "{} does not hold `engine-<n> <index> <epoch> <sequence>`",
            path.display()
        ))
    };
    let mut words = text.split_whitespace();
    let name = words
        .next()
        .filter(|n| n.starts_with("engine-"))
        .ok_or_else(bad)?;
    let mut num = || -> Result<u64, ServerError> {
        words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)
    };
    let point = Point {
        index: num()?,
        epoch: num()?,
        seq: num()?,
    };
    Ok(Some((data_dir.join(name), point)))
}

/// The directory of the engine in force.
///
/// # Errors
/// As [`pointer`].
pub fn engine_dir(data_dir: &Path) -> Result<PathBuf, ServerError> {
    Ok(pointer(data_dir)?.map_or_else(|| data_dir.to_owned(), |(dir, _)| dir))
}

/// A directory name for the next engine copy, `engine-<n>`, not in use.
pub fn next_engine_dir(data_dir: &Path) -> Result<PathBuf, ServerError> {
    let current = pointer(data_dir)?
        .and_then(|(d, _)| {
            d.file_name()?
                .to_str()?
                .strip_prefix("engine-")?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    Ok(data_dir.join(format!("engine-{}", current + 1)))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Puts the engine copy in `dir` (complete and durable) in force, made at `point`.
///
/// # Errors
/// Writing the pointer failed; the previous engine is then still in force.
pub fn write_pointer(data_dir: &Path, dir: &Path, point: Point) -> Result<(), ServerError> {
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        ServerError::Replication(format!("bad engine directory {}", dir.display()))
    })?;
    let path = data_dir.join(ENGINE_FILE);
    let tmp = data_dir.join(format!("{ENGINE_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{name} {} {} {}", point.index, point.epoch, point.seq)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(data_dir)
    };
    write().map_err(|e| ServerError::io(format!("writing {}", path.display()), e))
}

/// Whether `name` is a file the engine keeps in its directory.
fn is_engine_file(name: &str) -> bool {
    name.ends_with(".wal")
        || name.ends_with(".sst")
        || name == "MANIFEST"
        || name == "MANIFEST.tmp"
        || name == "LOCK"
}

/// Removes engines that are no longer in force: engine files in the data directory
/// itself once `ENGINE` names a copy, and `engine-<n>` directories it does not name
/// (including a copy whose download never finished).
///
/// # Errors
/// Listing or removing failed.
pub fn remove_stale_engines(data_dir: &Path) -> Result<(), ServerError> {
    if !data_dir.exists() {
        // A fresh data directory: the engine creates it.
        return Ok(());
    }
    let Some((current, _)) = pointer(data_dir)? else {
        // No copy in force: only unfinished downloads can be stale.
        return remove_dirs(data_dir, None);
    };
    let io = |what: String| move |e| ServerError::io(what, e);
    for item in
        std::fs::read_dir(data_dir).map_err(io(format!("listing {}", data_dir.display())))?
    {
        let item = item.map_err(io(format!("listing {}", data_dir.display())))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if is_engine_file(&name) && item.path().is_file() {
            std::fs::remove_file(item.path())
                .map_err(io(format!("removing {}", item.path().display())))?;
        }
    }
    remove_dirs(data_dir, Some(&current))
}

fn remove_dirs(data_dir: &Path, keep: Option<&Path>) -> Result<(), ServerError> {
    let io = |what: String| move |e| ServerError::io(what, e);
    for item in
        std::fs::read_dir(data_dir).map_err(io(format!("listing {}", data_dir.display())))?
    {
        let item = item.map_err(io(format!("listing {}", data_dir.display())))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with("engine-")
            && Some(item.path().as_path()) != keep
            && item.path().is_dir()
        {
            std::fs::remove_dir_all(item.path())
                .map_err(io(format!("removing {}", item.path().display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_round_trip_and_stale_engines() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-yet");
        remove_stale_engines(&missing).unwrap();
        assert_eq!(engine_dir(&missing).unwrap(), missing);
        let d = dir.path();
        assert_eq!(engine_dir(d).unwrap(), d);
        std::fs::write(d.join("000001.sst"), b"old").unwrap();
        std::fs::write(d.join("NODE_ID"), b"n1").unwrap();
        std::fs::create_dir(d.join("engine-7")).unwrap(); // an unfinished download
        remove_stale_engines(d).unwrap();
        assert!(d.join("000001.sst").exists() && !d.join("engine-7").exists());
        let next = next_engine_dir(d).unwrap();
        assert_eq!(next, d.join("engine-1"));
        std::fs::create_dir(&next).unwrap();
        let p = Point {
            index: 5,
            epoch: 2,
            seq: 40,
        };
        write_pointer(d, &next, p).unwrap();
        assert_eq!(pointer(d).unwrap(), Some((next.clone(), p)));
        assert_eq!(next_engine_dir(d).unwrap(), d.join("engine-2"));
        remove_stale_engines(d).unwrap();
        assert!(!d.join("000001.sst").exists());
        assert!(d.join("NODE_ID").exists() && next.exists());
        std::fs::write(d.join(ENGINE_FILE), b"nonsense").unwrap();
        assert!(pointer(d).is_err());
    }
}
