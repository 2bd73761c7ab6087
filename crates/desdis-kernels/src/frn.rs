//! Filter response normalisation followed by a thresholded linear unit (HyNet's FRN + TLU) as one
//! op: `max(x * rsqrt(mean_hw(x²) + eps) * weight + bias, tau)`.
//!
//! From candle's tensor ops the pair is about ten passes over the activations forward and more
//! backward, each allocating a tensor, and it was the largest share of a HyNet train step outside
//! the convolutions. Each channel plane is small enough to stay in L1, so here every pass over a
//! plane after the first reads from cache.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::op::contiguous_f32;

/// `max(frn(x), tau)` with the per-channel `params` rows `weight`, `bias`, `tau` and `eps` added
/// to the mean square. Differentiable in `x` and `params` (first order); at a tie between the
/// normalised value and `tau` the gradient is split in half, as candle's and PyTorch's `maximum`
/// do.
///
/// # Shapes
/// - `x`: `(B, C, H, W)` f32 on the CPU, `params`: `(3, C)`
/// - returns `(B, C, H, W)`
pub fn frn_tlu(x: &Tensor, params: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&params.contiguous()?, FrnTluF32 { eps })
}

#[derive(Debug, Clone, Copy)]
struct FrnTluF32 {
    eps: f32,
}

/// `(planes, plane length, channels)` of a `(B, C, H, W)` input with `(3, C)` parameters.
fn sizes(x_dims: &[usize], p_dims: &[usize]) -> Result<(usize, usize, usize)> {
    match (x_dims, p_dims) {
        ([b, c, h, w], [3, pc]) if c == pc && h * w > 0 => Ok((b * c, h * w, *c)),
        _ => bail!("frn + tlu expects x (B, C, H, W) and params (3, C), got {x_dims:?} and {p_dims:?}"),
    }
}

/// One channel's constants.
#[derive(Debug, Clone, Copy)]
struct Channel {
    weight: f32,
    bias: f32,
    tau: f32,
}

fn channels(params: &[f32], c: usize) -> Vec<Channel> {
    (0..c).map(|ch| Channel { weight: params[ch], bias: params[c + ch], tau: params[2 * c + ch] }).collect()
}

impl FrnTluF32 {
    /// `rsqrt(mean(x²) + eps)` of one plane, the sum in f64.
    fn inv_rms(&self, plane: &[f32]) -> f32 {
        let sum: f64 = plane.chunks(16).map(|block| block.iter().map(|v| v * v).sum::<f32>() as f64).sum();
        1.0 / ((sum / plane.len() as f64) as f32 + self.eps).sqrt()
    }
}

/// The normalised, scaled and shifted value before the threshold: one expression for the forward
/// pass and the backward pass's comparisons with `tau`, so both round alike.
#[inline(always)]
fn pre_threshold(v: f32, inv_rms: f32, ch: Channel) -> f32 {
    v * inv_rms * ch.weight + ch.bias
}

