//! Hyperparameters of a training run ([`TrainConfig`]), the compute device ([`Compute`]),
//! and how a trial's JSON parameters map onto them ([`TrainConfig::from_params`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TrainerError;

/// Largest number of conv blocks.
pub const MAX_DEPTH: usize = 6;

/// Largest width (channels of the first block).
pub const MAX_WIDTH: usize = 512;

/// The optimizer of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (beta1 0.9, beta2 0.999, epsilon 1e-5).
    Adam,
    /// Stochastic gradient descent with momentum ([`TrainConfig::momentum`], no dampening).
    Sgd,
}

impl FromStr for OptimizerKind {
    type Err = TrainerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "adam" => Ok(Self::Adam),
            "sgd" | "sgd_momentum" | "momentum" => Ok(Self::Sgd),
            _ => Err(TrainerError::param(
                "optimizer",
                "must be \"adam\" or \"sgd\"",
            )),
        }
    }
}

/// Where the tensors live. The default build has [`Compute::Cpu`] (burn's `flex` backend)
/// only; [`Compute::Wgpu`] needs the crate feature `wgpu` and fails with
/// [`TrainerError::DeviceUnavailable`] in a build without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    /// burn's pure-Rust `flex` CPU backend (SIMD, rayon threads).
    #[default]
    Cpu,
    /// burn's `wgpu` backend on the default adapter (Vulkan, Metal, DX12).
    Wgpu,
}

impl Compute {
    /// The devices this build can use.
    pub fn available() -> Vec<Compute> {
        let mut v = vec![Compute::Cpu];
        if cfg!(feature = "wgpu") {
            v.push(Compute::Wgpu);
        }
        v
    }

    /// The burn device (without autodiff).
    pub fn device(self) -> Result<burn::tensor::Device, TrainerError> {
        match self {
            Compute::Cpu => Ok(burn::tensor::Device::flex()),
            #[cfg(feature = "wgpu")]
            Compute::Wgpu => Ok(burn::tensor::Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            Compute::Wgpu => Err(TrainerError::DeviceUnavailable(
                "wgpu: this build has no GPU backend (build albedo-trainer with feature `wgpu`)"
                    .into(),
            )),
        }
    }
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compute::Cpu => "cpu",
            Compute::Wgpu => "wgpu",
        })
    }
}

impl FromStr for Compute {
    type Err = TrainerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Compute::Cpu),
            "wgpu" | "gpu" => Ok(Compute::Wgpu),
            other => Err(TrainerError::DeviceUnavailable(format!(
                "unknown device '{other}' (cpu or wgpu)"
            ))),
        }
    }
}

/// Hyperparameters of one training run. Serialisable (it is saved beside the model).
///
/// The model: `depth` blocks named `block1` .. `block<depth>`, block `i` a 3x3 convolution
/// to `width * 2^(i-1)` channels, batch norm, ReLU and 2x2 max pooling; then global average
/// pooling, dropout and a linear layer to the classes. Blocks named in `skip_blocks` are left
/// out (the next kept block takes the previous kept block's output), which is how blocks are
/// ablated; `channels` picks and orders the input channels by name (a band or feature
/// ablation is a shorter list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Input channels by name, in order; empty: every channel of the dataset.
    pub channels: Vec<String>,
    /// Channels removed from `channels` (or from every channel of the dataset): a band or
    /// feature ablation.
    pub drop_channels: Vec<String>,
    /// Output channels of the first block (1..=[`MAX_WIDTH`]); block `i` has `width * 2^(i-1)`.
    pub width: usize,
    /// Number of conv blocks (1..=[`MAX_DEPTH`]) before ablation.
    pub depth: usize,
    /// Blocks left out (`block1` ..), at least one block must remain.
    pub skip_blocks: Vec<String>,
    /// Dropout probability before the classifier (0 <= p < 1).
    pub dropout: f64,
    /// Learning rate (> 0).
    pub lr: f64,
    /// Samples per batch (>= 1).
    pub batch_size: usize,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Momentum of SGD (0 <= m < 1); unused by Adam.
    pub momentum: f64,
    /// Passes over the train split (>= 1).
    pub epochs: u32,
    /// Seed of the weights, the batch order and the dropout masks.
    pub seed: u64,
    /// Progress reports per epoch (>= 1): at the end of each epoch, and evenly within it
    /// when more than 1 (each report evaluates the val split).
    pub reports_per_epoch: u32,
    /// Threads of the local rayon pool the run uses; `None`: rayon's default
    /// (`RAYON_NUM_THREADS`, else one per core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            channels: Vec::new(),
            drop_channels: Vec::new(),
            width: 16,
            depth: 3,
            skip_blocks: Vec::new(),
            dropout: 0.2,
            lr: 1e-3,
            batch_size: 32,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            epochs: 5,
            seed: 0,
            reports_per_epoch: 1,
            threads: None,
        }
    }
}

/// The trial parameters [`TrainConfig::from_params`] accepts.
pub const PARAMS: &[&str] = &[
    "lr",
    "learning_rate",
    "width",
    "depth",
    "dropout",
    "batch_size",
    "epochs",
    "optimizer",
    "momentum",
    "seed",
    "channels",
    "drop_channels",
    "drop_block",
    "skip_blocks",
    "reports_per_epoch",
    "threads",
    "ablate",
];

