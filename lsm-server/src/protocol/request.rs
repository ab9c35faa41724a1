//! Incremental request parsing: multibulk (`*N\r\n$len\r\n...`) and inline commands
//! (`PING\r\n`, as sent by telnet and `redis-benchmark -t ping`).
//!
//! Invariants: the parser never consumes a partial request (it returns `Ok(None)` and is
//! called again when more bytes arrived); it never allocates more than the bytes it has
//! seen plus one declared argument; every limit is checked before reading past it. The
//! error texts are Redis 7.0's, sent as `-ERR Protocol error: ...` before closing.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline request or header line without a newline (Redis: 64 KiB).
pub const MAX_INLINE_BYTES: usize = 64 * 1024;
/// Largest bulk string (Redis `proto-max-bulk-len`: 512 MiB).
pub const MAX_BULK_BYTES: usize = 512 * 1024 * 1024;
/// Most arguments in one request.
pub const MAX_MULTIBULK_ARGS: usize = 1024 * 1024;
/// Before authentication: most arguments and largest bulk (as Redis).
pub const UNAUTHENTICATED_MAX_ARGS: usize = 10;
pub const UNAUTHENTICATED_MAX_BULK_BYTES: usize = 16 * 1024;

/// Limits in force for the next request.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub authenticated: bool,
}

/// One parsed request: its arguments (the first is the command name).
pub type Request = Vec<Bytes>;

/// A malformed request; the connection is closed after the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn perr(s: impl Into<String>) -> ProtocolError {
    ProtocolError(s.into())
}

/// Finds `\r\n` starting at `from`; returns the index of `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\r') {
        let at = i + off;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => i = at + 1,
            None => return None,
        }
    }
    None
}

fn parse_int(line: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(line).ok()?;
    if s.is_empty() || s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Parses one request from the front of `buf`, removing it. `Ok(None)`: need more bytes.
/// Empty requests (`*0`, blank inline lines) are skipped.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: ParseLimits,
) -> Result<Option<Request>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let req = if first == b'*' {
            match parse_multibulk(buf, limits)? {
                // Arguments are slices of the received bytes: no copy, one shared
                // buffer (the engine copies what it keeps).
                Some((ranges, used)) => {
                    let chunk = buf.split_to(used).freeze();
                    ranges.into_iter().map(|r| chunk.slice(r)).collect()
                }
                None => return Ok(None),
            }
        } else {
            match parse_inline(buf)? {
                Some((req, used)) => {
                    buf.advance(used);
                    req
                }
                None => return Ok(None),
            }
        };
        if !req.is_empty() {
            return Ok(Some(req));
        }
    }
}

/// Where each argument of a request lies in the input buffer.
type ArgRanges = Vec<std::ops::Range<usize>>;

/// The argument ranges of one multibulk request at the front of `buf`, and its length.
fn parse_multibulk(
    buf: &BytesMut,
    limits: ParseLimits,
) -> Result<Option<(ArgRanges, usize)>, ProtocolError> {
    let Some(end) = find_crlf(buf, 0) else {
        if buf.len() > MAX_INLINE_BYTES {
            return Err(perr("too big mbulk count string"));
        }
        return Ok(None);
    };
    let count = match parse_int(&buf[1..end]) {
        Some(n) if n <= MAX_MULTIBULK_ARGS as i64 => n,
        _ => return Err(perr("invalid multibulk length")),
    };
    if !limits.authenticated && count > UNAUTHENTICATED_MAX_ARGS as i64 {
        return Err(perr("unauthenticated multibulk length"));
    }
    let mut pos = end + 2;
    if count <= 0 {
        return Ok(Some((Vec::new(), pos)));
    }
    // Ranges first: nothing is copied until the whole request is here.
    let mut ranges = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        let Some(&b) = buf.get(pos) else {
            return Ok(None);
        };
        if b != b'$' {
            return Err(perr(format!("expected '$', got '{}'", b as char)));
        }
        let Some(end) = find_crlf(buf, pos) else {
            if buf.len() - pos > MAX_INLINE_BYTES {
                return Err(perr("too big bulk count string"));
            }
            return Ok(None);
        };
        let len = match parse_int(&buf[pos + 1..end]) {
            Some(n) if (0..=MAX_BULK_BYTES as i64).contains(&n) => n as usize,
            _ => return Err(perr("invalid bulk length")),
        };
        if !limits.authenticated && len > UNAUTHENTICATED_MAX_BULK_BYTES {
            return Err(perr("unauthenticated bulk length"));
        }
        let start = end + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(perr("expected CRLF after bulk string"));
        }
        ranges.push(start..start + len);
        pos = start + len + 2;
    }
    Ok(Some((ranges, pos)))
}

