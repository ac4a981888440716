//! The on-disk form of a dataset version: `manifest.json` and safetensors shards.
//!
//! What it is: [`Manifest`] (the JSON the API lists and the trainer reads), the shard writer
//! behind [`super::build`] that stages a version in a hidden temporary folder and renames it
//! into place, and [`Dataset`], the reader: it opens a version, checks every shard's header
//! against the manifest, and reads shards or iterates samples.
//!
//! Shard tensors (little-endian, C order): `x` F32 `[N, C, P, P]`, raw values (not
//! normalised); `y` I64 `[N]`, the class index; `y_multi` U8 `[N, K]`, the multi-hot labels,
//! only for multi-label sources. The safetensors `__metadata__` holds `split` and `origins`
//! (a JSON array naming where each sample was cut: `<scene>@<x>,<y>` on the scene's grid).
//!
//! What it is not: no compression, no memory mapping (a shard is read whole), no deletion
//! of old versions.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorInfo;
use safetensors::{Dtype as StDtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::grid::Resampling;
use super::labels::ClassMapping;
use super::split::{ChannelStats, Split, SplitMix64};
use super::{SourceSpec, SplitSpec};
use crate::RasterError;

/// The `format` of manifests this crate writes and reads.
pub const FORMAT: &str = "albedo-dataset/1";

/// The manifest's file name inside a version folder.
pub const MANIFEST: &str = "manifest.json";

/// Samples and class counts of one split.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Samples in the split.
    pub samples: u64,
    /// Samples per class, in class order.
    pub class_counts: Vec<u64>,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the version folder.
    pub file: String,
    /// The split its samples belong to.
    pub split: Split,
    /// Samples in it.
    pub samples: u64,
}

/// Candidate patches that were not kept, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Patches whose source labels the class mapping does not take (multi-label sources).
    pub unmapped: u64,
    /// Patches with fewer labelled pixels than `min_labelled_fraction` asks.
    pub too_few_labelled: u64,
    /// Patches touching a nodata pixel of an input band (with `skip_nodata`).
    pub nodata: u64,
}

/// Everything about one dataset version; `manifest.json` in its folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Dataset name (the folder under the root).
    pub name: String,
    /// Version number (the `v<N>` folder), from 1.
    pub version: u32,
    /// When it was built, RFC 3339 UTC.
    pub created: String,
    /// The source, as given to the builder.
    pub source: SourceSpec,
    /// The source in words (scenes used, label file, product id).
    pub source_description: String,
    /// Channel names in tensor order (bands, then derived features where requested).
    pub channels: Vec<String>,
    /// Patch side P in grid pixels.
    pub patch_size: u32,
    /// Stride between patch origins in grid pixels.
    pub stride: u32,
    /// How coarser bands were brought onto the grid.
    pub resampling: Resampling,
    /// Minimum fraction of labelled pixels a patch needed.
    pub min_labelled_fraction: f32,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// The mapping from source labels to classes.
    pub class_mapping: ClassMapping,
    /// Whether shards hold `y_multi` (multi-hot labels).
    pub multi_label: bool,
    /// Split fractions, seed and stratification.
    pub split: SplitSpec,
    /// Samples and class counts per split.
    pub splits: BTreeMap<Split, SplitSummary>,
    /// Per-channel statistics of the raw values of the train split only.
    pub stats: Vec<ChannelStats>,
    /// Shards in reading order (train, then val, then test).
    pub shards: Vec<ShardInfo>,
    /// Candidates not kept.
    pub skipped: Skipped,
}

impl Manifest {
    /// Summary of one split (empty when absent).
    pub fn split_summary(&self, split: Split) -> SplitSummary {
        self.splits.get(&split).cloned().unwrap_or_default()
    }

    /// Total samples over all splits.
    pub fn total_samples(&self) -> u64 {
        self.shards.iter().map(|s| s.samples).sum()
    }

    /// Values per sample in `x`: channels x P x P.
    pub fn sample_len(&self) -> usize {
        self.channels.len() * self.patch_size as usize * self.patch_size as usize
    }

