//! Versioned training datasets of labelled patches: built from Sentinel imagery and labels,
//! stored as a manifest and safetensors shards, read back by the trainer.
//!
//! What it is: [`build`] turns a [`DatasetSpec`] into a new version of a named dataset:
//! 1. the source gives scenes and candidate patches with their class, from the labels alone
//!    ([`SourceSpec`]: BigEarthNet v1 patch folders with multi-label CORINE metadata; a label
//!    raster over a product, majority class per patch; labelled GeoJSON polygons over a
//!    product, rasterised at pixel centres and reprojected from WGS84 where needed);
//! 2. each candidate is put in the train, val or test split, deterministically for the seed
//!    and stratified by class ([`SplitSpec`]);
//! 3. patches are read scene by scene on the product grid (the finest band's; coarser bands
//!    resampled bilinearly by default, [`Resampling`]), their channels made (bands and the
//!    derived features NDVI, NDWI, NDBI, [`features`]), and written raw (f32, not
//!    normalised) into shards of each split, while the per-channel mean, std, min and max
//!    of the **train split only** are accumulated;
//! 4. the manifest is written and the staging folder renamed to `v<N>` in one step: a crash
//!    or an error leaves no half dataset (at most a hidden `.staging-*` folder, which
//!    readers ignore).
//!
//! [`Dataset`] opens a version, checks every shard's header against the manifest, and reads
//! shards ([`Dataset::read_shard`], [`Dataset::iter_shards`]) or a whole split
//! ([`Dataset::read_split`]); the trainer normalises with [`Manifest::stats`].
//!
//! Layout of a dataset root:
//! ```text
//! <root>/<name>/v1/manifest.json            name, version, created, source, channels,
//!                                           patch size, classes, class counts per split,
//!                                           train statistics, shards, split seed
//! <root>/<name>/v1/train-00000.safetensors  x: F32 [N, C, P, P], y: I64 [N],
//!                                           y_multi: U8 [N, K] (multi-label sources)
//! <root>/<name>/v1/val-00000.safetensors
//! <root>/<name>/v1/test-00000.safetensors
//! <root>/<name>/v2/...
//! ```
//!
//! Modules: [`features`] (channels and derived indices), [`labels`] (class mappings,
//! majority labels), [`split`] (seeded stratified splits, statistics), [`store`] (manifest,
//! atomic writing, the reader), and private ones for resampled grid reads, GeoJSON polygons
//! and the sources.
//!
//! What it is not: no HTTP, no async, no catalog or artifact-store access (the backend
//! finds products and roots, and runs builds as worker jobs); no augmentation, no temporal
//! stacks, no spatial blocking of splits (overlapping patches of one scene may fall in
//! different splits: use stride >= patch size where that matters), no deletion of versions.

pub mod features;
mod grid;
pub mod labels;
mod polygons;
mod sources;
pub mod split;
pub mod store;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use features::{ChannelPlan, FEATURES, Feature, normalized_difference};
pub use grid::{BandFile, GridReader, Resampling, WindowData};
pub use labels::{ClassDef, ClassMapping, MAX_CLASSES};
pub use split::{ChannelStats, Split};
pub use store::{
    Dataset, FORMAT, Manifest, Sample, ShardData, ShardInfo, Skipped, SplitSummary, list_datasets,
    list_versions, valid_name,
};

use self::split::Accumulator;
use self::store::{PendingSample, ShardLayout, Staging};
use crate::{RasterError, Window};

/// Largest patch side accepted, in grid pixels.
pub const MAX_PATCH_SIZE: u32 = 1024;

/// Default target size of one shard's `x` tensor: 64 MiB.
pub const DEFAULT_SHARD_BYTES: usize = 64 << 20;

/// A local imagery product: a folder or file that [`crate::product::scan`] reads, and which
/// of its products to use when it holds several (the Slovenia folder holds one per date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imagery {
    /// The product folder or GeoTIFF.
    pub path: PathBuf,
    /// The product id, when the path holds more than one product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

impl Imagery {
    /// The only product found at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Imagery {
        Imagery {
            path: path.into(),
            product: None,
        }
    }
}

