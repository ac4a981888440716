//! `albedo-frontend`: the Albedo workbench in the browser.
//!
//! What it is: a Leptos 0.8 client-side app (built by Trunk, or by cargo + wasm-bindgen) with
//! pages on hash routes ([`route`]): the catalog (`#/`: search through the STAC API with a
//! form and a world map, a product's bands through `albedo-render`, WebGPU or WebGL2 where the
//! browser offers no WebGPU adapter; `#/products/<id>?overlay=<id>` opens one product, with a
//! classified product's classes over it), the experiments (`#/experiments`: the list and
//! the form that launches a search or an ablation study; `#/experiments/e3`: the live view of
//! one, fed by Server-Sent Events), the workers (`#/workers`), the models (`#/models`:
//! register, classify a product) and the datasets (`#/datasets`). Changes through the API carry
//! the user token ([`token`]). It logs through `tracing` to the browser console.
//!
//! What it is not: no server code and no imagery rendering of its own. It speaks the
//! backend's API with the types of `albedo-shared` and hands `f32` bands to `albedo-render`;
//! the experiment charts are plain 2D canvases.
//!
//! Layout:
//! - [`app`]: the header (navigation, token) and the page of the current route; the catalog
//!   is mounted once and kept, the other pages are built when shown and cleaned up when left.
//! - [`route`]: the pages as hash routes (`#/`, `#/experiments`, `#/experiments/e3`,
//!   `#/workers`).
//! - [`token`]: the user token: taken from `#token=...`, kept in `localStorage`, shown and
//!   pasted or cleared in the header.
//! - [`catalog`]: the catalog page: search form, result list with quick-looks and paging,
//!   hover linking with the map; a click opens a result in the viewer.
//! - [`search`]: the form as data, its STAC search body, the ItemCollection answer read.
//! - [`worldmap`]: the world map on a 2D canvas: basemap, footprints, drag to draw the area,
//!   zoom and pan.
//! - [`topojson`]: the decoder of the bundled Natural Earth basemap (`/basemap/`).
//! - [`viewer`]: presets, the `<canvas id="render">`, auto-stretch and the canvas' `data-*`
//!   hooks for browser tests.
//! - [`presets`]: pure choices (presets, SAR decibels, implied nodata, default product, fetch
//!   step).
//! - [`tiles`]: the tile pyramid arithmetic of pan and zoom.
//! - [`models`]: the models page: registered models, register from an experiment's best
//!   trial, classify a product and follow the job to the viewer with its overlay.
//! - [`datasets`]: the datasets page: versions, class counts per split, band statistics, and
//!   the form that builds a dataset (a worker job, followed to its end).
//! - [`dsform`]: that form as data: the `POST /api/datasets` spec it sends, filled back from
//!   a built version ("start from"), and where a server field's message goes.
//! - [`experiments`]: the experiments page: list (state, counts, best) and the launch form,
//!   with the server's validation messages beside the fields they name.
//! - [`expform`]: the form as data: defaults, the `ExperimentSpec` it sends, and which input
//!   an `ErrorBody::field` path (`params.lr.low`, `optimizer.max_resource`, ...) points at.
//! - [`liveview`]: the live view: snapshot, then the event stream; redraws at most once per
//!   animation frame; leaderboard, cancel, and the `data-*` hooks for browser tests.
//! - [`sse`]: Server-Sent Events parsed from the bytes of a `fetch` (the live view's stream).
//! - [`live`]: what the live view knows as plain `Vec`s (curves, states, leases and timeline
//!   lanes), filled from the snapshot and the events.
//! - [`charts`]: the live view's 2D canvas charts: curves, worker timeline, parallel
//!   coordinates, ablation deltas.
//! - [`workers`]: the workers page, refreshed every 2 s.
//! - [`browser`]: timers tied to a component's life, animation frames, navigation.
//! - [`api`]: `fetch` calls (the token as a bearer header on changes) and decoding of JSON
//!   and raster answers.
//! - [`logging`]: `tracing` to the console.
//! - [`error`]: the crate's error type.

pub mod api;
pub mod app;
pub mod browser;
pub mod catalog;
pub mod charts;
pub mod datasets;
pub mod dsform;
pub mod error;
pub mod experiments;
pub mod expform;
pub mod live;
pub mod liveview;
pub mod logging;
pub mod models;
pub mod presets;
pub mod route;
pub mod search;
pub mod sse;
pub mod tiles;
pub mod token;
pub mod topojson;
pub mod viewer;
pub mod workers;
pub mod worldmap;

/// Starts the app: panic hook, console logging, then mounts [`app::App`] on `<body>`.
pub fn start() {
    console_error_panic_hook::set_once();
    logging::init();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "Albedo starting");
    leptos::mount::mount_to_body(app::App);
}
