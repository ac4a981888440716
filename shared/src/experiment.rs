//! Experiment specs: what the browser form and `POST /api/experiments` send, as JSON.
//!
//! What it is: plain serde data for a hyperparameter search or an ablation study (search
//! space, optimizer, early stopping, direction and metric, budget, parallelism, mode, seed),
//! plus the trial ids and states both sides speak. Every struct denies unknown fields and every
//! tag is snake_case, so a typo in a spec is an error, never a silent default.
//!
//! What it is not: no validation of values (`low > high`, `log` with `low <= 0`, ... are
//! checked by `albedo-tuning`, which names the offending field), no algorithms, no I/O.
//!
//! A search:
//! ```json
//! {"name": "lr sweep", "metric": "val_accuracy", "direction": "maximize",
//!  "params": [{"name": "lr", "type": "float", "low": 1e-5, "high": 1.0, "log": true},
//!             {"name": "width", "type": "categorical", "values": [16, 32, 64, 128]}],
//!  "optimizer": {"type": "tpe"},
//!  "early_stopping": {"type": "median", "warmup_steps": 3},
//!  "max_trials": 96, "parallelism": 8, "seed": 42}
//! ```
//! An ablation study has `ablation` instead of `params` and `optimizer`:
//! ```json
//! {"name": "bands", "metric": "val_accuracy", "direction": "maximize", "max_trials": 3,
//!  "ablation": {"baseline": {"lr": 0.001},
//!               "components": [{"name": "swir", "kind": "band_group", "members": ["B11", "B12"]},
//!                              {"name": "block3", "kind": "block"}]}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::TrialSpec;

/// Identifier of a trial, unique within one experiment (0, 1, 2, ... in creation order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialId(pub u64);

impl std::fmt::Display for TrialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One configuration: parameter name to its JSON value (a number, or one of a categorical's
/// values). This is what a trial receives (`ALBEDO_PARAMS`).
pub type Params = BTreeMap<String, serde_json::Value>;

/// Whether larger or smaller metric values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is better (accuracy).
    Maximize,
    /// Smaller is better (loss).
    Minimize,
}

impl Direction {
    /// Whether `a` is strictly better than `b` in this direction.
    pub fn is_better(self, a: f64, b: f64) -> bool {
        match self {
            Self::Maximize => a > b,
            Self::Minimize => a < b,
        }
    }

    /// The better of `a` and `b`.
    pub fn best(self, a: f64, b: f64) -> f64 {
        if self.is_better(b, a) { b } else { a }
    }
}

/// How trials are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A free slot starts the next trial at once (the default).
    #[default]
    Async,
    /// Rounds of as many trials as there are slots; each round waits for its slowest trial;
    /// no early stopping (the bulk-synchronous baseline).
    Bsp,
}

/// One named parameter of the search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Name the trial sees (key of [`Params`]); unique within a space.
    pub name: String,
    /// Its domain.
    #[serde(flatten)]
    pub domain: Domain,
}

/// Domain of one parameter, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Domain {
    /// A real number in `[low, high]`.
    Float {
        /// Lower bound, inclusive.
        low: f64,
        /// Upper bound, inclusive.
        high: f64,
        /// Sample (and space the grid) log-uniformly; requires `low > 0`.
        #[serde(default)]
        log: bool,
        /// Number of grid points from `low` to `high` inclusive; required by the grid
        /// optimizer, ignored by the others.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        steps: Option<u32>,
    },
    /// An integer in `[low, high]`, both inclusive.
    Int {
        /// Lower bound, inclusive.
        low: i64,
        /// Upper bound, inclusive.
        high: i64,
        /// Sample log-uniformly; requires `low > 0`.
        #[serde(default)]
        log: bool,
        /// Number of grid points; without it the grid takes every integer in the range.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        steps: Option<u32>,
    },
    /// One of a list of JSON values.
    Categorical {
        /// The choices, in order.
        values: Vec<serde_json::Value>,
    },
}

/// The search algorithm, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// Every point of the cartesian product of the parameters' grids, in a fixed order.
    /// (Braced, so that `deny_unknown_fields` applies: `{"type": "grid", "x": 1}` is refused.)
    Grid {},
    /// Independent uniform (or log-uniform) samples, seeded.
    Random {},
    /// Tree-structured Parzen estimator.
    Tpe {
        /// Random trials before the model is used.
        #[serde(default = "default_n_startup_trials")]
        n_startup_trials: u32,
        /// Candidates drawn from the good density per suggestion.
        #[serde(default = "default_n_ei_candidates")]
        n_ei_candidates: u32,
        /// Fraction of finished trials counted as good, in (0, 1).
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// Asynchronous successive halving; new configurations are sampled at random.
    Asha {
        /// Resource (steps) of the bottom rung.
        min_resource: u32,
        /// Resource (steps) of the top rung.
        max_resource: u32,
        /// `eta`: rungs grow by this factor and the top `1/eta` of a rung is promoted.
        #[serde(default = "default_reduction_factor")]
        reduction_factor: u32,
    },
}

