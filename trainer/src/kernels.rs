//! CPU kernels of our own for burn's `flex` backend, as a burn backend extension
//! (`#[backend_extension]`): an operation implemented for `Flex` and, with its own backward,
//! for `Autodiff<Flex>`. Other backends (wgpu) keep burn's operations.
//!
//! - `max_pool_2x2`: 2x2 max pooling with stride 2. burn flex's `max_pool2d` is general
//!   (any kernel, stride, padding, dilation) and scalar, and its backward scatters one value
//!   at a time through computed indices; this one reads each window once, keeps which of
//!   its four values won (one byte per output), and its backward writes each input plane
//!   once. Results equal `max_pool2d`'s (values and gradients, the first maximum of a
//!   window winning a tie), tested below.

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

/// The operations of this module.
#[backend_extension(Flex, Autodiff)]
pub trait KernelBackend: Backend {
    /// 2x2 max pooling, stride 2, no padding, of `[batch, channels, height, width]`.
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl KernelBackend for Flex {
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool_forward(&x).0
    }
}

impl<C: CheckpointStrategy> KernelBackend for Autodiff<Flex, C> {
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
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
}

/// Whether this module's kernels serve tensors of `device` (burn flex, with or without
/// autodiff).
fn served(device: &Device) -> bool {
    let flex = Device::flex();
    *device == flex || *device == flex.autodiff()
}

/// 2x2 max pooling with stride 2 (odd last rows and columns dropped, as `max_pool2d`
/// does): this module's kernel on burn flex, burn's `max_pool2d` elsewhere.
pub(crate) fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    if served(&x.device()) && x.dtype() == DType::F32 {
        Tensor::from_dispatch(<Dispatch as KernelBackend>::max_pool_2x2(x.into_dispatch()))
    } else {
        burn::tensor::module::max_pool2d(x, burn::tensor::ops::MaxPoolOptions::new([2, 2]))
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let dims = t.layout().shape().dims::<4>();
    [dims[0], dims[1], dims[2], dims[3]]
}

/// The pooled tensor, which value of each window won (0..4, row-major in the window), and
/// the input's shape.
fn pool_forward(x: &FlexTensor) -> (FlexTensor, Vec<u8>, [usize; 4]) {
    let x = if x.is_contiguous() {
        x.clone()
    } else {
        x.to_contiguous()
    };
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
                    let row = &mut out[i * w2..(i + 1) * w2];
                    let row_won = &mut won[i * w2..(i + 1) * w2];
                    for j in 0..w2 {
                        let v = [top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]];
                        let mut k = 0;
                        for (n, &value) in v.iter().enumerate().skip(1) {
                            // NaN wins, as in max_pool2d: a NaN input is not hidden.
                            if value > v[k] || (value.is_nan() && !v[k].is_nan()) {
                                k = n;
                            }
                        }
                        row[j] = v[k];
                        row_won[j] = k as u8;
                    }
                }
            });
    }
    let out = FlexTensor::from_data(TensorData::new(out, [b, c, h2, w2]));
    (out, winners, shape)
}

/// The input's gradient: each output's gradient at the value that won its window, zero
/// elsewhere.
fn pool_backward(grad: &FlexTensor, winners: &[u8], shape: [usize; 4]) -> FlexTensor {
    let grad = if grad.is_contiguous() {
        grad.clone()
    } else {
        grad.to_contiguous()
    };
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
                        let k = usize::from(won[i * w2 + j]);
                        let (di, dj) = (k / 2, k % 2);
                        dx[(2 * i + di) * w + 2 * j + dj] = g[i * w2 + j];
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

    /// Values and gradients equal burn's `max_pool2d`'s, odd sides included.
    #[test]
    fn max_pool_2x2_equals_max_pool2d_forward_and_backward() {
        assert!(served(&Device::flex()) && served(&Device::flex().autodiff()));
        for [h, w] in [[8, 8], [7, 9], [2, 3]] {
            let device = Device::flex().autodiff();
            let data = Tensor::<4>::random([3, 4, h, w], Distribution::Normal(0.0, 1.0), &device)
                .into_data();
            let ours = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let theirs = Tensor::<4>::from_data(data, &device).require_grad();
            let y_ours = max_pool_2x2(ours.clone());
            let y_theirs = max_pool2d(theirs.clone(), MaxPoolOptions::new([2, 2]));
            assert_eq!(y_ours.dims(), y_theirs.dims());
            let weights =
                Tensor::<4>::random(y_ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let a = to_vec(y_ours.clone()).unwrap();
            let b = to_vec(y_theirs.clone()).unwrap();
            assert_eq!(a, b, "{h}x{w} forward");
            let g_ours = (y_ours * weights.clone()).sum().backward();
            let g_theirs = (y_theirs * weights).sum().backward();
            let ga = to_vec(ours.grad(&g_ours).expect("grad")).unwrap();
            let gb = to_vec(theirs.grad(&g_theirs).expect("grad")).unwrap();
            assert_eq!(ga, gb, "{h}x{w} backward");
        }
    }

    #[test]
    fn max_pool_2x2_without_autodiff_pools() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                vec![
                    1.0f32, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 7.0, 9.0, 9.0, 9.0, 9.0,
                ],
                [1, 1, 3, 4],
            ),
            &device,
        );
        assert_eq!(to_vec(max_pool_2x2(x)).unwrap(), vec![5.0, 8.0]);
    }
}
