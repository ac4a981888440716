//! The classify job: a registered model over a whole product, written as a class raster.
//!
//! What it is: [`classify`] loads the model (`albedo_trainer::EoCnn`: `model.json` names
//! its input channels, class names and patch size P), reads the bands those channels need
//! onto the grid of the finest of them (coarser bands resampled bilinearly, as datasets are
//! built by default), makes the derived channels (NDVI, NDWI, NDBI) and classifies with
//! sliding windows. The grid is cut into blocks of `stride x stride` pixels (stride = P/4,
//! at least 1); each block is classified by the P x P window centred on it, moved inwards
//! at the edges (and, for a grid smaller than P, centred on the grid with its edge pixels
//! repeated), so that every pixel lies in exactly one block and gets a class. A pixel is
//! nodata (255) where some input band is nodata (its declared value) or where every input
//! band is 0 (Sentinel-2's fill outside the swath, which is not always declared); a block
//! of nodata pixels only is not run through the model. Windows go to the model in batches
//! of `batch`, in row-major block order; the model normalises them with its training
//! statistics. Between batches the job reports progress (blocks done of all blocks) and
//! reads its cancel flag. The result is written by `albedo_raster::classmap` (a COG with a
//! palette, class names and mode overviews, through a temporary file of its own beside it).
//!
//! What it is not: no test-time augmentation, no smoothing of block edges, no probability
//! output; on CPU the same inputs give the same raster.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use albedo_raster::Window;
use albedo_raster::classmap::{self, ClassGeoref, NODATA};
use albedo_raster::dataset::{BandFile, ChannelPlan, GridReader, Resampling, WindowData};
use albedo_trainer::{Compute, EoCnn};

/// What a classify job is given (see `albedo_shared::protocol::JobSpec::Classify`).
#[derive(Debug, Clone)]
pub struct ClassifyJob {
    /// Folder of the model (`model.safetensors` + `model.json`).
    pub model_dir: PathBuf,
    /// Band name to file.
    pub bands: BTreeMap<String, String>,
    /// Band name to index inside its file (absent: 0).
    pub band_indices: BTreeMap<String, u16>,
    /// Where to write the class raster.
    pub output: PathBuf,
    /// Windows per inference batch.
    pub batch: u32,
    /// `cpu` or `wgpu`; `None`: the worker's `--device`.
    pub device: Option<String>,
}

/// Blocks of `stride` pixels along one axis of `len` pixels, each with the origin of its
/// window of `patch` pixels (negative or past the end only when `len < patch`).
pub fn blocks(len: u32, patch: u32, stride: u32) -> Vec<(u32, u32, i64)> {
    let (len_i, p, s) = (i64::from(len), i64::from(patch), i64::from(stride.max(1)));
    (0..len.div_ceil(stride.max(1)))
        .map(|b| {
            let start = i64::from(b) * s;
            let end = (start + s).min(len_i);
            let origin = if len_i >= p {
                (start - (p - s) / 2).clamp(0, len_i - p)
            } else {
                -((p - len_i) / 2)
            };
            (start as u32, end as u32, origin)
        })
        .collect()
}

/// The stride for patch size `patch`: a quarter of it, at least 1.
pub fn stride_for(patch: u32) -> u32 {
    (patch / 4).max(1)
}

/// Index of the largest value of each row of `k` (the first on a tie).
fn argmax_rows(probs: &[f32], k: usize) -> Vec<u8> {
    probs
        .chunks(k)
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best as u8
        })
        .collect()
}

/// A strip of full-width grid rows read for a run of block rows.
struct Strip {
    /// First grid row held.
    row0: u32,
    data: WindowData,
}

impl Strip {
    /// Whether grid pixel (x, y) (inside the strip) has no data.
    fn is_nodata(&self, width: u32, x: u32, y: u32) -> bool {
        let at = ((y - self.row0) * width + x) as usize;
        self.data.nodata.as_ref().is_some_and(|m| m[at])
            || self.data.planes.iter().all(|p| p[at] == 0.0)
    }
}

