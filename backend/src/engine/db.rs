//! The engine's tables in the embedded store: experiments, trials, metric series and the event
//! log, with the statements the driver writes through and the queries the API reads.
//!
//! Contract: the driver is the only writer (one connection, on its own thread); every change
//! it makes to one batch of inputs commits in one transaction before anything is sent to a
//! worker or a client, so that what a worker has been told or acknowledged is on disk.
//! Readers (API handlers) use the store's own connection; WAL mode lets them read while the
//! driver writes.
//!
//! - `experiments`: one row per experiment; its id is `e` and the row's sequence number.
//! - `trials`: one row per trial (`experiment`, `trial`), its current state, attempt, lease
//!   and objective value; a trial's lease is unique across the server and only grows.
//! - `metrics`: one row per reported step (`experiment`, `trial`, `step`); a re-run
//!   (a later attempt) replaces the values of a step, a duplicate of the same attempt is
//!   ignored.
//! - `events`: the log the SSE stream replays, numbered across the whole server.
//! - `jobs`: work for workers that is not a trial (building a dataset), with its progress and
//!   result.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use albedo_shared::api::{
    BestTrial, ExperimentSummary, JobInfo, JobState, MetricPoint, TrialCounts, TrialInfo,
    TrialSeries,
};
use albedo_shared::events::{EventRecord, ExperimentEvent};
use albedo_shared::experiment::{
    Direction, ExperimentId, ExperimentSpec, ExperimentState, Params, TrialId, TrialState,
};
use albedo_shared::protocol::{JobId, JobSpec};

use crate::error::BackendError;

/// The engine's schema (created if missing).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS experiments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    experiment INTEGER NOT NULL,
    trial INTEGER NOT NULL,
    params_json TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    resource INTEGER,
    lease INTEGER,
    worker TEXT,
    value REAL,
    reason TEXT,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    ended_ms INTEGER,
    artifacts_json TEXT,
    PRIMARY KEY (experiment, trial)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
    experiment INTEGER NOT NULL,
    trial INTEGER NOT NULL,
    step INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    values_json TEXT NOT NULL,
    PRIMARY KEY (experiment, trial, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_experiment ON events (experiment, id);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    result_json TEXT,
    error TEXT,
    worker TEXT,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    ended_ms INTEGER
);
";

/// Milliseconds since 1970 on this host's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 time now (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The row number behind an experiment id (`e12` -> 12); `None` for anything else, so that
/// an id from a request is never used as it came.
pub fn parse_experiment_id(id: &str) -> Option<i64> {
    let digits = id.strip_prefix('e')?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// The id of experiment row `seq`.
pub fn experiment_id(seq: i64) -> ExperimentId {
    ExperimentId(format!("e{seq}"))
}

/// Inserts a new running experiment; returns its row number.
pub fn insert_experiment(conn: &Connection, spec: &ExperimentSpec) -> Result<i64, BackendError> {
    conn.execute(
        "INSERT INTO experiments (name, spec_json, state, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            spec.name,
            serde_json::to_string(spec)?,
            ExperimentState::Running.as_str(),
            now_rfc3339()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Sets an experiment's state (and its end time when it ends).
pub fn set_experiment_state(
    conn: &Connection,
    seq: i64,
    state: ExperimentState,
) -> Result<(), BackendError> {
    let ended = (state != ExperimentState::Running).then(now_rfc3339);
    conn.prepare_cached("UPDATE experiments SET state = ?2, ended_at = ?3 WHERE seq = ?1")?
        .execute(params![seq, state.as_str(), ended])?;
    Ok(())
}

/// Appends an event; returns it numbered.
pub fn insert_event(
    conn: &Connection,
    seq: i64,
    at_ms: i64,
    event: ExperimentEvent,
) -> Result<EventRecord, BackendError> {
    conn.prepare_cached("INSERT INTO events (experiment, at_ms, json) VALUES (?1, ?2, ?3)")?
        .execute(params![seq, at_ms, serde_json::to_string(&event)?])?;
    Ok(EventRecord {
        id: conn.last_insert_rowid() as u64,
        experiment: experiment_id(seq),
        at_ms,
        event,
    })
}

/// A trial row as the driver writes it.
#[derive(Debug, Clone)]
pub struct TrialRow<'a> {
    /// Experiment row.
    pub experiment: i64,
    /// Trial id.
    pub trial: TrialId,
    /// Configuration.
    pub params: &'a Params,
    /// State.
    pub state: TrialState,
    /// Attempts started.
    pub attempt: u32,
    /// Resource.
    pub resource: Option<u32>,
    /// Current lease.
    pub lease: Option<u64>,
    /// Worker name.
    pub worker: Option<&'a str>,
    /// Objective value.
    pub value: Option<f64>,
    /// Reason.
    pub reason: Option<&'a str>,
    /// Created.
    pub created_ms: i64,
    /// Started.
    pub started_ms: Option<i64>,
    /// Ended.
    pub ended_ms: Option<i64>,
    /// Files it made, by name.
    pub artifacts: &'a BTreeMap<String, String>,
}

/// Writes a trial's whole row (insert or replace).
pub fn put_trial(conn: &Connection, t: &TrialRow<'_>) -> Result<(), BackendError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO trials (experiment, trial, params_json, state, attempt,
            resource, lease, worker, value, reason, created_ms, started_ms, ended_ms,
            artifacts_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        t.experiment,
        t.trial.0 as i64,
        serde_json::to_string(t.params)?,
        t.state.as_str(),
        t.attempt,
        t.resource,
        t.lease.map(|l| l as i64),
        t.worker,
        t.value.filter(|v| v.is_finite()),
        t.reason,
        t.created_ms,
        t.started_ms,
        t.ended_ms,
        (!t.artifacts.is_empty())
            .then(|| serde_json::to_string(t.artifacts))
            .transpose()?,
    ])?;
    Ok(())
}

