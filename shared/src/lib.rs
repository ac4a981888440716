//! `albedo-shared`: the types that cross a process boundary in Albedo.
//!
//! What it is: plain serde data shared by the browser app (wasm32), the backend and the
//! workers, plus the pure encoders/decoders of the binary formats they exchange. Every type
//! here has one meaning on both sides of the wire.
//!
//! What it is not: no I/O, no async, no clock, no HTTP client or server. It builds for
//! `wasm32-unknown-unknown` and for native targets alike.
//!
//! Layout:
//! - [`catalog`]: products (a STAC item plus what Albedo knows of its local pixels), bands,
//!   list bodies.
//! - [`rasterwire`]: the compact binary array of band values the backend serves to the
//!   renderer (`application/x-albedo-raster`), with its documented header.
//! - [`protocol`]: the versioned worker <-> server WebSocket messages.
//! - [`experiment`]: experiment specs (search space, optimizer, early stopping, ablation),
//!   trial ids and trial states.
//! - [`events`]: live events of an experiment (what the SSE stream sends and the server
//!   stores).
//! - [`api`]: bodies of the JSON API that are not catalog types (errors, health, workers,
//!   experiments, trials, metric series).
//! - [`error`]: this crate's error enum.

pub mod api;
pub mod catalog;
pub mod error;
pub mod events;
pub mod experiment;
pub mod protocol;
pub mod rasterwire;

pub use error::SharedError;
