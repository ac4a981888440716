//! The experiment form as data: what the inputs hold (text, as typed), the
//! [`ExperimentSpec`] it sends, and where an error of the server belongs in it.
//!
//! What it is: [`ExperimentForm`] with defaults that run as they are (the synthetic workload:
//! `lr` log-uniform on 1e-5..1, `width` one of 16/32/64/128, `dropout` on 0..0.5, random
//! search, 24 trials, the median rule), [`ExperimentForm::to_spec`] (which only checks that
//! numbers are numbers: every other rule is the server's, so that one set of rules holds),
//! and [`ExperimentForm::input_for`], which maps an `ErrorBody::field` path
//! (`params.lr.low`, `params[0].low`, `optimizer.max_resource`, `trial.steps`,
//! `ablation.components.swir.name`, ...) to the id of the input to show the message beside.
//!
//! What it is not: no view (that is [`crate::experiments`]), no validation of values.

use std::collections::BTreeMap;

use albedo_shared::experiment::{
    AblationSpec, Component, ComponentKind, Direction, Domain, EarlyStoppingSpec, ExperimentSpec,
    Mode, OptimizerSpec, ParamSpec, Params,
};
use albedo_shared::protocol::TrialSpec;
use serde_json::Value;

/// A search, or a leave-one-out ablation study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Study {
    /// Search space + optimizer.
    #[default]
    Search,
    /// Baseline + components to leave out.
    Ablation,
}

/// What a trial runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrialKind {
    /// The synthetic workload (reports `accuracy`).
    #[default]
    Synthetic,
    /// Any program.
    Command,
    /// The built-in EO CNN trainer.
    EoCnn,
}

impl TrialKind {
    /// Value of the `<select>` (the spec's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synthetic => "synthetic",
            Self::Command => "command",
            Self::EoCnn => "eo_cnn",
        }
    }

    /// Parses [`TrialKind::as_str`].
    pub fn parse(s: &str) -> Self {
        match s {
            "command" => Self::Command,
            "eo_cnn" => Self::EoCnn,
            _ => Self::Synthetic,
        }
    }
}

/// Type of a search-space row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParamKind {
    /// Real range.
    #[default]
    Float,
    /// Integer range.
    Int,
    /// List of values.
    Categorical,
}

impl ParamKind {
    /// Value of the `<select>` (the spec's `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Int => "int",
            Self::Categorical => "categorical",
        }
    }

    /// Parses [`ParamKind::as_str`].
    pub fn parse(s: &str) -> Self {
        match s {
            "int" => Self::Int,
            "categorical" => Self::Categorical,
            _ => Self::Float,
        }
    }
}

/// The optimizer choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizerKind {
    /// Cartesian grid.
    Grid,
    /// Random search.
    #[default]
    Random,
    /// TPE.
    Tpe,
    /// ASHA.
    Asha,
}

impl OptimizerKind {
    /// Value of the `<select>` (the spec's `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Random => "random",
            Self::Tpe => "tpe",
            Self::Asha => "asha",
        }
    }

    /// Parses [`OptimizerKind::as_str`].
    pub fn parse(s: &str) -> Self {
        match s {
            "grid" => Self::Grid,
            "tpe" => Self::Tpe,
            "asha" => Self::Asha,
            _ => Self::Random,
        }
    }
}

/// One row of the search space.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamRow {
    /// Stable key of the row (for the keyed list).
    pub key: u64,
    /// Parameter name.
    pub name: String,
    /// Its type.
    pub kind: ParamKind,
    /// Lower bound, as typed.
    pub low: String,
    /// Upper bound, as typed.
    pub high: String,
    /// Log scale.
    pub log: bool,
    /// Grid steps, as typed (empty: none).
    pub steps: String,
    /// Categorical values, comma-separated.
    pub values: String,
}

impl ParamRow {
    /// Changes the type; a range made from a list starts at the list's smallest and largest
    /// numbers (else 0 and 1), a list made from a range starts with its bounds.
    pub fn set_kind(&mut self, kind: ParamKind) {
        if kind == self.kind {
            return;
        }
        match kind {
            ParamKind::Float | ParamKind::Int => {
                if self.low.trim().is_empty() || self.high.trim().is_empty() {
                    let nums: Vec<f64> = typed_list(&self.values)
                        .iter()
                        .filter_map(Value::as_f64)
                        .collect();
                    let lo = nums.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
                    self.low = lo.to_string();
                    self.high = hi.to_string();
                }
            }
            ParamKind::Categorical => {
                if self.values.trim().is_empty() {
                    self.values = format!("{}, {}", self.low.trim(), self.high.trim());
                }
            }
        }
        self.kind = kind;
    }
}

