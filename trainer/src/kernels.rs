//! CPU kernels of our own for burn's `flex` backend, as a burn backend extension
//! (`#[backend_extension]`): an operation implemented for `Flex` and, with its own backward,
//! for `Autodiff<Flex>`. Other backends (wgpu) keep burn's operations.
//!
//! - `pool_relu`: 2x2 max pooling with stride 2, then ReLU. burn flex's `max_pool2d` is
//!   general (any kernel, stride, padding, dilation) and scalar, and its backward scatters
//!   one value at a time through computed indices; this one reads each window once
//!   ([`crate::pool`]: 8 windows at a time on AVX2 CPUs), keeps which of its four values won
//!   and whether ReLU zeroed it (one byte per output), and its backward writes each input
//!   plane once. Results equal `relu(max_pool2d(x))`'s (values and gradients, the first
//!   maximum of a window winning a tie), tested below.
//! - `batch_norm_train`: batch norm of a training pass. burn's composes it from tensor
//!   operations (a transposed copy of the activation for each statistic, then several
//!   elementwise passes, and as many again backward); here the statistics take two reads
//!   of the activation, the output one pass, and the backward two (gradients of the input,
//!   `gamma` and `beta` in closed form). Values and gradients equal burn's up to float
//!   rounding, tested below.
//! - `conv3x3`: 3x3 convolution, stride 1, padding 1, with a bias, and its gradients (input,
//!   weights, bias), on [`crate::conv`]'s direct SIMD kernels where the CPU has AVX2 and FMA
//!   and the plane is at least 8 pixels wide (else burn's `conv2d`). burn flex unfolds the
//!   input (im2col: 9 times the activation) and multiplies thin matrices; `cargo xtask bench
//!   train` went from 380 to about 890 training images/s with these kernels. Values and
//!   gradients equal `conv2d`'s up to float rounding, tested below.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::{conv, pool};

/// The operations of this module.
#[backend_extension(Flex, Autodiff)]
pub trait KernelBackend: Backend {
    /// ReLU of 2x2 max pooling (stride 2, no padding) of `[batch, channels, height,
    /// width]`.
    fn pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Per-channel mean and biased variance of `[batch, channels, height, width]`, as
    /// `[2, channels]`. Not differentiable: gradients do not flow through it.
    fn channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Batch norm of a training pass, `stats` being [`KernelBackend::channel_stats`] of `x`:
    /// differentiable in `x` (through the batch statistics too), `gamma` and `beta`.
    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
    /// 3x3 convolution, stride 1, padding 1, of `[batch, in, height, width]` with weights
    /// `[out, in, 3, 3]` plus `bias` (`[out]`), differentiable in all three. Only for
    /// planes [`crate::conv::supported`] serves.
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl KernelBackend for Flex {
    fn pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool_forward(&x).0
    }

    fn channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        stats_forward(&x)
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let norm = Norm::new(&gamma, &stats, epsilon);
        norm_forward(&x, &norm, &floats(&beta))
    }

    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        conv_forward(&x, &weight, &bias).0
    }
}

impl<C: CheckpointStrategy> KernelBackend for Autodiff<Flex, C> {
    fn pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct PoolBackward;

