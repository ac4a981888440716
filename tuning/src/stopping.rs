//! Early stopping: the median stopping rule, and none.
//!
//! Median rule (as maggy and Ray Tune define it), for a running trial with `k` reported
//! values (steps 1..=k):
//! - a check happens only at steps `k = warmup_steps + 1 + j * interval_steps` (j >= 0), and
//!   only once at least `min_finished` trials (state `finished`; stopped ones do not count)
//!   have finished;
//! - for every finished trial with at least `k` values, average its first `k` values;
//! - stop the trial if its best value so far (largest when maximising, smallest when
//!   minimising) is strictly worse than the median of those averages. With no finished trial
//!   of `k` values there is nothing to compare with and the trial goes on. A trial with no
//!   finite value at a check is stopped.

use albedo_shared::experiment::{Direction, EarlyStoppingSpec, TrialState};

use crate::{TuningError, trial::Trial};

/// An early-stopping rule: asked after each reported value whether to stop that trial.
pub trait EarlyStopper: std::fmt::Debug + Send {
    /// Whether `trial` (running, with its values so far) should stop now, given every trial
    /// of the experiment (`history` may include `trial` itself; it is skipped).
    fn should_stop(&self, trial: &Trial, history: &[Trial]) -> bool;
}

/// Never stops a trial.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStopping;

impl EarlyStopper for NoStopping {
    fn should_stop(&self, _trial: &Trial, _history: &[Trial]) -> bool {
        false
    }
}

/// The median stopping rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianStopping {
    /// Whether larger or smaller values are better.
    pub direction: Direction,
    /// Finished trials needed before any check.
    pub min_finished: u32,
    /// Steps before the first check.
    pub warmup_steps: u32,
    /// Steps between checks (at least 1).
    pub interval_steps: u32,
}

impl MedianStopping {
    /// Whether step `k` (1-based count of values) is a check step.
    pub fn is_check_step(&self, k: usize) -> bool {
        let warmup = self.warmup_steps as usize;
        k > warmup && (k - warmup - 1).is_multiple_of(self.interval_steps.max(1) as usize)
    }

    /// The median of the running averages of the first `k` values of the finished trials
    /// (other than `skip`) with at least `k` values, if there is any such trial.
    pub fn median_at(&self, k: usize, history: &[Trial], skip: Option<&Trial>) -> Option<f64> {
        let mut avgs: Vec<f64> = history
            .iter()
            .filter(|t| t.state == TrialState::Finished && t.values.len() >= k)
            .filter(|t| skip.is_none_or(|s| s.id != t.id))
            .map(|t| t.values[..k].iter().sum::<f64>() / k as f64)
            .filter(|a| a.is_finite())
            .collect();
        if avgs.is_empty() {
            return None;
        }
        avgs.sort_by(f64::total_cmp);
        let n = avgs.len();
        Some(if n % 2 == 1 {
            avgs[n / 2]
        } else {
            0.5 * (avgs[n / 2 - 1] + avgs[n / 2])
        })
    }
}

impl MedianStopping {
    /// The decision for `trial` given the number of other finished trials and a way to get
    /// the median at its step count.
    fn decide(
        &self,
        trial: &Trial,
        history: &[Trial],
        median: impl FnOnce(usize) -> Option<f64>,
    ) -> bool {
        let k = trial.values.len();
        if !self.is_check_step(k) {
            return false;
        }
        let finished = history
            .iter()
            .filter(|t| t.state == TrialState::Finished && t.id != trial.id)
            .count();
        if finished < self.min_finished as usize {
            return false;
        }
        let Some(median) = median(k) else {
            return false;
        };
        match trial.best(self.direction) {
            Some(best) => self.direction.is_better(median, best),
            None => true,
        }
    }
}

impl EarlyStopper for MedianStopping {
    fn should_stop(&self, trial: &Trial, history: &[Trial]) -> bool {
        self.decide(trial, history, |k| self.median_at(k, history, Some(trial)))
    }
}

