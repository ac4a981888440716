//! `albedo-trainer`: Albedo's built-in EO patch-classification CNN (the `eo_cnn` trial), on
//! burn 0.22 with its pure-Rust `flex` CPU backend by default.
//!
//! What it is: [`train()`] reads a training dataset made by `albedo_raster::dataset`
//! (train and val splits, in memory), picks its input channels by name, normalises them
//! with the dataset's train statistics, and trains a small CNN whose hyperparameters are
//! [`TrainConfig`]'s: width, depth, dropout, learning rate, batch size, optimizer (Adam or
//! SGD with momentum), epochs and seed. Input channels and blocks are ablatable
//! (`channels` / `drop_channels`, and `skip_blocks`, which trial parameters spell
//! `drop_block`; see [`TrainConfig::from_params`], which also takes an ablation trial's
//! `ablate` list). It reports train and val loss and accuracy through a callback at the end
//! of every epoch and `reports_per_epoch - 1` times within it, reads a stop flag before
//! every batch, and runs in a local rayon pool of `threads` threads. On the CPU a seed gives
//! the same weights, batches, dropout masks and so the same metrics, run after run (weights
//! are drawn under a process-wide lock, since burn's RNG is global; batches and dropout come
//! from the run's own RNGs). The result, [`EoCnn`], is saved as `model.safetensors`
//! (burn's `SafetensorsStore`) beside `model.json` ([`ModelConfig`]: architecture, class
//! names, channel names, normalisation, hyperparameters, final metrics);
//! [`EoCnn::load`] rebuilds it and [`EoCnn::predict_proba`] gives class probabilities of raw
//! patches (for the classify job and online serving).
//!
//! The network: `depth` blocks `block1` .. `blockD`, block `i` a 3x3 convolution (same
//! padding, no bias) to `width * 2^(i-1)` channels, batch norm, ReLU, 2x2 max pooling; then
//! global average pooling, dropout (training only) and a linear layer to the classes.
//! ReLU runs after the pooling (the two commute, values and gradients alike, and ReLU then
//! touches a quarter of the values); for predictions and validation each batch norm's
//! running statistics are folded into its convolution's weights and a bias
//! (`model::InferNet`), which saves the normalisation's passes over the activations. On
//! burn flex the convolutions, the pooling with its ReLU and the batch norm of a training pass (the
//! running statistics updated as burn's `BatchNorm` does) run as our own kernels
//! ([`kernels`], a burn backend extension with their own backward; the convolutions are
//! direct 3x3 SIMD kernels for AVX2 or AVX-512 CPUs, `conv`), elsewhere as burn's ops.
//!
//! Devices ([`Compute`]): `cpu` (burn `flex`, always built) and `wgpu` (crate feature
//! `wgpu`, off by default; chosen at run time). burn's `cuda` is not offered: on 0.22.1 it
//! builds `cubecl-cuda`, whose `tracel-llvm-bundler` build script downloads LLVM.
//!
//! What it is not: no data augmentation, no learning-rate schedule, no multi-label loss
//! (multi-label datasets train on their single class index `y`), no streaming of datasets
//! larger than memory, no resuming from a checkpoint; no I/O beyond the dataset it is given
//! and the model folder it is told to write; no async (callers run [`train()`] on a
//! blocking thread).
//!
//! Layout: [`alloc`] (malloc settings for training processes), [`config`]
//! (hyperparameters, devices, trial parameters), [`model`] (the
//! network's shape), [`kernels`] (CPU kernels of our own for burn flex), `conv` and `pool` (the
//! direct 3x3 convolution and the pooling + ReLU kernels [`kernels`] runs), [`data`] (channel
//! selection, normalisation), [`train`](mod@train) (the
//! loop, [`Progress`]), [`saved`] (save, load, predict), [`TrainerError`].

pub mod alloc;
pub mod config;
pub(crate) mod conv;
pub mod data;
pub mod kernels;
pub mod model;
pub(crate) mod pool;
pub mod saved;
pub mod train;

use std::path::PathBuf;

pub use alloc::tune_allocator;
pub use burn;
pub use config::{Compute, OptimizerKind, PARAMS, TrainConfig};
pub use data::{ChannelNorm, normalize};
pub use model::ArchConfig;
pub use saved::{CONFIG_FILE, DatasetRef, EoCnn, FORMAT, ModelConfig, WEIGHTS_FILE};
pub use train::{Progress, TrainOutcome, train};

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// A hyperparameter or trial parameter is unusable.
    #[error("parameter {name}: {reason}")]
    BadParam {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// The dataset cannot be trained on as it is.
    #[error("data: {0}")]
    Data(String),
    /// Reading the dataset failed.
    #[error(transparent)]
    Dataset(#[from] albedo_raster::RasterError),
    /// The requested device is not in this build or not usable.
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),
    /// The backend failed while training (burn panicked, e.g. no usable GPU adapter).
    #[error("the {device} backend failed: {message}")]
    Backend {
        /// The device.
        device: Compute,
        /// burn's message.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged in epoch {epoch} (loss not finite); try a learning rate below {lr}")]
    Diverged {
        /// The epoch.
        epoch: u32,
        /// The learning rate used.
        lr: f64,
    },
    /// Saving or loading a model failed.
    #[error("model store: {0}")]
    Store(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl TrainerError {
    pub(crate) fn param(name: &str, reason: impl Into<String>) -> TrainerError {
        TrainerError::BadParam {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}
