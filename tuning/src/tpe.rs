//! Tree-structured Parzen estimator (Bergstra et al. 2011), per parameter.
//!
//! Trial `i`:
//! 1. While fewer than `n_startup_trials` trials have finished, it is a random sample (as
//!    random search draws it).
//! 2. Otherwise the finished trials, ranked by their final value in the experiment's
//!    direction, split at the `gamma` quantile: the best `ceil(gamma * n)` (at least one) are
//!    *good*; the rest, plus every trial stopped early (it was stopped for being poor), are
//!    *bad*. Running and failed trials are not used.
//! 3. Per parameter, a density `l` is fitted to the good values and `g` to the bad ones:
//!    numbers as a mixture of truncated Gaussians, one per observation plus a prior one
//!    (centred on the range, as wide as the range), in log space for `log` parameters and
//!    over `[low - 0.5, high + 0.5]` for ints; bandwidths from the distance to the
//!    neighbouring observations, clipped to `[range / min(100, n + 1), range]`.
//!    Categoricals get counts plus a prior weight of 1 spread evenly over the choices.
//! 4. `n_ei_candidates` configurations are drawn from `l` and the one with the largest
//!    `sum over parameters of ln l(x) - ln g(x)` is suggested.

use albedo_shared::experiment::{Direction, Domain, ParamSpec, Params, TrialState};
use rand::Rng;
use serde_json::Value;

use crate::{
    TuningError,
    optimizer::{Optimizer, Suggestion},
    space::{self, trial_rng},
    trial::Trial,
};

/// The TPE optimizer.
#[derive(Debug, Clone)]
pub struct Tpe {
    params: Vec<ParamSpec>,
    direction: Direction,
    seed: u64,
    max_trials: u32,
    n_startup_trials: u32,
    n_ei_candidates: u32,
    gamma: f64,
}

impl Tpe {
    /// TPE over a space; `gamma` must lie in (0, 1) and `n_ei_candidates` be at least 1.
    pub fn new(
        params: Vec<ParamSpec>,
        direction: Direction,
        seed: u64,
        max_trials: u32,
        n_startup_trials: u32,
        n_ei_candidates: u32,
        gamma: f64,
    ) -> Result<Self, TuningError> {
        space::validate_space(&params)?;
        if !(gamma > 0.0 && gamma < 1.0) {
            return Err(TuningError::invalid(
                "optimizer.gamma",
                format!("must lie strictly between 0 and 1, got {gamma}"),
            ));
        }
        if n_ei_candidates == 0 {
            return Err(TuningError::invalid(
                "optimizer.n_ei_candidates",
                "must be at least 1",
            ));
        }
        Ok(Self {
            params,
            direction,
            seed,
            max_trials,
            n_startup_trials,
            n_ei_candidates,
            gamma,
        })
    }

    /// The configuration TPE picks for trial `index` given `history`.
    pub fn config(&self, history: &[Trial], index: u64) -> Params {
        let mut rng = trial_rng(self.seed, index);
        let mut finished: Vec<(f64, &Trial)> = history
            .iter()
            .filter(|t| t.state == TrialState::Finished)
            .filter_map(|t| t.last().map(|v| (v, t)))
            .collect();
        if finished.len() < self.n_startup_trials.max(1) as usize {
            return space::sample(&self.params, &mut rng);
        }
        let direction = self.direction;
        finished.sort_by(|a, b| {
            let (x, y) = if direction == Direction::Maximize {
                (b.0, a.0)
            } else {
                (a.0, b.0)
            };
            x.total_cmp(&y).then(a.1.id.cmp(&b.1.id))
        });
        let n_good =
            ((self.gamma * finished.len() as f64).ceil() as usize).clamp(1, finished.len());
        let good: Vec<&Trial> = finished[..n_good].iter().map(|(_, t)| *t).collect();
        let bad: Vec<&Trial> = finished[n_good..]
            .iter()
            .map(|(_, t)| *t)
            .chain(
                history
                    .iter()
                    .filter(|t| t.state == TrialState::Stopped && !t.values.is_empty()),
            )
            .collect();
        let models: Vec<(Estimator, Estimator)> = self
            .params
            .iter()
            .map(|p| {
                (
                    Estimator::fit(&p.domain, &observed(p, &good)),
                    Estimator::fit(&p.domain, &observed(p, &bad)),
                )
            })
            .collect();
        let mut best: Option<(f64, Params)> = None;
        for _ in 0..self.n_ei_candidates {
            let mut config = Params::new();
            let mut score = 0.0;
            for (p, (l, g)) in self.params.iter().zip(&models) {
                let x = l.sample(&mut rng);
                score += l.ln_pdf(x) - g.ln_pdf(x);
                config.insert(p.name.clone(), decode(&p.domain, x));
            }
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, config));
            }
        }
        best.map(|(_, c)| c)
            .unwrap_or_else(|| space::sample(&self.params, &mut rng))
    }
}

