//! Training on real BigEarthNet Sentinel-2 patches from `/work/shared/data` (or
//! `$ALBEDO_DATA`): a tiny dataset (14 patch folders cut into 30x30 patches, 6 channels),
//! tiny models, a few epochs.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use albedo_raster::dataset::{self, ClassMapping, Dataset, DatasetSpec, SourceSpec, Split};
use albedo_trainer::{Compute, EoCnn, Progress, TrainConfig, TrainerError, train};

const CHANNELS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "NDVI"];

fn data(rel: &str) -> PathBuf {
    std::env::var_os("ALBEDO_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data"))
        .join(rel)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("albedo-trainer-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The dataset, built once per test process.
fn ben() -> &'static Dataset {
    static DS: OnceLock<Dataset> = OnceLock::new();
    DS.get_or_init(|| {
        let classes = ClassMapping::bigearthnet_sample();
        let spec = DatasetSpec::new(
            "ben-s2-30",
            SourceSpec::BigEarthNet {
                dir: data("labeled/bigearthnet/v1_geotiff/S2"),
                patches: vec![],
            },
            &CHANNELS,
            classes,
            30,
        );
        dataset::build(&scratch("datasets"), &spec, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap()
    })
}

fn tiny() -> TrainConfig {
    TrainConfig {
        width: 8,
        depth: 2,
        dropout: 0.1,
        lr: 3e-3,
        batch_size: 16,
        epochs: 6,
        seed: 7,
        threads: Some(2),
        ..TrainConfig::default()
    }
}

fn run(cfg: &TrainConfig) -> albedo_trainer::TrainOutcome {
    train(
        ben(),
        cfg,
        Compute::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap()
}

/// Raw (not normalised) val patches with only the model's channels, and their labels.
fn val_patches(model: &EoCnn) -> (Vec<f32>, usize, Vec<i64>) {
    let ds = ben();
    let s = ds.read_split(Split::Val).unwrap();
    let m = ds.manifest();
    let idx: Vec<usize> = model
        .config()
        .channels
        .iter()
        .map(|c| m.channels.iter().position(|d| d == c).unwrap())
        .collect();
    let pp = s.patch_size * s.patch_size;
    let mut x = Vec::new();
    for i in 0..s.samples {
        let smp = s.sample(i);
        for &c in &idx {
            x.extend_from_slice(&smp.x[c * pp..(c + 1) * pp]);
        }
    }
    (x, s.samples, s.y.clone())
}

#[test]
fn learns_and_a_seed_repeats_the_run() {
    let k = ben().manifest().classes.len() as f64;
    let cfg = tiny();
    let a = run(&cfg);
    assert!(!a.stopped);
    assert_eq!(a.history.len(), 6, "one report per epoch");
    for (i, p) in a.history.iter().enumerate() {
        assert_eq!(p.step, i as u32 + 1);
        assert_eq!(p.epoch, i as u32 + 1);
        assert!(p.end_of_epoch);
        eprintln!(
            "epoch {}: train loss {:.4} acc {:.3}, val loss {:.4} acc {:.3}, {:.0} images/s",
            p.epoch,
            p.train_loss,
            p.train_accuracy,
            p.val_loss.unwrap(),
            p.val_accuracy.unwrap(),
            p.train_images_per_sec
        );
    }
    let (first, last) = (&a.history[0], a.history.last().unwrap());
    // It learns: the train loss falls well below where it started and below chance level
    // (ln K), and the val split is classified better than chance.
    assert!(
        last.train_loss < 0.8 * first.train_loss && last.train_loss < k.ln(),
        "train loss {} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(last.val_accuracy.unwrap() > 1.0 / k, "{last:?}");
    assert!(last.val_loss.unwrap() < k.ln(), "{last:?}");
    assert!(a.train_images_per_sec > 0.0);
    eprintln!(
        "train {:.0} images/s, {:.2} s",
        a.train_images_per_sec, a.duration_secs
    );

    // The same seed: the same metrics, bit for bit, and the same predictions.
    let b = run(&cfg);
    assert_eq!(a.history.len(), b.history.len());
    for (x, y) in a.history.iter().zip(&b.history) {
        assert_eq!(
            x.train_loss.to_bits(),
            y.train_loss.to_bits(),
            "{x:?} vs {y:?}"
        );
        assert_eq!(x.val_loss.unwrap().to_bits(), y.val_loss.unwrap().to_bits());
        assert_eq!(x.train_accuracy, y.train_accuracy);
        assert_eq!(x.val_accuracy, y.val_accuracy);
    }
    let (x, n, _) = val_patches(&a.model);
    assert_eq!(
        a.model.predict_proba(&x, n).unwrap(),
        b.model.predict_proba(&x, n).unwrap()
    );

    // Another seed: another run.
    let c = run(&TrainConfig { seed: 8, ..cfg });
    assert_ne!(
        c.history[0].train_loss.to_bits(),
        a.history[0].train_loss.to_bits()
    );
}

#[test]
fn a_stop_flag_ends_the_run_between_batches() {
    let n_train = ben().manifest().split_summary(Split::Train).samples;
    let cfg = TrainConfig {
        batch_size: 8,
        epochs: 3,
        reports_per_epoch: 4,
        ..tiny()
    };
    let stop = AtomicBool::new(false);
    let mut seen: Vec<Progress> = Vec::new();
    let out = train(ben(), &cfg, Compute::Cpu, &stop, &mut |p| {
        seen.push(p.clone());
        // Stop at the first report, a quarter into epoch 1.
        stop.store(true, Ordering::SeqCst);
    })
    .unwrap();
    assert!(out.stopped);
    assert_eq!(seen.len(), 1);
    assert_eq!(out.history, seen);
    let p = &seen[0];
    assert_eq!((p.step, p.epoch), (1, 1));
    assert!(!p.end_of_epoch);
    assert!(p.epoch_progress > 0.0 && p.epoch_progress < 0.5, "{p:?}");
    // Nothing was trained after the flag: the samples seen are those of the first report.
    assert!(p.samples_seen < n_train / 2 + 8, "{p:?} of {n_train}");
    assert_eq!(out.model.config().epochs_completed, 0);

    // Reports within epochs: 4 per epoch, the 4th at its end, steps counting reports.
    let cfg = TrainConfig { epochs: 2, ..cfg };
    let out = train(
        ben(),
        &cfg,
        Compute::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let steps: Vec<u32> = out.history.iter().map(|p| p.step).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
    let ends: Vec<bool> = out.history.iter().map(|p| p.end_of_epoch).collect();
    assert_eq!(ends, [false, false, false, true, false, false, false, true]);
    assert_eq!(out.history[3].epoch_progress, 1.0);
    assert_eq!(out.history[7].samples_seen, 2 * n_train);
}

#[test]
fn saved_models_load_and_predict_the_same() {
    let cfg = TrainConfig {
        epochs: 2,
        ..tiny()
    };
    let out = run(&cfg);
    let dir = scratch("model");
    let weights = out.model.save(&dir).unwrap();
    assert!(weights.ends_with("model.safetensors"));
    assert!(dir.join("model.json").is_file());

    let loaded = EoCnn::load(&dir, Compute::Cpu).unwrap();
    // serde_json (without its `float_roundtrip` feature) may read a float back one unit in
    // the last place off: the metrics are compared to 1e-12, the rest exactly.
    let (mut read, mut written) = (loaded.config().clone(), out.model.config().clone());
    assert!(
        read.metrics.len() == written.metrics.len()
            && read
                .metrics
                .iter()
                .zip(&written.metrics)
                .all(|((k, a), (l, b))| { k == l && (a - b).abs() <= 1e-12 * b.abs().max(1.0) }),
        "{:?} != {:?}",
        read.metrics,
        written.metrics
    );
    read.metrics.clear();
    written.metrics.clear();
    assert_eq!(read, written);
    let c = loaded.config();
    assert_eq!(c.channels, CHANNELS);
    assert_eq!(c.classes, ben().manifest().classes);
    assert_eq!(c.normalization.len(), 6);
    assert_eq!(c.normalization[0].mean, ben().manifest().stats[0].mean);
    assert_eq!(c.epochs_completed, 2);
    assert!(c.metrics.contains_key("val_accuracy"));

    let (x, n, _) = val_patches(&loaded);
    let p1 = out.model.predict_proba(&x, n).unwrap();
    let p2 = loaded.predict_proba(&x, n).unwrap();
    assert_eq!(p1.len(), n * c.classes.len());
    assert_eq!(
        p1, p2,
        "the loaded model predicts exactly as the trained one"
    );
    for row in p1.chunks(c.classes.len()) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    // Not every patch gets the same answer (the input matters).
    assert!(
        p1.chunks(c.classes.len())
            .any(|r| r != &p1[..c.classes.len()])
    );
    assert!(matches!(
        loaded.predict_proba(&x[1..], n),
        Err(TrainerError::Data(_))
    ));

    // A config that does not match the weights is refused.
    let mut bad = c.clone();
    bad.arch.width = 16;
    std::fs::write(dir.join("model.json"), serde_json::to_string(&bad).unwrap()).unwrap();
    assert!(matches!(
        EoCnn::load(&dir, Compute::Cpu),
        Err(TrainerError::Store(_))
    ));
}

#[test]
fn ablations_change_the_network() {
    let one = TrainConfig {
        epochs: 1,
        ..tiny()
    };
    let full = run(&one).model;
    assert_eq!(full.first_conv_shape(), [8, 6, 3, 3]);
    assert_eq!(full.input_shape(), [6, 30, 30]);

    // Drop SWIR and NDVI: the input layer takes 4 channels.
    let fewer = run(&TrainConfig {
        drop_channels: vec!["B11".into(), "NDVI".into()],
        ..one.clone()
    })
    .model;
    assert_eq!(fewer.first_conv_shape(), [8, 4, 3, 3]);
    assert_eq!(fewer.config().channels, ["B02", "B03", "B04", "B08"]);
    let (x, n, _) = val_patches(&fewer);
    assert_eq!(x.len(), n * 4 * 30 * 30);
    fewer.predict_proba(&x, n).unwrap();

    // Channels chosen by name and order.
    let picked = run(&TrainConfig {
        channels: vec!["NDVI".into(), "B04".into()],
        ..one.clone()
    })
    .model;
    assert_eq!(picked.first_conv_shape(), [8, 2, 3, 3]);
    assert_eq!(picked.config().normalization[0].channel, "NDVI");

    // Skip block1: block2 (16 channels) takes the input.
    let skipped = run(&TrainConfig {
        skip_blocks: vec!["block1".into()],
        ..one.clone()
    })
    .model;
    assert_eq!(skipped.first_conv_shape(), [16, 6, 3, 3]);

    // From trial parameters, as an ablation study writes them.
    let params = serde_json::from_value(serde_json::json!({
        "width": 8, "depth": 2, "epochs": 1, "batch_size": 16, "threads": 2,
        "ablate": [{"name": "swir", "kind": "band_group", "members": ["B11"]}]
    }))
    .unwrap();
    let cfg = TrainConfig::from_params(&params).unwrap();
    assert_eq!(run(&cfg).model.first_conv_shape(), [8, 5, 3, 3]);

    // Unknown channels and over-deep networks are refused before training.
    for (cfg, field) in [
        (
            TrainConfig {
                channels: vec!["B99".into()],
                ..one.clone()
            },
            "channels",
        ),
        (
            TrainConfig {
                drop_channels: CHANNELS.iter().map(|c| c.to_string()).collect(),
                ..one.clone()
            },
            "channels",
        ),
        (
            TrainConfig {
                depth: 5,
                ..one.clone()
            },
            "depth",
        ),
    ] {
        let e = train(
            ben(),
            &cfg,
            Compute::Cpu,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&e, TrainerError::BadParam { name, .. } if name == field),
            "{e}"
        );
    }
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn a_gpu_device_is_refused_in_a_cpu_only_build() {
    let e = train(
        ben(),
        &tiny(),
        Compute::Wgpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, TrainerError::DeviceUnavailable(_)), "{e}");
}
