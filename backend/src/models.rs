//! The model registry: a trial's model, registered under a name with a version, its metrics
//! and its lineage (experiment, trial, parameters, what the trial ran: the dataset and its
//! version for the built-in trainer).
//!
//! - `POST /api/models` (user token): `{"name": "landcover", "experiment": "e3"}` registers
//!   the best finished trial of the experiment (or `"trial": 5`). The trial must have
//!   reported a `model` artifact; its file (or folder) is copied into
//!   `<data>/artifacts/models/<name>/v<N>/`, so that the registered version never changes.
//!   201 with the model.
//! - `GET /api/models`: every registered version, newest first; `GET /api/models/{name}`:
//!   its versions; `GET /api/models/{name}/{version}`: one.
//!
//! `files` are paths relative to the version's folder (`model.safetensors`, `model.json`),
//! never the server's own paths; errors of a registration show paths as
//! [`crate::datasets::Shown`] does. A trial's `artifacts` are stored as the paths the worker
//! reported on its own host (this server's host when the worker runs beside it): they are
//! what `POST /api/models` copies from; the experiments API shows only their file names.
//!
//! What it is not: no serving and no classification (they come with their own routes); the
//! artifact is read from the path the worker reported, which is trusted only as far as a
//! worker token is (regular files only, bounded size, no symbolic links followed).

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;

use albedo_shared::api::ModelInfo;
use albedo_shared::experiment::{TrialId, TrialState};

use crate::app::AppState;
use crate::engine::db;
use crate::error::{BackendError, parse_json_body};

/// The registry's table.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    trial INTEGER NOT NULL,
    info_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
";

/// Largest model artifact copied into the registry.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

/// Routes of this module (under `/api`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/models", get(list).post(register))
        .route("/models/{name}", get(versions))
        .route("/models/{name}/{version}", get(one))
}

/// Whether `name` may name a model (and a folder): 1 to 64 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where registered models live for the store in `state`.
pub fn models_root(state: &AppState) -> PathBuf {
    crate::datasets::artifacts_root(state).join("models")
}

/// The folder of model `name` v`version` under `root` ([`models_root`]).
pub fn model_dir(root: &Path, name: &str, version: u32) -> PathBuf {
    root.join(name).join(format!("v{version}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: String,
    experiment: String,
    #[serde(default)]
    trial: Option<u64>,
}

/// Copies `from` (a file or a folder of regular files) into the new folder `to`; returns
/// the copied files' paths relative to `to`.
fn copy_artifact(from: &Path, to: &Path) -> Result<Vec<String>, BackendError> {
    let io = |context: String| move |source| BackendError::Io { context, source };
    let meta = std::fs::symlink_metadata(from)
        .map_err(io(format!("reading the model artifact {}", from.display())))?;
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut stack = vec![(from.to_path_buf(), PathBuf::new())];
    if meta.is_file() {
        let name = from
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("model"));
        stack = Vec::new();
        std::fs::copy(from, to.join(&name)).map_err(io(format!("copying {}", from.display())))?;
        files.push(name.display().to_string());
    } else if !meta.is_dir() {
        return Err(BackendError::Unavailable(format!(
            "the model artifact {} is neither a file nor a folder",
            from.display()
        )));
    }
    while let Some((dir, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(io(format!("listing {}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
            let kind = entry
                .file_type()
                .map_err(io(format!("reading {}", entry.path().display())))?;
            let rel = rel.join(entry.file_name());
            if kind.is_dir() {
                std::fs::create_dir_all(to.join(&rel))
                    .map_err(io(format!("creating {}", to.join(&rel).display())))?;
                stack.push((entry.path(), rel));
            } else if kind.is_file() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                if total > MAX_MODEL_BYTES {
                    return Err(BackendError::Unavailable(format!(
                        "the model artifact is larger than {MAX_MODEL_BYTES} bytes"
                    )));
                }
                std::fs::copy(entry.path(), to.join(&rel))
                    .map_err(io(format!("copying {}", entry.path().display())))?;
                files.push(rel.display().to_string());
            }
            // Symbolic links and special files are not copied.
        }
    }
    files.sort();
    Ok(files)
}

/// The registered model `name` v`version`, or not found.
pub(crate) fn model_row(
    conn: &Connection,
    name: &str,
    version: u32,
) -> Result<ModelInfo, BackendError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT info_json FROM models WHERE name = ?1 AND version = ?2",
            params![name, version],
            |r| r.get(0),
        )
        .optional()?;
    let json = json.ok_or_else(|| BackendError::not_found(format!("model {name} v{version}")))?;
    Ok(serde_json::from_str(&json)?)
}

fn register_blocking(
    conn: &Connection,
    root: &Path,
    body: RegisterBody,
) -> Result<ModelInfo, BackendError> {
    let seq = db::parse_experiment_id(&body.experiment).ok_or_else(|| {
        BackendError::not_found(format!(
            "experiment '{}'",
            body.experiment.chars().take(64).collect::<String>()
        ))
    })?;
    let summary = db::get_experiment(conn, seq)?;
    let trial = match body.trial {
        Some(t) => TrialId(t),
        None => summary.best.as_ref().map(|b| b.trial).ok_or_else(|| {
            BackendError::Unavailable(format!(
                "experiment '{}' has no finished trial yet",
                summary.id
            ))
        })?,
    };
    let trials = db::list_trials(conn, seq)?;
    let info = trials
        .iter()
        .find(|t| t.id == trial)
        .ok_or_else(|| BackendError::not_found(format!("trial {trial} of {}", summary.id)))?;
    if info.state != TrialState::Finished {
        return Err(BackendError::Unavailable(format!(
            "trial {trial} of {} is {}, not finished",
            summary.id,
            info.state.as_str()
        )));
    }
    let source = info.artifacts.get("model").ok_or_else(|| {
        BackendError::Unavailable(format!(
            "trial {trial} of {} reported no `model` artifact",
            summary.id
        ))
    })?;
    let version: u32 = conn.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?1",
        params![body.name],
        |r| r.get(0),
    )?;
    let dir = model_dir(root, &body.name, version);
    let staging = root
        .join(&body.name)
        .join(format!(".staging-v{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|source| BackendError::Io {
        context: format!("creating {}", staging.display()),
        source,
    })?;
    let files = match copy_artifact(Path::new(source), &staging) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let model = ModelInfo {
        name: body.name.clone(),
        version,
        experiment: summary.id.clone(),
        trial,
        metric: summary.spec.metric.clone(),
        value: info.value,
        params: info.params.clone(),
        trial_spec: serde_json::to_value(&summary.spec.trial)?,
        files,
        created_at: db::now_rfc3339(),
    };
    let stored = conn.execute(
        "INSERT INTO models (name, version, experiment, trial, info_json, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            model.name,
            version,
            model.experiment.0,
            trial.0 as i64,
            serde_json::to_string(&model)?,
            model.created_at
        ],
    );
    if let Err(e) = stored {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e.into());
    }
    std::fs::rename(&staging, &dir).map_err(|source| BackendError::Io {
        context: format!("moving the model into {}", dir.display()),
        source,
    })?;
    tracing::info!(model = %model.name, version, experiment = %model.experiment, trial = %trial, "model registered");
    Ok(model)
}

