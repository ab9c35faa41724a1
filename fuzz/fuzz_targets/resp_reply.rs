//! Fuzz target: arbitrary bytes framed as replies relayed from a leader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = lsm_server::fuzzing::replies(data) {
        panic!("{e}");
    }
});
