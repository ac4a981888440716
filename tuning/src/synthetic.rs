//! The synthetic workload of the scheduler benchmark: a known learning curve and step time
//! from the parameters (issue 4), pure and deterministic. Workers run it (sleeping each
//! step's time); the benchmark computes the ideal schedule of the same trials from it.
//!
//! Parameters `lr` (> 0), `width` (> 0) and `dropout`, all numbers. Exactly:
//! - final quality `q = 0.1` if `lr > 0.3` (diverges), else
//!   `max(0.1, 0.92 - 0.06*|log10(lr)+2.5|^1.5 - 0.02*|log2(width)-6| - 0.1*|dropout-0.2|)`;
//! - learning pace `tau = 5*(1 + max(0, -log10(lr)-3))`;
//! - value at step `s` (from 1) = `max(0.1, q*(1 - 0.9*exp(-s/tau))) + N(0, 0.01)`, where 0.01
//!   is the standard deviation and the noise is drawn from the trial's seed (one draw per step,
//!   in step order);
//! - step time `(20 + 80*(log2(width)-4)/3*u)` ms with `u` uniform in `[0.7, 1.0]`, drawn once
//!   per trial from the trial's seed (so a trial's steps all take the same time, and trials
//!   differ).
//!
//! The seed is [`synthetic_seed`] of the trial spec's `seed` and the trial id, so a re-run of
//! a trial (another attempt, another worker) reproduces the same curve and times, and so do
//! the trials of the same id in another experiment of the same seed (the benchmark runs one
//! workload under several engines); [`synthetic_curve`] gives them without running anything
//! (the benchmark's ideal schedule). A spec's `step_ms`, when given, replaces every step's
//! time.
//!
//! Random numbers: SplitMix64 (written out here, so that the curve never changes with a
//! dependency's version); the value noise and `u` come from two streams of the seed.

use albedo_shared::experiment::{Params, TrialId};

/// Name of the metric a synthetic trial reports.
pub const METRIC: &str = "accuracy";

/// Standard deviation of the noise added to each value.
pub const NOISE_SD: f64 = 0.01;

/// SplitMix64: a tiny, well-mixed, fully specified generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller, one value per call).
    fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // in (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The seed of a trial: FNV-1a of the spec's seed, then of the trial id (both little
/// endian), finished with one SplitMix64 step.
pub fn synthetic_seed(seed: u64, trial: TrialId) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in seed
        .to_le_bytes()
        .iter()
        .chain(trial.0.to_le_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    SplitMix64(h).next_u64()
}

/// The parameters of the synthetic workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticParams {
    /// Learning rate, > 0.
    pub lr: f64,
    /// Width, > 0.
    pub width: f64,
    /// Dropout.
    pub dropout: f64,
}

impl SyntheticParams {
    /// Reads `lr`, `width` and `dropout` from a configuration; the error names the parameter.
    pub fn from_params(params: &Params) -> Result<Self, String> {
        let get = |name: &str| -> Result<f64, String> {
            let v = params
                .get(name)
                .ok_or_else(|| format!("synthetic trial needs parameter '{name}'"))?;
            v.as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("parameter '{name}' must be a finite number, got {v}"))
        };
        let p = Self {
            lr: get("lr")?,
            width: get("width")?,
            dropout: get("dropout")?,
        };
        if p.lr <= 0.0 {
            return Err(format!("parameter 'lr' must be > 0, got {}", p.lr));
        }
        if p.width <= 0.0 {
            return Err(format!("parameter 'width' must be > 0, got {}", p.width));
        }
        Ok(p)
    }

    /// Final quality `q`.
    pub fn quality(&self) -> f64 {
        if self.lr > 0.3 {
            return 0.1;
        }
        let q = 0.92
            - 0.06 * (self.lr.log10() + 2.5).abs().powf(1.5)
            - 0.02 * (self.width.log2() - 6.0).abs()
            - 0.1 * (self.dropout - 0.2).abs();
        q.max(0.1)
    }

    /// Learning pace `tau`.
    pub fn tau(&self) -> f64 {
        5.0 * (1.0 + (-self.lr.log10() - 3.0).max(0.0))
    }

    /// Noise-free value at step `s` (from 1).
    pub fn mean_value(&self, s: u32) -> f64 {
        (self.quality() * (1.0 - 0.9 * (-f64::from(s) / self.tau()).exp())).max(0.1)
    }

    /// Step time in milliseconds for a given `u` in `[0.7, 1.0]`.
    pub fn step_ms(&self, u: f64) -> f64 {
        20.0 + 80.0 * (self.width.log2() - 4.0) / 3.0 * u
    }
}

/// The curve of a trial: for steps 1..=`steps`, the reported value and the step's time in
/// milliseconds. Pure and deterministic in (`params`, `seed`).
pub fn synthetic_curve(params: &Params, seed: u64, steps: u32) -> Result<Vec<(f64, f64)>, String> {
    let p = SyntheticParams::from_params(params)?;
    let mut noise = SplitMix64(seed);
    let mut time = SplitMix64(seed ^ 0x5DEE_CE66_D1CE_4E5B);
    let u = 0.7 + 0.3 * time.next_f64();
    let step_ms = p.step_ms(u);
    Ok((1..=steps)
        .map(|s| (p.mean_value(s) + NOISE_SD * noise.next_normal(), step_ms))
        .collect())
}

/// The curve of trial `trial` as the simulation takes it ([`crate::sim::Curve`], step times
/// in seconds): the trial's seed mixed from `seed`, and `step_ms` replacing every step's own
/// time when given, exactly as a worker runs it.
pub fn sim_curve(
    params: &Params,
    seed: u64,
    trial: TrialId,
    steps: u32,
    step_ms: Option<f64>,
) -> Result<crate::sim::Curve, String> {
    let curve = synthetic_curve(params, synthetic_seed(seed, trial), steps)?;
    Ok(crate::sim::Curve {
        values: curve.iter().map(|c| c.0).collect(),
        step_secs: curve
            .iter()
            .map(|c| step_ms.unwrap_or(c.1) / 1000.0)
            .collect(),
    })
}
