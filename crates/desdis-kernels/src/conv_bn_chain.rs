//! Training-mode convolution + batch norm (+ ReLU) blocks, one or a chain of them, as one op.
//!
//! Candle's autograd keeps one gradient tensor per graph node and starts each from a fresh
//! tensor of zeros that the incoming gradient is added to: for every activation between two ops
//! that is a zero fill and an add, four passes over the largest tensors of the step, and an
//! affine batch norm built from tensor ops adds about ten more. As one node, the batch norm's
//! input gradient goes straight into the convolution's backward kernels, and each block's input
//! gradient straight into the backward of the block before it. The convolutions' outputs and the
//! blocks' activations are kept inside the op for the backward pass (as tensors of the graph they
//! were kept alive just the same).
//!
//! A convolution bias in front of a training-mode batch norm cancels in the output (the batch
//! mean absorbs it); it only shifts the running mean, and its gradient is exactly zero.
//!
//! The blocks' weights and per-channel parameters travel as one flat tensor (candle's custom ops
//! take at most three arguments); its gradient flows back to each parameter through the
//! concatenation that built it.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};

use super::batchnorm::{dims, BatchStats, BnTrainF32};
use super::geometry::ConvGeometry;
use super::kernels::{backward, forward, Wanted};
use super::op::contiguous_f32;

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

/// One block: `bn(conv(x, weight) + bias)` with the batch's statistics, scaled and shifted by
/// `gamma`, `beta` where given, then `max(·, 0)` when `relu`.
#[derive(Debug, Clone, Copy)]
pub struct ChainBlock<'a> {
    /// `(C_out, C_in, K, K)`
    pub weight: &'a Tensor,
    /// The optional conv bias and batch-norm scale and shift, each `(C_out)`.
    pub params: ConvBnParams<'a>,
    pub stride: usize,
    pub padding: usize,
    /// The batch norm's epsilon.
    pub eps: f64,
    pub relu: bool,
}

/// One block ([`ChainBlock`]) as one op. Returns its output and the batch statistics of
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
    let block = ChainBlock { weight: w, params, stride, padding, eps, relu };
    let (y, mut stats) = conv_batch_norm_chain_train(x, &[block])?;
    Ok((y, stats.remove(0)))
}

