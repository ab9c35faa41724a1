//! The offline companion: `lsm-server verify DIR`, `lsm-server dump FILE`,
//! `lsm-server stats DIR`. They work on a data directory no server has open.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::error::ServerError;

/// Offline commands for operators.
#[derive(Debug, Clone, Subcommand)]
pub enum Tool {
    /// Verify every checksum of a data directory (fails if a server has it open).
    Verify { dir: PathBuf },
    /// Print a WAL segment (.wal), table (.sst) or MANIFEST in readable form.
    Dump { file: PathBuf },
    /// Sizes and counts per level of a data directory.
    Stats { dir: PathBuf },
}

/// Runs `tool`, writing its report to `out`.
///
/// # Errors
/// The engine's error (corruption with file and offset, a locked directory, I/O), or a
/// failure to write the report.
pub fn run(tool: &Tool, out: &mut dyn Write) -> Result<(), ServerError> {
    let io = |e: std::io::Error| ServerError::io("writing the report", e);
    match tool {
        Tool::Verify { dir } => {
            // A cluster node rebuilt from a checkpoint keeps its engine in the copy
            // `ENGINE` names.
            let r = lsm_core::inspect::verify(&crate::engine::engine_dir(dir)?)?;
            writeln!(
                out,
                "ok: {} tables ({} entries, {} bytes), {} WAL segments ({} batches) verified",
                r.tables, r.table_entries, r.table_bytes, r.wal_segments, r.wal_batches
            )
            .map_err(io)?;
            if let Some(t) = r.torn_wal_tail {
                writeln!(out, "note: torn WAL tail, ignored at recovery: {t}").map_err(io)?;
            }
        }
        Tool::Dump { file } => lsm_core::inspect::dump(file, out)?,
        Tool::Stats { dir } => {
            let s = lsm_core::inspect::dir_stats(&crate::engine::engine_dir(dir)?)?;
            writeln!(
                out,
                "{:<6}{:>8}{:>16}{:>14}{:>12}",
                "level", "tables", "bytes", "entries", "tombstones"
            )
            .map_err(io)?;
            for (i, (files, bytes, entries, tombstones)) in s.levels.iter().enumerate() {
                writeln!(
                    out,
                    "L{i:<5}{files:>8}{bytes:>16}{entries:>14}{tombstones:>12}"
                )
                .map_err(io)?;
            }
            writeln!(
                out,
                "WAL: {} segments, {} bytes; last sequence {}; directory {} bytes",
                s.wal_segments, s.wal_bytes, s.last_sequence, s.total_bytes
            )
            .map_err(io)?;
        }
    }
    Ok(())
}