impl CustomOp2 for FrnTluF32 {
    fn name(&self) -> &'static str {
        "desdis-frn-tlu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, hw, c) = sizes(xl.dims(), pl.dims())?;
        let (x, channels) = (contiguous_f32(xs, xl)?, channels(contiguous_f32(ps, pl)?, c));
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(plane, (out, xp))| {
            let (r, ch) = (self.inv_rms(xp), channels[plane % c]);
            for (o, &v) in out.iter_mut().zip(xp) {
                *o = pre_threshold(v, r, ch).max(ch.tau);
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (dx, dparams) = {
            let (xs, xl) = x.storage_and_layout();
            let (ps, pl) = params.storage_and_layout();
            let (gs, gl) = dy.storage_and_layout();
            let (Storage::Cpu(xs), Storage::Cpu(ps), Storage::Cpu(gs)) = (&*xs, &*ps, &*gs) else {
                bail!("frn + tlu: backward expects CPU tensors")
            };
            let (x, g) = (contiguous_f32(xs, xl)?, contiguous_f32(gs, gl)?);
            self.gradients(x, g, contiguous_f32(ps, pl)?, sizes(xl.dims(), pl.dims())?)
        };
        let dx = x.track_op().then(|| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?;
        let dparams = params
            .track_op()
            .then(|| Tensor::from_vec(dparams, params.shape(), params.device()))
            .transpose()?;
        Ok((dx, dparams))
    }
}

/// Per-plane sums the parameter gradients need: `Σ g_n`, `Σ g_n·x̂`, `Σ g_tau`.
type PlaneSums = (f64, f64, f64);

impl FrnTluF32 {
    /// `dx` and the `(3, C)` parameter gradients from the output gradient `g`. Per plane, the
    /// threshold splits `g` into `g_n` (where the normalised value passed) and `g_tau`; then
    /// `dx = r·(w·g_n - x̂·w·mean(g_n·x̂))` with `x̂ = x·r`, `r = rsqrt(mean(x²) + eps)`.
    fn gradients(
        &self,
        x: &[f32],
        g: &[f32],
        params: &[f32],
        (planes, hw, c): (usize, usize, usize),
    ) -> (Vec<f32>, Vec<f32>) {
        let channels = channels(params, c);
        let mut dx = vec![0f32; x.len()];
        let mut sums: Vec<PlaneSums> = vec![(0.0, 0.0, 0.0); planes];
        dx.par_chunks_mut(hw).zip(sums.par_iter_mut()).enumerate().for_each(|(plane, (out, plane_sums))| {
            let at = plane * hw;
            let (xp, gp, ch) = (&x[at..at + hw], &g[at..at + hw], channels[plane % c]);
            let r = self.inv_rms(xp);
            let split = |v: f32, gv: f32| {
                let n = pre_threshold(v, r, ch);
                match n.partial_cmp(&ch.tau) {
                    Some(std::cmp::Ordering::Greater) => (gv, 0.0),
                    Some(std::cmp::Ordering::Equal) => (0.5 * gv, 0.5 * gv),
                    _ => (0.0, gv),
                }
            };
            let (mut gn_sum, mut gnx_sum, mut gt_sum) = (0f64, 0f64, 0f64);
            for (block_x, block_g) in xp.chunks(16).zip(gp.chunks(16)) {
                let (mut a, mut b, mut t) = (0f32, 0f32, 0f32);
                for (&v, &gv) in block_x.iter().zip(block_g) {
                    let (gn, gt) = split(v, gv);
                    a += gn;
                    b += gn * v * r;
                    t += gt;
                }
                (gn_sum, gnx_sum, gt_sum) = (gn_sum + a as f64, gnx_sum + b as f64, gt_sum + t as f64);
            }
            let mean_gnx = (gnx_sum / hw as f64) as f32 * ch.weight;
            for ((o, &v), &gv) in out.iter_mut().zip(xp).zip(gp) {
                let (gn, _) = split(v, gv);
                *o = r * (ch.weight * gn - v * r * mean_gnx);
            }
            *plane_sums = (gn_sum, gnx_sum, gt_sum);
        });
        (dx, parameter_gradients(&sums, c))
    }
}

/// `(3, C)` rows `dweight = Σ g_n·x̂`, `dbias = Σ g_n`, `dtau = Σ g_tau`, summed over the batch in
/// order (repeatable bit for bit).
fn parameter_gradients(sums: &[PlaneSums], c: usize) -> Vec<f32> {
    let mut totals = vec![(0f64, 0f64, 0f64); c];
    for (plane, &(gn, gnx, gt)) in sums.iter().enumerate() {
        let total = &mut totals[plane % c];
        *total = (total.0 + gn, total.1 + gnx, total.2 + gt);
    }
    let row = |f: fn(&PlaneSums) -> f64| totals.iter().map(move |t| f(t) as f32);
    row(|t| t.1).chain(row(|t| t.0)).chain(row(|t| t.2)).collect()
}
