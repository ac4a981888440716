//! Ingest: turning files into catalog products, transactionally.
//!
//! What it is: the one path every product takes into the store, from the CLI
//! (`albedo ingest`) and from the demo. A path is a STAC file (one Item, a
//! FeatureCollection or newline-delimited Items; `.json`, `.geojson`, `.ndjson`), a GeoTIFF, a
//! product folder (holding GeoTIFFs, or a KML overlay and its quick-look PNG; read by
//! `albedo_raster::product::scan`) or a folder of those (walked recursively). Every path is
//! parsed before anything is written; then all products go to the store in one transaction,
//! so a failure leaves nothing half-ingested.
//!
//! What it is not: the full STAC validation and the HTTP ingest endpoint of the catalog
//! issue; here an item needs `type: Feature`, a string `id` and a datetime.

use std::path::{Path, PathBuf};

use albedo_raster::product::{is_kml, is_tiff};
use albedo_shared::catalog::{Georeferencing, PixelAccess, Product, ProductId};
use serde_json::Value;

use crate::error::BackendError;
use crate::store::{Store, StoredProduct};

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Products written (new or updated), in input order.
    pub products: Vec<ProductId>,
    /// Of which have local pixels.
    pub local: usize,
    /// Files looked at and skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Options of an ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Collection for STAC items that name none.
    pub default_collection: Option<String>,
}

/// Parses every path, then writes all products in one transaction.
pub fn ingest_paths(
    store: &Store,
    paths: &[PathBuf],
    options: &IngestOptions,
) -> Result<IngestReport, BackendError> {
    let mut report = IngestReport::default();
    let mut products = Vec::new();
    for path in paths {
        collect(path, options, &mut products, &mut report)?;
    }
    store.put_products(&products)?;
    report.local = products.iter().filter(|p| p.local.is_some()).count();
    report.products = products.into_iter().map(|p| p.product.id).collect();
    Ok(report)
}

fn io_err(path: &Path, source: std::io::Error) -> BackendError {
    BackendError::Io {
        context: format!("reading {}", path.display()),
        source,
    }
}

/// Product metadata beside band files (read by `albedo_raster::product::scan`), not STAC.
const SIDECARS: &[&str] = &["metadata.json", "productInfo.json"];

fn is_stac_candidate(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    !SIDECARS.contains(&name)
        && matches!(
            path.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("json" | "geojson" | "ndjson")
        )
}

fn collect(
    path: &Path,
    options: &IngestOptions,
    out: &mut Vec<StoredProduct>,
    report: &mut IngestReport,
) -> Result<(), BackendError> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| io_err(path, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| io_err(path, e)))
            .collect::<Result<_, _>>()?;
        entries.sort();
        // GeoTIFFs, or a KML overlay placing a quick-look PNG (a quick-look-only product).
        if entries
            .iter()
            .any(|p| p.is_file() && (is_tiff(p) || is_kml(p)))
        {
            let scanned = albedo_raster::product::scan(path)?;
            if scanned.is_empty() {
                report.skipped.push((
                    path.to_path_buf(),
                    "no imagery product in this folder".into(),
                ));
            }
            out.extend(scanned.into_iter().map(|local| StoredProduct {
                product: local.product.clone(),
                stac_item: local.stac_item.clone(),
                local: Some(local),
            }));
            // Sub-folders of a product folder are still walked (e.g. label folders).
            for sub in entries.iter().filter(|p| p.is_dir()) {
                collect(sub, options, out, report)?;
            }
            return Ok(());
        }
        if entries
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == "metadata.json"))
        {
            report.skipped.push((
                path.to_path_buf(),
                "product folder without GeoTIFFs or a quick-look overlay: nothing to ingest".into(),
            ));
        }
        for entry in entries {
            if entry.is_dir() || is_stac_candidate(&entry) {
                collect(&entry, options, out, report)?;
            }
        }
        return Ok(());
    }
    if is_tiff(path) {
        let scanned = albedo_raster::product::scan(path)?;
        out.extend(scanned.into_iter().map(|local| StoredProduct {
            product: local.product.clone(),
            stac_item: local.stac_item.clone(),
            local: Some(local),
        }));
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let before = out.len();
    parse_stac_text(path, &text, options, out)?;
    if out.len() == before {
        report.skipped.push((
            path.to_path_buf(),
            "not a STAC Item or FeatureCollection (collections are derived from their items)"
                .into(),
        ));
    }
    Ok(())
}

