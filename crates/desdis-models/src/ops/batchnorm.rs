//! Training-mode batch normalisation (no affine parameters), optionally followed by ReLU, as one
//! candle custom op.
//!
//! Built from candle's tensor ops, the same computation takes about ten passes over the
//! activations forward and more backward, each allocating a fresh tensor; on HardNet those passes
//! were a quarter of a CPU train step. Here the forward is three passes (mean, variance,
//! normalise + ReLU) and the backward two, parallel over channels and images.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::op::contiguous_f32;

/// Per-channel batch statistics of one forward call.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    /// Mean over batch and spatial axes, `(C)`.
    pub mean: Vec<f32>,
    /// Biased variance, `(C)`.
    pub var: Vec<f32>,
}

/// The op; it keeps the statistics of its forward call for the backward and for the caller.
#[derive(Debug)]
pub(super) struct BnTrainF32 {
    pub eps: f32,
    pub relu: bool,
    /// Shared with the caller, who reads the statistics after the forward call.
    pub stats: Arc<Mutex<BatchStats>>,
}

/// `y = (x - mean) / sqrt(var + eps)` with the batch's per-channel mean and biased variance,
/// then `max(y, 0)` when `relu`. Returns `y` and the statistics (for the running averages).
/// Differentiable in `x` (first order).
///
/// # Shapes
/// `x`: `(B, C, H, W)`, f32, contiguous, on the CPU -> `(B, C, H, W)`
pub fn batch_norm_train(x: &Tensor, eps: f64, relu: bool) -> Result<(Tensor, BatchStats)> {
    let shared = Arc::new(Mutex::new(BatchStats::default()));
    let y = x.apply_op1(BnTrainF32 { eps: eps as f32, relu, stats: shared.clone() })?;
    let stats = shared.lock().map_err(|_| candle_core::Error::Msg("batch norm: poisoned".into()))?.clone();
    Ok((y, stats))
}

/// `(B, C, H*W)` sizes of a 4-D shape.
pub(super) fn dims(shape: &[usize]) -> Result<(usize, usize, usize)> {
    match shape {
        [b, c, h, w] if b * h * w > 1 => Ok((*b, *c, h * w)),
        _ => bail!("batch norm in training mode needs (B, C, H, W) with B*H*W > 1, got {shape:?}"),
    }
}

/// Per-channel sums of `f(channel, offset of the image's plane)` over the batch, in f64 for accuracy.
fn channel_sums(b: usize, c: usize, hw: usize, f: impl Fn(usize, usize) -> f64 + Sync) -> Vec<f64> {
    (0..c).into_par_iter().map(|ch| (0..b).map(|i| f(ch, (i * c + ch) * hw)).sum()).collect()
}

/// Independent partial sums per plane: a single running sum is one long chain of dependent adds
/// that the compiler may not reorder (float addition is not associative), and ran the batch norm
/// at a quarter of memory speed. Sixteen f32 lanes vectorise; each lane adds at most
/// `hw / 16` values (64 for a 32x32 plane) before the lanes are summed in f64.
const LANES: usize = 16;

/// `Σ f(a[k])` over a plane.
fn plane_sum1(a: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; LANES];
    let (body, tail) = a.split_at(a.len() / LANES * LANES);
    for block in body.chunks_exact(LANES) {
        for (lane, &v) in lanes.iter_mut().zip(block) {
            *lane += f(v);
        }
    }
    finish(lanes, tail.iter().map(|&v| f(v)))
}

/// `(Σ f(a[k], b[k], c[k]).0, Σ f(a[k], b[k], c[k]).1)` over a plane: two sums in one pass.
fn plane_sum_pair(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> (f32, f32)) -> (f64, f64) {
    let (b, c) = (&b[..a.len()], &c[..a.len()]);
    let (mut first, mut second) = ([0f32; LANES], [0f32; LANES]);
    let split = a.len() / LANES * LANES;
    let blocks = a[..split].chunks_exact(LANES).zip(b[..split].chunks_exact(LANES));
    for ((ab, bb), cb) in blocks.zip(c[..split].chunks_exact(LANES)) {
        for lane in 0..LANES {
            let (p, q) = f(ab[lane], bb[lane], cb[lane]);
            first[lane] += p;
            second[lane] += q;
        }
    }
    let tail: Vec<(f32, f32)> = (split..a.len()).map(|k| f(a[k], b[k], c[k])).collect();
    (finish(first, tail.iter().map(|t| t.0)), finish(second, tail.iter().map(|t| t.1)))
}

/// The lanes and the leftover terms, summed in f64.
fn finish(lanes: [f32; LANES], tail: impl Iterator<Item = f32>) -> f64 {
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail.map(|v| v as f64).sum::<f64>()
}

impl BnTrainF32 {
    fn statistics(&self, x: &[f32], b: usize, c: usize, hw: usize) -> BatchStats {
        let n = (b * hw) as f64;
        let sums = channel_sums(b, c, hw, |_, at| plane_sum1(&x[at..at + hw], |v| v));
        let mean: Vec<f64> = sums.iter().map(|s| s / n).collect();
        let sq = channel_sums(b, c, hw, |ch, at| {
            let m = mean[ch] as f32;
            plane_sum1(&x[at..at + hw], |v| (v - m) * (v - m))
        });
        BatchStats {
            mean: mean.iter().map(|&m| m as f32).collect(),
            var: sq.iter().map(|s| (s / n) as f32).collect(),
        }
    }

    fn inv_std(&self, stats: &BatchStats) -> Vec<f32> {
        stats.var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect()
    }
}

