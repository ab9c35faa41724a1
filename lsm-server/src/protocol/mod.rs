//! The Redis serialization protocol: request parsing ([`parse_request`]) and reply
//! encoding ([`Reply`]), for RESP2 and RESP3. See `docs/protocol.md`.

mod frame;
mod reply;
mod request;

pub use frame::{encode_request, reply_frame_len};

pub use reply::{Protocol, Reply};
pub use request::{parse_request, ParseLimits, ProtocolError, Request, MAX_BULK_BYTES};
