//! JSON API bodies that are not catalog types.

use serde::{Deserialize, Serialize};

use crate::protocol::Device;

/// Body of every 4xx/5xx answer of the JSON API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (`not_found`, `bad_request`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// Body of `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` when the store answers.
    pub status: String,
    /// Server version.
    pub version: String,
    /// Number of products in the catalog.
    pub products: u64,
    /// Number of connected workers.
    pub workers: u64,
}

/// One connected worker, as `GET /api/workers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Id the server gave this connection.
    pub worker_id: String,
    /// Name the worker gave itself (host name by default).
    pub name: String,
    /// Trial slots it offers.
    pub slots: u32,
    /// Compute devices it announced.
    pub devices: Vec<Device>,
    /// When it connected (RFC 3339, UTC).
    pub connected_at: String,
    /// Seconds since its last message.
    pub last_seen_secs_ago: f64,
}
