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
    /// Values per channel the statistics cover, `B * H * W`.
    pub count: usize,
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
fn channel_sums<T: Send>(
    b: usize,
    c: usize,
    hw: usize,
    f: impl Fn(usize, usize) -> T + Sync,
    add: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| (0..b).map(|i| f(ch, (i * c + ch) * hw)).reduce(&add).expect("b > 0"))
        .collect()
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

/// `(Σ f(a[k], b[k]).0, Σ f(a[k], b[k]).1)` over a plane: two sums in one pass.
fn plane_sum_pair(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f64, f64) {
    let b = &b[..a.len()];
    let (mut first, mut second) = ([0f32; LANES], [0f32; LANES]);
    let split = a.len() / LANES * LANES;
    for (ab, bb) in a[..split].chunks_exact(LANES).zip(b[..split].chunks_exact(LANES)) {
        for lane in 0..LANES {
            let (p, q) = f(ab[lane], bb[lane]);
            first[lane] += p;
            second[lane] += q;
        }
    }
    let tail: Vec<(f32, f32)> = (split..a.len()).map(|k| f(a[k], b[k])).collect();
    (finish(first, tail.iter().map(|t| t.0)), finish(second, tail.iter().map(|t| t.1)))
}

/// The lanes and the leftover terms, summed in f64.
fn finish(lanes: [f32; LANES], tail: impl Iterator<Item = f32>) -> f64 {
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail.map(|v| v as f64).sum::<f64>()
}

/// Count, sum and squared deviations from the mean of some values, mergeable (Chan et al.).
#[derive(Debug, Clone, Copy)]
struct Moments {
    n: f64,
    sum: f64,
    /// `Σ (v - sum / n)²`
    m2: f64,
}

impl Moments {
    /// Both passes over one plane run in L1, so the batch statistics cost one pass over memory
    /// instead of a pass for the mean and another for the variance.
    fn of_plane(p: &[f32]) -> Self {
        let n = p.len() as f64;
        let sum = plane_sum1(p, |v| v);
        let shift = (sum / n) as f32;
        let sq = plane_sum1(p, |v| (v - shift) * (v - shift));
        // `sq` is about the rounded mean `shift`; move it to the exact one.
        let d = sum / n - shift as f64;
        Self { n, sum, m2: (sq - n * d * d).max(0.0) }
    }

    fn merge(self, other: Self) -> Self {
        let n = self.n + other.n;
        let d = other.sum / other.n - self.sum / self.n;
        Self { n, sum: self.sum + other.sum, m2: self.m2 + other.m2 + d * d * self.n * other.n / n }
    }
}

/// Writes a vector of `len` values plane by plane in parallel, plane `i` from `values(i)`, without
/// filling it with zeros first: freed memory is kept for reuse, so a zero fill would be one more
/// pass over the largest tensors of a step.
fn planes_from<I: Iterator<Item = f32>>(
    len: usize,
    plane: usize,
    values: impl Fn(usize) -> I + Sync,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len].par_chunks_mut(plane).enumerate().for_each(|(i, slots)| {
        let mut values = values(i);
        for slot in slots.iter_mut() {
            // A short iterator (a bug) leaves NaN, never uninitialised memory.
            slot.write(values.next().unwrap_or(f32::NAN));
        }
    });
    // SAFETY: the chunks cover the first `len` slots, and each slot was written above.
    unsafe { out.set_len(len) };
    out
}

/// The batch norm's output before the ReLU: one expression for the forward pass and for the
/// backward pass's ReLU mask, so that both round alike and agree on every element.
#[inline(always)]
fn pre_activation(v: f32, mean: f32, scale: f32, beta: f32) -> f32 {
    (v - mean) * scale + beta
}