        impl Backward<Flex, 1> for PoolBackward {
            /// Which of its window's four values each output took, and the input's shape.
            type State = (Arc<Vec<u8>>, [usize; 4]);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                if let Some(node) = node {
                    let (winners, shape) = ops.state;
                    grads.register::<Flex>(node.id, pool_backward(&grad, &winners, shape));
                }
            }
        }

        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, winners, shape) = pool_forward(x.primitive());
                prep.finish((Arc::new(winners), shape), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool_forward(&x.into_primitive()).0),
        }
    }

    fn channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct NoGradient;

        impl Backward<Flex, 1> for NoGradient {
            type State = ();

            fn backward(self, _: Ops<(), 1>, _: &mut Gradients, _: &mut Checkpointer) {}
        }

        match NoGradient
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((), stats_forward(x.primitive())),
            OpsKind::UnTracked(prep) => prep.finish(stats_forward(&x.into_primitive())),
        }
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct NormBackward;

        impl Backward<Flex, 3> for NormBackward {
            /// The input and the normalisation it went through.
            type State = (FlexTensor, Arc<Norm>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x, norm) = ops.state;
                let (dx, dgamma, dbeta) = norm_backward(&x, &grad, &norm, node_x.is_some());
                let c = norm.mean.len();
                if let (Some(node), Some(dx)) = (node_x, dx) {
                    grads.register::<Flex>(node.id, dx);
                }
                if let Some(node) = node_gamma {
                    grads.register::<Flex>(
                        node.id,
                        FlexTensor::from_data(TensorData::new(dgamma, [c])),
                    );
                }
                if let Some(node) = node_beta {
                    grads.register::<Flex>(
                        node.id,
                        FlexTensor::from_data(TensorData::new(dbeta, [c])),
                    );
                }
            }
        }

        let norm = Norm::new(gamma.primitive(), stats.primitive(), epsilon);
        let beta_values = floats(beta.primitive());
        match NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = contiguous(x.primitive());
                let out = norm_forward(&input, &norm, &beta_values);
                prep.finish((input, Arc::new(norm)), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(norm_forward(&x.into_primitive(), &norm, &beta_values))
            }
        }
    }

    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvBackward;

        impl Backward<Flex, 3> for ConvBackward {
            type State = Arc<ConvSaved>;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = contiguous(&grads.consume::<Flex>(&ops.node));
                let dy: &[f32] = grad.as_slice().expect("a contiguous f32 tensor");
                let saved = ops.state;
                let [b, ci, h, w] = saved.dims;
                let co = saved.co;
                if let Some(node) = node_x {
                    let dx = conv::backward_input(dy, [b, co, h, w], &saved.weight, ci);
                    grads.register::<Flex>(
                        node.id,
                        FlexTensor::from_data(TensorData::new(dx, [b, ci, h, w])),
                    );
                }
                if let Some(node) = node_w {
                    let dw = conv::backward_weight(&saved.padded, dy, saved.dims, co);
                    grads.register::<Flex>(
                        node.id,
                        FlexTensor::from_data(TensorData::new(dw, [co, ci, 3, 3])),
                    );
                }
                if let Some(node) = node_b {
                    let plane = h * w;
                    let db: Vec<f32> = (0..co)
                        .map(|o| {
                            (0..b)
                                .map(|n| {
                                    let at = (n * co + o) * plane;
                                    f64::from(dy[at..at + plane].iter().sum::<f32>())
                                })
                                .sum::<f64>() as f32
                        })
                        .collect();
                    grads.register::<Flex>(
                        node.id,
                        FlexTensor::from_data(TensorData::new(db, [co])),
                    );
                }
            }
        }

        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, saved) =
                    conv_forward(x.primitive(), weight.primitive(), bias.primitive());
                prep.finish(Arc::new(saved), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                conv_forward(
                    &x.into_primitive(),
                    &weight.into_primitive(),
                    &bias.into_primitive(),
                )
                .0,
            ),
        }
    }
}

/// Whether this module's kernels serve tensors of `device` (burn flex, with or without
/// autodiff).
fn served(device: &Device) -> bool {
    let flex = Device::flex();
    *device == flex || *device == flex.autodiff()
}

/// ReLU of 2x2 max pooling with stride 2 (odd last rows and columns dropped, as
/// `max_pool2d` does): this module's kernel on burn flex, burn's `max_pool2d` and `relu`
/// elsewhere.
pub(crate) fn pool_relu(x: Tensor<4>) -> Tensor<4> {
    if served(&x.device()) && x.dtype() == DType::F32 {
        Tensor::from_dispatch(<Dispatch as KernelBackend>::pool_relu(x.into_dispatch()))
    } else {
        burn::tensor::activation::relu(burn::tensor::module::max_pool2d(
            x,
            burn::tensor::ops::MaxPoolOptions::new([2, 2]),
        ))
    }
}

/// Batch norm of a training pass on burn flex with this module's kernels (values and
/// gradients as burn's `batch_norm_train`, tested below): the output, and the batch's
/// per-channel mean and biased variance (for the running statistics). `None` on other
/// devices and dtypes, which take burn's batch norm.
pub(crate) fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    if !served(&x.device()) || x.dtype() != DType::F32 {
        return None;
    }
    let [_, c, _, _] = x.dims();
    let stats: Tensor<2> = Tensor::from_dispatch(<Dispatch as KernelBackend>::channel_stats(
        x.clone().detach().into_dispatch(),
    ));
    let out = Tensor::from_dispatch(<Dispatch as KernelBackend>::batch_norm_apply(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
    ));
    let mean = stats.clone().slice([0..1, 0..c]).reshape([c]);
    let var = stats.slice([1..2, 0..c]).reshape([c]);
    Some((out, mean, var))
}

