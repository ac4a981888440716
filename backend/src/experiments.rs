//! The experiments API: create, list, read and cancel experiments, read their trials and
//! metric series, and follow their live events.
//!
//! - `POST /api/experiments` (user token): an [`ExperimentSpec`] as JSON; 201 with the
//!   experiment. A bad spec is 400 and names the field (`params[0].low`, `max_trials`,
//!   `optimizer.type`); nothing is created.
//! - `GET /api/experiments`, `GET /api/experiments/{id}`: [`ExperimentSummary`]s.
//! - `POST /api/experiments/{id}/cancel` (user token): stops its running trials; 409 when it
//!   has already ended.
//! - `GET /api/experiments/{id}/trials`: [`TrialInfo`]s in id order.
//! - `GET /api/experiments/{id}/metrics[?trial=N]`: [`TrialSeries`] of every trial (or one).
//!   Both answers carry the header [`LAST_EVENT_HEADER`]: the number of the last event of the
//!   experiment they include, read in the same transaction.
//! - `GET /api/experiments/{id}/snapshot`: [`ExperimentSnapshot`], what the live view starts
//!   from (the experiment, its trials, their curves of the objective metric, the events of its worker
//!   timeline) with the number of the last event it includes, all read in one transaction.
//!   Following the events after that number brings it up to date with no gap and no event
//!   twice: the driver commits every change together with its event, and event numbers grow
//!   in commit order (one writer).
//! - `GET /api/experiments/{id}/ablation`: each component's delta against the baseline
//!   ([`AblationReport`]) of a leave-one-out study; 409 for a search.
//! - `GET /api/experiments/{id}/events`: Server-Sent Events ([`EventRecord`] as JSON, the
//!   SSE `event` is its type and the `id` its number). A client that reconnects with
//!   `Last-Event-ID` (or `?after=N`) first gets every event after that one from the store.
//!   With `?batch=N` (at most [`MAX_EVENT_BATCH`]) the events that are at hand at once (a
//!   batch the driver wrote, or the store's backlog) go in one message `batch`, a JSON array
//!   of up to N of them whose `id` is the last one's: `Last-Event-ID` resumes the same way,
//!   and a client of a fast experiment takes hundreds of events per message, not one. Such a
//!   message gathers what comes within 25 ms of its first event.
//!
//! What it is not: no decisions. Creating and cancelling go to the engine, which answers
//! once the change is stored; everything else reads the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;

use albedo_shared::api::{
    AblationReport, ComponentEffect, ExperimentSnapshot, ExperimentSummary, LAST_EVENT_HEADER,
    TrialCurve, TrialInfo, TrialSeries,
};
use albedo_shared::events::{EventRecord, ExperimentEvent};
use albedo_shared::experiment::{ExperimentSpec, TrialId};
use albedo_shared::protocol::TrialSpec;

use crate::app::AppState;
use crate::engine::db;
use crate::error::{BackendError, parse_json_body};
use rusqlite::{Connection, OptionalExtension, params};

/// Largest spec body accepted.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// Routes of this module (under `/api`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments", get(list).post(create))
        .route("/experiments/{id}", get(one))
        .route("/experiments/{id}/cancel", post(cancel))
        .route("/experiments/{id}/trials", get(trials))
        .route("/experiments/{id}/metrics", get(metrics))
        .route("/experiments/{id}/events", get(events))
        .route("/experiments/{id}/snapshot", get(snapshot))
        .route("/experiments/{id}/ablation", get(ablation))
}

/// Parses a spec body: JSON errors name the path of the offending field.
pub fn parse_spec(body: &[u8]) -> Result<ExperimentSpec, BackendError> {
    let spec: ExperimentSpec = parse_json_body(body, MAX_SPEC_BYTES)?;
    albedo_tuning::validate_spec(&spec).map_err(BackendError::from)?;
    Ok(spec)
}

fn seq_of(id: &str) -> Result<i64, BackendError> {
    db::parse_experiment_id(id)
        .ok_or_else(|| BackendError::not_found(format!("experiment '{}'", clip(id))))
}

