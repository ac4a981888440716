//! Classification of whole products with registered models, and the derived products it makes.
//!
//! - `POST /api/models/{name}/{version}/classify` (user token): [`ClassifyRequest`]
//!   (`product`, optional `batch`, default [`DEFAULT_BATCH`], optional `device` of
//!   [`DEVICES`], default the worker's own `--device`). The model must be registered
//!   (else 404), the product must be in the catalog (else 404), have local pixels and every
//!   band the model's channels need (derived channels such as NDVI need their two bands);
//!   else 400 naming `product`. The product's band files come from the store, never from the
//!   request. Answered `202` with the `classify` job ([`JobInfo`]), which a worker runs
//!   (`albedo-worker`'s `classify`): sliding windows of the model's patch size, batched, to
//!   a class COG under `<data>/artifacts/derived/` (single `u8` band, 255 = nodata, palette
//!   and class names, mode overviews). The worker writes into the server's artifact folder,
//!   which it must see (same host or a shared file system), as for dataset builds.
//! - When the job's worker reports it done, `complete_job` runs inside the engine's
//!   transaction (the same one that marks the job finished): it opens the class raster,
//!   registers it as a derived product of collection [`COLLECTION`] (id
//!   `<source>_classified_<model>-v<N>`, so a re-run replaces it; the source's datetime and
//!   footprint; properties `albedo:classes`, `albedo:source`, `albedo:model`; one band
//!   `class`), and makes the job's result a [`ClassifyResult`]. The derived product is then
//!   served like any local product (`/api/products/{id}/raster?bands=class`, tiles, STAC).
//!
//!   A re-run of the same model on the same product replaces the derived product and removes
//!   the class raster it replaced, once that transaction has committed (the engine deletes
//!   the files the completion names after its commit, never before).
//! - The plan of a job (`classify_outputs`) lives while its job does: it goes when the job
//!   finishes, fails (a refused result too) or is cancelled ([`job_ended`], called by the
//!   engine where it ends jobs), when creating the job fails, and rows left by a job that
//!   ended otherwise (a data folder from an older server) are swept when the store opens.
//!
//! What it is not: no pixel work here (the worker classifies, `albedo_raster::classmap`
//! writes); no choice of worker by device (any worker with a free slot takes the job; one
//! without the device asked for fails it, saying so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::post;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use albedo_raster::classmap::{self, NODATA};
use albedo_raster::dataset::ChannelPlan;
use albedo_raster::product::{LocalBand, LocalProduct};
use albedo_shared::api::{ClassInfo, ClassifyRequest, ClassifyResult};
use albedo_shared::catalog::{Band, Dtype, Georeferencing, PixelAccess, Product, ProductId};
use albedo_shared::protocol::JobSpec;

use crate::app::AppState;
use crate::datasets::parse_version;
use crate::engine::db;
use crate::error::{BackendError, parse_json_body};
use crate::models::{model_dir, models_root, valid_name};
use crate::store::StoredProduct;

/// Collection of the products classify jobs make.
pub const COLLECTION: &str = "albedo-classified";

/// Windows per inference batch when the request names none (shared with the browser app).
pub const DEFAULT_BATCH: u32 = albedo_shared::api::CLASSIFY_DEFAULT_BATCH;

/// Largest batch a request may ask for (shared with the browser app).
pub const MAX_BATCH: u32 = albedo_shared::api::CLASSIFY_MAX_BATCH;

/// Devices a request may name (what `albedo-worker --device` takes).
pub const DEVICES: [&str; 2] = ["cpu", "wgpu"];

/// Largest product grid classified, in pixels (a class raster is held in a worker's memory).
pub const MAX_PIXELS: u64 = 1 << 28;

/// What the server remembers of a classify job until its worker is done, keyed by the
/// output file the job writes. Created once when the store opens (`Store::open`, which
/// every server, ingest and token command goes through, so data folders made before this
/// table get it there too), never inside the engine's transaction.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS classify_outputs (
    output TEXT PRIMARY KEY,
    plan_json TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
";

/// Routes of this module (under `/api`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/models/{name}/{version}/classify", post(classify))
}

/// Where derived products live for the store in `state`.
pub fn derived_root(state: &AppState) -> PathBuf {
    crate::datasets::artifacts_root(state).join("derived")
}