/// Stores the values of one step; returns whether they are new (not a duplicate of the same
/// or an older attempt).
pub fn put_metric(
    conn: &Connection,
    experiment: i64,
    trial: TrialId,
    step: u32,
    attempt: u32,
    values: &BTreeMap<String, f64>,
) -> Result<bool, BackendError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO metrics (experiment, trial, step, attempt, values_json)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (experiment, trial, step) DO UPDATE
                SET attempt = excluded.attempt, values_json = excluded.values_json
                WHERE excluded.attempt > metrics.attempt",
        )?
        .execute(params![
            experiment,
            trial.0 as i64,
            step,
            attempt,
            serde_json::to_string(&finite(values))?
        ])?;
    Ok(n > 0)
}

/// JSON has no NaN or infinity: such values are left out.
fn finite(values: &BTreeMap<String, f64>) -> BTreeMap<&str, f64> {
    values
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

fn artifacts_of(json: Option<String>) -> Result<BTreeMap<String, String>, BackendError> {
    Ok(json
        .map(|j| serde_json::from_str(&j))
        .transpose()?
        .unwrap_or_default())
}

/// Adds the columns later versions brought to tables made by earlier ones.
pub fn migrate(conn: &Connection) -> Result<(), BackendError> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('trials') WHERE name = 'artifacts_json'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE trials ADD COLUMN artifacts_json TEXT")?;
    }
    Ok(())
}

