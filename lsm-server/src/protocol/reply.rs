//! Replies and their encoding. One [`Reply`] value encodes as RESP2 or RESP3 depending on
//! what the connection negotiated with `HELLO`: maps become flat arrays, nulls become
//! `$-1`/`*-1`, doubles become bulk strings in RESP2.

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// An error; the text starts with its code (`ERR`, `NOAUTH`, `WRONGPASS`, ...).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A missing array: `*-1` in RESP2, `_` in RESP3.
    NilArray,
    Array(Vec<Reply>),
    /// A map: `%` in RESP3, a flat array of alternating keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set: `~` in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// Verbatim text: `=len\r\ntxt:...` in RESP3, a bulk string in RESP2.
    Verbatim(String),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status("OK")
    }

    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn text(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => {
                // Error lines cannot hold newlines.
                let clean: String = e
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                line(out, b'-', clean.as_bytes());
            }
            Reply::Int(i) => line(out, b':', i.to_string().as_bytes()),
            Reply::Bulk(b) => bulk(out, b'$', b),
            Reply::Nil => match proto {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::NilArray => match proto {
                Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                let tag = if proto == Protocol::Resp3 { b'~' } else { b'*' };
                line(out, tag, items.len().to_string().as_bytes());
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp3 => line(out, b'%', pairs.len().to_string().as_bytes()),
                    Protocol::Resp2 => line(out, b'*', (2 * pairs.len()).to_string().as_bytes()),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Verbatim(text) => match proto {
                Protocol::Resp3 => {
                    let mut body = Vec::with_capacity(text.len() + 4);
                    body.extend_from_slice(b"txt:");
                    body.extend_from_slice(text.as_bytes());
                    bulk(out, b'=', &body);
                }
                Protocol::Resp2 => bulk(out, b'$', text.as_bytes()),
            },
        }
    }
}

fn line(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(tag);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, tag: u8, body: &[u8]) {
    line(out, tag, body.len().to_string().as_bytes());
    out.reserve(body.len() + 2);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.encode(p, &mut b);
        b.to_vec()
    }

    #[test]
    fn resp2_and_resp3_encodings() {
        use Protocol::*;
        assert_eq!(enc(&Reply::ok(), Resp2), b"+OK\r\n");
        assert_eq!(
            enc(&Reply::err("ERR bad\nthing"), Resp2),
            b"-ERR bad thing\r\n"
        );
        assert_eq!(enc(&Reply::Int(-3), Resp3), b":-3\r\n");
        assert_eq!(enc(&Reply::bulk(&b"hi"[..]), Resp2), b"$2\r\nhi\r\n");
        assert_eq!(enc(&Reply::Nil, Resp2), b"$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Resp3), b"_\r\n");
        assert_eq!(enc(&Reply::NilArray, Resp2), b"*-1\r\n");
        let map = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Verbatim("x".into()), Resp3), b"=5\r\ntxt:x\r\n");
        assert_eq!(enc(&Reply::Set(vec![]), Resp3), b"~0\r\n");
    }
}
