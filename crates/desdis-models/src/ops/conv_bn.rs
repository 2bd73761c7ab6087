//! Training-mode convolution + batch norm (+ ReLU) as one op.
//!
//! Candle's autograd keeps one gradient tensor per graph node and starts each from a fresh
//! tensor of zeros that the incoming gradient is added to: for the activation between a
//! convolution and its batch norm that is a zero fill and an extra pass over the largest tensors
//! of the step, in both directions; an affine batch norm built from tensor ops adds several
//! more. As one node, the batch norm's input gradient goes straight into the convolution's
//! backward kernels. The convolution's output is kept inside the op for the backward pass (the
//! separate ops kept it alive as a tensor of the graph just the same).
//!
//! A convolution bias in front of a training-mode batch norm cancels in the output (the batch
//! mean absorbs it); it only shifts the running mean, and its gradient is exactly zero.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};

use super::batchnorm::{dims, BatchStats, BnTrainF32};
use super::geometry::ConvGeometry;
use super::kernels::forward;
use super::op::{contiguous_f32, conv_gradients};

/// The optional per-channel parameters of a block, each `(C_out)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvBnParams<'a> {
    /// The convolution's bias.
    pub bias: Option<&'a Tensor>,
    /// The batch norm's scale (`weight`).
    pub gamma: Option<&'a Tensor>,
    /// The batch norm's shift (`bias`).
    pub beta: Option<&'a Tensor>,
}

/// `bn(conv(x, w) + bias)` with the batch's statistics, scaled and shifted by `gamma`, `beta`
/// where given, then `max(·, 0)` when `relu`. Returns it and the batch statistics of
/// `conv(x, w) + bias` (for the running averages). Differentiable in `x`, `w` and the parameters
/// (first order).
///
/// Needs f32 CPU tensors that [`super::conv2d`]'s own kernels handle; the caller checks
/// [`super::has_fast_kernel`].
///
/// # Shapes
/// - `x`: `(B, C_in, H, W)`, `w`: `(C_out, C_in, K, K)`, parameters `(C_out)`
/// - returns `(B, C_out, H', W')` as [`super::conv2d`]
pub fn conv_batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    params: ConvBnParams<'_>,
    (stride, padding): (usize, usize),
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
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let y = match (params.bias, params.gamma, params.beta) {
        (None, None, None) => x.apply_op2(&w, op)?,
        _ => {
            let c_out = w.dim(0)?;
            let zeros = Tensor::zeros(c_out, w.dtype(), w.device())?;
            let ones = Tensor::ones(c_out, w.dtype(), w.device())?;
            let rows =
                [params.bias.unwrap_or(&zeros), params.gamma.unwrap_or(&ones), params.beta.unwrap_or(&zeros)];
            x.apply_op3(&w, &Tensor::stack(&rows, 0)?, op)?
        }
    };
    let stats = stats.lock().map_err(|_| poisoned())?.clone();
    Ok((y, with_bias(stats, params.bias)?))
}

/// Statistics of `conv + bias` from those of `conv`: the bias shifts the mean only.
pub(super) fn with_bias(mut stats: BatchStats, bias: Option<&Tensor>) -> Result<BatchStats> {
    if let Some(bias) = bias {
        for (m, b) in stats.mean.iter_mut().zip(bias.to_vec1::<f32>()?) {
            *m += b;
        }
    }
    Ok(stats)
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

impl ConvBnTrainF32 {
    /// `bn(conv(x, w))` with the optional `(gamma, beta)`.
    fn forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        affine: Option<(&[f32], &[f32])>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let shape = g.output_shape();
        let z = forward(&g, contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?);
        let y = self.bn.normalize(&z, dims(shape.dims())?, affine)?;
        *self.conv_out.lock().map_err(|_| poisoned())? = z;
        Ok((CpuStorage::F32(y), shape))
    }

    /// Gradients for `x`, `w` and the parameter rows `(bias, gamma, beta)` (the last two only
    /// when `affine = (gamma, beta)` is given).
    fn backward(
        &self,
        (x, w, y, dy): (&Tensor, &Tensor, &Tensor, &Tensor),
        affine: Option<(&[f32], &[f32])>,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Vec<f32>)> {
        let dy = dy.contiguous()?;
        let grads = {
            let (gs, gl) = dy.storage_and_layout();
            let Storage::Cpu(gs) = &*gs else { bail!("conv + batch norm: backward expects CPU tensors") };
            let z = self.conv_out.lock().map_err(|_| poisoned())?;
            self.bn.input_grad(&z, contiguous_f32(gs, gl)?, dims(y.dims())?, affine)?
        };
        let (dx, dw) = conv_gradients(self.stride, self.padding, x, w, &grads.input)?;
        let mut params = vec![0.0; grads.gamma.len()]; // the bias: exactly zero
        params.extend(grads.gamma);
        params.extend(grads.beta);
        Ok((dx, dw, params))
    }
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
        self.forward((xs, xl), (ws, wl), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward((x, w, y, dy), None)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvBnTrainF32 {
    fn name(&self) -> &'static str {
        "desdis-conv-affine-batch-norm-train"
    }

    /// `params`: `(3, C_out)` rows bias, gamma, beta.
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let params = contiguous_f32(ps, pl)?;
        let c_out = params.len() / 3;
        self.forward((xs, xl), (ws, wl), Some((&params[c_out..2 * c_out], &params[2 * c_out..])))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        params: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gamma, beta) = (params.get(1)?.to_vec1::<f32>()?, params.get(2)?.to_vec1::<f32>()?);
        let (dx, dw, dparams) = self.backward((x, w, y, dy), Some((&gamma, &beta)))?;
        let dparams = params
            .track_op()
            .then(|| Tensor::from_vec(dparams, params.shape(), params.device()))
            .transpose()?;
        Ok((dx, dw, dparams))
    }
}
