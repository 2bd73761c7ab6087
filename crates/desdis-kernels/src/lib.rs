//! The CPU kernels of the project, as candle custom ops on contiguous f32 (some also f64) CPU
//! tensors, each with a fallback to candle's own ops for other devices and dtypes: the nets'
//! convolutions, batch norms, FRN + TLU and activations, the losses' distance matrices and
//! gathered pairs, one safe gemm wrapper for all of them ([`matmul`]), and the allocator setting
//! that training relies on ([`memory`]). Models and losses only combine these.
//!
//! [`conv2d`] is the convolution entry point used by every net, so a faster kernel replaces it in
//! one place.
//!
//! On the CPU, f32 convolutions run through our own kernels: per-image im2col + gemm, parallel
//! over the batch, with backward kernels of the same kind (input gradient: gemm with the
//! transposed weights, then col2im; weight gradient: gemm of the output gradient with the patch
//! matrix), and a single matmul where the kernel covers the whole input (HardNet's 8x8 head).
//! 3x3 stride-1 convolutions with at least 8 channels each way use Winograd F(2x2, 3x3) instead
//! (`winograd.rs`), which needs 2.25x fewer multiply-adds, for the forward and both gradients.
//! Each rayon thread keeps its patch-matrix scratch between calls. Other dtypes and devices use
//! candle's `conv2d`, so results stay correct everywhere.

mod activation;
mod batchnorm;
pub mod compare;
mod conv_bn_chain;
pub mod distance;
mod frn;
pub mod gather;
mod geometry;
mod im2col;
mod kernels;
pub mod matmul;
pub mod memory;
mod op;
mod scratch;
mod winograd;

use candle_core::{DType, Result, Tensor};

pub use activation::{max_pool2d, tanh};
pub use batchnorm::{batch_norm_train, BatchStats};
pub use conv_bn_chain::{
    chain_has_fast_kernels, conv_batch_norm_chain_train, conv_batch_norm_train, ChainBlock, ConvBnParams,
};
pub use frn::frn_tlu;
use geometry::ConvGeometry;
use op::Conv2dF32;

/// 2-D convolution with square kernels, symmetric padding and equal strides.
///
/// Differentiable in `x`, `w` and `b` (first order).
///
/// # Shapes
/// - `x`: `(B, C_in, H, W)`, `w`: `(C_out, C_in, K, K)`, `b`: `(C_out)`
/// - returns `(B, C_out, (H + 2p - K) / s + 1, (W + 2p - K) / s + 1)`
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let y = if has_fast_kernel(x, w, stride, padding) {
        x.contiguous()?.apply_op2(&w.contiguous()?, Conv2dF32 { stride, padding })?
    } else {
        x.conv2d(w, padding, stride, 1, 1)?
    };
    match b {
        // Broadcast in two steps, batch then space: candle's backward then sums the bias gradient
        // over the spatial axes and the batch axis in two contiguous reductions; a single
        // broadcast reduces over axes (0, 2, 3) in a generic strided loop that took 12% of a
        // TFeat train step.
        Some(b) => {
            let (batch, channels, h, w) = y.dims4()?;
            let b = b.reshape((1, channels, 1, 1))?.broadcast_as((batch, channels, 1, 1))?;
            y.add(&b.broadcast_as((batch, channels, h, w))?)
        }
        None => Ok(y),
    }
}

/// True when our CPU kernels handle this convolution; anything else (other devices or dtypes,
/// empty or malformed shapes) goes to candle, which also reports the errors.
pub fn has_fast_kernel(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> bool {
    x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.elem_count() > 0
        && w.elem_count() > 0
        && ConvGeometry::new(x.dims(), w.dims(), stride, padding).is_ok()
}

/// Folds an eval-mode batch norm that follows a convolution into the convolution's weight and
/// bias, so inference runs one conv instead of conv + normalisation:
/// `bn(conv(x, w) + b) = conv(x, w * s) + (b - mean) * s + beta` with `s = gamma / sqrt(var + eps)`.
///
/// `gamma`/`beta` are `None` for a batch norm without affine parameters (HardNet's).
///
/// # Shapes
/// - `w`: `(C_out, C_in, K, K)`; `b`, `running_mean`, `running_var`, `gamma`, `beta`: `(C_out)`
/// - returns the folded `(w, b)` with the same shapes
pub fn fold_batchnorm(
    w: &Tensor,
    b: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let inv_std = (running_var + eps)?.sqrt()?.recip()?;
    let scale = match gamma {
        Some(gamma) => (gamma * inv_std)?,
        None => inv_std,
    };
    let folded_w = w.broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
    let centred = match b {
        Some(b) => (b - running_mean)?,
        None => running_mean.neg()?,
    };
    let folded_b = (centred * &scale)?;
    let folded_b = match beta {
        Some(beta) => (folded_b + beta)?,
        None => folded_b,
    };
    Ok((folded_w, folded_b))
}
