//! Trial runners: one tokio task per lease, up to the worker's slots at once.
//!
//! The connection task hands each [`ServerMsg::Assign`] / `Continue` / `Stop` to a
//! [`TrialManager`]; every runner reports [`WorkerMsg`]s (metric, paused, finished, failed,
//! stopped) through one unbounded channel that the connection task drains into the socket.
//! A runner ends its lease with exactly one of finished, failed or stopped.
//!
//! Runners: [`synthetic`] (the benchmark's deterministic workload), [`command`] (any
//! program) and `eo_cnn` (the built-in CNN trainer; cargo feature `eo-cnn`, on by default:
//! a worker built without it fails such trials with a reason).
//!
//! [`ServerMsg::Assign`]: albedo_shared::protocol::ServerMsg::Assign

pub mod command;
#[cfg(feature = "eo-cnn")]
pub mod eo_cnn;
pub mod synthetic;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use albedo_shared::experiment::{Params, TrialId};
use albedo_shared::protocol::{JobId, JobSpec, LeaseId, TrialSpec, WorkerMsg};

pub use synthetic::{SyntheticParams, synthetic_curve, synthetic_seed};

/// One lease to run: the fields of an assign message.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The lease.
    pub lease: LeaseId,
    /// The trial.
    pub trial: TrialId,
    /// Id of the experiment.
    pub experiment: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// What to run.
    pub spec: TrialSpec,
    /// The configuration.
    pub params: Params,
    /// Step to pause at; `None` runs to the end.
    pub resource: Option<u32>,
}

/// An order to a running trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep running to this resource (`None`: to the end).
    Continue(Option<u32>),
    /// Stop now.
    Stop,
}

/// Runs one lease to its end, reporting through `reports`. Dropping every sender of `control`
/// ends the trial without a report (a command's program is killed).
pub async fn run_trial(
    a: Assignment,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: mpsc::UnboundedSender<WorkerMsg>,
) {
    match &a.spec {
        TrialSpec::Synthetic {
            steps,
            seed,
            step_ms,
        } => {
            synthetic::run(&a, *steps, *seed, *step_ms, &mut control, &reports).await;
        }
        TrialSpec::Command {
            program,
            args,
            env,
            working_dir,
            grace_ms,
        } => {
            command::run(
                &a,
                program,
                args,
                env,
                working_dir.as_deref(),
                *grace_ms,
                &mut control,
                &reports,
            )
            .await;
        }
        #[cfg(feature = "eo-cnn")]
        TrialSpec::EoCnn {
            dataset_root,
            dataset,
            version,
            device,
            models_dir,
            threads,
        } => {
            let spec = eo_cnn::EoCnnSpec {
                dataset_root,
                dataset,
                version: *version,
                device: device.as_deref(),
                models_dir: models_dir.as_deref(),
                threads: *threads,
            };
            eo_cnn::run(&a, spec, &mut control, &reports).await;
        }
        #[cfg(not(feature = "eo-cnn"))]
        TrialSpec::EoCnn { .. } => {
            let _ = reports.send(WorkerMsg::Failed {
                lease: a.lease,
                reason: "this worker was built without the eo-cnn feature".into(),
            });
        }
    }
}

/// The trials running on this worker, by lease. A paused trial (ASHA's rung) keeps its
/// runner, waiting for continue or stop, but takes no slot.
#[derive(Debug)]
pub struct TrialManager {
    slots: usize,
    running: HashMap<LeaseId, mpsc::UnboundedSender<Control>>,
    paused: HashSet<LeaseId>,
    jobs: HashMap<JobId, Arc<AtomicBool>>,
    reports: mpsc::UnboundedSender<WorkerMsg>,
}

impl TrialManager {
    /// A manager of `slots` slots whose runners report into `reports`.
    pub fn new(slots: u32, reports: mpsc::UnboundedSender<WorkerMsg>) -> Self {
        Self {
            slots: slots.max(1) as usize,
            running: HashMap::new(),
            paused: HashSet::new(),
            jobs: HashMap::new(),
            reports,
        }
    }

