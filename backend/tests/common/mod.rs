//! Helpers shared by the route tests: a real store over real sample data, and one request
//! answered in-process by the router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::Store;
use albedo_backend::{AppState, Config, router};

/// The backend crate's folder, read at run time (cargo reuses a shared target folder's
/// test binaries for another checkout of the same sources, so a path compiled in could name
/// a checkout that is gone); the compile-time one when run outside cargo.
pub fn crate_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
}

/// The project's shared sample data (`../shared/data`).
pub fn data_root() -> std::path::PathBuf {
    crate_dir().join("../../shared/data")
}

/// A store in a temporary folder with `paths` ingested (STAC items that name no collection
/// go to `sentinel-2-l2a`).
pub fn state_with(paths: &[std::path::PathBuf]) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let options = IngestOptions {
        default_collection: Some("sentinel-2-l2a".into()),
        ..IngestOptions::default()
    };
    ingest_paths(&store, paths, &options).expect("ingest");
    (dir, AppState::new(store, Config::default()).expect("state"))
}

/// `GET uri`: status, content type and body.
pub async fn call(state: &AppState, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    (status, ctype, body.to_vec())
}