impl TrainConfig {
    /// Names of the blocks kept, in order.
    pub fn kept_blocks(&self) -> Vec<String> {
        (1..=self.depth)
            .map(|i| format!("block{i}"))
            .filter(|b| !self.skip_blocks.contains(b))
            .collect()
    }

    /// Checks the ranges (errors name the parameter).
    pub fn validate(&self) -> Result<(), TrainerError> {
        if !(1..=MAX_WIDTH).contains(&self.width) {
            return Err(TrainerError::param(
                "width",
                format!("must be 1..={MAX_WIDTH}"),
            ));
        }
        if !(1..=MAX_DEPTH).contains(&self.depth) {
            return Err(TrainerError::param(
                "depth",
                format!("must be 1..={MAX_DEPTH}"),
            ));
        }
        for b in &self.skip_blocks {
            let ok = b
                .strip_prefix("block")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (1..=self.depth).contains(&n));
            if !ok {
                return Err(TrainerError::param(
                    "drop_block",
                    format!(
                        "'{b}' is not a block of this model (block1..block{})",
                        self.depth
                    ),
                ));
            }
        }
        if self.kept_blocks().is_empty() {
            return Err(TrainerError::param(
                "drop_block",
                "at least one block must remain",
            ));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(TrainerError::param("dropout", "must be in [0, 1)"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(TrainerError::param("lr", "must be a positive number"));
        }
        if self.batch_size == 0 {
            return Err(TrainerError::param("batch_size", "must be at least 1"));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(TrainerError::param("momentum", "must be in [0, 1)"));
        }
        if self.epochs == 0 {
            return Err(TrainerError::param("epochs", "must be at least 1"));
        }
        if self.reports_per_epoch == 0 {
            return Err(TrainerError::param(
                "reports_per_epoch",
                "must be at least 1",
            ));
        }
        if self.threads == Some(0) {
            return Err(TrainerError::param("threads", "must be at least 1"));
        }
        let mut seen = BTreeSet::new();
        for c in &self.channels {
            if !seen.insert(c) {
                return Err(TrainerError::param(
                    "channels",
                    format!("'{c}' is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// The run's configuration from a trial's parameters, over the defaults. Accepted names:
    /// [`PARAMS`]; any other is an error (a typo would otherwise silently train defaults).
    ///
    /// - `lr` (or `learning_rate`), `dropout`, `momentum`: numbers; `width`, `depth`,
    ///   `batch_size`, `epochs`, `seed`, `reports_per_epoch`, `threads`: whole numbers
    ///   (`32` or `32.0`); `optimizer`: `"adam"` or `"sgd"`.
    /// - `channels`: the input channels (an array of names, or one comma-separated string);
    ///   `drop_channels`: names removed from them (from every channel of the dataset when
    ///   `channels` is absent; both resolved by [`crate::train()`] against the dataset).
    /// - `drop_block` (or `skip_blocks`): a block name or an array of them (`"block2"`).
    /// - `ablate`: the list of removed components of an ablation trial (see
    ///   `albedo_tuning::ablation`): `band_group` removes its `members` (or its name when it
    ///   has none) from the channels, `feature` removes the channel of its name (or its
    ///   members), `block` skips the block of its name; `named` is refused (an eo_cnn trial
    ///   has no other components).
    pub fn from_params(params: &BTreeMap<String, Value>) -> Result<TrainConfig, TrainerError> {
        let mut c = TrainConfig::default();
        let mut drop = Vec::new();
        for (name, v) in params {
            match name.as_str() {
                "lr" | "learning_rate" => c.lr = float(name, v)?,
                "dropout" => c.dropout = float(name, v)?,
                "momentum" => c.momentum = float(name, v)?,
                "width" => c.width = whole(name, v)? as usize,
                "depth" => c.depth = whole(name, v)? as usize,
                "batch_size" => c.batch_size = whole(name, v)? as usize,
                "epochs" => c.epochs = u32_of(name, v)?,
                "reports_per_epoch" => c.reports_per_epoch = u32_of(name, v)?,
                "seed" => c.seed = whole(name, v)?,
                "threads" => c.threads = Some(whole(name, v)? as usize),
                "optimizer" => {
                    c.optimizer = v
                        .as_str()
                        .ok_or_else(|| TrainerError::param(name, "must be a string"))?
                        .parse()?;
                }
                "channels" => c.channels = names(name, v)?,
                "drop_channels" => drop.extend(names(name, v)?),
                "drop_block" | "skip_blocks" => c.skip_blocks.extend(names(name, v)?),
                "ablate" => ablate(v, &mut drop, &mut c.skip_blocks)?,
                other => {
                    return Err(TrainerError::param(
                        other,
                        format!("unknown parameter (accepted: {})", PARAMS.join(", ")),
                    ));
                }
            }
        }
        c.skip_blocks.sort();
        c.skip_blocks.dedup();
        for d in drop {
            if !c.drop_channels.contains(&d) {
                c.drop_channels.push(d);
            }
        }
        c.validate()?;
        Ok(c)
    }
}

fn float(name: &str, v: &Value) -> Result<f64, TrainerError> {
    v.as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| TrainerError::param(name, "must be a number"))
}

fn whole(name: &str, v: &Value) -> Result<u64, TrainerError> {
    if let Some(u) = v.as_u64() {
        return Ok(u);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9.0e15 => Ok(f as u64),
        _ => Err(TrainerError::param(
            name,
            "must be a whole number, 0 or more",
        )),
    }
}

fn u32_of(name: &str, v: &Value) -> Result<u32, TrainerError> {
    u32::try_from(whole(name, v)?).map_err(|_| TrainerError::param(name, "is too large"))
}

/// A name, a comma-separated string of names, or an array of names.
fn names(name: &str, v: &Value) -> Result<Vec<String>, TrainerError> {
    match v {
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(String::from)
                    .ok_or_else(|| TrainerError::param(name, "must hold strings"))
            })
            .collect(),
        _ => Err(TrainerError::param(
            name,
            "must be a string or an array of strings",
        )),
    }
}

fn ablate(v: &Value, drop: &mut Vec<String>, skip: &mut Vec<String>) -> Result<(), TrainerError> {
    let items = v
        .as_array()
        .ok_or_else(|| TrainerError::param("ablate", "must be an array of components"))?;
    for item in items {
        let field = |f: &str| item.get(f).and_then(Value::as_str).map(String::from);
        let name = field("name")
            .ok_or_else(|| TrainerError::param("ablate", "a component has no name"))?;
        let members = match item.get("members") {
            None | Some(Value::Null) => Vec::new(),
            Some(m) => names("ablate.members", m)?,
        };
        let members = if members.is_empty() {
            vec![name.clone()]
        } else {
            members
        };
        match field("kind").as_deref() {
            Some("band_group") | Some("feature") => drop.extend(members),
            Some("block") => skip.extend(members),
            other => {
                return Err(TrainerError::param(
                    "ablate",
                    format!(
                        "component '{name}' of kind {other:?}: an eo_cnn trial ablates \
                         band_group, feature and block components only"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn params_map_onto_the_config() {
        let c = TrainConfig::from_params(&p(json!({
            "lr": 0.01, "width": 32.0, "depth": 4, "dropout": 0.5, "batch_size": 8,
            "epochs": 3, "optimizer": "sgd", "seed": 7, "channels": "B02, B03,B04",
            "drop_block": "block2", "drop_channels": ["B04"], "threads": 2
        })))
        .unwrap();
        assert_eq!(c.lr, 0.01);
        assert_eq!(
            (c.width, c.depth, c.batch_size, c.epochs, c.seed),
            (32, 4, 8, 3, 7)
        );
        assert_eq!(c.optimizer, OptimizerKind::Sgd);
        assert_eq!(c.channels, ["B02", "B03", "B04"]);
        assert_eq!(c.skip_blocks, ["block2"]);
        assert_eq!(c.kept_blocks(), ["block1", "block3", "block4"]);
        assert_eq!(c.drop_channels, ["B04"]);
        assert_eq!(c.threads, Some(2));
    }

    #[test]
    fn ablation_components() {
        let c = TrainConfig::from_params(&p(json!({
            "ablate": [{"name": "swir", "kind": "band_group", "members": ["B11", "B12"]},
                       {"name": "NDVI", "kind": "feature"},
                       {"name": "block3", "kind": "block"}]
        })))
        .unwrap();
        assert_eq!(c.drop_channels, ["B11", "B12", "NDVI"]);
        assert_eq!(c.skip_blocks, ["block3"]);
        assert!(
            TrainConfig::from_params(&p(json!({"ablate": [{"name": "x", "kind": "named"}]})))
                .is_err()
        );
    }

    #[test]
    fn bad_params_name_the_parameter() {
        for (v, field) in [
            (json!({"learning_rat": 0.1}), "learning_rat"),
            (json!({"width": 0}), "width"),
            (json!({"width": 2.5}), "width"),
            (json!({"depth": 9}), "depth"),
            (json!({"dropout": 1.0}), "dropout"),
            (json!({"lr": -1}), "lr"),
            (json!({"optimizer": "rmsprop"}), "optimizer"),
            (json!({"depth": 2, "drop_block": "block3"}), "drop_block"),
            (json!({"depth": 1, "drop_block": "block1"}), "drop_block"),
            (json!({"channels": ["B02", "B02"]}), "channels"),
            (json!({"epochs": 0}), "epochs"),
        ] {
            let e = TrainConfig::from_params(&p(v.clone())).unwrap_err();
            assert!(
                matches!(&e, TrainerError::BadParam { name, .. } if name == field),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Compute>().unwrap(), Compute::Cpu);
        assert_eq!("WGPU".parse::<Compute>().unwrap(), Compute::Wgpu);
        assert!("cuda".parse::<Compute>().is_err());
        assert!(Compute::available().contains(&Compute::Cpu));
        assert_eq!(Compute::Wgpu.device().is_ok(), cfg!(feature = "wgpu"));
    }
}
