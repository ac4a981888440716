//! The worker <-> server protocol: JSON text frames over the WebSocket
//! `/api/workers/connect`, authenticated with `Authorization: Bearer <token>`.
//!
//! Both enums are tagged (`{"type": "hello", ...}`) and versioned by [`PROTOCOL_VERSION`]:
//! a server answers a hello of another version with [`ServerMsg::Shutdown`] and closes.
//!
//! Trials (version 2): the server leases a trial to a worker with [`ServerMsg::Assign`]
//! (a fresh [`LeaseId`] per attempt). The worker reports [`WorkerMsg::Metric`] for each step,
//! and ends the lease with exactly one of [`WorkerMsg::Finished`], [`WorkerMsg::Failed`] or
//! [`WorkerMsg::Stopped`]. With a `resource` (ASHA), the trial reports [`WorkerMsg::Paused`]
//! once it has reached that step and waits for [`ServerMsg::Continue`] (a promotion, with a
//! higher resource) or [`ServerMsg::Stop`]. A stop may arrive at any time; the answer is
//! `stopped` (or `finished`/`failed` if the trial ended first).
//!
//! Delivery of trial reports (metric, paused, finished, failed, stopped): at least once, in
//! order. The server acknowledges them with [`ServerMsg::Ack`] `{count}`: it has durably
//! handled the first `count` trial reports received on this connection (hello and heartbeats
//! are not counted). A worker keeps every report until it is acknowledged and, after a
//! reconnect, resends the unacknowledged ones first, in order, counted afresh on the new
//! connection. So the server must ignore a metric of a step it already has and any report of a
//! lease that has already ended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::experiment::{Params, TrialId};

/// Version of this protocol; bumped on any incompatible change.
/// 1: hello/heartbeat/welcome/shutdown. 2: trial leases (assign, continue, stop and reports).
/// 3: the hello lists the leases the worker runs; synthetic trials carry a seed; jobs.
/// 4: an assign may wait on a busy worker (`may_wait`) and says `started` when it runs;
/// classify jobs.
pub const PROTOCOL_VERSION: u32 = 4;

/// Identifier of one lease: one attempt of one trial on one worker, chosen by the server and
/// unique across the server's lifetime (a re-run of a trial gets a new lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub u64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn default_grace_ms() -> u64 {
    10_000
}

/// What a trial runs, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrialSpec {
    /// The synthetic workload of the scheduler benchmark: a deterministic learning curve and
    /// step time from the parameters `lr`, `width` and `dropout`; reports `accuracy`.
    Synthetic {
        /// Steps of a full run.
        steps: u32,
        /// Seed of the noise and the step times, mixed with the trial id: trials of the
        /// same id and seed follow the same curve in any experiment (so that runs of one
        /// workload under several engines can be compared).
        #[serde(default)]
        seed: u64,
        /// Fixed time of every step in milliseconds, replacing the workload's own step time
        /// (for the scheduler's overhead and scaling benchmarks).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_ms: Option<f64>,
    },
    /// Any program. It gets the parameters as JSON in `ALBEDO_PARAMS`, the trial id in
    /// `ALBEDO_TRIAL_ID`, and `{name}` in an argument replaced by parameter `name`; it
    /// reports metrics as JSON lines on stdout (`{"step": 3, "val_accuracy": 0.81}`).
    Command {
        /// Program to run (looked up in `PATH` when it has no slash).
        program: String,
        /// Its arguments, before `{name}` substitution.
        #[serde(default)]
        args: Vec<String>,
        /// Extra environment variables.
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Working directory; the worker's own when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        working_dir: Option<String>,
        /// Milliseconds between SIGTERM and SIGKILL on a stop.
        #[serde(default = "default_grace_ms")]
        grace_ms: u64,
    },
    /// The built-in EO CNN trainer (`albedo-trainer`) on a training dataset of patches. Its
    /// hyperparameters are the trial's parameters (`lr`, `width`, `depth`, `dropout`,
    /// `batch_size`, `epochs`, `optimizer`, `seed`, `channels`, `drop_channels`,
    /// `drop_block`, `reports_per_epoch`, `threads`, and an ablation's `ablate`); it reports
    /// `train_loss`, `train_accuracy`, `val_loss` and `val_accuracy` at each step (an epoch,
    /// or a fraction of one with `reports_per_epoch` > 1) and saves the model
    /// (safetensors + JSON config) when it finishes.
    EoCnn {
        /// Root folder of the training datasets (`<root>/<name>/v<N>/`), on the worker;
        /// empty in a submitted spec: the server fills in its own dataset folder.
        #[serde(default)]
        dataset_root: String,
        /// Dataset name.
        dataset: String,
        /// Dataset version; the newest when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        /// `cpu` or `wgpu`; absent: the worker's `--device`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// Folder the model is saved under (`<dir>/<experiment>/trial-<id>/`); absent: the
        /// worker's `--models-dir`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        models_dir: Option<String>,
        /// Threads of the trial's CPU pool; absent: the `threads` parameter, else the
        /// worker's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threads: Option<u32>,
    },
}

