//! The training loop: batches of the train split, a report (train metrics since the last
//! report, val metrics) a few times per epoch, a stop flag checked between batches.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use albedo_raster::dataset::{Dataset, Split};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::TrainerError;
use crate::config::{Compute, OptimizerKind, TrainConfig};
use crate::data::{self, Samples};
use crate::model::{ArchConfig, InferNet, Net};
use crate::saved::{DatasetRef, EoCnn, FORMAT, ModelConfig};

/// Serialises the draws of burn's process-wide RNG (weight initialisation): with it, two
/// runs of one seed draw the same weights even while other runs start beside them.
pub(crate) static RNG_LOCK: Mutex<()> = Mutex::new(());

/// Builds a network with the weights of `seed`, drawing them under [`RNG_LOCK`].
pub(crate) fn init_net(arch: &ArchConfig, device: &Device, seed: u64) -> Net {
    let _guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let net = Net::new(arch, device);
    net.materialize_params();
    net
}

/// One progress report of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Number of this report, from 1; with one report per epoch, the epoch.
    pub step: u32,
    /// The epoch in progress, from 1.
    pub epoch: u32,
    /// Epochs done, fractional within an epoch (1.5: half of epoch 2).
    pub epoch_progress: f64,
    /// Whether this report ends its epoch.
    pub end_of_epoch: bool,
    /// Mean cross-entropy of the train batches since the last report (dropout and batch
    /// statistics on, as trained).
    pub train_loss: f64,
    /// Accuracy of those batches.
    pub train_accuracy: f64,
    /// Mean cross-entropy over the val split (inference mode); `None` when it is empty.
    pub val_loss: Option<f64>,
    /// Accuracy over the val split.
    pub val_accuracy: Option<f64>,
    /// Train samples seen so far.
    pub samples_seen: u64,
    /// Train images per second so far (training steps only, evaluation excluded).
    pub train_images_per_sec: f64,
}

impl Progress {
    /// The metrics by name: `train_loss`, `train_accuracy`, `val_loss`, `val_accuracy` (the
    /// last two when there is a val split).
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut m = vec![
            ("train_loss", self.train_loss),
            ("train_accuracy", self.train_accuracy),
        ];
        if let Some(v) = self.val_loss {
            m.push(("val_loss", v));
        }
        if let Some(v) = self.val_accuracy {
            m.push(("val_accuracy", v));
        }
        m
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The model as it was when the run ended (inference mode).
    pub model: EoCnn,
    /// Every report, in order.
    pub history: Vec<Progress>,
    /// Whether the stop flag ended the run before its last epoch.
    pub stopped: bool,
    /// Train images per second (training steps only).
    pub train_images_per_sec: f64,
    /// Wall time of the run in seconds (data loading included).
    pub duration_secs: f64,
}

/// Trains a model on `ds`'s train split and evaluates it on its val split.
///
/// `on_progress` gets every report (it may block: the run waits). `stop` is read before
/// every batch: once set, the run returns at once with `stopped` and the model as it is.
/// Runs in a local rayon pool of `cfg.threads` threads when set.
pub fn train(
    ds: &Dataset,
    cfg: &TrainConfig,
    compute: Compute,
    stop: &AtomicBool,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<TrainOutcome, TrainerError> {
    cfg.validate()?;
    // burn panics where a backend fails (a GPU without a usable adapter): an error here.
    let mut guarded = move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(ds, cfg, compute, stop, on_progress)
        }))
        .unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            Err(TrainerError::Backend {
                device: compute,
                message: msg,
            })
        })
    };
    match cfg.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("albedo-trainer-{i}"))
            .build()
            .map_err(|e| TrainerError::Data(format!("cannot start {n} threads: {e}")))?
            .install(guarded),
        None => guarded(),
    }
}