/// The largest lease ever given out.
pub fn max_lease(conn: &Connection) -> Result<u64, BackendError> {
    let v: Option<i64> = conn.query_row("SELECT max(lease) FROM trials", [], |r| r.get(0))?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

/// An experiment as loaded to resume it.
#[derive(Debug)]
pub struct LoadedExperiment {
    /// Row number.
    pub seq: i64,
    /// Its spec.
    pub spec: ExperimentSpec,
    /// Its trials in id order.
    pub trials: Vec<LoadedTrial>,
}

/// A trial as loaded to resume it.
#[derive(Debug)]
pub struct LoadedTrial {
    /// Id.
    pub id: TrialId,
    /// Configuration.
    pub params: Params,
    /// State.
    pub state: TrialState,
    /// Attempts started.
    pub attempt: u32,
    /// Resource.
    pub resource: Option<u32>,
    /// Lease.
    pub lease: Option<u64>,
    /// Worker name.
    pub worker: Option<String>,
    /// Objective value.
    pub value: Option<f64>,
    /// Reason.
    pub reason: Option<String>,
    /// Created.
    pub created_ms: i64,
    /// Started.
    pub started_ms: Option<i64>,
    /// Ended.
    pub ended_ms: Option<i64>,
    /// The objective's value at each step (`NaN` where a step lacks it).
    pub values: Vec<f64>,
    /// Files it made, by name.
    pub artifacts: BTreeMap<String, String>,
}

/// Every running experiment with its trials and their objective values.
pub fn load_running(conn: &Connection) -> Result<Vec<LoadedExperiment>, BackendError> {
    let mut out = Vec::new();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, spec_json FROM experiments WHERE state = 'running' ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (seq, spec_json) in rows {
        let spec: ExperimentSpec = serde_json::from_str(&spec_json)?;
        let mut trials = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT trial, params_json, state, attempt, resource, lease, worker, value, reason,
                    created_ms, started_ms, ended_ms, artifacts_json
             FROM trials WHERE experiment = ?1 ORDER BY trial",
        )?;
        let mut rows = stmt.query(params![seq])?;
        while let Some(r) = rows.next()? {
            let state: String = r.get(2)?;
            let params_json: String = r.get(1)?;
            trials.push(LoadedTrial {
                id: TrialId(r.get::<_, i64>(0)? as u64),
                params: serde_json::from_str(&params_json)?,
                state: TrialState::parse(&state).unwrap_or(TrialState::Queued),
                attempt: r.get(3)?,
                resource: r.get(4)?,
                lease: r.get::<_, Option<i64>>(5)?.map(|l| l as u64),
                worker: r.get(6)?,
                value: r.get(7)?,
                reason: r.get(8)?,
                created_ms: r.get(9)?,
                started_ms: r.get(10)?,
                ended_ms: r.get(11)?,
                values: Vec::new(),
                artifacts: artifacts_of(r.get(12)?)?,
            });
        }
        let mut stmt = conn.prepare(
            "SELECT trial, step, values_json FROM metrics WHERE experiment = ?1
             ORDER BY trial, step",
        )?;
        let mut rows = stmt.query(params![seq])?;
        while let Some(r) = rows.next()? {
            let trial = r.get::<_, i64>(0)? as usize;
            let step = r.get::<_, i64>(1)?.max(1) as usize;
            let values: BTreeMap<String, f64> = serde_json::from_str(&r.get::<_, String>(2)?)?;
            if let Some(t) = trials.get_mut(trial) {
                if t.values.len() < step {
                    t.values.resize(step, f64::NAN);
                }
                t.values[step - 1] = values.get(&spec.metric).copied().unwrap_or(f64::NAN);
            }
        }
        out.push(LoadedExperiment { seq, spec, trials });
    }
    Ok(out)
}

fn summary_row(
    conn: &Connection,
    seq: i64,
    state: &str,
    spec_json: &str,
    created_at: String,
    ended_at: Option<String>,
) -> Result<ExperimentSummary, BackendError> {
    let spec: ExperimentSpec = serde_json::from_str(spec_json)?;
    let mut counts = TrialCounts::default();
    let mut stmt = conn.prepare_cached(
        "SELECT state, count(*) FROM trials WHERE experiment = ?1 GROUP BY state",
    )?;
    let mut rows = stmt.query(params![seq])?;
    while let Some(r) = rows.next()? {
        let n: u32 = r.get(1)?;
        match TrialState::parse(&r.get::<_, String>(0)?) {
            Some(TrialState::Queued) => counts.queued = n,
            Some(TrialState::Running) => counts.running = n,
            Some(TrialState::Paused) => counts.paused = n,
            Some(TrialState::Finished) => counts.finished = n,
            Some(TrialState::Stopped) => counts.stopped = n,
            Some(TrialState::Failed) | None => counts.failed += n,
        }
    }
    let order = match spec.direction {
        Direction::Maximize => "DESC",
        Direction::Minimize => "ASC",
    };
    let best = conn
        .prepare_cached(&format!(
            "SELECT trial, value FROM trials WHERE experiment = ?1 AND state = 'finished'
               AND value IS NOT NULL ORDER BY value {order}, trial LIMIT 1"
        ))?
        .query_row(params![seq], |r| {
            Ok(BestTrial {
                trial: TrialId(r.get::<_, i64>(0)? as u64),
                value: r.get(1)?,
            })
        })
        .optional()?;
    Ok(ExperimentSummary {
        id: experiment_id(seq),
        name: spec.name.clone(),
        state: ExperimentState::parse(state).unwrap_or(ExperimentState::Running),
        created_at,
        ended_at,
        trials: counts,
        best,
        spec,
    })
}

/// Every experiment, newest first.
pub fn list_experiments(conn: &Connection) -> Result<Vec<ExperimentSummary>, BackendError> {
    let rows: Vec<(i64, String, String, String, Option<String>)> = conn
        .prepare(
            "SELECT seq, state, spec_json, created_at, ended_at FROM experiments ORDER BY seq DESC",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(seq, state, spec, created, ended)| {
            summary_row(conn, seq, &state, &spec, created, ended)
        })
        .collect()
}

