//! Online serving of registered models, and their monitoring.
//!
//! - `POST /api/models/{name}/{version}/predict` (user token): `{"patches": [[...], ...]}`,
//!   each patch the raw values of the model's channels, channel-major (`C x P x P` numbers,
//!   in the order `GET /api/models/{name}/{version}` lists as `channels` in its
//!   `model.json`); at most [`MAX_PATCHES`] per request. Answers
//!   `{"classes": [...], "probabilities": [[...], ...], "predicted": [...]}`. The model
//!   normalises with its training statistics itself. A patch of the wrong length is a 400
//!   naming it (`patches[3]`).
//! - `GET /api/models/{name}/{version}/monitoring`: requests and predictions served, the
//!   count of each predicted class, and per input channel the mean and standard deviation
//!   of what was served beside the training statistics, with the drift
//!   `(served mean - training mean) / training std`.
//!
//! Models are loaded on first use (CPU, `albedo-trainer`) and kept, at most
//! [`MAX_LOADED`] at once. What it is not: no batching across requests, no GPU.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::response::Json;
use axum::routing::{get, post};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use albedo_trainer::{Compute, EoCnn};

use crate::app::AppState;
use crate::datasets::parse_version;
use crate::error::{BackendError, parse_json_body};
use crate::models::{models_root, valid_name};

/// Most patches in one request.
pub const MAX_PATCHES: usize = 1024;

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Most models kept loaded.
pub const MAX_LOADED: usize = 4;

/// The monitoring table.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS model_monitoring (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    predictions INTEGER NOT NULL,
    stats_json TEXT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
";

/// A loaded model, shared by the requests that use it.
type Loaded = Arc<Mutex<EoCnn>>;

/// Loaded models by (name, version), least recently used first.
#[derive(Default)]
pub struct ModelCache {
    loaded: Mutex<Vec<((String, u32), Loaded)>>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.loaded.lock().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("ModelCache").field("loaded", &n).finish()
    }
}

impl ModelCache {
    /// The model `name` v`version` from `root`, loading it if needed (blocking).
    fn get(
        &self,
        root: &std::path::Path,
        name: &str,
        version: u32,
    ) -> Result<Loaded, BackendError> {
        let key = (name.to_string(), version);
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = loaded.iter().position(|(k, _)| *k == key) {
                let entry = loaded.remove(i);
                let model = entry.1.clone();
                loaded.push(entry);
                return Ok(model);
            }
        }
        let dir = crate::models::model_dir(root, name, version);
        if !dir.is_dir() {
            return Err(BackendError::not_found(format!("model {name} v{version}")));
        }
        let model = EoCnn::load(&dir, Compute::Cpu).map_err(|e| {
            BackendError::Unavailable(format!("model {name} v{version} cannot be served: {e}"))
        })?;
        let model = Arc::new(Mutex::new(model));
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.len() >= MAX_LOADED {
            loaded.remove(0);
        }
        loaded.push((key, model.clone()));
        Ok(model)
    }
}

/// Routes of this module (under `/api`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/models/{name}/{version}/predict",
            post(predict).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/models/{name}/{version}/monitoring", get(monitoring))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictBody {
    patches: Vec<Vec<f32>>,
}

/// Answer of a prediction.
#[derive(Debug, Serialize)]
struct Prediction {
    classes: Vec<String>,
    probabilities: Vec<Vec<f32>>,
    predicted: Vec<String>,
}

/// Running sums of what was served, per input channel, and counts per class.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Served {
    values: Vec<f64>,
    sums: Vec<f64>,
    squares: Vec<f64>,
    class_counts: Vec<u64>,
}

/// One channel of the monitoring answer.
#[derive(Debug, Serialize)]
struct ChannelDrift {
    channel: String,
    train_mean: f64,
    train_std: f64,
    served_mean: Option<f64>,
    served_std: Option<f64>,
    drift: Option<f64>,
}

/// Answer of `GET .../monitoring`.
#[derive(Debug, Serialize)]
struct Monitoring {
    name: String,
    version: u32,
    requests: u64,
    predictions: u64,
    class_counts: Vec<(String, u64)>,
    channels: Vec<ChannelDrift>,
}

fn key(name: String, version: String) -> Result<(String, u32), BackendError> {
    if !valid_name(&name) {
        return Err(BackendError::not_found("model"));
    }
    Ok((name, parse_version(&version, "model")?))
}

fn load_served(
    conn: &Connection,
    name: &str,
    version: u32,
) -> Result<(u64, u64, Served), BackendError> {
    let row: Option<(i64, i64, String)> = conn
        .query_row(
            "SELECT requests, predictions, stats_json FROM model_monitoring
             WHERE name = ?1 AND version = ?2",
            params![name, version],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        Some((requests, predictions, json)) => (
            requests as u64,
            predictions as u64,
            serde_json::from_str(&json)?,
        ),
        None => (0, 0, Served::default()),
    })
}

