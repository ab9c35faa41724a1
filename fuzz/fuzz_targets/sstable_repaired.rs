//! Fuzz target: arbitrary bytes as an SSTable with every checksum recomputed first, so
//! mutations reach the structure decoders instead of failing a checksum.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lsm_core::fuzzing::sstable_repaired(data);
});