/// One fixed parameter of an ablation's baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRow {
    /// Stable key of the row.
    pub key: u64,
    /// Parameter name.
    pub name: String,
    /// Its value, as typed (a number, `true`/`false`, else a string).
    pub value: String,
}

/// One component of an ablation study.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRow {
    /// Stable key of the row.
    pub key: u64,
    /// Ticked: left out in its own trial (unticked rows are not sent).
    pub ablate: bool,
    /// Name.
    pub name: String,
    /// `band_group`, `feature`, `block` or `named`.
    pub kind: ComponentKind,
    /// Members, comma-separated.
    pub members: String,
}

/// Names of the component kinds, as the spec spells them.
pub const COMPONENT_KINDS: [(ComponentKind, &str); 4] = [
    (ComponentKind::BandGroup, "band_group"),
    (ComponentKind::Feature, "feature"),
    (ComponentKind::Block, "block"),
    (ComponentKind::Named, "named"),
];

/// The spec's name of a component kind.
pub fn component_kind_str(k: ComponentKind) -> &'static str {
    COMPONENT_KINDS
        .iter()
        .find(|(c, _)| *c == k)
        .map_or("named", |(_, s)| s)
}

/// Parses [`component_kind_str`].
pub fn parse_component_kind(s: &str) -> ComponentKind {
    COMPONENT_KINDS
        .iter()
        .find(|(_, n)| *n == s)
        .map_or(ComponentKind::Named, |(c, _)| *c)
}

/// Everything the form holds, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentForm {
    /// Experiment name.
    pub name: String,
    /// Metric name.
    pub metric: String,
    /// Direction.
    pub direction: Direction,
    /// Search or ablation.
    pub study: Study,
    /// Trial kind.
    pub trial_kind: TrialKind,
    /// Synthetic: steps.
    pub steps: String,
    /// Synthetic: seed of the workload.
    pub trial_seed: String,
    /// Synthetic: fixed step time in ms (empty: the workload's own).
    pub step_ms: String,
    /// Command: program.
    pub program: String,
    /// Command: arguments, one per line.
    pub args: String,
    /// Command: environment, `KEY=VALUE` lines.
    pub env: String,
    /// Command: working directory (empty: the worker's).
    pub working_dir: String,
    /// Command: grace between SIGTERM and SIGKILL (empty: the default).
    pub grace_ms: String,
    /// EO CNN: datasets root on the worker.
    pub dataset_root: String,
    /// EO CNN: dataset name.
    pub dataset: String,
    /// EO CNN: version (empty: newest).
    pub version: String,
    /// EO CNN: `cpu`, `wgpu` or empty (the worker's).
    pub device: String,
    /// EO CNN: models folder (empty: the worker's).
    pub models_dir: String,
    /// EO CNN: threads (empty: default).
    pub threads: String,
    /// Search-space rows.
    pub params: Vec<ParamRow>,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// TPE: random trials first.
    pub n_startup_trials: String,
    /// TPE: candidates per suggestion.
    pub n_ei_candidates: String,
    /// TPE: good fraction.
    pub gamma: String,
    /// ASHA: bottom rung.
    pub min_resource: String,
    /// ASHA: top rung.
    pub max_resource: String,
    /// ASHA: eta.
    pub reduction_factor: String,
    /// Median rule on (else none).
    pub median: bool,
    /// Median: finished trials before any check.
    pub min_finished: String,
    /// Median: warm-up steps.
    pub warmup_steps: String,
    /// Median: steps between checks.
    pub interval_steps: String,
    /// Trial budget.
    pub max_trials: String,
    /// Parallelism (empty: every free slot).
    pub parallelism: String,
    /// Attempts per trial.
    pub max_attempts: String,
    /// Trials per slot kept waiting on each worker (async only; empty or 0: none).
    pub prefetch: String,
    /// Async or BSP.
    pub mode: Mode,
    /// Optimizer seed.
    pub seed: String,
    /// Ablation baseline rows.
    pub baseline: Vec<BaselineRow>,
    /// Ablation component rows.
    pub components: Vec<ComponentRow>,
    /// Next row key.
    pub next_key: u64,
}

