//! Trial runners: one tokio task per lease, up to the worker's slots at once.
//!
//! The connection task hands each [`ServerMsg::Assign`] / `Continue` / `Stop` to a
//! [`TrialManager`]; every runner reports [`WorkerMsg`]s (metric, paused, finished, failed,
//! stopped) through one unbounded channel that the connection task drains into the socket.
//! A runner ends its lease with exactly one of finished, failed or stopped.
//!
//! Runners: [`synthetic`] (the benchmark's deterministic workload) and [`command`] (any
//! program).
//!
//! [`ServerMsg::Assign`]: albedo_shared::protocol::ServerMsg::Assign

pub mod command;
pub mod synthetic;

use std::collections::HashMap;

use tokio::sync::mpsc;

use albedo_shared::experiment::{Params, TrialId};
use albedo_shared::protocol::{LeaseId, TrialSpec, WorkerMsg};

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
        TrialSpec::Synthetic { steps } => {
            synthetic::run(&a, *steps, &mut control, &reports).await;
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
    }
}

/// The trials running on this worker, by lease.
#[derive(Debug)]
pub struct TrialManager {
    slots: usize,
    running: HashMap<LeaseId, mpsc::UnboundedSender<Control>>,
    reports: mpsc::UnboundedSender<WorkerMsg>,
}

impl TrialManager {
    /// A manager of `slots` slots whose runners report into `reports`.
    pub fn new(slots: u32, reports: mpsc::UnboundedSender<WorkerMsg>) -> Self {
        Self {
            slots: slots.max(1) as usize,
            running: HashMap::new(),
            reports,
        }
    }

    /// Forgets the leases whose runner has returned.
    fn prune(&mut self) {
        self.running.retain(|_, tx| !tx.is_closed());
    }

    /// Number of trials running (or paused) now.
    pub fn running(&mut self) -> usize {
        self.prune();
        self.running.len()
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
        if self.running.len() >= self.slots {
            let reason = format!("worker has no free slot ({} in use)", self.running.len());
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
            Some(tx) => tx.send(control).is_ok(),
            None => false,
        }
    }
}
