//! A trained model: saving (`model.safetensors` + `model.json`), loading, and class
//! probabilities of raw patches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::TrainerError;
use crate::config::{Compute, TrainConfig};
use crate::data::{ChannelNorm, normalize};
use crate::model::{ArchConfig, InferNet, Net};
use crate::train::{init_net, to_vec};

/// Value of [`ModelConfig::format`].
pub const FORMAT: &str = "albedo-eo-cnn/1";

/// File name of the weights in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// File name of the configuration in a model folder.
pub const CONFIG_FILE: &str = "model.json";

/// The dataset a model was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// Dataset name.
    pub name: String,
    /// Its version.
    pub version: u32,
}

/// Everything beside the weights: `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// [`FORMAT`].
    pub format: String,
    /// The network's shape.
    pub arch: ArchConfig,
    /// Class names, in output order.
    pub classes: Vec<String>,
    /// Input channel names, in input order.
    pub channels: Vec<String>,
    /// Normalisation of each input channel (the dataset's train statistics).
    pub normalization: Vec<ChannelNorm>,
    /// The training dataset.
    pub dataset: DatasetRef,
    /// The hyperparameters of the run.
    pub training: TrainConfig,
    /// Epochs completed.
    pub epochs_completed: u32,
    /// The last report's metrics (`train_loss`, `train_accuracy`, `val_loss`, `val_accuracy`).
    pub metrics: BTreeMap<String, f64>,
}

/// A trained network in inference mode with its configuration.
#[derive(Debug)]
pub struct EoCnn {
    net: Net,
    /// `net` with its batch norms folded, for predictions.
    infer: InferNet,
    config: ModelConfig,
    device: Device,
}

impl EoCnn {
    pub(crate) fn from_parts(net: Net, config: ModelConfig, device: Device) -> EoCnn {
        EoCnn {
            infer: net.folded(),
            net,
            config,
            device,
        }
    }

    /// The configuration (`model.json`).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// `[channels, patch, patch]` of one input sample.
    pub fn input_shape(&self) -> [usize; 3] {
        let a = &self.config.arch;
        [a.in_channels, a.patch_size, a.patch_size]
    }

    /// Shape `[out, in, 3, 3]` of the first convolution (its `in` is the input channels).
    pub fn first_conv_shape(&self) -> [usize; 4] {
        self.net.first_conv_shape()
    }

    /// Writes `model.safetensors` and `model.json` into `dir` (created if needed), each
    /// through a temporary file renamed into place. Returns the weights' path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, TrainerError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let weights = dir.join(WEIGHTS_FILE);
        let tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp"));
        let mut store = SafetensorsStore::from_file(&tmp)
            .overwrite(true)
            .metadata("albedo_format", FORMAT);
        self.net
            .save_into(&mut store)
            .map_err(|e| TrainerError::Store(format!("{}: {e}", weights.display())))?;
        std::fs::rename(&tmp, &weights).map_err(io(&weights))?;
        let json = dir.join(CONFIG_FILE);
        let tmp = dir.join(format!(".{CONFIG_FILE}.tmp"));
        let text = serde_json::to_string_pretty(&self.config)
            .map_err(|e| TrainerError::Store(format!("{}: {e}", json.display())))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &json).map_err(io(&json))?;
        Ok(weights)
    }

    /// Rebuilds the model saved in `dir` on `compute`: reads `model.json`, builds the network
    /// it describes and loads every weight (a missing, extra or misshapen tensor is an error).
    pub fn load(dir: &Path, compute: Compute) -> Result<EoCnn, TrainerError> {
        let json = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&json).map_err(io(&json))?;
        let config: ModelConfig = serde_json::from_str(&text)
            .map_err(|e| TrainerError::Store(format!("{}: {e}", json.display())))?;
        if config.format != FORMAT {
            return Err(TrainerError::Store(format!(
                "{}: format '{}', expected '{FORMAT}'",
                json.display(),
                config.format
            )));
        }
        config.arch.validate()?;
        if config.channels.len() != config.arch.in_channels
            || config.normalization.len() != config.arch.in_channels
            || config.classes.len() != config.arch.num_classes
        {
            return Err(TrainerError::Store(format!(
                "{}: channels, normalisation and classes disagree with the architecture",
                json.display()
            )));
        }
        let device = compute.device()?;
        let mut net = init_net(&config.arch, &device, 0);
        let weights = dir.join(WEIGHTS_FILE);
        let mut store = SafetensorsStore::from_file(&weights);
        let applied = net
            .load_from(&mut store)
            .map_err(|e| TrainerError::Store(format!("{}: {e}", weights.display())))?;
        if !applied.errors.is_empty() || !applied.missing.is_empty() || !applied.unused.is_empty() {
            return Err(TrainerError::Store(format!(
                "{}: does not fit the network of {CONFIG_FILE}: {applied}",
                weights.display()
            )));
        }
        Ok(EoCnn {
            infer: net.folded(),
            net,
            config,
            device,
        })
    }

    /// Class probabilities `[n, K]` (row-major) of `n` raw patches `[n, C, P, P]` in the
    /// model's channel order ([`ModelConfig::channels`]), not normalised: the model applies
    /// its own normalisation. Runs in batches of 256.
    pub fn predict_proba(&self, raw: &[f32], n: usize) -> Result<Vec<f32>, TrainerError> {
        let mut x = raw.to_vec();
        self.check_len(&x, n)?;
        normalize(
            &self.config.normalization,
            self.config.arch.patch_size,
            &mut x,
        );
        self.predict_proba_normalized(&x, n)
    }

    /// As [`EoCnn::predict_proba`] for patches already normalised.
    pub fn predict_proba_normalized(&self, x: &[f32], n: usize) -> Result<Vec<f32>, TrainerError> {
        self.check_len(x, n)?;
        let [c, p, _] = self.input_shape();
        let len = c * p * p;
        let mut out = Vec::with_capacity(n * self.config.arch.num_classes);
        for chunk in x.chunks(256 * len.max(1)) {
            let b = chunk.len() / len;
            let t =
                Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [b, c, p, p]), &self.device);
            out.extend(to_vec(softmax(self.infer.forward(t), 1))?);
        }
        Ok(out)
    }

    fn check_len(&self, x: &[f32], n: usize) -> Result<(), TrainerError> {
        let [c, p, _] = self.input_shape();
        if x.len() != n * c * p * p {
            return Err(TrainerError::Data(format!(
                "{} values are not {n} patches of {c}x{p}x{p}",
                x.len()
            )));
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainerError + '_ {
    move |source| TrainerError::Io {
        path: path.to_path_buf(),
        source,
    }
}
