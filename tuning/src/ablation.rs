//! Ablation, leave one component out (AutoAblation's LOCO study).
//!
//! The plan is one baseline trial with every component, then one trial per component with
//! that component removed, in the order the spec lists them. Each trial's parameters are the
//! spec's `baseline` parameters plus [`ABLATE_PARAM`]: the list of removed components as the
//! spec wrote them (`[]` for the baseline, `[{"name": "swir", "kind": "band_group",
//! "members": ["B11", "B12"]}]` otherwise), so that a trial knows what to leave out.
//!
//! Deltas: a trial's metric is its last reported value (finished trials only). For each
//! component, `delta = metric without it - baseline metric` (the raw change), and
//! `importance` is that change turned so that a *positive importance means the component
//! helps*: `baseline - without` when maximising, `without - baseline` when minimising.

use albedo_shared::experiment::{AblationSpec, Component, Direction, Params, TrialState};
use serde_json::Value;

use crate::{
    TuningError,
    optimizer::{Optimizer, Suggestion},
    trial::Trial,
};

/// The parameter naming the removed components of an ablation trial.
pub const ABLATE_PARAM: &str = "ablate";

/// The leave-one-component-out planner; as an [`Optimizer`] it suggests the plan in order.
#[derive(Debug, Clone)]
pub struct LeaveOneOut {
    components: Vec<Component>,
    plan: Vec<Params>,
}

impl LeaveOneOut {
    /// The plan of a study (errors name the field: no components, empty or duplicate
    /// names, a baseline parameter called [`ABLATE_PARAM`]).
    pub fn new(spec: &AblationSpec) -> Result<Self, TuningError> {
        validate_ablation(spec)?;
        let with = |removed: Vec<&Component>| {
            let mut p = spec.baseline.clone();
            let list = removed
                .into_iter()
                .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
                .collect();
            p.insert(ABLATE_PARAM.to_owned(), Value::Array(list));
            p
        };
        let plan = std::iter::once(with(vec![]))
            .chain(spec.components.iter().map(|c| with(vec![c])))
            .collect();
        Ok(Self {
            components: spec.components.clone(),
            plan,
        })
    }

    /// The parameters of every trial: baseline first, then one per removed component.
    pub fn plan(&self) -> &[Params] {
        &self.plan
    }

    /// Each component's delta against the baseline, from the finished trials of `history`
    /// (matched to the plan by their parameters).
    pub fn deltas(&self, history: &[Trial], direction: Direction) -> AblationResult {
        let metric_of = |params: &Params| {
            history
                .iter()
                .filter(|t| t.state == TrialState::Finished && &t.params == params)
                .find_map(Trial::last)
        };
        let baseline = metric_of(&self.plan[0]);
        let components = self
            .components
            .iter()
            .zip(&self.plan[1..])
            .map(|(c, params)| {
                let metric = metric_of(params);
                let delta = metric.zip(baseline).map(|(m, b)| m - b);
                ComponentDelta {
                    component: c.name.clone(),
                    metric,
                    delta,
                    importance: delta.map(|d| match direction {
                        Direction::Maximize => -d,
                        Direction::Minimize => d,
                    }),
                }
            })
            .collect();
        AblationResult {
            baseline,
            components,
        }
    }
}

impl Optimizer for LeaveOneOut {
    fn suggest(&mut self, history: &[Trial]) -> Option<Suggestion> {
        self.plan.get(history.len()).map(|p| Suggestion::New {
            params: p.clone(),
            resource: None,
        })
    }
}

/// Result of an ablation study.
#[derive(Debug, Clone, PartialEq)]
pub struct AblationResult {
    /// The baseline trial's metric, once it has finished.
    pub baseline: Option<f64>,
    /// One entry per component, in spec order.
    pub components: Vec<ComponentDelta>,
}

/// One component's effect.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentDelta {
    /// Its name.
    pub component: String,
    /// Metric of the trial without it, once finished.
    pub metric: Option<f64>,
    /// `metric - baseline`.
    pub delta: Option<f64>,
    /// The delta signed so that positive means the component helps (see module docs).
    pub importance: Option<f64>,
}

