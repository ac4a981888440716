//! What the live view of an experiment knows, as plain data: every trial's curve, state and
//! parameters, the leases of the worker timeline, and the experiment's state.
//!
//! What it is: [`LiveData`], made from the API's snapshot ([`LiveData::from_snapshot`]: the
//! trials, their series and the events of the timeline, read in one transaction with the
//! number of the last event included) and then kept up to date by the events after it
//! ([`LiveData::apply`]); the leaderboard order; the lanes of the worker timeline. Points are
//! kept in plain `Vec`s, outside any reactive signal: the view redraws from here at most once
//! per animation frame.
//!
//! Worker slots: the engine counts a worker's free slots but does not number them, and its
//! events do not say which slot a lease took. The lanes are derived here instead: each worker
//! gets lanes as its leases need them, and a lease takes the lowest-numbered lane of its
//! worker that is free when it starts (earliest free lane). A worker whose N slots are all
//! used therefore shows N lanes, "slot k" being lane k of that packing, not a number the
//! worker chose.
//!
//! Attempts: every lease is a bar of its own (a trial re-run after its worker was lost shows
//! attempt 1 on the lost worker, ended `queued`, and attempt 2 where it ran again; an ASHA
//! promotion is a new bar too).
//!
//! What it is not: no drawing ([`crate::charts`]), no I/O ([`crate::liveview`]).
//!
//! Events at or before the last one applied are skipped, and the rest are absorbed
//! idempotently (a metric at a step a trial already has replaces the value; a trial that has
//! ended, finished, stopped or failed, is immutable and keeps its state), so that a stream
//! that reconnects and repeats itself changes nothing.

use std::collections::HashMap;

use albedo_shared::api::{ExperimentSnapshot, TrialCounts, TrialCurve, TrialInfo};
use albedo_shared::events::{EventRecord, ExperimentEvent};
use albedo_shared::experiment::{
    Direction, ExperimentSpec, ExperimentState, Params, TrialId, TrialState,
};

/// One trial as the live view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialData {
    /// Its id.
    pub id: TrialId,
    /// Its configuration.
    pub params: Params,
    /// Where it stands.
    pub state: TrialState,
    /// Objective value: the final one once ended, else the last reported.
    pub value: Option<f64>,
    /// Why it was stopped, requeued or failed.
    pub reason: Option<String>,
    /// Name of the worker running it now or last.
    pub worker: Option<String>,
    /// Steps of the curve, increasing.
    pub steps: Vec<u32>,
    /// Metric values of the curve, one per step.
    pub values: Vec<f64>,
}

impl TrialData {
    fn new(id: TrialId, params: Params) -> Self {
        TrialData {
            id,
            params,
            state: TrialState::Queued,
            value: None,
            reason: None,
            worker: None,
            steps: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The last point of the curve.
    pub fn last_point(&self) -> Option<(u32, f64)> {
        Some((*self.steps.last()?, *self.values.last()?))
    }
}

/// One lease: one attempt of a trial on a worker lane, from its start to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The trial.
    pub trial: TrialId,
    /// Its attempt number, from 1 (a re-run after a lost worker counts one more).
    pub attempt: u32,
    /// Steps it was to run (an ASHA rung), `None` for all.
    pub resource: Option<u32>,
    /// Index into [`LiveData::lanes`].
    pub lane: usize,
    /// Start, server milliseconds.
    pub start_ms: i64,
    /// End, server milliseconds (`None` while it runs).
    pub end_ms: Option<i64>,
    /// The state the trial went to at the end (`None` while it runs).
    pub end_state: Option<TrialState>,
}

/// One row of the worker timeline: a slot of a worker (see the module docs for how slots are
/// numbered).
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// Worker connection id.
    pub worker: String,
    /// Worker name.
    pub worker_name: String,
    /// Slot number within the worker, from 0: the lane's rank in the earliest-free-lane
    /// packing of the worker's leases.
    pub slot: usize,
    /// The lease on it now.
    pub busy: Option<usize>,
}

/// What an applied event changed, for the view to react to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Something drawn changed.
    pub changed: bool,
    /// A trial ended (the ablation deltas may have changed).
    pub trial_ended: bool,
    /// The experiment ended.
    pub experiment_ended: bool,
}