/// At most 64 characters of something a request sent, for messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, BackendError> {
    let mut spec = parse_spec(&body)?;
    if let TrialSpec::EoCnn { dataset_root, .. } = &mut spec.trial
        && dataset_root.is_empty()
    {
        // The datasets this server's jobs build (workers on this host or a shared disk).
        *dataset_root = crate::datasets::dataset_root(&state).display().to_string();
    }
    let id = state.engine.create(spec).await?;
    let seq = seq_of(&id.0)?;
    let summary = state
        .store
        .call_conn(move |c| db::get_experiment(c, seq))
        .await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<ExperimentSummary>>, BackendError> {
    Ok(Json(state.store.call_conn(db::list_experiments).await?))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentSummary>, BackendError> {
    let seq = seq_of(&id)?;
    Ok(Json(
        state
            .store
            .call_conn(move |c| db::get_experiment(c, seq))
            .await?,
    ))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentSummary>, BackendError> {
    let seq = seq_of(&id)?;
    state
        .store
        .call_conn(move |c| db::get_experiment(c, seq))
        .await?;
    state.engine.cancel(seq).await?;
    Ok(Json(
        state
            .store
            .call_conn(move |c| db::get_experiment(c, seq))
            .await?,
    ))
}

/// Runs `read` in one read transaction of the store (WAL: it sees one committed state, however
/// the driver writes meanwhile); returns the number of the last event of experiment `seq`
/// in that state with what `read` found.
fn read_consistent<T>(
    conn: &Connection,
    seq: i64,
    read: impl FnOnce(&Connection) -> Result<T, BackendError>,
) -> Result<(u64, T), BackendError> {
    let tx = conn.unchecked_transaction()?;
    let last = last_event(&tx, seq)?;
    let out = read(&tx)?;
    tx.finish()?;
    Ok((last, out))
}

/// Number of the last stored event of experiment `seq` (0 when it has none).
fn last_event(conn: &Connection, seq: i64) -> Result<u64, BackendError> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT max(id) FROM events WHERE experiment = ?1",
            params![seq],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(id.map_or(0, |n| n as u64))
}

/// The events of experiment `seq` that are not metrics, in order (a few per trial: the
/// worker timeline's; metrics are most of the log and are read from their own table).
fn timeline_events(conn: &Connection, seq: i64) -> Result<Vec<EventRecord>, BackendError> {
    // An event's JSON starts with its tag, so the text test skips the metrics unparsed; the
    // parsed type is checked again.
    let mut stmt = conn.prepare(
        "SELECT id, at_ms, json FROM events WHERE experiment = ?1
           AND json NOT LIKE '{\"type\":\"metric\"%' ORDER BY id",
    )?;
    let mut rows = stmt.query(params![seq])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let event: ExperimentEvent = serde_json::from_str(&r.get::<_, String>(2)?)?;
        if matches!(event, ExperimentEvent::Metric { .. }) {
            continue;
        }
        out.push(EventRecord {
            id: r.get::<_, i64>(0)? as u64,
            experiment: db::experiment_id(seq),
            at_ms: r.get(1)?,
            event,
        });
    }
    Ok(out)
}

/// The curves of metric `metric` of experiment `seq`'s trials, in trial order (read with
/// SQL's JSON functions: no point is parsed here).
fn curves(conn: &Connection, seq: i64, metric: &str) -> Result<Vec<TrialCurve>, BackendError> {
    let mut stmt = conn.prepare(
        "SELECT m.trial, m.step, j.value FROM metrics m, json_each(m.values_json) j
         WHERE m.experiment = ?1 AND j.key = ?2 AND j.type IN ('real', 'integer')
         ORDER BY m.trial, m.step",
    )?;
    let mut rows = stmt.query(params![seq, metric])?;
    let mut out: Vec<TrialCurve> = Vec::new();
    while let Some(r) = rows.next()? {
        let trial = TrialId(r.get::<_, i64>(0)? as u64);
        let (step, value): (u32, f64) = (r.get(1)?, r.get(2)?);
        match out.last_mut() {
            Some(c) if c.trial == trial => {
                c.steps.push(step);
                c.values.push(value);
            }
            _ => out.push(TrialCurve {
                trial,
                steps: vec![step],
                values: vec![value],
            }),
        }
    }
    Ok(out)
}