impl Default for ExperimentForm {
    fn default() -> Self {
        let p = |key, name: &str, kind, low: &str, high: &str, log, values: &str| ParamRow {
            key,
            name: name.into(),
            kind,
            low: low.into(),
            high: high.into(),
            log,
            steps: String::new(),
            values: values.into(),
        };
        let b = |key, name: &str, value: &str| BaselineRow {
            key,
            name: name.into(),
            value: value.into(),
        };
        let c = |key, name: &str, kind, members: &str| ComponentRow {
            key,
            ablate: true,
            name: name.into(),
            kind,
            members: members.into(),
        };
        ExperimentForm {
            name: "synthetic sweep".into(),
            metric: "accuracy".into(),
            direction: Direction::Maximize,
            study: Study::Search,
            trial_kind: TrialKind::Synthetic,
            steps: "30".into(),
            trial_seed: "0".into(),
            step_ms: String::new(),
            program: "python3".into(),
            args: "train.py\n--lr={lr}".into(),
            env: String::new(),
            working_dir: String::new(),
            grace_ms: String::new(),
            dataset_root: String::new(),
            dataset: String::new(),
            version: String::new(),
            device: String::new(),
            models_dir: String::new(),
            threads: String::new(),
            params: vec![
                p(0, "lr", ParamKind::Float, "1e-5", "1", true, ""),
                p(
                    1,
                    "width",
                    ParamKind::Categorical,
                    "",
                    "",
                    false,
                    "16, 32, 64, 128",
                ),
                p(2, "dropout", ParamKind::Float, "0", "0.5", false, ""),
            ],
            optimizer: OptimizerKind::Random,
            n_startup_trials: "10".into(),
            n_ei_candidates: "24".into(),
            gamma: "0.25".into(),
            min_resource: "3".into(),
            max_resource: "30".into(),
            reduction_factor: "3".into(),
            median: true,
            min_finished: "5".into(),
            warmup_steps: "5".into(),
            interval_steps: "1".into(),
            max_trials: "24".into(),
            parallelism: String::new(),
            max_attempts: "3".into(),
            prefetch: String::new(),
            mode: Mode::Async,
            seed: "42".into(),
            baseline: vec![
                b(3, "lr", "0.003"),
                b(4, "width", "64"),
                b(5, "dropout", "0.2"),
            ],
            components: vec![
                c(6, "swir", ComponentKind::BandGroup, "B11, B12"),
                c(7, "ndvi", ComponentKind::Feature, ""),
                c(8, "block3", ComponentKind::Block, ""),
            ],
            next_key: 9,
        }
    }
}

/// A problem with one field: the field's path in the spec and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path in the spec, as the server names it (`params.lr.low`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: Some(field.into()),
        message: message.into(),
    }
}

pub(crate) fn num_u32(field: &str, s: &str) -> Result<u32, FieldError> {
    s.trim().parse().map_err(|_| {
        bad(
            field,
            format!("{:?} is not a whole number of 0 or more", s.trim()),
        )
    })
}

pub(crate) fn num_u64(field: &str, s: &str) -> Result<u64, FieldError> {
    s.trim().parse().map_err(|_| {
        bad(
            field,
            format!("{:?} is not a whole number of 0 or more", s.trim()),
        )
    })
}

fn num_i64(field: &str, s: &str) -> Result<i64, FieldError> {
    s.trim()
        .parse()
        .map_err(|_| bad(field, format!("{:?} is not a whole number", s.trim())))
}

pub(crate) fn num_f64(field: &str, s: &str) -> Result<f64, FieldError> {
    s.trim()
        .parse()
        .map_err(|_| bad(field, format!("{:?} is not a number", s.trim())))
}

fn opt<T>(s: &str, f: impl FnOnce(&str) -> Result<T, FieldError>) -> Result<Option<T>, FieldError> {
    if s.trim().is_empty() {
        Ok(None)
    } else {
        f(s).map(Some)
    }
}