/// Everything the completion needs, decided when the job is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    /// Id of the derived product.
    derived: String,
    /// The source product as the catalog has it.
    source: Product,
    /// The source's STAC geometry.
    geometry: Value,
    /// The source's time properties (`datetime`, `start_datetime`, `end_datetime`).
    time: serde_json::Map<String, Value>,
    /// `name/vN`.
    model: String,
    /// The classes, by value.
    classes: Vec<ClassInfo>,
    /// The model's input channels.
    channels: Vec<String>,
}

/// The id of the product that model `name` v`version` makes of `source`.
pub fn derived_id(source: &str, name: &str, version: u32) -> String {
    format!("{source}_classified_{name}-v{version}")
}

/// The classes of a model's class names: value `i` for name `i`, default colours.
pub fn class_infos(names: &[String]) -> Result<Vec<ClassInfo>, BackendError> {
    Ok(classmap::classes_of(names)?
        .into_iter()
        .map(|c| ClassInfo {
            value: c.value,
            name: c.name,
            color: classmap::color_hex(c.color),
        })
        .collect())
}

/// Checks a request against the store and the model; returns the job and the plan.
fn prepare(
    conn: &Connection,
    stored: StoredProduct,
    model_dir: &Path,
    model: String,
    (name, version): (&str, u32),
    derived_dir: &Path,
    (batch, device): (u32, Option<String>),
) -> Result<(JobSpec, String), BackendError> {
    let json = model_dir.join(albedo_trainer::CONFIG_FILE);
    let text = std::fs::read_to_string(&json).map_err(|source| BackendError::Io {
        context: format!("reading the model's {}", albedo_trainer::CONFIG_FILE),
        source,
    })?;
    let config: albedo_trainer::ModelConfig = serde_json::from_str(&text)?;
    let id = stored.product.id.clone();
    let (width, height, local) = match (&stored.product.pixels, &stored.local) {
        (PixelAccess::Local { width, height }, Some(local)) => (*width, *height, local),
        _ => {
            return Err(BackendError::bad_request(
                "product",
                format!(
                    "product '{id}' has no pixels on this server (only remote assets): only \
                     local products can be classified"
                ),
            ));
        }
    };
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(BackendError::bad_request(
            "product",
            format!("product '{id}' is {width}x{height} pixels, more than {MAX_PIXELS}"),
        ));
    }
    let names: Vec<String> = local.bands.iter().map(|b| b.band.name.clone()).collect();
    let plan = ChannelPlan::resolve(&config.channels, &names).map_err(|e| {
        BackendError::bad_request(
            "product",
            format!("product '{id}' cannot feed model {model}: {e}"),
        )
    })?;
    let mut bands = BTreeMap::new();
    let mut band_indices = BTreeMap::new();
    for input in &plan.inputs {
        let Some(b) = local.bands.iter().find(|b| &b.band.name == input) else {
            continue;
        };
        bands.insert(input.clone(), b.path.display().to_string());
        if b.index != 0 {
            band_indices.insert(input.clone(), b.index);
        }
    }
    let derived = derived_id(&id.0, name, version);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let output = derived_dir.join(format!("{}-{stamp}.tif", file_safe(&derived)));
    let output = output.display().to_string();
    let item = &stored.stac_item;
    let time = ["datetime", "start_datetime", "end_datetime"]
        .iter()
        .filter_map(|k| {
            item["properties"]
                .get(*k)
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    let plan = Plan {
        derived,
        geometry: item.get("geometry").cloned().unwrap_or(Value::Null),
        time,
        source: stored.product.clone(),
        model,
        classes: class_infos(&config.classes)?,
        channels: config.channels.clone(),
    };
    conn.execute(
        "INSERT INTO classify_outputs (output, plan_json, created_ms) VALUES (?1, ?2, ?3)",
        params![output, serde_json::to_string(&plan)?, db::now_ms()],
    )?;
    let job = JobSpec::Classify {
        model_dir: model_dir.display().to_string(),
        bands,
        band_indices,
        output: output.clone(),
        batch,
        device,
    };
    Ok((job, output))
}

/// The file name of `path` (what an answer may show of a server path).
fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `s` with everything but `A-Z a-z 0-9 . _ -` replaced by `_` (a file name).
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn classify(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, BackendError> {
    let version = parse_version(&version, "model")?;
    if !valid_name(&name) {
        return Err(BackendError::not_found("model"));
    }
    let req: ClassifyRequest = parse_json_body(&body, 16 << 10)?;
    let batch = req.batch.unwrap_or(DEFAULT_BATCH);
    if batch == 0 || batch > MAX_BATCH {
        return Err(BackendError::bad_request(
            "batch",
            format!("must be between 1 and {MAX_BATCH}"),
        ));
    }
    let device = req.device.clone();
    if let Some(d) = &device
        && !DEVICES.contains(&d.as_str())
    {
        return Err(BackendError::bad_request(
            "device",
            format!("unknown device '{d}' (one of {})", DEVICES.join(", ")),
        ));
    }
    let model_dir = model_dir(&models_root(&state), &name, version);
    let derived_dir = derived_root(&state);
    let model = format!("{name}/v{version}");
    let (job, output) = state
        .store
        .call(move |s| {
            s.with_conn(|c| crate::models::model_row(c, &name, version))?;
            let stored = s.get_product(&ProductId(req.product.clone()))?;
            s.with_conn(|c| {
                prepare(
                    c,
                    stored,
                    &model_dir,
                    model,
                    (&name, version),
                    &derived_dir,
                    (batch, device),
                )
            })
        })
        .await?;
    tracing::info!(%output, "classify job requested");
    let id = match state.engine.create_job("classify", job).await {
        Ok(id) => id,
        Err(e) => {
            // No job will ever complete this plan.
            let forget = output.clone();
            if let Err(e) = state
                .store
                .call_conn(move |c| forget_plan(c, &forget))
                .await
            {
                tracing::warn!(%output, error = %e, "could not remove the plan of a job not created");
            }
            return Err(e);
        }
    };
    let info = state.store.call_conn(move |c| db::get_job(c, id.0)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(crate::datasets::Shown::of(&state).job(info)),
    ))
}

/// What a worker reports when a classify job is done.
#[derive(Debug, Deserialize)]
struct WorkerResult {
    output: String,
    width: u32,
    height: u32,
    counts: BTreeMap<String, u64>,
}

/// Server-side completion of a job whose worker reported it done, run by the engine inside
/// the transaction that marks it finished: returns the job's result (for a classify job a
/// [`ClassifyResult`], after registering the derived product; any other job's result as
/// is), or why the result is refused (the job then fails, its plan goes and its class
/// raster is removed). Files to delete are pushed on `doomed`, which the engine deletes only
/// once the transaction has committed (a rolled-back batch must leave every file a stored
/// product names).
pub(crate) fn complete_job(
    conn: &Connection,
    spec: &JobSpec,
    result: Value,
    doomed: &mut Vec<PathBuf>,
) -> Result<Value, String> {
    let JobSpec::Classify { output, .. } = spec else {
        return Ok(result);
    };
    conn.execute_batch("SAVEPOINT classify_done")
        .map_err(|e| e.to_string())?;
    let done = register(conn, output, result);
    let end = if done.is_ok() {
        "RELEASE classify_done"
    } else {
        "ROLLBACK TO classify_done; RELEASE classify_done"
    };
    conn.execute_batch(end).map_err(|e| e.to_string())?;
    match done {
        Ok((result, replaced)) => {
            doomed.extend(replaced);
            Ok(result)
        }
        Err(e) => {
            // The job fails: its plan and a class raster that is not registered are of no use.
            forget_plan(conn, output).map_err(|e| e.to_string())?;
            doomed.push(PathBuf::from(output));
            Err(e.to_string())
        }
    }
}

/// The engine ended a job other than finished (failed or cancelled): a classify job's plan
/// goes (its output, if a worker wrote one, is deleted after the commit).
pub(crate) fn job_ended(
    conn: &Connection,
    spec: &JobSpec,
    doomed: &mut Vec<PathBuf>,
) -> Result<(), BackendError> {
    if let JobSpec::Classify { output, .. } = spec {
        forget_plan(conn, output)?;
        doomed.push(PathBuf::from(output));
    }
    Ok(())
}

fn forget_plan(conn: &Connection, output: &str) -> Result<(), BackendError> {
    conn.execute(
        "DELETE FROM classify_outputs WHERE output = ?1",
        params![output],
    )?;
    Ok(())
}

/// How old a plan without an open job must be before [`sweep_plans`] removes it (a request
/// between writing its plan and creating its job has one for a moment).
const PLAN_GRACE_MS: i64 = 10 * 60 * 1000;

/// Removes the plans whose job has ended (or was never created), older than
/// [`PLAN_GRACE_MS`]; run when the store opens.
pub(crate) fn sweep_plans(conn: &Connection) -> Result<(), BackendError> {
    let jobs: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs')",
        [],
        |r| r.get(0),
    )?;
    let open = if jobs {
        "SELECT json_extract(spec_json, '$.output') FROM jobs WHERE kind = 'classify' AND \
         state IN ('queued', 'running') AND json_extract(spec_json, '$.output') IS NOT NULL"
    } else {
        "SELECT NULL WHERE 0"
    };
    let n = conn.execute(
        &format!("DELETE FROM classify_outputs WHERE created_ms < ?1 AND output NOT IN ({open})"),
        params![db::now_ms() - PLAN_GRACE_MS],
    )?;
    if n > 0 {
        tracing::info!(plans = n, "removed the plans of classify jobs that ended");
    }
    Ok(())
}