async fn register(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, BackendError> {
    let body: RegisterBody = parse_json_body(&body, 64 << 10)?;
    if !valid_name(&body.name) {
        return Err(BackendError::bad_request(
            "name",
            "use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
        ));
    }
    let root = models_root(&state);
    let shown = crate::datasets::Shown::of(&state);
    let model = state
        .store
        .call_conn(move |c| register_blocking(c, &root, body))
        .await
        .map_err(|e| {
            // Copy errors name the artifact and the registry folder: not in an answer.
            tracing::warn!(error = %e, "model registration failed");
            match e {
                BackendError::Io { context, source } => BackendError::Io {
                    context: shown.text(&context),
                    source,
                },
                BackendError::Unavailable(m) => BackendError::Unavailable(shown.text(&m)),
                e => e,
            }
        })?;
    Ok((StatusCode::CREATED, Json(model)))
}

fn all(conn: &Connection, name: Option<&str>) -> Result<Vec<ModelInfo>, BackendError> {
    let mut stmt = conn.prepare(
        "SELECT info_json FROM models WHERE ?1 IS NULL OR name = ?1
         ORDER BY created_at DESC, name, version DESC",
    )?;
    let rows = stmt.query_map(params![name], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModelInfo>>, BackendError> {
    Ok(Json(state.store.call_conn(|c| all(c, None)).await?))
}

async fn versions(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Vec<ModelInfo>>, BackendError> {
    if !valid_name(&name) {
        return Err(BackendError::not_found("model"));
    }
    let found = state.store.call_conn(move |c| all(c, Some(&name))).await?;
    if found.is_empty() {
        return Err(BackendError::not_found("model"));
    }
    Ok(Json(found))
}

async fn one(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<ModelInfo>, BackendError> {
    let version = crate::datasets::parse_version(&version, "model")?;
    if !valid_name(&name) {
        return Err(BackendError::not_found("model"));
    }
    Ok(Json(
        state
            .store
            .call_conn(move |c| model_row(c, &name, version))
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_files_are_relative_to_the_version_folder() {
        let base = std::env::temp_dir().join(format!("albedo-models-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let from = base.join("trial").join("model");
        std::fs::create_dir_all(from.join("extra")).unwrap();
        std::fs::write(from.join("model.json"), "{}").unwrap();
        std::fs::write(from.join("model.safetensors"), [0u8; 8]).unwrap();
        std::fs::write(from.join("extra").join("notes.txt"), "x").unwrap();
        let to = base.join("registry");
        std::fs::create_dir_all(&to).unwrap();
        let files = copy_artifact(&from, &to).unwrap();
        assert_eq!(
            files,
            ["extra/notes.txt", "model.json", "model.safetensors"]
        );
        // A single file: its name.
        let one = base.join("one");
        std::fs::create_dir_all(&one).unwrap();
        let files = copy_artifact(&from.join("model.json"), &one).unwrap();
        assert_eq!(files, ["model.json"]);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn model_names_are_safe_folder_names() {
        for good in ["landcover", "lc-2024.v1", "A_b"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
