//! Asynchronous successive halving (Li et al., "A System for Massively Parallel
//! Hyperparameter Tuning", 2020).
//!
//! Rungs sit at resources (steps) `min_resource * eta^k` below `max_resource`, plus a top
//! rung at `max_resource`. A trial is *in* rung `k` once it has reported `rungs[k]` values; its
//! result there is its value at step `rungs[k]`. When a slot is free, [`Asha::suggest`] looks
//! at the rungs from the highest below the top down to the bottom; in each it ranks the
//! results (best first in the experiment's direction; ties by trial id; non-finite values
//! last) and takes the top `floor(n / eta)`. The best of those that is paused at exactly that
//! rung (state `paused`, resource `rungs[k]`) is continued to `rungs[k + 1]`. With nothing to
//! promote, a new random configuration starts at the bottom rung, while the trial budget
//! lasts. Trials stopped or failed still count in the ranking but are never promoted.
//!
//! The driver's part: a trial that reaches its resource is `paused` if the resource is below
//! `max_resource`, `finished` at the top; when `suggest` answers `None` and nothing runs, the
//! experiment is done (paused trials then finish as they are).

use albedo_shared::experiment::{Direction, ParamSpec, TrialState};

use crate::{
    TuningError,
    optimizer::{Optimizer, Suggestion},
    space::{self, trial_rng},
    trial::Trial,
};

/// The ASHA optimizer (new configurations by random search).
#[derive(Debug, Clone)]
pub struct Asha {
    params: Vec<ParamSpec>,
    direction: Direction,
    seed: u64,
    max_trials: u32,
    rungs: Vec<u32>,
    eta: u32,
}

impl Asha {
    /// ASHA over a space: `min_resource >= 1`, `max_resource >= min_resource`, `eta >= 2`.
    pub fn new(
        params: Vec<ParamSpec>,
        direction: Direction,
        seed: u64,
        max_trials: u32,
        min_resource: u32,
        max_resource: u32,
        eta: u32,
    ) -> Result<Self, TuningError> {
        space::validate_space(&params)?;
        Ok(Self {
            params,
            direction,
            seed,
            max_trials,
            rungs: rungs(min_resource, max_resource, eta)?,
            eta,
        })
    }

    /// The rung resources, increasing; the last is `max_resource`.
    pub fn rungs(&self) -> &[u32] {
        &self.rungs
    }

    /// The promotion ASHA would make now, if any: `(trial, new resource)`.
    pub fn promotion(&self, history: &[Trial]) -> Option<Suggestion> {
        for k in (0..self.rungs.len().saturating_sub(1)).rev() {
            let r = self.rungs[k] as usize;
            let mut results: Vec<(f64, &Trial)> = history
                .iter()
                .filter(|t| t.values.len() >= r)
                .map(|t| (t.values[r - 1], t))
                .collect();
            results.sort_by(|a, b| rank(self.direction, a.0, b.0).then(a.1.id.cmp(&b.1.id)));
            let top = results.len() / self.eta as usize;
            if let Some((_, t)) = results[..top]
                .iter()
                .find(|(_, t)| t.state == TrialState::Paused && t.resource == Some(self.rungs[k]))
            {
                return Some(Suggestion::Continue {
                    trial: t.id,
                    resource: self.rungs[k + 1],
                });
            }
        }
        None
    }
}

/// Ordering that puts better values first in `direction`, non-finite values last.
fn rank(direction: Direction, a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_finite(), b.is_finite()) {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => std::cmp::Ordering::Equal,
        (true, true) => match direction {
            Direction::Maximize => b.total_cmp(&a),
            Direction::Minimize => a.total_cmp(&b),
        },
    }
}

