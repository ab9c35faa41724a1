//! `lsm-server`: a Redis-protocol (RESP2 and RESP3) TCP server over the `lsm-core`
//! engine. `redis-cli`, `redis-benchmark` and Redis client libraries work with it.
//!
//! [`server::Server`] opens the engine and binds; [`server::run`] is the accept loop
//! (tests bind `127.0.0.1:0`). Commands, replies and limits: `docs/protocol.md`;
//! configuration and metrics: `docs/operations.md`.

pub mod command;
pub mod committer;
pub mod config;
pub mod connection;
pub mod engine;
pub mod error;
pub mod forward;
pub mod fuzzing;
pub mod glob;
pub mod info;
pub mod metrics;
pub mod protocol;
pub mod replication;
pub mod server;
pub mod state;
pub mod stop;
pub mod tools;

pub use config::{Cli, Config};
pub use error::ServerError;
pub use server::Server;
