//! JSON API bodies that are not catalog types.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::experiment::{
    ExperimentId, ExperimentSpec, ExperimentState, Params, TrialId, TrialState,
};
use crate::protocol::{Device, JobId};

/// Body of every 4xx/5xx answer of the JSON API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (`not_found`, `bad_request`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The offending field or parameter as a path into the request (`params[0].low`,
    /// `bbox`), when one is to blame; forms show the message beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Body of `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` when the store answers.
    pub status: String,
    /// Server version.
    pub version: String,
    /// Number of products in the catalog.
    pub products: u64,
    /// Number of connected workers.
    pub workers: u64,
}

/// One connected worker, as `GET /api/workers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Id the server gave this connection.
    pub worker_id: String,
    /// Name the worker gave itself (host name by default).
    pub name: String,
    /// Trial slots it offers.
    pub slots: u32,
    /// Compute devices it announced.
    pub devices: Vec<Device>,
    /// When it connected (RFC 3339, UTC).
    pub connected_at: String,
    /// Seconds since its last message.
    pub last_seen_secs_ago: f64,
    /// The trials it runs now.
    #[serde(default)]
    pub running: Vec<RunningTrial>,
}

/// A trial running on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningTrial {
    /// Its experiment.
    pub experiment: ExperimentId,
    /// The trial.
    pub trial: TrialId,
    /// It waits on the worker for a slot (its experiment's `prefetch`) and has not started.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

/// Trial counts of an experiment by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialCounts {
    /// Waiting for a slot.
    pub queued: u32,
    /// Running now.
    pub running: u32,
    /// Paused at an ASHA rung.
    pub paused: u32,
    /// Ran to their end.
    pub finished: u32,
    /// Stopped early.
    pub stopped: u32,
    /// Failed for good.
    pub failed: u32,
}

/// An experiment as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    /// Its id.
    pub id: ExperimentId,
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub state: ExperimentState,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it ended, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Its trials by state.
    pub trials: TrialCounts,
    /// The best objective value of a trial so far (finished or stopped trials), and whose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestTrial>,
    /// The spec it was created from.
    pub spec: ExperimentSpec,
}

/// The best trial of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestTrial {
    /// The trial.
    pub trial: TrialId,
    /// Its objective value.
    pub value: f64,
}

/// One trial as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialInfo {
    /// Its id within the experiment.
    pub id: TrialId,
    /// Its configuration.
    pub params: Params,
    /// Where it stands.
    pub state: TrialState,
    /// Attempts started so far.
    pub attempt: u32,
    /// Steps it was told to run (ASHA), `None` for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<u32>,
    /// Name of the worker running it now or last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Steps reported.
    pub steps: u32,
    /// Its objective value: the final one of a finished trial, else the last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Why it was stopped, requeued or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was created (milliseconds since 1970).
    pub created_ms: i64,
    /// When its current or last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// Files it made (a model), by name: their file names on the worker that made them (the
    /// API never shows a host's paths; registering a model copies it into the registry).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, String>,
}

/// The values one trial reported at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The step, from 1.
    pub step: u32,
    /// Metric name to value.
    pub values: BTreeMap<String, f64>,
}

/// A trial's whole series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialSeries {
    /// The trial.
    pub trial: TrialId,
    /// Its points in step order.
    pub points: Vec<MetricPoint>,
}

/// Each component's effect in an ablation study (`GET /api/experiments/{id}/ablation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationReport {
    /// The metric of the baseline trial (every component in), once it has finished.
    pub baseline: Option<f64>,
    /// One entry per component, in the order of the spec.
    pub components: Vec<ComponentEffect>,
}

/// One component's effect on the metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentEffect {
    /// The component's name.
    pub component: String,
    /// The metric of the trial without it, once finished.
    pub metric: Option<f64>,
    /// `metric - baseline`.
    pub delta: Option<f64>,
    /// The delta turned so that a positive value means the component helps.
    pub importance: Option<f64>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a free slot.
    Queued,
    /// Running on a worker.
    Running,
    /// Done; its result is there.
    Finished,
    /// Failed for good (its error says why).
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// Name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`JobState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "finished" => Self::Finished,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A job as the API shows it (`GET /api/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Its id.
    pub id: JobId,
    /// What kind (`build_dataset`).
    pub kind: String,
    /// Where it stands.
    pub state: JobState,
    /// Attempts started.
    pub attempt: u32,
    /// Units done (patches, windows).
    pub done: u64,
    /// All units, once known.
    pub total: u64,
    /// What it made, once finished (a dataset's manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Name of the worker running it now or last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When it was created (milliseconds since 1970).
    pub created_ms: i64,
    /// When its current or last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
}