/// 3x3 convolution, stride 1, padding 1 (one group, no dilation) of `x` (`[batch, in,
/// height, width]`) with `weight` (`[out, in, 3, 3]`) and an optional `bias`: on burn flex,
/// where [`conv::supported`] says so, this module's kernel (values and gradients equal
/// burn's `conv2d`'s up to float rounding, tested below), else burn's `conv2d`.
pub(crate) fn conv3x3(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [_, ci, h, w] = x.dims();
    let [co, wi, kh, kw] = weight.dims();
    if served(&x.device())
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32)
        && conv::supported(h, w)
        && [wi, kh, kw] == [ci, 3, 3]
    {
        let bias = bias.unwrap_or_else(|| Tensor::zeros([co], &weight.device()));
        Tensor::from_dispatch(<Dispatch as KernelBackend>::conv3x3(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ))
    } else {
        burn::tensor::module::conv2d(
            x,
            weight,
            bias,
            burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        )
    }
}

/// What a convolution's backward needs: the padded input, the weights, the shapes.
#[derive(Debug)]
struct ConvSaved {
    padded: Vec<f32>,
    weight: Vec<f32>,
    dims: [usize; 4],
    co: usize,
}

/// The convolution's output and what its backward needs.
fn conv_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> (FlexTensor, ConvSaved) {
    let x = contiguous(x);
    let dims = dims4(&x);
    let [b, _, h, w] = dims;
    let weight = floats(weight);
    let bias = floats(bias);
    let co = bias.len();
    let padded = conv::pad(x.as_slice().expect("a contiguous f32 tensor"), dims);
    let out = conv::forward(&padded, dims, &weight, co, Some(&bias));
    let out = FlexTensor::from_data(TensorData::new(out, [b, co, h, w]));
    (
        out,
        ConvSaved {
            padded,
            weight,
            dims,
            co,
        },
    )
}

fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// The values of a small (per-channel) tensor.
fn floats(t: &FlexTensor) -> Vec<f32> {
    contiguous(t)
        .as_slice::<f32>()
        .expect("a contiguous f32 tensor")
        .to_vec()
}

/// A batch norm's per-channel terms: `y = (x - mean) * inv_std * gamma + beta`.
#[derive(Debug)]
struct Norm {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
}

impl Norm {
    /// From `gamma` and `stats` (`[2, channels]`: means, then biased variances).
    fn new(gamma: &FlexTensor, stats: &FlexTensor, epsilon: f64) -> Norm {
        let gamma = floats(gamma);
        let stats = floats(stats);
        let c = gamma.len();
        Norm {
            mean: stats[..c].to_vec(),
            inv_std: stats[c..2 * c]
                .iter()
                .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
                .collect(),
            gamma,
        }
    }
}

/// [`KernelBackend::channel_stats`]: two passes per channel, accumulated in f64.
fn stats_forward(x: &FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let [b, c, h, w] = dims4(&x);
    let plane = h * w;
    let input: &[f32] = x.as_slice().expect("a contiguous f32 tensor");
    let n = (b * plane).max(1) as f64;
    let planes = |ch: usize| (0..b).map(move |bi| (bi * c + ch) * plane);
    let stats: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = planes(ch)
                .map(|at| {
                    input[at..at + plane]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum::<f64>()
                })
                .sum();
            let mean = sum / n;
            let sq: f64 = planes(ch)
                .map(|at| {
                    input[at..at + plane]
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                })
                .sum();
            (mean, sq / n)
        })
        .collect();
    let mut out: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
    out.extend(stats.iter().map(|s| s.1 as f32));
    FlexTensor::from_data(TensorData::new(out, [2, c]))
}

/// The normalised, scaled and shifted input.
fn norm_forward(x: &FlexTensor, norm: &Norm, beta: &[f32]) -> FlexTensor {
    let x = contiguous(x);
    let shape = dims4(&x);
    let [_, c, h, w] = shape;
    let plane = h * w;
    let input: &[f32] = x.as_slice().expect("a contiguous f32 tensor");
    let mut out = vec![0f32; input.len()];
    if plane > 0 {
        out.par_chunks_mut(plane).enumerate().for_each(|(p, out)| {
            let ch = p % c;
            let scale = norm.inv_std[ch] * norm.gamma[ch];
            let shift = beta[ch] - norm.mean[ch] * scale;
            for (o, &v) in out.iter_mut().zip(&input[p * plane..(p + 1) * plane]) {
                *o = v * scale + shift;
            }
        });
    }
    FlexTensor::from_data(TensorData::new(out, shape))
}

