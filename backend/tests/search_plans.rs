//! The search paths chosen for speed give the same answers as the general ones: counts kept
//! per collection (updated when an item moves between collections, rebuilt for old stores),
//! and broad bboxes tested row by row instead of through the R*Tree.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::Store;
use albedo_backend::{AppState, Config, router};

#[allow(dead_code)]
mod common;

fn stac(name: &str) -> PathBuf {
    common::data_root().join("stac").join(name)
}

async fn search(state: &AppState, query: &str) -> Value {
    let resp = router(state.clone())
        .oneshot(
            Request::get(format!("/stac/search?{query}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK, "{query}");
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&body).expect("json")
}

fn ids(page: &Value) -> Vec<String> {
    page["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn collection_counts_follow_items_and_are_rebuilt_for_old_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fc = stac("sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json");
    {
        let store = Store::open(dir.path()).expect("store");
        ingest_paths(&store, std::slice::from_ref(&fc), &IngestOptions::default()).expect("ingest");
        // The same items again, now in another collection.
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&fc).unwrap()).unwrap();
        for f in doc["features"].as_array_mut().unwrap().iter_mut().take(4) {
            f["collection"] = Value::String("moved".into());
        }
        let moved = dir.path().join("moved.json");
        std::fs::write(&moved, serde_json::to_vec(&doc).unwrap()).unwrap();
        ingest_paths(&store, &[moved], &IngestOptions::default()).expect("ingest");
        let state = AppState::new(store, Config::default()).expect("state");
        let page = search(&state, "collections=sentinel-2-c1-l2a").await;
        assert_eq!(page["numberMatched"], 6);
        let page = search(&state, "collections=moved,moved").await;
        assert_eq!(page["numberMatched"], 4);
        let page = search(&state, "limit=1").await;
        assert_eq!(page["numberMatched"], 10);
    }
    // A store whose counts are missing (made before them) is recounted when opened.
    {
        let conn = rusqlite::Connection::open(dir.path().join("albedo.sqlite")).unwrap();
        conn.execute("DELETE FROM search_counts", []).unwrap();
    }
    let store = Store::open(dir.path()).expect("reopen");
    let state = AppState::new(store, Config::default()).expect("state");
    let page = search(&state, "collections=moved").await;
    assert_eq!(page["numberMatched"], 4);
    let page = search(&state, "").await;
    assert_eq!(page["numberMatched"], 10);
}

#[tokio::test]
async fn broad_and_narrow_bboxes_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let items = stac("sentinel-2-l2a_1000_items_planetary-computer_2024-07-09_to_08-28.ndjson");
    ingest_paths(&store, &[items], &IngestOptions::default()).expect("ingest");
    let state = AppState::new(store, Config::default()).expect("state");
    // Broad (all 1000 items: tested row by row) and the same area cut into two narrower
    // halves (through the R*Tree): the union of the halves is the whole.
    let whole = search(&state, "bbox=-180,-90,180,90&limit=10000").await;
    let matched = whole["numberMatched"].as_u64().expect("count");
    assert_eq!(matched, 1000);
    let west = search(&state, "bbox=-180,-90,-105,90&limit=10000").await;
    let east = search(&state, "bbox=-105,-90,180,90&limit=10000").await;
    assert!(ids(&west).len() < 1000 && ids(&east).len() < 1000);
    let mut union: Vec<String> = ids(&west).into_iter().chain(ids(&east)).collect();
    union.sort();
    union.dedup();
    let mut got = ids(&whole);
    assert_eq!(got.len() as u64, matched);
    got.sort();
    assert_eq!(got, union);
    // Sorted by cloud cover, both ways, with and without a collection.
    for q in [
        "sortby=-eo:cloud_cover&limit=20",
        "collections=sentinel-2-l2a&sortby=eo:cloud_cover&limit=20",
    ] {
        let page = search(&state, q).await;
        let clouds: Vec<f64> = page["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["properties"]["eo:cloud_cover"].as_f64().unwrap())
            .collect();
        assert_eq!(clouds.len(), 20, "{q}");
        let mut sorted = clouds.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        if q.starts_with("sortby=-") {
            sorted.reverse();
        }
        assert_eq!(clouds, sorted, "{q}");
    }
}