/// The snapshot of experiment `seq` (see the module docs), read in one transaction.
pub fn read_snapshot(conn: &Connection, seq: i64) -> Result<ExperimentSnapshot, BackendError> {
    let (last_event, (experiment, trials, curves, timeline)) = read_consistent(conn, seq, |c| {
        let experiment = db::get_experiment(c, seq)?;
        let trials = db::list_trials(c, seq)?;
        let curves = curves(c, seq, &experiment.spec.metric)?;
        Ok((experiment, trials, curves, timeline_events(c, seq)?))
    })?;
    Ok(ExperimentSnapshot {
        last_event,
        experiment,
        trials: shown(trials),
        curves,
        timeline,
    })
}

/// Trials as answers show them: an artifact is named by its file name only, since the path
/// is one on the host of the worker that made it (often the server's own; registering the
/// model is how a user gets at it).
fn shown(mut trials: Vec<TrialInfo>) -> Vec<TrialInfo> {
    for t in &mut trials {
        for path in t.artifacts.values_mut() {
            if let Some(name) = std::path::Path::new(path.as_str()).file_name() {
                *path = name.to_string_lossy().into_owned();
            }
        }
    }
    trials
}

/// The [`LAST_EVENT_HEADER`] of an answer.
fn last_event_header(last: u64) -> [(HeaderName, HeaderValue); 1] {
    [(
        HeaderName::from_static(LAST_EVENT_HEADER),
        HeaderValue::from(last),
    )]
}

