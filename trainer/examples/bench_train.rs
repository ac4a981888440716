//! Albedo's side of `cargo xtask bench train`: training and inference throughput of the EO
//! CNN through the public API trials use ([`albedo_trainer::train`] and
//! [`albedo_trainer::EoCnn::predict_proba`]), on real BigEarthNet Sentinel-2 patches.
//!
//! The data: the 14 BigEarthNet v1 S2 patch folders under `<data>/labeled/bigearthnet`
//! (`--data`, default `$ALBEDO_DATA` or `/work/shared/data`), 13 channels (the 12 bands
//! B01-B12 with B8A, resampled onto the 10 m grid, and NDVI), cut into 64x64 patches with a
//! stride of 8 pixels: 64 patches a folder, 896 in all, every one in the train split (so
//! that every batch of 64 is full). The model: [`TrainConfig::default`]'s architecture
//! (width 16, 3 blocks, dropout 0.2, Adam, lr 1e-3) unless `--width` / `--depth` say
//! otherwise, batch `--batch` (64), in a pool of `--threads` (2) threads.
//!
//! Training: `--warmup` (4) batches, then every batch to the end of the epoch holding batch
//! `warmup + batches` (`--batches`, 28): the timed rate is the images of the timed batches
//! over the seconds of their training steps (batch assembly, forward, loss, backward,
//! optimizer step, reading the loss and logits back), from the per-batch reports of
//! [`albedo_trainer::Progress`]. Inference: [`albedo_trainer::EoCnn::predict_proba`] of
//! raw patches in batches of `--batch` (normalisation, forward, softmax), 2 warm-up
//! batches, then `--infer-batches` (40) timed ones.
//!
//! `--export DIR` writes the same samples for the PyTorch side of the benchmark
//! (`trainer/bench/train_pytorch.py`): `x.f32` (raw values, `[n, C, P, P]`, little endian), `y.i64`
//! (class indices) and `meta.json` (shapes, channel names, the dataset's train mean and
//! standard deviation per channel, the model's hyperparameters).
//!
//! Prints `bench_train: ...` (the setup), `train_images_per_sec=` and
//! `infer_images_per_sec=` on stdout. Run it with
//! `cargo run -p albedo-trainer --release --example bench_train -- --threads 2`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use albedo_raster::dataset::{self, ClassMapping, DatasetSpec, SourceSpec, Split};
use albedo_trainer::{Compute, TrainConfig};

/// The 13 input channels.
const CHANNELS: [&str; 13] = [
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "NDVI",
];