/// The median rule with each step count's median remembered until another trial finishes:
/// finished trials never change, so the median at `k` only moves when the set of finished
/// trials grows. Checks then cost a count instead of a sort (what keeps a driver of 1000
/// trials of 100 steps fast). Decides exactly as [`MedianStopping`].
#[derive(Debug)]
pub struct CachedMedianStopping {
    rule: MedianStopping,
    /// (finished trials when filled, history length when filled, medians by step count).
    cache: std::sync::Mutex<(usize, usize, std::collections::HashMap<usize, Option<f64>>)>,
}

impl CachedMedianStopping {
    /// The cached form of `rule`.
    pub fn new(rule: MedianStopping) -> Self {
        Self {
            rule,
            cache: std::sync::Mutex::new((0, 0, std::collections::HashMap::new())),
        }
    }
}

impl EarlyStopper for CachedMedianStopping {
    fn should_stop(&self, trial: &Trial, history: &[Trial]) -> bool {
        if trial.state == TrialState::Finished {
            // Its own values would count: no cache for that case.
            return self.rule.should_stop(trial, history);
        }
        self.rule.decide(trial, history, |k| {
            let finished = history
                .iter()
                .filter(|t| t.state == TrialState::Finished)
                .count();
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            // A shorter history is another experiment's (or a restart's): start afresh.
            if cache.0 != finished || cache.1 > history.len() {
                *cache = (finished, history.len(), std::collections::HashMap::new());
            }
            cache.1 = history.len();
            *cache
                .2
                .entry(k)
                .or_insert_with(|| self.rule.median_at(k, history, None))
        })
    }
}

