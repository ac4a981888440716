//! The network: conv blocks, global average pooling, dropout, a linear classifier.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::TrainerError;

/// What the network is made of: enough to rebuild it before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Classes (outputs).
    pub num_classes: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Output channels of `block1`.
    pub width: usize,
    /// Blocks before ablation.
    pub depth: usize,
    /// Blocks left out.
    pub skip_blocks: Vec<String>,
    /// Dropout before the classifier (training only).
    pub dropout: f64,
}

impl ArchConfig {
    /// `(name, in, out)` of each kept block: block `i` outputs `width * 2^(i-1)` channels.
    pub fn blocks(&self) -> Vec<(String, usize, usize)> {
        let mut c_in = self.in_channels;
        let mut out = Vec::new();
        for i in 1..=self.depth {
            let name = format!("block{i}");
            if self.skip_blocks.contains(&name) {
                continue;
            }
            let c_out = self.width << (i - 1);
            out.push((name, c_in, c_out));
            c_in = c_out;
        }
        out
    }

    /// Features entering the classifier.
    pub fn features(&self) -> usize {
        self.blocks().last().map_or(self.in_channels, |b| b.2)
    }

    /// Checks that the network can be built (every kept block halves the patch side).
    pub fn validate(&self) -> Result<(), TrainerError> {
        if self.in_channels == 0 {
            return Err(TrainerError::param("channels", "no input channel left"));
        }
        if self.num_classes < 2 {
            return Err(TrainerError::Data(format!(
                "the dataset has {} class(es); classification needs at least 2",
                self.num_classes
            )));
        }
        let n = self.blocks().len();
        if n == 0 {
            return Err(TrainerError::param(
                "drop_block",
                "at least one block must remain",
            ));
        }
        if self.patch_size >> n == 0 {
            return Err(TrainerError::param(
                "depth",
                format!(
                    "{n} blocks halve a {p}x{p} patch {n} times: too deep for this patch size",
                    p = self.patch_size
                ),
            ));
        }
        Ok(())
    }
}

/// Conv 3x3 (same padding) -> batch norm -> ReLU -> max pool 2x2 (computed as max pool
/// then ReLU: the two commute exactly, values and gradients, and ReLU then touches a
/// quarter of the values). The convolution runs as [`crate::kernels::conv3x3`], pooling
/// and ReLU as one [`crate::kernels::pool_relu`] (our own kernels on burn flex, the same
/// values and gradients as `conv`'s, `pool`'s and `act`'s); `conv` holds the weights and
/// `act` and `pool` stay the block's description (modules without parameters: saved
/// models are unchanged).
#[derive(Module, Debug)]
pub(crate) struct ConvBlock {
    conv: Conv2d,
    norm: BatchNorm,
    act: Relu,
    pool: MaxPool2d,
}

impl ConvBlock {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        ConvBlock {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(c_out).init(device),
            act: Relu::new(),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = crate::kernels::conv3x3(x, self.conv.weight.val(), None);
        let y = self.normalize(y);
        crate::kernels::pool_relu(y)
    }

    /// The batch norm: in a training pass on burn flex through our kernel (updating the
    /// running statistics as `BatchNorm::forward` does), else burn's.
    fn normalize(&self, y: Tensor<4>) -> Tensor<4> {
        let n = &self.norm;
        if !(y.device().is_autodiff() && n.training.is_enabled()) {
            return n.forward(y);
        }
        let Some((out, mean, var)) =
            crate::kernels::batch_norm_train(y.clone(), n.gamma.val(), n.beta.val(), n.epsilon)
        else {
            return n.forward(y);
        };
        let m = n.momentum;
        let device = out.device();
        let running_mean = n.running_mean.value_sync().to_device(&device);
        let running_var = n.running_var.value_sync().to_device(&device);
        n.running_mean
            .update((running_mean * (1.0 - m) + mean.detach() * m).detach());
        n.running_var
            .update((running_var * (1.0 - m) + var.detach() * m).detach());
        out
    }

    /// The convolution with the batch norm's running statistics folded in: weight
    /// `w * s` and bias `beta - mean * s` per output channel, `s = gamma / sqrt(var + eps)`.
    fn folded(&self) -> (Tensor<4>, Tensor<1>) {
        let n = &self.norm;
        let scale = n.gamma.val() / (n.running_var.value() + n.epsilon).sqrt();
        let bias = n.beta.val() - n.running_mean.value() * scale.clone();
        let [c_out] = scale.dims();
        let weight = self.conv.weight.val() * scale.reshape([c_out, 1, 1, 1]);
        (weight, bias)
    }
}