fn default_n_startup_trials() -> u32 {
    10
}
fn default_n_ei_candidates() -> u32 {
    24
}
fn default_gamma() -> f64 {
    0.25
}
fn default_reduction_factor() -> u32 {
    3
}
fn default_max_attempts() -> u32 {
    3
}

fn default_min_finished() -> u32 {
    5
}
fn default_interval_steps() -> u32 {
    1
}

/// Early stopping rule, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EarlyStoppingSpec {
    /// Never stop a trial early (the default).
    None {},
    /// Median stopping rule: stop a trial whose best value so far is worse than the median of
    /// the finished trials' running averages at the same step.
    Median {
        /// Finished trials needed before any check.
        #[serde(default = "default_min_finished")]
        min_finished: u32,
        /// Steps a trial reports before its first check.
        #[serde(default)]
        warmup_steps: u32,
        /// Steps between two checks of a trial.
        #[serde(default = "default_interval_steps")]
        interval_steps: u32,
    },
}

impl Default for EarlyStoppingSpec {
    fn default() -> Self {
        Self::None {}
    }
}

/// What kind of thing an ablation component is (it tells the trial how to remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A group of input bands (`members` lists the band names).
    BandGroup,
    /// One derived input feature (an index such as NDVI).
    Feature,
    /// A model layer or block.
    Block,
    /// Any named component of a command trial.
    Named,
}

/// One component of an ablation study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Name, unique within the study.
    pub name: String,
    /// What it is.
    pub kind: ComponentKind,
    /// What it is made of (band names of a band group); empty when the name says it all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// A leave-one-component-out ablation study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblationSpec {
    /// Fixed parameters of every trial of the study.
    #[serde(default)]
    pub baseline: Params,
    /// The components, each removed in turn.
    pub components: Vec<Component>,
}

/// Id of an experiment: `e` and a number the server gives out (`e12`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExperimentId(pub String);

impl std::fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an experiment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentState {
    /// Creating and running trials.
    Running,
    /// Every trial has ended.
    Finished,
    /// Cancelled by a user; its running trials were stopped.
    Cancelled,
}

impl ExperimentState {
    /// Name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`ExperimentState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "finished" => Self::Finished,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A whole experiment, as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Name for people.
    pub name: String,
    /// Name of the metric to optimise, as trials report it (`val_accuracy`).
    pub metric: String,
    /// Whether that metric is maximised or minimised.
    pub direction: Direction,
    /// The search space (a search); empty for an ablation study.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
    /// The search algorithm (a search); absent for an ablation study.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerSpec>,
    /// The ablation study; absent for a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ablation: Option<AblationSpec>,
    /// Early stopping rule; `none` by default.
    #[serde(default)]
    pub early_stopping: EarlyStoppingSpec,
    /// Most trials the experiment creates (a promotion by ASHA is not a new trial).
    pub max_trials: u32,
    /// Most trials running at once; absent means as many as there are free slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Scheduling mode; `async` by default.
    #[serde(default)]
    pub mode: Mode,
    /// Seed of every random choice of the optimizer.
    #[serde(default)]
    pub seed: u64,
    /// What every trial runs (the parameters of each trial come on top).
    pub trial: TrialSpec,
    /// Attempts a trial gets before it fails for good (a lost worker or a failed run each
    /// cost one).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Trials kept waiting on each worker per slot, beyond the trials it runs (async mode
    /// only; at most [`MAX_PREFETCH`]). `0` (the default) assigns a trial only to a free
    /// slot; `1` lets a worker hold one more trial per slot, which starts the moment a
    /// slot frees, with no round trip to the server in between. For throughput-bound sweeps
    /// of short trials; the price: a queued trial is bound to its worker (another that
    /// frees up first cannot take it) and the optimizer suggests it earlier, with fewer
    /// results in hand.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefetch: u32,
}

/// Largest [`ExperimentSpec::prefetch`].
pub const MAX_PREFETCH: u32 = 4;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// State of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Created, waiting for a slot.
    Queued,
    /// Running on a worker.
    Running,
    /// Reached the resource ASHA gave it; may be continued to a higher rung.
    Paused,
    /// Ran to its end; its values are final.
    Finished,
    /// Stopped early (by the early-stopping rule, or by a cancel).
    Stopped,
    /// Failed (crashed, or lost past the attempt limit).
    Failed,
}