impl TrialSpec {
    /// A synthetic trial of `steps` steps, seed 0, the workload's own step times.
    pub fn synthetic(steps: u32) -> Self {
        Self::Synthetic {
            steps,
            seed: 0,
            step_ms: None,
        }
    }
}

/// A compute device a worker offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `cpu`, `cuda`, `wgpu`, ...
    pub kind: String,
    /// Human-readable name (CPU model, GPU name).
    pub name: String,
}

/// Messages a worker sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// First message after connecting.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// Name of the worker (host name by default).
        name: String,
        /// Number of trials it runs at once.
        slots: u32,
        /// Devices it can train on.
        devices: Vec<Device>,
        /// Leases it is running or holding paused now (after a reconnect: the server adopts
        /// those it still knows and stops the others).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        running: Vec<LeaseId>,
        /// Jobs it is running now (adopted the same way).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        jobs: Vec<JobId>,
    },
    /// Sent every `heartbeat_interval_secs` of the welcome.
    Heartbeat,
    /// Values a trial reported at one step (steps count from 1).
    Metric {
        /// The lease.
        lease: LeaseId,
        /// Step the values belong to.
        step: u32,
        /// Metric name to value.
        values: BTreeMap<String, f64>,
    },
    /// A lease that waited on the worker (assigned while every slot was busy: the
    /// experiment's `prefetch`) began to run.
    Started {
        /// The lease.
        lease: LeaseId,
    },
    /// The trial reached the resource of its lease and waits for a continue or a stop.
    Paused {
        /// The lease.
        lease: LeaseId,
        /// Last step done.
        step: u32,
    },
    /// The trial made a file (a model, a prediction) the server may register; sent before
    /// the lease ends.
    Artifact {
        /// The lease.
        lease: LeaseId,
        /// What it is (`model`).
        name: String,
        /// Where it is: an absolute path on the worker's host.
        uri: String,
    },
    /// The trial ran to its end; ends the lease.
    Finished {
        /// The lease.
        lease: LeaseId,
        /// Final metric values (the last value of each metric reported).
        final_values: BTreeMap<String, f64>,
        /// Milliseconds the trial ran (time paused excluded).
        duration_ms: u64,
    },
    /// The trial failed (bad parameters, program not found, non-zero exit); ends the lease.
    Failed {
        /// The lease.
        lease: LeaseId,
        /// Why, for people (exit code and stderr tail for a command).
        reason: String,
    },
    /// The trial ended on a stop order; ends the lease.
    Stopped {
        /// The lease.
        lease: LeaseId,
        /// Last step reported (0 if none).
        step: u32,
    },
    /// How far a job is (sent now and then, not for every unit of work).
    JobProgress {
        /// The job.
        job: JobId,
        /// Units done.
        done: u64,
        /// All units.
        total: u64,
    },
    /// A job ended well; `result` says what it made.
    JobDone {
        /// The job.
        job: JobId,
        /// What it made (e.g. a dataset's manifest).
        result: serde_json::Value,
    },
    /// A job ended badly (or was cancelled).
    JobFailed {
        /// The job.
        job: JobId,
        /// Why.
        reason: String,
    },
}