/// Command-line options.
#[derive(Debug)]
struct Opts {
    threads: usize,
    batch: usize,
    patch: u32,
    stride: u32,
    width: usize,
    depth: usize,
    warmup: usize,
    batches: usize,
    infer_batches: usize,
    device: Compute,
    data: PathBuf,
    export: Option<PathBuf>,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let defaults = TrainConfig::default();
        let mut o = Opts {
            threads: 2,
            batch: 64,
            patch: 64,
            stride: 8,
            width: defaults.width,
            depth: defaults.depth,
            warmup: 4,
            batches: 28,
            infer_batches: 40,
            device: Compute::Cpu,
            data: std::env::var_os("ALBEDO_DATA")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/work/shared/data")),
            export: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let num = |v: String| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{flag}: '{v}' is not a positive whole number"))
            };
            match flag.as_str() {
                "--threads" => o.threads = num(value()?)?,
                "--batch" => o.batch = num(value()?)?,
                "--patch" => o.patch = num(value()?)? as u32,
                "--stride" => o.stride = num(value()?)? as u32,
                "--width" => o.width = num(value()?)?,
                "--depth" => o.depth = num(value()?)?,
                "--warmup" => o.warmup = num(value()?)?,
                "--batches" => o.batches = num(value()?)?,
                "--infer-batches" => o.infer_batches = num(value()?)?,
                "--device" => o.device = value()?.parse().map_err(|e| format!("{e}"))?,
                "--data" => o.data = PathBuf::from(value()?),
                "--export" => o.export = Some(PathBuf::from(value()?)),
                other => {
                    return Err(format!(
                        "unknown option {other} (--threads --batch --patch --stride --width \
                         --depth --warmup --batches --infer-batches --device --data --export)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the worker does (see `albedo_trainer::alloc`).
    albedo_trainer::tune_allocator();
    let o = Opts::parse()?;
    let root = std::env::temp_dir().join(format!("albedo-bench-train-{}", std::process::id()));
    let result = bench(&o, &root);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn bench(o: &Opts, root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let classes = ClassMapping::bigearthnet_sample();
    let mut spec = DatasetSpec::new(
        "bench-train",
        SourceSpec::BigEarthNet {
            dir: o.data.join("labeled/bigearthnet/v1_geotiff/S2"),
            patches: vec![],
        },
        &CHANNELS,
        classes,
        o.patch,
    );
    spec.stride = o.stride;
    spec.split.train = 1.0;
    spec.split.val = 0.0;
    spec.split.test = 0.0;
    let ds = dataset::build(root, &spec, &mut |_| ControlFlow::Continue(()))?;
    let train = ds.read_split(Split::Train)?;
    let n = train.samples;
    let per_epoch = n.div_ceil(o.batch);
    let epochs = (o.warmup + o.batches).div_ceil(per_epoch);
    let timed = epochs * per_epoch - o.warmup;
    println!(
        "bench_train: samples={n} channels={} patch={} batch={} width={} depth={} threads={} \
         device={} batches_per_epoch={per_epoch} epochs={epochs} warmup_batches={} \
         timed_batches={timed}",
        train.channels, train.patch_size, o.batch, o.width, o.depth, o.threads, o.device, o.warmup
    );
    if let Some(dir) = &o.export {
        export(dir, &ds, &train, o, timed)?;
    }

    let cfg = TrainConfig {
        width: o.width,
        depth: o.depth,
        batch_size: o.batch,
        epochs: epochs as u32,
        reports_per_epoch: per_epoch as u32,
        threads: Some(o.threads),
        ..TrainConfig::default()
    };
    // One report per batch (there is no val split, so a report evaluates nothing): the
    // training seconds after batch k are samples_seen / train_images_per_sec.
    let mut marks: Vec<(u64, f64)> = Vec::new();
    let out = albedo_trainer::train(&ds, &cfg, o.device, &AtomicBool::new(false), &mut |p| {
        marks.push((
            p.samples_seen,
            p.samples_seen as f64 / p.train_images_per_sec,
        ));
        if p.end_of_epoch {
            eprintln!(
                "epoch {}: train loss {:.4}, accuracy {:.3}",
                p.epoch, p.train_loss, p.train_accuracy
            );
        }
    })?;
    let (seen0, secs0) = marks
        .get(o.warmup - 1)
        .copied()
        .ok_or("fewer batches than --warmup")?;
    let (seen1, secs1) = *marks.last().ok_or("no batch ran")?;
    let train_rate = (seen1 - seen0) as f64 / (secs1 - secs0);
    eprintln!(
        "training: {} timed images in {:.2} s",
        seen1 - seen0,
        secs1 - secs0
    );

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()?;
    let len = train.channels * train.patch_size * train.patch_size;
    let (secs, images) =
        pool.install(|| -> Result<(f64, usize), albedo_trainer::TrainerError> {
            let batches: Vec<&[f32]> = train.x.chunks_exact(o.batch * len).collect();
            for b in batches.iter().take(2) {
                out.model.predict_proba(b, o.batch)?;
            }
            let t = Instant::now();
            for i in 0..o.infer_batches {
                out.model
                    .predict_proba(batches[i % batches.len()], o.batch)?;
            }
            Ok((t.elapsed().as_secs_f64(), o.infer_batches * o.batch))
        })?;
    println!("train_images_per_sec={train_rate:.1}");
    println!("infer_images_per_sec={:.1}", images as f64 / secs);
    Ok(())
}

/// Writes the samples and the setup for the PyTorch side.
fn export(
    dir: &Path,
    ds: &dataset::Dataset,
    s: &dataset::ShardData,
    o: &Opts,
    timed: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let x: Vec<u8> = s.x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("x.f32"), x)?;
    let y: Vec<u8> = s.y.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("y.i64"), y)?;
    let m = ds.manifest();
    let d = TrainConfig::default();
    let meta = serde_json::json!({
        "samples": s.samples,
        "channels": m.channels,
        "patch": s.patch_size,
        "classes": m.classes,
        "mean": m.stats.iter().map(|st| st.mean).collect::<Vec<_>>(),
        "std": m.stats.iter().map(|st| st.std).collect::<Vec<_>>(),
        "width": o.width,
        "depth": o.depth,
        "dropout": d.dropout,
        "lr": d.lr,
        "batch": o.batch,
        "warmup": o.warmup,
        "batches": timed,
        "infer_batches": o.infer_batches,
    });
    std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    Ok(())
}