/// A run leased to a worker, before its bar starts.
#[derive(Debug, Clone, PartialEq)]
struct Waiting {
    worker: String,
    worker_name: String,
    attempt: u32,
    resource: Option<u32>,
}

/// Everything the live view draws.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveData {
    /// Metric the curves show.
    pub metric: String,
    /// Which way is better.
    pub direction: Direction,
    /// Steps a full trial runs, where the spec says (for the x axis).
    pub planned_steps: Option<u32>,
    /// The experiment's state.
    pub state: ExperimentState,
    /// Trials in creation order.
    pub trials: Vec<TrialData>,
    index: HashMap<TrialId, usize>,
    /// Leases in start order.
    pub leases: Vec<Lease>,
    open: HashMap<TrialId, usize>,
    /// Runs leased to a worker whose slots were all busy (`prefetch`): no bar until they
    /// start.
    waiting: HashMap<TrialId, Waiting>,
    /// Timeline rows.
    pub lanes: Vec<Lane>,
    /// Number of the last event applied.
    pub last_event: u64,
    /// Server time of the first and last event seen.
    pub span_ms: Option<(i64, i64)>,
    /// Points in all curves.
    pub points: usize,
    /// Largest step of any curve.
    pub max_step: u32,
    /// Smallest and largest value of any curve.
    pub value_range: Option<(f64, f64)>,
}

impl LiveData {
    /// Empty data for an experiment of `spec`.
    pub fn new(spec: &ExperimentSpec, state: ExperimentState) -> Self {
        let planned_steps = match &spec.trial {
            albedo_shared::protocol::TrialSpec::Synthetic { steps, .. } => Some(*steps),
            _ => None,
        };
        LiveData {
            metric: spec.metric.clone(),
            direction: spec.direction,
            planned_steps,
            state,
            trials: Vec::new(),
            index: HashMap::new(),
            leases: Vec::new(),
            open: HashMap::new(),
            waiting: HashMap::new(),
            lanes: Vec::new(),
            last_event: 0,
            span_ms: None,
            points: 0,
            max_step: 0,
            value_range: None,
        }
    }

    /// The live data of a snapshot: the timeline's events applied in order (trials, leases
    /// and states), then the trials and their series as the snapshot has them. Events after
    /// [`ExperimentSnapshot::last_event`] bring it up to date.
    pub fn from_snapshot(snapshot: ExperimentSnapshot) -> Self {
        let ExperimentSnapshot {
            last_event,
            experiment,
            trials,
            curves,
            timeline,
        } = snapshot;
        let mut d = LiveData::new(&experiment.spec, experiment.state);
        for e in &timeline {
            d.apply(e);
        }
        d.load_snapshot(trials, curves);
        d.state = experiment.state;
        d.last_event = d.last_event.max(last_event);
        d
    }

    /// Adds the API's trials and their curves of the objective metric.
    pub fn load_snapshot(&mut self, trials: Vec<TrialInfo>, curves: Vec<TrialCurve>) {
        for t in trials {
            let i = self.trial_index(t.id, t.params);
            let d = &mut self.trials[i];
            d.state = t.state;
            d.value = t.value;
            d.reason = t.reason;
            d.worker = t.worker;
        }
        for c in curves {
            let i = self.trial_index(c.trial, Params::new());
            for (step, v) in c.steps.into_iter().zip(c.values) {
                self.add_point(i, step, v);
            }
            // A running trial's value is its last reported one.
            let t = &mut self.trials[i];
            if t.value.is_none() && !t.state.is_final() {
                t.value = t.values.last().copied();
            }
        }
    }

    /// The share of slot time that leases took, from the first lease's start to the last
    /// event (open leases up to then): near 1 when every slot is kept busy (asynchronous
    /// mode), lower when slots wait for the slowest trial of a round (BSP). `None` before
    /// any lease.
    pub fn slot_use(&self) -> Option<f64> {
        let (_, end) = self.span_ms?;
        let start = self.leases.iter().map(|l| l.start_ms).min()?;
        let span = (end - start) as f64;
        if span <= 0.0 || self.lanes.is_empty() {
            return None;
        }
        let busy: f64 = self
            .leases
            .iter()
            .map(|l| (l.end_ms.unwrap_or(end).min(end) - l.start_ms).max(0) as f64)
            .sum();
        Some((busy / (span * self.lanes.len() as f64)).min(1.0))
    }