impl WorkerMsg {
    /// The lease a trial report is about (`None` for hello and heartbeat).
    pub fn lease(&self) -> Option<LeaseId> {
        match self {
            Self::Hello { .. }
            | Self::Heartbeat
            | Self::JobProgress { .. }
            | Self::JobDone { .. }
            | Self::JobFailed { .. } => None,
            Self::Metric { lease, .. }
            | Self::Started { lease }
            | Self::Artifact { lease, .. }
            | Self::Paused { lease, .. }
            | Self::Finished { lease, .. }
            | Self::Failed { lease, .. }
            | Self::Stopped { lease, .. } => Some(*lease),
        }
    }

    /// Whether this report ends its lease (finished, failed, stopped).
    pub fn ends_lease(&self) -> bool {
        matches!(
            self,
            Self::Finished { .. } | Self::Failed { .. } | Self::Stopped { .. }
        )
    }
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to a valid hello.
    Welcome {
        /// Id of this connection.
        worker_id: String,
        /// How often the worker must send a heartbeat.
        heartbeat_interval_secs: u32,
    },
    /// The server closes this connection; the worker should not reconnect before fixing what
    /// `reason` says (or, on a server shutdown, reconnect with backoff).
    Shutdown {
        /// Why.
        reason: String,
    },
    /// Run a trial under a new lease.
    Assign {
        /// The lease; every report about this run names it.
        lease: LeaseId,
        /// The trial.
        trial: TrialId,
        /// Id of the experiment the trial belongs to.
        experiment: String,
        /// Attempt number, from 1 (a trial re-leased after a lost worker gets the next).
        attempt: u32,
        /// What to run.
        spec: TrialSpec,
        /// The configuration.
        params: Params,
        /// Step to run to, then pause (ASHA's rung); `None` runs to the end.
        resource: Option<u32>,
        /// Every slot of the worker is busy (as far as the server knows): the run may wait
        /// there for one (the experiment's `prefetch`). Without it, an assign the worker has
        /// no free slot for is answered `failed`, so that the server leases the trial
        /// elsewhere.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        may_wait: bool,
    },
    /// A paused trial is promoted: keep running to the new resource (`None`: to the end).
    Continue {
        /// The lease.
        lease: LeaseId,
        /// New step to run to.
        resource: Option<u32>,
    },
    /// The server has durably handled the first `count` trial reports this worker sent on this
    /// connection; the worker may forget them. Counts only grow within a connection.
    Ack {
        /// Trial reports handled, from the start of this connection.
        count: u64,
    },
    /// Stop a trial (early stopping, cancel); the worker answers `stopped`.
    Stop {
        /// The lease.
        lease: LeaseId,
        /// Why, for the logs.
        reason: String,
    },
    /// Run a job (it takes a slot until it ends).
    Job {
        /// The job.
        job: JobId,
        /// Attempt number, from 1.
        attempt: u32,
        /// What to do.
        spec: JobSpec,
    },
    /// Stop a job; the worker answers `job_failed`.
    CancelJob {
        /// The job.
        job: JobId,
        /// Why, for the logs.
        reason: String,
    },
}