/// Seed of epoch `epoch`'s batch order.
fn epoch_seed(seed: u64, epoch: u32) -> u64 {
    seed ^ (u64::from(epoch) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn run(
    ds: &Dataset,
    cfg: &TrainConfig,
    compute: Compute,
    stop: &AtomicBool,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<TrainOutcome, TrainerError> {
    let started = Instant::now();
    let m = ds.manifest();
    if m.multi_label {
        tracing::debug!("multi-label dataset: training on the single class index `y`");
    }
    let (idx, norm) = data::resolve_channels(m, &cfg.channels, &cfg.drop_channels)?;
    let arch = ArchConfig {
        in_channels: idx.len(),
        num_classes: m.classes.len(),
        patch_size: m.patch_size as usize,
        width: cfg.width,
        depth: cfg.depth,
        skip_blocks: cfg.skip_blocks.clone(),
        dropout: cfg.dropout,
    };
    arch.validate()?;
    let train_set = data::load(ds, Split::Train, &idx, &norm)?;
    let val_set = data::load(ds, Split::Val, &idx, &norm)?;
    if train_set.n == 0 {
        return Err(TrainerError::Data(format!(
            "dataset {} v{} has no train samples",
            m.name, m.version
        )));
    }

    let plain = compute.device()?;
    let device = plain.clone().autodiff();
    let mut net = init_net(&arch, &device, cfg.seed);
    let mut optim = match cfg.optimizer {
        OptimizerKind::Adam => AdamConfig::new().init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(cfg.momentum)
                    .with_dampening(0.0),
            ))
            .init(),
    };
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut dropout_rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(0x5EED));
    let features = arch.features();

    let bs = cfg.batch_size.min(train_set.n);
    let batches = train_set.n.div_ceil(bs);
    let reports = (cfg.reports_per_epoch as usize).min(batches);
    // Report after these batch counts: evenly spaced, the last at the end of the epoch.
    let report_after: Vec<usize> = (1..=reports)
        .map(|k| (batches * k).div_ceil(reports))
        .collect();

    let mut history = Vec::new();
    let mut seen: u64 = 0;
    let mut train_secs = 0.0f64;
    let mut stopped = false;
    'epochs: for epoch in 1..=cfg.epochs {
        let mut order: Vec<usize> = (0..train_set.n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(cfg.seed, epoch)));
        let (mut loss_sum, mut correct, mut count) = (0.0f64, 0u64, 0u64);
        let mut k = 0;
        for b in 0..batches {
            if stop.load(Ordering::SeqCst) {
                stopped = true;
                break 'epochs;
            }
            let t0 = Instant::now();
            let ids = &order[b * bs..((b + 1) * bs).min(train_set.n)];
            let (xb, yb) = train_set.gather(ids);
            let n = ids.len();
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    xb,
                    [n, train_set.channels, train_set.patch, train_set.patch],
                ),
                &device,
            );
            let y = Tensor::<1, Int>::from_data(TensorData::new(yb.clone(), [n]), &device);
            let keep = (cfg.dropout > 0.0).then(|| {
                let p = cfg.dropout;
                let scale = (1.0 / (1.0 - p)) as f32;
                let mask: Vec<f32> = (0..n * features)
                    .map(|_| {
                        if dropout_rng.random::<f64>() < p {
                            0.0
                        } else {
                            scale
                        }
                    })
                    .collect();
                Tensor::<2>::from_data(TensorData::new(mask, [n, features]), &device)
            });
            let logits = net.forward(x, keep);
            let loss = loss_fn.forward(logits.clone(), y);
            let batch_loss = f64::from(loss.clone().into_scalar::<f32>());
            let logits_host = to_vec(logits)?;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
            train_secs += t0.elapsed().as_secs_f64();
            if !batch_loss.is_finite() {
                return Err(TrainerError::Diverged { epoch, lr: cfg.lr });
            }
            loss_sum += batch_loss * n as f64;
            correct += count_correct(&logits_host, &yb, arch.num_classes);
            count += n as u64;
            seen += n as u64;

            if report_after[k] == b + 1 {
                k += 1;
                let (val_loss, val_accuracy) = if val_set.n > 0 {
                    let (l, a) = evaluate(&net.valid().folded(), &val_set, &plain, bs.max(64))?;
                    (Some(l), Some(a))
                } else {
                    (None, None)
                };
                let p = Progress {
                    step: ((epoch - 1) as usize * reports + k) as u32,
                    epoch,
                    epoch_progress: f64::from(epoch - 1) + (b + 1) as f64 / batches as f64,
                    end_of_epoch: b + 1 == batches,
                    train_loss: loss_sum / count as f64,
                    train_accuracy: correct as f64 / count as f64,
                    val_loss,
                    val_accuracy,
                    samples_seen: seen,
                    train_images_per_sec: seen as f64 / train_secs.max(1e-9),
                };
                tracing::debug!(?p, "progress");
                on_progress(&p);
                history.push(p);
                (loss_sum, correct, count) = (0.0, 0, 0);
            }
        }
    }
    let epochs_completed = history.iter().filter(|p| p.end_of_epoch).count() as u32;
    let train_images_per_sec = seen as f64 / train_secs.max(1e-9);
    let metrics = history
        .last()
        .map(|p| {
            p.metrics()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .unwrap_or_default();
    let config = ModelConfig {
        format: FORMAT.to_string(),
        arch,
        classes: m.classes.clone(),
        channels: norm.iter().map(|n| n.channel.clone()).collect(),
        normalization: norm,
        dataset: DatasetRef {
            name: m.name.clone(),
            version: m.version,
        },
        training: cfg.clone(),
        epochs_completed,
        metrics,
    };
    Ok(TrainOutcome {
        model: EoCnn::from_parts(net.valid(), config, plain),
        history,
        stopped,
        train_images_per_sec,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// A float tensor's values on the host.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TrainerError> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainerError::Data(format!("reading a tensor back: {e:?}")))
}

fn count_correct(logits: &[f32], y: &[i64], k: usize) -> u64 {
    logits
        .chunks(k)
        .zip(y)
        .filter(|(row, y)| argmax(row) == **y as usize)
        .count() as u64
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Mean cross-entropy and accuracy of `net` (inference mode, batch norms folded) over `s`.
pub(crate) fn evaluate(
    net: &InferNet,
    s: &Samples,
    device: &Device,
    batch: usize,
) -> Result<(f64, f64), TrainerError> {
    let (mut loss, mut correct) = (0.0f64, 0u64);
    let ids: Vec<usize> = (0..s.n).collect();
    for chunk in ids.chunks(batch.max(1)) {
        let (xb, yb) = s.gather(chunk);
        let x = Tensor::<4>::from_data(
            TensorData::new(xb, [chunk.len(), s.channels, s.patch, s.patch]),
            device,
        );
        let logits = to_vec(net.forward(x))?;
        let k = logits.len() / chunk.len();
        for (row, y) in logits.chunks(k).zip(&yb) {
            loss += cross_entropy(row, *y as usize);
        }
        correct += count_correct(&logits, &yb, k);
    }
    let n = s.n.max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// `-log softmax(row)[y]`, computed stably in f64.
fn cross_entropy(row: &[f32], y: usize) -> f64 {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, v| m.max(f64::from(*v)));
    let sum: f64 = row.iter().map(|v| (f64::from(*v) - max).exp()).sum();
    max + sum.ln() - f64::from(row[y])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_and_argmax() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        assert!((cross_entropy(&row, 2) - (z.ln() - 3.0)).abs() < 1e-9);
        assert_eq!(argmax(&row), 2);
        assert_eq!(count_correct(&[0.0, 1.0, 5.0, -1.0], &[1, 1], 2), 1);
    }

    #[test]
    fn epoch_seeds_differ() {
        assert_ne!(epoch_seed(0, 1), epoch_seed(0, 2));
        assert_ne!(epoch_seed(1, 1), epoch_seed(2, 1));
    }
}
