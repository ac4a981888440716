//! The worker <-> server protocol: JSON text frames over the WebSocket
//! `/api/workers/connect`, authenticated with `Authorization: Bearer <token>`.
//!
//! Both enums are tagged (`{"type": "hello", ...}`) and versioned by [`PROTOCOL_VERSION`]:
//! a server answers a hello of another version with [`ServerMsg::Shutdown`] and closes.
//! Trial assignment messages arrive with the experiment engine.

use serde::{Deserialize, Serialize};

/// Version of this protocol; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// A compute device a worker offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `cpu`, `cuda`, `wgpu`, ...
    pub kind: String,
    /// Human-readable name (CPU model, GPU name).
    pub name: String,
}

/// Messages a worker sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// First message after connecting.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// Name of the worker (host name by default).
        name: String,
        /// Number of trials it runs at once.
        slots: u32,
        /// Devices it can train on.
        devices: Vec<Device>,
    },
    /// Sent every `heartbeat_interval_secs` of the welcome.
    Heartbeat,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to a valid hello.
    Welcome {
        /// Id of this connection.
        worker_id: String,
        /// How often the worker must send a heartbeat.
        heartbeat_interval_secs: u32,
    },
    /// The server closes this connection; the worker should not reconnect before fixing what
    /// `reason` says (or, on a server shutdown, reconnect with backoff).
    Shutdown {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let hello = WorkerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            name: "w1".into(),
            slots: 2,
            devices: vec![Device {
                kind: "cpu".into(),
                name: "x86_64".into(),
            }],
        };
        let text = serde_json::to_string(&hello).unwrap();
        assert!(text.starts_with(r#"{"type":"hello""#), "{text}");
        assert_eq!(serde_json::from_str::<WorkerMsg>(&text).unwrap(), hello);
        let hb: WorkerMsg = serde_json::from_str(r#"{"type":"heartbeat"}"#).unwrap();
        assert_eq!(hb, WorkerMsg::Heartbeat);
        assert!(serde_json::from_str::<WorkerMsg>(r#"{"type":"launch_missiles"}"#).is_err());
    }
}
