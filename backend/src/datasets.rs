//! Training datasets and the jobs that build them.
//!
//! - `POST /api/datasets` (user token): a dataset spec (`albedo_raster::dataset::DatasetSpec`
//!   as JSON: name, source, channels, classes, patch size, stride, split...). It is checked
//!   here (a bad option is 400 naming it; every file it reads must lie under one of the
//!   server's `--ingest-root` folders; a relative path is taken under them, as this server
//!   shows its sources' paths) and queued as a `build_dataset` job that a worker runs;
//!   202 with the job. The worker writes the next version under the server's artifact folder
//!   (`<data>/artifacts/datasets`), which it must see (same host or a shared file system).
//! - `GET /api/datasets`: every version of every dataset, as its manifest (channels, classes,
//!   class counts per split, train statistics, shards).
//! - `GET /api/datasets/{name}/{version}`: one manifest.
//! - `GET /api/jobs`, `GET /api/jobs/{id}`: jobs with their progress, result and error;
//!   `POST /api/jobs/{id}/cancel` (user token).
//!
//! The server's own paths never appear in these answers ([`Shown`]): a manifest's source
//! paths are shown relative to the `--ingest-root` folder they lie under (else as their file
//! name), and so are the paths inside its `source_description`; a job's result and error get
//! the same treatment (paths under the data folder become relative to it). What is stored
//! (`manifest.json`, which the trainer reads, and the jobs table) keeps the real paths.
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

/// `<data>/artifacts`: the folder under which the server of `state` keeps what jobs and the
/// registry write (datasets, models, derived products). Absolute: the store's data folder
/// is canonicalised when it opens.
pub fn artifacts_root(state: &AppState) -> PathBuf {
    state
        .store
        .path()
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("artifacts")
}

/// Where the datasets of the store in `state` live.
pub fn dataset_root(state: &AppState) -> PathBuf {
    artifacts_root(state).join("datasets")
}

/// How server paths are shown in answers: relative to the `--ingest-root` folder (or the data
/// folder) they lie under, else only their file name.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    /// Folders whose paths are shown relative to them (as given and canonical), longest
    /// first.
    folders: Vec<String>,
}

/// Bytes that may continue a path component (so a folder's prefix must not be followed or
/// preceded by one of them to match).
fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl Shown {
    /// For `roots` (the `--ingest-root` folders) and the server's data folder.
    pub fn new(roots: &[PathBuf], data_dir: &Path) -> Shown {
        let mut folders: Vec<String> = Vec::new();
        for dir in roots.iter().map(PathBuf::as_path).chain([data_dir]) {
            let canonical = dir.canonicalize().ok();
            for d in std::iter::once(dir).chain(canonical.as_deref()) {
                let text = d.display().to_string();
                let text = text.trim_end_matches('/');
                if d.is_absolute() && !text.is_empty() && !folders.iter().any(|f| f == text) {
                    folders.push(text.to_string());
                }
            }
        }
        folders.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Shown { folders }
    }

    /// For the server of `state`.
    pub fn of(state: &AppState) -> Shown {
        let data = state
            .store
            .path()
            .parent()
            .unwrap_or_else(|| Path::new("."));
        Shown::new(&state.config.ingest_roots, data)
    }

    /// `path` relative to the folder it lies under, else its file name.
    pub fn path(&self, path: &Path) -> PathBuf {
        for f in &self.folders {
            if let Ok(rel) = path.strip_prefix(f) {
                if rel.as_os_str().is_empty() {
                    break;
                }
                return rel.to_path_buf();
            }
        }
        if !path.is_absolute() {
            return path.to_path_buf();
        }
        path.file_name().map(PathBuf::from).unwrap_or_default()
    }

    /// `text` with every path under one of the folders made relative to it, and any other
    /// absolute path (a word starting with `/` that holds another `/`) cut to its file name.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.folders {
            out = replace_folder(&out, f);
        }
        cut_absolute_paths(&out)
    }

    /// Every string inside `value` through [`Shown::text`].
    pub fn value(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => *s = self.text(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.value(v)),
            Value::Object(o) => o.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }

    /// A manifest as answers show it: the source's paths relative, and the same paths in
    /// its description.
    pub fn manifest(&self, mut m: Manifest) -> Manifest {
        let mut replaced: Vec<(String, String)> = Vec::new();
        let mut show = |p: &mut PathBuf| {
            let shown = self.path(p);
            replaced.push((p.display().to_string(), shown.display().to_string()));
            *p = shown;
        };
        match &mut m.source {
            SourceSpec::BigEarthNet { dir, .. } => show(dir),
            SourceSpec::LabelRaster { labels, imagery } => {
                show(labels);
                show(&mut imagery.path);
            }
            SourceSpec::Polygons {
                geojson, imagery, ..
            } => {
                show(geojson);
                show(&mut imagery.path);
            }
        }
        replaced.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        let mut description = m.source_description.clone();
        for (from, to) in replaced.iter().filter(|(from, _)| from.starts_with('/')) {
            description = description.replace(from.as_str(), to);
        }
        m.source_description = self.text(&description);
        m
    }

    /// A job as answers show it: a dataset build's result through [`Shown::manifest`], any
    /// other result and the error through [`Shown::text`].
    pub fn job(&self, mut job: JobInfo) -> JobInfo {
        if let Some(result) = job.result.as_mut() {
            let manifest = (job.kind == "build_dataset")
                .then(|| serde_json::from_value::<Manifest>(result.clone()).ok())
                .flatten()
                .and_then(|m| serde_json::to_value(self.manifest(m)).ok());
            match manifest {
                Some(m) => *result = m,
                None => self.value(result),
            }
        }
        if let Some(e) = job.error.as_mut() {
            *e = self.text(e);
        }
        job
    }
}