/// One experiment.
pub fn get_experiment(conn: &Connection, seq: i64) -> Result<ExperimentSummary, BackendError> {
    let row: Option<(String, String, String, Option<String>)> = conn
        .query_row(
            "SELECT state, spec_json, created_at, ended_at FROM experiments WHERE seq = ?1",
            params![seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (state, spec, created, ended) =
        row.ok_or_else(|| BackendError::not_found(format!("experiment 'e{seq}'")))?;
    summary_row(conn, seq, &state, &spec, created, ended)
}

/// The trials of an experiment in id order.
pub fn list_trials(conn: &Connection, seq: i64) -> Result<Vec<TrialInfo>, BackendError> {
    let mut stmt = conn.prepare(
        "SELECT t.trial, t.params_json, t.state, t.attempt, t.resource, t.worker, t.value,
                t.reason, t.created_ms, t.started_ms, t.ended_ms,
                (SELECT count(*) FROM metrics m WHERE m.experiment = t.experiment
                    AND m.trial = t.trial),
                t.artifacts_json
         FROM trials t WHERE t.experiment = ?1 ORDER BY t.trial",
    )?;
    let mut rows = stmt.query(params![seq])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(TrialInfo {
            id: TrialId(r.get::<_, i64>(0)? as u64),
            params: serde_json::from_str(&r.get::<_, String>(1)?)?,
            state: TrialState::parse(&r.get::<_, String>(2)?).unwrap_or(TrialState::Failed),
            attempt: r.get(3)?,
            resource: r.get(4)?,
            worker: r.get(5)?,
            value: r.get(6)?,
            reason: r.get(7)?,
            created_ms: r.get(8)?,
            started_ms: r.get(9)?,
            ended_ms: r.get(10)?,
            steps: r.get(11)?,
            artifacts: artifacts_of(r.get(12)?)?,
        });
    }
    Ok(out)
}

/// The metric series of an experiment's trials (all of them, or one).
pub fn series(
    conn: &Connection,
    seq: i64,
    trial: Option<TrialId>,
) -> Result<Vec<TrialSeries>, BackendError> {
    let mut stmt = conn.prepare(
        "SELECT trial, step, values_json FROM metrics
         WHERE experiment = ?1 AND (?2 IS NULL OR trial = ?2) ORDER BY trial, step",
    )?;
    let mut rows = stmt.query(params![seq, trial.map(|t| t.0 as i64)])?;
    let mut out: Vec<TrialSeries> = Vec::new();
    while let Some(r) = rows.next()? {
        let id = TrialId(r.get::<_, i64>(0)? as u64);
        let point = MetricPoint {
            step: r.get(1)?,
            values: serde_json::from_str(&r.get::<_, String>(2)?)?,
        };
        match out.last_mut() {
            Some(s) if s.trial == id => s.points.push(point),
            _ => out.push(TrialSeries {
                trial: id,
                points: vec![point],
            }),
        }
    }
    Ok(out)
}

/// Events of experiment `seq` after event `after`, at most `limit`, in order.
pub fn events_after(
    conn: &Connection,
    seq: i64,
    after: u64,
    limit: u32,
) -> Result<Vec<EventRecord>, BackendError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, json FROM events WHERE experiment = ?1 AND id > ?2
         ORDER BY id LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![seq, after as i64, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(EventRecord {
            id: r.get::<_, i64>(0)? as u64,
            experiment: experiment_id(seq),
            at_ms: r.get(1)?,
            event: serde_json::from_str(&r.get::<_, String>(2)?)?,
        });
    }
    Ok(out)
}

/// Inserts a queued job; returns its id.
pub fn insert_job(conn: &Connection, kind: &str, spec: &JobSpec) -> Result<u64, BackendError> {
    conn.execute(
        "INSERT INTO jobs (kind, spec_json, state, attempt, created_ms) VALUES (?1, ?2, ?3, 0, ?4)",
        params![
            kind,
            serde_json::to_string(spec)?,
            JobState::Queued.as_str(),
            now_ms()
        ],
    )?;
    Ok(conn.last_insert_rowid() as u64)
}

/// Writes a job's state, attempt and worker (and its start or end time with it).
pub fn set_job_state(
    conn: &Connection,
    id: u64,
    state: JobState,
    attempt: u32,
    worker: Option<&str>,
    error: Option<&str>,
) -> Result<(), BackendError> {
    let now = now_ms();
    conn.prepare_cached(
        "UPDATE jobs SET state = ?2, attempt = ?3, worker = coalesce(?4, worker),
            error = ?5,
            started_ms = CASE WHEN ?2 = 'running' THEN ?6 ELSE started_ms END,
            ended_ms = CASE WHEN ?2 IN ('finished', 'failed', 'cancelled') THEN ?6 ELSE NULL END
         WHERE id = ?1",
    )?
    .execute(params![
        id as i64,
        state.as_str(),
        attempt,
        worker,
        error,
        now
    ])?;
    Ok(())
}