/// Rung resources for `min_resource`, `max_resource` and `eta` (errors name the spec field).
pub fn rungs(min_resource: u32, max_resource: u32, eta: u32) -> Result<Vec<u32>, TuningError> {
    if min_resource == 0 {
        return Err(TuningError::invalid(
            "optimizer.min_resource",
            "must be at least 1",
        ));
    }
    if max_resource < min_resource {
        return Err(TuningError::invalid(
            "optimizer.max_resource",
            format!("{max_resource} is below min_resource {min_resource}"),
        ));
    }
    if eta < 2 {
        return Err(TuningError::invalid(
            "optimizer.reduction_factor",
            format!("must be at least 2, got {eta}"),
        ));
    }
    let mut out = Vec::new();
    let mut r = u64::from(min_resource);
    while r < u64::from(max_resource) {
        out.push(r as u32);
        r *= u64::from(eta);
    }
    out.push(max_resource);
    Ok(out)
}

impl Optimizer for Asha {
    fn suggest(&mut self, history: &[Trial]) -> Option<Suggestion> {
        if let Some(p) = self.promotion(history) {
            return Some(p);
        }
        (history.len() < self.max_trials as usize).then(|| Suggestion::New {
            params: space::sample(
                &self.params,
                &mut trial_rng(self.seed, history.len() as u64),
            ),
            resource: Some(self.rungs[0]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::experiment::{Domain, TrialId};

    fn asha(direction: Direction) -> Asha {
        let space = vec![ParamSpec {
            name: "x".into(),
            domain: Domain::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                steps: None,
            },
        }];
        Asha::new(space, direction, 9, 100, 1, 9, 3).unwrap()
    }

    /// A trial paused at `resource` with the given step values.
    fn paused(id: u64, values: &[f64], resource: u32) -> Trial {
        let mut t = Trial::new(TrialId(id), Default::default(), Some(resource));
        t.values = values.to_vec();
        t.state = TrialState::Paused;
        t
    }

    #[test]
    fn rungs_grow_by_eta_up_to_max() {
        assert_eq!(rungs(1, 9, 3).unwrap(), vec![1, 3, 9]);
        assert_eq!(rungs(1, 20, 3).unwrap(), vec![1, 3, 9, 20]);
        assert_eq!(rungs(4, 4, 2).unwrap(), vec![4]);
        assert_eq!(
            rungs(0, 4, 2).unwrap_err().field(),
            "optimizer.min_resource"
        );
        assert_eq!(
            rungs(5, 4, 2).unwrap_err().field(),
            "optimizer.max_resource"
        );
        assert_eq!(
            rungs(1, 4, 1).unwrap_err().field(),
            "optimizer.reduction_factor"
        );
    }

    /// Hand-worked, maximising, eta = 3, rungs 1, 3, 9.
    /// Rung 0 (value at step 1): t0 0.5, t1 0.9, t2 0.2, t3 0.7, t4 0.1, t5 0.3 -> top 2: t1, t3.
    #[test]
    fn promotions_when_maximising() {
        let mut a = asha(Direction::Maximize);
        let mut h: Vec<Trial> = [0.5, 0.9, 0.2, 0.7, 0.1, 0.3]
            .iter()
            .enumerate()
            .map(|(i, v)| paused(i as u64, &[*v], 1))
            .collect();
        // Only two trials at rung 0: top floor(2/3) = 0, so start a new one at the bottom.
        assert!(matches!(
            a.suggest(&h[..2]),
            Some(Suggestion::New {
                resource: Some(1),
                ..
            })
        ));
        // Three: top 1 is t1 (0.9).
        assert_eq!(
            a.suggest(&h[..3]),
            Some(Suggestion::Continue {
                trial: TrialId(1),
                resource: 3
            })
        );
        // Six, t1 promoted and running: the next of the top 2 is t3 (0.7), not t0 (0.5).
        h[1].state = TrialState::Running;
        h[1].resource = Some(3);
        assert_eq!(
            a.suggest(&h),
            Some(Suggestion::Continue {
                trial: TrialId(3),
                resource: 3
            })
        );
        h[3].state = TrialState::Running;
        h[3].resource = Some(3);
        // Top 2 both promoted: a new trial.
        assert!(matches!(a.suggest(&h), Some(Suggestion::New { .. })));
        // t1 and t3 reach rung 1 (values at step 3: t1 0.95, t3 0.8): only 2 results in
        // rung 1, no promotion from it; rung 0's top 2 are both promoted: a new trial.
        h[1] = paused(1, &[0.9, 0.92, 0.95], 3);
        h[3] = paused(3, &[0.7, 0.75, 0.8], 3);
        assert!(matches!(a.suggest(&h), Some(Suggestion::New { .. })));
        // A third trial in rung 1 (t6, 0.85): top 1 of rung 1 is t1 -> to the top rung 9.
        h.push(paused(6, &[0.6, 0.8, 0.85], 3));
        assert_eq!(
            a.suggest(&h),
            Some(Suggestion::Continue {
                trial: TrialId(1),
                resource: 9
            })
        );
    }

    /// The same results minimising: the top of rung 0 is now the smallest values, t4 (0.1)
    /// then t2 (0.2), and the rung-1 winner is the smallest at step 3.
    #[test]
    fn promotions_when_minimising() {
        let mut a = asha(Direction::Minimize);
        let mut h: Vec<Trial> = [0.5, 0.9, 0.2, 0.7, 0.1, 0.3]
            .iter()
            .enumerate()
            .map(|(i, v)| paused(i as u64, &[*v], 1))
            .collect();
        assert_eq!(
            a.suggest(&h[..3]),
            Some(Suggestion::Continue {
                trial: TrialId(2),
                resource: 3
            })
        );
        assert_eq!(
            a.suggest(&h),
            Some(Suggestion::Continue {
                trial: TrialId(4),
                resource: 3
            })
        );
        // t4 failed after being promoted: never promoted again, still counts in the ranking,
        // so the other top-2 trial t2 goes next.
        h[4].state = TrialState::Failed;
        h[4].resource = Some(3);
        assert_eq!(
            a.suggest(&h),
            Some(Suggestion::Continue {
                trial: TrialId(2),
                resource: 3
            })
        );
        // t2 stopped at rung 0 instead: nothing promotable, a new trial.
        h[2].state = TrialState::Stopped;
        assert!(matches!(a.suggest(&h), Some(Suggestion::New { .. })));
        // Rung 1 with three results at step 3: 0.15 (t2), 0.05 (t4), 0.25 (t5): t4 is best
        // but failed; the top floor(3/3) = 1 holds only t4, so nothing goes to rung 2.
        h[2] = paused(2, &[0.2, 0.18, 0.15], 3);
        h[4] = paused(4, &[0.1, 0.07, 0.05], 3);
        h[4].state = TrialState::Failed;
        h[5] = paused(5, &[0.3, 0.28, 0.25], 3);
        assert!(matches!(a.suggest(&h), Some(Suggestion::New { .. })));
        h[4].state = TrialState::Paused;
        assert_eq!(
            a.suggest(&h),
            Some(Suggestion::Continue {
                trial: TrialId(4),
                resource: 9
            })
        );
    }

    #[test]
    fn budget_ends_new_trials_but_not_promotions() {
        let space = vec![ParamSpec {
            name: "x".into(),
            domain: Domain::Categorical {
                values: vec![1.into()],
            },
        }];
        let mut a = Asha::new(space, Direction::Maximize, 0, 3, 1, 9, 3).unwrap();
        let mut h: Vec<Trial> = (0..3).map(|i| paused(i, &[i as f64], 1)).collect();
        h[2].state = TrialState::Running;
        // Top of rung 0 is t2 (running, not paused): nothing promotable and no budget left.
        assert_eq!(a.suggest(&h), None);
        h[2].state = TrialState::Paused;
        assert_eq!(
            a.suggest(&h),
            Some(Suggestion::Continue {
                trial: TrialId(2),
                resource: 3
            })
        );
    }
}