fn opt_str(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// A typed value: a number where it reads as one, `true`/`false`, else the text.
pub fn typed_value(s: &str) -> Value {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = t.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(t.to_string()),
    }
}

/// Comma-separated values, typed ([`typed_value`]); empty items are skipped.
pub fn typed_list(s: &str) -> Vec<Value> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(typed_value)
        .collect()
}

/// Comma-separated names, trimmed; empty items are skipped.
pub fn names(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

impl ExperimentForm {
    /// A new row key.
    pub fn take_key(&mut self) -> u64 {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    /// Adds an empty float row to the search space.
    pub fn add_param(&mut self) {
        let key = self.take_key();
        self.params.push(ParamRow {
            key,
            name: String::new(),
            kind: ParamKind::Float,
            low: "0".into(),
            high: "1".into(),
            log: false,
            steps: String::new(),
            values: String::new(),
        });
    }

    /// Adds an empty baseline row.
    pub fn add_baseline(&mut self) {
        let key = self.take_key();
        self.baseline.push(BaselineRow {
            key,
            name: String::new(),
            value: String::new(),
        });
    }

    /// Adds a component row (ticked).
    pub fn add_component(&mut self) {
        let key = self.take_key();
        self.components.push(ComponentRow {
            key,
            ablate: true,
            name: String::new(),
            kind: ComponentKind::Named,
            members: String::new(),
        });
    }

    /// The components that are sent (the ticked rows), with their row index.
    pub fn ticked(&self) -> impl Iterator<Item = (usize, &ComponentRow)> {
        self.components.iter().enumerate().filter(|(_, c)| c.ablate)
    }

    fn trial(&self) -> Result<TrialSpec, FieldError> {
        Ok(match self.trial_kind {
            TrialKind::Synthetic => TrialSpec::Synthetic {
                steps: num_u32("trial.steps", &self.steps)?,
                seed: opt(&self.trial_seed, |s| num_u64("trial.seed", s))?.unwrap_or(0),
                step_ms: opt(&self.step_ms, |s| num_f64("trial.step_ms", s))?,
            },
            TrialKind::Command => {
                let mut env = BTreeMap::new();
                for line in self.env.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let (k, v) = line.split_once('=').ok_or_else(|| {
                        bad(
                            "trial.env",
                            format!("{line:?}: write KEY=VALUE, one a line"),
                        )
                    })?;
                    env.insert(k.trim().to_string(), v.to_string());
                }
                TrialSpec::Command {
                    program: self.program.trim().to_string(),
                    args: self
                        .args
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect(),
                    env,
                    working_dir: opt_str(&self.working_dir),
                    grace_ms: opt(&self.grace_ms, |s| num_u64("trial.grace_ms", s))?
                        .unwrap_or(10_000),
                }
            }
            TrialKind::EoCnn => TrialSpec::EoCnn {
                dataset_root: self.dataset_root.trim().to_string(),
                dataset: self.dataset.trim().to_string(),
                version: opt(&self.version, |s| num_u32("trial.version", s))?,
                device: opt_str(&self.device),
                models_dir: opt_str(&self.models_dir),
                threads: opt(&self.threads, |s| num_u32("trial.threads", s))?,
            },
        })
    }

    fn space(&self) -> Result<Vec<ParamSpec>, FieldError> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let f = |attr: &str| format!("params[{i}].{attr}");
                let steps = opt(&p.steps, |s| num_u32(&f("steps"), s))?;
                let domain = match p.kind {
                    ParamKind::Float => Domain::Float {
                        low: num_f64(&f("low"), &p.low)?,
                        high: num_f64(&f("high"), &p.high)?,
                        log: p.log,
                        steps,
                    },
                    ParamKind::Int => Domain::Int {
                        low: num_i64(&f("low"), &p.low)?,
                        high: num_i64(&f("high"), &p.high)?,
                        log: p.log,
                        steps,
                    },
                    ParamKind::Categorical => Domain::Categorical {
                        values: typed_list(&p.values),
                    },
                };
                Ok(ParamSpec {
                    name: p.name.trim().to_string(),
                    domain,
                })
            })
            .collect()
    }

    fn optimizer_spec(&self) -> Result<OptimizerSpec, FieldError> {
        Ok(match self.optimizer {
            OptimizerKind::Grid => OptimizerSpec::Grid {},
            OptimizerKind::Random => OptimizerSpec::Random {},
            OptimizerKind::Tpe => OptimizerSpec::Tpe {
                n_startup_trials: num_u32("optimizer.n_startup_trials", &self.n_startup_trials)?,
                n_ei_candidates: num_u32("optimizer.n_ei_candidates", &self.n_ei_candidates)?,
                gamma: num_f64("optimizer.gamma", &self.gamma)?,
            },
            OptimizerKind::Asha => OptimizerSpec::Asha {
                min_resource: num_u32("optimizer.min_resource", &self.min_resource)?,
                max_resource: num_u32("optimizer.max_resource", &self.max_resource)?,
                reduction_factor: num_u32("optimizer.reduction_factor", &self.reduction_factor)?,
            },
        })
    }

    /// The spec the form describes. Only the syntax of numbers is checked here; the server
    /// checks the rest and names the field.
    pub fn to_spec(&self) -> Result<ExperimentSpec, FieldError> {
        let early_stopping = if self.median {
            EarlyStoppingSpec::Median {
                min_finished: num_u32("early_stopping.min_finished", &self.min_finished)?,
                warmup_steps: num_u32("early_stopping.warmup_steps", &self.warmup_steps)?,
                interval_steps: num_u32("early_stopping.interval_steps", &self.interval_steps)?,
            }
        } else {
            EarlyStoppingSpec::None {}
        };
        let (params, optimizer, ablation) = match self.study {
            Study::Search => (self.space()?, Some(self.optimizer_spec()?), None),
            Study::Ablation => {
                let mut baseline = Params::new();
                for b in &self.baseline {
                    if b.name.trim().is_empty() && b.value.trim().is_empty() {
                        continue;
                    }
                    baseline.insert(b.name.trim().to_string(), typed_value(&b.value));
                }
                let components = self
                    .ticked()
                    .map(|(_, c)| Component {
                        name: c.name.trim().to_string(),
                        kind: c.kind,
                        members: names(&c.members),
                    })
                    .collect();
                (
                    Vec::new(),
                    None,
                    Some(AblationSpec {
                        baseline,
                        components,
                    }),
                )
            }
        };
        Ok(ExperimentSpec {
            name: self.name.trim().to_string(),
            metric: self.metric.trim().to_string(),
            direction: self.direction,
            params,
            optimizer,
            ablation,
            early_stopping,
            max_trials: num_u32("max_trials", &self.max_trials)?,
            parallelism: opt(&self.parallelism, |s| num_u32("parallelism", s))?,
            mode: self.mode,
            seed: opt(&self.seed, |s| num_u64("seed", s))?.unwrap_or(0),
            trial: self.trial()?,
            max_attempts: num_u32("max_attempts", &self.max_attempts)?,
            prefetch: opt(&self.prefetch, |s| num_u32("prefetch", s))?.unwrap_or(0),
        })
    }

    /// The id of the input an `ErrorBody::field` path names, if the form shows one for it.
    pub fn input_for(&self, field: &str) -> Option<String> {
        let dash = |s: &str| s.replace('_', "-");
        let (head, rest) = match field.find(['.', '[']) {
            Some(i) => (&field[..i], &field[i..]),
            None => (field, ""),
        };
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        match head {
            "name" | "metric" | "direction" | "max_trials" | "parallelism" | "max_attempts"
            | "prefetch" | "mode" | "seed"
                if rest.is_empty() =>
            {
                Some(format!("exp-{}", dash(head)))
            }
            "trial" => Some(match rest {
                "" | "kind" => "trial-kind".to_string(),
                attr => format!(
                    "trial-{}",
                    dash(attr.split(['.', '[']).next().unwrap_or(attr))
                ),
            }),
            "optimizer" => Some(match rest {
                "" | "type" => "optimizer-type".to_string(),
                attr => format!("optimizer-{}", dash(attr)),
            }),
            "early_stopping" => Some(match rest {
                "" | "type" => "stopping-type".to_string(),
                attr => format!("stopping-{}", dash(attr)),
            }),
            "params" => {
                if rest.is_empty() {
                    return Some("param-add".to_string());
                }
                let (row, attr) = row_and_attr(rest, |name| {
                    // A duplicate name is reported on the later row.
                    self.params.iter().rposition(|p| p.name.trim() == name)
                })?;
                (row < self.params.len()).then(|| format!("param-{row}-{}", attr_or(attr, "name")))
            }
            "ablation" => {
                let (sub, rest) = match rest.find(['.', '[']) {
                    Some(i) => (
                        &rest[..i],
                        rest[i..].strip_prefix('.').unwrap_or(&rest[i..]),
                    ),
                    None => (rest, ""),
                };
                match sub {
                    "baseline" => {
                        if rest.is_empty() {
                            return Some("baseline-add".to_string());
                        }
                        let key = rest.split('.').next().unwrap_or(rest);
                        let row = self.baseline.iter().position(|b| b.name.trim() == key)?;
                        Some(format!("baseline-{row}-name"))
                    }
                    "components" => {
                        if rest.is_empty() {
                            return Some("component-add".to_string());
                        }
                        let ticked: Vec<(usize, &ComponentRow)> = self.ticked().collect();
                        let (sent, attr) = row_and_attr(rest, |name| {
                            ticked.iter().rposition(|(_, c)| c.name.trim() == name)
                        })?;
                        let (row, _) = ticked.get(sent)?;
                        Some(format!("component-{row}-{}", attr_or(attr, "name")))
                    }
                    _ => Some("component-add".to_string()),
                }
            }
            _ => None,
        }
    }
}