fn parse_inline(buf: &BytesMut) -> Result<Option<(Request, usize)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE_BYTES {
            return Err(perr("too big inline request"));
        }
        return Ok(None);
    };
    if nl > MAX_INLINE_BYTES {
        return Err(perr("too big inline request"));
    }
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let args = split_args(line).ok_or_else(|| perr("unbalanced quotes in request"))?;
    Ok(Some((args.into_iter().map(Bytes::from).collect(), nl + 1)))
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace separates
/// arguments; "double quotes" support `\n \r \t \b \a \\ \" \xHH` escapes; 'single
/// quotes' support `\'`. A closing quote must be followed by a space or the end.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let hex = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                    cur.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    in_dq = false;
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    in_sq = false;
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        debug_assert!(!in_dq && !in_sq);
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHED: ParseLimits = ParseLimits {
        authenticated: true,
    };

    fn parse_all(input: &[u8]) -> Result<Vec<Request>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = parse_request(&mut buf, AUTHED)? {
            out.push(r);
        }
        Ok(out)
    }

    fn strs(r: &Request) -> Vec<&[u8]> {
        r.iter().map(|b| &b[..]).collect()
    }

    #[test]
    fn multibulk_and_inline() {
        let reqs =
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n  set a  \"b c\"\r\n*0\r\n\r\n")
                .unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(strs(&reqs[0]), [&b"GET"[..], b"k"]);
        assert_eq!(strs(&reqs[1]), [&b"PING"[..]]);
        assert_eq!(strs(&reqs[2]), [&b"set"[..], b"a", b"b c"]);
    }

    #[test]
    fn binary_safe_bulk() {
        let reqs = parse_all(b"*2\r\n$3\r\nSET\r\n$4\r\n\r\n\x00\xff\r\n").unwrap();
        assert_eq!(strs(&reqs[0])[1], b"\r\n\x00\xff");
    }

    #[test]
    fn every_split_point_waits_for_more() {
        let input = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n";
        for cut in 0..input.len() {
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(parse_request(&mut buf, AUTHED).unwrap(), None, "cut {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
            buf.extend_from_slice(&input[cut..]);
            let r = parse_request(&mut buf, AUTHED).unwrap().unwrap();
            assert_eq!(strs(&r), [&b"SET"[..], b"hello", b"world"]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn protocol_errors_use_redis_words() {
        let err = |input: &[u8]| parse_all(input).unwrap_err().to_string();
        assert_eq!(err(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*2000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(err(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            err(b"*1\r\n$536870913\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            err(b"*1\r\n+OK\r\n"),
            "Protocol error: expected '$', got '+'"
        );
        assert_eq!(
            err(b"SET \"a\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err(&vec![b'a'; MAX_INLINE_BYTES + 1]),
            "Protocol error: too big inline request"
        );
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        let e = parse_request(
            &mut buf,
            ParseLimits {
                authenticated: false,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*1\r\n$20000\r\n"[..]);
        let e = parse_request(
            &mut buf,
            ParseLimits {
                authenticated: false,
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Protocol error: unauthenticated bulk length");
    }

    #[test]
    fn a_huge_declared_bulk_is_not_allocated_up_front() {
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
        assert_eq!(parse_request(&mut buf, AUTHED).unwrap(), None);
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn split_args_like_redis() {
        let s = |l: &str| {
            split_args(l.as_bytes()).map(|v| {
                v.into_iter()
                    .map(|a| String::from_utf8_lossy(&a).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(s("set k v").unwrap(), ["set", "k", "v"]);
        assert_eq!(
            s("set \"a\\x41\\n\" 'it\\'s'").unwrap(),
            ["set", "aA\n", "it's"]
        );
        assert_eq!(s("  ").unwrap(), Vec::<String>::new());
        assert!(s("\"abc\"def").is_none());
        assert!(s("'abc").is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 12345u64;
        for _ in 0..2000 {
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"*$\r\n0123456789-abc \"'"[(x % 21) as usize]
                })
                .collect();
            let _ = parse_all(&bytes);
        }
    }
}
