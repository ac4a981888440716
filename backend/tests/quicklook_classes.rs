//! `GET /api/products/{id}/quicklook.png` of a class raster (a classify job's `u8` palette
//! COG): drawn in its class colours, nodata transparent, not stretched in grey.

// `data_root` is not needed here.
#[allow(dead_code)]
mod common;
use common::{call, state_with};

use axum::http::StatusCode;

use albedo_raster::classmap::{ClassGeoref, NODATA, classes_of, default_color, write_class_cog};
use albedo_shared::catalog::ProductList;

#[tokio::test]
async fn a_class_raster_quicklook_shows_its_class_colours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("classes.tif");
    let (w, h) = (60u32, 30u32);
    let values: Vec<u8> = (0..w * h)
        .map(|i| if i % 5 == 0 { NODATA } else { (i % 3) as u8 })
        .collect();
    let names = ["forest".to_string(), "water".into(), "urban".into()];
    let georef = ClassGeoref {
        geotransform: Some([500_000.0, 10.0, 0.0, 5_100_000.0, 0.0, -10.0]),
        epsg: Some(32633),
        gcps: Vec::new(),
    };
    let classes = classes_of(&names).expect("classes");
    write_class_cog(&path, w, h, &values, &georef, &classes, &Default::default())
        .expect("class raster");
    let (_data, state) = state_with(std::slice::from_ref(&path));
    let (_, _, body) = call(&state, "/api/products?limit=10").await;
    let list: ProductList = serde_json::from_slice(&body).expect("list");
    assert_eq!(list.products.len(), 1, "{list:?}");
    let id = &list.products[0].id.0;

    let (status, ctype, body) = call(
        &state,
        &format!("/api/products/{id}/quicklook.png?size=1024"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "image/png");
    let decoder = albedo_raster::png::Decoder::new(std::io::Cursor::new(&body));
    let mut reader = decoder.read_info().expect("png header");
    let mut rgba = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut rgba).expect("png frame");
    assert_eq!((info.width, info.height), (w, h));
    assert_eq!(info.color_type, albedo_raster::png::ColorType::Rgba);
    for (v, px) in values.iter().zip(rgba.chunks_exact(4)) {
        if *v == NODATA {
            assert_eq!(px[3], 0, "nodata is transparent");
        } else {
            let c = default_color(usize::from(*v));
            assert_eq!(px, [c[0], c[1], c[2], 255], "class {v}");
        }
    }
}