/// Where the labelled patches come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// BigEarthNet v1: `dir` holds one folder per patch, each with one GeoTIFF per band and a
    /// `*_labels_metadata.json` whose `labels` are CORINE class names (Sentinel-2 folders
    /// have bands B01-B12 and B8A; Sentinel-1 folders VV and VH in dB). Each patch gets the
    /// first class of the mapping among its labels, and its multi-hot vector (`y_multi`).
    #[serde(rename = "bigearthnet")]
    BigEarthNet {
        /// The folder of patch folders (e.g. `.../v1_geotiff/S2`).
        dir: PathBuf,
        /// Patch folder names to use; empty: all of them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        patches: Vec<String>,
    },
    /// A single-band label raster (class values, e.g. Slovenia `LULC.tif`) over a product.
    LabelRaster {
        /// The label GeoTIFF.
        labels: PathBuf,
        /// The imagery.
        imagery: Imagery,
    },
    /// Labelled polygons (a GeoJSON FeatureCollection) over a product.
    Polygons {
        /// The GeoJSON file.
        geojson: PathBuf,
        /// The feature property holding the label (e.g. `cid`).
        property: String,
        /// The imagery.
        imagery: Imagery,
    },
}

/// Train / val / test fractions (summing to 1, train > 0) and the seed of the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Fraction of each class's patches in the train split.
    pub train: f64,
    /// Fraction in the validation split.
    pub val: f64,
    /// Fraction in the test split.
    pub test: f64,
    /// Seed of the shuffles: the same seed and inputs give the same split.
    pub seed: u64,
    /// Cut each class by the fractions (true), or all patches together.
    #[serde(default = "yes")]
    pub stratified: bool,
}

fn yes() -> bool {
    true
}

impl Default for SplitSpec {
    /// 70 / 15 / 15, seed 0, stratified.
    fn default() -> Self {
        SplitSpec {
            train: 0.7,
            val: 0.15,
            test: 0.15,
            seed: 0,
            stratified: true,
        }
    }
}

fn default_min_labelled() -> f32 {
    0.5
}

/// Everything a dataset build needs. Serialisable, so a worker job can carry it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// Dataset name: the folder under the root (1-64 of `A-Z a-z 0-9 . _ -`).
    pub name: String,
    /// The labelled source.
    pub source: SourceSpec,
    /// Channels in order: band names of the source and derived features (see [`FEATURES`]).
    pub channels: Vec<String>,
    /// Classes in index order and the source labels they take.
    pub classes: ClassMapping,
    /// Patch side P in grid pixels (1..=[`MAX_PATCH_SIZE`]).
    pub patch_size: u32,
    /// Step between patch origins in grid pixels (>= 1); for polygons, the lattice of
    /// labelled centre pixels.
    pub stride: u32,
    /// How bands coarser than the grid are brought onto it.
    #[serde(default)]
    pub resampling: Resampling,
    /// Least fraction (0..=1) of a patch's pixels that must carry a class of the mapping
    /// (label rasters and polygons; BigEarthNet patches are labelled whole).
    #[serde(default = "default_min_labelled")]
    pub min_labelled_fraction: f32,
    /// Split fractions and seed.
    #[serde(default)]
    pub split: SplitSpec,
    /// Samples per shard; default: as many as make about [`DEFAULT_SHARD_BYTES`] of `x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_samples: Option<u32>,
    /// Skip patches touching a nodata value of an input band (the bands' declared nodata,
    /// and [`DatasetSpec::nodata`]).
    #[serde(default = "yes")]
    pub skip_nodata: bool,
    /// A value that also marks missing data in every input band, for products that do not
    /// declare theirs (Sentinel-2 DNs use 0 outside the swath without a nodata tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodata: Option<f64>,
}

impl DatasetSpec {
    /// A spec with the defaults: stride = patch size, bilinear, half the pixels labelled,
    /// 70/15/15 stratified split with seed 0, default shard size, nodata patches skipped.
    pub fn new(
        name: &str,
        source: SourceSpec,
        channels: &[&str],
        classes: ClassMapping,
        patch_size: u32,
    ) -> DatasetSpec {
        DatasetSpec {
            name: name.to_string(),
            source,
            channels: channels.iter().map(|c| c.to_string()).collect(),
            classes,
            patch_size,
            stride: patch_size,
            resampling: Resampling::default(),
            min_labelled_fraction: default_min_labelled(),
            split: SplitSpec::default(),
            shard_samples: None,
            skip_nodata: true,
            nodata: None,
        }
    }