/// Runs `blocks` in order on `x` as one op. Returns the last block's output and each block's batch statistics (of `conv + bias`, for
/// the running averages). Differentiable in `x` and every weight and parameter (first order).
///
/// Needs f32 CPU tensors whose convolutions [`super::conv2d`]'s own kernels handle; the caller
/// checks [`chain_has_fast_kernels`].
///
/// # Shapes
/// `x`: `(B, C_0, H, W)`; block `i`'s weight `(C_{i+1}, C_i, K_i, K_i)`; returns
/// `(B, C_n, H_n, W_n)`
pub fn conv_batch_norm_chain_train(
    x: &Tensor,
    blocks: &[ChainBlock<'_>],
) -> Result<(Tensor, Vec<BatchStats>)> {
    if blocks.is_empty() {
        bail!("conv + batch norm chain: no blocks");
    }
    let mut parts = Vec::with_capacity(4 * blocks.len());
    let mut layers = Vec::with_capacity(blocks.len());
    let mut offset = 0;
    for block in blocks {
        let w_dims: [usize; 4] = block.weight.dims().try_into().map_err(|_| {
            candle_core::Error::Msg(format!(
                "conv + batch norm chain: weight {:?} is not 4-D",
                block.weight.dims()
            ))
        })?;
        let c_out = w_dims[0];
        let (zeros, ones) =
            (Tensor::zeros(c_out, x.dtype(), x.device())?, Tensor::ones(c_out, x.dtype(), x.device())?);
        let affine = block.params.gamma.is_some() || block.params.beta.is_some();
        parts.push(block.weight.flatten_all()?);
        parts.push(block.params.bias.cloned().unwrap_or_else(|| zeros.clone()));
        parts.push(block.params.gamma.cloned().unwrap_or(ones));
        parts.push(block.params.beta.cloned().unwrap_or(zeros));
        let stats = Arc::new(Mutex::new(BatchStats::default()));
        layers.push(ChainLayer {
            stride: block.stride,
            padding: block.padding,
            w_dims,
            offset,
            affine,
            bn: BnTrainF32 { eps: block.eps as f32, relu: block.relu, stats },
        });
        offset += w_dims.iter().product::<usize>() + 3 * c_out;
    }
    let flat = Tensor::cat(&parts, 0)?;
    let op = ChainTrainF32 { layers, saved: Mutex::new(Vec::new()) };
    let stats_handles: Vec<_> = op.layers.iter().map(|layer| layer.bn.stats.clone()).collect();
    let y = x.contiguous()?.apply_op2(&flat, op)?;
    let all_stats = stats_handles
        .iter()
        .zip(blocks)
        .map(|(handle, block)| with_bias(handle.lock().map_err(|_| poisoned())?.clone(), block.params.bias))
        .collect::<Result<Vec<_>>>()?;
    Ok((y, all_stats))
}

/// True when every block of the chain runs on our own f32 CPU kernels with these shapes.
pub fn chain_has_fast_kernels(x: &Tensor, blocks: &[ChainBlock<'_>]) -> bool {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.elem_count() > 0;
    let mut dims = x.dims().to_vec();
    for block in blocks {
        let w = block.weight;
        if !f32_cpu(w) {
            return false;
        }
        match ConvGeometry::new(&dims, w.dims(), block.stride, block.padding) {
            Ok(g) => dims = g.output_shape().dims().to_vec(),
            Err(_) => return false,
        }
    }
    f32_cpu(x) && !blocks.is_empty()
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("conv + batch norm chain: poisoned lock".into())
}

/// Statistics of `conv + bias` from those of `conv`: the bias shifts the mean only.
fn with_bias(mut stats: BatchStats, bias: Option<&Tensor>) -> Result<BatchStats> {
    if let Some(bias) = bias {
        for (m, b) in stats.mean.iter_mut().zip(bias.to_vec1::<f32>()?) {
            *m += b;
        }
    }
    Ok(stats)
}

/// One block of the op, and where its parameters sit in the flat tensor.
#[derive(Debug)]
struct ChainLayer {
    stride: usize,
    padding: usize,
    w_dims: [usize; 4],
    /// Start of the weight; the rows bias, gamma, beta (each `C_out`) follow it.
    offset: usize,
    affine: bool,
    bn: BnTrainF32,
}

impl ChainLayer {
    fn c_out(&self) -> usize {
        self.w_dims[0]
    }

    fn weight_len(&self) -> usize {
        self.w_dims.iter().product()
    }

    fn weight<'a>(&self, flat: &'a [f32]) -> &'a [f32] {
        &flat[self.offset..][..self.weight_len()]
    }

    /// `(gamma, beta)` when the batch norm is affine.
    fn affine<'a>(&self, flat: &'a [f32]) -> Option<(&'a [f32], &'a [f32])> {
        let rows = &flat[self.offset + self.weight_len()..][..3 * self.c_out()];
        self.affine.then(|| (&rows[self.c_out()..2 * self.c_out()], &rows[2 * self.c_out()..]))
    }

    fn geometry(&self, input_dims: &[usize]) -> Result<ConvGeometry> {
        ConvGeometry::new(input_dims, &self.w_dims, self.stride, self.padding)
    }
}

/// What the forward pass keeps for the backward pass, per block.
#[derive(Debug)]
struct Saved {
    /// The block's input dims.
    input_dims: Vec<usize>,
    /// The convolution's output, `(B, C_out, H', W')`.
    conv_out: Vec<f32>,
    /// The block's output, which is the next block's input; `None` for the last block (its output
    /// is the op's, held by the graph).
    output: Option<Vec<f32>>,
}

