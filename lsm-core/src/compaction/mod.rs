//! Leveled compaction: [`picker`] decides (a pure function of a version and the options),
//! [`exec`] merges input tables into new ones. Installing the result is the job of
//! [`crate::db`], where the version switch is the only step shared with readers.

pub(crate) mod exec;
pub(crate) mod picker;