/// `text` with `folder/x` made `x`, and `folder` alone its last component.
fn replace_folder(text: &str, folder: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = text[at..].find(folder) {
        let start = at + found;
        let end = start + folder.len();
        let before_ok = start == 0 || !path_byte(bytes[start - 1]) && bytes[start - 1] != b'/';
        let after = bytes.get(end).copied();
        out.push_str(&text[at..start]);
        match after {
            _ if !before_ok => out.push_str(folder),
            Some(b'/') => {
                // `folder/x`: `x`; `folder/` alone: the folder's name.
                if bytes.get(end + 1).is_some_and(|b| path_byte(*b)) {
                    at = end + 1;
                    continue;
                }
                out.push_str(last_component(folder));
            }
            Some(b) if path_byte(b) => out.push_str(folder),
            _ => out.push_str(last_component(folder)),
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

fn last_component(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// `text` with each word that is an absolute path (starts with `/` after the start, a space,
/// `(`, `[`, `=` or a quote, and holds another `/`) cut to its last component.
fn cut_absolute_paths(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || "\",;:()[]{}<>'\"`".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let starts = c == '/' && prev.is_none_or(|p| p.is_whitespace() || "([='\"`".contains(p));
        if starts {
            let len = rest.find(ends).unwrap_or(rest.len());
            let word = &rest[..len];
            if word[1..].trim_end_matches('/').contains('/') {
                out.push_str(last_component(word));
                prev = word.chars().last();
                rest = &rest[len..];
                continue;
            }
        }
        out.push(c);
        prev = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `path` made absolute and free of `..` and symlinks, if it lies under one of `roots`. A
/// relative path is taken under each root in turn (the first where it exists): that is how
/// this server shows the paths of its datasets' sources, so a shown path can be given back.
fn confined(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, BackendError> {
    let shown = path.display().to_string();
    if roots.is_empty() {
        return Err(BackendError::bad_request(
            "source",
            "this server reads no local files for datasets: start it with --ingest-root DIR",
        ));
    }
    let real = if path.is_absolute() {
        path.canonicalize()
            .map_err(|e| BackendError::bad_request("source", format!("cannot read {shown}: {e}")))?
    } else {
        roots
            .iter()
            .find_map(|r| r.join(path).canonicalize().ok())
            .ok_or_else(|| {
                BackendError::bad_request(
                    "source",
                    format!(
                        "{shown} is not found in the folders this server may read \
                         (--ingest-root)"
                    ),
                )
            })?
    };
    let inside = roots
        .iter()
        .filter_map(|r| r.canonicalize().ok())
        .any(|r| real.starts_with(&r));
    if inside {
        Ok(real)
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
    Ok((StatusCode::ACCEPTED, Json(Shown::of(&state).job(info))))
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
    let shown = Shown::of(&state);
    let all = tokio::task::spawn_blocking(move || manifests(&root)).await??;
    Ok(Json(all.into_iter().map(|m| shown.manifest(m)).collect()))
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
        Dataset::open(&root, &name, Some(version))
            .map(|d| d.manifest().clone())
            .map_err(|e| match e {
                // Its message names the dataset root: say what was not found instead.
                albedo_raster::RasterError::DatasetNotFound { .. } => {
                    BackendError::not_found(format!("dataset {name} version {version}"))
                }
                e => e.into(),
            })
    })
    .await??;
    Ok(Json(Shown::of(&state).manifest(manifest)))
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
    let shown = Shown::of(&state);
    let all = state.store.call_conn(db::list_jobs).await?;
    Ok(Json(all.into_iter().map(|j| shown.job(j)).collect()))
}

async fn job(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobInfo>, BackendError> {
    let id = job_id(&id)?;
    let info = state.store.call_conn(move |c| db::get_job(c, id.0)).await?;
    Ok(Json(Shown::of(&state).job(info)))
}

async fn cancel_job(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobInfo>, BackendError> {
    let id = job_id(&id)?;
    state.store.call_conn(move |c| db::get_job(c, id.0)).await?;
    state.engine.cancel_job(id).await?;
    let info = state.store.call_conn(move |c| db::get_job(c, id.0)).await?;
    Ok(Json(Shown::of(&state).job(info)))
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use albedo_shared::api::JobState;

    use super::*;

    #[test]
    fn source_paths_are_read_under_the_roots_and_nowhere_else() {
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        let (empty, labeled) = (tempfile::tempdir().expect("tempdir"), data.join("labeled"));
        let roots = [empty.path().to_path_buf(), labeled.clone()];
        let real = labeled
            .join("bigearthnet/v1_geotiff/S2")
            .canonicalize()
            .expect("the shared sample data");
        let bad = |path: &str| {
            confined(Path::new(path), &roots)
                .expect_err(path)
                .to_string()
        };
        // As shown by this server (relative to a root), found in whichever root has it.
        assert_eq!(
            confined(Path::new("bigearthnet/v1_geotiff/S2"), &roots).expect("relative"),
            real
        );
        assert_eq!(confined(&real, &roots).expect("absolute"), real);
        // Out of the roots, however it is spelt.
        for path in ["../README.md", "bigearthnet/../../README.md"] {
            let e = bad(path);
            assert!(e.contains("outside the folders"), "{path}: {e}");
        }
        let e = bad(data.join("README.md").to_str().expect("utf-8"));
        assert!(e.contains("outside the folders"), "{e}");
        let e = bad("bigearthnet/nothing-here");
        assert!(e.contains("not found in the folders"), "{e}");
        let e = confined(Path::new("bigearthnet"), &[]).expect_err("no roots");
        assert!(e.to_string().contains("--ingest-root"), "{e}");
    }

    #[test]
    fn paths_are_shown_relative_to_their_folder_or_as_a_file_name() {
        let shown = Shown::new(&["/srv/in/".into()], Path::new("/var/albedo"));
        assert_eq!(
            shown.path(Path::new("/srv/in/ben/S2")),
            PathBuf::from("ben/S2")
        );
        assert_eq!(
            shown.path(Path::new("/elsewhere/x.tif")),
            PathBuf::from("x.tif")
        );
        assert_eq!(
            shown.path(Path::new("rel/x.tif")),
            PathBuf::from("rel/x.tif")
        );
        for (text, expect) in [
            (
                "cannot read /srv/in/a/b.tif: gone",
                "cannot read a/b.tif: gone",
            ),
            (
                "writing /var/albedo/artifacts/derived/x.tif failed",
                "writing artifacts/derived/x.tif failed",
            ),
            ("label raster /srv/in (3x3)", "label raster in (3x3)"),
            ("a prefix only: /srv/input/z.tif", "a prefix only: z.tif"),
            (
                "worker path '/home/w/run/model.safetensors'",
                "worker path 'model.safetensors'",
            ),
            (
                "see http://host/a/b and B04/B03, 1/2 or /x",
                "see http://host/a/b and B04/B03, 1/2 or /x",
            ),
        ] {
            assert_eq!(shown.text(text), expect, "{text}");
        }
        let mut v = json!({"output": "/var/albedo/x.tif", "n": [1, "/a/b/c"]});
        shown.value(&mut v);
        assert_eq!(v, json!({"output": "x.tif", "n": [1, "c"]}));
    }

    /// `GET uri` on the router: status and body.
    async fn get(state: &AppState, uri: &str) -> (u16, String) {
        let resp = crate::router(state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .expect("body");
        (status, String::from_utf8(body.to_vec()).expect("utf8"))
    }

    #[tokio::test]
    async fn manifests_and_jobs_answer_no_server_path() {
        let given = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../shared/data/labeled");
        let real = given.canonicalize().expect("the shared sample data");
        let data = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(data.path()).expect("store");
        let config = crate::Config {
            ingest_roots: vec![given.clone()],
            ..crate::Config::default()
        };
        let state = AppState::new(store, config).expect("state");
        let ben = given.join("bigearthnet/v1_geotiff/S2");
        let body = json!({
            "name": "ben-s2",
            "source": {"kind": "bigearthnet", "dir": ben},
            "channels": ["B02", "B03", "B04"],
            "classes": [
                {"name": "forest", "values": ["Coniferous forest", "Broad-leaved forest", "Mixed forest"]},
                {"name": "arable", "values": ["Non-irrigated arable land"]}
            ],
            "patch_size": 120,
            "stride": 120,
            "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 7, "stratified": true}
        });
        let spec =
            check_spec(body.to_string().as_bytes(), std::slice::from_ref(&given)).expect("spec");
        let root = dataset_root(&state);
        let built = albedo_raster::dataset::build(&root, &spec, &mut |_| ControlFlow::Continue(()))
            .expect("build");
        let stored = built.manifest().clone();
        // On disk, for the trainer: the real paths.
        assert!(stored.source_description.contains(real.to_str().unwrap()));
        let result = serde_json::to_value(&stored).unwrap();
        let data_dir = data.path().canonicalize().unwrap();
        let failure = format!(
            "cannot read {}/x.tif: gone; wrote {}/artifacts/datasets/.staging",
            real.display(),
            data_dir.display()
        );
        state
            .store
            .with_conn(|c| {
                let spec = JobSpec::BuildDataset {
                    root: root.display().to_string(),
                    spec: serde_json::to_value(&spec)?,
                };
                let done = db::insert_job(c, "build_dataset", &spec)?;
                db::set_job_result(c, done, &result)?;
                db::set_job_state(c, done, JobState::Finished, 1, Some("w"), None)?;
                let failed = db::insert_job(c, "build_dataset", &spec)?;
                db::set_job_state(c, failed, JobState::Failed, 1, Some("w"), Some(&failure))?;
                Ok(())
            })
            .expect("jobs");

        let forbidden = [
            real.display().to_string(),
            given.display().to_string(),
            data.path().display().to_string(),
            data_dir.display().to_string(),
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        ];
        let mut answers = Vec::new();
        for uri in [
            "/api/datasets",
            "/api/datasets/ben-s2/1",
            "/api/datasets/ben-s2/9",
            "/api/jobs",
            "/api/jobs/1",
            "/api/jobs/2",
        ] {
            let (status, body) = get(&state, uri).await;
            for path in &forbidden {
                assert!(!body.contains(path.as_str()), "{uri} shows {path}: {body}");
            }
            answers.push((status, body));
        }
        assert_eq!(answers[2].0, 404, "{}", answers[2].1);
        let list: Value = serde_json::from_str(&answers[0].1).unwrap();
        let one: Value = serde_json::from_str(&answers[1].1).unwrap();
        let job: Value = serde_json::from_str(&answers[4].1).unwrap();
        assert_eq!(list[0], one);
        assert_eq!(
            job["result"], one,
            "the job's result is the manifest as listed"
        );
        assert_eq!(one["source"]["dir"], "bigearthnet/v1_geotiff/S2");
        let description = one["source_description"].as_str().unwrap();
        assert!(
            description.starts_with("BigEarthNet v1 patches in bigearthnet/v1_geotiff/S2 ("),
            "{description}"
        );
        let failed: Value = serde_json::from_str(&answers[5].1).unwrap();
        assert_eq!(
            failed["error"],
            "cannot read x.tif: gone; wrote artifacts/datasets/.staging"
        );
        // What the trainer reads is unchanged.
        let again = Dataset::open(&root, "ben-s2", Some(1)).unwrap();
        assert_eq!(again.manifest(), &stored);
        drop(state);
    }
}
