//! `albedo-backend`: the Albedo server (binary `albedo`).
//!
//! What it is: an axum + tokio server on one port that serves the browser app's static files,
//! the JSON API under `/api`, a STAC API under `/stac`, raster windows for the renderer and
//! the WebSocket that workers connect to; plus the commands that work on a data folder with
//! no server running (`albedo ingest`, `albedo token create`).
//!
//! What it is not: the binary (`main.rs` only parses arguments, sets up tracing and calls
//! [`run`]); no pixel decoding (that is `albedo-raster`); no experiment engine yet (its
//! issue adds the driver, scheduler and trial storage here).
//!
//! Layout:
//! - [`app`]: the router, shared state, [`run`].
//! - [`auth`]: the one layer that checks credentials (worker bearer tokens today).
//! - [`catalog`]: `/api/products` and raster windows.
//! - [`stac`]: the STAC API under `/stac`.
//! - [`search`]: STAC item search parameters, their validation and the geometry test.
//! - [`workers`]: the worker WebSocket and the registry of connected workers.
//! - [`ingest`]: files to products, transactionally.
//! - [`store`]: the embedded SQLite store.
//! - [`error`]: [`BackendError`] and its mapping to HTTP answers.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod ingest;
pub mod search;
pub mod stac;
pub mod store;
pub mod workers;

pub use app::{AppState, Config, router, run};
pub use error::BackendError;