/// Gradients of a training batch norm: of `x` (when `want_dx`), `gamma` and `beta`, from
/// the output's gradient `dy`. With `xhat = (x - mean) * inv_std` over the `n` values of a
/// channel: `dbeta = sum(dy)`, `dgamma = sum(dy * xhat)`,
/// `dx = gamma * inv_std * (dy - dbeta / n - xhat * dgamma / n)`.
fn norm_backward(
    x: &FlexTensor,
    dy: &FlexTensor,
    norm: &Norm,
    want_dx: bool,
) -> (Option<FlexTensor>, Vec<f32>, Vec<f32>) {
    let dy = contiguous(dy);
    let shape = dims4(x);
    let [b, c, h, w] = shape;
    let plane = h * w;
    let input: &[f32] = x.as_slice().expect("a contiguous f32 tensor");
    let g: &[f32] = dy.as_slice().expect("a contiguous f32 tensor");
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mean, inv_std) = (norm.mean[ch], norm.inv_std[ch]);
            let (mut sum_dy, mut sum_dy_xhat) = (0f64, 0f64);
            for bi in 0..b {
                let at = (bi * c + ch) * plane;
                let (mut a, mut d) = (0f32, 0f32);
                for (&gv, &xv) in g[at..at + plane].iter().zip(&input[at..at + plane]) {
                    a += gv;
                    d += gv * (xv - mean) * inv_std;
                }
                sum_dy += f64::from(a);
                sum_dy_xhat += f64::from(d);
            }
            (sum_dy, sum_dy_xhat)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let dx = want_dx.then(|| {
        let n = (b * plane).max(1) as f32;
        let mut dx = vec![0f32; input.len()];
        if plane > 0 {
            dx.par_chunks_mut(plane).enumerate().for_each(|(p, dx)| {
                let ch = p % c;
                let (mean, inv_std) = (norm.mean[ch], norm.inv_std[ch]);
                let k = norm.gamma[ch] * inv_std;
                let (mean_dy, mean_dy_xhat) = (dbeta[ch] / n, dgamma[ch] / n);
                let range = p * plane..(p + 1) * plane;
                for ((o, &gv), &xv) in dx.iter_mut().zip(&g[range.clone()]).zip(&input[range]) {
                    let xhat = (xv - mean) * inv_std;
                    *o = k * (gv - mean_dy - xhat * mean_dy_xhat);
                }
            });
        }
        FlexTensor::from_data(TensorData::new(dx, shape))
    });
    (dx, dgamma, dbeta)
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let dims = t.layout().shape().dims::<4>();
    [dims[0], dims[1], dims[2], dims[3]]
}

/// The pooled tensor after ReLU, which value of each window won (0..4, row-major in the
/// window, plus [`pool::DEAD`] where ReLU zeroed it), and the input's shape.
fn pool_forward(x: &FlexTensor) -> (FlexTensor, Vec<u8>, [usize; 4]) {
    let x = contiguous(x);
    let shape = dims4(&x);
    let [b, c, h, w] = shape;
    let (h2, w2) = (h / 2, w / 2);
    let input: &[f32] = x.as_slice().expect("a contiguous f32 tensor");
    let mut out = vec![0f32; b * c * h2 * w2];
    let mut winners = vec![0u8; out.len()];
    if h2 > 0 && w2 > 0 {
        out.par_chunks_mut(h2 * w2)
            .zip(winners.par_chunks_mut(h2 * w2))
            .enumerate()
            .for_each(|(plane, (out, won))| {
                let src = &input[plane * h * w..(plane + 1) * h * w];
                for i in 0..h2 {
                    let top = &src[2 * i * w..2 * i * w + 2 * w2];
                    let bottom = &src[(2 * i + 1) * w..(2 * i + 1) * w + 2 * w2];
                    pool::rows(
                        top,
                        bottom,
                        &mut out[i * w2..(i + 1) * w2],
                        &mut won[i * w2..(i + 1) * w2],
                    );
                }
            });
    }
    let out = FlexTensor::from_data(TensorData::new(out, [b, c, h2, w2]));
    (out, winners, shape)
}

