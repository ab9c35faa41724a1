//! The Redis serialization protocol: request parsing ([`parse_request`]) and reply
//! encoding ([`Reply`]), for RESP2 and RESP3. See `docs/protocol.md`.

mod reply;
mod request;

pub use reply::{Protocol, Reply};
pub use request::{parse_request, ParseLimits, ProtocolError, Request, MAX_BULK_BYTES};