impl BnTrainF32 {
    fn statistics(&self, x: &[f32], b: usize, c: usize, hw: usize) -> BatchStats {
        let moments = channel_sums(b, c, hw, |_, at| Moments::of_plane(&x[at..at + hw]), Moments::merge);
        BatchStats {
            mean: moments.iter().map(|m| (m.sum / m.n) as f32).collect(),
            var: moments.iter().map(|m| (m.m2 / m.n) as f32).collect(),
            count: b * hw,
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
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let dx = {
            let (xs, xl) = x.storage_and_layout();
            let (gs, gl) = dy.storage_and_layout();
            let (Storage::Cpu(xs), Storage::Cpu(gs)) = (&*xs, &*gs) else {
                bail!("batch norm: backward expects CPU tensors")
            };
            let (x, g) = (contiguous_f32(xs, xl)?, contiguous_f32(gs, gl)?);
            self.input_grad(x, g, dims(xl.dims())?, None)?.input
        };
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Per-channel constants of the normalisation: `y = (x - mean) * scale + beta`.
#[derive(Debug, Clone, Copy)]
struct ChannelAffine {
    mean: f32,
    /// `1 / sqrt(var + eps)`
    inv_std: f32,
    /// `inv_std`, times `gamma` when affine.
    scale: f32,
    beta: f32,
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
        let channels = self.channel_affines(&stats, affine);
        let relu = self.relu;
        let y = planes_from(x.len(), hw, |plane| {
            let ChannelAffine { mean, scale, beta, .. } = channels[plane % c];
            x[plane * hw..(plane + 1) * hw].iter().map(move |&v| {
                let n = pre_activation(v, mean, scale, beta);
                if relu {
                    n.max(0.0)
                } else {
                    n
                }
            })
        });
        *self.stats.lock().map_err(|_| candle_core::Error::Msg("batch norm: poisoned".into()))? = stats;
        Ok(y)
    }

    fn channel_affines(&self, stats: &BatchStats, affine: Option<(&[f32], &[f32])>) -> Vec<ChannelAffine> {
        let inv_std = self.inv_std(stats);
        (0..inv_std.len())
            .map(|ch| {
                let (gamma, beta) = affine.map_or((1.0, 0.0), |(gamma, beta)| (gamma[ch], beta[ch]));
                ChannelAffine { mean: stats.mean[ch], inv_std: inv_std[ch], scale: inv_std[ch] * gamma, beta }
            })
            .collect()
    }

    /// Gradients of [`Self::normalize`] from the output gradient `g`, using the statistics of the
    /// forward call: `dx = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat))` per channel
    /// with `g` masked by `y > 0` after a ReLU, `dgamma = Σ g·xhat`, `dbeta = Σ g`.
    ///
    /// Reads only `x` and `g`: the ReLU's mask is recomputed from `x` with the forward pass's own
    /// expression ([`pre_activation`]), which saves a pass over the output.
    pub(super) fn input_grad(
        &self,
        x: &[f32],
        g: &[f32],
        (b, c, hw): (usize, usize, usize),
        affine: Option<(&[f32], &[f32])>,
    ) -> Result<BnGradients> {
        let stats =
            self.stats.lock().map_err(|_| candle_core::Error::Msg("batch norm: poisoned".into()))?.clone();
        let channels = self.channel_affines(&stats, affine);
        let relu = self.relu;
        // The masked gradient and x̂ at one element of channel `ch`.
        let terms = |ch: usize| {
            let ChannelAffine { mean, inv_std, scale, beta } = channels[ch];
            move |gv: f32, xv: f32| {
                let keep = !relu || pre_activation(xv, mean, scale, beta) > 0.0;
                (if keep { gv } else { 0.0 }, (xv - mean) * inv_std)
            }
        };
        // Σ g and Σ g·x̂ per channel, in one pass over the activations.
        let sums = channel_sums(
            b,
            c,
            hw,
            |ch, at| {
                let term = terms(ch);
                plane_sum_pair(&g[at..at + hw], &x[at..at + hw], |gv, xv| {
                    let (gv, xhat) = term(gv, xv);
                    (gv, gv * xhat)
                })
            },
            |p, q| (p.0 + q.0, p.1 + q.1),
        );
        let (g_sum, gx_sum): (Vec<f64>, Vec<f64>) = sums.into_iter().unzip();
        let n = (b * hw) as f64;
        let input = planes_from(x.len(), hw, |plane| {
            let ch = plane % c;
            let (term, scale) = (terms(ch), channels[ch].scale);
            let (g_mean, gx_mean) = ((g_sum[ch] / n) as f32, (gx_sum[ch] / n) as f32);
            let at = plane * hw;
            g[at..at + hw].iter().zip(&x[at..at + hw]).map(move |(&gv, &xv)| {
                let (gv, xhat) = term(gv, xv);
                scale * (gv - g_mean - xhat * gx_mean)
            })
        });
        Ok(BnGradients {
            input,
            gamma: gx_sum.iter().map(|&v| v as f32).collect(),
            beta: g_sum.iter().map(|&v| v as f32).collect(),
        })
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