/// `[3].low` or `lr.low` (a name, looked up with `by_name`) into a row index and attribute.
fn row_and_attr(rest: &str, by_name: impl Fn(&str) -> Option<usize>) -> Option<(usize, &str)> {
    if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']')?;
        let row: usize = r[..end].parse().ok()?;
        let attr = r[end + 1..].trim_start_matches('.');
        return Some((row, attr));
    }
    // Names may hold dots: try the longest name first.
    let mut cut = rest.len();
    loop {
        let name = &rest[..cut];
        if let Some(row) = by_name(name) {
            let attr = rest[cut..].trim_start_matches('.');
            return Some((row, attr));
        }
        cut = rest[..cut].rfind('.')?;
    }
}

/// The input of a row attribute; unknown attributes go to `fallback`.
fn attr_or<'a>(attr: &'a str, fallback: &'a str) -> &'a str {
    match attr.split(['.', '[']).next().unwrap_or("") {
        a
        @ ("name" | "type" | "low" | "high" | "log" | "steps" | "values" | "kind" | "members") => a,
        _ => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_search_of_the_synthetic_workload() {
        let form = ExperimentForm::default();
        let spec = form.to_spec().unwrap();
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
            spec.params[1].domain,
            Domain::Categorical {
                values: vec![16.into(), 32.into(), 64.into(), 128.into()]
            }
        );
        assert_eq!(spec.optimizer, Some(OptimizerSpec::Random {}));
        assert_eq!(spec.max_trials, 24);
        assert!(matches!(
            spec.early_stopping,
            EarlyStoppingSpec::Median { .. }
        ));
        assert_eq!(spec.trial, TrialSpec::synthetic(30));
        assert!(spec.ablation.is_none());
        // What is sent is what the server reads.
        let text = serde_json::to_string(&spec).unwrap();
        let back: ExperimentSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn an_ablation_sends_ticked_components_only() {
        let mut form = ExperimentForm {
            study: Study::Ablation,
            ..ExperimentForm::default()
        };
        form.components[1].ablate = false;
        let spec = form.to_spec().unwrap();
        assert!(spec.params.is_empty() && spec.optimizer.is_none());
        let ab = spec.ablation.unwrap();
        assert_eq!(ab.baseline["width"], Value::from(64));
        assert_eq!(ab.baseline["lr"], Value::from(0.003));
        let names: Vec<&str> = ab.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["swir", "block3"]);
        assert_eq!(ab.components[0].members, ["B11", "B12"]);
        // `ablation.components[1]` is the second ticked row: row 2.
        assert_eq!(
            form.input_for("ablation.components[1].kind").as_deref(),
            Some("component-2-kind")
        );
        assert_eq!(
            form.input_for("ablation.components.swir.name").as_deref(),
            Some("component-0-name")
        );
        assert_eq!(
            form.input_for("ablation.baseline.width").as_deref(),
            Some("baseline-1-name")
        );
        assert_eq!(
            form.input_for("ablation.components").as_deref(),
            Some("component-add")
        );
    }

    #[test]
    fn server_fields_map_to_inputs() {
        let form = ExperimentForm::default();
        let cases = [
            ("params.lr.low", Some("param-0-low")),
            ("params.dropout.high", Some("param-2-high")),
            ("params[1].values", Some("param-1-values")),
            ("params[1]", Some("param-1-name")),
            ("params.width.steps", Some("param-1-steps")),
            ("params", Some("param-add")),
            ("params.nope.low", None),
            ("params[7].low", None),
            ("max_trials", Some("exp-max-trials")),
            ("max_attempts", Some("exp-max-attempts")),
            ("prefetch", Some("exp-prefetch")),
            ("mode", Some("exp-mode")),
            ("optimizer.type", Some("optimizer-type")),
            ("optimizer", Some("optimizer-type")),
            ("optimizer.max_resource", Some("optimizer-max-resource")),
            (
                "early_stopping.interval_steps",
                Some("stopping-interval-steps"),
            ),
            ("early_stopping", Some("stopping-type")),
            ("trial.steps", Some("trial-steps")),
            ("trial.step_ms", Some("trial-step-ms")),
            ("trial", Some("trial-kind")),
            ("colour", None),
            ("body", None),
        ];
        for (field, want) in cases {
            assert_eq!(form.input_for(field).as_deref(), want, "{field}");
        }
        let mut dotted = ExperimentForm::default();
        dotted.params[0].name = "opt.lr".into();
        assert_eq!(
            dotted.input_for("params.opt.lr.low").as_deref(),
            Some("param-0-low")
        );
    }

    #[test]
    fn numbers_that_are_not_numbers_name_their_field() {
        let mut form = ExperimentForm::default();
        form.params[2].high = "half".into();
        let err = form.to_spec().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("params[2].high"));
        assert_eq!(
            form.input_for(err.field.as_deref().unwrap()).as_deref(),
            Some("param-2-high")
        );
        let mut form = ExperimentForm {
            steps: "-3".into(),
            ..ExperimentForm::default()
        };
        assert_eq!(
            form.to_spec().unwrap_err().field.as_deref(),
            Some("trial.steps")
        );
        form.steps = "10".into();
        form.step_ms = "40".into();
        form.parallelism = " ".into();
        let spec = form.to_spec().unwrap();
        assert_eq!(
            spec.trial,
            TrialSpec::Synthetic {
                steps: 10,
                seed: 0,
                step_ms: Some(40.0)
            }
        );
        assert_eq!(spec.parallelism, None);
    }

    #[test]
    fn changing_a_rows_type_keeps_sensible_bounds() {
        let mut form = ExperimentForm::default();
        form.params[1].set_kind(ParamKind::Int);
        assert_eq!(
            (form.params[1].low.as_str(), form.params[1].high.as_str()),
            ("16", "128")
        );
        let spec = form.to_spec().unwrap();
        assert_eq!(
            spec.params[1].domain,
            Domain::Int {
                low: 16,
                high: 128,
                log: false,
                steps: None
            }
        );
        form.params[2].set_kind(ParamKind::Categorical);
        assert_eq!(form.params[2].values, "0, 0.5");
    }

    #[test]
    fn command_trials_and_typed_values() {
        let mut form = ExperimentForm {
            trial_kind: TrialKind::Command,
            env: "A=1\n\nB = x=y".into(),
            ..ExperimentForm::default()
        };
        let TrialSpec::Command {
            program, args, env, ..
        } = form.to_spec().unwrap().trial
        else {
            panic!("a command trial")
        };
        assert_eq!(program, "python3");
        assert_eq!(args, ["train.py", "--lr={lr}"]);
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], " x=y");
        form.env = "JUSTTEXT".into();
        assert_eq!(
            form.to_spec().unwrap_err().field.as_deref(),
            Some("trial.env")
        );
        assert_eq!(
            typed_list("16, 0.5, relu, true,"),
            vec![
                Value::from(16),
                Value::from(0.5),
                Value::from("relu"),
                Value::Bool(true)
            ]
        );
    }
}
