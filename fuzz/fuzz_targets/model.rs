//! Fuzz target: arbitrary operation sequences on a `Db` checked against a `BTreeMap`;
//! a divergence or an engine error is a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = lsm_core::fuzzing::model(data) {
        panic!("lsm-core diverged from the model: {e}");
    }
});