    /// Checks the options that need no file: name, patch size, stride, fractions, labelled
    /// fraction, shard size, class mapping. Errors name the option
    /// ([`RasterError::DatasetOption`]).
    pub fn validate(&self) -> Result<(), RasterError> {
        let bad = |option: &'static str, reason: String| {
            Err(RasterError::DatasetOption { option, reason })
        };
        if !valid_name(&self.name) {
            return bad(
                "name",
                format!(
                    "'{}' is not 1-64 of A-Z a-z 0-9 . _ - (not starting with .)",
                    self.name
                ),
            );
        }
        if self.patch_size == 0 || self.patch_size > MAX_PATCH_SIZE {
            return bad(
                "patch_size",
                format!("{} is not between 1 and {MAX_PATCH_SIZE}", self.patch_size),
            );
        }
        if self.stride == 0 {
            return bad("stride", "must be at least 1".into());
        }
        let s = &self.split;
        for (name, f) in [
            ("split.train", s.train),
            ("split.val", s.val),
            ("split.test", s.test),
        ] {
            if !f.is_finite() || !(0.0..=1.0).contains(&f) {
                return bad(name, format!("{f} is not a fraction between 0 and 1"));
            }
        }
        let sum = s.train + s.val + s.test;
        if (sum - 1.0).abs() > 1e-6 {
            return bad(
                "split",
                format!(
                    "fractions {} + {} + {} sum to {sum}, not 1",
                    s.train, s.val, s.test
                ),
            );
        }
        if s.train <= 0.0 {
            return bad(
                "split.train",
                "must be above 0: the statistics come from the train split".into(),
            );
        }
        let m = self.min_labelled_fraction;
        if !m.is_finite() || !(0.0..=1.0).contains(&m) {
            return bad(
                "min_labelled_fraction",
                format!("{m} is not a fraction between 0 and 1"),
            );
        }
        if self.shard_samples == Some(0) {
            return bad("shard_samples", "must be at least 1".into());
        }
        self.classes.validate()
    }
}

/// How far a build is: candidate patches handled (written, or skipped for nodata) out of all
/// the labelled candidates the source gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Patches handled.
    pub done: u64,
    /// All patches to handle.
    pub total: u64,
}

