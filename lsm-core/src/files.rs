//! Names of the files in a database directory.
//!
//! | name            | what                                          |
//! |-----------------|-----------------------------------------------|
//! | `NNNNNN.wal`    | WAL segment `N`                               |
//! | `NNNNNN.sst`    | table `N` (tables and segments share numbers) |
//! | `MANIFEST`      | the live set of tables                        |
//! | `MANIFEST.tmp`  | a manifest being written (removed at open)    |
//! | `LOCK`          | the advisory lock held by the open database   |

pub(crate) use crate::compaction::exec::table_file_name;

pub(crate) const LOCK_FILE: &str = "LOCK";

/// What a file in the directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Wal(u64),
    Table(u64),
    Temp,
    Other,
}

pub(crate) fn wal_file_name(number: u64) -> String {
    format!("{number:06}.wal")
}

pub(crate) fn classify(name: &str) -> FileKind {
    let number = |stem: &str| -> Option<u64> {
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        stem.parse().ok()
    };
    if let Some(n) = name.strip_suffix(".wal").and_then(number) {
        FileKind::Wal(n)
    } else if let Some(n) = name.strip_suffix(".sst").and_then(number) {
        FileKind::Table(n)
    } else if name.ends_with(".tmp") {
        FileKind::Temp
    } else {
        FileKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(classify(&wal_file_name(7)), FileKind::Wal(7));
        assert_eq!(
            classify(&table_file_name(1234567)),
            FileKind::Table(1234567)
        );
        assert_eq!(classify("MANIFEST.tmp"), FileKind::Temp);
        assert_eq!(classify("x.sst"), FileKind::Other);
        assert_eq!(classify("LOCK"), FileKind::Other);
    }
}