/// Registers the reported class raster; returns the job's result and the class raster the
/// derived product replaced (to delete after commit).
fn register(
    conn: &Connection,
    output: &str,
    result: Value,
) -> Result<(Value, Option<PathBuf>), BackendError> {
    let reported: WorkerResult = serde_json::from_value(result)?;
    // Errors become the job's `error`, which the API shows: file names only.
    let name = file_name(output);
    if reported.output != output {
        return Err(BackendError::Unavailable(format!(
            "the worker reported {} instead of {name}",
            file_name(&reported.output)
        )));
    }
    let plan: Option<String> = conn
        .query_row(
            "SELECT plan_json FROM classify_outputs WHERE output = ?1",
            params![output],
            |r| r.get(0),
        )
        .optional()?;
    let plan: Plan = serde_json::from_str(
        &plan.ok_or_else(|| BackendError::not_found(format!("classify plan of {name}")))?,
    )?;
    let path = PathBuf::from(output);
    let tiff = albedo_raster::GeoTiff::open(&path).map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "cannot open a reported class raster");
        BackendError::Unavailable(format!("cannot open the class raster {name}"))
    })?;
    let (width, height) = (tiff.width(), tiff.height());
    if (width, height) != (reported.width, reported.height)
        || tiff.dtype() != Dtype::U8
        || tiff.nodata() != Some(f64::from(NODATA))
    {
        return Err(BackendError::Unavailable(format!(
            "{name} is not the class raster the worker reported"
        )));
    }
    let georeferencing = tiff.georeferencing().clone();
    let gsd_m = match &georeferencing {
        Georeferencing::Affine { epsg, geotransform } if !(4000..5000).contains(epsg) => {
            Some(geotransform[1].abs())
        }
        _ => None,
    };
    let band = Band {
        name: "class".into(),
        common_name: None,
        width,
        height,
        dtype: Dtype::U8,
        gsd_m,
        nodata: Some(f64::from(NODATA)),
    };
    let source = &plan.source;
    let product = Product {
        id: ProductId(plan.derived.clone()),
        collection: COLLECTION.into(),
        title: format!("{} classes of {}", plan.model, source.title),
        datetime: source.datetime.clone(),
        bbox: source.bbox,
        platform: source.platform.clone(),
        product_type: Some("classification".into()),
        cloud_cover: None,
        bands: vec![band.clone()],
        georeferencing: georeferencing.clone(),
        pixels: PixelAccess::Local { width, height },
        attribution: source.attribution.clone(),
    };
    let counts: BTreeMap<String, u64> = plan
        .classes
        .iter()
        .map(|c| {
            let key = c.value.to_string();
            let n = reported.counts.get(&key).copied().unwrap_or(0);
            (key, n)
        })
        .collect();
    let item = stac_item(&plan, &product, &path, &georeferencing);
    let stored = StoredProduct {
        local: Some(LocalProduct {
            product: product.clone(),
            bands: vec![LocalBand {
                band,
                path: path.clone(),
                index: 0,
            }],
            stac_item: item.clone(),
        }),
        product,
        stac_item: item,
    };
    // A re-run replaces the product: its earlier class raster goes.
    let replaced: Option<Option<String>> = conn
        .query_row(
            "SELECT local_bands_json FROM products WHERE id = ?1",
            params![plan.derived],
            |r| r.get(0),
        )
        .optional()?;
    let replaced = replaced
        .flatten()
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .and_then(|v| v[0]["path"].as_str().map(PathBuf::from))
        .filter(|old| *old != path && old.parent() == path.parent());
    crate::store::write_collection(conn, COLLECTION, &collection_doc())?;
    crate::store::write_product(conn, &stored)?;
    forget_plan(conn, output)?;
    tracing::info!(product = %plan.derived, source = %source.id, model = %plan.model, "derived product registered");
    let result = serde_json::to_value(ClassifyResult {
        product: plan.derived,
        source: source.id.0.clone(),
        model: plan.model,
        classes: plan.classes,
        counts,
    })?;
    Ok((result, replaced))
}

