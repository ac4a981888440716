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
//! - `GET /api/experiments/{id}/ablation`: each component's delta against the baseline
//!   ([`AblationReport`]) of a leave-one-out study; 409 for a search.
//! - `GET /api/experiments/{id}/events`: Server-Sent Events ([`EventRecord`] as JSON, the
//!   SSE `event` is its type and the `id` its number). A client that reconnects with
//!   `Last-Event-ID` (or `?after=N`) first gets every event after that one from the store.
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
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;

use albedo_shared::api::{
    AblationReport, ComponentEffect, ExperimentSummary, TrialInfo, TrialSeries,
};
use albedo_shared::events::EventRecord;
use albedo_shared::experiment::{ExperimentSpec, TrialId};
use albedo_shared::protocol::TrialSpec;

use crate::app::AppState;
use crate::engine::db;
use crate::error::{BackendError, parse_json_body};

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

async fn trials(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<TrialInfo>>, BackendError> {
    let seq = seq_of(&id)?;
    Ok(Json(
        state
            .store
            .call_conn(move |c| {
                db::get_experiment(c, seq)?;
                db::list_trials(c, seq)
            })
            .await?,
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
) -> Result<Json<Vec<TrialSeries>>, BackendError> {
    let seq = seq_of(&id)?;
    let Query(q) = query.map_err(|e| BackendError::bad_request("query", e.body_text()))?;
    Ok(Json(
        state
            .store
            .call_conn(move |c| {
                db::get_experiment(c, seq)?;
                db::series(c, seq, q.trial.map(TrialId))
            })
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
}

/// Events read from the store per query while catching up.
const CATCH_UP_BATCH: u32 = 2000;

struct Feed {
    state: AppState,
    seq: i64,
    last: u64,
    catching_up: bool,
    backlog: VecDeque<EventRecord>,
    live: broadcast::Receiver<Arc<EventRecord>>,
}

fn sse_event(e: &EventRecord) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(e.id.to_string())
        .event(e.event.kind())
        .data(data)
}

async fn next_event(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    loop {
        if let Some(e) = feed.backlog.pop_front() {
            if e.id <= feed.last {
                continue;
            }
            feed.last = e.id;
            return Some((Ok(sse_event(&e)), feed));
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
                Ok(batch) => feed.backlog.extend(batch),
                Err(e) => {
                    tracing::warn!(error = %e, "event stream could not read the store");
                    return None;
                }
            }
            continue;
        }
        match feed.live.recv().await {
            Ok(e) => {
                if e.id > feed.last && db::parse_experiment_id(&e.experiment.0) == Some(feed.seq) {
                    feed.last = e.id;
                    return Some((Ok(sse_event(&e)), feed));
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => feed.catching_up = true,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
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
