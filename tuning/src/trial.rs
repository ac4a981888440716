//! What the algorithms know of a trial: its parameters, state and per-step metric values.
//!
//! The driver keeps one [`Trial`] per trial it created, in creation order, and hands the
//! whole slice (the history) to the optimizer and the early stopper. Nothing here mutates it.

use albedo_shared::experiment::{Direction, Params, TrialId, TrialState};

/// One trial as the algorithms see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Its id.
    pub id: TrialId,
    /// The configuration it runs.
    pub params: Params,
    /// Where it stands.
    pub state: TrialState,
    /// The objective metric per step: `values[i]` is the value reported at step `i + 1`.
    pub values: Vec<f64>,
    /// Steps it was told to run (ASHA's rung resource); `None` runs it to its own end.
    pub resource: Option<u32>,
}

impl Trial {
    /// A trial that has just started: running, no values yet.
    pub fn new(id: TrialId, params: Params, resource: Option<u32>) -> Self {
        Self {
            id,
            params,
            state: TrialState::Running,
            values: Vec::new(),
            resource,
        }
    }

    /// Its best finite value so far in `direction`, if any.
    pub fn best(&self, direction: Direction) -> Option<f64> {
        self.values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(|a, b| direction.best(a, b))
    }

    /// Its last reported value, if finite.
    pub fn last(&self) -> Option<f64> {
        self.values.last().copied().filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_honours_direction_and_skips_nan() {
        let mut t = Trial::new(TrialId(0), Params::new(), None);
        assert_eq!(t.best(Direction::Maximize), None);
        t.values = vec![0.5, f64::NAN, 0.9, 0.7];
        assert_eq!(t.best(Direction::Maximize), Some(0.9));
        assert_eq!(t.best(Direction::Minimize), Some(0.5));
        assert_eq!(t.last(), Some(0.7));
    }
}