impl CustomOp1 for BnTrainF32 {
    fn name(&self) -> &'static str {
        "desdis-batch-norm-train"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = self.normalize(contiguous_f32(storage, layout)?, dims(layout.dims())?, None)?;
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    /// `dx = inv_std * (g - mean(g) - xhat * mean(g * xhat))` per channel, with `g = dy` masked
    /// by `y > 0` after a ReLU.
    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let dx = {
            let (xs, xl) = x.storage_and_layout();
            let (ys, yl) = y.storage_and_layout();
            let (gs, gl) = dy.storage_and_layout();
            let (Storage::Cpu(xs), Storage::Cpu(ys), Storage::Cpu(gs)) = (&*xs, &*ys, &*gs) else {
                bail!("batch norm: backward expects CPU tensors")
            };
            let (x, y, g) = (contiguous_f32(xs, xl)?, contiguous_f32(ys, yl)?, contiguous_f32(gs, gl)?);
            self.input_grad(x, y, g, dims(xl.dims())?, None)?.input
        };
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

impl BnTrainF32 {
    /// The normalised (then scaled and shifted by `affine = (gamma, beta)` if given, and
    /// rectified if `relu`) `x`; keeps the batch statistics for the backward pass and the caller.
    pub(super) fn normalize(
        &self,
        x: &[f32],
        (b, c, hw): (usize, usize, usize),
        affine: Option<(&[f32], &[f32])>,
    ) -> Result<Vec<f32>> {
        let stats = self.statistics(x, b, c, hw);
        let inv_std = self.inv_std(&stats);
        let mut y = vec![0f32; x.len()];
        let relu = self.relu;
        y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(plane, (yp, xp))| {
            let ch = plane % c;
            let (gamma, beta) = affine.map_or((1.0, 0.0), |(gamma, beta)| (gamma[ch], beta[ch]));
            let (m, scale) = (stats.mean[ch], inv_std[ch] * gamma);
            for (o, &v) in yp.iter_mut().zip(xp) {
                let n = (v - m) * scale + beta;
                *o = if relu { n.max(0.0) } else { n };
            }
        });
        *self.stats.lock().map_err(|_| candle_core::Error::Msg("batch norm: poisoned".into()))? = stats;
        Ok(y)
    }

    /// Gradients of [`Self::normalize`] from the output gradient `g`, using the statistics of the
    /// forward call: `dx = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat))` per channel
    /// with `g` masked by `y > 0` after a ReLU, `dgamma = Σ g·xhat`, `dbeta = Σ g`.
    pub(super) fn input_grad(
        &self,
        x: &[f32],
        y: &[f32],
        g: &[f32],
        dims: (usize, usize, usize),
        gamma: Option<&[f32]>,
    ) -> Result<BnGradients> {
        let stats =
            self.stats.lock().map_err(|_| candle_core::Error::Msg("batch norm: poisoned".into()))?.clone();
        let inv_std = self.inv_std(&stats);
        Ok(self.input_grad_with(x, y, g, dims, &stats.mean, &inv_std, gamma))
    }
}

/// What [`BnTrainF32::input_grad`] returns.
pub(super) struct BnGradients {
    /// `(B, C, H, W)`
    pub input: Vec<f32>,
    /// `Σ g·xhat` per channel: the gradient of an affine scale, `(C)`.
    pub gamma: Vec<f32>,
    /// `Σ g` per channel: the gradient of an affine shift, `(C)`.
    pub beta: Vec<f32>,
}

impl BnTrainF32 {
    #[allow(clippy::too_many_arguments)]
    fn input_grad_with(
        &self,
        x: &[f32],
        y: &[f32],
        g: &[f32],
        (b, c, hw): (usize, usize, usize),
        mean: &[f32],
        inv_std: &[f32],
        gamma: Option<&[f32]>,
    ) -> BnGradients {
        let relu = self.relu;
        let masked = |gv: f32, yv: f32| if relu && yv <= 0.0 { 0.0 } else { gv };
        // Σ g and Σ g·x̂ per channel, in one pass over the activations.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, s) = (mean[ch], inv_std[ch]);
                (0..b).fold((0.0, 0.0), |(g_acc, gx_acc), i| {
                    let at = (i * c + ch) * hw;
                    let (g, y, x) = (&g[at..at + hw], &y[at..at + hw], &x[at..at + hw]);
                    let (g_sum, gx_sum) = plane_sum_pair(g, y, x, |gv, yv, xv| {
                        let gv = masked(gv, yv);
                        (gv, gv * (xv - m) * s)
                    });
                    (g_acc + g_sum, gx_acc + gx_sum)
                })
            })
            .collect();
        let (g_sum, gx_sum): (Vec<f64>, Vec<f64>) = sums.into_iter().unzip();
        let n = (b * hw) as f64;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let (m, s) = (mean[ch], inv_std[ch]);
            let scale = s * gamma.map_or(1.0, |gamma| gamma[ch]);
            let (g_mean, gx_mean) = ((g_sum[ch] / n) as f32, (gx_sum[ch] / n) as f32);
            let at = plane * hw;
            let (g, y, x) = (&g[at..at + hw], &y[at..at + hw], &x[at..at + hw]);
            for (((o, &gv), &yv), &xv) in out.iter_mut().zip(g).zip(y).zip(x) {
                *o = scale * (masked(gv, yv) - g_mean - (xv - m) * s * gx_mean);
            }
        });
        BnGradients {
            input: dx,
            gamma: gx_sum.iter().map(|&v| v as f32).collect(),
            beta: g_sum.iter().map(|&v| v as f32).collect(),
        }
    }
}