impl Optimizer for Tpe {
    fn suggest(&mut self, history: &[Trial]) -> Option<Suggestion> {
        (history.len() < self.max_trials as usize).then(|| Suggestion::New {
            params: self.config(history, history.len() as u64),
            resource: None,
        })
    }
}

/// The internal coordinate of each trial's value of `p` (trials without one are skipped).
fn observed(p: &ParamSpec, trials: &[&Trial]) -> Vec<f64> {
    trials
        .iter()
        .filter_map(|t| t.params.get(&p.name))
        .filter_map(|v| encode(&p.domain, v))
        .collect()
}

/// Internal coordinate of a value: log for `log` ranges, the index for categoricals.
fn encode(domain: &Domain, v: &Value) -> Option<f64> {
    match domain {
        Domain::Float { log, .. } | Domain::Int { log, .. } => {
            let x = v.as_f64()?;
            if *log {
                (x > 0.0).then(|| x.ln())
            } else {
                Some(x)
            }
        }
        Domain::Categorical { values } => values.iter().position(|c| c == v).map(|i| i as f64),
    }
}

/// The value of an internal coordinate (ints rounded and clamped).
fn decode(domain: &Domain, x: f64) -> Value {
    match domain {
        Domain::Float { low, high, log, .. } => {
            Value::from((if *log { x.exp() } else { x }).clamp(*low, *high))
        }
        Domain::Int { low, high, log, .. } => {
            let v = if *log { x.exp() } else { x };
            Value::from((v.round() as i64).clamp(*low, *high))
        }
        Domain::Categorical { values } => values[(x as usize).min(values.len() - 1)].clone(),
    }
}

/// A fitted density over one parameter's internal coordinate.
#[derive(Debug, Clone)]
enum Estimator {
    /// The range is a single point.
    Constant(f64),
    /// Mixture of Gaussians truncated to `[low, high]`.
    Parzen {
        low: f64,
        high: f64,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// Normalised weights.
        weights: Vec<f64>,
    },
    /// Probabilities of each choice.
    Categorical(Vec<f64>),
}

const PRIOR_WEIGHT: f64 = 1.0;

impl Estimator {
    fn fit(domain: &Domain, obs: &[f64]) -> Self {
        let (low, high) = match domain {
            Domain::Float { low, high, log, .. } => {
                if low == high {
                    return Self::Constant(if *log { low.ln() } else { *low });
                }
                if *log {
                    (low.ln(), high.ln())
                } else {
                    (*low, *high)
                }
            }
            Domain::Int { low, high, log, .. } => {
                if low == high {
                    let x = *low as f64;
                    return Self::Constant(if *log { x.ln() } else { x });
                }
                let (a, b) = (*low as f64 - 0.5, *high as f64 + 0.5);
                if *log { (a.ln(), b.ln()) } else { (a, b) }
            }
            Domain::Categorical { values } => {
                let k = values.len();
                let mut w = vec![PRIOR_WEIGHT / k as f64; k];
                for &x in obs {
                    w[x as usize] += 1.0;
                }
                let total = obs.len() as f64 + PRIOR_WEIGHT;
                return Self::Categorical(w.into_iter().map(|c| c / total).collect());
            }
        };
        let range = high - low;
        let prior_mu = 0.5 * (low + high);
        // Observations plus the prior, sorted; bandwidth from the neighbours.
        let mut pts: Vec<(f64, bool)> = obs.iter().map(|&x| (x, false)).collect();
        pts.push((prior_mu, true));
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let min_sigma = range / (100.0f64).min(pts.len() as f64);
        let mut mus = Vec::with_capacity(pts.len());
        let mut sigmas = Vec::with_capacity(pts.len());
        let mut weights = Vec::with_capacity(pts.len());
        for (i, &(mu, is_prior)) in pts.iter().enumerate() {
            let left = if i == 0 { mu - low } else { mu - pts[i - 1].0 };
            let right = if i + 1 == pts.len() {
                high - mu
            } else {
                pts[i + 1].0 - mu
            };
            let sigma = if is_prior {
                range
            } else {
                left.max(right).clamp(min_sigma, range)
            };
            mus.push(mu);
            sigmas.push(sigma);
            weights.push(if is_prior { PRIOR_WEIGHT } else { 1.0 });
        }
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Self::Parzen {
            low,
            high,
            mus,
            sigmas,
            weights,
        }
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Self::Constant(x) => *x,
            Self::Categorical(p) => pick(p, rng) as f64,
            Self::Parzen {
                low,
                high,
                mus,
                sigmas,
                weights,
            } => {
                let i = pick(weights, rng);
                for _ in 0..100 {
                    let x = mus[i] + sigmas[i] * standard_normal(rng);
                    if (*low..=*high).contains(&x) {
                        return x;
                    }
                }
                rng.random_range(*low..=*high)
            }
        }
    }

    fn ln_pdf(&self, x: f64) -> f64 {
        let p = match self {
            Self::Constant(_) => 1.0,
            Self::Categorical(p) => p[x as usize],
            Self::Parzen {
                low,
                high,
                mus,
                sigmas,
                weights,
            } => mus
                .iter()
                .zip(sigmas)
                .zip(weights)
                .map(|((&mu, &s), &w)| {
                    let mass = normal_cdf((high - mu) / s) - normal_cdf((low - mu) / s);
                    let z = (x - mu) / s;
                    w * (-0.5 * z * z).exp()
                        / (s * (2.0 * std::f64::consts::PI).sqrt())
                        / mass.max(1e-12)
                })
                .sum(),
        };
        p.max(1e-300).ln()
    }
}

