//! Train / validation / test splits with a seed, and per-channel statistics.
//!
//! What it is: the crate-internal `assign` puts each sample in a split, deterministically
//! for a seed: samples are grouped by class (stratified) or kept as one group, each group is
//! shuffled by Fisher-Yates with SplitMix64, and each group is cut by the fractions with
//! largest-remainder rounding (so a class of one sample goes to the largest split). The
//! generator is written here, not taken from a crate, so a seed gives the same split across
//! dependency upgrades. [`ChannelStats`] are Welford mean / variance, min and max in f64.
//!
//! What it is not: no spatial blocking: overlapping patches (stride < patch size) of one
//! scene can fall in different splits; choose stride >= patch size where that matters.

use serde::{Deserialize, Serialize};

/// One of the three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training samples; the normalisation statistics come from these alone.
    Train,
    /// Validation samples.
    Val,
    /// Test samples.
    Test,
}

impl Split {
    /// The three splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// `train`, `val` or `test`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            Split::Train => 0,
            Split::Val => 1,
            Split::Test => 2,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and fixed here for reproducibility.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift with rejection.
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// How many of `n` samples each split gets: largest-remainder rounding of `n * fraction`
/// (ties to the earlier split).
pub(crate) fn quotas(n: usize, fractions: [f64; 3]) -> [usize; 3] {
    let exact: Vec<f64> = fractions.iter().map(|f| f * n as f64).collect();
    let mut q = [0usize; 3];
    for i in 0..3 {
        q[i] = exact[i].floor() as usize;
    }
    let mut left = n.saturating_sub(q.iter().sum());
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        if fractions[i] > 0.0 {
            q[i] += 1;
            left -= 1;
        }
    }
    q
}

/// The split of each sample, given each sample's class (`classes[i] < n_classes`).
pub(crate) fn assign(
    classes: &[u8],
    n_classes: usize,
    fractions: [f64; 3],
    seed: u64,
    stratified: bool,
) -> Vec<Split> {
    let mut groups: Vec<Vec<usize>> = if stratified {
        let mut g = vec![Vec::new(); n_classes];
        for (i, &c) in classes.iter().enumerate() {
            g[usize::from(c)].push(i);
        }
        g
    } else {
        vec![(0..classes.len()).collect()]
    };
    let mut rng = SplitMix64::new(seed);
    let mut out = vec![Split::Train; classes.len()];
    for group in &mut groups {
        rng.shuffle(group);
        let [train, val, _] = quotas(group.len(), fractions);
        for (k, &i) in group.iter().enumerate() {
            out[i] = if k < train {
                Split::Train
            } else if k < train + val {
                Split::Val
            } else {
                Split::Test
            };
        }
    }
    out
}

/// Statistics of one channel over the train split (raw values, before any normalisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Channel name.
    pub channel: String,
    /// Number of values (train samples x patch pixels).
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Running Welford accumulator of one channel.
#[derive(Debug, Clone)]
pub(crate) struct Accumulator {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Accumulator {
    pub fn push_all(&mut self, values: &[f32]) {
        for &v in values {
            let v = f64::from(v);
            self.count += 1;
            let d = v - self.mean;
            self.mean += d / self.count as f64;
            self.m2 += d * (v - self.mean);
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// The statistics; all zero for an empty accumulator (never NaN, which JSON cannot hold).
    pub fn finish(&self, channel: &str) -> ChannelStats {
        if self.count == 0 {
            return ChannelStats {
                channel: channel.to_string(),
                count: 0,
                mean: 0.0,
                std: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        ChannelStats {
            channel: channel.to_string(),
            count: self.count,
            mean: self.mean,
            std: (self.m2 / self.count as f64).sqrt(),
            min: self.min,
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_to_n() {
        assert_eq!(quotas(10, [0.7, 0.15, 0.15]), [7, 2, 1]);
        assert_eq!(quotas(1, [0.7, 0.15, 0.15]), [1, 0, 0]);
        assert_eq!(quotas(3, [0.5, 0.5, 0.0]), [2, 1, 0]);
        assert_eq!(quotas(0, [0.7, 0.15, 0.15]), [0, 0, 0]);
        for n in 0..50 {
            assert_eq!(quotas(n, [0.6, 0.2, 0.2]).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn stratified_split_is_seeded_and_balanced() {
        let classes: Vec<u8> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
        let a = assign(&classes, 2, [0.5, 0.25, 0.25], 7, true);
        let b = assign(&classes, 2, [0.5, 0.25, 0.25], 7, true);
        let c = assign(&classes, 2, [0.5, 0.25, 0.25], 8, true);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let count = |s: Split, class: u8| {
            a.iter()
                .zip(&classes)
                .filter(|(x, k)| **x == s && **k == class)
                .count()
        };
        assert_eq!(
            [
                count(Split::Train, 0),
                count(Split::Val, 0),
                count(Split::Test, 0)
            ],
            [40, 20, 20]
        );
        assert_eq!(
            [
                count(Split::Train, 1),
                count(Split::Val, 1),
                count(Split::Test, 1)
            ],
            [10, 5, 5]
        );
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 1234567 (Vigna's reference splitmix64.c).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        let mut r = SplitMix64::new(3);
        for n in [1u64, 2, 3, 10, 1 << 40] {
            assert!(r.below(n) < n);
        }
    }

    #[test]
    fn welford_matches_two_pass() {
        let v = [1.0f32, 2.0, 4.0, 8.0, -3.0];
        let mut a = Accumulator::default();
        a.push_all(&v[..2]);
        a.push_all(&v[2..]);
        let s = a.finish("x");
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / 5.0;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / 5.0;
        assert!((s.mean - mean).abs() < 1e-12 && (s.std - var.sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.count), (-3.0, 8.0, 5));
        assert_eq!(Accumulator::default().finish("y").mean, 0.0);
    }
}