/// Parses a file's text as STAC: an Item, a FeatureCollection, or one Item per line.
/// JSON documents of other kinds (collections, product metadata) add nothing.
fn parse_stac_text(
    path: &Path,
    text: &str,
    options: &IngestOptions,
    out: &mut Vec<StoredProduct>,
) -> Result<(), BackendError> {
    let ndjson = path.extension().and_then(|e| e.to_str()) == Some("ndjson");
    if ndjson {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| {
                BackendError::bad_request(
                    format!("{} line {}", path.display(), i + 1),
                    e.to_string(),
                )
            })?;
            let where_ = format!("{} line {}", path.display(), i + 1);
            out.push(stac_item_to_product(value, &where_, options)?);
        }
        return Ok(());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| BackendError::bad_request(path.display().to_string(), e.to_string()))?;
    match value.get("type").and_then(Value::as_str) {
        Some("Feature") => {
            out.push(stac_item_to_product(
                value,
                &path.display().to_string(),
                options,
            )?);
        }
        Some("FeatureCollection") => {
            let features = value
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    BackendError::bad_request(
                        format!("{}: features", path.display()),
                        "a FeatureCollection needs a `features` array",
                    )
                })?;
            for (i, f) in features.iter().enumerate() {
                let where_ = format!("{}: features[{i}]", path.display());
                out.push(stac_item_to_product(f.clone(), &where_, options)?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Builds a remote (metadata-only) product from a STAC item, checking the fields the catalog
/// needs. `where_` names the item's place in its file for error messages.
pub fn stac_item_to_product(
    mut item: Value,
    where_: &str,
    options: &IngestOptions,
) -> Result<StoredProduct, BackendError> {
    let field = |name: &str| format!("{where_}: {name}");
    if item.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(BackendError::bad_request(
            field("type"),
            "must be \"Feature\"",
        ));
    }
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BackendError::bad_request(field("id"), "a non-empty string is required"))?
        .to_string();
    let props = item
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| BackendError::bad_request(field("properties"), "an object is required"))?
        .clone();
    let datetime = props
        .get("datetime")
        .and_then(Value::as_str)
        .or_else(|| props.get("start_datetime").and_then(Value::as_str))
        .map(str::to_string);
    if datetime.is_none() {
        return Err(BackendError::bad_request(
            field("properties.datetime"),
            "a datetime (or start_datetime when datetime is null) is required",
        ));
    }
    let collection = match item.get("collection").and_then(Value::as_str) {
        Some(c) => c.to_string(),
        None => {
            let c = options.default_collection.clone().ok_or_else(|| {
                BackendError::bad_request(
                    field("collection"),
                    "the item names no collection: pass --collection",
                )
            })?;
            item["collection"] = Value::String(c.clone());
            c
        }
    };
    let bbox = item.get("bbox").and_then(Value::as_array).and_then(|b| {
        let nums: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
        match nums.len() {
            4 => Some([nums[0], nums[1], nums[2], nums[3]]),
            6 => Some([nums[0], nums[1], nums[3], nums[4]]),
            _ => None,
        }
    });
    let str_prop = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    let product = Product {
        id: ProductId(id.clone()),
        collection,
        title: str_prop("title").unwrap_or(id),
        datetime,
        bbox,
        platform: str_prop("platform"),
        product_type: str_prop("s2:product_type")
            .or_else(|| str_prop("sar:product_type"))
            .or_else(|| str_prop("product_type")),
        cloud_cover: props.get("eo:cloud_cover").and_then(Value::as_f64),
        bands: Vec::new(),
        georeferencing: Georeferencing::None,
        pixels: PixelAccess::Remote,
        attribution: Some("Contains modified Copernicus Sentinel data".into()),
    };
    Ok(StoredProduct {
        product,
        stac_item: item,
        local: None,
    })
}