/// The input's gradient: each output's gradient at the value that won its window (unless
/// ReLU zeroed that output), zero elsewhere.
fn pool_backward(grad: &FlexTensor, winners: &[u8], shape: [usize; 4]) -> FlexTensor {
    let grad = contiguous(grad);
    let [b, c, h, w] = shape;
    let (h2, w2) = (h / 2, w / 2);
    let g: &[f32] = grad.as_slice().expect("a contiguous f32 tensor");
    let mut dx = vec![0f32; b * c * h * w];
    if h2 > 0 && w2 > 0 {
        dx.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(plane, dx)| {
                let g = &g[plane * h2 * w2..(plane + 1) * h2 * w2];
                let won = &winners[plane * h2 * w2..(plane + 1) * h2 * w2];
                for i in 0..h2 {
                    for j in 0..w2 {
                        let k = won[i * w2 + j];
                        if k < pool::DEAD {
                            let (di, dj) = (usize::from(k / 2), usize::from(k % 2));
                            dx[(2 * i + di) * w + 2 * j + dj] = g[i * w2 + j];
                        }
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(dx, [b, c, h, w]))
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Distribution, Tensor};

    use super::*;
    use crate::train::to_vec;

    /// Values and gradients equal burn's `relu(max_pool2d(x))`'s: odd sides, rows long
    /// enough for the vector path, and values with many ties, zeros and negatives.
    #[test]
    fn pool_relu_equals_relu_of_max_pool2d_forward_and_backward() {
        assert!(served(&Device::flex()) && served(&Device::flex().autodiff()));
        let device = Device::flex().autodiff();
        for [h, w] in [[8, 8], [7, 9], [2, 3], [4, 37], [3, 32]] {
            let normal = Tensor::<4>::random([3, 4, h, w], Distribution::Normal(0.0, 1.0), &device);
            // Whole numbers in -2..=2: ties everywhere.
            let ties = Tensor::<4>::random([3, 4, h, w], Distribution::Uniform(-2.5, 2.5), &device)
                .round();
            for (kind, data) in [("normal", normal.into_data()), ("ties", ties.into_data())] {
                let ours = Tensor::<4>::from_data(data.clone(), &device).require_grad();
                let theirs = Tensor::<4>::from_data(data, &device).require_grad();
                let y_ours = pool_relu(ours.clone());
                let y_theirs = burn::tensor::activation::relu(max_pool2d(
                    theirs.clone(),
                    MaxPoolOptions::new([2, 2]),
                ));
                assert_eq!(y_ours.dims(), y_theirs.dims());
                let weights =
                    Tensor::<4>::random(y_ours.dims(), Distribution::Normal(0.0, 1.0), &device);
                let a = to_vec(y_ours.clone()).unwrap();
                let b = to_vec(y_theirs.clone()).unwrap();
                assert_eq!(a, b, "{h}x{w} {kind} forward");
                let g_ours = (y_ours * weights.clone()).sum().backward();
                let g_theirs = (y_theirs * weights).sum().backward();
                let ga = to_vec(ours.grad(&g_ours).expect("grad")).unwrap();
                let gb = to_vec(theirs.grad(&g_theirs).expect("grad")).unwrap();
                assert_eq!(ga, gb, "{h}x{w} {kind} backward");
            }
        }
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Values, statistics and gradients equal burn's `batch_norm_train`'s.
    #[test]
    fn batch_norm_train_equals_burns() {
        let device = Device::flex().autodiff();
        let (c, eps) = (5, 1e-5);
        let random = |dims: Vec<usize>, mean: f64, sd: f64| {
            Tensor::<1>::random(
                [dims.iter().product::<usize>()],
                Distribution::Normal(mean, sd),
                &device,
            )
            .into_data()
        };
        let x = random(vec![4, c, 6, 7], 2.0, 3.0);
        let gamma = random(vec![c], 1.0, 0.5);
        let beta = random(vec![c], 0.0, 0.5);
        let leaf4 = || {
            Tensor::<1>::from_data(x.clone(), &device)
                .reshape([4, c, 6, 7])
                .detach()
                .require_grad()
        };
        let leaf1 = |d: &TensorData| Tensor::<1>::from_data(d.clone(), &device).require_grad();
        let (x1, g1, b1) = (leaf4(), leaf1(&gamma), leaf1(&beta));
        let (x2, g2, b2) = (leaf4(), leaf1(&gamma), leaf1(&beta));
        let (y1, mean1, var1) =
            batch_norm_train(x1.clone(), g1.clone(), b1.clone(), eps).expect("served on flex");
        let theirs =
            burn::tensor::module::batch_norm_train(x2.clone(), g2.clone(), b2.clone(), eps);
        let v = |t: Tensor<4>| to_vec(t).unwrap();
        close(&v(y1.clone()), &v(theirs.output.clone()), 1e-4, "output");
        close(
            &to_vec(mean1).unwrap(),
            &to_vec(theirs.mean).unwrap(),
            1e-5,
            "mean",
        );
        close(
            &to_vec(var1).unwrap(),
            &to_vec(theirs.variance).unwrap(),
            1e-4,
            "variance",
        );
        let weights = Tensor::<4>::random([4, c, 6, 7], Distribution::Normal(0.0, 1.0), &device);
        let ga = (y1 * weights.clone()).sum().backward();
        let gb = (theirs.output * weights).sum().backward();
        let grad4 = |t: &Tensor<4>, g| to_vec(t.grad(g).expect("grad")).unwrap();
        let grad1 = |t: &Tensor<1>, g| to_vec(t.grad(g).expect("grad")).unwrap();
        close(&grad4(&x1, &ga), &grad4(&x2, &gb), 1e-3, "x grad");
        close(&grad1(&g1, &ga), &grad1(&g2, &gb), 1e-3, "gamma grad");
        close(&grad1(&b1, &ga), &grad1(&b2, &gb), 1e-3, "beta grad");
    }

    /// Values and gradients (input, weights, bias) equal burn's `conv2d`'s, for planes the
    /// kernel serves (widths that are and are not multiples of 8) and one it leaves to burn.
    #[test]
    fn conv3x3_equals_conv2d_forward_and_backward() {
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        let device = Device::flex().autodiff();
        for (ci, co, h, w) in [(3, 8, 8, 16), (5, 6, 7, 11), (2, 3, 4, 4)] {
            let data = |dims: Vec<usize>, seed: f64| {
                Tensor::<1>::random(
                    [dims.iter().product::<usize>()],
                    Distribution::Normal(seed, 1.0),
                    &device,
                )
                .into_data()
            };
            let (xd, wd, bd) = (
                data(vec![2, ci, h, w], 0.5),
                data(vec![co, ci, 3, 3], 0.0),
                data(vec![co], 0.1),
            );
            let leaves = || {
                (
                    Tensor::<1>::from_data(xd.clone(), &device)
                        .reshape([2, ci, h, w])
                        .detach()
                        .require_grad(),
                    Tensor::<1>::from_data(wd.clone(), &device)
                        .reshape([co, ci, 3, 3])
                        .detach()
                        .require_grad(),
                    Tensor::<1>::from_data(bd.clone(), &device).require_grad(),
                )
            };
            let (x1, w1, b1) = leaves();
            let (x2, w2, b2) = leaves();
            let ours = conv3x3(x1.clone(), w1.clone(), Some(b1.clone()));
            let theirs = conv2d(
                x2.clone(),
                w2.clone(),
                Some(b2.clone()),
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let what = format!("{ci}->{co} {h}x{w}");
            close(
                &to_vec(ours.clone()).unwrap(),
                &to_vec(theirs.clone()).unwrap(),
                1e-4,
                &format!("{what} forward"),
            );
            let r = Tensor::<4>::random([2, co, h, w], Distribution::Normal(0.0, 1.0), &device);
            let ga = (ours * r.clone()).sum().backward();
            let gb = (theirs * r).sum().backward();
            let g4 = |t: &Tensor<4>, g| to_vec(t.grad(g).expect("grad")).unwrap();
            close(&g4(&x1, &ga), &g4(&x2, &gb), 1e-4, &format!("{what} dx"));
            close(&g4(&w1, &ga), &g4(&w2, &gb), 1e-4, &format!("{what} dw"));
            close(
                &to_vec(b1.grad(&ga).expect("grad")).unwrap(),
                &to_vec(b2.grad(&gb).expect("grad")).unwrap(),
                1e-4,
                &format!("{what} db"),
            );
        }
    }

    #[test]
    fn pool_relu_without_autodiff_pools_and_zeroes_negatives() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                vec![
                    1.0f32, 5.0, -2.0, -1.0, 3.0, 4.0, -8.0, -7.0, 9.0, 9.0, 9.0, 9.0,
                ],
                [1, 1, 3, 4],
            ),
            &device,
        );
        assert_eq!(to_vec(pool_relu(x)).unwrap(), vec![5.0, 0.0]);
    }
}
