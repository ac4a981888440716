//! Optimizers behind one trait, and the simple ones (grid, random).
//!
//! Contract with the driver: it keeps the history (every trial it created, in creation
//! order, with its state and per-step values) and calls [`Optimizer::suggest`] whenever a slot
//! is free. A [`Suggestion::New`] becomes trial number `history.len()`: the driver appends it
//! to the history before the next call. [`Suggestion::Continue`] (ASHA) asks it to run an
//! existing paused trial on to a larger resource. `None` means nothing to start now: the
//! budget (`max_trials`) or the grid is exhausted, or (ASHA) nothing is promotable yet; when
//! no trial is running either, the experiment is done.
//!
//! Every random choice of trial `i` comes from [`trial_rng`]`(seed, i)`, so an optimizer
//! rebuilt after a restart from the same spec and history suggests the same thing again.

use albedo_shared::experiment::{
    Direction, ExperimentSpec, OptimizerSpec, ParamSpec, Params, TrialId,
};

use crate::{
    TuningError, ablation::LeaveOneOut, asha::Asha, space, space::trial_rng, tpe::Tpe,
    trial::Trial, validate::validate_spec,
};

/// What the driver should do with a free slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion {
    /// Start a new trial with these parameters.
    New {
        /// Its configuration.
        params: Params,
        /// Steps to run it for (ASHA's bottom rung); `None` runs it to its own end.
        resource: Option<u32>,
    },
    /// Continue a paused trial until it has reported `resource` steps in all.
    Continue {
        /// The trial.
        trial: TrialId,
        /// Its new resource (the next rung).
        resource: u32,
    },
}

/// A search algorithm: asked for the next trial, told results through the history.
pub trait Optimizer: std::fmt::Debug + Send {
    /// The next thing to run given every trial so far, or `None` (see the module docs).
    fn suggest(&mut self, history: &[Trial]) -> Option<Suggestion>;
}

/// Builds the optimizer (or ablation planner) an experiment spec asks for, validating the
/// whole spec first.
pub fn build_optimizer(spec: &ExperimentSpec) -> Result<Box<dyn Optimizer>, TuningError> {
    validate_spec(spec)?;
    if let Some(ablation) = &spec.ablation {
        return Ok(Box::new(LeaveOneOut::new(ablation)?));
    }
    let Some(optimizer) = &spec.optimizer else {
        return Err(TuningError::invalid("optimizer", "missing"));
    };
    Ok(match optimizer {
        OptimizerSpec::Grid {} => Box::new(GridSearch::new(&spec.params, spec.max_trials)?),
        OptimizerSpec::Random {} => Box::new(RandomSearch::new(
            spec.params.clone(),
            spec.seed,
            spec.max_trials,
        )),
        OptimizerSpec::Tpe {
            n_startup_trials,
            n_ei_candidates,
            gamma,
        } => Box::new(Tpe::new(
            spec.params.clone(),
            spec.direction,
            spec.seed,
            spec.max_trials,
            *n_startup_trials,
            *n_ei_candidates,
            *gamma,
        )?),
        OptimizerSpec::Asha {
            min_resource,
            max_resource,
            reduction_factor,
        } => Box::new(Asha::new(
            spec.params.clone(),
            spec.direction,
            spec.seed,
            spec.max_trials,
            *min_resource,
            *max_resource,
            *reduction_factor,
        )?),
    })
}

/// Grid search: the points of [`space::grid`] in order, at most `max_trials` of them.
#[derive(Debug, Clone)]
pub struct GridSearch {
    points: Vec<Params>,
}

impl GridSearch {
    /// A grid over `params` (floats need `steps`), cut at `max_trials` points.
    pub fn new(params: &[ParamSpec], max_trials: u32) -> Result<Self, TuningError> {
        let mut points = space::grid(params)?;
        points.truncate(max_trials as usize);
        Ok(Self { points })
    }

    /// The points it will suggest, in order.
    pub fn points(&self) -> &[Params] {
        &self.points
    }
}

impl Optimizer for GridSearch {
    fn suggest(&mut self, history: &[Trial]) -> Option<Suggestion> {
        self.points.get(history.len()).map(|p| Suggestion::New {
            params: p.clone(),
            resource: None,
        })
    }
}