    /// Forgets the leases whose runner has returned.
    fn prune(&mut self) {
        self.running.retain(|_, tx| !tx.is_closed());
        let running = &self.running;
        self.paused.retain(|l| running.contains_key(l));
    }

    /// Number of trials running (or paused) now.
    pub fn running(&mut self) -> usize {
        self.prune();
        self.running.len()
    }

    /// Number of slots in use: running trials (not paused ones) and jobs.
    pub fn busy(&mut self) -> usize {
        self.prune();
        self.running.len() - self.paused.len() + self.jobs.len()
    }

    /// The jobs running here.
    pub fn jobs(&self) -> Vec<JobId> {
        let mut out: Vec<JobId> = self.jobs.keys().copied().collect();
        out.sort();
        out
    }

    /// Starts job `job` (within a tokio runtime); a job already running is ignored, one
    /// beyond the slots is answered `job_failed` at once.
    pub fn run_job(&mut self, job: JobId, spec: JobSpec) {
        if self.jobs.contains_key(&job) {
            tracing::warn!(%job, "ignoring a second start of a running job");
            return;
        }
        if self.busy() >= self.slots {
            let reason = format!("worker has no free slot ({} in use)", self.busy());
            let _ = self.reports.send(WorkerMsg::JobFailed { job, reason });
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.jobs.insert(job, cancel.clone());
        tokio::spawn(crate::jobs::run(job, spec, cancel, self.reports.clone()));
    }

    /// Asks job `job` to stop; false if it does not run here.
    pub fn cancel_job(&mut self, job: JobId) -> bool {
        match self.jobs.get(&job) {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The leases running or paused here (what a hello lists after a reconnect).
    pub fn leases(&mut self) -> Vec<LeaseId> {
        self.prune();
        let mut out: Vec<LeaseId> = self.running.keys().copied().collect();
        out.sort();
        out
    }

    /// Notes a runner's report on its way out: a paused or ended trial frees its slot.
    pub fn observe(&mut self, report: &WorkerMsg) {
        match report {
            WorkerMsg::JobDone { job, .. } | WorkerMsg::JobFailed { job, .. } => {
                self.jobs.remove(job);
            }
            WorkerMsg::Paused { lease, .. } => {
                self.paused.insert(*lease);
            }
            // Its runner sends the end report last and is returning: its slot is free now,
            // before the server (told by this very report) can assign the next trial.
            r if r.ends_lease() => {
                if let Some(lease) = r.lease() {
                    self.paused.remove(&lease);
                    self.running.remove(&lease);
                }
            }
            _ => {}
        }
    }

    /// Starts a runner for `a` (must be called within a tokio runtime). A lease already
    /// running is ignored (a duplicate assign); an assign beyond the slots is answered
    /// `failed` at once, so that the server can lease the trial elsewhere.
    pub fn assign(&mut self, a: Assignment) {
        self.prune();
        if self.running.contains_key(&a.lease) {
            tracing::warn!(lease = %a.lease, "ignoring a second assign of a running lease");
            return;
        }
        if self.busy() >= self.slots {
            let reason = format!("worker has no free slot ({} in use)", self.busy());
            let _ = self.reports.send(WorkerMsg::Failed {
                lease: a.lease,
                reason,
            });
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.running.insert(a.lease, tx);
        tracing::info!(lease = %a.lease, trial = %a.trial, experiment = %a.experiment, "trial started");
        tokio::spawn(run_trial(a, rx, self.reports.clone()));
    }

    /// Passes `control` to the runner of `lease`. Returns false if no such lease runs here
    /// (it has ended, or never ran on this worker).
    pub fn control(&mut self, lease: LeaseId, control: Control) -> bool {
        self.prune();
        match self.running.get(&lease) {
            Some(tx) => {
                if matches!(control, Control::Continue(_)) {
                    self.paused.remove(&lease);
                }
                tx.send(control).is_ok()
            }
            None => false,
        }
    }
}