    /// The trial of `id`, if known.
    pub fn trial(&self, id: TrialId) -> Option<&TrialData> {
        self.index.get(&id).map(|i| &self.trials[*i])
    }

    fn trial_index(&mut self, id: TrialId, params: Params) -> usize {
        if let Some(i) = self.index.get(&id) {
            if self.trials[*i].params.is_empty() && !params.is_empty() {
                self.trials[*i].params = params;
            }
            return *i;
        }
        self.trials.push(TrialData::new(id, params));
        self.index.insert(id, self.trials.len() - 1);
        self.trials.len() - 1
    }

    fn add_point(&mut self, i: usize, step: u32, value: f64) {
        if !value.is_finite() {
            return;
        }
        let t = &mut self.trials[i];
        match t.steps.last() {
            Some(last) if step <= *last => {
                // Already known (a replay, or a re-run of the trial): the newest value wins.
                if let Ok(k) = t.steps.binary_search(&step) {
                    t.values[k] = value;
                }
            }
            _ => {
                t.steps.push(step);
                t.values.push(value);
                self.points += 1;
            }
        }
        self.max_step = self.max_step.max(step);
        self.value_range = Some(match self.value_range {
            None => (value, value),
            Some((lo, hi)) => (lo.min(value), hi.max(value)),
        });
    }

    fn set_state(&mut self, i: usize, state: TrialState) -> bool {
        let t = &mut self.trials[i];
        if t.state.is_final() && !state.is_final() {
            return false;
        }
        let ended = state.is_final() && !t.state.is_final();
        t.state = state;
        ended
    }

    /// A bar for a run of `trial` from `at_ms`, on the lowest free row of its worker.
    fn start_lease(&mut self, trial: TrialId, at_ms: i64, w: Waiting) {
        let lane = self.lane_for(&w.worker, &w.worker_name);
        self.leases.push(Lease {
            trial,
            attempt: w.attempt,
            resource: w.resource,
            lane,
            start_ms: at_ms,
            end_ms: None,
            end_state: None,
        });
        let k = self.leases.len() - 1;
        self.lanes[lane].busy = Some(k);
        self.open.insert(trial, k);
    }

    fn end_lease(&mut self, trial: TrialId, at_ms: i64, state: TrialState) {
        self.waiting.remove(&trial);
        if let Some(k) = self.open.remove(&trial) {
            let lease = &mut self.leases[k];
            lease.end_ms = Some(at_ms.max(lease.start_ms));
            lease.end_state = Some(state);
            let lane = lease.lane;
            if self.lanes[lane].busy == Some(k) {
                self.lanes[lane].busy = None;
            }
        }
    }

    fn lane_for(&mut self, worker: &str, worker_name: &str) -> usize {
        if let Some(i) = self
            .lanes
            .iter()
            .position(|l| l.worker == worker && l.busy.is_none())
        {
            return i;
        }
        let slot = self.lanes.iter().filter(|l| l.worker == worker).count();
        let lane = Lane {
            worker: worker.to_string(),
            worker_name: worker_name.to_string(),
            slot,
            busy: None,
        };
        // Keep a worker's lanes together, in order of the workers' first lease.
        let at = self
            .lanes
            .iter()
            .rposition(|l| l.worker == worker)
            .map_or(self.lanes.len(), |i| i + 1);
        self.lanes.insert(at, lane);
        for l in &mut self.leases {
            if l.lane >= at {
                l.lane += 1;
            }
        }
        at
    }

