//! `albedo-frontend`: the Albedo workbench in the browser.
//!
//! What it is: a Leptos 0.8 client-side app (built by Trunk, or by cargo + wasm-bindgen) that
//! lists the catalog from `/api/products` and shows a product's bands through
//! `albedo-render` (WebGPU, or WebGL2 where the browser offers no WebGPU adapter). It logs
//! through `tracing` to the browser console.
//!
//! What it is not: no server code and no rendering code of its own. It speaks the backend's
//! API with the types of `albedo-shared` and hands `f32` bands to `albedo-render`.
//!
//! Layout:
//! - [`app`]: the page (header, product list, viewer) and the default selection.
//! - [`catalog`]: the product list.
//! - [`viewer`]: presets, the `<canvas id="render">`, auto-stretch and the canvas' `data-*`
//!   hooks for browser tests.
//! - [`presets`]: pure choices (presets, default product, fetch step).
//! - [`api`]: `fetch` calls and decoding of JSON and raster answers.
//! - [`logging`]: `tracing` to the console.
//! - [`error`]: the crate's error type.

pub mod api;
pub mod app;
pub mod catalog;
pub mod error;
pub mod logging;
pub mod presets;
pub mod viewer;

/// Starts the app: panic hook, console logging, then mounts [`app::App`] on `<body>`.
pub fn start() {
    console_error_panic_hook::set_once();
    logging::init();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "Albedo starting");
    leptos::mount::mount_to_body(app::App);
}
