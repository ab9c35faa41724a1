//! Framing of replies read from another server (a follower relays the leader's replies
//! byte for byte) and encoding of requests sent to it.
//!
//! [`reply_frame_len`] finds where one complete RESP2/RESP3 reply ends without building
//! it: it counts the frames still owed by the aggregates seen so far, so nesting costs no
//! recursion and any input, however hostile, is answered with a length, "incomplete", or
//! an error.

use bytes::{BufMut, BytesMut};

use crate::protocol::Request;

/// Largest bulk string accepted in a reply (values are at most 256 MiB).
pub const MAX_REPLY_BULK: i64 = 1 << 30;
/// Largest element count accepted for one aggregate.
pub const MAX_REPLY_ELEMENTS: i64 = 1 << 32;

/// Encodes `req` as a RESP multibulk request.
pub fn encode_request(req: &Request, out: &mut BytesMut) {
    out.put_u8(b'*');
    out.put_slice(req.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for arg in req {
        out.reserve(arg.len() + 16);
        out.put_u8(b'$');
        out.put_slice(arg.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

fn parse_len(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("bad length `{}`", String::from_utf8_lossy(line)))
}

/// The byte length of the complete reply at the start of `buf`; `Ok(None)` when more
/// bytes are needed.
///
/// # Errors
/// Bytes that are not a RESP2/RESP3 reply.
pub fn reply_frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut pos = 0usize;
    let mut owed: i64 = 1;
    while owed > 0 {
        let Some(nl) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line_end = pos + nl;
        if line_end == pos {
            return Err("empty reply line".into());
        }
        let kind = buf[pos];
        let line = &buf[pos + 1..line_end];
        pos = line_end + 2;
        owed -= 1;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'!' | b'=' => {
                let n = parse_len(line)?;
                if n == -1 && kind == b'$' {
                    continue;
                }
                if !(0..=MAX_REPLY_BULK).contains(&n) {
                    return Err(format!("bulk length {n} out of range"));
                }
                let end = pos + n as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err("bulk string not terminated by CRLF".into());
                }
                pos = end + 2;
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_len(line)?;
                if n == -1 && kind == b'*' {
                    continue;
                }
                if !(0..=MAX_REPLY_ELEMENTS).contains(&n) {
                    return Err(format!("aggregate length {n} out of range"));
                }
                owed += match kind {
                    b'%' => 2 * n,
                    // Attributes precede the value they describe.
                    b'|' => 2 * n + 1,
                    _ => n,
                };
            }
            other => return Err(format!("unknown reply type byte 0x{other:02x}")),
        }
    }
    Ok(Some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Protocol, Reply};
    use bytes::Bytes;

    fn enc(r: &Reply, p: Protocol) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.encode(p, &mut b);
        b.to_vec()
    }

    #[test]
    fn every_reply_we_encode_frames_exactly_and_prefixes_are_incomplete() {
        let replies = [
            Reply::ok(),
            Reply::err("ERR x"),
            Reply::Int(-7),
            Reply::bulk(Bytes::from_static(b"a\r\nb")),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![]),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Array(vec![Reply::Nil, Reply::text("x")]),
            ]),
            Reply::Map(vec![(Reply::text("k"), Reply::Set(vec![Reply::Int(2)]))]),
            Reply::Verbatim("hello".into()),
        ];
        for p in [Protocol::Resp2, Protocol::Resp3] {
            for r in &replies {
                let bytes = enc(r, p);
                assert_eq!(reply_frame_len(&bytes), Ok(Some(bytes.len())), "{r:?}");
                for cut in 0..bytes.len() {
                    assert_eq!(
                        reply_frame_len(&bytes[..cut]),
                        Ok(None),
                        "{r:?} cut at {cut}"
                    );
                }
                let mut two = bytes.clone();
                two.extend_from_slice(b"+next\r\n");
                assert_eq!(reply_frame_len(&two), Ok(Some(bytes.len())));
            }
        }
        assert_eq!(reply_frame_len(b"|1\r\n+a\r\n:1\r\n+v\r\n"), Ok(Some(16)));
        assert_eq!(reply_frame_len(b",1.5\r\n#t\r\n"), Ok(Some(6)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"?\r\n"[..],
            b"\r\n",
            b"$abc\r\n",
            b"$-2\r\n",
            b"$99999999999\r\n",
            b"*-5\r\n",
            b"$1\r\nab\r\n",
            b"%-1\r\n",
        ] {
            assert!(reply_frame_len(bad).is_err(), "{bad:?}");
        }
        // Deep nesting is counted, not recursed.
        let deep = b"*1\r\n".repeat(100_000);
        assert_eq!(reply_frame_len(&deep), Ok(None));
    }

    #[test]
    fn requests_round_trip_through_the_parser() {
        let req: Request = vec![
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"k\r\n"),
            Bytes::new(),
        ];
        let mut out = BytesMut::new();
        encode_request(&req, &mut out);
        let parsed = crate::protocol::parse_request(
            &mut out,
            crate::protocol::ParseLimits {
                authenticated: true,
            },
        );
        assert_eq!(parsed, Ok(Some(req)));
    }
}