    /// Applies one event of the stream (events at or before [`LiveData::last_event`] are
    /// skipped).
    pub fn apply(&mut self, rec: &EventRecord) -> Applied {
        let mut out = Applied::default();
        if rec.id <= self.last_event {
            return out;
        }
        self.last_event = rec.id;
        self.span_ms = Some(match self.span_ms {
            None => (rec.at_ms, rec.at_ms),
            Some((a, b)) => (a.min(rec.at_ms), b.max(rec.at_ms)),
        });
        out.changed = true;
        match &rec.event {
            ExperimentEvent::Experiment { state } => {
                self.state = *state;
                if *state != ExperimentState::Running {
                    let open: Vec<TrialId> = self.open.keys().copied().collect();
                    for t in open {
                        let s = self.trial(t).map_or(TrialState::Stopped, |d| d.state);
                        self.end_lease(t, rec.at_ms, s);
                    }
                    out.experiment_ended = true;
                }
            }
            ExperimentEvent::TrialCreated { trial, params, .. } => {
                self.trial_index(*trial, params.clone());
            }
            ExperimentEvent::TrialLeased {
                trial,
                worker,
                worker_name,
                attempt,
                resource,
                waiting,
            } => {
                let i = self.trial_index(*trial, Params::new());
                self.set_state(i, TrialState::Running);
                self.trials[i].worker = Some(worker_name.clone());
                self.end_lease(*trial, rec.at_ms, TrialState::Queued);
                let run = Waiting {
                    worker: worker.clone(),
                    worker_name: worker_name.clone(),
                    attempt: *attempt,
                    resource: *resource,
                };
                if *waiting {
                    self.waiting.insert(*trial, run);
                } else {
                    self.start_lease(*trial, rec.at_ms, run);
                }
            }
            ExperimentEvent::TrialStarted { trial, attempt } => {
                if self
                    .waiting
                    .get(trial)
                    .is_some_and(|w| w.attempt == *attempt)
                    && let Some(run) = self.waiting.remove(trial)
                {
                    self.start_lease(*trial, rec.at_ms, run);
                }
            }
            ExperimentEvent::Metric {
                trial,
                step,
                values,
            } => {
                let i = self.trial_index(*trial, Params::new());
                if let Some(v) = values.get(&self.metric) {
                    self.add_point(i, *step, *v);
                    if !self.trials[i].state.is_final() {
                        self.trials[i].value = Some(*v);
                    }
                }
            }
            ExperimentEvent::StopOrdered { trial, reason } => {
                let i = self.trial_index(*trial, Params::new());
                if self.trials[i].reason.is_none() {
                    self.trials[i].reason = Some(reason.clone());
                }
            }
            ExperimentEvent::TrialState {
                trial,
                state,
                reason,
                value,
            } => {
                let i = self.trial_index(*trial, Params::new());
                let was_final = self.trials[i].state.is_final();
                out.trial_ended = self.set_state(i, *state);
                if !was_final {
                    if let Some(v) = value {
                        self.trials[i].value = Some(*v);
                    }
                    if reason.is_some() {
                        self.trials[i].reason = reason.clone();
                    }
                }
                if *state != TrialState::Running {
                    self.end_lease(*trial, rec.at_ms, *state);
                }
            }
        }
        out
    }

    /// Trials by state.
    pub fn counts(&self) -> TrialCounts {
        let mut c = TrialCounts::default();
        for t in &self.trials {
            match t.state {
                TrialState::Queued => c.queued += 1,
                TrialState::Running => c.running += 1,
                TrialState::Paused => c.paused += 1,
                TrialState::Finished => c.finished += 1,
                TrialState::Stopped => c.stopped += 1,
                TrialState::Failed => c.failed += 1,
            }
        }
        c
    }

    /// Up to `n` trials with a value, best first (ties by id).
    pub fn leaderboard(&self, n: usize) -> Vec<&TrialData> {
        let mut ranked: Vec<&TrialData> =
            self.trials.iter().filter(|t| t.value.is_some()).collect();
        let dir = self.direction;
        ranked.sort_by(|a, b| {
            let (va, vb) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
            let ord = match dir {
                Direction::Maximize => vb.total_cmp(&va),
                Direction::Minimize => va.total_cmp(&vb),
            };
            ord.then(a.id.cmp(&b.id))
        });
        ranked.truncate(n);
        ranked
    }