/// Id of a job (work that is not a trial: building a dataset, classifying a product).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a job does, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobSpec {
    /// Build the next version of a training dataset under `root` (a folder the worker
    /// sees: the server's artifact folder on a local or shared file system). `spec` is the
    /// raster crate's dataset spec, with every path checked by the server.
    BuildDataset {
        /// Folder of the dataset store.
        root: String,
        /// The dataset spec (`albedo_raster::dataset::DatasetSpec` as JSON).
        spec: serde_json::Value,
    },
    /// Classify a whole product with a registered model (sliding windows, batched) and write
    /// a class raster (single-band `u8` GeoTIFF on the grid of the product's finest band,
    /// 255 = nodata) with its class names and colours. The job's result is a JSON object with
    /// `output`, `width`, `height` and per-class `counts`; the server then registers the file
    /// as a derived product.
    Classify {
        /// Folder of the registered model (`model.safetensors` + `model.json`).
        model_dir: String,
        /// The product's band files the model reads: band name to absolute path.
        bands: BTreeMap<String, String>,
        /// Index of a band inside its file, for bands of multi-band stacks (absent: 0).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        band_indices: BTreeMap<String, u16>,
        /// Where to write the class GeoTIFF (written beside it first, then renamed).
        output: String,
        /// Patches per inference batch.
        batch: u32,
        /// Device to run on (`cpu`, `wgpu`); absent: the worker's `--device`. (Older
        /// servers always sent `cpu`.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let hello = WorkerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            name: "w1".into(),
            slots: 2,
            devices: vec![Device {
                kind: "cpu".into(),
                name: "x86_64".into(),
            }],
            running: vec![LeaseId(4)],
            jobs: vec![JobId(2)],
        };
        let text = serde_json::to_string(&hello).unwrap();
        assert!(text.starts_with(r#"{"type":"hello""#), "{text}");
        assert_eq!(serde_json::from_str::<WorkerMsg>(&text).unwrap(), hello);
        let hb: WorkerMsg = serde_json::from_str(r#"{"type":"heartbeat"}"#).unwrap();
        assert_eq!(hb, WorkerMsg::Heartbeat);
        assert!(serde_json::from_str::<WorkerMsg>(r#"{"type":"launch_missiles"}"#).is_err());
    }

    fn round_trip_worker(msg: WorkerMsg, tag: &str) {
        let text = serde_json::to_string(&msg).unwrap();
        assert!(text.starts_with(&format!(r#"{{"type":"{tag}""#)), "{text}");
        assert_eq!(serde_json::from_str::<WorkerMsg>(&text).unwrap(), msg);
    }

    fn round_trip_server(msg: ServerMsg, tag: &str) {
        let text = serde_json::to_string(&msg).unwrap();
        assert!(text.starts_with(&format!(r#"{{"type":"{tag}""#)), "{text}");
        assert_eq!(serde_json::from_str::<ServerMsg>(&text).unwrap(), msg);
    }

    #[test]
    fn trial_messages_round_trip() {
        let values: BTreeMap<String, f64> = [("accuracy".to_string(), 0.75)].into();
        round_trip_worker(
            WorkerMsg::Metric {
                lease: LeaseId(7),
                step: 3,
                values: values.clone(),
            },
            "metric",
        );
        round_trip_worker(
            WorkerMsg::Paused {
                lease: LeaseId(7),
                step: 5,
            },
            "paused",
        );
        round_trip_worker(
            WorkerMsg::Finished {
                lease: LeaseId(7),
                final_values: values,
                duration_ms: 1234,
            },
            "finished",
        );
        round_trip_worker(
            WorkerMsg::Failed {
                lease: LeaseId(8),
                reason: "exit code 3".into(),
            },
            "failed",
        );
        round_trip_worker(
            WorkerMsg::Stopped {
                lease: LeaseId(9),
                step: 0,
            },
            "stopped",
        );
        let params: Params = [
            ("lr".to_string(), serde_json::json!(0.01)),
            ("width".to_string(), serde_json::json!(64)),
        ]
        .into();
        round_trip_server(
            ServerMsg::Assign {
                lease: LeaseId(1),
                trial: TrialId(4),
                experiment: "e1".into(),
                attempt: 2,
                spec: TrialSpec::synthetic(20),
                params: params.clone(),
                resource: Some(5),
                may_wait: true,
            },
            "assign",
        );
        round_trip_server(
            ServerMsg::Assign {
                lease: LeaseId(2),
                trial: TrialId(5),
                experiment: "e1".into(),
                attempt: 1,
                spec: TrialSpec::Command {
                    program: "python3".into(),
                    args: vec!["train.py".into(), "--lr={lr}".into()],
                    env: [("CUDA_VISIBLE_DEVICES".to_string(), "0".to_string())].into(),
                    working_dir: Some("/tmp".into()),
                    grace_ms: 500,
                },
                params,
                resource: None,
                may_wait: false,
            },
            "assign",
        );
        round_trip_server(
            ServerMsg::Continue {
                lease: LeaseId(1),
                resource: Some(15),
            },
            "continue",
        );
        round_trip_server(ServerMsg::Ack { count: 12 }, "ack");
        round_trip_server(
            ServerMsg::Stop {
                lease: LeaseId(1),
                reason: "median rule".into(),
            },
            "stop",
        );
    }

    #[test]
    fn trial_spec_is_tagged_with_defaults_and_strict() {
        let spec: TrialSpec =
            serde_json::from_str(r#"{"kind": "command", "program": "./train"}"#).unwrap();
        assert_eq!(
            spec,
            TrialSpec::Command {
                program: "./train".into(),
                args: vec![],
                env: BTreeMap::new(),
                working_dir: None,
                grace_ms: 10_000,
            }
        );
        let spec: TrialSpec =
            serde_json::from_str(r#"{"kind": "synthetic", "steps": 20}"#).unwrap();
        assert_eq!(spec, TrialSpec::synthetic(20));
        assert!(
            serde_json::from_str::<TrialSpec>(r#"{"kind": "synthetic", "steps": 20, "x": 1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<TrialSpec>(r#"{"kind": "eo-cnn"}"#).is_err());
        let spec: TrialSpec = serde_json::from_str(
            r#"{"kind": "eo_cnn", "dataset_root": "/d", "dataset": "ben", "version": 2}"#,
        )
        .unwrap();
        assert_eq!(
            spec,
            TrialSpec::EoCnn {
                dataset_root: "/d".into(),
                dataset: "ben".into(),
                version: Some(2),
                device: None,
                models_dir: None,
                threads: None,
            }
        );
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"kind": "eo_cnn", "dataset_root": "/d", "dataset": "ben", "version": 2})
        );
        // The dataset folder may be left out: the server fills in its own.
        assert!(matches!(
            serde_json::from_str::<TrialSpec>(r#"{"kind": "eo_cnn", "dataset": "ben"}"#),
            Ok(TrialSpec::EoCnn { dataset_root, .. }) if dataset_root.is_empty()
        ));
        assert!(serde_json::from_str::<TrialSpec>(r#"{"kind": "eo_cnn"}"#).is_err());
        // A lease id and a trial id are plain numbers on the wire.
        let text = serde_json::to_string(&WorkerMsg::Stopped {
            lease: LeaseId(3),
            step: 2,
        })
        .unwrap();
        assert_eq!(text, r#"{"type":"stopped","lease":3,"step":2}"#);
        assert_eq!(
            WorkerMsg::Stopped {
                lease: LeaseId(3),
                step: 2
            }
            .lease(),
            Some(LeaseId(3))
        );
        assert!(
            WorkerMsg::Stopped {
                lease: LeaseId(3),
                step: 2
            }
            .ends_lease()
        );
        assert!(
            !WorkerMsg::Paused {
                lease: LeaseId(3),
                step: 2
            }
            .ends_lease()
        );
        assert_eq!(WorkerMsg::Heartbeat.lease(), None);
    }
}