/// Runs a classify job; `progress(done, total)` is called after every batch and may stop
/// the job ([`ControlFlow::Break`]: an error saying it was cancelled, and no file is left).
/// Returns the job's result: `output`, `width`, `height`, `counts` (pixels per class value,
/// as a decimal string, every class listed) and the `classes` names in value order.
pub fn classify(
    job: &ClassifyJob,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<serde_json::Value, String> {
    classify_in_strips(job, STRIP_ROWS, progress)
}

/// Grid rows read at a time (rounded to whole rows of blocks, plus the window overlap).
pub const STRIP_ROWS: u32 = 256;

/// [`classify`], reading the bands in strips of about `strip_rows` grid rows (at least one
/// row of blocks); the result does not depend on it.
pub fn classify_in_strips(
    job: &ClassifyJob,
    strip_rows: u32,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<serde_json::Value, String> {
    let compute: Compute = match &job.device {
        Some(d) => d.parse().map_err(|e| format!("device '{d}': {e}"))?,
        None => crate::trials::eo_cnn::default_device(),
    };
    if job.batch == 0 {
        return Err("batch must be at least 1".into());
    }
    let model = EoCnn::load(&job.model_dir, compute).map_err(|e| e.to_string())?;
    let config = model.config().clone();
    let names: Vec<String> = job.bands.keys().cloned().collect();
    let plan = ChannelPlan::resolve(&config.channels, &names).map_err(|e| e.to_string())?;
    let files: Vec<BandFile> = plan
        .inputs
        .iter()
        .map(|name| BandFile {
            name: name.clone(),
            path: PathBuf::from(&job.bands[name]),
            index: job.band_indices.get(name).copied().unwrap_or(0),
        })
        .collect();
    let (grid, finest) =
        GridReader::open_files(&files, Resampling::Bilinear, None).map_err(|e| e.to_string())?;
    let georef = match albedo_raster::GeoTiff::open(&files[finest].path) {
        Ok(t) => ClassGeoref::of(&t),
        Err(_) => ClassGeoref::default(),
    };
    let classes = classmap::classes_of(&config.classes).map_err(|e| e.to_string())?;
    let (width, height) = grid.size();
    let [channels, patch, _] = model.input_shape();
    let patch_u32 = patch as u32;
    let stride = stride_for(patch_u32);
    let bx = blocks(width, patch_u32, stride);
    let by = blocks(height, patch_u32, stride);
    let total = (bx.len() * by.len()) as u64;
    tracing::info!(
        width,
        height,
        patch,
        stride,
        blocks = total,
        classes = classes.len(),
        "classifying"
    );
    if progress(0, total).is_break() {
        return Err("cancelled".into());
    }
    let started = std::time::Instant::now();
    let mut windows = 0u64;

    let mut out = vec![NODATA; width as usize * height as usize];
    let pp = patch * patch;
    let n_in = plan.inputs.len();
    let batch = job.batch as usize;
    let mut done = 0u64;
    let per_strip = (strip_rows / stride).max(1) as usize;
    let mut inputs = vec![vec![0f32; pp]; n_in];
    let mut x = Vec::with_capacity(batch * channels * pp);
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(batch);
    for (strip_i, block_rows) in by.chunks(per_strip).enumerate() {
        let lo = block_rows
            .iter()
            .map(|b| b.2.max(0))
            .min()
            .unwrap_or(0)
            .min(i64::from(height) - 1) as u32;
        let hi = block_rows
            .iter()
            .map(|b| (b.2 + patch as i64).min(i64::from(height)))
            .max()
            .unwrap_or(1) as u32;
        let strip = Strip {
            row0: lo,
            data: grid
                .read(Window {
                    x: 0,
                    y: lo,
                    width,
                    height: hi - lo,
                })
                .map_err(|e| e.to_string())?,
        };
        let run = |x: &mut Vec<f32>,
                   pending: &mut Vec<(usize, usize)>,
                   out: &mut Vec<u8>|
         -> Result<(), String> {
            if pending.is_empty() {
                return Ok(());
            }
            let probs = model
                .predict_proba(x, pending.len())
                .map_err(|e| e.to_string())?;
            for (&(ix, iy), class) in pending
                .iter()
                .zip(argmax_rows(&probs, config.classes.len()))
            {
                let (x0, x1, _) = bx[ix];
                let (y0, y1, _) = by[iy];
                for y in y0..y1 {
                    for xx in x0..x1 {
                        if !strip.is_nodata(width, xx, y) {
                            out[(y * width + xx) as usize] = class;
                        }
                    }
                }
            }
            x.clear();
            pending.clear();
            Ok(())
        };
        for (k, &(y0, y1, oy)) in block_rows.iter().enumerate() {
            let iy = strip_i * per_strip + k;
            for (ix, &(x0, x1, ox)) in bx.iter().enumerate() {
                done += 1;
                let any_valid = (y0..y1).any(|y| (x0..x1).any(|xx| !strip.is_nodata(width, xx, y)));
                if !any_valid {
                    continue;
                }
                // The window's pixels, clamped into the strip (edge pixels repeated); rows
                // of a window inside the grid are copied whole.
                let inside = ox >= 0 && ox + patch as i64 <= i64::from(width);
                for (b, plane) in inputs.iter_mut().enumerate() {
                    let src = &strip.data.planes[b];
                    for r in 0..patch {
                        let gy = (oy + r as i64).clamp(i64::from(lo), i64::from(hi) - 1) as u32;
                        let row = ((gy - strip.row0) * width) as usize;
                        let dst = &mut plane[r * patch..(r + 1) * patch];
                        if inside {
                            let at = row + ox as usize;
                            dst.copy_from_slice(&src[at..at + patch]);
                        } else {
                            for (c, d) in dst.iter_mut().enumerate() {
                                let gx = (ox + c as i64).clamp(0, i64::from(width) - 1) as usize;
                                *d = src[row + gx];
                            }
                        }
                    }
                }
                let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                let start = x.len();
                x.resize(start + channels * pp, 0.0);
                plan.apply(&refs, pp, &mut x[start..]);
                pending.push((ix, iy));
                windows += 1;
                if pending.len() == batch {
                    run(&mut x, &mut pending, &mut out)?;
                    if progress(done, total).is_break() {
                        return Err("cancelled".into());
                    }
                }
            }
        }
        run(&mut x, &mut pending, &mut out)?;
        if progress(done, total).is_break() {
            return Err("cancelled".into());
        }
    }

    let mut counts: BTreeMap<String, u64> =
        classes.iter().map(|c| (c.value.to_string(), 0)).collect();
    let mut tally: HashMap<u8, u64> = HashMap::new();
    for &v in &out {
        if v != NODATA {
            *tally.entry(v).or_default() += 1;
        }
    }
    for (v, n) in tally {
        counts.insert(v.to_string(), n);
    }
    let extra: BTreeMap<String, String> = [
        ("albedo:channels".to_string(), config.channels.join(",")),
        ("albedo:patch_size".to_string(), patch.to_string()),
        ("albedo:stride".to_string(), stride.to_string()),
    ]
    .into();
    write(&job.output, width, height, &out, &georef, &classes, &extra)?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        windows,
        secs,
        windows_per_sec = windows as f64 / secs.max(1e-9),
        "classified"
    );
    Ok(serde_json::json!({
        "output": job.output.display().to_string(),
        "width": width,
        "height": height,
        "counts": counts,
        "classes": config.classes,
    }))
}

fn write(
    path: &Path,
    width: u32,
    height: u32,
    data: &[u8],
    georef: &ClassGeoref,
    classes: &[classmap::ClassEntry],
    extra: &BTreeMap<String, String>,
) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    classmap::write_class_cog(path, width, height, data, georef, classes, extra)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_pixel_once_with_windows_inside() {
        for (len, patch) in [
            (100u32, 8u32),
            (1536, 120),
            (37, 16),
            (5, 8),
            (1, 1),
            (64, 64),
        ] {
            let s = stride_for(patch);
            let b = blocks(len, patch, s);
            let mut covered = vec![0u32; len as usize];
            for &(start, end, origin) in &b {
                assert!(start < end && end - start <= s);
                for p in start..end {
                    covered[p as usize] += 1;
                    if len >= patch {
                        // The block lies inside its window, which lies inside the grid.
                        assert!(origin >= 0 && origin + i64::from(patch) <= i64::from(len));
                        assert!(i64::from(p) >= origin && i64::from(p) < origin + i64::from(patch));
                    }
                }
            }
            assert!(
                covered.iter().all(|&c| c == 1),
                "{len} {patch}: {covered:?}"
            );
        }
        // Interior blocks are centred in their window.
        let b = blocks(100, 8, 2);
        assert_eq!(b[10], (20, 22, 17));
        assert_eq!(b[0], (0, 2, 0));
        assert_eq!(b[49], (98, 100, 92));
        assert_eq!(blocks(5, 8, 2)[0].2, -1);
    }

    /// A tiny model (BigEarthNet, B02 B03 B04 NDVI, 30x30 patches, one epoch) under `root`.
    fn tiny_model(root: &Path) -> PathBuf {
        use albedo_raster::dataset::{self, ClassMapping, DatasetSpec, SourceSpec};
        // Forest, arable, pastures.
        let mut classes = ClassMapping::bigearthnet_sample();
        classes.classes.truncate(3);
        let spec = DatasetSpec::new(
            "ben",
            SourceSpec::BigEarthNet {
                dir: data().join("labeled/bigearthnet/v1_geotiff/S2"),
                patches: vec![],
            },
            &["B02", "B03", "B04", "NDVI"],
            classes,
            30,
        );
        let ds = dataset::build(&root.join("datasets"), &spec, &mut |_| {
            ControlFlow::Continue(())
        })
        .expect("dataset");
        let cfg = albedo_trainer::TrainConfig {
            width: 4,
            depth: 1,
            epochs: 1,
            threads: Some(1),
            seed: 3,
            ..Default::default()
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let out =
            albedo_trainer::train(&ds, &cfg, Compute::Cpu, &stop, &mut |_| {}).expect("train");
        let dir = root.join("model");
        out.model.save(&dir).expect("save");
        dir
    }

    fn data() -> PathBuf {
        std::env::var_os("ALBEDO_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/shared/data"))
    }

    #[test]
    fn a_model_classifies_a_stacked_product_deterministically() {
        let root =
            std::env::temp_dir().join(format!("albedo-worker-classify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let model_dir = tiny_model(&root);
        // T19UDP at 900 m: a 13-band stack (B01 B02 B03 B04 B05 B06 B07 B08 ...) with a
        // no-data wedge of zeros.
        let stack = data().join("s2/T19UDP_20170729_L1C_riotiler/stack13_122px_900m.tif");
        let s = stack.display().to_string();
        let job = |output: &str, batch: u32| ClassifyJob {
            model_dir: model_dir.clone(),
            bands: ["B02", "B03", "B04", "B08"]
                .iter()
                .map(|b| (b.to_string(), s.clone()))
                .collect(),
            band_indices: [("B02", 1), ("B03", 2), ("B04", 3), ("B08", 7)]
                .iter()
                .map(|(b, i)| (b.to_string(), *i))
                .collect(),
            output: root.join(output),
            batch,
            device: None,
        };
        let mut reports = Vec::new();
        let a = classify(&job("a.tif", 16), &mut |d, t| {
            reports.push((d, t));
            ControlFlow::Continue(())
        })
        .expect("classify");
        assert_eq!(
            (a["width"].as_u64(), a["height"].as_u64()),
            (Some(122), Some(122))
        );
        // Patch 30, stride 7: 18 x 18 blocks; progress only grows and ends at the total.
        assert_eq!(reports.last(), Some(&(324, 324)));
        assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0));
        let t = albedo_raster::GeoTiff::open(&root.join("a.tif")).expect("open");
        let src = albedo_raster::GeoTiff::open(&stack).expect("stack");
        assert_eq!(t.georeferencing(), src.georeferencing());
        let values = t.read_window_f64(0, Window::full(122, 122), 1).unwrap();
        let b02 = src.read_window_f64(1, Window::full(122, 122), 1).unwrap();
        let b08 = src.read_window_f64(7, Window::full(122, 122), 1).unwrap();
        let (b03, b04) = (
            src.read_window_f64(2, Window::full(122, 122), 1).unwrap(),
            src.read_window_f64(3, Window::full(122, 122), 1).unwrap(),
        );
        let mut counts = [0u64; 3];
        let mut nodata = 0;
        for i in 0..values.len() {
            let empty = b02[i] == 0.0 && b03[i] == 0.0 && b04[i] == 0.0 && b08[i] == 0.0;
            if empty {
                assert_eq!(values[i], 255.0, "pixel {i} has no data");
                nodata += 1;
            } else {
                assert!(values[i] < 3.0, "pixel {i}: {}", values[i]);
                counts[values[i] as usize] += 1;
            }
        }
        assert!(nodata > 0, "the wedge is nodata");
        for (v, n) in counts.iter().enumerate() {
            assert_eq!(a["counts"][v.to_string()].as_u64(), Some(*n), "{a}");
        }
        // Another batch size, and strips of one row of blocks (18 strips instead of one,
        // windows reaching across strip edges), give the same file.
        classify_in_strips(&job("b.tif", 5), 1, &mut |_, _| ControlFlow::Continue(()))
            .expect("again");
        assert_eq!(
            std::fs::read(root.join("a.tif")).unwrap(),
            std::fs::read(root.join("b.tif")).unwrap()
        );
        // A cancel after the first batch stops it with no file at all.
        let mut calls = 0;
        let err = classify(&job("c.tif", 8), &mut |_, _| {
            calls += 1;
            if calls > 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
        assert!(err.contains("cancelled"), "{err}");
        assert!(!root.join("c.tif").exists());
        assert!(classmap::part_files(&root.join("c.tif")).is_empty());
        // A band the model needs is missing: named.
        let mut missing = job("d.tif", 8);
        missing.bands.remove("B08");
        let err = classify(&missing, &mut |_, _| ControlFlow::Continue(())).unwrap_err();
        assert!(err.contains("B08"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn argmax_takes_the_first_largest() {
        assert_eq!(argmax_rows(&[0.1, 0.7, 0.2, 0.5, 0.5, 0.0], 3), vec![1, 0]);
    }
}