    /// The best trial with a value.
    pub fn best(&self) -> Option<&TrialData> {
        self.leaderboard(1).into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::experiment::ExperimentId;
    use albedo_shared::protocol::TrialSpec;

    fn spec() -> ExperimentSpec {
        serde_json::from_value(serde_json::json!({
            "name": "t", "metric": "accuracy", "direction": "maximize", "max_trials": 4,
            "params": [{"name": "lr", "type": "float", "low": 0.001, "high": 0.1}],
            "optimizer": {"type": "random"},
            "trial": {"kind": "synthetic", "steps": 5}
        }))
        .unwrap()
    }

    struct Stream(u64);
    impl Stream {
        fn ev(&mut self, at_ms: i64, event: ExperimentEvent) -> EventRecord {
            self.0 += 1;
            EventRecord {
                id: self.0,
                experiment: ExperimentId("e1".into()),
                at_ms,
                event,
            }
        }
    }

    fn metric(trial: u64, step: u32, v: f64) -> ExperimentEvent {
        ExperimentEvent::Metric {
            trial: TrialId(trial),
            step,
            values: [("accuracy".to_string(), v), ("loss".to_string(), 1.0)].into(),
        }
    }
    fn leased(trial: u64, worker: &str) -> ExperimentEvent {
        ExperimentEvent::TrialLeased {
            trial: TrialId(trial),
            worker: worker.into(),
            worker_name: format!("{worker}-name"),
            attempt: 1,
            resource: None,
            waiting: false,
        }
    }
    fn state(trial: u64, state: TrialState, value: Option<f64>) -> ExperimentEvent {
        ExperimentEvent::TrialState {
            trial: TrialId(trial),
            state,
            reason: None,
            value,
        }
    }
    fn created(trial: u64, lr: f64) -> ExperimentEvent {
        ExperimentEvent::TrialCreated {
            trial: TrialId(trial),
            params: [("lr".to_string(), serde_json::json!(lr))].into(),
            resource: None,
        }
    }

    #[test]
    fn events_build_curves_lanes_and_a_leaderboard() {
        let mut d = LiveData::new(&spec(), ExperimentState::Running);
        assert_eq!(d.planned_steps, Some(5));
        let mut s = Stream(0);
        let events = vec![
            s.ev(0, created(0, 0.01)),
            s.ev(0, created(1, 0.02)),
            s.ev(0, created(2, 0.03)),
            s.ev(10, leased(0, "w1")),
            s.ev(11, leased(1, "w1")),
            s.ev(20, metric(0, 1, 0.5)),
            s.ev(21, metric(1, 1, 0.7)),
            s.ev(30, metric(0, 2, 0.6)),
            s.ev(40, state(0, TrialState::Finished, Some(0.6))),
            s.ev(41, leased(2, "w1")),
            s.ev(50, metric(2, 1, 0.2)),
            s.ev(
                51,
                ExperimentEvent::StopOrdered {
                    trial: TrialId(2),
                    reason: "median rule".into(),
                },
            ),
            s.ev(52, state(2, TrialState::Stopped, Some(0.2))),
        ];
        let mut ended = 0;
        for e in &events {
            let a = d.apply(e);
            assert!(a.changed);
            ended += usize::from(a.trial_ended);
        }
        assert_eq!(ended, 2);
        assert_eq!(d.points, 4);
        assert_eq!(d.max_step, 2);
        assert_eq!(d.value_range, Some((0.2, 0.7)));
        // Two slots of one worker: trial 2 took the lane trial 0 left.
        assert_eq!(d.lanes.len(), 2);
        assert_eq!(
            d.leases.iter().map(|l| l.lane).collect::<Vec<_>>(),
            [0, 1, 0]
        );
        assert_eq!(d.leases[0].end_ms, Some(40));
        assert_eq!(d.leases[2].end_state, Some(TrialState::Stopped));
        assert_eq!(d.leases[1].end_ms, None);
        let c = d.counts();
        assert_eq!((c.running, c.finished, c.stopped), (1, 1, 1));
        let board: Vec<u64> = d.leaderboard(10).iter().map(|t| t.id.0).collect();
        assert_eq!(board, [1, 0, 2]);
        assert_eq!(
            d.trial(TrialId(2)).unwrap().reason.as_deref(),
            Some("median rule")
        );
        // Replayed events change nothing; the end closes the open lease.
        for e in &events {
            assert!(!d.apply(e).changed);
        }
        let end = s.ev(
            60,
            ExperimentEvent::Experiment {
                state: ExperimentState::Cancelled,
            },
        );
        assert!(d.apply(&end).experiment_ended);
        assert_eq!(d.leases[1].end_ms, Some(60));
        assert_eq!(d.span_ms, Some((0, 60)));
    }

    #[test]
    fn a_snapshot_absorbs_the_replayed_stream() {
        let mut d = LiveData::new(&spec(), ExperimentState::Running);
        // From JSON, as the API sends it (optional fields left out).
        let info = |id: u64, state: TrialState, value: Option<f64>| -> TrialInfo {
            let mut v = serde_json::json!({
                "id": id, "params": {"lr": 0.01}, "state": state, "attempt": 1,
                "worker": "w1-name", "steps": 2, "created_ms": 0, "started_ms": 10,
            });
            if let Some(x) = value {
                v["value"] = serde_json::json!(x);
            }
            serde_json::from_value(v).unwrap()
        };
        let series = |id: u64, vals: &[f64]| TrialCurve {
            trial: TrialId(id),
            steps: (1..=vals.len() as u32).collect(),
            values: vals.to_vec(),
        };
        d.load_snapshot(
            vec![
                info(0, TrialState::Finished, Some(0.6)),
                info(1, TrialState::Running, Some(0.7)),
            ],
            vec![series(0, &[0.5, 0.6]), series(1, &[0.7])],
        );
        assert_eq!(d.points, 3);
        let mut s = Stream(0);
        for e in [
            s.ev(0, created(0, 0.01)),
            s.ev(10, leased(0, "w1")),
            s.ev(20, metric(0, 1, 0.5)),
            s.ev(30, metric(0, 2, 0.6)),
            s.ev(11, leased(1, "w1")),
            s.ev(40, state(0, TrialState::Finished, Some(0.6))),
            s.ev(45, metric(1, 1, 0.7)),
            s.ev(50, metric(1, 2, 0.75)),
        ] {
            d.apply(&e);
        }
        assert_eq!(d.points, 4, "only trial 1's step 2 is new");
        assert_eq!(d.trial(TrialId(0)).unwrap().state, TrialState::Finished);
        assert_eq!(d.trial(TrialId(1)).unwrap().state, TrialState::Running);
        assert_eq!(d.trial(TrialId(1)).unwrap().value, Some(0.75));
        assert_eq!(d.leases.len(), 2);
        // A finished trial is not made to run again by a replayed lease.
        let late = s.ev(60, leased(0, "w1"));
        d.apply(&late);
        assert_eq!(d.trial(TrialId(0)).unwrap().state, TrialState::Finished);
        let mut min = LiveData::new(
            &ExperimentSpec {
                direction: Direction::Minimize,
                trial: TrialSpec::synthetic(3),
                ..spec()
            },
            ExperimentState::Running,
        );
        min.load_snapshot(
            vec![
                info(0, TrialState::Finished, Some(0.6)),
                info(1, TrialState::Finished, Some(0.2)),
                info(2, TrialState::Queued, None),
            ],
            vec![],
        );
        assert_eq!(min.best().map(|t| t.id), Some(TrialId(1)));
        assert_eq!(min.leaderboard(5).len(), 2);
    }

    #[test]
    fn a_run_that_waits_on_its_worker_gets_its_bar_when_it_starts() {
        let mut s = Stream(0);
        let mut d = LiveData::new(&spec(), ExperimentState::Running);
        let waiting = |trial: u64| {
            let mut e = leased(trial, "a");
            if let ExperimentEvent::TrialLeased { waiting, .. } = &mut e {
                *waiting = true;
            }
            e
        };
        for e in [
            s.ev(0, created(0, 0.01)),
            s.ev(0, created(1, 0.02)),
            s.ev(0, created(2, 0.03)),
            s.ev(0, leased(0, "a")),
            s.ev(0, waiting(1)),
            s.ev(0, waiting(2)),
        ] {
            d.apply(&e);
        }
        assert_eq!(d.leases.len(), 1, "waiting runs have no bar yet");
        d.apply(&s.ev(50, state(0, TrialState::Finished, Some(0.5))));
        d.apply(&s.ev(
            50,
            ExperimentEvent::TrialStarted {
                trial: TrialId(1),
                attempt: 1,
            },
        ));
        // Trial 2 is stopped before it ever ran: no bar.
        d.apply(&s.ev(60, state(2, TrialState::Stopped, None)));
        d.apply(&s.ev(
            70,
            ExperimentEvent::TrialStarted {
                trial: TrialId(2),
                attempt: 1,
            },
        ));
        let bars: Vec<(u64, i64, usize)> = d
            .leases
            .iter()
            .map(|l| (l.trial.0, l.start_ms, l.lane))
            .collect();
        assert_eq!(bars, vec![(0, 0, 0), (1, 50, 0)], "one slot, used in turn");
        assert_eq!(d.lanes.len(), 1);
    }

    #[test]
    fn a_snapshot_gives_each_attempt_a_bar_on_its_slot() {
        let mut s = Stream(0);
        let lost = ExperimentEvent::TrialState {
            trial: TrialId(1),
            state: TrialState::Queued,
            reason: Some("worker lost".into()),
            value: None,
        };
        let mut again = leased(1, "b");
        if let ExperimentEvent::TrialLeased { attempt, .. } = &mut again {
            *attempt = 2;
        }
        let timeline = vec![
            s.ev(0, created(0, 0.01)),
            s.ev(0, created(1, 0.02)),
            s.ev(0, created(2, 0.03)),
            s.ev(0, leased(0, "a")),
            s.ev(1, leased(1, "a")),
            s.ev(5, lost),
            s.ev(6, again),
            s.ev(9, state(0, TrialState::Finished, Some(0.6))),
            s.ev(9, leased(2, "a")),
        ];
        // The metrics are not in the timeline: the series carry them.
        let last_metric = s.ev(10, metric(2, 1, 0.4)).id;
        let trial = |id: u64, state: TrialState, value: Option<f64>| -> TrialInfo {
            let mut v = serde_json::json!({
                "id": id, "params": {"lr": 0.01}, "state": state, "attempt": 1,
                "steps": 1, "created_ms": 0,
            });
            if let Some(x) = value {
                v["value"] = serde_json::json!(x);
            }
            serde_json::from_value(v).unwrap()
        };
        let one = |id: u64, v: f64| TrialCurve {
            trial: TrialId(id),
            steps: vec![1],
            values: vec![v],
        };
        let snapshot: ExperimentSnapshot = serde_json::from_value(serde_json::json!({
            "last_event": last_metric,
            "experiment": {
                "id": "e1", "name": "t", "state": "running", "created_at": "2026-01-01T00:00:00Z",
                "trials": {"queued": 0, "running": 2, "paused": 0, "finished": 1, "stopped": 0,
                           "failed": 0},
                "spec": serde_json::to_value(spec()).unwrap(),
            },
            "trials": [trial(0, TrialState::Finished, Some(0.6)),
                       trial(1, TrialState::Running, None),
                       trial(2, TrialState::Running, None)],
            "curves": [one(0, 0.6), one(1, 0.3), one(2, 0.4)],
            "timeline": timeline,
        }))
        .unwrap();
        let d = LiveData::from_snapshot(snapshot);
        assert_eq!(
            d.last_event, last_metric,
            "the stream goes on after the snapshot"
        );
        assert_eq!(d.points, 3);
        assert_eq!(
            d.trial(TrialId(1)).unwrap().value,
            Some(0.3),
            "last reported"
        );
        // Attempt 1 of trial 1 on a's second slot, lost; attempt 2 on b; trial 2 took a's
        // first slot when trial 0 left it.
        let bars: Vec<(u64, u32, &str, usize, Option<TrialState>)> = d
            .leases
            .iter()
            .map(|l| {
                let lane = &d.lanes[l.lane];
                (
                    l.trial.0,
                    l.attempt,
                    lane.worker.as_str(),
                    lane.slot,
                    l.end_state,
                )
            })
            .collect();
        assert_eq!(
            bars,
            [
                (0, 1, "a", 0, Some(TrialState::Finished)),
                (1, 1, "a", 1, Some(TrialState::Queued)),
                (1, 2, "b", 0, None),
                (2, 1, "a", 0, None),
            ]
        );
        assert_eq!(d.lanes.len(), 3);
        // Slot time used: (9 + 4 + 3 + 0) of 3 lanes x 9 ms.
        let used = d.slot_use().unwrap();
        assert!((used - 16.0 / 27.0).abs() < 1e-9, "{used}");
    }
}
