//! `albedo-worker`: the process that runs Albedo's trials and jobs (binary `albedo-worker`).
//!
//! What it is: a client of the server's worker WebSocket (`albedo_shared::protocol`). It
//! announces its devices and slots in a hello, sends heartbeats, and reconnects with
//! exponential backoff when the server goes away. A bad token or an incompatible protocol
//! version ends it with an error instead, since retrying cannot fix those.
//!
//! It runs the trials the server leases to it, up to `--slots` at once: `synthetic` (the
//! scheduler benchmark's deterministic workload), `command` (any program) and `eo_cnn` (the
//! built-in trainer of `albedo-trainer`, behind the default `eo-cnn` feature; `--device
//! cpu|wgpu`); see [`trials`].
//!
//! What it is not: no decisions (the server's driver decides which trial runs where and
//! when to stop), no storage of its own beyond the models it saves (`--models-dir`).
//!
//! It also runs jobs (building a training dataset; classifying a product with a registered
//! model, see `classify`), which take a slot like a trial; see [`jobs`].
//!
//! Layout: [`devices`] (what this host offers), [`client`] (connection, heartbeats,
//! reconnects, the queue of trial reports), [`trials`] (runners and slots), [`jobs`],
//! [`WorkerError`].

#[cfg(feature = "eo-cnn")]
pub mod classify;
pub mod client;
pub mod devices;
pub mod jobs;
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
