//! Training and inference throughput of the EO CNN on the CPU, on BigEarthNet S2 patches
//! from `/work/shared/data` (or `$ALBEDO_DATA`): 13 channels (12 bands + NDVI), 60x60
//! patches, width 32, 3 blocks, batch 64, the threads of `$THREADS` (default 2), `$EPOCHS`
//! epochs (default 4), on `$DEVICE` (`cpu`, or `wgpu` in a build with that feature).
//!
//! `cargo run -p albedo-trainer --release --example throughput` prints
//! `train_images_per_sec=` and `infer_images_per_sec=`.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use albedo_raster::dataset::{self, ClassDef, ClassMapping, DatasetSpec, SourceSpec, Split};
use albedo_trainer::{Compute, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::var_os("ALBEDO_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data"));
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let compute: Compute = std::env::var("DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()?;
    let epochs: u32 = std::env::var("EPOCHS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(4);
    let root = std::env::temp_dir().join(format!("albedo-throughput-{}", std::process::id()));
    let classes = ClassMapping::new(vec![
        ClassDef::new(
            "forest",
            &["Coniferous forest", "Broad-leaved forest", "Mixed forest"],
        ),
        ClassDef::new("arable", &["Non-irrigated arable land"]),
        ClassDef::new("pastures", &["Pastures"]),
        ClassDef::new(
            "agriculture with natural vegetation",
            &[
                "Land principally occupied by agriculture, with significant areas of natural vegetation",
            ],
        ),
        ClassDef::new("complex cultivation", &["Complex cultivation patterns"]),
    ]);
    let mut spec = DatasetSpec::new(
        "ben-13",
        SourceSpec::BigEarthNet {
            dir: data.join("labeled/bigearthnet/v1_geotiff/S2"),
            patches: vec![],
        },
        &[
            "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
            "NDVI",
        ],
        classes,
        60,
    );
    spec.stride = 30;
    spec.split.train = 0.8;
    spec.split.val = 0.2;
    spec.split.test = 0.0;
    let ds = dataset::build(&root, &spec, &mut |_| ControlFlow::Continue(()))?;
    let cfg = TrainConfig {
        width: 32,
        depth: 3,
        batch_size: 64,
        epochs,
        threads: Some(threads),
        ..TrainConfig::default()
    };
    // Seconds of training so far, from the cumulative rate: the last epoch's own rate
    // leaves out start-up costs (a GPU's kernel compilation).
    let mut last = (0u64, 0.0f64);
    let mut last_epoch_rate = 0.0;
    let out = albedo_trainer::train(&ds, &cfg, compute, &AtomicBool::new(false), &mut |p| {
        let secs = p.samples_seen as f64 / p.train_images_per_sec;
        last_epoch_rate = (p.samples_seen - last.0) as f64 / (secs - last.1);
        last = (p.samples_seen, secs);
        eprintln!(
            "epoch {}: train loss {:.4}, val acc {:.3}, {:.1} images/s ({:.1} this epoch)",
            p.epoch,
            p.train_loss,
            p.val_accuracy.unwrap_or(f64::NAN),
            p.train_images_per_sec,
            last_epoch_rate
        );
    })?;
    let val = ds.read_split(Split::Val)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let (secs, n) = pool.install(|| -> Result<(f64, usize), albedo_trainer::TrainerError> {
        let mut n = 0;
        let t = Instant::now();
        while t.elapsed().as_secs_f64() < 3.0 {
            out.model.predict_proba(&val.x, val.samples)?;
            n += val.samples;
        }
        Ok((t.elapsed().as_secs_f64(), n))
    })?;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "train_samples={} threads={threads} device={compute}",
        ds.manifest().split_summary(Split::Train).samples
    );
    println!("train_images_per_sec={:.1}", out.train_images_per_sec);
    println!("train_images_per_sec_last_epoch={last_epoch_rate:.1}");
    println!("infer_images_per_sec={:.1}", n as f64 / secs);
    Ok(())
}