#[derive(Debug)]
struct ChainTrainF32 {
    layers: Vec<ChainLayer>,
    saved: Mutex<Vec<Saved>>,
}

impl CustomOp2 for ChainTrainF32 {
    fn name(&self) -> &'static str {
        "desdis-conv-batch-norm-chain-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let flat = contiguous_f32(ps, pl)?;
        let mut saved: Vec<Saved> = Vec::with_capacity(self.layers.len());
        let mut input_dims = xl.dims().to_vec();
        for layer in &self.layers {
            let g = layer.geometry(&input_dims)?;
            let input = match saved.last() {
                Some(previous) => {
                    previous.output.as_deref().expect("every block but the last keeps its output")
                }
                None => contiguous_f32(xs, xl)?,
            };
            let conv_out = forward(&g, input, layer.weight(flat));
            let output_shape = g.output_shape();
            let output = layer.bn.normalize(&conv_out, dims(output_shape.dims())?, layer.affine(flat))?;
            saved.push(Saved { input_dims, conv_out, output: Some(output) });
            input_dims = output_shape.dims().to_vec();
        }
        let y = saved.last_mut().and_then(|last| last.output.take()).expect("at least one block");
        *self.saved.lock().map_err(|_| poisoned())? = saved;
        Ok((CpuStorage::F32(y), Shape::from(input_dims)))
    }

    /// Gradients for `x` (if tracked) and the flat parameters: each block's weight gradient, a
    /// zero bias gradient (a bias before a training-mode batch norm cancels), and the gradients
    /// of gamma and beta.
    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (dy_storage, dy_layout) = dy.storage_and_layout();
        let (x_storage, x_layout) = x.storage_and_layout();
        let (p_storage, p_layout) = params.storage_and_layout();
        let (Storage::Cpu(dys), Storage::Cpu(xs), Storage::Cpu(ps)) =
            (&*dy_storage, &*x_storage, &*p_storage)
        else {
            bail!("conv + batch norm chain: backward expects CPU tensors")
        };
        let flat = contiguous_f32(ps, p_layout)?;
        let saved = self.saved.lock().map_err(|_| poisoned())?;
        if saved.len() != self.layers.len() {
            bail!("conv + batch norm chain: backward before forward");
        }
        let mut dparams = vec![0f32; flat.len()];
        let mut grad: Option<Vec<f32>> = None; // of the current block's output; `dy` for the last
        for (i, (layer, kept)) in self.layers.iter().zip(saved.iter()).enumerate().rev() {
            let g = layer.geometry(&kept.input_dims)?;
            let out_grad = grad.as_deref().unwrap_or(contiguous_f32(dys, dy_layout)?);
            let out_dims = g.output_shape();
            let bn =
                layer.bn.input_grad(&kept.conv_out, out_grad, dims(out_dims.dims())?, layer.affine(flat))?;
            let input = match i {
                0 => contiguous_f32(xs, x_layout)?,
                _ => saved[i - 1].output.as_deref().expect("kept by the forward pass"),
            };
            let wanted = Wanted { input: i > 0 || x.track_op(), weight: true };
            let conv = backward(&g, input, layer.weight(flat), &bn.input, wanted);
            let (c_out, w_len) = (layer.c_out(), layer.weight_len());
            let slot = &mut dparams[layer.offset..][..w_len + 3 * c_out];
            if let Some(dw) = conv.weight {
                slot[..w_len].copy_from_slice(&dw);
            }
            // The bias row stays zero.
            slot[w_len + c_out..w_len + 2 * c_out].copy_from_slice(&bn.gamma);
            slot[w_len + 2 * c_out..].copy_from_slice(&bn.beta);
            grad = conv.input;
        }
        let dx = match (x.track_op(), grad) {
            (true, Some(dx)) => Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            _ => None,
        };
        let dparams = params
            .track_op()
            .then(|| Tensor::from_vec(dparams, params.shape(), params.device()))
            .transpose()?;
        Ok((dx, dparams))
    }
}
