//! The driver: the one owner of every running experiment's state, fed by one channel.
//!
//! It runs on its own thread ([`super::Engine::start`]) and handles its inputs ([`Cmd`]) in
//! batches: it takes what has arrived, applies it to memory and to the store inside one
//! transaction, fills free worker slots (dispatch), commits, and only then sends what it
//! decided (assign, continue, stop and acknowledgement messages to workers, replies to API
//! calls, live events to subscribers). So a worker is never told of a lease, and never has a
//! report acknowledged, that a crash could lose. A batch of reports that leave no slot idle
//! ([`Core::can_wait`]: metrics, heartbeats, the end of a trial whose slot goes on with a
//! waiting one) waits up to 2 ms for more inputs first; times the server stamps on such
//! reports (a waiting trial's start) are when it handled them.
//!
//! Per experiment it keeps the optimizer (or ablation plan), the early stopper and the history
//! the algorithms see (`albedo_tuning::Trial`s in creation order). Per worker connection it
//! keeps the slots, the leases running there and the paused trials held there.
//!
//! Leases: each run of a trial on a worker has a lease id, unique across the server. A lease
//! whose worker is gone (socket closed, silent past its heartbeats, or a server restart) is
//! an *orphan*: a worker that reconnects and lists it in its hello gets it back; after the
//! grace period a running trial goes back to the queue with its attempt count (or fails past
//! `max_attempts`), and a paused one just loses its holder (a promotion re-runs it).
//!
//! Scheduling: experiments get free slots in creation order, each up to its `parallelism`.
//! A free slot takes first a requeued trial, then the optimizer's suggestion. Asynchronous
//! mode fills every free slot at once and asks the early stopper after every reported value;
//! BSP mode starts a round of as many trials as there are slots only when the previous
//! round has ended, and never stops a trial early. A promotion (ASHA) continues the paused
//! trial on the worker that holds it when that worker has a free slot, and re-runs it from
//! its start elsewhere otherwise. An experiment with `prefetch` > 0 may also lease trials to
//! workers whose slots are all busy, up to `prefetch` per slot: they wait on the worker and
//! start the moment a slot frees (the worker reports `started`; the trial's start time is
//! that report's), which takes the report -> commit -> assign round trip out of every
//! trial's start. Such a trial goes to the worker where a slot should free first for it
//! (its oldest running lease past those already waiting there), and a batch that fills free
//! slots commits and sends those leases before it fills the queues.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use albedo_shared::api::JobState;
use albedo_shared::api::RunningTrial;
use albedo_shared::events::{EventRecord, ExperimentEvent};
use albedo_shared::experiment::{
    ExperimentId, ExperimentSpec, ExperimentState, Mode, Params, TrialId, TrialState,
};
use albedo_shared::protocol::{JobId, JobSpec, LeaseId, ServerMsg, WorkerMsg};
use albedo_tuning::{EarlyStopper, Optimizer, Suggestion, Trial};

use super::db::{self, TrialRow, now_ms};
use crate::error::BackendError;

/// Id of one worker connection (a reconnect is a new one).
pub type ConnId = u64;

/// What the driver is told.
#[derive(Debug)]
pub enum Cmd {
    /// A worker said hello.
    Connected {
        /// Its connection.
        conn: ConnId,
        /// Id given to the connection (`w3`).
        worker_id: String,
        /// Name it gave.
        name: String,
        /// Its slots.
        slots: u32,
        /// Leases it runs or holds paused.
        running: Vec<LeaseId>,
        /// Jobs it runs.
        jobs: Vec<JobId>,
        /// Where to send it messages.
        tx: mpsc::UnboundedSender<ServerMsg>,
    },
    /// A worker's trial report (metric, paused, finished, failed, stopped).
    Report {
        /// Its connection.
        conn: ConnId,
        /// The report.
        msg: WorkerMsg,
    },
    /// A worker's connection ended.
    Gone {
        /// Its connection.
        conn: ConnId,
    },
    /// Create and start an experiment (the spec is validated again here).
    Create {
        /// The spec.
        spec: Box<ExperimentSpec>,
        /// Answered once the experiment is stored.
        reply: oneshot::Sender<Result<ExperimentId, BackendError>>,
    },
    /// Queue a job.
    CreateJob {
        /// Its kind, for listing (`build_dataset`).
        kind: String,
        /// What to do.
        spec: JobSpec,
        /// Answered once the job is stored.
        reply: oneshot::Sender<Result<JobId, BackendError>>,
    },
    /// Cancel a job.
    CancelJob {
        /// The job.
        job: JobId,
        /// Answered once the cancel is stored.
        reply: oneshot::Sender<Result<(), BackendError>>,
    },
    /// Which trials each worker (by connection id, `w3`) runs now.
    Running {
        /// The answer.
        reply: oneshot::Sender<HashMap<String, Vec<RunningTrial>>>,
    },
    /// Cancel an experiment.
    Cancel {
        /// Its row number.
        seq: i64,
        /// Answered once the cancel is stored.
        reply: oneshot::Sender<Result<(), BackendError>>,
    },
}

/// What one worker connection holds.
#[derive(Debug)]
struct WorkerConn {
    worker_id: String,
    name: String,
    slots: usize,
    tx: mpsc::UnboundedSender<ServerMsg>,
    /// Reports handled on this connection (the count acknowledged after commit).
    handled: u64,
    acked: u64,
    /// Leases taking a slot here (running, or ordered to stop and not yet ended, or unknown
    /// ones it was told to stop).
    active: HashSet<LeaseId>,
    /// Leases paused here (no slot).
    paused: HashSet<LeaseId>,
    /// Leases of `active` assigned while every slot was busy (an experiment's `prefetch`),
    /// waiting on the worker until it reports that they started.
    waiting: HashSet<LeaseId>,
    /// Jobs running here (each takes a slot), known or told to cancel.
    jobs: HashSet<JobId>,
}

impl WorkerConn {
    fn free(&self) -> usize {
        self.slots
            .saturating_sub(self.active.len() + self.jobs.len())
    }

    /// Leases it may still take for an experiment that lets `prefetch` trials per slot wait
    /// on a worker: free slots plus room in its queue (none behind a slot running a job).
    fn room(&self, prefetch: u32) -> usize {
        (self.slots.saturating_sub(self.jobs.len()) * (1 + prefetch as usize))
            .saturating_sub(self.active.len())
    }
}

/// The driver's view of a job that has not ended.
#[derive(Debug)]
struct JobRt {
    spec: JobSpec,
    attempt: u32,
    /// The connection running it; `None` while queued or orphaned.
    conn: Option<ConnId>,
    /// When it lost its connection.
    orphan_since: Option<Instant>,
    /// Set once a user cancelled it.
    cancelled: bool,
}

/// Attempts a job gets before it fails for good.
const JOB_ATTEMPTS: u32 = 3;

/// Where a current lease belongs.
#[derive(Debug, Clone, Copy)]
struct LeaseInfo {
    seq: i64,
    trial: usize,
    /// The connection running it; `None` while orphaned.
    conn: Option<ConnId>,
    /// When it lost its connection.
    orphan_since: Option<Instant>,
    /// When it last began to take a slot, as this server saw it (leased to a free slot,
    /// reported started after waiting, continued, adopted after a reconnect); `None` while
    /// it waits on its worker.
    running_since: Option<Instant>,
}

/// The driver's view of one trial, beside what the algorithms see.
#[derive(Debug, Clone)]
struct TrialRt {
    /// State as stored and shown (the history may already say `stopped` while the stop
    /// order is on its way).
    state: TrialState,
    attempt: u32,
    lease: Option<LeaseId>,
    worker: Option<String>,
    /// Why it was stopped, requeued or failed.
    reason: Option<String>,
    /// Set once a stop is ordered.
    stop_reason: Option<String>,
    value: Option<f64>,
    created_ms: i64,
    started_ms: Option<i64>,
    ended_ms: Option<i64>,
    /// Files it made, by name.
    artifacts: BTreeMap<String, String>,
}

/// One running experiment.
#[derive(Debug)]
struct Exp {
    seq: i64,
    spec: ExperimentSpec,
    optimizer: Box<dyn Optimizer>,
    stopper: Box<dyn EarlyStopper>,
    history: Vec<Trial>,
    rt: Vec<TrialRt>,
    state: ExperimentState,
    /// Trials waiting for a slot (requeued, or created when no slot was free), by index.
    queue: VecDeque<usize>,
    /// Trials holding a running lease (connected or orphaned), by index.
    active: HashSet<usize>,
    /// BSP: trials still to start in the current round.
    round_left: usize,
}

impl Exp {
    /// A running experiment with no trials yet, its algorithms built from `spec`.
    fn new(seq: i64, spec: ExperimentSpec) -> Result<Exp, BackendError> {
        let bad = BackendError::from;
        Ok(Exp {
            seq,
            optimizer: albedo_tuning::build_optimizer(&spec).map_err(bad)?,
            stopper: albedo_tuning::build_stopper(&spec.early_stopping, spec.direction)
                .map_err(bad)?,
            spec,
            history: Vec::new(),
            rt: Vec::new(),
            state: ExperimentState::Running,
            queue: VecDeque::new(),
            active: HashSet::new(),
            round_left: 0,
        })
    }
}

/// Work for a free slot.
enum Work {
    Queued(usize),
    New(Params, Option<u32>),
    Continue(usize, u32),
}

