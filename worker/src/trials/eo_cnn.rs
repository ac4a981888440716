//! The `eo_cnn` trial: the built-in CNN trainer (`albedo_trainer`) on a training dataset.
//!
//! The trial's parameters are the hyperparameters ([`TrainConfig::from_params`]: `lr`,
//! `width`, `depth`, `dropout`, `batch_size`, `epochs`, `optimizer`, `seed`, `channels`,
//! `drop_channels`, `drop_block`, `reports_per_epoch`, `threads`, and an ablation trial's
//! `ablate`). Training runs on a blocking thread (`spawn_blocking`); its progress reports
//! come back as [`WorkerMsg::Metric`]s with `train_loss`, `train_accuracy`, `val_loss` and
//! `val_accuracy`. A step is one report: the epoch number with the default one report per
//! epoch, else `(epoch - 1) * reports_per_epoch + k`. A lease's `resource` pauses the run
//! after that step (the training thread waits); a stop sets the trainer's stop flag, read
//! before every batch. A finished run saves its model (`model.safetensors` + `model.json`)
//! in `<models dir>/<experiment>/trial-<id>/` and reports that folder (absolute) as its
//! `model` [`WorkerMsg::Artifact`] before `Finished`; the models dir comes from the trial spec,
//! else from the worker's `--models-dir` ([`set_defaults`]), else
//! `$TMPDIR/albedo-models`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use albedo_raster::dataset::Dataset;
use albedo_shared::protocol::WorkerMsg;
use albedo_trainer::{Compute, Progress, TrainConfig, TrainerError};
use tokio::sync::mpsc;

use super::{Assignment, Control, Reporter};

/// What the worker process gives every `eo_cnn` trial unless its spec says otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EoCnnDefaults {
    /// Folder the models are saved under.
    pub models_dir: Option<PathBuf>,
    /// The device.
    pub device: Compute,
    /// Threads of each trial's rayon pool (`None`: rayon's default).
    pub threads: Option<usize>,
}

static DEFAULTS: OnceLock<EoCnnDefaults> = OnceLock::new();

/// Sets the process's defaults (once, at start-up); false if they were already set.
pub fn set_defaults(d: EoCnnDefaults) -> bool {
    DEFAULTS.set(d).is_ok()
}

fn defaults() -> EoCnnDefaults {
    DEFAULTS.get().cloned().unwrap_or_default()
}

/// The worker's `--device` (what a classify job that names none runs on).
pub(crate) fn default_device() -> Compute {
    defaults().device
}

/// The trial spec's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EoCnnSpec<'a> {
    pub dataset_root: &'a str,
    pub dataset: &'a str,
    pub version: Option<u32>,
    pub device: Option<&'a str>,
    pub models_dir: Option<&'a str>,
    pub threads: Option<u32>,
}

/// A path component from an id: `A-Z a-z 0-9 . _ -` kept, anything else `_`.
fn component(s: &str) -> String {
    let c: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if c.is_empty() || c.starts_with('.') {
        format!("_{c}")
    } else {
        c
    }
}

/// The model folder of a trial.
pub fn model_dir(models_dir: &Path, experiment: &str, trial: u64) -> PathBuf {
    models_dir
        .join(component(experiment))
        .join(format!("trial-{trial}"))
}

/// Pause and stop orders from the async side to the training thread.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    resource: Option<u32>,
    stop: bool,
}

enum Event {
    Progress(Progress),
    Paused(u32),
}

struct Done {
    final_values: BTreeMap<String, f64>,
    running: Duration,
    model: Option<PathBuf>,
    images_per_sec: f64,
}

