//! Entry points for the fuzz targets in `fuzz/` and for the tests that replay their
//! corpora. They must never panic on any input; a returned `Err` is a bug the target
//! reports.

use bytes::BytesMut;

use crate::protocol::{parse_request, reply_frame_len, ParseLimits, Request};

fn parse_all(input: &[u8], chunk: usize, limits: ParseLimits) -> (Vec<Request>, Option<String>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parse_request(&mut buf, limits) {
                Ok(Some(req)) => out.push(req),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    (out, None)
}

/// Parses `data` (after a first control byte) as a client's request stream, once whole
/// and once split into small reads, as the server receives it. Both must give the same
/// requests and the same protocol error.
///
/// # Errors
/// The split parse disagreed with the whole parse.
pub fn requests(data: &[u8]) -> Result<usize, String> {
    let Some((&control, input)) = data.split_first() else {
        return Ok(0);
    };
    let limits = ParseLimits {
        authenticated: control & 1 == 1,
    };
    let whole = parse_all(input, input.len(), limits);
    let split = parse_all(input, usize::from(control >> 1) % 23 + 1, limits);
    if whole != split {
        return Err(format!(
            "whole parse gave {} requests / error {:?}, split parse {} / {:?}",
            whole.0.len(),
            whole.1,
            split.0.len(),
            split.1
        ));
    }
    Ok(whole.0.len())
}

/// Frames `data` as a stream of replies from a leader (what a follower relays).
///
/// # Errors
/// A frame length outside the input.
pub fn replies(data: &[u8]) -> Result<usize, String> {
    let mut pos = 0;
    let mut frames = 0;
    while pos < data.len() {
        match reply_frame_len(&data[pos..]) {
            Ok(Some(0)) => return Err("empty frame".into()),
            Ok(Some(n)) if pos + n <= data.len() => {
                pos += n;
                frames += 1;
            }
            Ok(Some(n)) => return Err(format!("frame of {n} bytes past the input")),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(frames)
}