/// The STAC Collection document of [`COLLECTION`].
fn collection_doc() -> Value {
    json!({
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION,
        "title": "Albedo classifications",
        "description": "Class rasters made by Albedo classify jobs: a registered model run over \
                        a whole product, one u8 band `class` (255 = nodata).",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[null, null]]}
        },
        "links": []
    })
}

fn stac_item(plan: &Plan, product: &Product, path: &Path, georef: &Georeferencing) -> Value {
    let mut props = plan.time.clone();
    if !props.contains_key("datetime") {
        props.insert("datetime".into(), Value::Null);
    }
    props.insert("title".into(), json!(product.title));
    props.insert("albedo:classes".into(), json!(plan.classes));
    props.insert("albedo:source".into(), json!(plan.source.id.0));
    props.insert("albedo:model".into(), json!(plan.model));
    props.insert("albedo:channels".into(), json!(plan.channels));
    if let Some(p) = &product.platform {
        props.insert("platform".into(), json!(p));
    }
    let mut extensions = vec![
        "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ];
    if let Georeferencing::Affine { epsg, geotransform } = georef {
        extensions.push("https://stac-extensions.github.io/projection/v1.1.0/schema.json");
        let gt = geotransform;
        props.insert("proj:epsg".into(), json!(epsg));
        let band = &product.bands[0];
        props.insert("proj:shape".into(), json!([band.height, band.width]));
        props.insert(
            "proj:transform".into(),
            json!([gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]]),
        );
    }
    let classes: Vec<Value> = plan
        .classes
        .iter()
        .map(|c| {
            json!({"value": c.value, "name": c.name,
                   "color_hint": c.color.trim_start_matches('#').to_uppercase()})
        })
        .collect();
    let mut item = json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": extensions,
        "id": product.id.0,
        "collection": COLLECTION,
        "geometry": plan.geometry,
        "properties": props,
        "links": [],
        "assets": {
            "class": {
                "href": path.display().to_string(),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": "Class",
                "roles": ["data"],
                "classification:classes": classes,
                "raster:bands": [{"data_type": "uint8", "nodata": NODATA}]
            }
        }
    });
    if let Some(b) = product.bbox {
        item["bbox"] = json!(b);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_classify_jobs_are_completed_here_and_bad_results_are_refused() {
        let dir = std::env::temp_dir().join(format!("albedo-classify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::store::Store::open(&dir).expect("store");
        let other = JobSpec::BuildDataset {
            root: "/x".into(),
            spec: json!({}),
        };
        let result = json!({"name": "ds", "version": 1});
        store
            .with_conn(|c| {
                let mut doomed = Vec::new();
                assert_eq!(
                    complete_job(c, &other, result.clone(), &mut doomed),
                    Ok(result.clone())
                );
                assert!(doomed.is_empty());
                let spec = JobSpec::Classify {
                    model_dir: "/m".into(),
                    bands: BTreeMap::new(),
                    band_indices: BTreeMap::new(),
                    output: dir.join("out.tif").display().to_string(),
                    batch: 8,
                    device: Some("cpu".into()),
                };
                // Not what a classify worker reports; then no plan for that output.
                assert!(complete_job(c, &spec, result.clone(), &mut doomed).is_err());
                let reported = json!({"output": dir.join("out.tif").display().to_string(),
                                      "width": 2, "height": 2, "counts": {}});
                let err = complete_job(c, &spec, reported, &mut doomed).unwrap_err();
                assert!(err.contains("not found"), "{err}");
                // The error becomes the job's `error`, shown by the API: no server path.
                assert!(!err.contains(dir.to_str().unwrap()), "{err}");
                assert!(err.contains("out.tif"), "{err}");
                let elsewhere = json!({"output": dir.join("other.tif").display().to_string(),
                                       "width": 2, "height": 2, "counts": {}});
                let err = complete_job(c, &spec, elsewhere, &mut doomed).unwrap_err();
                assert!(!err.contains(dir.to_str().unwrap()), "{err}");
                Ok(())
            })
            .expect("conn");
        assert_eq!(store.count_products().expect("count"), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("albedo-classify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn plans(c: &Connection) -> Vec<String> {
        let mut st = c
            .prepare("SELECT output FROM classify_outputs ORDER BY output")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn spec_of(output: &Path) -> JobSpec {
        JobSpec::Classify {
            model_dir: "/m".into(),
            bands: BTreeMap::new(),
            band_indices: BTreeMap::new(),
            output: output.display().to_string(),
            batch: 8,
            device: None,
        }
    }

    fn plan() -> Plan {
        Plan {
            derived: derived_id("src", "lc", 1),
            source: Product {
                id: ProductId("src".into()),
                collection: "s2".into(),
                title: "source".into(),
                datetime: None,
                bbox: None,
                platform: None,
                product_type: None,
                cloud_cover: None,
                bands: Vec::new(),
                georeferencing: Georeferencing::None,
                pixels: PixelAccess::Local {
                    width: 3,
                    height: 2,
                },
                attribution: None,
            },
            geometry: Value::Null,
            time: serde_json::Map::new(),
            model: "lc/v1".into(),
            classes: class_infos(&["a".into(), "b".into()]).unwrap(),
            channels: vec!["B04".into()],
        }
    }

    /// A class raster at `path` and its plan, as a job's creation and worker leave them.
    fn planned_output(c: &Connection, path: &Path) -> Value {
        let classes = classmap::classes_of(&["a".into(), "b".into()]).unwrap();
        classmap::write_class_cog(
            path,
            3,
            2,
            &[0, 1, 1, 0, NODATA, 1],
            &classmap::ClassGeoref::default(),
            &classes,
            &BTreeMap::new(),
        )
        .unwrap();
        let output = path.display().to_string();
        c.execute(
            "INSERT INTO classify_outputs (output, plan_json, created_ms) VALUES (?1, ?2, ?3)",
            params![
                output,
                serde_json::to_string(&plan()).unwrap(),
                db::now_ms()
            ],
        )
        .unwrap();
        json!({"output": output, "width": 3, "height": 2, "counts": {"0": 2, "1": 3}})
    }

    #[test]
    fn a_relative_data_folder_gives_absolute_paths() {
        // Relative to the test's working folder (the crate's), as `--data ./albedo-data` is.
        let rel = PathBuf::from(format!("target-albedo-rel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&rel);
        let store = crate::store::Store::open(&rel).expect("store");
        assert!(store.path().is_absolute(), "{}", store.path().display());
        assert!(store.path().starts_with(std::env::current_dir().unwrap()));
        drop(store);
        let _ = std::fs::remove_dir_all(&rel);
    }

    #[test]
    fn a_rerun_names_the_replaced_raster_for_after_commit_and_keeps_it_until_then() {
        let dir = temp("rerun");
        let store = crate::store::Store::open(&dir).expect("store");
        let (first, second) = (dir.join("first.tif"), dir.join("second.tif"));
        store
            .with_conn(|c| {
                let mut doomed = Vec::new();
                let reported = planned_output(c, &first);
                let result = complete_job(c, &spec_of(&first), reported, &mut doomed).unwrap();
                assert_eq!(result["product"], "src_classified_lc-v1");
                assert_eq!(result["counts"], json!({"0": 2, "1": 3}));
                assert!(doomed.is_empty(), "{doomed:?}");
                let reported = planned_output(c, &second);
                // The engine's transaction is still open here: nothing may be deleted yet.
                c.execute_batch("BEGIN").unwrap();
                complete_job(c, &spec_of(&second), reported, &mut doomed).unwrap();
                assert_eq!(doomed, vec![first.clone()]);
                assert!(first.exists(), "deleted before the commit");
                // Rolled back: the product still names the first raster, which is still there.
                c.execute_batch("ROLLBACK").unwrap();
                let path: String = c.query_row(
                    "SELECT local_bands_json FROM products WHERE id = 'src_classified_lc-v1'",
                    [],
                    |r| r.get(0),
                )?;
                assert!(path.contains("first.tif"), "{path}");
                assert_eq!(plans(c), vec![second.display().to_string()]);
                Ok(())
            })
            .expect("conn");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plans_go_when_their_job_ends_any_way() {
        let dir = temp("plans");
        let store = crate::store::Store::open(&dir).expect("store");
        let (refused, cancelled) = (dir.join("refused.tif"), dir.join("cancelled.tif"));
        store
            .with_conn(|c| {
                let mut doomed = Vec::new();
                // A refused result (not the size the worker reported): the job fails.
                let mut reported = planned_output(c, &refused);
                reported["width"] = json!(4);
                assert!(complete_job(c, &spec_of(&refused), reported, &mut doomed).is_err());
                assert!(plans(c).is_empty());
                assert_eq!(doomed, vec![refused.clone()]);
                assert!(refused.exists(), "deleted before the commit");
                // Failed or cancelled by the engine.
                planned_output(c, &cancelled);
                let mut doomed = Vec::new();
                job_ended(c, &spec_of(&cancelled), &mut doomed)?;
                assert!(plans(c).is_empty());
                assert_eq!(doomed, vec![cancelled.clone()]);
                // Other jobs have no plan.
                let other = JobSpec::BuildDataset {
                    root: "/x".into(),
                    spec: json!({}),
                };
                job_ended(c, &other, &mut doomed)?;
                assert_eq!(doomed.len(), 1);
                Ok(())
            })
            .expect("conn");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_sweep_keeps_plans_of_open_and_new_jobs_only() {
        let dir = temp("sweep");
        let store = crate::store::Store::open(&dir).expect("store");
        store
            .with_conn(|c| {
                c.execute_batch(db::SCHEMA)?;
                let old = db::now_ms() - PLAN_GRACE_MS - 1;
                for (output, created) in [
                    ("/d/open.tif", old),
                    ("/d/ended.tif", old),
                    ("/d/orphan.tif", old),
                    ("/d/new.tif", db::now_ms()),
                ] {
                    c.execute(
                        "INSERT INTO classify_outputs VALUES (?1, '{}', ?2)",
                        params![output, created],
                    )?;
                }
                let open = db::insert_job(c, "classify", &spec_of(Path::new("/d/open.tif")))?;
                let ended = db::insert_job(c, "classify", &spec_of(Path::new("/d/ended.tif")))?;
                c.execute(
                    "UPDATE jobs SET state = 'cancelled' WHERE id = ?1",
                    params![ended as i64],
                )?;
                let _ = open;
                sweep_plans(c)?;
                assert_eq!(plans(c), vec!["/d/new.tif", "/d/open.tif"]);
                Ok(())
            })
            .expect("conn");
        drop(store);
        // Also when the store opens.
        let store = crate::store::Store::open(&dir).expect("store");
        store
            .with_conn(|c| {
                assert_eq!(plans(c), vec!["/d/new.tif", "/d/open.tif"]);
                Ok(())
            })
            .expect("conn");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_plan_table_is_made_once_when_the_store_opens_also_for_older_data_folders() {
        let dir = std::env::temp_dir().join(format!("albedo-classify-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A data folder from before classify jobs: a database without their table.
        Connection::open(dir.join(crate::store::DB_FILE))
            .and_then(|c| c.execute_batch("CREATE TABLE older (x INTEGER)"))
            .unwrap();
        let store = crate::store::Store::open(&dir).expect("store");
        store
            .with_conn(|c| {
                let n: i64 =
                    c.query_row("SELECT count(*) FROM classify_outputs", [], |r| r.get(0))?;
                assert_eq!(n, 0);
                Ok(())
            })
            .expect("the table exists once the store is open");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn classes_get_values_in_order_and_hex_colours() {
        let c = class_infos(&["forest".into(), "water".into()]).unwrap();
        assert_eq!(c[0].value, 0);
        assert_eq!(c[1].name, "water");
        assert!(
            c.iter()
                .all(|c| c.color.len() == 7 && c.color.starts_with('#'))
        );
        assert_ne!(c[0].color, c[1].color);
        assert!(class_infos(&vec!["x".to_string(); 256]).is_err());
        assert_eq!(derived_id("S2A_X", "lc", 2), "S2A_X_classified_lc-v2");
        assert_eq!(file_safe("a/b c.d"), "a_b_c.d");
    }
}