/// The driver (see the module docs).
pub struct Core {
    conn: Connection,
    grace: Duration,
    workers: BTreeMap<ConnId, WorkerConn>,
    exps: BTreeMap<i64, Exp>,
    leases: HashMap<LeaseId, LeaseInfo>,
    next_lease: u64,
    /// Jobs not ended, by id, and the queue of those waiting.
    jobs: BTreeMap<JobId, JobRt>,
    job_queue: VecDeque<JobId>,
    /// Decided in this batch, sent after commit.
    outbox: Vec<(ConnId, ServerMsg)>,
    /// Files this batch made useless (a replaced class raster), deleted after commit.
    doomed: Vec<std::path::PathBuf>,
    events: Vec<EventRecord>,
    replies: Vec<Reply>,
}

/// An API reply held until commit.
enum Reply {
    Created(
        oneshot::Sender<Result<ExperimentId, BackendError>>,
        Result<ExperimentId, BackendError>,
    ),
    Cancelled(
        oneshot::Sender<Result<(), BackendError>>,
        Result<(), BackendError>,
    ),
    JobCreated(
        oneshot::Sender<Result<JobId, BackendError>>,
        Result<JobId, BackendError>,
    ),
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("workers", &self.workers.len())
            .field("experiments", &self.exps.len())
            .field("leases", &self.leases.len())
            .finish()
    }
}

/// What a committed batch produced, to deliver.
#[derive(Debug)]
pub struct Delivery {
    /// Live events, in order.
    pub events: Vec<EventRecord>,
}

impl Core {
    /// Opens the driver on `conn` (creating its tables) and loads every running experiment;
    /// their in-flight leases start as orphans that reconnecting workers can claim.
    pub fn open(conn: Connection, grace: Duration) -> Result<Core, BackendError> {
        conn.execute_batch(db::SCHEMA)?;
        db::migrate(&conn)?;
        let mut core = Core {
            conn,
            grace,
            workers: BTreeMap::new(),
            exps: BTreeMap::new(),
            leases: HashMap::new(),
            next_lease: 0,
            jobs: BTreeMap::new(),
            job_queue: VecDeque::new(),
            outbox: Vec::new(),
            doomed: Vec::new(),
            events: Vec::new(),
            replies: Vec::new(),
        };
        core.load()?;
        Ok(core)
    }

    /// (Re)builds the experiments and leases from the store.
    fn load(&mut self) -> Result<(), BackendError> {
        self.exps.clear();
        self.leases.clear();
        self.next_lease = db::max_lease(&self.conn)? + 1;
        let now = Instant::now();
        self.jobs.clear();
        self.job_queue.clear();
        for (id, spec, state, attempt) in db::load_open_jobs(&self.conn)? {
            let id = JobId(id);
            let running = state == JobState::Running;
            self.jobs.insert(
                id,
                JobRt {
                    spec,
                    attempt,
                    conn: None,
                    orphan_since: running.then_some(now),
                    cancelled: false,
                },
            );
            if !running {
                self.job_queue.push_back(id);
            }
        }
        for loaded in db::load_running(&self.conn)? {
            let mut exp = Exp::new(loaded.seq, loaded.spec)?;
            for (i, t) in loaded.trials.into_iter().enumerate() {
                let mut trial = Trial::new(t.id, t.params, t.resource);
                trial.values = t.values;
                trial.state = t.state;
                let lease = t.lease.map(LeaseId);
                match t.state {
                    TrialState::Running | TrialState::Paused if lease.is_some() => {
                        let lease = lease.unwrap_or(LeaseId(0));
                        self.leases.insert(
                            lease,
                            LeaseInfo {
                                seq: exp.seq,
                                trial: i,
                                conn: None,
                                orphan_since: Some(now),
                                running_since: None,
                            },
                        );
                        if t.state == TrialState::Running {
                            exp.active.insert(i);
                        }
                    }
                    TrialState::Running | TrialState::Queued => {
                        trial.state = TrialState::Queued;
                        exp.queue.push_back(i);
                    }
                    _ => {}
                }
                exp.history.push(trial);
                exp.rt.push(TrialRt {
                    state: exp.history[i].state,
                    attempt: t.attempt,
                    lease,
                    worker: t.worker,
                    reason: t.reason,
                    stop_reason: None,
                    value: t.value,
                    created_ms: t.created_ms,
                    started_ms: t.started_ms,
                    ended_ms: t.ended_ms,
                    artifacts: t.artifacts,
                });
            }
            tracing::info!(
                experiment = %db::experiment_id(exp.seq),
                trials = exp.history.len(),
                in_flight = exp.active.len(),
                "resuming experiment"
            );
            self.exps.insert(exp.seq, exp);
        }
        Ok(())
    }

    /// Handles one batch of inputs: applies them and dispatches inside one transaction,
    /// commits, then sends what was decided. On a storage failure the batch is rolled back,
    /// every worker connection is dropped (they reconnect and re-claim their leases) and the
    /// state is reloaded from the store.
    ///
    /// A batch that fills free slots sends those leases before it queues more on busy
    /// workers (an experiment's `prefetch`), in a second transaction: the slots start at
    /// once instead of after the queues' bookkeeping (half of an experiment's first batch).
    pub fn handle_batch(&mut self, cmds: Vec<Cmd>) -> Delivery {
        let mut filled = 0;
        let Some(mut delivery) = self.transaction(|core| {
            for cmd in cmds {
                core.apply(cmd)?;
            }
            core.expire_orphans()?;
            filled = core.dispatch(false)?;
            if filled == 0 {
                core.dispatch(true)?;
            }
            Ok(())
        }) else {
            return Delivery { events: Vec::new() };
        };
        if filled > 0
            && self.wants_prefetch()
            && let Some(more) = self.transaction(|core| core.dispatch(true).map(drop))
        {
            delivery.events.extend(more.events);
        }
        delivery
    }

    /// Runs `change` in one transaction and sends what it decided; `None` if the store
    /// failed (see [`Core::handle_batch`]).
    fn transaction(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<(), BackendError>,
    ) -> Option<Delivery> {
        let result = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(BackendError::from)
            .and_then(|()| change(self))
            .and_then(|()| Ok(self.conn.execute_batch("COMMIT")?));
        match result {
            Ok(()) => Some(self.deliver()),
            Err(e) => {
                tracing::error!(error = %e, "the engine could not store a batch: rolling back and reloading");
                let _ = self.conn.execute_batch("ROLLBACK");
                self.outbox.clear();
                self.doomed.clear();
                self.events.clear();
                for reply in self.replies.drain(..) {
                    let why = || BackendError::Unavailable(format!("storage failed: {e}"));
                    match reply {
                        Reply::Created(tx, _) => {
                            let _ = tx.send(Err(why()));
                        }
                        Reply::Cancelled(tx, _) => {
                            let _ = tx.send(Err(why()));
                        }
                        Reply::JobCreated(tx, _) => {
                            let _ = tx.send(Err(why()));
                        }
                    }
                }
                // Dropping the senders closes the sessions; workers reconnect and re-claim.
                self.workers.clear();
                if let Err(e) = self.load() {
                    tracing::error!(error = %e, "reloading the engine state failed");
                }
                None
            }
        }
    }

    /// Whether `cmd` may wait a moment for more inputs before its batch is handled: a
    /// report that leaves no slot idle (a metric, a heartbeat, a waiting trial's start, an
    /// artifact, or the end of a trial on a worker that has a waiting trial to run in its
    /// place). Its bookkeeping (rows, events, the next prefetched lease) is not needed for
    /// some milliseconds, and done at once it would take the cores the workers' trials run
    /// on in the very moment those trials end (trials that started together end together).
    /// Anything else (a hello, a lost worker, an API call, a job's report, a trial end that
    /// frees a slot) is handled at once.
    pub fn can_wait(&self, cmd: &Cmd) -> bool {
        let Cmd::Report { conn, msg } = cmd else {
            return false;
        };
        match msg {
            WorkerMsg::Heartbeat
            | WorkerMsg::Metric { .. }
            | WorkerMsg::Started { .. }
            | WorkerMsg::Artifact { .. } => true,
            WorkerMsg::Finished { lease, .. }
            | WorkerMsg::Failed { lease, .. }
            | WorkerMsg::Stopped { lease, .. } => self
                .workers
                .get(conn)
                .is_some_and(|w| w.waiting.iter().any(|l| l != lease)),
            WorkerMsg::Hello { .. }
            | WorkerMsg::Paused { .. }
            | WorkerMsg::JobProgress { .. }
            | WorkerMsg::JobDone { .. }
            | WorkerMsg::JobFailed { .. } => false,
        }
    }

    /// Whether a running experiment lets trials wait on busy workers.
    fn wants_prefetch(&self) -> bool {
        self.exps
            .values()
            .any(|e| e.state == ExperimentState::Running && e.spec.prefetch > 0)
    }

    /// Whether some orphaned lease is waiting for its grace period to end.
    pub fn has_orphans(&self) -> bool {
        self.leases.values().any(|l| l.conn.is_none())
            || self.jobs.values().any(|j| j.orphan_since.is_some())
    }

    /// The trials each worker connection runs now, by worker id.
    fn running_by_worker(&self) -> HashMap<String, Vec<RunningTrial>> {
        let mut out: HashMap<String, Vec<RunningTrial>> = HashMap::new();
        for w in self.workers.values() {
            let mut list: Vec<RunningTrial> = w
                .active
                .iter()
                .filter_map(|lease| Some((self.leases.get(lease)?, w.waiting.contains(lease))))
                .map(|(l, waiting)| RunningTrial {
                    experiment: db::experiment_id(l.seq),
                    trial: TrialId(l.trial as u64),
                    waiting,
                })
                .collect();
            list.sort_by(|a, b| (&a.experiment, a.trial).cmp(&(&b.experiment, b.trial)));
            out.insert(w.worker_id.clone(), list);
        }
        out
    }