    /// Standardises raw values in place with the train statistics: `(x - mean) / std` per
    /// channel (`std` 0 counts as 1). `x` holds whole samples, `[N, C, P, P]` or `[C, P, P]`.
    pub fn normalize(&self, x: &mut [f32]) {
        let pp = self.patch_size as usize * self.patch_size as usize;
        if pp == 0 {
            return;
        }
        for (i, plane) in x.chunks_mut(pp).enumerate() {
            let st = &self.stats[i % self.stats.len()];
            let std = if st.std > 0.0 { st.std } else { 1.0 };
            for v in plane {
                *v = ((f64::from(*v) - st.mean) / std) as f32;
            }
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RasterError + '_ {
    move |source| RasterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, what: impl Into<String>) -> RasterError {
    RasterError::BadDataset {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// RFC 3339 UTC of a time since the Unix epoch (Hinnant's civil-from-days).
pub(crate) fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Whether `name` is a usable dataset name: 1-64 of `A-Z a-z 0-9 . _ -`, not starting
/// with `.` (so it is one path component and never a hidden staging folder).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The version numbers of dataset `name` under `root` (folders `v<N>` holding a manifest),
/// ascending; empty when there are none.
pub fn list_versions(root: &Path, name: &str) -> Result<Vec<u32>, RasterError> {
    if !valid_name(name) {
        return Err(RasterError::DatasetOption {
            option: "name",
            reason: format!("'{name}' is not 1-64 of A-Z a-z 0-9 . _ - (not starting with .)"),
        });
    }
    let dir = root.join(name);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(&dir))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix('v'))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if entry.path().join(MANIFEST).is_file() {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The dataset names under `root` that have at least one version, sorted.
pub fn list_datasets(root: &Path) -> Result<Vec<String>, RasterError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(root)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(root))?;
        if let Some(name) = entry.file_name().to_str()
            && valid_name(name)
            && !list_versions(root, name)?.is_empty()
        {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One sample on its way to a shard.
#[derive(Debug)]
pub(crate) struct PendingSample {
    pub x: Vec<f32>,
    pub y: u8,
    pub multi: Option<Vec<u8>>,
    pub origin: String,
}

/// The shape of the shards a [`Staging`] writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardLayout {
    /// Channels C.
    pub channels: usize,
    /// Patch side P.
    pub patch: usize,
    /// Classes K.
    pub classes: usize,
    /// Whether `y_multi` is written.
    pub multi_label: bool,
    /// Samples per shard.
    pub shard_samples: usize,
    /// Seed of the in-shard shuffle.
    pub seed: u64,
}

/// Writes shards of the three splits into a staging folder, then renames it into place.
#[derive(Debug)]
pub(crate) struct Staging {
    root_dir: PathBuf,
    tmp: PathBuf,
    channels: usize,
    patch: usize,
    classes: usize,
    multi_label: bool,
    shard_samples: usize,
    seed: u64,
    pending: [Vec<PendingSample>; 3],
    written: [u64; 3],
    pub shards: Vec<ShardInfo>,
    pub counts: [Vec<u64>; 3],
    done: bool,
}

impl Staging {
    /// Creates `<root>/<name>/.staging-<pid>-<nanos>/`.
    pub fn create(root: &Path, name: &str, layout: ShardLayout) -> Result<Staging, RasterError> {
        let ShardLayout {
            channels,
            patch,
            classes,
            multi_label,
            shard_samples,
            seed,
        } = layout;
        let root_dir = root.join(name);
        std::fs::create_dir_all(&root_dir).map_err(io_err(&root_dir))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = root_dir.join(format!(".staging-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        Ok(Staging {
            root_dir,
            tmp,
            channels,
            patch,
            classes,
            multi_label,
            shard_samples: shard_samples.max(1),
            seed,
            pending: [Vec::new(), Vec::new(), Vec::new()],
            written: [0; 3],
            shards: Vec::new(),
            counts: [vec![0; classes], vec![0; classes], vec![0; classes]],
            done: false,
        })
    }

    /// Adds a sample to its split, writing a shard when the split has `shard_samples`.
    pub fn push(&mut self, split: Split, sample: PendingSample) -> Result<(), RasterError> {
        let s = split.index();
        self.counts[s][usize::from(sample.y)] += 1;
        self.pending[s].push(sample);
        if self.pending[s].len() >= self.shard_samples {
            self.flush(split)?;
        }
        Ok(())
    }

    /// Writes the pending samples of `split` as one shard, in a seeded shuffled order (the
    /// samples arrive in scene order).
    fn flush(&mut self, split: Split) -> Result<(), RasterError> {
        let s = split.index();
        let mut batch = std::mem::take(&mut self.pending[s]);
        if batch.is_empty() {
            return Ok(());
        }
        let index = self.shards.iter().filter(|sh| sh.split == split).count();
        let mut rng =
            SplitMix64::new(self.seed ^ (0x5EED_0000 + (s as u64) * 0x1_0000_0000 + index as u64));
        rng.shuffle(&mut batch);
        let n = batch.len();
        let file = format!("{}-{index:05}.safetensors", split.as_str());
        let path = self.tmp.join(&file);
        let mut x = Vec::with_capacity(n * self.channels * self.patch * self.patch);
        let mut y = Vec::with_capacity(n);
        let mut multi = Vec::new();
        let mut origins = Vec::with_capacity(n);
        for sample in batch {
            x.extend_from_slice(&sample.x);
            y.push(i64::from(sample.y));
            if self.multi_label {
                multi.extend(sample.multi.unwrap_or_else(|| vec![0; self.classes]));
            }
            origins.push(sample.origin);
        }
        let x_bytes = f32_bytes(&x);
        let y_bytes = i64_bytes(&y);
        let st = |e: safetensors::SafeTensorError| bad(&path, format!("safetensors: {e}"));
        let mut tensors = vec![
            (
                "x".to_string(),
                safetensors::tensor::TensorView::new(
                    StDtype::F32,
                    vec![n, self.channels, self.patch, self.patch],
                    &x_bytes,
                )
                .map_err(st)?,
            ),
            (
                "y".to_string(),
                safetensors::tensor::TensorView::new(StDtype::I64, vec![n], &y_bytes)
                    .map_err(st)?,
            ),
        ];
        if self.multi_label {
            tensors.push((
                "y_multi".to_string(),
                safetensors::tensor::TensorView::new(StDtype::U8, vec![n, self.classes], &multi)
                    .map_err(st)?,
            ));
        }
        let mut meta = HashMap::new();
        meta.insert("split".to_string(), split.as_str().to_string());
        meta.insert(
            "origins".to_string(),
            serde_json::to_string(&origins).unwrap_or_default(),
        );
        let bytes = safetensors::serialize(tensors, Some(meta)).map_err(st)?;
        write_synced(&path, &bytes)?;
        self.written[s] += n as u64;
        self.shards.push(ShardInfo {
            file,
            split,
            samples: n as u64,
        });
        Ok(())
    }

    /// Samples written or pending per split.
    pub fn samples(&self, split: Split) -> u64 {
        self.written[split.index()] + self.pending[split.index()].len() as u64
    }

    /// Writes the last shards and the manifest (with the version filled in) and renames the
    /// staging folder to the next free `v<N>`.
    pub fn commit(mut self, mut manifest: Manifest) -> Result<(u32, PathBuf), RasterError> {
        for split in Split::ALL {
            self.flush(split)?;
        }
        self.shards.sort_by_key(|s| (s.split, s.file.clone()));
        manifest.shards = self.shards.clone();
        for split in Split::ALL {
            manifest.splits.insert(
                split,
                SplitSummary {
                    samples: self.written[split.index()],
                    class_counts: self.counts[split.index()].clone(),
                },
            );
        }
        let name = self
            .root_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let first = list_versions(self.root_dir.parent().unwrap_or(Path::new(".")), &name)?
            .last()
            .copied()
            .unwrap_or(0)
            + 1;
        // Another builder may take the same number between the listing and the rename; a
        // rename onto an existing non-empty folder fails, and the next number is tried.
        for version in first..first.saturating_add(1000) {
            manifest.version = version;
            let json = serde_json::to_vec_pretty(&manifest)
                .map_err(|e| bad(&self.tmp, format!("manifest: {e}")))?;
            write_synced(&self.tmp.join(MANIFEST), &json)?;
            let target = self.root_dir.join(format!("v{version}"));
            if !target.exists() {
                match std::fs::rename(&self.tmp, &target) {
                    Ok(()) => {
                        self.done = true;
                        if let Ok(d) = std::fs::File::open(&self.root_dir) {
                            let _ = d.sync_all();
                        }
                        return Ok((version, target));
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::AlreadyExists
                                | std::io::ErrorKind::DirectoryNotEmpty
                        ) => {}
                    Err(e) => return Err(io_err(&target)(e)),
                }
            }
        }
        Err(bad(&self.root_dir, "no free version number"))
    }
}

impl Drop for Staging {
    /// A build that failed or was cancelled leaves nothing behind.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RasterError> {
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// The samples of one shard (or of a whole split), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardData {
    /// Number of samples N.
    pub samples: usize,
    /// Channels C.
    pub channels: usize,
    /// Patch side P.
    pub patch_size: usize,
    /// Raw values, `[N, C, P, P]` in C order.
    pub x: Vec<f32>,
    /// Class index of each sample.
    pub y: Vec<i64>,
    /// Multi-hot labels `[N, K]` (multi-label datasets only).
    pub y_multi: Option<Vec<u8>>,
    /// Where each sample was cut (`<scene>@<x>,<y>`).
    pub origins: Vec<String>,
}

/// One sample, borrowed from a [`ShardData`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// `[C, P, P]` raw values.
    pub x: &'a [f32],
    /// Class index.
    pub y: i64,
    /// Multi-hot labels over the classes (multi-label datasets only).
    pub y_multi: Option<&'a [u8]>,
    /// Where it was cut.
    pub origin: &'a str,
}

impl ShardData {
    /// Sample `i` (panics past the end, as slices do).
    pub fn sample(&self, i: usize) -> Sample<'_> {
        let len = self.channels * self.patch_size * self.patch_size;
        let k = self
            .y_multi
            .as_ref()
            .map(|m| m.len() / self.samples.max(1))
            .unwrap_or(0);
        Sample {
            x: &self.x[i * len..(i + 1) * len],
            y: self.y[i],
            y_multi: self.y_multi.as_ref().map(|m| &m[i * k..(i + 1) * k]),
            origin: self.origins.get(i).map(String::as_str).unwrap_or(""),
        }
    }

    /// The samples in order.
    pub fn iter(&self) -> impl Iterator<Item = Sample<'_>> + '_ {
        (0..self.samples).map(|i| self.sample(i))
    }

    /// Appends another shard's samples (same channels and patch size).
    fn extend(&mut self, other: ShardData) {
        self.samples += other.samples;
        self.x.extend(other.x);
        self.y.extend(other.y);
        if let (Some(m), Some(o)) = (self.y_multi.as_mut(), other.y_multi) {
            m.extend(o);
        }
        self.origins.extend(other.origins);
    }
}

/// An opened dataset version.
#[derive(Debug, Clone)]
pub struct Dataset {
    dir: PathBuf,
    manifest: Manifest,
}

/// A safetensors header: tensors by name, and the `__metadata__` strings.
type Header = (HashMap<String, TensorInfo>, HashMap<String, String>);

/// Reads the safetensors header of a file: its tensors and `__metadata__`, and checks that
/// the file is exactly as long as they say.
fn read_header(path: &Path) -> Result<Header, RasterError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| bad(path, "not a safetensors file (shorter than its header)"))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || n + 8 > file_len {
        return Err(bad(
            path,
            format!("safetensors header of {n} bytes is impossible"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let mut raw: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(path, format!("safetensors header is not JSON: {e}")))?;
    let meta: HashMap<String, String> = match raw.remove("__metadata__") {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| bad(path, format!("safetensors __metadata__: {e}")))?,
        None => HashMap::new(),
    };
    let mut tensors = HashMap::new();
    let mut end = 0usize;
    for (k, v) in raw {
        let info: TensorInfo = serde_json::from_value(v)
            .map_err(|e| bad(path, format!("tensor {k} in the header: {e}")))?;
        end = end.max(info.data_offsets.1);
        tensors.insert(k, info);
    }
    if 8 + n + end as u64 != file_len {
        return Err(bad(
            path,
            format!(
                "file is {file_len} bytes, its header describes {}",
                8 + n + end as u64
            ),
        ));
    }
    Ok((tensors, meta))
}

impl Dataset {
    /// Opens version `version` of dataset `name` under `root`, or its latest version.
    pub fn open(root: &Path, name: &str, version: Option<u32>) -> Result<Dataset, RasterError> {
        let versions = list_versions(root, name)?;
        let v = match version {
            Some(v) if versions.contains(&v) => v,
            None if !versions.is_empty() => versions[versions.len() - 1],
            _ => {
                return Err(RasterError::DatasetNotFound {
                    root: root.to_path_buf(),
                    name: name.to_string(),
                    version,
                });
            }
        };
        Dataset::open_dir(&root.join(name).join(format!("v{v}")))
    }

    /// Opens the version folder `dir` and checks the manifest against every shard's header:
    /// files present, tensor names, dtypes and shapes, sample counts per split.
    pub fn open_dir(dir: &Path) -> Result<Dataset, RasterError> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(&path, format!("manifest.json: {e}")))?;
        if manifest.format != FORMAT {
            return Err(bad(
                &path,
                format!("format '{}', this reader knows '{FORMAT}'", manifest.format),
            ));
        }
        if manifest.classes.len() != manifest.class_mapping.len()
            || manifest.channels.len() != manifest.stats.len()
            || manifest.channels.is_empty()
            || manifest.patch_size == 0
        {
            return Err(bad(
                &path,
                "channels, statistics, classes and class mapping disagree",
            ));
        }
        let ds = Dataset {
            dir: dir.to_path_buf(),
            manifest,
        };
        let mut per_split: HashMap<Split, u64> = HashMap::new();
        for shard in &ds.manifest.shards {
            if shard.file.contains(['/', '\\']) || shard.file.starts_with('.') {
                return Err(bad(
                    &path,
                    format!("shard name '{}' is not a file name", shard.file),
                ));
            }
            let spath = dir.join(&shard.file);
            let (tensors, meta) = read_header(&spath)?;
            ds.check_tensors(&spath, shard.samples as usize, &tensors)?;
            if meta.get("split").map(String::as_str) != Some(shard.split.as_str()) {
                return Err(bad(
                    &spath,
                    format!("shard is not marked as split {}", shard.split),
                ));
            }
            *per_split.entry(shard.split).or_default() += shard.samples;
        }
        for split in Split::ALL {
            let summary = ds.manifest.split_summary(split);
            let in_shards = per_split.get(&split).copied().unwrap_or(0);
            if summary.class_counts.len() != ds.manifest.classes.len() {
                return Err(bad(
                    &path,
                    format!(
                        "split {split} counts {} classes, the manifest has {}",
                        summary.class_counts.len(),
                        ds.manifest.classes.len()
                    ),
                ));
            }
            let counted: u64 = summary.class_counts.iter().sum();
            if summary.samples != in_shards || counted != in_shards {
                return Err(bad(
                    &path,
                    format!(
                        "split {split}: the manifest says {} samples ({counted} by class), the shards hold {in_shards}",
                        summary.samples
                    ),
                ));
            }
        }
        Ok(ds)
    }

    fn check_tensors(
        &self,
        path: &Path,
        n: usize,
        tensors: &HashMap<String, TensorInfo>,
    ) -> Result<(), RasterError> {
        let m = &self.manifest;
        let p = m.patch_size as usize;
        let mut want = vec![
            ("x", StDtype::F32, vec![n, m.channels.len(), p, p]),
            ("y", StDtype::I64, vec![n]),
        ];
        if m.multi_label {
            want.push(("y_multi", StDtype::U8, vec![n, m.classes.len()]));
        }
        for (name, dtype, shape) in &want {
            match tensors.get(*name) {
                Some(t) if t.dtype == *dtype && t.shape == *shape => {}
                Some(t) => {
                    return Err(bad(
                        path,
                        format!(
                            "tensor {name} is {:?} {:?}, the manifest implies {dtype:?} {shape:?}",
                            t.dtype, t.shape
                        ),
                    ));
                }
                None => return Err(bad(path, format!("tensor {name} is missing"))),
            }
        }
        if tensors.len() != want.len() {
            let mut extra: Vec<&String> = tensors
                .keys()
                .filter(|k| !want.iter().any(|(w, _, _)| w == k))
                .collect();
            extra.sort();
            return Err(bad(path, format!("unexpected tensors {extra:?}")));
        }
        Ok(())
    }

    /// The version folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The shards of one split, in order.
    pub fn shards(&self, split: Split) -> Vec<&ShardInfo> {
        self.manifest
            .shards
            .iter()
            .filter(|s| s.split == split)
            .collect()
    }

    /// Reads one shard whole and checks it: tensors as the manifest says, class indices
    /// below the class count, multi-hot values 0 or 1.
    pub fn read_shard(&self, shard: &ShardInfo) -> Result<ShardData, RasterError> {
        let path = self.dir.join(&shard.file);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(&path, format!("not valid safetensors: {e}")))?;
        let n = shard.samples as usize;
        let infos: HashMap<String, TensorInfo> = st
            .tensors()
            .into_iter()
            .map(|(k, v)| {
                let len = v.data().len();
                (
                    k,
                    TensorInfo {
                        dtype: v.dtype(),
                        shape: v.shape().to_vec(),
                        data_offsets: (0, len),
                    },
                )
            })
            .collect();
        self.check_tensors(&path, n, &infos)?;
        let tensor = |name: &str| {
            st.tensor(name)
                .map_err(|e| bad(&path, format!("tensor {name}: {e}")))
        };
        let x: Vec<f32> = tensor("x")?
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let y: Vec<i64> = tensor("y")?
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let k = self.manifest.classes.len() as i64;
        if let Some(bad_y) = y.iter().find(|&&v| v < 0 || v >= k) {
            return Err(bad(
                &path,
                format!("class index {bad_y} is not below the {k} classes"),
            ));
        }
        let y_multi = if self.manifest.multi_label {
            let m = tensor("y_multi")?.data().to_vec();
            if m.iter().any(|&v| v > 1) {
                return Err(bad(&path, "y_multi holds values other than 0 and 1"));
            }
            Some(m)
        } else {
            None
        };
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(&path, format!("not valid safetensors: {e}")))?;
        let origins: Vec<String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("origins"))
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        Ok(ShardData {
            samples: n,
            channels: self.manifest.channels.len(),
            patch_size: self.manifest.patch_size as usize,
            x,
            y,
            y_multi,
            origins,
        })
    }

    /// All samples of one split in shard order (for datasets that fit in memory).
    pub fn read_split(&self, split: Split) -> Result<ShardData, RasterError> {
        let mut all = ShardData {
            samples: 0,
            channels: self.manifest.channels.len(),
            patch_size: self.manifest.patch_size as usize,
            x: Vec::new(),
            y: Vec::new(),
            y_multi: self.manifest.multi_label.then(Vec::new),
            origins: Vec::new(),
        };
        for shard in self.shards(split) {
            all.extend(self.read_shard(shard)?);
        }
        Ok(all)
    }

    /// Iterates the shards of one split, reading each when it is reached (one shard in
    /// memory at a time).
    pub fn iter_shards(
        &self,
        split: Split,
    ) -> impl Iterator<Item = Result<ShardData, RasterError>> + '_ {
        self.shards(split)
            .into_iter()
            .map(move |s| self.read_shard(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        use std::time::Duration;
        assert_eq!(rfc3339(Duration::from_secs(0)), "1970-01-01T00:00:00Z");
        // 2000-02-29T12:34:56Z and 2026-11-24T00:26:31Z (checked with `date -u -d @N`).
        assert_eq!(
            rfc3339(Duration::from_secs(951_827_696)),
            "2000-02-29T12:34:56Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(1_795_479_991)),
            "2026-11-24T00:26:31Z"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("bigearthnet-s2_v1.0"));
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
