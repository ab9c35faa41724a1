//! `lsm-server`: a Redis-protocol (RESP2/RESP3) TCP server over `lsm-core`.
//!
//! Not built yet: this crate is a workspace member so that the layering of
//! `docs/architecture.md` is fixed from the start. Its work is tracked by the server issue.