/// Builds the rule an experiment spec asks for (`interval_steps` must be at least 1).
pub fn build_stopper(
    spec: &EarlyStoppingSpec,
    direction: Direction,
) -> Result<Box<dyn EarlyStopper>, TuningError> {
    Ok(match spec {
        EarlyStoppingSpec::None {} => Box::new(NoStopping),
        EarlyStoppingSpec::Median {
            min_finished,
            warmup_steps,
            interval_steps,
        } => {
            if *interval_steps == 0 {
                return Err(TuningError::invalid(
                    "early_stopping.interval_steps",
                    "must be at least 1",
                ));
            }
            Box::new(CachedMedianStopping::new(MedianStopping {
                direction,
                min_finished: *min_finished,
                warmup_steps: *warmup_steps,
                interval_steps: *interval_steps,
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::experiment::TrialId;

    fn trial(id: u64, state: TrialState, values: &[f64]) -> Trial {
        let mut t = Trial::new(TrialId(id), Default::default(), None);
        t.state = state;
        t.values = values.to_vec();
        t
    }

    /// Five finished trials of 4 steps. Running averages of the first 2 values:
    /// 0.3, 0.5, 0.7, 0.9, 0.4 -> median 0.5 (sorted 0.3 0.4 0.5 0.7 0.9).
    /// At k = 3: 0.4, 0.6, 0.8, 1.0, 0.5 -> median 0.6.
    fn finished() -> Vec<Trial> {
        [
            [0.2, 0.4, 0.6, 0.8],
            [0.4, 0.6, 0.8, 1.0],
            [0.6, 0.8, 1.0, 1.2],
            [0.8, 1.0, 1.2, 1.4],
            [0.3, 0.5, 0.7, 0.9],
        ]
        .iter()
        .enumerate()
        .map(|(i, v)| trial(i as u64, TrialState::Finished, v))
        .collect()
    }

    fn median(
        direction: Direction,
        min_finished: u32,
        warmup: u32,
        interval: u32,
    ) -> MedianStopping {
        MedianStopping {
            direction,
            min_finished,
            warmup_steps: warmup,
            interval_steps: interval,
        }
    }

    #[test]
    fn medians_are_of_running_averages_of_finished_trials_only() {
        let mut h = finished();
        let rule = median(Direction::Maximize, 5, 0, 1);
        assert!((rule.median_at(2, &h, None).unwrap() - 0.5).abs() < 1e-12);
        assert!((rule.median_at(3, &h, None).unwrap() - 0.6).abs() < 1e-12);
        // Stopped, failed and running trials do not count; short finished trials neither.
        h.push(trial(5, TrialState::Stopped, &[9.0, 9.0]));
        h.push(trial(6, TrialState::Running, &[9.0, 9.0]));
        h.push(trial(7, TrialState::Failed, &[9.0, 9.0]));
        h.push(trial(8, TrialState::Finished, &[9.0]));
        assert!((rule.median_at(2, &h, None).unwrap() - 0.5).abs() < 1e-12);
        // Even count: the mean of the middle two.
        h.push(trial(9, TrialState::Finished, &[1.0, 1.0]));
        assert!((rule.median_at(2, &h, None).unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(rule.median_at(5, &finished(), None), None);
    }

    /// Maximising: at k = 2 the median is 0.5. Running trials with best-so-far 0.45 (stop),
    /// 0.5 (equal: go on), 0.55 (go on); at k = 3 (median 0.6) one whose best is 0.58 stops
    /// although its last value rose.
    #[test]
    fn median_rule_stops_exactly_the_worse_trials_when_maximising() {
        let h = finished();
        let rule = median(Direction::Maximize, 5, 1, 1);
        let cases = [
            (vec![0.45, 0.3], true),
            (vec![0.5, 0.2], false),
            (vec![0.1, 0.55], false),
            (vec![0.5, 0.52, 0.58], true),
            (vec![0.5, 0.52, 0.61], false),
        ];
        for (values, stop) in cases {
            let t = trial(10, TrialState::Running, &values);
            assert_eq!(rule.should_stop(&t, &h), stop, "{values:?}");
        }
    }

    /// Minimising the same numbers: at k = 2 (median 0.5) a best of 0.55 stops, 0.45 goes on.
    #[test]
    fn median_rule_stops_exactly_the_worse_trials_when_minimising() {
        let h = finished();
        let rule = median(Direction::Minimize, 5, 1, 1);
        let cases = [
            (vec![0.55, 0.7], true),
            (vec![0.9, 0.45], false),
            (vec![0.5, 0.6], false),
            (vec![0.9, 0.8, 0.62], true),
            (vec![0.9, 0.8, 0.59], false),
        ];
        for (values, stop) in cases {
            let t = trial(10, TrialState::Running, &values);
            assert_eq!(rule.should_stop(&t, &h), stop, "{values:?}");
        }
    }

    #[test]
    fn never_before_min_finished_or_warmup_and_only_every_interval() {
        let h = finished();
        let awful = |k: usize| trial(10, TrialState::Running, &vec![-1.0; k]);
        // Four finished trials < min_finished 5: never, at any step.
        let rule = median(Direction::Maximize, 5, 0, 1);
        for k in 1..=4 {
            assert!(!rule.should_stop(&awful(k), &h[..4]), "k={k}");
            assert!(rule.should_stop(&awful(k), &h), "k={k}");
        }
        // Stopped trials do not count towards min_finished.
        let mut h4 = h[..4].to_vec();
        h4.push(trial(5, TrialState::Stopped, &[0.0; 4]));
        assert!(!rule.should_stop(&awful(2), &h4));
        // warmup 2, interval 2: checks at k = 3 only (k = 5 has no finished trial that long).
        let rule = median(Direction::Maximize, 5, 2, 2);
        let stops: Vec<usize> = (1..=5)
            .filter(|&k| rule.should_stop(&awful(k), &h))
            .collect();
        assert_eq!(stops, vec![3]);
        assert!(rule.is_check_step(5) && !rule.is_check_step(4) && !rule.is_check_step(2));
        // Minimising, the same gates.
        let rule = median(Direction::Minimize, 5, 2, 1);
        let awful = |k: usize| trial(10, TrialState::Running, &vec![5.0; k]);
        let stops: Vec<usize> = (1..=4)
            .filter(|&k| rule.should_stop(&awful(k), &h))
            .collect();
        assert_eq!(stops, vec![3, 4]);
        assert!(!NoStopping.should_stop(&awful(3), &h));
    }

    #[test]
    fn build_from_spec() {
        let spec = EarlyStoppingSpec::Median {
            min_finished: 5,
            warmup_steps: 0,
            interval_steps: 0,
        };
        let err = build_stopper(&spec, Direction::Maximize).unwrap_err();
        assert_eq!(err.field(), "early_stopping.interval_steps");
        let none = build_stopper(&EarlyStoppingSpec::default(), Direction::Maximize).unwrap();
        assert!(!none.should_stop(&trial(10, TrialState::Running, &[-1.0; 3]), &finished()));
    }
}
