//! Live events of an experiment, as the server streams them (Server-Sent Events) and stores
//! them: every change of an experiment or of one of its trials, in the order the driver made
//! it.
//!
//! Each stored event has a number ([`EventRecord::id`]) that grows across the whole server;
//! the SSE stream sends it as the event's `id`, so a client that reconnects with
//! `Last-Event-ID` gets exactly the events it missed. Times are milliseconds since 1970 (UTC)
//! on the server's clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::experiment::{ExperimentId, ExperimentState, Params, TrialId, TrialState};

/// One event and where it belongs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its number: increasing, never reused.
    pub id: u64,
    /// The experiment it belongs to.
    pub experiment: ExperimentId,
    /// Server time in milliseconds since 1970.
    pub at_ms: i64,
    /// What happened.
    pub event: ExperimentEvent,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExperimentEvent {
    /// The experiment changed state (created as `running`, then `finished` or `cancelled`).
    Experiment {
        /// The new state.
        state: ExperimentState,
    },
    /// A trial was created.
    TrialCreated {
        /// The trial.
        trial: TrialId,
        /// Its configuration.
        params: Params,
        /// Steps it is to run (ASHA's rung), `None` for all.
        resource: Option<u32>,
    },
    /// A trial was leased to a worker slot (a first run, a re-run after a lost worker, or a
    /// promotion that continues it).
    TrialLeased {
        /// The trial.
        trial: TrialId,
        /// Id of the worker's connection.
        worker: String,
        /// Name of the worker.
        worker_name: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// Steps it is to run now, `None` for all.
        resource: Option<u32>,
        /// Every slot of the worker was busy: the run waits there (the experiment's
        /// `prefetch`) until [`ExperimentEvent::TrialStarted`].
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        waiting: bool,
    },
    /// A run that waited on its worker started (a slot freed).
    TrialStarted {
        /// The trial.
        trial: TrialId,
        /// Attempt number of the run.
        attempt: u32,
    },
    /// A trial reported values at a step.
    Metric {
        /// The trial.
        trial: TrialId,
        /// The step, from 1.
        step: u32,
        /// Metric name to value.
        values: BTreeMap<String, f64>,
    },
    /// The driver ordered a trial to stop (early stopping or a cancel).
    StopOrdered {
        /// The trial.
        trial: TrialId,
        /// Why.
        reason: String,
    },
    /// A trial changed state (paused at a rung, back in the queue, or ended).
    TrialState {
        /// The trial.
        trial: TrialId,
        /// Its new state.
        state: TrialState,
        /// Why, for queued (a lost worker), stopped and failed trials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Its objective value at the end (finished and stopped trials).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
    },
}

impl ExperimentEvent {
    /// The SSE event name: the `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Experiment { .. } => "experiment",
            Self::TrialCreated { .. } => "trial_created",
            Self::TrialLeased { .. } => "trial_leased",
            Self::TrialStarted { .. } => "trial_started",
            Self::Metric { .. } => "metric",
            Self::StopOrdered { .. } => "stop_ordered",
            Self::TrialState { .. } => "trial_state",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_and_round_trip() {
        let e = EventRecord {
            id: 7,
            experiment: ExperimentId("e1".into()),
            at_ms: 1_700_000_000_000,
            event: ExperimentEvent::Metric {
                trial: TrialId(3),
                step: 2,
                values: [("accuracy".to_string(), 0.5)].into(),
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""type":"metric""#), "{text}");
        assert_eq!(e.event.kind(), "metric");
        assert_eq!(serde_json::from_str::<EventRecord>(&text).unwrap(), e);
        let s = ExperimentEvent::TrialState {
            trial: TrialId(1),
            state: TrialState::Queued,
            reason: Some("worker lost".into()),
            value: None,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""state":"queued""#), "{text}");
        assert!(!text.contains("value"), "{text}");
    }
}