impl TrialState {
    /// Name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    /// Parses [`TrialState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "finished" => Self::Finished,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether the trial has ended for good (finished, stopped or failed): its record no
    /// longer changes.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Finished | Self::Stopped | Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_spec_round_trips_with_defaults() {
        let text = r#"{"name": "s", "metric": "val_accuracy", "direction": "maximize",
            "params": [{"name": "lr", "type": "float", "low": 1e-5, "high": 1.0, "log": true},
                       {"name": "depth", "type": "int", "low": 1, "high": 4},
                       {"name": "width", "type": "categorical", "values": [16, "wide"]}],
            "optimizer": {"type": "tpe", "gamma": 0.2},
            "early_stopping": {"type": "median", "warmup_steps": 3},
            "max_trials": 96, "parallelism": 8, "seed": 7,
            "trial": {"kind": "synthetic", "steps": 20}}"#;
        let spec: ExperimentSpec = serde_json::from_str(text).unwrap();
        assert_eq!(spec.params.len(), 3);
        assert_eq!(
            spec.params[0].domain,
            Domain::Float {
                low: 1e-5,
                high: 1.0,
                log: true,
                steps: None
            }
        );
        assert_eq!(
            spec.optimizer,
            Some(OptimizerSpec::Tpe {
                n_startup_trials: 10,
                n_ei_candidates: 24,
                gamma: 0.2
            })
        );
        assert_eq!(
            spec.early_stopping,
            EarlyStoppingSpec::Median {
                min_finished: 5,
                warmup_steps: 3,
                interval_steps: 1
            }
        );
        assert_eq!(spec.mode, Mode::Async);
        let again: ExperimentSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn ablation_spec_parses() {
        let text = r#"{"name": "a", "metric": "loss", "direction": "minimize", "max_trials": 3,
            "mode": "bsp", "trial": {"kind": "command", "program": "python3"},
            "ablation": {"baseline": {"lr": 0.001},
              "components": [{"name": "swir", "kind": "band_group", "members": ["B11", "B12"]},
                             {"name": "block3", "kind": "block"}]}}"#;
        let spec: ExperimentSpec = serde_json::from_str(text).unwrap();
        let ablation = spec.ablation.unwrap();
        assert_eq!(ablation.components[0].kind, ComponentKind::BandGroup);
        assert_eq!(ablation.components[1].members, Vec::<String>::new());
        assert_eq!(spec.mode, Mode::Bsp);
        assert_eq!(spec.direction, Direction::Minimize);
    }

    #[test]
    fn unknown_fields_and_tags_are_rejected() {
        let base = |extra: &str, param: &str, optimizer: &str| {
            format!(
                r#"{{"name": "s", "metric": "m", "direction": "maximize", "max_trials": 1,
                    "trial": {{"kind": "synthetic", "steps": 5}},
                    "params": [{param}], "optimizer": {optimizer}{extra}}}"#
            )
        };
        let good_param = r#"{"name": "x", "type": "float", "low": 0, "high": 1}"#;
        let ok = base("", good_param, r#"{"type": "random"}"#);
        assert!(serde_json::from_str::<ExperimentSpec>(&ok).is_ok(), "{ok}");
        assert!(ok.contains(r#""max_trials": 1"#));
        for bad in [
            base(r#", "colour": "red""#, good_param, r#"{"type": "random"}"#),
            base("", good_param, r#"{"type": "hyperband"}"#),
            base("", good_param, r#"{"type": "random", "gamma": 0.3}"#),
            base("", good_param, r#"{"type": "grid", "steps": 3}"#),
            base(
                r#", "early_stopping": {"type": "none", "warmup_steps": 3}"#,
                good_param,
                r#"{"type": "random"}"#,
            ),
            base(
                "",
                r#"{"name": "x", "type": "float", "low": 0, "high": 1, "lgo": true}"#,
                r#"{"type": "random"}"#,
            ),
            base(
                "",
                r#"{"name": "x", "type": "quantum", "low": 0, "high": 1}"#,
                r#"{"type": "random"}"#,
            ),
            ok.replace(r#""max_trials": 1"#, r#""max_trials": -1"#),
        ] {
            assert!(
                serde_json::from_str::<ExperimentSpec>(&bad).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn direction_compares_both_ways() {
        assert!(Direction::Maximize.is_better(2.0, 1.0));
        assert!(!Direction::Maximize.is_better(1.0, 2.0));
        assert!(Direction::Minimize.is_better(1.0, 2.0));
        assert_eq!(Direction::Minimize.best(3.0, 1.0), 1.0);
        assert_eq!(Direction::Maximize.best(3.0, 1.0), 3.0);
        assert_eq!(
            serde_json::to_string(&TrialState::Stopped).unwrap(),
            r#""stopped""#
        );
        assert_eq!(serde_json::to_string(&TrialId(4)).unwrap(), "4");
    }
}
