//! Fuzz target: arbitrary bytes through `lsm_core::fuzzing::wal_segment`, which must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lsm_core::fuzzing::wal_segment(data);
});