/// A registered model version (`GET /api/models/{name}/{version}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Its name.
    pub name: String,
    /// Its version, from 1.
    pub version: u32,
    /// Lineage: the experiment of the trial it comes from.
    pub experiment: ExperimentId,
    /// Lineage: the trial.
    pub trial: TrialId,
    /// The experiment's metric.
    pub metric: String,
    /// The trial's final value of that metric.
    pub value: Option<f64>,
    /// The trial's parameters.
    pub params: Params,
    /// What the trial ran (for the built-in trainer: the dataset and its version).
    pub trial_spec: serde_json::Value,
    /// The files of the model, relative to its folder.
    pub files: Vec<String>,
    /// When it was registered (RFC 3339, UTC).
    pub created_at: String,
}

/// Body of `POST /api/models/{name}/{version}/classify`: run the model over a whole local
/// product on a worker. Answered `202` with the job ([`JobInfo`]); when the job finishes its
/// `result` holds a [`ClassifyResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// Catalog id of the product to classify (it must have local pixels with every band the
    /// model reads).
    pub product: String,
    /// Patches per inference batch (default [`CLASSIFY_DEFAULT_BATCH`], at most
    /// [`CLASSIFY_MAX_BATCH`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Device the worker classifies on: `cpu` or `wgpu` (a worker that has not that device
    /// fails the job and says so); absent: the worker's own `--device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// Windows per inference batch of a classify job when its request names none.
pub const CLASSIFY_DEFAULT_BATCH: u32 = 64;

/// Largest batch a classify request may ask for (the smallest is 1).
pub const CLASSIFY_MAX_BATCH: u32 = 4096;

/// The colour of `#rrggbb` (or `rrggbb`), `None` when it is not one.
pub fn parse_hex_rgb(color: &str) -> Option<[u8; 3]> {
    let hex = color.strip_prefix('#').unwrap_or(color);
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// One class of a classified product: pixel value, name and display colour. Products made by
/// a classify job carry the list in their `albedo:classes` property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Pixel value in the class raster (0..=254; 255 is nodata).
    pub value: u8,
    /// Class name, as the model's dataset named it.
    pub name: String,
    /// Display colour, `#rrggbb`.
    pub color: String,
}

impl ClassInfo {
    /// [`ClassInfo::color`] as bytes ([`parse_hex_rgb`]); `None` when it is not a colour.
    pub fn rgb(&self) -> Option<[u8; 3]> {
        parse_hex_rgb(&self.color)
    }
}

/// What a finished classify job made (its [`JobInfo::result`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyResult {
    /// Catalog id of the derived product (collection `albedo-classified`).
    pub product: String,
    /// The product it was made from.
    pub source: String,
    /// `name/vN` of the model.
    pub model: String,
    /// The classes, with their pixel values and colours.
    pub classes: Vec<ClassInfo>,
    /// Pixels per class value (nodata excluded).
    pub counts: BTreeMap<String, u64>,
}

/// Header of `GET /api/experiments/{id}/trials` and `.../metrics`: the number of the last
/// event of the experiment that the answer includes (read in the same transaction), so that
/// a client can follow the events from there (`?after=N` or `Last-Event-ID: N`) with no gap
/// and no event twice.
pub const LAST_EVENT_HEADER: &str = "albedo-last-event";

/// Body of `GET /api/experiments/{id}/snapshot`: everything the live view starts from, read
/// in one transaction of the store, and the number of the last event it includes. Following
/// the events after [`ExperimentSnapshot::last_event`] brings it up to date with no gap and
/// no event twice (the driver writes every change and its event in one transaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSnapshot {
    /// The last event of the experiment included (0: none yet).
    pub last_event: u64,
    /// The experiment.
    pub experiment: ExperimentSummary,
    /// Its trials in id order.
    pub trials: Vec<TrialInfo>,
    /// The curve of the experiment's objective metric (`spec.metric`) of each trial that
    /// reported it, in trial order.
    pub curves: Vec<TrialCurve>,
    /// Every event of the experiment but the metrics, in order: trials created, leased
    /// (each attempt), stop orders, state changes (the worker timeline is drawn from them).
    #[serde(default)]
    pub timeline: Vec<crate::events::EventRecord>,
}

/// One trial's curve of one metric, as two columns (compact: a snapshot holds up to some
/// 100 000 points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialCurve {
    /// The trial.
    pub trial: TrialId,
    /// Steps, increasing.
    pub steps: Vec<u32>,
    /// The metric's value at each step.
    pub values: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_colours_parse_from_hex() {
        assert_eq!(parse_hex_rgb("#1f77B4"), Some([0x1f, 0x77, 0xb4]));
        assert_eq!(parse_hex_rgb("1f77b4"), Some([0x1f, 0x77, 0xb4]));
        for bad in ["", "#12345", "#12345g", "#1234567", "#ééé", "#1a98"] {
            assert_eq!(parse_hex_rgb(bad), None, "{bad}");
        }
        let c = ClassInfo {
            value: 3,
            name: "water".into(),
            color: "#1a9850".into(),
        };
        assert_eq!(c.rgb(), Some([0x1a, 0x98, 0x50]));
    }
}