/// Records a job's progress.
pub fn set_job_progress(
    conn: &Connection,
    id: u64,
    done: u64,
    total: u64,
) -> Result<(), BackendError> {
    conn.prepare_cached("UPDATE jobs SET done = ?2, total = ?3 WHERE id = ?1")?
        .execute(params![id as i64, done as i64, total as i64])?;
    Ok(())
}

/// Records what a finished job made.
pub fn set_job_result(
    conn: &Connection,
    id: u64,
    result: &serde_json::Value,
) -> Result<(), BackendError> {
    conn.prepare_cached("UPDATE jobs SET result_json = ?2, done = total WHERE id = ?1")?
        .execute(params![id as i64, serde_json::to_string(result)?])?;
    Ok(())
}

/// Jobs not ended (queued or running), to resume: (id, spec, state, attempt).
pub fn load_open_jobs(
    conn: &Connection,
) -> Result<Vec<(u64, JobSpec, JobState, u32)>, BackendError> {
    let rows: Vec<(i64, String, String, u32)> = conn
        .prepare(
            "SELECT id, spec_json, state, attempt FROM jobs
             WHERE state IN ('queued', 'running') ORDER BY id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(id, spec, state, attempt)| {
            Ok((
                id as u64,
                serde_json::from_str(&spec)?,
                JobState::parse(&state).unwrap_or(JobState::Queued),
                attempt,
            ))
        })
        .collect()
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobInfo, Option<String>)> {
    let state: String = r.get(2)?;
    Ok((
        JobInfo {
            id: JobId(r.get::<_, i64>(0)? as u64),
            kind: r.get(1)?,
            state: JobState::parse(&state).unwrap_or(JobState::Failed),
            attempt: r.get(3)?,
            done: r.get::<_, i64>(4)? as u64,
            total: r.get::<_, i64>(5)? as u64,
            result: None,
            error: r.get(7)?,
            worker: r.get(8)?,
            created_ms: r.get(9)?,
            started_ms: r.get(10)?,
            ended_ms: r.get(11)?,
        },
        r.get(6)?,
    ))
}

const JOB_COLUMNS: &str = "id, kind, state, attempt, done, total, result_json, error, worker,
    created_ms, started_ms, ended_ms";

/// Every job, newest first.
pub fn list_jobs(conn: &Connection) -> Result<Vec<JobInfo>, BackendError> {
    let mut stmt = conn.prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC"))?;
    let rows = stmt.query_map([], job_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut info, result) = row?;
        info.result = result.map(|r| serde_json::from_str(&r)).transpose()?;
        out.push(info);
    }
    Ok(out)
}

/// One job.
pub fn get_job(conn: &Connection, id: u64) -> Result<JobInfo, BackendError> {
    let row = conn
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            params![id as i64],
            job_row,
        )
        .optional()?;
    let (mut info, result) = row.ok_or_else(|| BackendError::not_found(format!("job {id}")))?;
    info.result = result.map(|r| serde_json::from_str(&r)).transpose()?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_ids_are_parsed_strictly() {
        assert_eq!(parse_experiment_id("e12"), Some(12));
        for bad in [
            "",
            "e",
            "12",
            "e0",
            "e-1",
            "e1x",
            "E1",
            "e 1",
            "e99999999999999999999",
        ] {
            assert_eq!(parse_experiment_id(bad), None, "{bad}");
        }
        assert_eq!(experiment_id(3).0, "e3");
    }

    #[test]
    fn a_metric_of_an_older_or_same_attempt_is_a_duplicate() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let v = |x: f64| BTreeMap::from([("acc".to_string(), x)]);
        assert!(put_metric(&conn, 1, TrialId(0), 1, 1, &v(0.5)).unwrap());
        assert!(!put_metric(&conn, 1, TrialId(0), 1, 1, &v(0.6)).unwrap());
        assert!(put_metric(&conn, 1, TrialId(0), 1, 2, &v(0.7)).unwrap());
        assert!(!put_metric(&conn, 1, TrialId(0), 1, 1, &v(0.8)).unwrap());
        let s = series(&conn, 1, None).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].points[0].values["acc"], 0.7);
        // NaN is left out of the stored JSON.
        assert!(put_metric(&conn, 1, TrialId(0), 2, 1, &v(f64::NAN)).unwrap());
        assert!(
            series(&conn, 1, Some(TrialId(0))).unwrap()[0].points[1]
                .values
                .is_empty()
        );
    }
}
