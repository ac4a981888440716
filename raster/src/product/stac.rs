//! The STAC 1.0.0 Item of a local product.
//!
//! Core fields plus the `eo` (Sentinel-2 bands), `raster` (sample type, nodata, resolution),
//! `projection` (map grids), `sar` (Sentinel-1) and `sat` (orbit, where known) extensions.
//! Asset hrefs are absolute local paths with role `data` (a quick-look product's PNG:
//! `overview` and `data`, since it is both the preview and the only pixels); the backend rewrites or serves them. The collection link is
//! relative to a STAC API's `/collections/{collection}/items/{id}` layout.
//!
//! A product without any known date (only possible for an arbitrary single GeoTIFF) gets
//! `datetime: null` and no range, which STAC validators reject; the catalog asks for a date
//! at ingest.

use albedo_shared::catalog::{Dtype, Georeferencing, Product};
use serde_json::{Map, Value, json};

use super::names::{self, Mission};
use super::{BandDraft, Draft, FileFormat, Layout};

const EXT_EO: &str = "https://stac-extensions.github.io/eo/v1.1.0/schema.json";
const EXT_RASTER: &str = "https://stac-extensions.github.io/raster/v1.1.0/schema.json";
const EXT_PROJ: &str = "https://stac-extensions.github.io/projection/v1.1.0/schema.json";
const EXT_SAR: &str = "https://stac-extensions.github.io/sar/v1.0.0/schema.json";
const EXT_SAT: &str = "https://stac-extensions.github.io/sat/v1.0.0/schema.json";

fn data_type(d: Dtype) -> &'static str {
    match d {
        Dtype::U8 => "uint8",
        Dtype::U16 => "uint16",
        Dtype::I16 => "int16",
        Dtype::U32 => "uint32",
        Dtype::I32 => "int32",
        Dtype::F32 => "float32",
        Dtype::F64 => "float64",
    }
}

/// A number as STAC's raster extension writes nodata (`"nan"`, `"inf"`, `"-inf"` as strings).
fn nodata_json(v: f64) -> Value {
    if v.is_nan() {
        json!("nan")
    } else if v == f64::INFINITY {
        json!("inf")
    } else if v == f64::NEG_INFINITY {
        json!("-inf")
    } else {
        json!(v)
    }
}

/// GDAL geotransform to STAC `proj:transform` (the first two rows of the affine matrix).
fn proj_transform(gt: &[f64; 6]) -> Value {
    json!([gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]])
}

fn band_title(b: &BandDraft) -> String {
    match names::s2_band_info(&b.name) {
        Some((common, _)) => format!("{} ({common})", b.name),
        None => b.name.clone(),
    }
}

fn asset(d: &Draft, bands: &[&BandDraft]) -> Value {
    let first = bands[0];
    let mut a = Map::new();
    a.insert("href".into(), json!(first.path.to_string_lossy()));
    let media = match (first.format, first.tiled) {
        (FileFormat::Png, _) => "image/png",
        (FileFormat::GeoTiff, true) => "image/tiff; application=geotiff; profile=cloud-optimized",
        (FileFormat::GeoTiff, false) => "image/tiff; application=geotiff",
    };
    a.insert("type".into(), json!(media));
    let title = match (first.format, bands.len()) {
        (FileFormat::Png, _) => format!(
            "Quick-look, 8-bit {}",
            bands
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join("")
        ),
        (_, 1) => band_title(first),
        _ => format!("{}-band stack", bands.len()),
    };
    a.insert("title".into(), json!(title));
    let roles = match first.format {
        FileFormat::Png => json!(["overview", "data"]),
        FileFormat::GeoTiff => json!(["data"]),
    };
    a.insert("roles".into(), roles);
    if d.mission == Mission::Sentinel2 {
        let eo: Vec<Value> = bands
            .iter()
            .map(|b| match names::s2_band_info(&b.name) {
                Some((common, wl)) => {
                    json!({ "name": b.name, "common_name": common, "center_wavelength": wl })
                }
                None => json!({ "name": b.name }),
            })
            .collect();
        a.insert("eo:bands".into(), Value::Array(eo));
    }
    if d.mission == Mission::Sentinel1 {
        a.insert("sar:polarizations".into(), json!(polarizations(d, bands)));
    }
    let raster: Vec<Value> = bands
        .iter()
        .map(|b| {
            let mut r = Map::new();
            r.insert("data_type".into(), json!(data_type(b.dtype)));
            if let Some(nd) = b.nodata {
                r.insert("nodata".into(), nodata_json(nd));
            }
            if let Some(g) = b.gsd_m() {
                r.insert("spatial_resolution".into(), json!(g));
            }
            Value::Object(r)
        })
        .collect();
    a.insert("raster:bands".into(), Value::Array(raster));
    a.insert("proj:shape".into(), json!([first.height, first.width]));
    if let Some(gt) = first.geotransform.filter(|_| first.epsg.is_some()) {
        a.insert("proj:transform".into(), proj_transform(&gt));
    }
    Value::Object(a)
}