async fn trials(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, BackendError> {
    let seq = seq_of(&id)?;
    let (last, trials) = state
        .store
        .call_conn(move |c| {
            read_consistent(c, seq, |c| {
                db::get_experiment(c, seq)?;
                db::list_trials(c, seq)
            })
        })
        .await?;
    Ok((
        last_event_header(last),
        Json::<Vec<TrialInfo>>(shown(trials)),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    trial: Option<u64>,
}

async fn metrics(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, BackendError> {
    let seq = seq_of(&id)?;
    let Query(q) = query.map_err(|e| BackendError::bad_request("query", e.body_text()))?;
    let (last, series) = state
        .store
        .call_conn(move |c| {
            read_consistent(c, seq, |c| {
                db::get_experiment(c, seq)?;
                db::series(c, seq, q.trial.map(TrialId))
            })
        })
        .await?;
    Ok((last_event_header(last), Json::<Vec<TrialSeries>>(series)))
}

async fn snapshot(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentSnapshot>, BackendError> {
    let seq = seq_of(&id)?;
    Ok(Json(
        state
            .store
            .call_conn(move |c| read_snapshot(c, seq))
            .await?,
    ))
}

async fn ablation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AblationReport>, BackendError> {
    let seq = seq_of(&id)?;
    let (summary, trials) = state
        .store
        .call_conn(move |c| Ok((db::get_experiment(c, seq)?, db::list_trials(c, seq)?)))
        .await?;
    let Some(spec) = &summary.spec.ablation else {
        return Err(BackendError::Unavailable(format!(
            "experiment '{}' is a search, not an ablation study",
            summary.id
        )));
    };
    let plan = albedo_tuning::ablation::LeaveOneOut::new(spec).map_err(BackendError::from)?;
    let history: Vec<albedo_tuning::Trial> = trials
        .into_iter()
        .map(|t| {
            let mut trial = albedo_tuning::Trial::new(t.id, t.params, t.resource);
            trial.state = t.state;
            trial.values = t.value.into_iter().collect();
            trial
        })
        .collect();
    let result = plan.deltas(&history, summary.spec.direction);
    Ok(Json(AblationReport {
        baseline: result.baseline,
        components: result
            .components
            .into_iter()
            .map(|c| ComponentEffect {
                component: c.component,
                metric: c.metric,
                delta: c.delta,
                importance: c.importance,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
    batch: Option<usize>,
}

/// Events read from the store per query while catching up.
const CATCH_UP_BATCH: u32 = 2000;

/// Most events in one message of a batched stream (`?batch=N`).
pub const MAX_EVENT_BATCH: usize = 1000;

/// How long a batched stream gathers events after the first before it sends them: a fast
/// experiment's events then come some dozens of messages a second, not one per driver
/// transaction (over a thousand a second, each a task for the browser).
const BATCH_LINGER: Duration = Duration::from_millis(25);

struct Feed {
    state: AppState,
    seq: i64,
    last: u64,
    catching_up: bool,
    backlog: VecDeque<Arc<EventRecord>>,
    live: broadcast::Receiver<Arc<EventRecord>>,
    /// Most events per SSE message (0: one event per message, named by its type).
    batch: usize,
}

fn sse_event(e: &EventRecord) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(e.id.to_string())
        .event(e.event.kind())
        .data(data)
}

/// Several events in one SSE message `batch`: a JSON array of them, its `id` the last one's
/// (so that `Last-Event-ID` resumes after the whole message).
fn sse_batch(records: &[Arc<EventRecord>]) -> Event {
    let list: Vec<&EventRecord> = records.iter().map(|r| r.as_ref()).collect();
    let data = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
    let last = records.last().map_or(0, |r| r.id);
    Event::default()
        .id(last.to_string())
        .event("batch")
        .data(data)
}

/// Whether a broadcast event is the feed's next one.
fn is_next(feed: &Feed, e: &EventRecord) -> bool {
    e.id > feed.last && db::parse_experiment_id(&e.experiment.0) == Some(feed.seq)
}

/// The feed's next event, waiting for it; `None` when the stream ends.
async fn next_record(feed: &mut Feed) -> Option<Arc<EventRecord>> {
    loop {
        if let Some(e) = ready_record(feed) {
            return Some(e);
        }
        if feed.catching_up {
            let (seq, after) = (feed.seq, feed.last);
            let batch = feed
                .state
                .store
                .call_conn(move |c| db::events_after(c, seq, after, CATCH_UP_BATCH))
                .await;
            match batch {
                Ok(batch) if batch.is_empty() => feed.catching_up = false,
                Ok(batch) => feed.backlog.extend(batch.into_iter().map(Arc::new)),
                Err(e) => {
                    tracing::warn!(error = %e, "event stream could not read the store");
                    return None;
                }
            }
            continue;
        }
        match feed.live.recv().await {
            Ok(e) => {
                if is_next(feed, &e) {
                    feed.last = e.id;
                    return Some(e);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => feed.catching_up = true,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// The feed's next event if it is at hand (read from the store, or broadcast already),
/// without waiting.
fn ready_record(feed: &mut Feed) -> Option<Arc<EventRecord>> {
    loop {
        if let Some(e) = feed.backlog.pop_front() {
            if e.id <= feed.last {
                continue;
            }
            feed.last = e.id;
            return Some(e);
        }
        if feed.catching_up {
            // The store holds the next ones: `next_record` reads them.
            return None;
        }
        match feed.live.try_recv() {
            Ok(e) => {
                if is_next(feed, &e) {
                    feed.last = e.id;
                    return Some(e);
                }
            }
            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                feed.catching_up = true;
                return None;
            }
            Err(_) => return None,
        }
    }
}

async fn next_event(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    let first = next_record(&mut feed).await?;
    if feed.batch == 0 {
        return Some((Ok(sse_event(&first)), feed));
    }
    let mut records = vec![first];
    let until = tokio::time::Instant::now() + BATCH_LINGER;
    while records.len() < feed.batch {
        if let Some(e) = ready_record(&mut feed) {
            records.push(e);
            continue;
        }
        // Nothing more at hand: wait a little for the next ones (both waits are cancel-safe:
        // a broadcast receive, or a store read whose answer is read again).
        match tokio::time::timeout_at(until, next_record(&mut feed)).await {
            Ok(Some(e)) => records.push(e),
            Ok(None) | Err(_) => break,
        }
    }
    Some((Ok(sse_batch(&records)), feed))
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, BackendError> {
    let seq = seq_of(&id)?;
    let Query(q) = query.map_err(|e| BackendError::bad_request("query", e.body_text()))?;
    let last = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| BackendError::bad_request("Last-Event-ID", "must be an event number"))?,
        None => q.after.unwrap_or(0),
    };
    state
        .store
        .call_conn(move |c| db::get_experiment(c, seq))
        .await?;
    // Subscribe before reading the store, so that nothing falls between the two.
    let live = state.engine.subscribe();
    let feed = Feed {
        state,
        seq,
        last,
        catching_up: true,
        backlog: VecDeque::new(),
        live,
        batch: q.batch.unwrap_or(0).min(MAX_EVENT_BATCH),
    };
    let stream = futures_util::stream::unfold(feed, next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> String {
        format!(
            r#"{{"name": "t", "metric": "accuracy", "direction": "maximize", "max_trials": 4,
                "trial": {{"kind": "synthetic", "steps": 3}},
                "params": [{{"name": "lr", "type": "float", "low": 0.001, "high": 0.1, "log": true}}],
                "optimizer": {{"type": "random"}}{extra}}}"#
        )
    }

    fn field_of(body: &str) -> String {
        match parse_spec(body.as_bytes()) {
            Err(BackendError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_names_its_last_event_and_holds_the_timeline_without_metrics() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(db::SCHEMA).unwrap();
        let spec = parse_spec(spec("").as_bytes()).unwrap();
        let seq = db::insert_experiment(&conn, &spec).unwrap();
        let other = db::insert_experiment(&conn, &spec).unwrap();
        let values = |acc: f64| -> std::collections::BTreeMap<String, f64> {
            [("accuracy".to_string(), acc), ("loss".to_string(), 1.0)].into()
        };
        let t = TrialId(0);
        let mut ids = Vec::new();
        for (at, e) in [
            (
                1,
                ExperimentEvent::TrialCreated {
                    trial: t,
                    params: Default::default(),
                    resource: None,
                },
            ),
            (
                2,
                ExperimentEvent::TrialLeased {
                    trial: t,
                    worker: "c1".into(),
                    worker_name: "w1".into(),
                    attempt: 1,
                    resource: None,
                    waiting: false,
                },
            ),
            (
                3,
                ExperimentEvent::Metric {
                    trial: t,
                    step: 1,
                    values: values(0.5),
                },
            ),
        ] {
            ids.push(db::insert_event(&conn, seq, at, e).unwrap().id);
        }
        db::put_metric(&conn, seq, t, 1, 1, &values(0.5)).unwrap();
        // An event of another experiment, later: not this one's last.
        db::insert_event(
            &conn,
            other,
            4,
            ExperimentEvent::Experiment {
                state: albedo_shared::experiment::ExperimentState::Cancelled,
            },
        )
        .unwrap();
        let snap = read_snapshot(&conn, seq).unwrap();
        assert_eq!(snap.last_event, ids[2]);
        assert_eq!(
            snap.timeline.iter().map(|e| e.id).collect::<Vec<_>>(),
            ids[..2].to_vec(),
            "every event but the metrics"
        );
        assert_eq!(
            snap.curves,
            [TrialCurve {
                trial: t,
                steps: vec![1],
                values: vec![0.5]
            }],
            "the objective metric's curve"
        );
        assert_eq!(snap.experiment.id.0, format!("e{seq}"));
        assert_eq!(last_event(&conn, 999).unwrap(), 0);
        // The headers' reads: the same number, whatever is read with it.
        let (last, n) =
            read_consistent(&conn, seq, |c| Ok(db::list_trials(c, seq)?.len())).unwrap();
        assert_eq!((last, n), (ids[2], 0));
    }

    #[test]
    fn good_specs_parse_and_bad_ones_name_the_field() {
        assert!(parse_spec(spec("").as_bytes()).is_ok());
        assert_eq!(field_of(&spec(r#", "max_trials": -3"#)), "body");
        assert_eq!(
            field_of(&spec("").replace(r#""max_trials": 4"#, r#""max_trials": -3"#)),
            "max_trials"
        );
        assert_eq!(field_of(&spec(r#", "colour": 1"#)), "colour");
        assert_eq!(
            field_of(&spec("").replace(r#""type": "random""#, r#""type": "hyperband""#)),
            "optimizer.type"
        );
        assert_eq!(
            field_of(&spec("").replace(r#""low": 0.001"#, r#""low": 0"#)),
            "params.lr.low"
        );
        assert_eq!(field_of(r#"{"name": 3}"#), "name");
        assert_eq!(field_of("{"), "body");
        assert_eq!(field_of(&format!("{} x", spec(""))), "body");
    }
}
