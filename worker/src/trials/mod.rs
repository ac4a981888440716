//! Trial runners: one tokio task per busy slot, up to the worker's slots at once; leases
//! assigned while every slot is busy (the experiment's `prefetch`) wait in a queue, in the
//! order they came, and start the moment a slot frees (each reports `started` then). A
//! runner that ends its lease takes the next queued lease itself, in the same task, in the
//! instant its end report leaves: no hop through the connection task between two trials.
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use albedo_shared::experiment::{MAX_PREFETCH, Params, TrialId};
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
    /// It may wait here for a slot (the server knew every slot was busy).
    pub may_wait: bool,
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
    control: mpsc::UnboundedReceiver<Control>,
    reports: mpsc::UnboundedSender<WorkerMsg>,
) {
    run_one(
        a,
        control,
        &Reporter {
            tx: reports,
            slot: None,
        },
        &mut synthetic::Timer::default(),
    )
    .await;
}

/// Where a runner's reports go: the connection's channel and, for a runner of a
/// [`TrialManager`], its slot's bookkeeping: the report that ends a lease frees the slot
/// before it leaves (so that the server, told by it, finds the slot free) and hands the slot
/// to the next queued lease, which this runner's task then runs.
#[derive(Debug)]
pub(crate) struct Reporter {
    tx: mpsc::UnboundedSender<WorkerMsg>,
    slot: Option<Handoff>,
}

#[derive(Debug)]
struct Handoff {
    state: Arc<Mutex<State>>,
    next: Mutex<Option<Started>>,
}

impl Reporter {
    /// Sends `msg` to the connection (an error only once the connection's side is gone).
    pub(crate) fn send(&self, msg: WorkerMsg) -> Result<(), mpsc::error::SendError<WorkerMsg>> {
        let (Some(slot), Some(lease)) = (&self.slot, msg.lease().filter(|_| msg.ends_lease()))
        else {
            return self.tx.send(msg);
        };
        let next = lock(&slot.state).release(lease);
        let sent = self.tx.send(msg);
        if let Some(next) = next {
            let _ = self.tx.send(WorkerMsg::Started {
                lease: next.assignment.lease,
            });
            *lock(&slot.next) = Some(next);
        }
        sent
    }

    /// The lease handed to this runner's slot when its last lease ended, if any.
    fn take_next(&self) -> Option<Started> {
        self.slot.as_ref().and_then(|s| lock(&s.next).take())
    }
}

/// Runs `first`, then every lease its slot is handed as each ends (see [`Reporter`]).
async fn run_slot(first: Started, reports: Reporter) {
    let mut next = Some(first);
    let mut timer = synthetic::Timer::default();
    while let Some(Started {
        assignment,
        control,
    }) = next
    {
        tracing::info!(lease = %assignment.lease, trial = %assignment.trial, experiment = %assignment.experiment, "trial started");
        run_one(assignment, control, &reports, &mut timer).await;
        next = reports.take_next();
    }
}