/// The polarisations of some bands: the product's own list where its bands are not named by
/// polarisation (a quick-look's colour channels), else the band names.
fn polarizations<'a>(d: &'a Draft, bands: &[&'a BandDraft]) -> Vec<&'a str> {
    if d.polarizations.is_empty() {
        bands.iter().map(|b| b.name.as_str()).collect()
    } else {
        d.polarizations.iter().map(String::as_str).collect()
    }
}

/// Builds the item of a drafted product.
pub(super) fn item(d: &Draft, product: &Product) -> Value {
    let mut props = Map::new();
    props.insert("title".into(), json!(product.title));
    if let Some(desc) = &d.description {
        props.insert("description".into(), json!(desc));
    }
    match (d.when, d.end) {
        (Some(w), end) if w.time.is_some() => {
            props.insert("datetime".into(), json!(w.rfc3339()));
            if let Some(e) = end.filter(|e| e.time.is_some() && *e >= w) {
                props.insert("start_datetime".into(), json!(w.rfc3339()));
                props.insert("end_datetime".into(), json!(e.rfc3339()));
            }
        }
        (Some(w), _) => {
            props.insert("datetime".into(), Value::Null);
            props.insert("start_datetime".into(), json!(w.rfc3339()));
            props.insert("end_datetime".into(), json!(w.end_of_day_rfc3339()));
        }
        (None, _) => {
            props.insert("datetime".into(), Value::Null);
        }
    }
    if let Some(p) = &d.platform {
        props.insert("platform".into(), json!(p));
    }
    let mut extensions = vec![EXT_RASTER];
    match d.mission {
        Mission::Sentinel2 => {
            extensions.push(EXT_EO);
            props.insert("constellation".into(), json!("sentinel-2"));
            props.insert("instruments".into(), json!(["msi"]));
            if let Some(level) = &d.product_type {
                props.insert("processing:level".into(), json!(level));
            }
            if let Some(tile) = &d.mgrs_tile {
                props.insert("s2:mgrs_tile".into(), json!(tile));
            }
        }
        Mission::Sentinel1 => {
            extensions.push(EXT_SAR);
            props.insert("constellation".into(), json!("sentinel-1"));
            props.insert("instruments".into(), json!(["c-sar"]));
            props.insert("sar:frequency_band".into(), json!("C"));
            props.insert("sar:center_frequency".into(), json!(5.405));
            let all: Vec<&BandDraft> = d.bands.iter().collect();
            props.insert("sar:polarizations".into(), json!(polarizations(d, &all)));
            if let Some(mode) = &d.instrument_mode {
                props.insert("sar:instrument_mode".into(), json!(mode));
            }
            if let Some(t) = &d.product_type {
                props.insert("sar:product_type".into(), json!(t));
            }
        }
        Mission::Other => {}
    }
    if d.orbit_state.is_some() || d.absolute_orbit.is_some() || d.relative_orbit.is_some() {
        extensions.push(EXT_SAT);
        if let Some(s) = &d.orbit_state {
            props.insert("sat:orbit_state".into(), json!(s));
        }
        if let Some(n) = d.absolute_orbit {
            props.insert("sat:absolute_orbit".into(), json!(n));
        }
        if let Some(n) = d.relative_orbit {
            props.insert("sat:relative_orbit".into(), json!(n));
        }
    }
    let grid = &d.bands[d.grid_band];
    match &d.georeferencing {
        Georeferencing::Affine { epsg, geotransform } => {
            extensions.push(EXT_PROJ);
            props.insert("proj:epsg".into(), json!(epsg));
            props.insert("proj:shape".into(), json!([grid.height, grid.width]));
            props.insert("proj:transform".into(), proj_transform(geotransform));
        }
        Georeferencing::GcpsOnly { count } => {
            props.insert("albedo:gcp_count".into(), json!(count));
        }
        Georeferencing::CornersOnly => {
            props.insert("albedo:georeferencing".into(), json!("corners_only"));
        }
        Georeferencing::None => {}
    }
    if let Some(a) = &product.attribution {
        props.insert("albedo:attribution".into(), json!(a));
    }

    // One asset per file: band files keyed by band name, a stack as `data`.
    let mut assets = Map::new();
    let mut files: Vec<Vec<&BandDraft>> = Vec::new();
    for b in &d.bands {
        match files.iter_mut().find(|f| f[0].path == b.path) {
            Some(f) => f.push(b),
            None => files.push(vec![b]),
        }
    }
    for f in &files {
        let key = match (d.layout, files.len()) {
            (Layout::BandFiles, _) if f.len() == 1 => f[0].name.clone(),
            (_, 1) => "data".to_string(),
            _ => names::tokens(&d.file_stem).join("_"),
        };
        assets.insert(key, asset(d, f));
    }

    let (geometry, bbox) = match &d.footprint {
        Some(fp) => (fp.geometry(), json!(fp.bbox)),
        None => (Value::Null, Value::Null),
    };
    let mut item = Map::new();
    item.insert("type".into(), json!("Feature"));
    item.insert("stac_version".into(), json!("1.0.0"));
    item.insert("stac_extensions".into(), json!(extensions));
    item.insert("id".into(), json!(product.id.0));
    item.insert("collection".into(), json!(product.collection));
    item.insert("geometry".into(), geometry);
    if !bbox.is_null() {
        item.insert("bbox".into(), bbox);
    }
    item.insert("properties".into(), Value::Object(props));
    item.insert(
        "links".into(),
        json!([{
            "rel": "collection",
            "href": format!("../../{}", product.collection),
            "type": "application/json",
        }]),
    );
    item.insert("assets".into(), Value::Object(assets));
    Value::Object(item)
}
