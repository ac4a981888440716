//! The experiment engine: the driver thread, its handle, and the live event feed.
//!
//! What it is: [`Engine::start`] opens its own connection to the store, resumes the running
//! experiments (see [`core`]) and runs the driver on a dedicated thread. Everything that
//! changes an experiment goes through the handle as a [`Cmd`]: the worker sessions
//! (`crate::workers`) send hellos, reports and goodbyes, the API sends creates and cancels.
//! Committed events are broadcast to [`Engine::subscribe`]rs (the SSE streams), which fall
//! back to the store when they lag.
//!
//! What it is not: no HTTP (that is `crate::experiments`), no WebSocket (that is
//! `crate::workers`), no algorithms (that is `albedo-tuning`).
//!
//! Layout: [`core`] (the driver's state and decisions), [`db`] (its tables and queries).

pub mod core;
pub mod db;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use albedo_shared::api::RunningTrial;
use albedo_shared::events::EventRecord;
use albedo_shared::experiment::{ExperimentId, ExperimentSpec};
use albedo_shared::protocol::{JobId, JobSpec};

pub use self::core::{Cmd, ConnId, Core};
use crate::error::BackendError;

/// Most inputs handled in one transaction.
const MAX_BATCH: usize = 4096;

/// How long a batch of inputs that need no answer yet ([`Core::can_wait`]) waits for more
/// before it is handled: its work then falls after the moment the trials around it end,
/// not in it, and is shared with the inputs that joined.
const QUIET: Duration = Duration::from_millis(2);

/// How often a waiting batch looks for inputs that cannot wait.
const LOOK: Duration = Duration::from_micros(250);

/// Events kept for subscribers that fall behind (they re-read the store past that).
const EVENT_BUFFER: usize = 16_384;

/// Handle on the engine thread; cheap to clone. The thread ends when every handle is gone.
#[derive(Debug, Clone)]
pub struct Engine {
    tx: std_mpsc::Sender<Cmd>,
    events: broadcast::Sender<Arc<EventRecord>>,
    next_conn: Arc<std::sync::atomic::AtomicU64>,
}

impl Engine {
    /// Opens the engine on the store file `db_path` and starts its thread. `lease_grace` is
    /// how long a lease whose worker is gone waits for that worker to come back.
    pub fn start(db_path: &Path, lease_grace: Duration) -> Result<Engine, BackendError> {
        let conn = Connection::open(db_path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut core = Core::open(conn, lease_grace)?;
        let (tx, rx) = std_mpsc::channel::<Cmd>();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let feed = events.clone();
        let tick = (lease_grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        std::thread::Builder::new()
            .name("albedo-engine".into())
            .spawn(move || {
                // A first batch resumes work (dispatch, expired orphans) without waiting.
                let mut batch = Vec::new();
                loop {
                    let delivery = core.handle_batch(std::mem::take(&mut batch));
                    for event in delivery.events {
                        let _ = feed.send(Arc::new(event));
                    }
                    match rx.recv_timeout(tick) {
                        Ok(cmd) => batch.push(cmd),
                        Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    gather(&rx, &mut batch, QUIET, |cmd| core.can_wait(cmd));
                }
                tracing::debug!("engine thread stopped");
            })
            .map_err(|source| BackendError::Io {
                context: "starting the engine thread".into(),
                source,
            })?;
        Ok(Engine {
            tx,
            events,
            next_conn: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        })
    }

    /// A fresh id for a worker connection.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Hands `cmd` to the driver.
    pub fn send(&self, cmd: Cmd) -> Result<(), BackendError> {
        self.tx
            .send(cmd)
            .map_err(|_| BackendError::Unavailable("the experiment engine has stopped".into()))
    }

    /// Creates an experiment from a spec (validated again by the driver); answers once it is
    /// stored.
    pub async fn create(&self, spec: ExperimentSpec) -> Result<ExperimentId, BackendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Create {
            spec: Box::new(spec),
            reply,
        })?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the experiment engine has stopped".into()))?
    }

    /// Cancels experiment row `seq`: its running trials are ordered to stop.
    pub async fn cancel(&self, seq: i64) -> Result<(), BackendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Cancel { seq, reply })?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the experiment engine has stopped".into()))?
    }

    /// Queues a job; answers once it is stored.
    pub async fn create_job(&self, kind: &str, spec: JobSpec) -> Result<JobId, BackendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::CreateJob {
            kind: kind.to_string(),
            spec,
            reply,
        })?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the experiment engine has stopped".into()))?
    }

    /// Cancels a job (a running one is told to stop).
    pub async fn cancel_job(&self, job: JobId) -> Result<(), BackendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::CancelJob { job, reply })?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the experiment engine has stopped".into()))?
    }

    /// The trials each worker (by connection id, `w3`) runs now.
    pub async fn running(&self) -> Result<HashMap<String, Vec<RunningTrial>>, BackendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Running { reply })?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the experiment engine has stopped".into()))
    }

    /// The live feed of committed events (every experiment).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.events.subscribe()
    }
}

/// Adds to `batch` what else has arrived, and while everything in it `can_wait`
/// ([`Core::can_wait`]) what arrives in the next `quiet` too, looking every [`LOOK`]. It
/// sleeps rather than waits on the channel: a waiting receiver is woken by every input.
fn gather(
    rx: &std_mpsc::Receiver<Cmd>,
    batch: &mut Vec<Cmd>,
    quiet: Duration,
    can_wait: impl Fn(&Cmd) -> bool,
) {
    let until = Instant::now() + quiet;
    let mut urgent = batch.iter().any(|c| !can_wait(c));
    loop {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => {
                    urgent |= !can_wait(&cmd);
                    batch.push(cmd);
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if urgent || batch.len() >= MAX_BATCH || now >= until {
            return;
        }
        std::thread::sleep(LOOK.min(until - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::protocol::WorkerMsg;

    fn heartbeat() -> Cmd {
        Cmd::Report {
            conn: 1,
            msg: WorkerMsg::Heartbeat,
        }
    }

    /// Heartbeats may wait, a lost connection may not.
    fn can_wait(cmd: &Cmd) -> bool {
        matches!(cmd, Cmd::Report { .. })
    }

    #[test]
    fn a_batch_that_can_wait_gathers_for_the_quiet_time_and_an_urgent_input_ends_it() {
        let (tx, rx) = std_mpsc::channel();
        // Everything may wait: the batch takes what came and waits out its quiet time.
        tx.send(heartbeat()).expect("send");
        let mut batch = vec![heartbeat()];
        let begun = Instant::now();
        gather(&rx, &mut batch, Duration::from_millis(100), can_wait);
        assert!(begun.elapsed() >= Duration::from_millis(100));
        assert_eq!(batch.len(), 2);
        // An input that cannot wait, arriving during the quiet time, ends it.
        let sender = std::thread::spawn({
            let tx = tx.clone();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send(Cmd::Gone { conn: 1 }).expect("send");
            }
        });
        let mut batch = vec![heartbeat()];
        let begun = Instant::now();
        gather(&rx, &mut batch, Duration::from_secs(30), can_wait);
        assert!(begun.elapsed() < Duration::from_secs(30));
        assert_eq!(batch.len(), 2);
        sender.join().expect("sender");
        // A batch that cannot wait takes only what is there.
        tx.send(heartbeat()).expect("send");
        let mut batch = vec![Cmd::Gone { conn: 1 }];
        let begun = Instant::now();
        gather(&rx, &mut batch, Duration::from_secs(30), can_wait);
        assert!(begun.elapsed() < Duration::from_secs(30));
        assert_eq!(batch.len(), 2);
    }
}