async fn run_one(
    a: Assignment,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: &Reporter,
    timer: &mut synthetic::Timer,
) {
    match &a.spec {
        TrialSpec::Synthetic {
            steps,
            seed,
            step_ms,
        } => {
            synthetic::run(&a, *steps, *seed, *step_ms, &mut control, reports, timer).await;
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
                reports,
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
            eo_cnn::run(&a, spec, &mut control, reports).await;
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

/// Locks `m`, whatever a panicking holder left (every update below is a whole step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lease on its way to a slot, with the receiving end of its control channel.
#[derive(Debug)]
struct Started {
    assignment: Assignment,
    control: mpsc::UnboundedReceiver<Control>,
}

/// What the slots hold, shared by the manager (the connection task) and the runners.
#[derive(Debug)]
struct State {
    slots: usize,
    running: HashMap<LeaseId, mpsc::UnboundedSender<Control>>,
    paused: HashSet<LeaseId>,
    queued: VecDeque<Assignment>,
    jobs: HashMap<JobId, Arc<AtomicBool>>,
}

impl State {
    /// Slots in use: running trials (not paused ones) and jobs.
    fn in_use(&self) -> usize {
        self.running.len() - self.paused.len() + self.jobs.len()
    }

    /// Forgets the leases whose runner has returned without an end report.
    fn prune(&mut self) {
        self.running.retain(|_, tx| !tx.is_closed());
        let running = &self.running;
        self.paused.retain(|l| running.contains_key(l));
    }

    /// Registers `a` as running and returns it with its control receiver.
    fn start(&mut self, a: Assignment) -> Started {
        let (tx, control) = mpsc::unbounded_channel();
        self.running.insert(a.lease, tx);
        Started {
            assignment: a,
            control,
        }
    }

    /// The next queued lease, moved onto a free slot, if there are both.
    fn take_queued(&mut self) -> Option<Started> {
        if self.in_use() >= self.slots {
            return None;
        }
        let a = self.queued.pop_front()?;
        Some(self.start(a))
    }

    /// Frees the slot of `lease` (ended) and hands it to the next queued lease, if any.
    fn release(&mut self, lease: LeaseId) -> Option<Started> {
        self.paused.remove(&lease);
        self.running.remove(&lease);
        self.take_queued()
    }
}

/// The trials running on this worker, by lease. A paused trial (ASHA's rung) keeps its
/// runner, waiting for continue or stop, but takes no slot. Leases assigned while every slot
/// is busy wait in a queue (at most [`MAX_PREFETCH`] per slot).
#[derive(Debug)]
pub struct TrialManager {
    state: Arc<Mutex<State>>,
    reports: mpsc::UnboundedSender<WorkerMsg>,
}

impl TrialManager {
    /// A manager of `slots` slots whose runners report into `reports`.
    pub fn new(slots: u32, reports: mpsc::UnboundedSender<WorkerMsg>) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                slots: slots.max(1) as usize,
                running: HashMap::new(),
                paused: HashSet::new(),
                queued: VecDeque::new(),
                jobs: HashMap::new(),
            })),
            reports,
        }
    }

    /// Forgets the leases whose runner has returned, and starts queued leases on the slots
    /// that frees (and on any other free slot).
    fn prune(&self) {
        lock(&self.state).prune();
        self.start_queued();
    }

    /// Starts queued leases while a slot is free; each reports `started`.
    fn start_queued(&self) {
        loop {
            let Some(next) = lock(&self.state).take_queued() else {
                return;
            };
            let _ = self.reports.send(WorkerMsg::Started {
                lease: next.assignment.lease,
            });
            self.spawn(next);
        }
    }

    /// Number of trials running (or paused) now.
    pub fn running(&mut self) -> usize {
        self.prune();
        lock(&self.state).running.len()
    }

    /// Number of leases waiting for a slot.
    pub fn queued(&self) -> usize {
        lock(&self.state).queued.len()
    }

    /// Number of slots in use: running trials (not paused ones) and jobs.
    pub fn busy(&mut self) -> usize {
        self.prune();
        lock(&self.state).in_use()
    }

    /// The jobs running here.
    pub fn jobs(&self) -> Vec<JobId> {
        let mut out: Vec<JobId> = lock(&self.state).jobs.keys().copied().collect();
        out.sort();
        out
    }

    /// Starts job `job` (within a tokio runtime); a job already running is ignored, one
    /// beyond the slots is answered `job_failed` at once.
    pub fn run_job(&mut self, job: JobId, spec: JobSpec) {
        self.prune();
        let mut state = lock(&self.state);
        if state.jobs.contains_key(&job) {
            tracing::warn!(%job, "ignoring a second start of a running job");
            return;
        }
        if state.in_use() >= state.slots {
            let reason = format!("worker has no free slot ({} in use)", state.in_use());
            let _ = self.reports.send(WorkerMsg::JobFailed { job, reason });
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        state.jobs.insert(job, cancel.clone());
        tokio::spawn(crate::jobs::run(job, spec, cancel, self.reports.clone()));
    }

    /// Asks job `job` to stop; false if it does not run here.
    pub fn cancel_job(&mut self, job: JobId) -> bool {
        match lock(&self.state).jobs.get(&job) {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The leases running, paused or queued here (what a hello lists after a reconnect).
    pub fn leases(&mut self) -> Vec<LeaseId> {
        self.prune();
        let state = lock(&self.state);
        let mut out: Vec<LeaseId> = state.running.keys().copied().collect();
        out.extend(state.queued.iter().map(|a| a.lease));
        out.sort();
        out
    }

    /// Notes a report on its way out: an ended job or a paused trial frees its slot. (A
    /// runner frees its own slot as its end report leaves; one whose runner is not ours, in
    /// tests, is freed here.)
    pub fn observe(&mut self, report: &WorkerMsg) {
        {
            let mut state = lock(&self.state);
            match report {
                WorkerMsg::JobDone { job, .. } | WorkerMsg::JobFailed { job, .. } => {
                    state.jobs.remove(job);
                }
                WorkerMsg::Paused { lease, .. } => {
                    state.paused.insert(*lease);
                }
                r if r.ends_lease() => {
                    if let Some(lease) = r.lease() {
                        state.paused.remove(&lease);
                        state.running.remove(&lease);
                    }
                }
                _ => return,
            }
        }
        self.start_queued();
    }

    /// Starts a runner for `a` (must be called within a tokio runtime), or queues it while
    /// every slot is busy if it may wait. A lease already here is ignored (a duplicate
    /// assign); an assign beyond the slots that may not wait, or beyond the queue, is
    /// answered `failed` at once, so that the server can lease the trial elsewhere.
    pub fn assign(&mut self, a: Assignment) {
        self.prune();
        let mut state = lock(&self.state);
        if state.running.contains_key(&a.lease) || state.queued.iter().any(|q| q.lease == a.lease) {
            tracing::warn!(lease = %a.lease, "ignoring a second assign of a lease");
            return;
        }
        // (After the prune above, a lease waits only while every slot is busy.)
        if state.in_use() >= state.slots {
            if !a.may_wait || state.queued.len() >= state.slots * MAX_PREFETCH as usize {
                let reason = if a.may_wait {
                    format!(
                        "worker has no free slot ({} in use) and {} trials wait already",
                        state.in_use(),
                        state.queued.len()
                    )
                } else {
                    format!("worker has no free slot ({} in use)", state.in_use())
                };
                let _ = self.reports.send(WorkerMsg::Failed {
                    lease: a.lease,
                    reason,
                });
            } else {
                tracing::debug!(lease = %a.lease, trial = %a.trial, "trial queued");
                state.queued.push_back(a);
            }
            return;
        }
        let started = state.start(a);
        drop(state);
        self.spawn(started);
    }

    fn spawn(&self, first: Started) {
        let reporter = Reporter {
            tx: self.reports.clone(),
            slot: Some(Handoff {
                state: self.state.clone(),
                next: Mutex::new(None),
            }),
        };
        tokio::spawn(run_slot(first, reporter));
    }

    /// Passes `control` to the runner of `lease`. Returns false if no such lease runs here
    /// (it has ended, or never ran on this worker). A queued lease told to stop leaves the
    /// queue and reports `stopped` at step 0.
    pub fn control(&mut self, lease: LeaseId, control: Control) -> bool {
        self.prune();
        let mut state = lock(&self.state);
        if let Some(at) = state.queued.iter().position(|q| q.lease == lease) {
            if control == Control::Stop {
                state.queued.remove(at);
                let _ = self.reports.send(WorkerMsg::Stopped { lease, step: 0 });
            }
            return true;
        }
        if matches!(control, Control::Continue(_)) && state.running.contains_key(&lease) {
            state.paused.remove(&lease);
        }
        match state.running.get(&lease) {
            Some(tx) => tx.send(control).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(lease: u64, step_ms: f64) -> Assignment {
        Assignment {
            lease: LeaseId(lease),
            trial: TrialId(lease),
            experiment: "e1".into(),
            attempt: 1,
            spec: TrialSpec::Synthetic {
                steps: 2,
                seed: 1,
                step_ms: Some(step_ms),
            },
            params: [
                ("lr".to_string(), serde_json::json!(0.01)),
                ("width".to_string(), serde_json::json!(32)),
                ("dropout".to_string(), serde_json::json!(0.2)),
            ]
            .into(),
            resource: None,
            may_wait: true,
        }
    }

    /// Feeds reports through the manager as the connection task does, until `n` lease ends.
    async fn drain(
        m: &mut TrialManager,
        rx: &mut mpsc::UnboundedReceiver<WorkerMsg>,
        n: usize,
    ) -> Vec<WorkerMsg> {
        let mut out = Vec::new();
        let mut ends = 0;
        while ends < n {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("a report in time")
                .expect("open channel");
            m.observe(&msg);
            ends += usize::from(msg.ends_lease());
            out.push(msg);
        }
        out
    }

    #[tokio::test]
    async fn a_lease_beyond_the_slots_waits_and_starts_when_a_slot_frees() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut m = TrialManager::new(1, tx);
        m.assign(synthetic(1, 5.0));
        m.assign(synthetic(2, 5.0));
        m.assign(synthetic(3, 5.0));
        assert_eq!((m.busy(), m.queued()), (1, 2));
        assert_eq!(m.leases(), vec![LeaseId(1), LeaseId(2), LeaseId(3)]);
        // The third is stopped while it waits: it never runs.
        assert!(m.control(LeaseId(3), Control::Stop));
        let reports = drain(&mut m, &mut rx, 3).await;
        let kinds: Vec<(u64, &str)> = reports
            .iter()
            .map(|r| {
                let kind = match r {
                    WorkerMsg::Started { .. } => "started",
                    WorkerMsg::Metric { .. } => "metric",
                    WorkerMsg::Finished { .. } => "finished",
                    WorkerMsg::Stopped { step: 0, .. } => "stopped",
                    other => panic!("unexpected {other:?}"),
                };
                (r.lease().expect("lease").0, kind)
            })
            .collect();
        let first_end = kinds
            .iter()
            .position(|k| *k == (1, "finished"))
            .expect("1 ends");
        let started = kinds
            .iter()
            .position(|k| *k == (2, "started"))
            .expect("2 starts");
        assert!(first_end < started, "{kinds:?}");
        assert!(kinds.contains(&(3, "stopped")), "{kinds:?}");
        assert!(!kinds.contains(&(3, "metric")), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&(2, "finished")), "{kinds:?}");
        assert_eq!((m.busy(), m.queued()), (0, 0));
    }

    #[tokio::test]
    async fn a_runner_hands_its_slot_to_the_next_waiting_lease_itself() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut m = TrialManager::new(1, tx);
        for lease in 1..=3 {
            m.assign(synthetic(lease, 2.0));
        }
        // Nobody feeds the reports back through `observe`: the runners chain on their own.
        let mut order = Vec::new();
        while order.len() < 5 {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("a report in time")
                .expect("open channel");
            match msg {
                WorkerMsg::Started { lease } => order.push((lease.0, "started")),
                WorkerMsg::Finished { lease, .. } => order.push((lease.0, "finished")),
                WorkerMsg::Metric { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            order,
            [
                (1, "finished"),
                (2, "started"),
                (2, "finished"),
                (3, "started"),
                (3, "finished"),
            ]
        );
        assert_eq!((m.busy(), m.queued()), (0, 0));
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut m = TrialManager::new(1, tx);
        for lease in 0..=u64::from(MAX_PREFETCH) + 1 {
            m.assign(synthetic(lease, 1000.0));
        }
        assert_eq!(m.queued(), MAX_PREFETCH as usize);
        let msg = rx.recv().await.expect("a report");
        assert!(
            matches!(&msg, WorkerMsg::Failed { lease, reason } if lease.0 == u64::from(MAX_PREFETCH) + 1 && reason.contains("wait")),
            "{msg:?}"
        );
        // One that may not wait is refused on a busy worker, whatever room the queue has.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut m = TrialManager::new(1, tx);
        m.assign(synthetic(1, 1000.0));
        m.assign(Assignment {
            may_wait: false,
            ..synthetic(2, 1000.0)
        });
        assert_eq!(m.queued(), 0);
        let msg = rx.recv().await.expect("a report");
        assert!(
            matches!(&msg, WorkerMsg::Failed { lease: LeaseId(2), reason } if reason.contains("no free slot")),
            "{msg:?}"
        );
    }
}
