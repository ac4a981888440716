//! Training datasets and the jobs that build them.
//!
//! - `POST /api/datasets` (user token): a dataset spec (`albedo_raster::dataset::DatasetSpec`
//!   as JSON: name, source, channels, classes, patch size, stride, split...). It is checked
//!   here (a bad option is 400 naming it; every file it reads must lie under one of the
//!   server's `--ingest-root` folders) and queued as a `build_dataset` job that a worker runs;
//!   202 with the job. The worker writes the next version under the server's artifact folder
//!   (`<data>/artifacts/datasets`), which it must see (same host or a shared file system).
//! - `GET /api/datasets`: every version of every dataset, as its manifest (channels, classes,
//!   class counts per split, train statistics, shards).
//! - `GET /api/datasets/{name}/{version}`: one manifest.
//! - `GET /api/jobs`, `GET /api/jobs/{id}`: jobs with their progress, result and error;
//!   `POST /api/jobs/{id}/cancel` (user token).
//!
//! What it is not: no pixel work (the worker's raster crate builds), no decisions about
//! where a job runs (the engine's).

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};

use albedo_raster::dataset::{
    Dataset, DatasetSpec, Manifest, SourceSpec, list_datasets, list_versions, valid_name,
};
use albedo_shared::api::JobInfo;
use albedo_shared::protocol::{JobId, JobSpec};

use crate::app::AppState;
use crate::engine::db;
use crate::error::{BackendError, parse_json_body};

/// Largest dataset spec accepted.
const MAX_SPEC_BYTES: usize = 256 << 10;

/// Routes of this module (under `/api`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(list).post(create))
        .route("/datasets/{name}/{version}", get(one))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/cancel", post(cancel_job))
}

/// Where the datasets of the store in `state` live.
pub fn dataset_root(state: &AppState) -> PathBuf {
    state
        .store
        .path()
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("artifacts")
        .join("datasets")
}

/// Whether `path` (made absolute and free of `..` and symlinks) lies under one of `roots`.
fn confined(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, BackendError> {
    let shown = path.display().to_string();
    let real = path
        .canonicalize()
        .map_err(|e| BackendError::bad_request("source", format!("cannot read {shown}: {e}")))?;
    let inside = roots
        .iter()
        .filter_map(|r| r.canonicalize().ok())
        .any(|r| real.starts_with(&r));
    if inside {
        Ok(real)
    } else if roots.is_empty() {
        Err(BackendError::bad_request(
            "source",
            "this server reads no local files for datasets: start it with --ingest-root DIR",
        ))
    } else {
        Err(BackendError::bad_request(
            "source",
            format!("{shown} is outside the folders this server may read (--ingest-root)"),
        ))
    }
}

/// Parses and checks a dataset spec; every path it names is replaced by its canonical form
/// under an allowed root.
pub fn check_spec(body: &[u8], roots: &[PathBuf]) -> Result<DatasetSpec, BackendError> {
    let mut spec: DatasetSpec = parse_json_body(body, MAX_SPEC_BYTES)?;
    if !valid_name(&spec.name) {
        return Err(BackendError::bad_request(
            "name",
            "use 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    spec.validate().map_err(|e| match &e {
        albedo_raster::RasterError::DatasetOption { option, reason } => {
            BackendError::bad_request(option.to_string(), reason.clone())
        }
        _ => BackendError::bad_request("body", e.to_string()),
    })?;
    match &mut spec.source {
        SourceSpec::BigEarthNet { dir, .. } => *dir = confined(dir, roots)?,
        SourceSpec::LabelRaster { labels, imagery } => {
            *labels = confined(labels, roots)?;
            imagery.path = confined(&imagery.path, roots)?;
        }
        SourceSpec::Polygons {
            geojson, imagery, ..
        } => {
            *geojson = confined(geojson, roots)?;
            imagery.path = confined(&imagery.path, roots)?;
        }
    }
    Ok(spec)
}

async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, BackendError> {
    let roots = state.config.ingest_roots.clone();
    let spec = tokio::task::spawn_blocking(move || check_spec(&body, &roots)).await??;
    let root = dataset_root(&state);
    let job = JobSpec::BuildDataset {
        root: root.display().to_string(),
        spec: serde_json::to_value(&spec)?,
    };
    let id = state.engine.create_job("build_dataset", job).await?;
    let info = state.store.call_conn(move |c| db::get_job(c, id.0)).await?;
    Ok((StatusCode::ACCEPTED, Json(info)))
}

fn manifests(root: &Path) -> Result<Vec<Manifest>, BackendError> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in list_datasets(root)? {
        for version in list_versions(root, &name)? {
            out.push(
                Dataset::open(root, &name, Some(version))?
                    .manifest()
                    .clone(),
            );
        }
    }
    Ok(out)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Manifest>>, BackendError> {
    let root = dataset_root(&state);
    Ok(Json(
        tokio::task::spawn_blocking(move || manifests(&root)).await??,
    ))
}

async fn one(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<Manifest>, BackendError> {
    let version = parse_version(&version, "dataset")?;
    if !valid_name(&name) {
        return Err(BackendError::not_found("dataset"));
    }
    let root = dataset_root(&state);
    let manifest = tokio::task::spawn_blocking(move || {
        Dataset::open(&root, &name, Some(version)).map(|d| d.manifest().clone())
    })
    .await??;
    Ok(Json(manifest))
}

/// A version from a URL (`3` or `v3`); anything else is not found.
pub(crate) fn parse_version(text: &str, what: &str) -> Result<u32, BackendError> {
    text.strip_prefix('v')
        .unwrap_or(text)
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| BackendError::not_found(format!("{what} version")))
}

fn job_id(id: &str) -> Result<JobId, BackendError> {
    id.parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && *n < i64::MAX as u64)
        .map(JobId)
        .ok_or_else(|| BackendError::not_found("job"))
}

async fn jobs(State(state): State<AppState>) -> Result<Json<Vec<JobInfo>>, BackendError> {
    Ok(Json(state.store.call_conn(db::list_jobs).await?))
}

async fn job(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobInfo>, BackendError> {
    let id = job_id(&id)?;
    Ok(Json(
        state.store.call_conn(move |c| db::get_job(c, id.0)).await?,
    ))
}

async fn cancel_job(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobInfo>, BackendError> {
    let id = job_id(&id)?;
    state.store.call_conn(move |c| db::get_job(c, id.0)).await?;
    state.engine.cancel_job(id).await?;
    Ok(Json(
        state.store.call_conn(move |c| db::get_job(c, id.0)).await?,
    ))
}