/// Random search: trial `i` is `space::sample` drawn from `trial_rng(seed, i)`.
#[derive(Debug, Clone)]
pub struct RandomSearch {
    params: Vec<ParamSpec>,
    seed: u64,
    max_trials: u32,
}

impl RandomSearch {
    /// Random search over a space (validate it first, e.g. with [`space::validate_space`]).
    pub fn new(params: Vec<ParamSpec>, seed: u64, max_trials: u32) -> Self {
        Self {
            params,
            seed,
            max_trials,
        }
    }

    /// The configuration of trial `index`.
    pub fn config(&self, index: u64) -> Params {
        space::sample(&self.params, &mut trial_rng(self.seed, index))
    }
}

impl Optimizer for RandomSearch {
    fn suggest(&mut self, history: &[Trial]) -> Option<Suggestion> {
        (history.len() < self.max_trials as usize).then(|| Suggestion::New {
            params: self.config(history.len() as u64),
            resource: None,
        })
    }
}

/// Plays the driver for tests and offline simulations: runs `optimizer` to exhaustion,
/// one trial at a time, scoring each configuration with `objective` (a single final value).
pub fn run_sequential(
    optimizer: &mut dyn Optimizer,
    mut objective: impl FnMut(&Params) -> f64,
) -> Vec<Trial> {
    let mut history: Vec<Trial> = Vec::new();
    while let Some(s) = optimizer.suggest(&history) {
        let Suggestion::New { params, resource } = s else {
            break;
        };
        let mut t = Trial::new(TrialId(history.len() as u64), params, resource);
        t.values.push(objective(&t.params));
        t.state = albedo_shared::experiment::TrialState::Finished;
        history.push(t);
    }
    history
}

/// The best final value of the finished trials of a history, in `direction`.
pub fn best_finished(history: &[Trial], direction: Direction) -> Option<f64> {
    history
        .iter()
        .filter(|t| t.state == albedo_shared::experiment::TrialState::Finished)
        .filter_map(Trial::last)
        .reduce(|a, b| direction.best(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::experiment::Domain;

    fn space() -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                name: "lr".into(),
                domain: Domain::Float {
                    low: 1e-5,
                    high: 1.0,
                    log: true,
                    steps: Some(2),
                },
            },
            ParamSpec {
                name: "width".into(),
                domain: Domain::Categorical {
                    values: vec![16.into(), 32.into(), 64.into()],
                },
            },
        ]
    }

    #[test]
    fn random_is_reproducible_with_a_seed() {
        let a = run_sequential(&mut RandomSearch::new(space(), 42, 20), |_| 0.0);
        let b = run_sequential(&mut RandomSearch::new(space(), 42, 20), |_| 0.0);
        let c = run_sequential(&mut RandomSearch::new(space(), 43, 20), |_| 0.0);
        assert_eq!(a.len(), 20, "the budget is honoured");
        let params = |h: &[Trial]| h.iter().map(|t| t.params.clone()).collect::<Vec<_>>();
        assert_eq!(params(&a), params(&b));
        assert_ne!(params(&a), params(&c));
        // Each trial's configuration depends on its index only, not on the results.
        let d = run_sequential(&mut RandomSearch::new(space(), 42, 20), |p| {
            p["lr"].as_f64().unwrap()
        });
        assert_eq!(params(&a), params(&d));
        let distinct: std::collections::HashSet<String> =
            a.iter().map(|t| t.params["lr"].to_string()).collect();
        assert_eq!(distinct.len(), 20);
    }

    #[test]
    fn grid_search_suggests_every_point_once_then_stops() {
        let mut grid = GridSearch::new(&space(), 100).unwrap();
        let history = run_sequential(&mut grid, |_| 0.0);
        assert_eq!(history.len(), 6);
        assert_eq!(
            history.iter().map(|t| t.params.clone()).collect::<Vec<_>>(),
            grid.points()
        );
        assert_eq!(grid.suggest(&history), None);
        let mut cut = GridSearch::new(&space(), 4).unwrap();
        assert_eq!(run_sequential(&mut cut, |_| 0.0).len(), 4);
    }

    #[test]
    fn best_finished_honours_direction() {
        let history = run_sequential(&mut GridSearch::new(&space(), 100).unwrap(), |p| {
            p["width"].as_f64().unwrap()
        });
        assert_eq!(best_finished(&history, Direction::Maximize), Some(64.0));
        assert_eq!(best_finished(&history, Direction::Minimize), Some(16.0));
    }
}
