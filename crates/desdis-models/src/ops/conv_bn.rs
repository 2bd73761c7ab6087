//! Training-mode convolution + batch norm (no affine parameters) + optional ReLU as one op.
//!
//! Candle's autograd keeps one gradient tensor per graph node and starts each from a fresh
//! tensor of zeros that the incoming gradient is added to: for the activation between a
//! convolution and its batch norm that is a zero fill and an extra pass over the largest tensors
//! of the step, in both directions. As one node, the batch norm's input gradient goes straight
//! into the convolution's backward kernels. The convolution's output is kept inside the op for
//! the backward pass (the separate ops kept it alive as a tensor of the graph just the same).

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};

use super::batchnorm::{dims, BatchStats, BnTrainF32};
use super::geometry::ConvGeometry;
use super::kernels::forward;
use super::op::{contiguous_f32, conv_gradients};

/// `bn(conv(x, w))`, then `max(·, 0)` when `relu`, with the batch's statistics, which are also
/// returned (for the running averages). Differentiable in `x` and `w` (first order).
///
/// Needs contiguous-able f32 CPU tensors that [`super::conv2d`]'s own kernels handle; the caller
/// checks [`super::has_fast_kernel`].
///
/// # Shapes
/// - `x`: `(B, C_in, H, W)`, `w`: `(C_out, C_in, K, K)`
/// - returns `(B, C_out, H', W')` as [`super::conv2d`]
pub fn conv_batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let op = ConvBnTrainF32 {
        stride,
        padding,
        bn: BnTrainF32 { eps: eps as f32, relu, stats: stats.clone() },
        conv_out: Mutex::new(Vec::new()),
    };
    let y = x.contiguous()?.apply_op2(&w.contiguous()?, op)?;
    let stats = stats.lock().map_err(|_| poisoned())?.clone();
    Ok((y, stats))
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("conv + batch norm: poisoned lock".into())
}

#[derive(Debug)]
struct ConvBnTrainF32 {
    stride: usize,
    padding: usize,
    bn: BnTrainF32,
    /// The convolution's output from the forward call, `(B, C_out, H', W')`.
    conv_out: Mutex<Vec<f32>>,
}

impl CustomOp2 for ConvBnTrainF32 {
    fn name(&self) -> &'static str {
        "desdis-conv-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let shape = g.output_shape();
        let z = forward(&g, contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?);
        let y = self.bn.normalize(&z, dims(shape.dims())?)?;
        *self.conv_out.lock().map_err(|_| poisoned())? = z;
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dz = {
            let (ys, yl) = y.storage_and_layout();
            let (gs, gl) = dy.storage_and_layout();
            let (Storage::Cpu(ys), Storage::Cpu(gs)) = (&*ys, &*gs) else {
                bail!("conv + batch norm: backward expects CPU tensors")
            };
            let z = self.conv_out.lock().map_err(|_| poisoned())?;
            self.bn.input_grad(&z, contiguous_f32(ys, yl)?, contiguous_f32(gs, gl)?, dims(y.dims())?)?
        };
        conv_gradients(self.stride, self.padding, x, w, &dz)
    }
}
