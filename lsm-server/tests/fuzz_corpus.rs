//! The RESP fuzz targets' committed seeds and regression inputs, replayed through the
//! entry functions the fuzzers call (see lsm-core's `fuzz_corpus` test for the engine's
//! targets). `write_seed_corpora` (ignored; run it by name) regenerates the seeds.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use lsm_server::fuzzing;
use lsm_server::protocol::{encode_request, Protocol, Reply};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

type Entry = fn(&[u8]) -> Result<usize, String>;
const TARGETS: &[(&str, Entry)] = &[
    ("resp_request", fuzzing::requests),
    ("resp_reply", fuzzing::replies),
];

#[test]
fn committed_corpora_and_regressions_replay_cleanly() {
    for (target, entry) in TARGETS {
        let seeds = lsm_testkit::seed_inputs(&fuzz_dir(), target);
        for (path, bytes) in &seeds {
            match entry(bytes) {
                Ok(n) => assert!(n > 0, "{target}: seed {} yields nothing", path.display()),
                Err(e) => panic!("{target}: {}: {e}", path.display()),
            }
        }
        for (path, bytes) in
            lsm_testkit::corpus_inputs(&fuzz_dir().join("regressions").join(target))
        {
            if let Err(e) = entry(&bytes) {
                panic!("{target}: regression {}: {e}", path.display());
            }
        }
    }
}

fn req(args: &[&[u8]]) -> Vec<bytes::Bytes> {
    args.iter()
        .map(|a| bytes::Bytes::copy_from_slice(a))
        .collect()
}

#[test]
#[ignore = "regenerates fuzz/corpus/resp_*/seed-*; run by name"]
fn write_seed_corpora() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    // Request streams: the first byte is the target's control byte (bit 0: authenticated;
    // the rest: the size of the simulated reads).
    let mut pipeline = BytesMut::new();
    for r in [
        req(&[b"HELLO", b"3"]),
        req(&[b"SET", b"key", b"value"]),
        req(&[b"GET", b"key"]),
        req(&[b"MSET", b"a", b"1", b"b", b"\x00\xff\r\n"]),
        req(&[b"MULTI"]),
        req(&[b"DEL", b"a"]),
        req(&[b"EXEC"]),
    ] {
        encode_request(&r, &mut pipeline);
    }
    let mut stream = vec![0b0000_1011];
    stream.extend_from_slice(&pipeline);
    write("resp_request", "pipeline", &stream);
    write(
        "resp_request",
        "inline",
        b"\x06PING\r\nSET k v\r\nECHO \"a b\"\r\n",
    );
    write(
        "resp_request",
        "unauthenticated",
        b"\x00*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n",
    );
    // Replies as a leader sends them, in both protocols.
    let replies = [
        Reply::ok(),
        Reply::err("ERR x"),
        Reply::Int(42),
        Reply::bulk(bytes::Bytes::from_static(b"v\r\n")),
        Reply::Nil,
        Reply::NilArray,
        Reply::Array(vec![Reply::Int(1), Reply::Nil]),
        Reply::Map(vec![(Reply::text("proto"), Reply::Int(3))]),
        Reply::Set(vec![Reply::text("a")]),
        Reply::Verbatim("text".into()),
    ];
    for (p, name) in [(Protocol::Resp2, "resp2"), (Protocol::Resp3, "resp3")] {
        let mut out = BytesMut::new();
        for r in &replies {
            r.encode(p, &mut out);
        }
        write("resp_reply", name, &out);
    }
}
