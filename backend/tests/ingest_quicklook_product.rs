//! The backend's ingest of the demo's Sentinel-1 assets takes the quick-look-only product.

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::Store;
use albedo_raster::Window;
use albedo_shared::catalog::{Georeferencing, PixelAccess, ProductId};

#[allow(dead_code)]
mod common;

const KARA_SEA_ID: &str = "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15";

#[test]
fn ingest_of_the_s1_assets_reports_the_quick_look_product() {
    let assets = common::crate_dir().join("../assets/s1");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let report = ingest_paths(&store, &[assets], &IngestOptions::default()).unwrap();

    assert!(
        report.products.iter().any(|p| p.0 == KARA_SEA_ID),
        "{:?}",
        report.products
    );
    // The three product folders of assets/s1, all with local pixels, nothing skipped.
    assert_eq!(report.products.len(), 3, "{:?}", report.products);
    assert_eq!(report.local, 3);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);

    let stored = store.get_product(&ProductId(KARA_SEA_ID.into())).unwrap();
    assert_eq!(stored.product.collection, "sentinel-1-grd");
    assert_eq!(stored.product.georeferencing, Georeferencing::CornersOnly);
    assert_eq!(
        stored.product.pixels,
        PixelAccess::Local {
            width: 522,
            height: 510
        }
    );
    assert_eq!(
        stored.stac_item["properties"]["sat:orbit_state"],
        "descending"
    );
    let local = stored.local.expect("local bands stored");
    let (header, payload) =
        albedo_raster::product::read_bands(&local, &["R", "G", "B"], Window::full(522, 510), 2)
            .unwrap();
    assert_eq!((header.width, header.height, header.bands), (261, 255, 3));
    assert_eq!(payload.len(), 261 * 255 * 3);
}