    fn deliver(&mut self) -> Delivery {
        for path in self.doomed.drain(..) {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed a file no longer used"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a file no longer used");
                }
            }
        }
        for (conn, msg) in self.outbox.drain(..) {
            if let Some(w) = self.workers.get(&conn) {
                let _ = w.tx.send(msg);
            }
        }
        for w in self.workers.values_mut() {
            if w.handled > w.acked {
                w.acked = w.handled;
                let _ = w.tx.send(ServerMsg::Ack { count: w.handled });
            }
        }
        for reply in self.replies.drain(..) {
            match reply {
                Reply::Created(tx, r) => {
                    let _ = tx.send(r);
                }
                Reply::Cancelled(tx, r) => {
                    let _ = tx.send(r);
                }
                Reply::JobCreated(tx, r) => {
                    let _ = tx.send(r);
                }
            }
        }
        Delivery {
            events: std::mem::take(&mut self.events),
        }
    }

    fn emit(&mut self, seq: i64, event: ExperimentEvent) -> Result<(), BackendError> {
        let record = db::insert_event(&self.conn, seq, now_ms(), event)?;
        self.events.push(record);
        Ok(())
    }

    fn save_trial(&self, seq: i64, i: usize) -> Result<(), BackendError> {
        let exp = &self.exps[&seq];
        let (t, rt) = (&exp.history[i], &exp.rt[i]);
        db::put_trial(
            &self.conn,
            &TrialRow {
                experiment: seq,
                trial: t.id,
                params: &t.params,
                state: rt.state,
                attempt: rt.attempt,
                resource: t.resource,
                lease: rt.lease.map(|l| l.0),
                worker: rt.worker.as_deref(),
                value: rt.value,
                reason: rt.reason.as_deref(),
                created_ms: rt.created_ms,
                started_ms: rt.started_ms,
                ended_ms: rt.ended_ms,
                artifacts: &rt.artifacts,
            },
        )
    }

    fn apply(&mut self, cmd: Cmd) -> Result<(), BackendError> {
        match cmd {
            Cmd::Connected {
                conn,
                worker_id,
                name,
                slots,
                running,
                jobs,
                tx,
            } => {
                self.connected(conn, worker_id, name, slots, running, tx)?;
                self.adopt_jobs(conn, jobs)
            }
            Cmd::CreateJob { kind, spec, reply } => {
                let id = JobId(db::insert_job(&self.conn, &kind, &spec)?);
                tracing::info!(job = %id, %kind, "job queued");
                self.jobs.insert(
                    id,
                    JobRt {
                        spec,
                        attempt: 0,
                        conn: None,
                        orphan_since: None,
                        cancelled: false,
                    },
                );
                self.job_queue.push_back(id);
                self.replies.push(Reply::JobCreated(reply, Ok(id)));
                Ok(())
            }
            Cmd::CancelJob { job, reply } => {
                let result = self.cancel_job(job);
                self.answer_cancel(reply, result)
            }
            Cmd::Report { conn, msg } => {
                if let Some(w) = self.workers.get_mut(&conn) {
                    w.handled += 1;
                }
                self.report(conn, msg)
            }
            Cmd::Gone { conn } => {
                self.gone(conn);
                Ok(())
            }
            Cmd::Running { reply } => {
                let _ = reply.send(self.running_by_worker());
                Ok(())
            }
            Cmd::Create { spec, reply } => match self.create(*spec) {
                Ok(id) => {
                    self.replies.push(Reply::Created(reply, Ok(id)));
                    Ok(())
                }
                Err(e @ BackendError::BadRequest { .. }) => {
                    self.replies.push(Reply::Created(reply, Err(e)));
                    Ok(())
                }
                Err(e) => {
                    // The batch fails; its error path answers every reply.
                    self.replies
                        .push(Reply::Created(reply, Ok(ExperimentId(String::new()))));
                    Err(e)
                }
            },
            Cmd::Cancel { seq, reply } => {
                let result = self.cancel(seq);
                self.answer_cancel(reply, result)
            }
        }
    }

    /// Holds the answer to a cancel until commit: a refusal (not found, already ended) is
    /// the caller's answer; a storage error fails the batch.
    fn answer_cancel(
        &mut self,
        reply: oneshot::Sender<Result<(), BackendError>>,
        result: Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        match result {
            Ok(()) => {
                self.replies.push(Reply::Cancelled(reply, Ok(())));
                Ok(())
            }
            Err(e @ (BackendError::NotFound { .. } | BackendError::Unavailable(_))) => {
                self.replies.push(Reply::Cancelled(reply, Err(e)));
                Ok(())
            }
            Err(e) => {
                self.replies.push(Reply::Cancelled(
                    reply,
                    Err(BackendError::Unavailable(e.to_string())),
                ));
                Err(e)
            }
        }
    }

    fn connected(
        &mut self,
        conn: ConnId,
        worker_id: String,
        name: String,
        slots: u32,
        running: Vec<LeaseId>,
        tx: mpsc::UnboundedSender<ServerMsg>,
    ) -> Result<(), BackendError> {
        let mut w = WorkerConn {
            worker_id,
            name,
            slots: slots as usize,
            tx,
            handled: 0,
            acked: 0,
            active: HashSet::new(),
            paused: HashSet::new(),
            waiting: HashSet::new(),
            jobs: HashSet::new(),
        };
        let mut adopted = Vec::new();
        for lease in running {
            let known = self
                .leases
                .get(&lease)
                .filter(|l| l.conn.is_none_or(|c| !self.workers.contains_key(&c)))
                .copied();
            match known {
                Some(info) => {
                    let exp = &self.exps[&info.seq];
                    let paused = exp.history[info.trial].state == TrialState::Paused;
                    if paused {
                        w.paused.insert(lease);
                    } else {
                        w.active.insert(lease);
                        if exp.rt[info.trial].started_ms.is_none() {
                            // Still waiting on the worker, as far as we know.
                            w.waiting.insert(lease);
                        }
                    }
                    adopted.push((lease, info));
                }
                None => {
                    // Unknown here (it ended, or was re-leased elsewhere): stop it; it takes
                    // a slot until it says it has ended.
                    w.active.insert(lease);
                    self.outbox.push((
                        conn,
                        ServerMsg::Stop {
                            lease,
                            reason: "this lease is not current on the server".into(),
                        },
                    ));
                }
            }
        }
        tracing::info!(worker = %w.worker_id, name = %w.name, slots, adopted = adopted.len(), "worker joined the engine");
        let name = w.name.clone();
        self.workers.insert(conn, w);
        for (lease, info) in adopted {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.conn = Some(conn);
                l.orphan_since = None;
                l.running_since = Some(Instant::now());
            }
            let exp = self
                .exps
                .get_mut(&info.seq)
                .expect("lease of a known experiment");
            exp.rt[info.trial].worker = Some(name.clone());
            if let Some(reason) = exp.rt[info.trial].stop_reason.clone() {
                self.outbox.push((conn, ServerMsg::Stop { lease, reason }));
            }
            self.save_trial(info.seq, info.trial)?;
        }
        Ok(())
    }

    fn gone(&mut self, conn: ConnId) {
        let Some(w) = self.workers.remove(&conn) else {
            return;
        };
        let now = Instant::now();
        let mut orphaned = 0;
        for lease in w.active.iter().chain(w.paused.iter()) {
            if let Some(l) = self.leases.get_mut(lease)
                && l.conn == Some(conn)
            {
                l.conn = None;
                l.orphan_since = Some(now);
                orphaned += 1;
            }
        }
        for job in &w.jobs {
            if let Some(j) = self.jobs.get_mut(job)
                && j.conn == Some(conn)
            {
                j.conn = None;
                j.orphan_since = Some(now);
                orphaned += 1;
            }
        }
        tracing::info!(worker = %w.worker_id, orphaned, "worker left the engine");
    }

    /// Ends the grace period of orphaned leases and jobs.
    fn expire_orphans(&mut self) -> Result<(), BackendError> {
        let grace = self.grace;
        let lost: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.orphan_since.is_some_and(|t| t.elapsed() >= grace))
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            let reason = format!(
                "its worker was lost (no reconnect within {} s)",
                grace.as_secs_f64()
            );
            self.job_attempt_ended(id, reason)?;
        }
        let expired: Vec<(LeaseId, LeaseInfo)> = self
            .leases
            .iter()
            .filter(|(_, l)| l.orphan_since.is_some_and(|t| t.elapsed() >= grace))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (lease, info) in expired {
            self.leases.remove(&lease);
            let exp = self
                .exps
                .get_mut(&info.seq)
                .expect("lease of a known experiment");
            let i = info.trial;
            exp.rt[i].lease = None;
            if exp.history[i].state == TrialState::Paused {
                // Its progress is recorded; a promotion re-runs it elsewhere.
                self.save_trial(info.seq, i)?;
                continue;
            }
            exp.active.remove(&i);
            let reason = format!(
                "its worker was lost (no reconnect within {} s)",
                grace.as_secs_f64()
            );
            if exp.rt[i].started_ms.is_none() {
                // It waited on the worker (`prefetch`) and never ran: not an attempt.
                exp.rt[i].attempt = exp.rt[i].attempt.saturating_sub(1);
            }
            self.end_attempt(info.seq, i, reason)?;
        }
        Ok(())
    }

    /// An attempt of trial `i` ended without a result (worker lost or run failed): back to
    /// the queue, or failed past the attempt limit, or stopped when a stop was ordered.
    fn end_attempt(&mut self, seq: i64, i: usize, reason: String) -> Result<(), BackendError> {
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        let rt = &mut exp.rt[i];
        let state = if let Some(stop) = rt.stop_reason.clone() {
            rt.reason = Some(stop);
            TrialState::Stopped
        } else if rt.attempt < exp.spec.max_attempts && exp.state == ExperimentState::Running {
            rt.reason = Some(reason);
            exp.queue.push_back(i);
            TrialState::Queued
        } else {
            rt.reason = Some(format!("{reason}; gave up after {} attempt(s)", rt.attempt));
            TrialState::Failed
        };
        rt.state = state;
        rt.lease = None;
        if state == TrialState::Queued {
            // A re-run starts from its first step and makes its own files.
            exp.history[i].values.clear();
            rt.artifacts.clear();
        } else {
            rt.ended_ms = Some(now_ms());
        }
        exp.history[i].state = state;
        let reason = rt.reason.clone();
        self.save_trial(seq, i)?;
        self.emit(
            seq,
            ExperimentEvent::TrialState {
                trial: TrialId(i as u64),
                state,
                reason,
                value: None,
            },
        )
    }

    fn report(&mut self, conn: ConnId, msg: WorkerMsg) -> Result<(), BackendError> {
        match msg {
            WorkerMsg::JobProgress { job, done, total } => {
                if self.jobs.contains_key(&job) {
                    db::set_job_progress(&self.conn, job.0, done, total)?;
                }
                return Ok(());
            }
            WorkerMsg::JobDone { job, result } => {
                if let Some(w) = self.workers.get_mut(&conn) {
                    w.jobs.remove(&job);
                }
                if let Some(j) = self.jobs.remove(&job) {
                    // A stale attempt finished first: the current one is not needed.
                    if let Some(other) = j.conn.filter(|c| *c != conn) {
                        self.outbox.push((
                            other,
                            ServerMsg::CancelJob {
                                job,
                                reason: "another attempt of this job finished".into(),
                            },
                        ));
                    }
                    self.job_queue.retain(|q| *q != job);
                    // Server-side completion, in this transaction (a classify job registers
                    // its derived product); a refused result fails the job.
                    match crate::classify::complete_job(
                        &self.conn,
                        &j.spec,
                        result,
                        &mut self.doomed,
                    ) {
                        Ok(result) => {
                            db::set_job_result(&self.conn, job.0, &result)?;
                            db::set_job_state(
                                &self.conn,
                                job.0,
                                JobState::Finished,
                                j.attempt,
                                None,
                                None,
                            )?;
                            tracing::info!(%job, "job finished");
                        }
                        Err(reason) => {
                            tracing::warn!(%job, %reason, "job result refused");
                            db::set_job_state(
                                &self.conn,
                                job.0,
                                JobState::Failed,
                                j.attempt,
                                None,
                                Some(&reason),
                            )?;
                        }
                    }
                }
                return Ok(());
            }
            WorkerMsg::JobFailed { job, reason } => {
                if let Some(w) = self.workers.get_mut(&conn) {
                    w.jobs.remove(&job);
                }
                // Only the current attempt's end counts (or an orphan's).
                if self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.conn.is_none_or(|c| c == conn))
                    && !self.job_queue.contains(&job)
                {
                    tracing::warn!(%job, %reason, "job attempt failed");
                    self.job_attempt_ended(job, reason)?;
                }
                return Ok(());
            }
            _ => {}
        }
        let Some(lease) = msg.lease() else {
            return Ok(());
        };
        let Some(info) = self.leases.get(&lease).copied() else {
            // Not current: a duplicate of a report already handled, or a lease this server
            // ordered to stop. Its end frees the slot it took.
            if msg.ends_lease()
                && let Some(w) = self.workers.get_mut(&conn)
            {
                w.active.remove(&lease);
                w.paused.remove(&lease);
                w.waiting.remove(&lease);
            }
            if matches!(msg, WorkerMsg::Paused { .. }) {
                // Nobody will continue it: let the worker drop it.
                self.outbox.push((
                    conn,
                    ServerMsg::Stop {
                        lease,
                        reason: "this lease is not current on the server".into(),
                    },
                ));
            }
            return Ok(());
        };
        // Reports of an orphaned lease (queued on a worker while the server restarted) are
        // welcome from any connection.
        let (seq, i) = (info.seq, info.trial);
        let ran = !matches!(msg, WorkerMsg::Stopped { .. } | WorkerMsg::Failed { .. });
        if let Some(w) = self.workers.get_mut(&conn)
            && w.waiting.remove(&lease)
            && ran
        {
            // It waited on the worker and runs now (or already ran: its end report says how
            // long). One stopped or refused while it waited never ran.
            if let Some(l) = self.leases.get_mut(&lease) {
                l.running_since = Some(Instant::now());
            }
            let started = match &msg {
                WorkerMsg::Finished { duration_ms, .. } => {
                    now_ms() - i64::try_from(*duration_ms).unwrap_or(0)
                }
                _ => now_ms(),
            };
            let exp = self.exps.get_mut(&seq).expect("known experiment");
            exp.rt[i].started_ms = Some(started);
            let attempt = exp.rt[i].attempt;
            if !msg.ends_lease() {
                self.save_trial(seq, i)?;
            }
            self.emit(
                seq,
                ExperimentEvent::TrialStarted {
                    trial: TrialId(i as u64),
                    attempt,
                },
            )?;
        }
        match msg {
            WorkerMsg::Started { .. } => Ok(()),
            WorkerMsg::Metric { step, values, .. } => self.metric(seq, i, lease, step, values),
            WorkerMsg::Artifact { name, uri, .. } => {
                let exp = self.exps.get_mut(&seq).expect("known experiment");
                if exp.rt[i].state.is_final() {
                    return Ok(());
                }
                exp.rt[i].artifacts.insert(name, uri);
                self.save_trial(seq, i)
            }
            WorkerMsg::Paused { step, .. } => {
                if let Some(w) = self.workers.get_mut(&conn)
                    && w.active.remove(&lease)
                {
                    w.paused.insert(lease);
                }
                let exp = self.exps.get_mut(&seq).expect("known experiment");
                exp.active.remove(&i);
                if exp.history[i].state.is_final() {
                    // Stopped while it paused: the stop order is on its way.
                    return Ok(());
                }
                exp.history[i].state = TrialState::Paused;
                exp.rt[i].state = TrialState::Paused;
                let value = exp.history[i].last();
                exp.rt[i].value = value;
                tracing::debug!(trial = i, step, "trial paused");
                self.save_trial(seq, i)?;
                self.emit(
                    seq,
                    ExperimentEvent::TrialState {
                        trial: TrialId(i as u64),
                        state: TrialState::Paused,
                        reason: None,
                        value,
                    },
                )
            }
            WorkerMsg::Finished { final_values, .. } => {
                self.release(conn, lease, seq, i);
                let exp = self.exps.get_mut(&seq).expect("known experiment");
                let metric = exp.spec.metric.clone();
                let value = final_values
                    .get(&metric)
                    .copied()
                    .filter(|v| v.is_finite())
                    .or_else(|| exp.history[i].last());
                if exp.history[i].values.is_empty()
                    && let Some(v) = value
                {
                    exp.history[i].values.push(v);
                }
                self.end(seq, i, TrialState::Finished, None, value)
            }
            WorkerMsg::Stopped { .. } => {
                self.release(conn, lease, seq, i);
                let exp = self.exps.get_mut(&seq).expect("known experiment");
                let reason = exp.rt[i]
                    .stop_reason
                    .clone()
                    .unwrap_or_else(|| "stopped by its worker".into());
                let value = exp.history[i].last();
                self.end(seq, i, TrialState::Stopped, Some(reason), value)
            }
            WorkerMsg::Failed { reason, .. } => {
                self.release(conn, lease, seq, i);
                tracing::warn!(experiment = %db::experiment_id(seq), trial = i, %reason, "trial attempt failed");
                self.end_attempt(seq, i, format!("failed: {reason}"))
            }
            WorkerMsg::Hello { .. }
            | WorkerMsg::Heartbeat
            | WorkerMsg::JobProgress { .. }
            | WorkerMsg::JobDone { .. }
            | WorkerMsg::JobFailed { .. } => Ok(()),
        }
    }

    /// Forgets lease `lease` of trial `i` (its run ended).
    fn release(&mut self, conn: ConnId, lease: LeaseId, seq: i64, i: usize) {
        self.leases.remove(&lease);
        for w in self.workers.values_mut() {
            w.active.remove(&lease);
            w.paused.remove(&lease);
            w.waiting.remove(&lease);
        }
        let _ = conn;
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        exp.active.remove(&i);
        exp.rt[i].lease = None;
    }

    /// Trial `i` ended for good.
    fn end(
        &mut self,
        seq: i64,
        i: usize,
        state: TrialState,
        reason: Option<String>,
        value: Option<f64>,
    ) -> Result<(), BackendError> {
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        exp.history[i].state = state;
        let rt = &mut exp.rt[i];
        rt.state = state;
        rt.reason = reason.clone();
        rt.value = value;
        rt.ended_ms = Some(now_ms());
        self.save_trial(seq, i)?;
        self.emit(
            seq,
            ExperimentEvent::TrialState {
                trial: TrialId(i as u64),
                state,
                reason,
                value,
            },
        )
    }

    fn metric(
        &mut self,
        seq: i64,
        i: usize,
        lease: LeaseId,
        step: u32,
        values: BTreeMap<String, f64>,
    ) -> Result<(), BackendError> {
        if step == 0 {
            return Ok(());
        }
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        let attempt = exp.rt[i].attempt;
        if !db::put_metric(&self.conn, seq, TrialId(i as u64), step, attempt, &values)? {
            return Ok(());
        }
        let v = values.get(&exp.spec.metric).copied().unwrap_or(f64::NAN);
        let t = &mut exp.history[i];
        let k = step as usize;
        if k > t.values.len() {
            t.values.resize(k - 1, f64::NAN);
            t.values.push(v);
        } else {
            t.values[k - 1] = v;
        }
        let check = exp.spec.mode == Mode::Async
            && t.state == TrialState::Running
            && exp.rt[i].stop_reason.is_none()
            && exp.stopper.should_stop(&exp.history[i], &exp.history);
        self.emit(
            seq,
            ExperimentEvent::Metric {
                trial: TrialId(i as u64),
                step,
                values,
            },
        )?;
        if check {
            self.order_stop(
                seq,
                i,
                lease,
                "early stopping: below the median of finished trials",
            )?;
        }
        Ok(())
    }

    /// Orders the run of trial `i` under `lease` to stop; the algorithms see it stopped at
    /// once (its slot is as good as free), the record changes when the worker confirms.
    fn order_stop(
        &mut self,
        seq: i64,
        i: usize,
        lease: LeaseId,
        reason: &str,
    ) -> Result<(), BackendError> {
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        exp.rt[i].stop_reason = Some(reason.to_string());
        exp.history[i].state = TrialState::Stopped;
        if let Some(conn) = self.leases.get(&lease).and_then(|l| l.conn) {
            self.outbox.push((
                conn,
                ServerMsg::Stop {
                    lease,
                    reason: reason.to_string(),
                },
            ));
        }
        self.emit(
            seq,
            ExperimentEvent::StopOrdered {
                trial: TrialId(i as u64),
                reason: reason.to_string(),
            },
        )
    }

    /// A worker that (re)connects runs `jobs`: adopt those still open here, cancel the
    /// others (they hold a slot until they end).
    fn adopt_jobs(&mut self, conn: ConnId, jobs: Vec<JobId>) -> Result<(), BackendError> {
        let Some(w) = self.workers.get_mut(&conn) else {
            return Ok(());
        };
        let name = w.name.clone();
        for job in jobs {
            w.jobs.insert(job);
            match self.jobs.get_mut(&job) {
                Some(j) if j.conn.is_none() && !self.job_queue.contains(&job) => {
                    j.conn = Some(conn);
                    j.orphan_since = None;
                    if j.cancelled {
                        self.outbox.push((
                            conn,
                            ServerMsg::CancelJob {
                                job,
                                reason: "cancelled by a user".into(),
                            },
                        ));
                    }
                    db::set_job_state(
                        &self.conn,
                        job.0,
                        JobState::Running,
                        j.attempt,
                        Some(&name),
                        None,
                    )?;
                }
                _ => self.outbox.push((
                    conn,
                    ServerMsg::CancelJob {
                        job,
                        reason: "this job is not current on the server".into(),
                    },
                )),
            }
        }
        Ok(())
    }

    /// An attempt of job `id` ended without a result: cancelled, queued again, or failed
    /// past the attempt limit.
    fn job_attempt_ended(&mut self, id: JobId, reason: String) -> Result<(), BackendError> {
        let Some(j) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        j.conn = None;
        j.orphan_since = None;
        let attempt = j.attempt;
        if j.cancelled {
            if let Some(j) = self.jobs.remove(&id) {
                crate::classify::job_ended(&self.conn, &j.spec, &mut self.doomed)?;
            }
            db::set_job_state(
                &self.conn,
                id.0,
                JobState::Cancelled,
                attempt,
                None,
                Some(&reason),
            )
        } else if attempt < JOB_ATTEMPTS {
            self.job_queue.push_back(id);
            db::set_job_state(
                &self.conn,
                id.0,
                JobState::Queued,
                attempt,
                None,
                Some(&reason),
            )
        } else {
            if let Some(j) = self.jobs.remove(&id) {
                crate::classify::job_ended(&self.conn, &j.spec, &mut self.doomed)?;
            }
            let why = format!("{reason}; gave up after {attempt} attempt(s)");
            db::set_job_state(
                &self.conn,
                id.0,
                JobState::Failed,
                attempt,
                None,
                Some(&why),
            )
        }
    }

    fn cancel_job(&mut self, id: JobId) -> Result<(), BackendError> {
        let Some(j) = self.jobs.get_mut(&id) else {
            let info = db::get_job(&self.conn, id.0)?;
            return Err(BackendError::Unavailable(format!(
                "job {id} is already {}",
                info.state.as_str()
            )));
        };
        j.cancelled = true;
        if let Some(pos) = self.job_queue.iter().position(|q| *q == id) {
            self.job_queue.remove(pos);
            let attempt = j.attempt;
            if let Some(j) = self.jobs.remove(&id) {
                crate::classify::job_ended(&self.conn, &j.spec, &mut self.doomed)?;
            }
            return db::set_job_state(
                &self.conn,
                id.0,
                JobState::Cancelled,
                attempt,
                None,
                Some("cancelled by a user"),
            );
        }
        if let Some(conn) = j.conn {
            self.outbox.push((
                conn,
                ServerMsg::CancelJob {
                    job: id,
                    reason: "cancelled by a user".into(),
                },
            ));
        }
        Ok(())
    }

    /// Starts queued jobs on free slots (jobs go before trials).
    fn dispatch_jobs(&mut self) -> Result<(), BackendError> {
        while !self.job_queue.is_empty() {
            let Some(conn) = self.free_conn() else {
                break;
            };
            let Some(id) = self.job_queue.pop_front() else {
                break;
            };
            let Some(j) = self.jobs.get_mut(&id) else {
                continue;
            };
            let w = self.workers.get_mut(&conn).expect("free connection");
            w.jobs.insert(id);
            j.attempt += 1;
            j.conn = Some(conn);
            j.orphan_since = None;
            self.outbox.push((
                conn,
                ServerMsg::Job {
                    job: id,
                    attempt: j.attempt,
                    spec: j.spec.clone(),
                },
            ));
            let name = w.name.clone();
            db::set_job_state(
                &self.conn,
                id.0,
                JobState::Running,
                j.attempt,
                Some(&name),
                None,
            )?;
        }
        Ok(())
    }

    fn create(&mut self, spec: ExperimentSpec) -> Result<ExperimentId, BackendError> {
        // Build the algorithms first: a spec they refuse is not stored.
        let probe = Exp::new(0, spec.clone())?;
        let seq = db::insert_experiment(&self.conn, &spec)?;
        tracing::info!(experiment = %db::experiment_id(seq), name = %spec.name, "experiment created");
        self.exps.insert(seq, Exp { seq, ..probe });
        self.emit(
            seq,
            ExperimentEvent::Experiment {
                state: ExperimentState::Running,
            },
        )?;
        Ok(db::experiment_id(seq))
    }

    fn cancel(&mut self, seq: i64) -> Result<(), BackendError> {
        let Some(exp) = self.exps.get_mut(&seq) else {
            // Not running: finished, cancelled, or no such experiment.
            let summary = db::get_experiment(&self.conn, seq)?;
            return Err(BackendError::Unavailable(format!(
                "experiment '{}' is already {}",
                summary.id,
                summary.state.as_str()
            )));
        };
        exp.state = ExperimentState::Cancelled;
        let reason = "the experiment was cancelled";
        let mut to_stop = Vec::new();
        let mut to_end = Vec::new();
        for i in 0..exp.history.len() {
            match exp.rt[i].state {
                TrialState::Running if exp.rt[i].lease.is_some() => {
                    if let (Some(lease), None) = (exp.rt[i].lease, &exp.rt[i].stop_reason) {
                        to_stop.push((i, lease));
                    }
                }
                TrialState::Running | TrialState::Queued | TrialState::Paused => to_end.push(i),
                _ => {}
            }
        }
        exp.queue.clear();
        for (i, lease) in to_stop {
            self.order_stop(seq, i, lease, reason)?;
        }
        for i in to_end {
            if let Some(lease) = self.exps[&seq].rt[i].lease {
                // A paused trial held by a worker: free its memory there.
                self.stop_holder(lease, reason);
                self.release_paused(seq, i, lease);
            }
            let value = self.exps[&seq].history[i].last();
            self.end(seq, i, TrialState::Stopped, Some(reason.into()), value)?;
        }
        db::set_experiment_state(&self.conn, seq, ExperimentState::Cancelled)?;
        self.emit(
            seq,
            ExperimentEvent::Experiment {
                state: ExperimentState::Cancelled,
            },
        )?;
        self.finish_if_idle(seq)?;
        Ok(())
    }

    /// Tells the worker holding paused `lease` to drop it.
    fn stop_holder(&mut self, lease: LeaseId, reason: &str) {
        if let Some(conn) = self.leases.get(&lease).and_then(|l| l.conn) {
            self.outbox.push((
                conn,
                ServerMsg::Stop {
                    lease,
                    reason: reason.to_string(),
                },
            ));
        }
    }

    /// Forgets paused `lease` of trial `i` (its holder was told to drop it).
    fn release_paused(&mut self, seq: i64, i: usize, lease: LeaseId) {
        self.leases.remove(&lease);
        for w in self.workers.values_mut() {
            w.paused.remove(&lease);
        }
        if let Some(exp) = self.exps.get_mut(&seq) {
            exp.rt[i].lease = None;
        }
    }

    /// A cancelled experiment whose trials have all ended leaves the driver.
    fn finish_if_idle(&mut self, seq: i64) -> Result<(), BackendError> {
        if let Some(exp) = self.exps.get(&seq)
            && exp.state == ExperimentState::Cancelled
            && exp.active.is_empty()
        {
            self.exps.remove(&seq);
        }
        Ok(())
    }

    /// The connection with the most free slots, if any has one.
    fn free_conn(&self) -> Option<ConnId> {
        self.workers
            .iter()
            .filter(|(_, w)| w.free() > 0)
            .max_by_key(|(c, w)| (w.free(), std::cmp::Reverse(**c)))
            .map(|(c, _)| *c)
    }

    /// Where the next trial of an experiment with `prefetch` goes: the worker with the most
    /// free slots, else (prefetch > 0) the one with room in its queue where a slot should
    /// free first for it (see [`Core::next_free`]; then the most room).
    fn conn_for(&self, prefetch: u32) -> Option<ConnId> {
        self.free_conn().or_else(|| {
            self.workers
                .iter()
                .filter(|(_, w)| w.room(prefetch) > 0)
                .min_by_key(|(c, w)| {
                    let next = self.next_free(w);
                    (
                        next.is_none(),
                        next,
                        std::cmp::Reverse(w.room(prefetch)),
                        **c,
                    )
                })
                .map(|(c, _)| *c)
        })
    }

    /// When a slot of `w` should free for one more waiting lease: its running leases end
    /// oldest first (an experiment's trials take about as long as each other) and the
    /// leases already waiting there take the first slots to free, so the start of its
    /// `waiting + 1`-th oldest running lease. `None` when it has no such lease. A trial
    /// queued where the slot frees first starts first: the last trials of an experiment go
    /// to the slots furthest ahead, not to a worker that merely has more room.
    fn next_free(&self, w: &WorkerConn) -> Option<Instant> {
        let mut since: Vec<Instant> = w
            .active
            .iter()
            .filter(|l| !w.waiting.contains(l))
            .filter_map(|l| self.leases.get(l)?.running_since)
            .collect();
        let waiting = w.waiting.len();
        if waiting >= since.len() {
            return None;
        }
        Some(*since.select_nth_unstable(waiting).1)
    }

    fn total_slots(&self) -> usize {
        self.workers.values().map(|w| w.slots).sum()
    }

    /// Fills free slots (see the module docs) and, with `queue`, the room in busy workers'
    /// queues that experiments' `prefetch` allows; then ends experiments that have nothing
    /// left. Returns how many leases it gave.
    fn dispatch(&mut self, queue: bool) -> Result<usize, BackendError> {
        self.dispatch_jobs()?;
        let seqs: Vec<i64> = self.exps.keys().copied().collect();
        let total_slots = self.total_slots();
        // Trials may wait on busy workers only while no job and no older experiment waits
        // for a slot: a worker's queue then drains, and its next free slot goes to them.
        let mut may_queue = self.job_queue.is_empty();
        let mut leased = 0;
        for &seq in &seqs {
            let prefetch = if may_queue && queue {
                self.exps[&seq].spec.prefetch
            } else {
                0
            };
            loop {
                let Some(conn) = self.conn_for(prefetch) else {
                    // Out of slots: does this experiment still want one?
                    let exp = &self.exps[&seq];
                    let limit = exp.spec.parallelism.map_or(usize::MAX, |p| p as usize);
                    let between_rounds =
                        exp.spec.mode == Mode::Bsp && exp.round_left == 0 && !exp.active.is_empty();
                    if exp.state == ExperimentState::Running
                        && exp.active.len() < limit
                        && !between_rounds
                    {
                        may_queue = false;
                    }
                    break;
                };
                let exp = self.exps.get_mut(&seq).expect("known experiment");
                if exp.state != ExperimentState::Running {
                    break;
                }
                let limit = exp.spec.parallelism.map_or(usize::MAX, |p| p as usize);
                if exp.active.len() >= limit {
                    break;
                }
                if exp.spec.mode == Mode::Bsp && exp.round_left == 0 {
                    if !exp.active.is_empty() {
                        break;
                    }
                    exp.round_left = total_slots.min(limit);
                }
                let work = match exp.queue.pop_front() {
                    Some(i) => Some(Work::Queued(i)),
                    None => match exp.optimizer.suggest(&exp.history) {
                        Some(Suggestion::New { params, resource }) => {
                            Some(Work::New(params, resource))
                        }
                        Some(Suggestion::Continue { trial, resource }) => exp
                            .history
                            .iter()
                            .position(|t| t.id == trial)
                            .map(|i| Work::Continue(i, resource)),
                        None => None,
                    },
                };
                let Some(work) = work else {
                    exp.round_left = 0;
                    break;
                };
                exp.round_left = exp.round_left.saturating_sub(1);
                leased += 1;
                match work {
                    Work::Queued(i) => self.lease(seq, i, conn)?,
                    Work::New(params, resource) => {
                        let i = self.new_trial(seq, params, resource)?;
                        self.lease(seq, i, conn)?;
                    }
                    Work::Continue(i, resource) => self.promote(seq, i, resource, conn)?,
                }
            }
        }
        for seq in seqs {
            self.complete_if_done(seq)?;
        }
        Ok(leased)
    }

    /// Adds a trial of `params` to the experiment's history, for [`Core::lease`] to store
    /// and lease at once.
    fn new_trial(
        &mut self,
        seq: i64,
        params: Params,
        resource: Option<u32>,
    ) -> Result<usize, BackendError> {
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        let i = exp.history.len();
        let id = TrialId(i as u64);
        let mut trial = Trial::new(id, params.clone(), resource);
        trial.state = TrialState::Queued;
        exp.history.push(trial);
        exp.rt.push(TrialRt {
            state: TrialState::Queued,
            attempt: 0,
            lease: None,
            worker: None,
            reason: None,
            stop_reason: None,
            value: None,
            created_ms: now_ms(),
            started_ms: None,
            ended_ms: None,
            artifacts: BTreeMap::new(),
        });
        // Not stored here: the lease that follows in the same transaction stores the row.
        self.emit(
            seq,
            ExperimentEvent::TrialCreated {
                trial: id,
                params,
                resource,
            },
        )?;
        Ok(i)
    }

    /// Starts a run of trial `i` on `conn` under a new lease (a run that waits on the worker
    /// when every slot there is busy).
    fn lease(&mut self, seq: i64, i: usize, conn: ConnId) -> Result<(), BackendError> {
        let lease = LeaseId(self.next_lease);
        self.next_lease += 1;
        let w = self.workers.get_mut(&conn).expect("free connection");
        let waits = w.free() == 0;
        if waits {
            w.waiting.insert(lease);
        }
        w.active.insert(lease);
        self.leases.insert(
            lease,
            LeaseInfo {
                seq,
                trial: i,
                conn: Some(conn),
                orphan_since: None,
                running_since: (!waits).then(Instant::now),
            },
        );
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        let rt = &mut exp.rt[i];
        rt.attempt += 1;
        rt.lease = Some(lease);
        rt.started_ms = (!waits).then(now_ms);
        let t = &exp.history[i];
        let order = ServerMsg::Assign {
            lease,
            trial: t.id,
            experiment: db::experiment_id(seq).0,
            attempt: rt.attempt,
            spec: exp.spec.trial.clone(),
            params: t.params.clone(),
            resource: t.resource,
            may_wait: waits,
        };
        self.start_run(seq, i, conn, order, waits)
    }

    /// Trial `i` runs now on `conn` (or waits there for a slot), which `order` (an assign
    /// or a continue) tells: marks it running, stores it and says so.
    fn start_run(
        &mut self,
        seq: i64,
        i: usize,
        conn: ConnId,
        order: ServerMsg,
        waiting: bool,
    ) -> Result<(), BackendError> {
        let w = &self.workers[&conn];
        let (worker, worker_name) = (w.worker_id.clone(), w.name.clone());
        let exp = self.exps.get_mut(&seq).expect("known experiment");
        exp.active.insert(i);
        exp.history[i].state = TrialState::Running;
        let rt = &mut exp.rt[i];
        rt.state = TrialState::Running;
        rt.worker = Some(worker_name.clone());
        let (attempt, resource) = (rt.attempt, exp.history[i].resource);
        self.outbox.push((conn, order));
        self.save_trial(seq, i)?;
        self.emit(
            seq,
            ExperimentEvent::TrialLeased {
                trial: TrialId(i as u64),
                worker,
                worker_name,
                attempt,
                resource,
                waiting,
            },
        )
    }

    /// Runs paused trial `i` on to `resource`: on its holder when it has a free slot, else
    /// from its start on `conn`.
    fn promote(
        &mut self,
        seq: i64,
        i: usize,
        resource: u32,
        conn: ConnId,
    ) -> Result<(), BackendError> {
        let held = self.exps[&seq].rt[i].lease.and_then(|lease| {
            let holder = self.leases.get(&lease)?.conn?;
            Some((lease, holder))
        });
        self.exps.get_mut(&seq).expect("known experiment").history[i].resource = Some(resource);
        match held {
            Some((lease, holder)) if self.workers.get(&holder).is_some_and(|w| w.free() > 0) => {
                let w = self.workers.get_mut(&holder).expect("holder");
                w.paused.remove(&lease);
                w.active.insert(lease);
                if let Some(l) = self.leases.get_mut(&lease) {
                    l.running_since = Some(Instant::now());
                }
                let order = ServerMsg::Continue {
                    lease,
                    resource: Some(resource),
                };
                self.start_run(seq, i, holder, order, false)
            }
            other => {
                if let Some((lease, _)) = other {
                    self.stop_holder(lease, "promoted: it continues on another worker");
                    self.release_paused(seq, i, lease);
                } else if let Some(lease) = self.exps[&seq].rt[i].lease {
                    self.release_paused(seq, i, lease);
                }
                // A new run of the same attempt: it reports its steps again, which the
                // store already has.
                let exp = self.exps.get_mut(&seq).expect("known experiment");
                exp.rt[i].attempt = exp.rt[i].attempt.saturating_sub(1);
                self.lease(seq, i, conn)
            }
        }
    }

    /// Ends a running experiment with no trial left to run or to start: paused trials
    /// finish where they are (their holders drop them).
    fn complete_if_done(&mut self, seq: i64) -> Result<(), BackendError> {
        let Some(exp) = self.exps.get_mut(&seq) else {
            return Ok(());
        };
        if exp.state == ExperimentState::Cancelled {
            return self.finish_if_idle(seq);
        }
        if !exp.active.is_empty() || !exp.queue.is_empty() {
            return Ok(());
        }
        if exp.optimizer.suggest(&exp.history).is_some() {
            return Ok(());
        }
        let paused: Vec<usize> = (0..exp.history.len())
            .filter(|&i| exp.rt[i].state == TrialState::Paused)
            .collect();
        for i in paused {
            if let Some(lease) = self.exps[&seq].rt[i].lease {
                self.stop_holder(lease, "the experiment has finished");
                self.release_paused(seq, i, lease);
            }
            let value = self.exps[&seq].history[i].last();
            self.end(seq, i, TrialState::Finished, None, value)?;
        }
        db::set_experiment_state(&self.conn, seq, ExperimentState::Finished)?;
        self.emit(
            seq,
            ExperimentEvent::Experiment {
                state: ExperimentState::Finished,
            },
        )?;
        tracing::info!(experiment = %db::experiment_id(seq), "experiment finished");
        self.exps.remove(&seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(grace: Duration) -> Core {
        Core::open(Connection::open_in_memory().expect("db"), grace).expect("core")
    }

    fn connect(core: &mut Core, conn: ConnId, slots: u32) -> mpsc::UnboundedReceiver<ServerMsg> {
        let (tx, rx) = mpsc::unbounded_channel();
        core.handle_batch(vec![Cmd::Connected {
            conn,
            worker_id: format!("w{conn}"),
            name: format!("worker-{conn}"),
            slots,
            running: Vec::new(),
            jobs: Vec::new(),
            tx,
        }]);
        rx
    }

    fn create(core: &mut Core, extra: serde_json::Value) -> i64 {
        let mut spec = serde_json::json!({
            "name": "t", "metric": "accuracy", "direction": "maximize",
            "params": [{"name": "lr", "type": "float", "low": 0.001, "high": 0.1}],
            "optimizer": {"type": "random"}, "max_trials": 5,
            "trial": {"kind": "synthetic", "steps": 3}
        });
        for (k, v) in extra.as_object().expect("object") {
            spec[k] = v.clone();
        }
        let spec: ExperimentSpec = serde_json::from_value(spec).expect("spec");
        let (reply, mut rx) = oneshot::channel();
        core.handle_batch(vec![Cmd::Create {
            spec: Box::new(spec),
            reply,
        }]);
        let id = rx.try_recv().expect("answered").expect("created");
        db::parse_experiment_id(&id.0).expect("id")
    }

    /// An assign as the tests look at it: lease, trial, resource.
    type Assigned = (LeaseId, u64, Option<u32>);

    /// The orders sent so far: assigns, and the leases of continues.
    fn orders(rx: &mut mpsc::UnboundedReceiver<ServerMsg>) -> (Vec<Assigned>, Vec<LeaseId>) {
        let (mut assigns, mut continues) = (Vec::new(), Vec::new());
        while let Ok(msg) = rx.try_recv() {
            match msg {
                ServerMsg::Assign {
                    lease,
                    trial,
                    resource,
                    ..
                } => assigns.push((lease, trial.0, resource)),
                ServerMsg::Continue { lease, .. } => continues.push(lease),
                _ => {}
            }
        }
        (assigns, continues)
    }

    fn report(core: &mut Core, conn: ConnId, msgs: Vec<WorkerMsg>) {
        core.handle_batch(
            msgs.into_iter()
                .map(|msg| Cmd::Report { conn, msg })
                .collect(),
        );
    }

    fn finish(core: &mut Core, conn: ConnId, lease: LeaseId, value: f64) {
        report(
            core,
            conn,
            vec![
                WorkerMsg::Metric {
                    lease,
                    step: 1,
                    values: [("accuracy".to_string(), value)].into(),
                },
                WorkerMsg::Finished {
                    lease,
                    final_values: [("accuracy".to_string(), value)].into(),
                    duration_ms: 1,
                },
            ],
        );
    }

    fn state(core: &Core, seq: i64) -> ExperimentState {
        db::get_experiment(&core.conn, seq)
            .expect("experiment")
            .state
    }

    #[test]
    fn async_mode_refills_a_slot_at_once_and_bsp_waits_for_the_round() {
        for (mode, refills) in [("async", true), ("bsp", false)] {
            let mut core = core(Duration::from_secs(60));
            let mut rx = connect(&mut core, 1, 2);
            let seq = create(&mut core, serde_json::json!({"mode": mode}));
            let (first, _) = orders(&mut rx);
            assert_eq!(first.len(), 2, "{mode}");
            finish(&mut core, 1, first[0].0, 0.5);
            let (next, _) = orders(&mut rx);
            assert_eq!(!next.is_empty(), refills, "{mode}: {next:?}");
            finish(&mut core, 1, first[1].0, 0.6);
            let mut pending: Vec<LeaseId> = next.iter().map(|a| a.0).collect();
            pending.extend(orders(&mut rx).0.iter().map(|a| a.0));
            // Run the rest to the end, one report at a time.
            let mut done = 2;
            while let Some(lease) = pending.pop() {
                finish(&mut core, 1, lease, 0.4);
                done += 1;
                pending.extend(orders(&mut rx).0.iter().map(|a| a.0));
            }
            assert_eq!(done, 5, "{mode}");
            assert_eq!(state(&core, seq), ExperimentState::Finished, "{mode}");
            let trials = db::list_trials(&core.conn, seq).expect("trials");
            assert!(trials.iter().all(|t| t.state == TrialState::Finished));
        }
    }

    #[test]
    fn prefetch_leases_a_waiting_trial_per_slot_and_times_it_from_its_start() {
        let mut core = core(Duration::from_secs(60));
        let mut rx = connect(&mut core, 1, 2);
        let seq = create(
            &mut core,
            serde_json::json!({"max_trials": 6, "prefetch": 1}),
        );
        // Two slots, one waiting trial per slot: four leases at once, no more.
        let (first, _) = orders(&mut rx);
        assert_eq!(first.len(), 4, "{first:?}");
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        let started = |t: u64| trials[t as usize].started_ms;
        assert!(started(first[0].1).is_some() && started(first[1].1).is_some());
        assert!(started(first[2].1).is_none() && started(first[3].1).is_none());
        // One ends and a waiting one starts on the worker: one more lease keeps the queue full.
        finish(&mut core, 1, first[0].0, 0.5);
        report(&mut core, 1, vec![WorkerMsg::Started { lease: first[2].0 }]);
        let (next, _) = orders(&mut rx);
        assert_eq!(next.len(), 1, "{next:?}");
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        assert!(trials[first[2].1 as usize].started_ms.is_some());
        assert!(trials[next[0].1 as usize].started_ms.is_none());
        // A cancel stops waiting trials like running ones.
        let (reply, mut answer) = oneshot::channel();
        core.handle_batch(vec![Cmd::Cancel { seq, reply }]);
        assert!(answer.try_recv().is_ok());
        let mut stops = 0;
        while let Ok(msg) = rx.try_recv() {
            stops += usize::from(matches!(msg, ServerMsg::Stop { .. }));
        }
        assert_eq!(
            stops, 4,
            "three running or waiting from the start, one leased since"
        );
    }

    #[test]
    fn only_reports_that_leave_no_slot_idle_may_wait() {
        let mut core = core(Duration::from_secs(60));
        let mut rx = connect(&mut core, 1, 1);
        let metric = |lease| Cmd::Report {
            conn: 1,
            msg: WorkerMsg::Metric {
                lease,
                step: 1,
                values: [("accuracy".to_string(), 0.5)].into(),
            },
        };
        let end = |lease| Cmd::Report {
            conn: 1,
            msg: WorkerMsg::Finished {
                lease,
                final_values: [("accuracy".to_string(), 0.5)].into(),
                duration_ms: 1,
            },
        };
        let refused = |lease| Cmd::Report {
            conn: 1,
            msg: WorkerMsg::Failed {
                lease,
                reason: "no".into(),
            },
        };
        create(
            &mut core,
            serde_json::json!({"max_trials": 3, "prefetch": 1}),
        );
        // One slot: a running trial and one waiting behind it.
        let (first, _) = orders(&mut rx);
        let (running, waiting) = (first[0].0, first[1].0);
        assert!(core.can_wait(&metric(running)));
        assert!(
            core.can_wait(&end(running)),
            "its slot goes on with the waiting trial"
        );
        assert!(
            !core.can_wait(&refused(waiting)),
            "nothing waits behind the waiting trial itself"
        );
        let elsewhere = Cmd::Report {
            conn: 2,
            msg: WorkerMsg::Stopped {
                lease: running,
                step: 0,
            },
        };
        assert!(
            !core.can_wait(&elsewhere),
            "a connection with no waiting trial"
        );
        // The waiting trial runs, the last one waits behind it; then it runs alone.
        finish(&mut core, 1, running, 0.5);
        let (next, _) = orders(&mut rx);
        assert_eq!(next.len(), 1, "{next:?}");
        assert!(core.can_wait(&end(waiting)));
        finish(&mut core, 1, waiting, 0.5);
        assert!(core.can_wait(&metric(next[0].0)));
        assert!(
            !core.can_wait(&end(next[0].0)),
            "the slot goes idle (and the experiment ends)"
        );
        // Hellos and API calls never wait.
        let (tx, _rx2) = mpsc::unbounded_channel();
        assert!(!core.can_wait(&Cmd::Connected {
            conn: 2,
            worker_id: "w2".into(),
            name: "worker-2".into(),
            slots: 1,
            running: Vec::new(),
            jobs: Vec::new(),
            tx,
        }));
        assert!(!core.can_wait(&Cmd::Gone { conn: 1 }));
    }

    #[test]
    fn prefetch_queues_a_trial_where_a_slot_should_free_first() {
        let mut core = core(Duration::from_secs(60));
        let mut rx1 = connect(&mut core, 1, 1);
        let mut rx2 = connect(&mut core, 2, 1);
        create(
            &mut core,
            serde_json::json!({"max_trials": 4, "prefetch": 1}),
        );
        let (on1, on2) = (orders(&mut rx1).0, orders(&mut rx2).0);
        assert_eq!((on1.len(), on2.len()), (2, 2), "{on1:?} {on2:?}");
        // Worker 1 moves on to its waiting trial: its running trial is now the younger one.
        finish(&mut core, 1, on1[0].0, 0.5);
        report(&mut core, 1, vec![WorkerMsg::Started { lease: on1[1].0 }]);
        // Worker 2 refuses its waiting trial: both workers have room for it, and worker 2's
        // slot (running since the start) should free before worker 1's.
        report(
            &mut core,
            2,
            vec![WorkerMsg::Failed {
                lease: on2[1].0,
                reason: "refused".into(),
            }],
        );
        let (again1, again2) = (orders(&mut rx1).0, orders(&mut rx2).0);
        assert!(again1.is_empty(), "{again1:?}");
        assert_eq!(again2.len(), 1, "{again2:?}");
        assert_eq!(again2[0].1, on2[1].1, "the refused trial, leased again");
    }

    #[test]
    fn prefetch_yields_to_a_waiting_job_and_to_older_experiments() {
        let mut core = core(Duration::from_secs(60));
        let mut rx = connect(&mut core, 1, 1);
        let older = create(&mut core, serde_json::json!({"max_trials": 3}));
        let (a, _) = orders(&mut rx);
        assert_eq!(a.len(), 1, "the older experiment takes the one slot");
        // A newer sweep with prefetch may not queue behind the older one's next trial.
        let newer = create(
            &mut core,
            serde_json::json!({"max_trials": 6, "prefetch": 1}),
        );
        assert!(orders(&mut rx).0.is_empty());
        finish(&mut core, 1, a[0].0, 0.5);
        let (b, _) = orders(&mut rx);
        assert_eq!(b.len(), 1);
        let trials_of = |seq: i64, core: &Core| db::list_trials(&core.conn, seq).unwrap().len();
        assert_eq!(
            trials_of(older, &core),
            2,
            "the free slot went to the older experiment"
        );
        assert_eq!(trials_of(newer, &core), 0);
        // The older one runs out of trials: now the sweep queues one behind the running one.
        finish(&mut core, 1, b[0].0, 0.5);
        let (c, _) = orders(&mut rx);
        finish(&mut core, 1, c[0].0, 0.5);
        let (d, _) = orders(&mut rx);
        assert_eq!(trials_of(older, &core), 3);
        assert_eq!(d.len(), 2, "one running, one waiting: {d:?}");
        // A job arrives: the sweep stops queueing, and the job gets the slot that frees once
        // the waiting trial has run.
        let (reply, _job) = oneshot::channel();
        core.handle_batch(vec![Cmd::CreateJob {
            kind: "build_dataset".into(),
            spec: JobSpec::BuildDataset {
                root: "/tmp/x".into(),
                spec: serde_json::json!({}),
            },
            reply,
        }]);
        finish(&mut core, 1, d[0].0, 0.5);
        report(&mut core, 1, vec![WorkerMsg::Started { lease: d[1].0 }]);
        let jobs = |rx: &mut mpsc::UnboundedReceiver<ServerMsg>| {
            let mut n = (0, 0);
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    ServerMsg::Assign { .. } => n.0 += 1,
                    ServerMsg::Job { .. } => n.1 += 1,
                    _ => {}
                }
            }
            n
        };
        assert_eq!(jobs(&mut rx), (0, 0), "no trial queued while the job waits");
        finish(&mut core, 1, d[1].0, 0.5);
        assert_eq!(jobs(&mut rx), (0, 1), "the job runs next");
    }

    #[test]
    fn a_lost_workers_trial_runs_again_elsewhere_up_to_the_attempt_limit() {
        let mut core = core(Duration::ZERO);
        let mut a = connect(&mut core, 1, 1);
        let seq = create(
            &mut core,
            serde_json::json!({"max_trials": 1, "max_attempts": 2}),
        );
        let (first, _) = orders(&mut a);
        assert_eq!(first.len(), 1);
        core.handle_batch(vec![Cmd::Gone { conn: 1 }]);
        // The grace period is zero: the next batch requeues it, a new worker gets it.
        let mut b = connect(&mut core, 2, 1);
        let (second, _) = orders(&mut b);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].1, first[0].1, "the same trial");
        assert_ne!(second[0].0, first[0].0, "under a new lease");
        // A late report of the old lease changes nothing.
        finish(&mut core, 1, first[0].0, 0.9);
        assert_eq!(state(&core, seq), ExperimentState::Running);
        core.handle_batch(vec![Cmd::Gone { conn: 2 }]);
        core.handle_batch(Vec::new());
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        assert_eq!(trials[0].state, TrialState::Failed);
        assert_eq!(trials[0].attempt, 2);
        assert!(
            trials[0]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("gave up"),
            "{trials:?}"
        );
        assert_eq!(state(&core, seq), ExperimentState::Finished);
    }

    #[test]
    fn a_lost_workers_waiting_trials_do_not_spend_an_attempt() {
        let mut core = core(Duration::ZERO);
        let mut a = connect(&mut core, 1, 1);
        let seq = create(
            &mut core,
            serde_json::json!({"max_trials": 2, "max_attempts": 1, "prefetch": 1}),
        );
        // One running, one waiting behind it on the same slot.
        let (first, _) = orders(&mut a);
        assert_eq!(first.len(), 2, "{first:?}");
        core.handle_batch(vec![Cmd::Gone { conn: 1 }]);
        core.handle_batch(Vec::new());
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        let of = |t: u64| &trials[t as usize];
        // The running one used its only attempt; the waiting one never ran and goes back to
        // the queue with its attempt unspent.
        assert_eq!(of(first[0].1).state, TrialState::Failed, "{trials:?}");
        assert_eq!(of(first[1].1).state, TrialState::Queued, "{trials:?}");
        assert_eq!(of(first[1].1).attempt, 0, "{trials:?}");
        let mut b = connect(&mut core, 2, 1);
        let (second, _) = orders(&mut b);
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!(second[0].1, first[1].1, "the waiting trial runs now");
        finish(&mut core, 2, second[0].0, 0.7);
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        assert_eq!(trials[first[1].1 as usize].state, TrialState::Finished);
        assert_eq!(trials[first[1].1 as usize].attempt, 1);
        assert_eq!(state(&core, seq), ExperimentState::Finished);
    }

    #[test]
    fn asha_continues_a_paused_trial_on_the_worker_that_holds_it() {
        let mut core = core(Duration::from_secs(60));
        let mut rx = connect(&mut core, 1, 1);
        let seq = create(
            &mut core,
            serde_json::json!({"max_trials": 3,
                "optimizer": {"type": "asha", "min_resource": 1, "max_resource": 3,
                              "reduction_factor": 3}}),
        );
        let mut continued = Vec::new();
        for value in [0.3, 0.9, 0.5] {
            let (assigns, conts) = orders(&mut rx);
            continued.extend(conts);
            let (lease, _, resource) = assigns[0];
            assert_eq!(resource, Some(1));
            report(
                &mut core,
                1,
                vec![
                    WorkerMsg::Metric {
                        lease,
                        step: 1,
                        values: [("accuracy".to_string(), value)].into(),
                    },
                    WorkerMsg::Paused { lease, step: 1 },
                ],
            );
        }
        let (assigns, conts) = orders(&mut rx);
        continued.extend(conts);
        assert!(assigns.is_empty(), "{assigns:?}");
        // The best of the three at rung 1 (0.9, the second trial) goes on, where it is.
        assert_eq!(continued.len(), 1, "{continued:?}");
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        assert_eq!(trials[1].state, TrialState::Running);
        assert_eq!(trials[1].resource, Some(3));
        assert_eq!(trials[0].state, TrialState::Paused);
    }

    #[test]
    fn cancel_stops_running_trials_and_ends_the_experiment() {
        let mut core = core(Duration::from_secs(60));
        let mut rx = connect(&mut core, 1, 2);
        let seq = create(&mut core, serde_json::json!({}));
        let (running, _) = orders(&mut rx);
        let (reply, mut answer) = oneshot::channel();
        core.handle_batch(vec![Cmd::Cancel { seq, reply }]);
        answer.try_recv().expect("answered").expect("cancelled");
        let mut stops = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let ServerMsg::Stop { lease, .. } = msg {
                stops.push(lease);
            }
        }
        assert_eq!(stops.len(), running.len());
        report(
            &mut core,
            1,
            stops
                .iter()
                .map(|&lease| WorkerMsg::Stopped { lease, step: 0 })
                .collect(),
        );
        assert_eq!(state(&core, seq), ExperimentState::Cancelled);
        let trials = db::list_trials(&core.conn, seq).expect("trials");
        assert_eq!(trials.len(), 2, "no trial after the cancel");
        assert!(trials.iter().all(|t| t.state == TrialState::Stopped));
        assert!(core.exps.is_empty());
        // A second cancel is refused.
        let (reply, mut answer) = oneshot::channel();
        core.handle_batch(vec![Cmd::Cancel { seq, reply }]);
        assert!(answer.try_recv().expect("answered").is_err());
    }
}