/// Runs an `eo_cnn` trial under `a.lease`; returns when the lease has ended (its last
/// report sent) or the control channel closed (the training thread is told to stop).
pub(crate) async fn run(
    a: &Assignment,
    spec: EoCnnSpec<'_>,
    control: &mut mpsc::UnboundedReceiver<Control>,
    reports: &Reporter,
) {
    let lease = a.lease;
    let fail = |reason: String| {
        let _ = reports.send(WorkerMsg::Failed { lease, reason });
    };
    let defaults = defaults();
    let mut cfg = match TrainConfig::from_params(&a.params) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    if cfg.threads.is_none() {
        cfg.threads = spec.threads.map(|t| t as usize).or(defaults.threads);
    }
    let compute = match spec.device.map(str::parse::<Compute>).transpose() {
        Ok(d) => d.unwrap_or(defaults.device),
        Err(e) => return fail(e.to_string()),
    };
    let models_dir = spec
        .models_dir
        .map(PathBuf::from)
        .or(defaults.models_dir)
        .unwrap_or_else(|| std::env::temp_dir().join("albedo-models"));
    let out_dir = model_dir(&models_dir, &a.experiment, a.trial.0);
    let root = PathBuf::from(spec.dataset_root);
    let (name, version) = (spec.dataset.to_string(), spec.version);

    let gate = Arc::new(Gate::default());
    gate.state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .resource = a.resource;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut events) = mpsc::unbounded_channel::<Event>();
    let job = {
        let (gate, stop) = (gate.clone(), stop.clone());
        tokio::task::spawn_blocking(move || -> Result<Done, TrainerError> {
            let started = Instant::now();
            let ds = Dataset::open(&root, &name, version)?;
            let last_epoch = cfg.epochs;
            let mut paused = Duration::ZERO;
            let mut on_progress = |p: &Progress| {
                let _ = tx.send(Event::Progress(p.clone()));
                if p.end_of_epoch && p.epoch == last_epoch {
                    return; // the end: finish rather than pause
                }
                let mut g = gate.state.lock().unwrap_or_else(|e| e.into_inner());
                if g.stop || g.resource.is_none_or(|r| p.step < r) {
                    return;
                }
                let since = Instant::now();
                let _ = tx.send(Event::Paused(p.step));
                while !g.stop && g.resource.is_some_and(|r| p.step >= r) {
                    g = gate.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                paused += since.elapsed();
            };
            let out = albedo_trainer::train(&ds, &cfg, compute, &stop, &mut on_progress)?;
            let final_values = out
                .history
                .last()
                .map(|p| {
                    p.metrics()
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                })
                .unwrap_or_default();
            let model = if out.stopped {
                None
            } else {
                out.model.save(&out_dir)?;
                Some(
                    std::fs::canonicalize(&out_dir).map_err(|source| TrainerError::Io {
                        path: out_dir.clone(),
                        source,
                    })?,
                )
            };
            Ok(Done {
                final_values,
                running: started.elapsed().saturating_sub(paused),
                model,
                images_per_sec: out.train_images_per_sec,
            })
        })
    };

    let order = |f: &dyn Fn(&mut GateState)| {
        let mut g = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
        gate.wake.notify_all();
    };
    let mut last_step = 0;
    let mut stopped = false;
    let mut control_open = true;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Progress(p)) => {
                    last_step = p.step;
                    let values = p.metrics().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    let _ = reports.send(WorkerMsg::Metric { lease, step: p.step, values });
                }
                Some(Event::Paused(step)) => {
                    let _ = reports.send(WorkerMsg::Paused { lease, step });
                }
                // The training thread has returned.
                None => break,
            },
            c = control.recv(), if control_open => match c {
                None => {
                    // Dropped: end without a report; the training thread stops at its next batch.
                    stop.store(true, Ordering::SeqCst);
                    order(&|g| g.stop = true);
                    return;
                }
                Some(Control::Stop) => {
                    stopped = true;
                    control_open = false;
                    stop.store(true, Ordering::SeqCst);
                    order(&|g| g.stop = true);
                }
                Some(Control::Continue(r)) => order(&|g| g.resource = r),
            },
        }
    }
    match job.await {
        _ if stopped => {
            let _ = reports.send(WorkerMsg::Stopped {
                lease,
                step: last_step,
            });
        }
        Ok(Ok(done)) => {
            tracing::info!(
                lease = %lease,
                model = ?done.model,
                images_per_sec = done.images_per_sec,
                "eo_cnn trial finished"
            );
            if let Some(dir) = &done.model {
                let _ = reports.send(WorkerMsg::Artifact {
                    lease,
                    name: "model".into(),
                    uri: dir.display().to_string(),
                });
            }
            let _ = reports.send(WorkerMsg::Finished {
                lease,
                final_values: done.final_values,
                duration_ms: done.running.as_millis() as u64,
            });
        }
        Ok(Err(e)) => fail(e.to_string()),
        Err(e) => fail(format!("the training thread failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::ops::ControlFlow;

    use albedo_raster::dataset::{self, ClassMapping, DatasetSpec, SourceSpec};
    use albedo_shared::experiment::{Params, TrialId};
    use albedo_shared::protocol::{LeaseId, TrialSpec};

    use crate::trials::run_trial;

    /// A small BigEarthNet dataset (3 bands, 30x30 patches) under a fresh folder.
    fn dataset_root(tag: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("albedo-worker-eo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = std::env::var_os("ALBEDO_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/shared/data"));
        let classes = ClassMapping::bigearthnet_sample();
        let spec = DatasetSpec::new(
            "ben",
            SourceSpec::BigEarthNet {
                dir: data.join("labeled/bigearthnet/v1_geotiff/S2"),
                patches: vec![],
            },
            &["B02", "B03", "B04"],
            classes,
            30,
        );
        dataset::build(&root.join("datasets"), &spec, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        root
    }

    fn assignment(
        root: &Path,
        lease: u64,
        params: serde_json::Value,
        resource: Option<u32>,
    ) -> Assignment {
        Assignment {
            lease: LeaseId(lease),
            trial: TrialId(lease),
            experiment: "e1".into(),
            attempt: 1,
            spec: TrialSpec::EoCnn {
                dataset_root: root.join("datasets").display().to_string(),
                dataset: "ben".into(),
                version: None,
                device: Some("cpu".into()),
                models_dir: Some(root.join("models").display().to_string()),
                threads: Some(1),
            },
            params: serde_json::from_value::<Params>(params).unwrap(),
            may_wait: false,
            resource,
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<WorkerMsg>) -> WorkerMsg {
        tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("a report in time")
            .expect("channel open")
    }

    fn step_of(m: &WorkerMsg) -> u32 {
        match m {
            WorkerMsg::Metric { step, values, .. } => {
                for k in ["train_loss", "train_accuracy", "val_loss", "val_accuracy"] {
                    assert!(values[k].is_finite(), "{k} in {values:?}");
                }
                *step
            }
            other => panic!("expected a metric, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_eo_cnn_trial_pauses_continues_finishes_and_saves_its_model() {
        let root = dataset_root("run");
        let params =
            serde_json::json!({"width": 4, "depth": 2, "epochs": 3, "batch_size": 32, "lr": 0.003});
        let (rep_tx, mut rep) = mpsc::unbounded_channel();
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let a = assignment(&root, 1, params, Some(1));
        let task = tokio::spawn(run_trial(a, ctl_rx, rep_tx));
        assert_eq!(step_of(&next(&mut rep).await), 1);
        assert_eq!(
            next(&mut rep).await,
            WorkerMsg::Paused {
                lease: LeaseId(1),
                step: 1
            }
        );
        ctl.send(Control::Continue(None)).unwrap();
        assert_eq!(step_of(&next(&mut rep).await), 2);
        assert_eq!(step_of(&next(&mut rep).await), 3);
        let dir = model_dir(&root.join("models"), "e1", 1);
        assert_eq!(
            next(&mut rep).await,
            WorkerMsg::Artifact {
                lease: LeaseId(1),
                name: "model".into(),
                uri: std::fs::canonicalize(&dir).unwrap().display().to_string(),
            }
        );
        match next(&mut rep).await {
            WorkerMsg::Finished {
                lease,
                final_values,
                ..
            } => {
                assert_eq!(lease, LeaseId(1));
                let keys: Vec<&str> = final_values.keys().map(String::as_str).collect();
                assert_eq!(
                    keys,
                    ["train_accuracy", "train_loss", "val_accuracy", "val_loss"]
                );
            }
            other => panic!("{other:?}"),
        }
        task.await.unwrap();
        let model = albedo_trainer::EoCnn::load(&dir, Compute::Cpu).unwrap();
        assert_eq!(model.config().channels, ["B02", "B03", "B04"]);
        assert_eq!(model.config().epochs_completed, 3);

        // Bad parameters fail the trial with the parameter's name.
        let (rep_tx, mut rep) = mpsc::unbounded_channel();
        let (_ctl, ctl_rx) = mpsc::unbounded_channel();
        let a = assignment(&root, 2, serde_json::json!({"widht": 4}), None);
        run_trial(a, ctl_rx, rep_tx).await;
        match next(&mut rep).await {
            WorkerMsg::Failed { reason, .. } => assert!(reason.contains("widht"), "{reason}"),
            other => panic!("{other:?}"),
        }

        // A stop ends a run between batches: stopped, no model.
        let (rep_tx, mut rep) = mpsc::unbounded_channel();
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let params = serde_json::json!({"width": 4, "depth": 2, "epochs": 50, "batch_size": 4, "reports_per_epoch": 4});
        let a = assignment(&root, 3, params, None);
        let task = tokio::spawn(run_trial(a, ctl_rx, rep_tx));
        assert_eq!(step_of(&next(&mut rep).await), 1);
        ctl.send(Control::Stop).unwrap();
        loop {
            match next(&mut rep).await {
                WorkerMsg::Metric { .. } => {}
                WorkerMsg::Stopped { lease, step } => {
                    assert_eq!(lease, LeaseId(3));
                    assert!(
                        (1..10).contains(&step),
                        "stopped within a few reports: {step}"
                    );
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        task.await.unwrap();
        assert!(!model_dir(&root.join("models"), "e1", 3).exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn model_dirs_are_one_component_per_id() {
        let d = model_dir(Path::new("/m"), "e12", 3);
        assert_eq!(d, Path::new("/m/e12/trial-3"));
        let d = model_dir(Path::new("/m"), "../x/y", 3);
        assert_eq!(d, Path::new("/m/_.._x_y/trial-3"));
        assert_eq!(component(""), "_");
    }
}
