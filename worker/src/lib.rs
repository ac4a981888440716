//! `albedo-worker`: the process that runs Albedo's trials and jobs (binary `albedo-worker`).
//!
//! What it is: a client of the server's worker WebSocket (`albedo_shared::protocol`). It
//! announces its devices and slots in a hello, sends heartbeats, and reconnects with
//! exponential backoff when the server goes away. A bad token or an incompatible protocol
//! version ends it with an error instead, since retrying cannot fix those.
//!
//! It runs the trials the server leases to it, up to `--slots` at once: `synthetic` (the
//! scheduler benchmark's deterministic workload) and `command` (any program); see [`trials`].
//!
//! What it is not (yet): the burn EO trainer (`eo-cnn`), which comes with its own issue.
//!
//! Layout: [`devices`] (what this host offers), [`client`] (connection, heartbeats,
//! reconnects, the queue of trial reports), [`trials`] (runners), [`WorkerError`].

pub mod client;
pub mod devices;
pub mod trials;

/// Errors that end a worker (as opposed to those it retries).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The server refused the token.
    #[error(
        "the server refused the worker token (HTTP {status}); create one with `albedo token create`"
    )]
    Unauthorized {
        /// HTTP status of the refusal.
        status: u16,
    },
    /// The server closed the session for a reason retrying cannot fix.
    #[error("the server ended the session: {0}")]
    Refused(String),
    /// The `--server` URL is not usable.
    #[error("bad server URL '{url}': {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
}
