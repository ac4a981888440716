//! Jobs: work a worker does for the server that is not a trial: building a training dataset
//! (`albedo_raster::dataset::build`) into the folder the server names, and classifying a
//! product with a registered model (`crate::classify`, with the `eo-cnn` feature).
//!
//! A job runs on a blocking thread and takes a slot until it ends. It reports
//! `job_progress` at most every [`PROGRESS_EVERY`], then exactly one `job_done` (with what
//! it made) or `job_failed` (with why, including a cancel). A cancel is seen between blocks
//! of patches (datasets) or batches of windows (classify).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use albedo_raster::dataset::{DatasetSpec, build};
use albedo_shared::protocol::{JobId, JobSpec, WorkerMsg};

/// Shortest time between two progress reports of a job.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs job `job` to its end, reporting through `reports`; `cancel` stops it.
pub async fn run(
    job: JobId,
    spec: JobSpec,
    cancel: Arc<AtomicBool>,
    reports: mpsc::UnboundedSender<WorkerMsg>,
) {
    let progress = reports.clone();
    let outcome = tokio::task::spawn_blocking(move || run_blocking(job, spec, &cancel, &progress))
        .await
        .unwrap_or_else(|e| Err(format!("the job's thread failed: {e}")));
    let msg = match outcome {
        Ok(result) => WorkerMsg::JobDone { job, result },
        Err(reason) => WorkerMsg::JobFailed { job, reason },
    };
    let _ = reports.send(msg);
}

fn run_blocking(
    job: JobId,
    spec: JobSpec,
    cancel: &AtomicBool,
    reports: &mpsc::UnboundedSender<WorkerMsg>,
) -> Result<serde_json::Value, String> {
    match spec {
        JobSpec::BuildDataset { root, spec } => {
            let spec: DatasetSpec =
                serde_json::from_value(spec).map_err(|e| format!("bad dataset spec: {e}"))?;
            let root = PathBuf::from(root);
            std::fs::create_dir_all(&root)
                .map_err(|e| format!("creating {}: {e}", root.display()))?;
            let mut last = Instant::now() - PROGRESS_EVERY;
            let mut on_progress = |p: albedo_raster::dataset::Progress| {
                if cancel.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                if last.elapsed() >= PROGRESS_EVERY || p.done == p.total {
                    last = Instant::now();
                    let _ = reports.send(WorkerMsg::JobProgress {
                        job,
                        done: p.done,
                        total: p.total,
                    });
                }
                ControlFlow::Continue(())
            };
            tracing::info!(%job, name = %spec.name, "building a dataset");
            let dataset = build(&root, &spec, &mut on_progress).map_err(|e| e.to_string())?;
            serde_json::to_value(dataset.manifest()).map_err(|e| e.to_string())
        }
        #[cfg(feature = "eo-cnn")]
        JobSpec::Classify {
            model_dir,
            bands,
            band_indices,
            output,
            batch,
            device,
        } => {
            let spec = crate::classify::ClassifyJob {
                model_dir: PathBuf::from(model_dir),
                bands,
                band_indices,
                output: PathBuf::from(output),
                batch,
                device,
            };
            let mut last = Instant::now() - PROGRESS_EVERY;
            let mut on_progress = |done: u64, total: u64| {
                if cancel.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                if last.elapsed() >= PROGRESS_EVERY || done == total {
                    last = Instant::now();
                    let _ = reports.send(WorkerMsg::JobProgress { job, done, total });
                }
                ControlFlow::Continue(())
            };
            tracing::info!(%job, output = %spec.output.display(), "classifying a product");
            crate::classify::classify(&spec, &mut on_progress)
        }
        #[cfg(not(feature = "eo-cnn"))]
        JobSpec::Classify { .. } => {
            Err("this worker was built without the `eo-cnn` feature: it cannot classify".into())
        }
    }
}
