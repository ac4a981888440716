//! `albedo-worker`: the process that runs Albedo's trials and jobs (binary `albedo-worker`).
//!
//! What it is: a client of the server's worker WebSocket (`albedo_shared::protocol`). It
//! announces its devices and slots in a hello, sends heartbeats, and reconnects with
//! exponential backoff when the server goes away. A bad token or an incompatible protocol
//! version ends it with an error instead, since retrying cannot fix those.
//!
//! What it is not (yet): trial runners. The synthetic and command trials arrive with the
//! experiment engine, the burn EO trainer with its own issue; until then a worker is
//! connected and idle, and the server's worker list shows it.
//!
//! Layout: [`devices`] (what this host offers), [`client`] (connection, heartbeats,
//! reconnects), [`WorkerError`].

pub mod client;
pub mod devices;

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