async fn predict(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<Json<Prediction>, BackendError> {
    let (name, version) = key(name, version)?;
    let body: PredictBody = parse_json_body(&body, MAX_BODY_BYTES)?;
    if body.patches.is_empty() || body.patches.len() > MAX_PATCHES {
        return Err(BackendError::bad_request(
            "patches",
            format!("send 1 to {MAX_PATCHES} patches"),
        ));
    }
    let root = models_root(&state);
    let cache = state.models.clone();
    let (n1, v1) = (name.clone(), version);
    let (prediction, served_channels, per_patch) = tokio::task::spawn_blocking(move || {
        let model = cache.get(&root, &n1, v1)?;
        let model = model.lock().unwrap_or_else(|p| p.into_inner());
        let [c, p, q] = model.input_shape();
        let len = c * p * q;
        let mut flat = Vec::with_capacity(body.patches.len() * len);
        for (i, patch) in body.patches.iter().enumerate() {
            if patch.len() != len {
                return Err(BackendError::bad_request(
                    format!("patches[{i}]"),
                    format!(
                        "has {} values; this model takes {c} x {p} x {q} = {len}",
                        patch.len()
                    ),
                ));
            }
            if patch.iter().any(|v| !v.is_finite()) {
                return Err(BackendError::bad_request(
                    format!("patches[{i}]"),
                    "holds a value that is not a finite number",
                ));
            }
            flat.extend_from_slice(patch);
        }
        let n = body.patches.len();
        let probs = model
            .predict_proba(&flat, n)
            .map_err(|e| BackendError::Unavailable(format!("prediction failed: {e}")))?;
        let classes = model.config().classes.clone();
        let k = classes.len().max(1);
        let probabilities: Vec<Vec<f32>> = probs.chunks(k).map(<[f32]>::to_vec).collect();
        let best: Vec<usize> = probabilities
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i)
            })
            .collect();
        // Per-channel sums of the inputs, for monitoring.
        let mut sums = vec![0.0f64; c];
        let mut squares = vec![0.0f64; c];
        for sample in flat.chunks(len) {
            for (ch, values) in sample.chunks(p * q).enumerate() {
                for v in values {
                    let v = f64::from(*v);
                    sums[ch] += v;
                    squares[ch] += v * v;
                }
            }
        }
        let predicted = best.iter().map(|&i| classes[i].clone()).collect();
        Ok((
            Prediction {
                classes,
                probabilities,
                predicted,
            },
            (sums, squares, (n * p * q) as f64),
            best,
        ))
    })
    .await??;
    let k = prediction.classes.len();
    state
        .store
        .call_conn(move |conn| {
            let (requests, predictions, mut served) = load_served(conn, &name, version)?;
            let (sums, squares, count) = served_channels;
            served.values.resize(sums.len(), 0.0);
            served.sums.resize(sums.len(), 0.0);
            served.squares.resize(sums.len(), 0.0);
            served.class_counts.resize(k, 0);
            for ch in 0..sums.len() {
                served.values[ch] += count;
                served.sums[ch] += sums[ch];
                served.squares[ch] += squares[ch];
            }
            for i in &per_patch {
                served.class_counts[*i] += 1;
            }
            conn.execute(
                "INSERT OR REPLACE INTO model_monitoring
                    (name, version, requests, predictions, stats_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    name,
                    version,
                    (requests + 1) as i64,
                    (predictions + per_patch.len() as u64) as i64,
                    serde_json::to_string(&served)?
                ],
            )?;
            Ok(())
        })
        .await?;
    Ok(Json(prediction))
}

async fn monitoring(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<Monitoring>, BackendError> {
    let (name, version) = key(name, version)?;
    let root = models_root(&state);
    let cache = state.models.clone();
    let (n1, v1) = (name.clone(), version);
    let config = tokio::task::spawn_blocking(move || {
        let model = cache.get(&root, &n1, v1)?;
        let model = model.lock().unwrap_or_else(|p| p.into_inner());
        Ok::<_, BackendError>(model.config().clone())
    })
    .await??;
    let model_name = name.clone();
    let (requests, predictions, served) = state
        .store
        .call_conn(move |c| load_served(c, &name, version))
        .await?;
    let channels = config
        .normalization
        .iter()
        .enumerate()
        .map(|(i, norm)| {
            let n = served.values.get(i).copied().unwrap_or(0.0);
            let (mean, std) = if n > 0.0 {
                let mean = served.sums[i] / n;
                let var = (served.squares[i] / n - mean * mean).max(0.0);
                (Some(mean), Some(var.sqrt()))
            } else {
                (None, None)
            };
            ChannelDrift {
                channel: norm.channel.clone(),
                train_mean: norm.mean,
                train_std: norm.std,
                served_mean: mean,
                served_std: std,
                drift: mean.map(|m| (m - norm.mean) / norm.std.max(f64::EPSILON)),
            }
        })
        .collect();
    let class_counts = config
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), served.class_counts.get(i).copied().unwrap_or(0)))
        .collect();
    Ok(Json(Monitoring {
        name: model_name,
        version,
        requests,
        predictions,
        class_counts,
        channels,
    }))
}
