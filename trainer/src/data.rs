//! Samples in memory: the chosen channels of a split, normalised with the dataset's train
//! statistics.

use albedo_raster::dataset::{Dataset, Manifest, ShardData, Split};
use serde::{Deserialize, Serialize};

use crate::TrainerError;

/// Normalisation of one input channel: `(x - mean) / std` (`std` 0 counts as 1), the
/// statistics of the dataset's train split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelNorm {
    /// Channel name.
    pub channel: String,
    /// Mean of the raw values.
    pub mean: f64,
    /// Population standard deviation of the raw values.
    pub std: f64,
}

/// Normalises whole raw samples `[N, C, P, P]` in place, channel by channel.
pub fn normalize(norm: &[ChannelNorm], patch_size: usize, x: &mut [f32]) {
    let pp = patch_size * patch_size;
    if pp == 0 || norm.is_empty() {
        return;
    }
    for (i, plane) in x.chunks_mut(pp).enumerate() {
        let st = &norm[i % norm.len()];
        let std = if st.std > 0.0 { st.std } else { 1.0 };
        for v in plane {
            *v = ((f64::from(*v) - st.mean) / std) as f32;
        }
    }
}

/// The input channels of a run: `wanted` (all of the dataset's when empty) minus `drop`, as
/// indices into the dataset's channels, with their statistics. Unknown names are errors.
pub(crate) fn resolve_channels(
    m: &Manifest,
    wanted: &[String],
    drop: &[String],
) -> Result<(Vec<usize>, Vec<ChannelNorm>), TrainerError> {
    let index = |c: &str| m.channels.iter().position(|d| d == c);
    for c in wanted.iter().chain(drop) {
        if index(c).is_none() {
            return Err(TrainerError::param(
                "channels",
                format!(
                    "'{c}' is not a channel of dataset {} v{} ({})",
                    m.name,
                    m.version,
                    m.channels.join(", ")
                ),
            ));
        }
    }
    let names: Vec<&String> = if wanted.is_empty() {
        m.channels.iter().collect()
    } else {
        wanted.iter().collect()
    };
    let mut idx = Vec::new();
    let mut norm = Vec::new();
    for c in names.into_iter().filter(|c| !drop.contains(c)) {
        let i = index(c).unwrap_or_default();
        let st = m.stats.get(i).ok_or_else(|| {
            TrainerError::Data(format!("the manifest has no statistics of channel '{c}'"))
        })?;
        idx.push(i);
        norm.push(ChannelNorm {
            channel: c.clone(),
            mean: st.mean,
            std: st.std,
        });
    }
    if idx.is_empty() {
        return Err(TrainerError::param(
            "channels",
            "every channel was dropped: no input left",
        ));
    }
    Ok((idx, norm))
}

/// One split in memory, channels picked and normalised.
#[derive(Debug, Clone)]
pub(crate) struct Samples {
    pub n: usize,
    pub channels: usize,
    pub patch: usize,
    pub x: Vec<f32>,
    pub y: Vec<i64>,
}

impl Samples {
    pub(crate) fn sample_len(&self) -> usize {
        self.channels * self.patch * self.patch
    }

    /// The samples at `idx`, concatenated.
    pub(crate) fn gather(&self, idx: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let len = self.sample_len();
        let mut x = Vec::with_capacity(idx.len() * len);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.extend_from_slice(&self.x[i * len..(i + 1) * len]);
            y.push(self.y[i]);
        }
        (x, y)
    }
}

/// Picks channels `idx` of every sample of `s` and normalises them.
pub(crate) fn select(s: &ShardData, idx: &[usize], norm: &[ChannelNorm]) -> Samples {
    let pp = s.patch_size * s.patch_size;
    let mut x = Vec::with_capacity(s.samples * idx.len() * pp);
    for i in 0..s.samples {
        let base = i * s.channels * pp;
        for &c in idx {
            x.extend_from_slice(&s.x[base + c * pp..base + (c + 1) * pp]);
        }
    }
    normalize(norm, s.patch_size, &mut x);
    Samples {
        n: s.samples,
        channels: idx.len(),
        patch: s.patch_size,
        x,
        y: s.y.clone(),
    }
}

/// Reads a split and prepares it.
pub(crate) fn load(
    ds: &Dataset,
    split: Split,
    idx: &[usize],
    norm: &[ChannelNorm],
) -> Result<Samples, TrainerError> {
    let s = ds.read_split(split)?;
    Ok(select(&s, idx, norm))
}
