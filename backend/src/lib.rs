//! `albedo-backend`: the Albedo server (binary `albedo`).
//!
//! What it is: an axum + tokio server on one port that serves the browser app's static files,
//! the JSON API under `/api`, a STAC API under `/stac`, raster windows for the renderer and
//! the WebSocket that workers connect to; plus the commands that work on a data folder with
//! no server running (`albedo ingest`, `albedo token create`).
//!
//! What it is not: the binary (`main.rs` only parses arguments, sets up tracing and calls
//! [`run`]); no pixel decoding (that is `albedo-raster`); no search or stopping algorithms
//! (that is `albedo-tuning`: the engine feeds them and carries out their decisions).
//!
//! Layout:
//! - [`app`]: the router, shared state, [`run`].
//! - [`auth`]: the one layer that checks credentials (worker and user bearer tokens).
//! - [`catalog`]: `/api/products`, raster windows and zoom-level tiles (with an in-memory
//!   cache of overviews built on the fly).
//! - [`stac`]: the STAC API under `/stac`.
//! - [`search`]: STAC item search parameters, their validation and the geometry test.
//! - [`workers`]: the worker WebSocket and the registry of connected workers.
//! - [`engine`]: the experiment driver thread (leases, scheduling, early stopping, BSP
//!   rounds, resuming after a restart) and its tables.
//! - [`experiments`]: the experiments API and its live event stream (SSE).
//! - [`datasets`]: training datasets (built by worker jobs) and the jobs API.
//! - [`models`]: the model registry (a trial's model, named and versioned, with lineage).
//! - [`serving`]: online predictions of registered models and their input drift.
//! - [`classify`]: classify jobs of registered models over whole products, and the derived
//!   products (class rasters) they register.
//! - [`ingest`]: files and STAC documents to products, transactionally; `POST /api/ingest`.
//! - [`store`]: the embedded SQLite store.
//! - [`error`]: [`BackendError`] and its mapping to HTTP answers.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod classify;
pub mod datasets;
pub mod engine;
pub mod error;
pub mod experiments;
pub mod ingest;
pub mod models;
pub mod search;
pub mod serving;
pub mod stac;
pub mod store;
pub mod workers;

pub use app::{AppState, Config, router, run};
pub use error::BackendError;
