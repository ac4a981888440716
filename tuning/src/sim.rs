//! Zero-overhead simulation of an experiment: the ideal schedule of a workload whose every
//! trial has a known learning curve and step durations, run by an optimizer and an early
//! stopper on `slots` slots, asynchronously or in BSP rounds. Time is simulated seconds; no
//! clock is read.
//!
//! It is what the scheduler benchmark compares the real engine with, and what the tests use
//! to check the algorithms end to end. Semantics follow the driver contract of
//! [`crate::optimizer`]: a new trial gets id `history.len()`; a trial that reaches its
//! resource is `paused` when its curve goes on and `finished` at the curve's end; a continued
//! trial resumes where it paused; the early stopper is asked after every reported value
//! (asynchronous mode only); paused trials finish when the experiment ends.

use albedo_shared::experiment::{Params, TrialId, TrialState};

use crate::{
    optimizer::{Optimizer, Suggestion},
    stopping::EarlyStopper,
    trial::Trial,
};

/// What one trial does when run: the metric and the duration of each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// `values[i]` is the metric reported at step `i + 1`.
    pub values: Vec<f64>,
    /// `step_secs[i]` is how long step `i + 1` takes; as long as `values`.
    pub step_secs: Vec<f64>,
}

/// Result of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOutcome {
    /// Simulated seconds from the start until the last trial ended.
    pub wall_secs: f64,
    /// Every trial, in creation order, in its final state.
    pub history: Vec<Trial>,
    /// Every ASHA continuation, in order: the trial and its new resource.
    pub continuations: Vec<(TrialId, u32)>,
    /// Slot-seconds spent running steps.
    pub busy_secs: f64,
}

struct Sim<'a, W> {
    workload: W,
    curves: Vec<Curve>,
    history: Vec<Trial>,
    continuations: Vec<(TrialId, u32)>,
    busy_secs: f64,
    optimizer: &'a mut dyn Optimizer,
}

impl<W: FnMut(TrialId, &Params) -> Curve> Sim<'_, W> {
    /// Asks the optimizer for work; returns the index of the trial to run, if any.
    fn next(&mut self) -> Option<usize> {
        match self.optimizer.suggest(&self.history)? {
            Suggestion::New { params, resource } => {
                let id = TrialId(self.history.len() as u64);
                let curve = (self.workload)(id, &params);
                self.curves.push(curve);
                self.history.push(Trial::new(id, params, resource));
                Some(self.history.len() - 1)
            }
            Suggestion::Continue { trial, resource } => {
                let i = self.history.iter().position(|t| t.id == trial)?;
                self.history[i].state = TrialState::Running;
                self.history[i].resource = Some(resource);
                self.continuations.push((trial, resource));
                Some(i)
            }
        }
    }

    /// Seconds of trial `i`'s next step, if it has one.
    fn step_secs(&self, i: usize) -> Option<f64> {
        self.curves[i]
            .step_secs
            .get(self.history[i].values.len())
            .copied()
    }

    /// Records trial `i`'s next value; returns whether it has reached its end or resource.
    fn report(&mut self, i: usize) -> bool {
        let k = self.history[i].values.len();
        let curve = &self.curves[i];
        let t = &mut self.history[i];
        t.values.push(curve.values[k]);
        self.busy_secs += curve.step_secs[k];
        let target = t
            .resource
            .map_or(curve.values.len(), |r| (r as usize).min(curve.values.len()));
        if k + 1 >= target {
            t.state = if k + 1 < curve.values.len() {
                TrialState::Paused
            } else {
                TrialState::Finished
            };
            true
        } else {
            false
        }
    }

    fn finish(mut self, wall_secs: f64) -> SimOutcome {
        for t in &mut self.history {
            if t.state == TrialState::Paused {
                t.state = TrialState::Finished;
            }
        }
        SimOutcome {
            wall_secs,
            history: self.history,
            continuations: self.continuations,
            busy_secs: self.busy_secs,
        }
    }
}

/// Asynchronous mode: a slot takes new work the moment it frees; `stopper` is asked after
/// every value. `workload` gives the curve of each new trial (curves should be as long as the
/// largest resource).
pub fn simulate_async(
    optimizer: &mut dyn Optimizer,
    stopper: &dyn EarlyStopper,
    slots: usize,
    workload: impl FnMut(TrialId, &Params) -> Curve,
) -> SimOutcome {
    let mut sim = Sim {
        workload,
        curves: Vec::new(),
        history: Vec::new(),
        continuations: Vec::new(),
        busy_secs: 0.0,
        optimizer,
    };
    // Per slot: the trial it runs and when its current step ends.
    let mut running: Vec<Option<(usize, f64)>> = vec![None; slots.max(1)];
    let mut now = 0.0;
    loop {
        for slot in running.iter_mut().filter(|s| s.is_none()) {
            let Some(i) = sim.next() else { break };
            match sim.step_secs(i) {
                Some(d) => *slot = Some((i, now + d)),
                // Nothing to run (an empty curve): it ends at once.
                None => sim.history[i].state = TrialState::Finished,
            }
        }
        let Some((s, (i, at))) = running
            .iter()
            .enumerate()
            .filter_map(|(s, r)| r.map(|r| (s, r)))
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1).then(a.0.cmp(&b.0)))
        else {
            break;
        };
        now = at;
        let done = sim.report(i);
        if done {
            running[s] = None;
        } else if stopper.should_stop(&sim.history[i], &sim.history) {
            sim.history[i].state = TrialState::Stopped;
            running[s] = None;
        } else {
            running[s] = sim.step_secs(i).map(|d| (i, now + d));
        }
    }
    sim.finish(now)
}

