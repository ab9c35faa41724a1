//! Fuzz target: arbitrary bytes parsed, iterated and searched as an SSTable block.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lsm_core::fuzzing::block(data);
});