/// Checks an ablation spec; errors name the field.
pub fn validate_ablation(spec: &AblationSpec) -> Result<(), TuningError> {
    if spec.components.is_empty() {
        return Err(TuningError::invalid(
            "ablation.components",
            "an ablation study needs at least one component",
        ));
    }
    if spec.baseline.contains_key(ABLATE_PARAM) {
        return Err(TuningError::invalid(
            format!("ablation.baseline.{ABLATE_PARAM}"),
            "this parameter name is reserved for the removed components",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in spec.components.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(TuningError::invalid(
                format!("ablation.components[{i}].name"),
                "a component needs a name",
            ));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(TuningError::invalid(
                format!("ablation.components.{}.name", c.name),
                format!("duplicate component name {:?}", c.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::run_sequential;
    use albedo_shared::experiment::ComponentKind;
    use serde_json::json;

    fn spec() -> AblationSpec {
        let c = |name: &str, kind, members: &[&str]| Component {
            name: name.into(),
            kind,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        };
        AblationSpec {
            baseline: [("lr".to_owned(), json!(0.001))].into_iter().collect(),
            components: vec![
                c("swir", ComponentKind::BandGroup, &["B11", "B12"]),
                c("ndvi", ComponentKind::Feature, &[]),
                c("block3", ComponentKind::Block, &[]),
            ],
        }
    }

    #[test]
    fn plan_is_baseline_plus_one_trial_per_removed_component() {
        let loo = LeaveOneOut::new(&spec()).unwrap();
        let plan = loo.plan();
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[0]["ablate"], json!([]));
        assert_eq!(plan[0]["lr"], json!(0.001));
        assert_eq!(
            plan[1]["ablate"],
            json!([{"name": "swir", "kind": "band_group", "members": ["B11", "B12"]}])
        );
        assert_eq!(plan[3]["ablate"][0]["name"], json!("block3"));
        assert!(plan.iter().all(|p| p["lr"] == json!(0.001)));
        let mut loo = loo;
        assert_eq!(run_sequential(&mut loo, |_| 0.0).len(), 4);
    }

    /// Scores: baseline 0.80; without swir 0.70, without ndvi 0.82, without block3 0.80.
    #[test]
    fn deltas_honour_direction() {
        let mut loo = LeaveOneOut::new(&spec()).unwrap();
        let score = |p: &Params| match p["ablate"].get(0).and_then(|c| c["name"].as_str()) {
            None => 0.80,
            Some("swir") => 0.70,
            Some("ndvi") => 0.82,
            _ => 0.80,
        };
        let history = run_sequential(&mut loo, score);
        let max = loo.deltas(&history, Direction::Maximize);
        assert_eq!(max.baseline, Some(0.80));
        let imp: Vec<f64> = max
            .components
            .iter()
            .map(|c| c.importance.unwrap())
            .collect();
        let delta: Vec<f64> = max.components.iter().map(|c| c.delta.unwrap()).collect();
        assert!((delta[0] + 0.10).abs() < 1e-12 && (delta[1] - 0.02).abs() < 1e-12);
        // Maximising accuracy: removing swir costs 0.10, so swir helps (+0.10); ndvi hurts.
        assert!((imp[0] - 0.10).abs() < 1e-12, "{imp:?}");
        assert!((imp[1] + 0.02).abs() < 1e-12, "{imp:?}");
        assert_eq!(imp[2], 0.0);
        // Minimising (say the metric were a loss): the same numbers mean the opposite.
        let min = loo.deltas(&history, Direction::Minimize);
        let imp: Vec<f64> = min
            .components
            .iter()
            .map(|c| c.importance.unwrap())
            .collect();
        assert!((imp[0] + 0.10).abs() < 1e-12 && (imp[1] - 0.02).abs() < 1e-12);
        // Unfinished trials give no delta.
        let mut partial = history.clone();
        partial[2].state = TrialState::Running;
        let r = loo.deltas(&partial, Direction::Maximize);
        assert_eq!(r.components[1].delta, None);
        assert!(r.components[0].delta.is_some());
        partial[0].state = TrialState::Failed;
        assert!(
            loo.deltas(&partial, Direction::Maximize)
                .components
                .iter()
                .all(|c| c.delta.is_none())
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = spec();
        s.components[2].name = "swir".into();
        assert_eq!(
            LeaveOneOut::new(&s).unwrap_err().field(),
            "ablation.components.swir.name"
        );
        let mut s = spec();
        s.baseline.insert("ablate".into(), json!(1));
        assert_eq!(
            LeaveOneOut::new(&s).unwrap_err().field(),
            "ablation.baseline.ablate"
        );
        let mut s = spec();
        s.components.clear();
        assert_eq!(
            LeaveOneOut::new(&s).unwrap_err().field(),
            "ablation.components"
        );
    }
}
