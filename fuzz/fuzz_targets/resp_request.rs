//! Fuzz target: arbitrary bytes as a client's request stream, parsed whole and in small
//! reads; the two must agree, and nothing may panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = lsm_server::fuzzing::requests(data) {
        panic!("{e}");
    }
});