/// Builds the next version of dataset `spec.name` under `root` and opens it.
///
/// `progress` is called at the start, after each block of patches read and at the end;
/// returning [`ControlFlow::Break`] stops the build with [`RasterError::Cancelled`] and
/// removes what it had written. Errors: [`RasterError::DatasetOption`] for bad options,
/// [`RasterError::UnknownChannel`] / [`RasterError::FeatureInputMissing`] for channels,
/// [`RasterError::NoLabelledPatches`] when no patch (or no train patch) is left, and file
/// errors of the source.
pub fn build(
    root: &Path,
    spec: &DatasetSpec,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Dataset, RasterError> {
    spec.validate()?;
    let gathered = sources::gather(spec)?;
    let source_name = gathered.description.clone();
    let Some(first) = gathered.scenes.first() else {
        return Err(RasterError::NoLabelledPatches {
            source_name,
            detail: skipped_detail(&gathered.skipped, 0),
        });
    };
    let bands: Vec<String> = first
        .product
        .bands
        .iter()
        .map(|b| b.band.name.clone())
        .collect();
    let plan = ChannelPlan::resolve(&spec.channels, &bands)?;
    let classes: Vec<u8> = gathered
        .scenes
        .iter()
        .flat_map(|s| s.candidates.iter().map(|c| c.class))
        .collect();
    let total = classes.len() as u64;
    if total == 0 {
        return Err(RasterError::NoLabelledPatches {
            source_name,
            detail: skipped_detail(&gathered.skipped, 0),
        });
    }
    let s = &spec.split;
    let splits = split::assign(
        &classes,
        spec.classes.len(),
        [s.train, s.val, s.test],
        s.seed,
        s.stratified,
    );

    let p = spec.patch_size as usize;
    let pp = p * p;
    let channels = plan.channels.len();
    let shard_samples = spec
        .shard_samples
        .map(|n| n as usize)
        .unwrap_or_else(|| (DEFAULT_SHARD_BYTES / (channels * pp * 4)).max(1));
    let mut staging = Staging::create(
        root,
        &spec.name,
        ShardLayout {
            channels,
            patch: p,
            classes: spec.classes.len(),
            multi_label: gathered.multi_label,
            shard_samples,
            seed: s.seed,
        },
    )?;
    let mut stats = vec![Accumulator::default(); channels];
    let mut skipped = gathered.skipped.clone();
    let mut done = 0u64;
    let mut next = 0usize;
    let check =
        |progress: &mut dyn FnMut(Progress) -> ControlFlow<()>, done| match progress(Progress {
            done,
            total,
        }) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(RasterError::Cancelled),
        };
    check(progress, 0)?;
    let mut inputs: Vec<Vec<f32>> = vec![vec![0.0; pp]; plan.inputs.len()];
    for scene in &gathered.scenes {
        let reader =
            grid::GridReader::open(&scene.product, &plan.inputs, spec.resampling, spec.nodata)?;
        for block in blocks(&scene.candidates, spec.patch_size) {
            let window = block_window(block, spec.patch_size);
            let data = reader.read(window)?;
            let ww = window.width as usize;
            for cand in block {
                let split = splits[next];
                next += 1;
                done += 1;
                let (ox, oy) = ((cand.x - window.x) as usize, (cand.y - window.y) as usize);
                let touches_nodata = data.nodata.as_ref().is_some_and(|mask| {
                    (0..p).any(|r| mask[(oy + r) * ww + ox..(oy + r) * ww + ox + p].contains(&true))
                });
                if spec.skip_nodata && touches_nodata {
                    skipped.nodata += 1;
                    continue;
                }
                for (plane, input) in data.planes.iter().zip(inputs.iter_mut()) {
                    for r in 0..p {
                        let src = (oy + r) * ww + ox;
                        input[r * p..(r + 1) * p].copy_from_slice(&plane[src..src + p]);
                    }
                }
                let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                let mut x = vec![0f32; channels * pp];
                plan.apply(&refs, pp, &mut x);
                if split == Split::Train {
                    for (c, acc) in stats.iter_mut().enumerate() {
                        acc.push_all(&x[c * pp..(c + 1) * pp]);
                    }
                }
                staging.push(
                    split,
                    PendingSample {
                        x,
                        y: cand.class,
                        multi: scene.multi.clone(),
                        origin: format!("{}@{},{}", scene.name, cand.x, cand.y),
                    },
                )?;
            }
            check(progress, done)?;
        }
    }
    if staging.samples(Split::Train) == 0 {
        return Err(RasterError::NoLabelledPatches {
            source_name,
            detail: format!(
                "the train split got no patch ({})",
                skipped_detail(&skipped, total)
            ),
        });
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let manifest = Manifest {
        format: FORMAT.to_string(),
        name: spec.name.clone(),
        version: 0,
        created: store::rfc3339(created),
        source: spec.source.clone(),
        source_description: source_name,
        channels: plan.channels.clone(),
        patch_size: spec.patch_size,
        stride: spec.stride,
        resampling: spec.resampling,
        min_labelled_fraction: spec.min_labelled_fraction,
        classes: spec.classes.names(),
        class_mapping: spec.classes.clone(),
        multi_label: gathered.multi_label,
        split: spec.split,
        splits: Default::default(),
        stats: stats
            .iter()
            .zip(&plan.channels)
            .map(|(a, c)| a.finish(c))
            .collect(),
        shards: Vec::new(),
        skipped,
    };
    let (version, dir) = staging.commit(manifest)?;
    tracing::info!(name = %spec.name, version, dir = %dir.display(), samples = total, "dataset built");
    Dataset::open_dir(&dir)
}

fn skipped_detail(s: &Skipped, candidates: u64) -> String {
    format!(
        "{candidates} labelled patches; skipped: {} without a mapped label, {} with too few labelled pixels, {} touching nodata",
        s.unmapped, s.too_few_labelled, s.nodata
    )
}

/// Rows of candidates (sorted by y) read together: those starting within
/// `max(256, patch)` rows of the first.
fn blocks(candidates: &[sources::Candidate], patch: u32) -> Vec<&[sources::Candidate]> {
    let rows = patch.max(256);
    let mut out = Vec::new();
    let mut start = 0;
    while start < candidates.len() {
        let y0 = candidates[start].y;
        let mut end = start + 1;
        while end < candidates.len() && candidates[end].y < y0 + rows {
            end += 1;
        }
        out.push(&candidates[start..end]);
        start = end;
    }
    out
}

/// The grid window covering every patch of a block.
fn block_window(block: &[sources::Candidate], patch: u32) -> Window {
    let x0 = block.iter().map(|c| c.x).min().unwrap_or(0);
    let x1 = block.iter().map(|c| c.x).max().unwrap_or(0) + patch;
    let y0 = block.iter().map(|c| c.y).min().unwrap_or(0);
    let y1 = block.iter().map(|c| c.y).max().unwrap_or(0) + patch;
    Window {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

#[cfg(test)]
mod tests;