/// Index drawn with probability proportional to `weights`.
fn pick<R: Rng + ?Sized>(weights: &[f64], rng: &mut R) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// A standard normal draw (Box-Muller).
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::{RandomSearch, best_finished, run_sequential};
    use serde_json::json;

    fn float(name: &str, low: f64, high: f64, log: bool) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            domain: Domain::Float {
                low,
                high,
                log,
                steps: None,
            },
        }
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975_002_1).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn parzen_density_integrates_to_one_and_favours_observations() {
        let domain = Domain::Float {
            low: 0.0,
            high: 10.0,
            log: false,
            steps: None,
        };
        let est = Estimator::fit(&domain, &[2.0, 2.5, 3.0]);
        let n = 10_000;
        let integral: f64 = (0..n)
            .map(|i| {
                est.ln_pdf((f64::from(i) + 0.5) * 10.0 / f64::from(n)).exp() * 10.0 / f64::from(n)
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        assert!(est.ln_pdf(2.5) > est.ln_pdf(8.0));
        let cat = Domain::Categorical {
            values: vec![json!("a"), json!("b")],
        };
        let est = Estimator::fit(&cat, &[0.0, 0.0, 0.0]);
        // (3 + 0.5) / 4 and 0.5 / 4.
        assert!((est.ln_pdf(0.0).exp() - 0.875).abs() < 1e-12);
        assert!((est.ln_pdf(1.0).exp() - 0.125).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_gamma_and_candidates() {
        let space = vec![float("x", 0.0, 1.0, false)];
        let err = Tpe::new(space.clone(), Direction::Minimize, 0, 10, 5, 24, 1.0).unwrap_err();
        assert_eq!(err.field(), "optimizer.gamma");
        let err = Tpe::new(space, Direction::Minimize, 0, 10, 5, 0, 0.25).unwrap_err();
        assert_eq!(err.field(), "optimizer.n_ei_candidates");
    }

    /// The same seed gives the same trials; the first `n_startup_trials` are random search's.
    #[test]
    fn tpe_is_reproducible_and_warms_up_randomly() {
        let space = vec![float("x", -5.0, 5.0, false)];
        let run = |seed| {
            let mut tpe =
                Tpe::new(space.clone(), Direction::Minimize, seed, 30, 8, 24, 0.25).unwrap();
            run_sequential(&mut tpe, |p| p["x"].as_f64().unwrap().powi(2))
        };
        let a = run(3);
        assert_eq!(a, run(3));
        let random = run_sequential(&mut RandomSearch::new(space.clone(), 3, 8), |_| 0.0);
        for (t, r) in a.iter().zip(&random) {
            assert_eq!(t.params, r.params);
        }
        assert_ne!(
            a[8..].iter().map(|t| &t.params).collect::<Vec<_>>(),
            run_sequential(&mut RandomSearch::new(space, 3, 30), |_| 0.0)[8..]
                .iter()
                .map(|t| &t.params)
                .collect::<Vec<_>>()
        );
    }

    /// Mean over seeds of the best value found in `budget` trials, TPE and random search.
    fn compare(
        space: &[ParamSpec],
        direction: Direction,
        budget: u32,
        f: impl Fn(&Params) -> f64 + Copy,
    ) -> (f64, f64, usize) {
        let seeds = 0..20u64;
        let (mut tpe_sum, mut rnd_sum, mut tpe_wins) = (0.0, 0.0, 0);
        for seed in seeds.clone() {
            let mut tpe = Tpe::new(space.to_vec(), direction, seed, budget, 10, 24, 0.25).unwrap();
            let t = best_finished(&run_sequential(&mut tpe, f), direction).unwrap();
            let mut rnd = RandomSearch::new(space.to_vec(), seed, budget);
            let r = best_finished(&run_sequential(&mut rnd, f), direction).unwrap();
            tpe_sum += t;
            rnd_sum += r;
            if direction.is_better(t, r) {
                tpe_wins += 1;
            }
        }
        let n = seeds.count() as f64;
        (tpe_sum / n, rnd_sum / n, tpe_wins)
    }

    /// Minimising a 2-D quadratic (one axis log-scaled): TPE's mean best regret over 20
    /// seeds is under a quarter of random search's, and it wins on most seeds.
    #[test]
    fn tpe_beats_random_minimising_a_quadratic() {
        let space = vec![float("x", -5.0, 5.0, false), float("lr", 1e-5, 1.0, true)];
        let f = |p: &Params| {
            let x = p["x"].as_f64().unwrap();
            let l = p["lr"].as_f64().unwrap().log10();
            (x - 1.3).powi(2) + 0.5 * (l + 2.5).powi(2)
        };
        let (tpe, rnd, wins) = compare(&space, Direction::Minimize, 60, f);
        eprintln!("minimize: tpe {tpe:.5} random {rnd:.5} wins {wins}/20");
        assert!(tpe < 0.25 * rnd, "tpe {tpe} random {rnd}");
        assert!(wins >= 14, "{wins}");
    }

    /// Maximising a 2-D concave quadratic over a float and an int: same margins.
    #[test]
    fn tpe_beats_random_maximising_a_quadratic() {
        let space = vec![
            float("x", 0.0, 10.0, false),
            ParamSpec {
                name: "depth".into(),
                domain: Domain::Int {
                    low: 1,
                    high: 16,
                    log: false,
                    steps: None,
                },
            },
        ];
        let f = |p: &Params| {
            let x = p["x"].as_f64().unwrap();
            let d = p["depth"].as_f64().unwrap();
            10.0 - (x - 7.2).powi(2) - 0.05 * (d - 11.0).powi(2)
        };
        let (tpe, rnd, wins) = compare(&space, Direction::Maximize, 60, f);
        eprintln!("maximize: tpe {tpe:.5} random {rnd:.5} wins {wins}/20");
        // Regret against the optimum 10.
        assert!(10.0 - tpe < 0.25 * (10.0 - rnd), "tpe {tpe} random {rnd}");
        assert!(wins >= 14, "{wins}");
    }

    /// A categorical alone: once the warm-up has seen every choice, TPE keeps suggesting the
    /// best one (64) far more often than random search's 1 in 4.
    #[test]
    fn tpe_concentrates_on_the_best_category() {
        let space = vec![ParamSpec {
            name: "width".into(),
            domain: Domain::Categorical {
                values: vec![json!(16), json!(32), json!(64), json!(128)],
            },
        }];
        let f = |p: &Params| match p["width"].as_i64().unwrap() {
            64 => 0.9,
            32 | 128 => 0.8,
            _ => 0.5,
        };
        let mut checked = 0;
        for (direction, sign) in [(Direction::Maximize, 1.0), (Direction::Minimize, -1.0)] {
            for seed in 0..5 {
                let mut tpe = Tpe::new(space.clone(), direction, seed, 60, 10, 24, 0.25).unwrap();
                let h = run_sequential(&mut tpe, |p| sign * f(p));
                let warm_up_saw_all = (0..4).all(|i| {
                    h[..10]
                        .iter()
                        .any(|t| t.params["width"] == space_values()[i])
                });
                if !warm_up_saw_all {
                    continue;
                }
                let n64 = h[10..]
                    .iter()
                    .filter(|t| t.params["width"] == json!(64))
                    .count();
                assert!(n64 >= 35, "{direction:?} seed {seed}: {n64}/50");
                checked += 1;
            }
        }
        assert!(
            checked >= 6,
            "only {checked} runs saw every choice in the warm-up"
        );
    }

    fn space_values() -> [Value; 4] {
        [json!(16), json!(32), json!(64), json!(128)]
    }
}