/// BSP mode: rounds of up to `slots` trials, each run to its end (or resource) without early
/// stopping; a round lasts as long as its slowest trial.
pub fn simulate_bsp(
    optimizer: &mut dyn Optimizer,
    slots: usize,
    workload: impl FnMut(TrialId, &Params) -> Curve,
) -> SimOutcome {
    let mut sim = Sim {
        workload,
        curves: Vec::new(),
        history: Vec::new(),
        continuations: Vec::new(),
        busy_secs: 0.0,
        optimizer,
    };
    let mut now = 0.0;
    loop {
        let mut round = Vec::new();
        while round.len() < slots.max(1) {
            match sim.next() {
                Some(i) => round.push(i),
                None => break,
            }
        }
        if round.is_empty() {
            break;
        }
        let mut longest: f64 = 0.0;
        for i in round {
            if sim.step_secs(i).is_none() {
                sim.history[i].state = TrialState::Finished;
            }
            let mut secs = 0.0;
            while let Some(d) = sim.step_secs(i) {
                secs += d;
                if sim.report(i) {
                    break;
                }
            }
            longest = longest.max(secs);
        }
        now += longest;
    }
    sim.finish(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        asha::Asha,
        optimizer::RandomSearch,
        stopping::{MedianStopping, NoStopping},
    };
    use albedo_shared::experiment::{Direction, Domain, ParamSpec};
    use serde_json::json;

    /// The scheduler benchmark's synthetic workload (issue 4), 20 steps, maximising.
    fn space() -> Vec<ParamSpec> {
        let p = |name: &str, domain| ParamSpec {
            name: name.into(),
            domain,
        };
        vec![
            p(
                "lr",
                Domain::Float {
                    low: 1e-5,
                    high: 1.0,
                    log: true,
                    steps: None,
                },
            ),
            p(
                "width",
                Domain::Categorical {
                    values: vec![json!(16), json!(32), json!(64), json!(128)],
                },
            ),
            p(
                "dropout",
                Domain::Float {
                    low: 0.0,
                    high: 0.5,
                    log: false,
                    steps: None,
                },
            ),
        ]
    }

    /// The benchmark's workload itself ([`crate::synthetic`]), 20 steps.
    fn synthetic(id: TrialId, params: &Params) -> Curve {
        crate::synthetic::sim_curve(params, 0xC0FFEE, id, 20, None).unwrap()
    }

    fn negated(id: TrialId, params: &Params) -> Curve {
        let mut c = synthetic(id, params);
        c.values.iter_mut().for_each(|v| *v = -*v);
        c
    }

    fn best(o: &SimOutcome, direction: Direction) -> f64 {
        o.history
            .iter()
            .filter(|t| t.state == TrialState::Finished)
            .filter_map(|t| t.best(direction))
            .reduce(|a, b| direction.best(a, b))
            .unwrap()
    }

    fn median(direction: Direction) -> MedianStopping {
        MedianStopping {
            direction,
            min_finished: 5,
            warmup_steps: 3,
            interval_steps: 1,
        }
    }

    fn asha(direction: Direction) -> Asha {
        Asha::new(space(), direction, 42, 96, 1, 20, 3).unwrap()
    }

    /// 96 random trials on 8 slots: asynchronous mode runs the same configurations to the same
    /// best in less time than BSP; the median rule cuts the time further and keeps the best
    /// (measured: async 0.76, median rule 0.61 of BSP, 27 of 96 trials stopped).
    #[test]
    fn the_cached_median_rule_decides_as_the_plain_one() {
        for direction in [Direction::Maximize, Direction::Minimize] {
            let workload = if direction == Direction::Maximize {
                synthetic
            } else {
                negated
            };
            let plain = simulate_async(
                &mut RandomSearch::new(space(), 7, 96),
                &median(direction),
                8,
                workload,
            );
            let cached = simulate_async(
                &mut RandomSearch::new(space(), 7, 96),
                &crate::stopping::CachedMedianStopping::new(median(direction)),
                8,
                workload,
            );
            assert!(plain.history.iter().any(|t| t.state == TrialState::Stopped));
            assert_eq!(plain, cached);
        }
    }

    #[test]
    fn async_and_median_rule_against_bsp() {
        let bsp = simulate_bsp(&mut RandomSearch::new(space(), 42, 96), 8, synthetic);
        let full = simulate_async(
            &mut RandomSearch::new(space(), 42, 96),
            &NoStopping,
            8,
            synthetic,
        );
        let es = simulate_async(
            &mut RandomSearch::new(space(), 42, 96),
            &median(Direction::Maximize),
            8,
            synthetic,
        );
        let configs = |o: &SimOutcome| {
            o.history
                .iter()
                .map(|t| t.params.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(bsp.history.len(), 96);
        assert_eq!(configs(&bsp), configs(&full));
        assert_eq!(configs(&bsp), configs(&es));
        assert!(
            bsp.history
                .iter()
                .all(|t| t.state == TrialState::Finished && t.values.len() == 20)
        );
        let (async_ratio, es_ratio) =
            (full.wall_secs / bsp.wall_secs, es.wall_secs / bsp.wall_secs);
        eprintln!(
            "async {async_ratio:.3} median {es_ratio:.3} of bsp {:.3}s",
            bsp.wall_secs
        );
        assert!(async_ratio < 0.95, "{async_ratio}");
        assert!(es_ratio < 0.7, "{es_ratio}");
        let stopped = es
            .history
            .iter()
            .filter(|t| t.state == TrialState::Stopped)
            .count();
        assert!(stopped > 20, "{stopped}");
        assert_eq!(
            best(&full, Direction::Maximize),
            best(&bsp, Direction::Maximize)
        );
        assert_eq!(
            best(&es, Direction::Maximize),
            best(&bsp, Direction::Maximize)
        );
        // No trial was stopped before the rule allows: at least 4 values, and 5 finished
        // trials existed (the first 5 finished trials can never have been stopped).
        assert!(
            es.history
                .iter()
                .filter(|t| t.state == TrialState::Stopped)
                .all(|t| t.values.len() >= 4)
        );
    }

    /// ASHA (rungs 1, 3, 9, 20, 96 new trials) on the same workload, at zero overhead, meets
    /// the benchmark's targets: at most 0.35 of BSP's wall time with a best within 1 % of
    /// BSP's (measured: 0.14, best 0.9081 against 0.9117).
    #[test]
    fn asha_against_bsp() {
        let bsp = simulate_bsp(&mut RandomSearch::new(space(), 42, 96), 8, synthetic);
        let out = simulate_async(&mut asha(Direction::Maximize), &NoStopping, 8, synthetic);
        let ratio = out.wall_secs / bsp.wall_secs;
        let (b, a) = (
            best(&bsp, Direction::Maximize),
            best(&out, Direction::Maximize),
        );
        eprintln!(
            "asha {ratio:.3} of bsp; best {a:.4} vs {b:.4}; {} continuations",
            out.continuations.len()
        );
        assert_eq!(out.history.len(), 96);
        assert!(ratio <= 0.35, "{ratio}");
        assert!(a >= b * 0.99, "{a} vs {b}");
        // Every continuation goes one rung up, and only trials that reached 20 steps are
        // at the top.
        for (id, r) in &out.continuations {
            assert!([3, 9, 20].contains(r), "{id} {r}");
        }
        let top = out.history.iter().filter(|t| t.values.len() == 20).count();
        assert_eq!(top, out.continuations.iter().filter(|c| c.1 == 20).count());
    }

    /// Minimising the negated metric makes exactly the same decisions: the same stops, the
    /// same promotions, the same schedule.
    #[test]
    fn minimising_the_negated_metric_mirrors_maximising() {
        let max = simulate_async(&mut asha(Direction::Maximize), &NoStopping, 8, synthetic);
        let min = simulate_async(&mut asha(Direction::Minimize), &NoStopping, 8, negated);
        assert_eq!(max.continuations, min.continuations);
        assert!(!max.continuations.is_empty());
        assert_eq!(max.wall_secs, min.wall_secs);
        let es_max = simulate_async(
            &mut RandomSearch::new(space(), 42, 96),
            &median(Direction::Maximize),
            8,
            synthetic,
        );
        let es_min = simulate_async(
            &mut RandomSearch::new(space(), 42, 96),
            &median(Direction::Minimize),
            8,
            negated,
        );
        let states = |o: &SimOutcome| {
            o.history
                .iter()
                .map(|t| (t.state, t.values.len()))
                .collect::<Vec<_>>()
        };
        assert_eq!(states(&es_max), states(&es_min));
        assert!(states(&es_max).iter().any(|s| s.0 == TrialState::Stopped));
        assert_eq!(es_max.wall_secs, es_min.wall_secs);
        assert_eq!(
            best(&es_max, Direction::Maximize),
            -best(&es_min, Direction::Minimize)
        );
    }
}