/// The whole network.
#[derive(Module, Debug)]
pub(crate) struct Net {
    blocks: Vec<ConvBlock>,
    gap: AdaptiveAvgPool2d,
    head: Linear,
}

impl Net {
    /// A freshly initialised network (weights drawn lazily from the device's RNG: call
    /// [`Net::materialize_params`] to draw them now).
    pub(crate) fn new(arch: &ArchConfig, device: &Device) -> Net {
        Net {
            blocks: arch
                .blocks()
                .into_iter()
                .map(|(_, i, o)| ConvBlock::new(i, o, device))
                .collect(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            head: LinearConfig::new(arch.features(), arch.num_classes).init(device),
        }
    }

    /// Draws every lazily initialised parameter now (so that the draws happen while the
    /// caller holds the RNG).
    pub(crate) fn materialize_params(&self) {
        struct Touch;
        impl ModuleVisitor for Touch {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        self.visit(&mut Touch);
    }

    /// Logits `[B, K]` of `x` `[B, C, P, P]`; `keep` (`[B, F]`, 0 or 1/(1-p)) is the dropout
    /// mask of a training pass.
    pub(crate) fn forward(&self, x: Tensor<4>, keep: Option<Tensor<2>>) -> Tensor<2> {
        let mut x = x;
        for b in &self.blocks {
            x = b.forward(x);
        }
        let [n, f, _, _] = x.dims();
        let mut h: Tensor<2> = self.gap.forward(x).reshape([n, f]);
        if let Some(k) = keep {
            h = h * k;
        }
        self.head.forward(h)
    }

    /// The network for inference: batch norms folded into their convolutions (see
    /// [`InferNet`]).
    pub(crate) fn folded(&self) -> InferNet {
        InferNet {
            blocks: self.blocks.iter().map(ConvBlock::folded).collect(),
            head_weight: self.head.weight.val(),
            head_bias: self.head.bias.as_ref().map(|b| b.val()),
        }
    }

    /// Shape `[out, in, 3, 3]` of the first convolution's weight.
    pub(crate) fn first_conv_shape(&self) -> [usize; 4] {
        self.blocks[0].conv.weight.val().dims()
    }
}

/// [`Net`] in inference mode with fewer passes over the activations: each block is one
/// convolution with a bias (its batch norm's running statistics folded into the weights),
/// 2x2 max pooling, then ReLU; global average pooling and the linear head as in [`Net`].
/// Its outputs equal [`Net::forward`]'s in inference mode up to float rounding.
#[derive(Debug, Clone)]
pub(crate) struct InferNet {
    blocks: Vec<(Tensor<4>, Tensor<1>)>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
}

impl InferNet {
    /// Logits `[B, K]` of `x` `[B, C, P, P]`.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for (w, b) in &self.blocks {
            let y = crate::kernels::conv3x3(x, w.clone(), Some(b.clone()));
            x = crate::kernels::pool_relu(y);
        }
        let [n, f, _, _] = x.dims();
        let h: Tensor<2> = x.mean_dim(3).mean_dim(2).reshape([n, f]);
        linear(h, self.head_weight.clone(), self.head_bias.clone())
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;
    use crate::train::to_vec;

    #[test]
    fn the_folded_network_predicts_as_the_network() {
        // 15: odd sides, whose last row and column each pooling drops.
        for side in [16, 15] {
            folded_predicts_as_unfolded(side);
        }
    }

    fn folded_predicts_as_unfolded(side: usize) {
        let arch = ArchConfig {
            in_channels: 3,
            num_classes: 4,
            patch_size: side,
            width: 4,
            depth: 2,
            skip_blocks: Vec::new(),
            dropout: 0.0,
        };
        let device = Device::flex().autodiff();
        let net = Net::new(&arch, &device);
        // Training passes move the running statistics away from 0 and 1.
        for _ in 0..3 {
            let x =
                Tensor::<4>::random([8, 3, side, side], Distribution::Normal(1.0, 2.0), &device);
            let _ = net.forward(x, None);
        }
        let net = net.valid();
        let x = Tensor::<4>::random(
            [5, 3, side, side],
            Distribution::Normal(1.0, 2.0),
            &Device::flex(),
        );
        let a = to_vec(net.forward(x.clone(), None)).unwrap();
        let b = to_vec(net.folded().forward(x)).unwrap();
        assert_eq!(a.len(), 5 * 4);
        for (a, b) in a.iter().zip(&b) {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{side}: {a} vs {b}"
            );
        }
    }
}
