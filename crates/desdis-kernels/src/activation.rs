//! TFeat's tanh and 2x2 max pooling as custom ops on f32 CPU tensors.
//!
//! Candle computes both on one thread, and max pooling's backward builds an upsampled copy, an
//! equality mask and an average pool of it; on TFeat's train step these took about 40% of the
//! time. Here both run in parallel over channel planes, the backward in one pass. Other dtypes
//! and devices use candle's ops.

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::op::contiguous_f32;

/// Elements per parallel task of the element-wise ops.
const CHUNK: usize = 1 << 14;

fn is_f32_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// `tanh(x)`, element-wise; differentiable.
///
/// # Shapes
/// any -> the same
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    match is_f32_cpu(x) {
        true => x.contiguous()?.apply_op1(TanhF32),
        false => x.tanh(),
    }
}

#[derive(Debug, Clone, Copy)]
struct TanhF32;

impl CustomOp1 for TanhF32 {
    fn name(&self) -> &'static str {
        "desdis-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = tanh_f32(x));
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    /// `dx = dy * (1 - y²)`.
    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let dx = {
            let (ys, yl) = y.storage_and_layout();
            let (gs, gl) = dy.storage_and_layout();
            let (Storage::Cpu(ys), Storage::Cpu(gs)) = (&*ys, &*gs) else {
                bail!("tanh: backward expects CPU tensors")
            };
            let (y, g) = (contiguous_f32(ys, yl)?, contiguous_f32(gs, gl)?);
            let mut dx = vec![0f32; y.len()];
            dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).zip(g.par_chunks(CHUNK)).for_each(
                |((dx, y), g)| {
                    for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                        *dx = g * (1.0 - y * y);
                    }
                },
            );
            dx
        };
        Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
    }
}

/// `tanh(x)` in plain f32 arithmetic with no calls and no branches the compiler cannot turn into
/// selects, so a loop over it vectorises: libm's `tanhf` (and the `expm1f` inside it) took a
/// quarter of a TFeat train step. Within 3e-7 of the exact value everywhere (tested against f64).
///
/// `|x| < 0.4`: the odd Taylor series to `x¹³` (the next term is below 2e-9 there). Otherwise
/// `1 - 2 / (e^{2|x|} + 1)`, with the sign of `x`; `e^t` is `2^n · e^r` with `|r| ≤ ln 2 / 2` and
/// a degree-7 polynomial for `e^r`; `2|x|` is capped at 40, where the result is ±1 in f32.
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    const TAYLOR: [f32; 6] =
        [-1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0, -1382.0 / 155925.0, 21844.0 / 6081075.0];
    let a = x.abs();
    let s = a * a;
    let series = TAYLOR.iter().rev().fold(0.0, |acc, &c| acc * s + c);
    let small = a + a * s * series;
    let large = 1.0 - 2.0 / (exp_moderate((2.0 * a).min(40.0)) + 1.0);
    let magnitude = if a < 0.4 { small } else { large };
    // NaN would come out as ±1 (`min` drops it): keep it NaN.
    if x.is_nan() {
        x
    } else {
        magnitude.copysign(x)
    }
}

/// `e^t` for `0 <= t <= 40`, in branch-free f32 arithmetic.
#[inline(always)]
fn exp_moderate(t: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4; // few mantissa bits, so n · LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by adding and removing 1.5 · 2^23 (no `round` call, which the CPU-neutral
    // build would not inline).
    const ROUND: f32 = 12_582_912.0;
    let n = (t * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (t - n * LN2_HI) - n * LN2_LO;
    let inverse_factorials =
        [1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    let e_r = inverse_factorials.iter().rev().fold(0.0, |acc, &c| acc * r + c);
    let two_to_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e_r * two_to_n
}

/// Max pooling over non-overlapping `k`x`k` windows (stride `k`, no padding; a partial window at
/// the edge is dropped, as in PyTorch). The gradient goes to the first maximum of each window in
/// row-major order, as PyTorch's does (on other devices: to every maximum of a tie).
///
/// # Shapes
/// `(B, C, H, W)` -> `(B, C, H / k, W / k)`
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    if is_f32_cpu(x) && x.rank() == 4 && k > 0 {
        return x.contiguous()?.apply_op1(MaxPoolF32 { k });
    }
    // Candle's op hands each window's maximum only 1/k² of the gradient (and misplaces it when a
    // side is not a multiple of k, hence the crop). `y + (k² - 1)(y - y)`, with the second `y`
    // detached, has the same value exactly and k² times the gradient.
    let (_, _, h, w) = x.dims4()?;
    let x = x.narrow(2, 0, h / k.max(1) * k)?.narrow(3, 0, w / k.max(1) * k)?;
    let y = x.max_pool2d(k)?;
    let correction = ((&y - y.detach())? * ((k * k - 1) as f64))?;
    y + correction
}

#[derive(Debug, Clone, Copy)]
struct MaxPoolF32 {
    k: usize,
}

impl MaxPoolF32 {
    /// `(planes, h, w, h_out, w_out)` of an input shape.
    fn sizes(&self, dims: &[usize]) -> Result<(usize, usize, usize, usize, usize)> {
        let &[b, c, h, w] = dims else { bail!("max_pool2d expects (B, C, H, W), got {dims:?}") };
        let (h_out, w_out) = (h / self.k, w / self.k);
        if h_out == 0 || w_out == 0 {
            bail!("max_pool2d: window {} larger than the input {h}x{w}", self.k)
        }
        Ok((b * c, h, w, h_out, w_out))
    }

    /// Calls `visit(output index, index of its window's maximum)` for every window of a plane,
    /// with the window side a constant for the common 2x2 (the generic loop, with a division per
    /// output, was a fifth of a TFeat train step).
    fn for_each_window(
        &self,
        plane: &[f32],
        w: usize,
        (h_out, w_out): (usize, usize),
        visit: impl FnMut(usize, usize),
    ) {
        match self.k {
            2 => windows::<2>(2, plane, w, (h_out, w_out), visit),
            k => windows::<0>(k, plane, w, (h_out, w_out), visit),
        }
    }
}

/// See [`MaxPoolF32::for_each_window`]; `K` is the window side, or 0 to use `k`.
#[inline(always)]
fn windows<const K: usize>(
    k: usize,
    plane: &[f32],
    w: usize,
    (h_out, w_out): (usize, usize),
    mut visit: impl FnMut(usize, usize),
) {
    let k = if K == 0 { k } else { K };
    for oy in 0..h_out {
        for ox in 0..w_out {
            visit(oy * w_out + ox, window_argmax(k, plane, w, (oy, ox)));
        }
    }
}

/// Index within the plane of the first maximum of output position `(oy, ox)`'s `k`x`k` window.
#[inline(always)]
fn window_argmax(k: usize, plane: &[f32], w: usize, (oy, ox): (usize, usize)) -> usize {
    let first = (oy * k) * w + ox * k;
    let (mut best_at, mut best) = (first, plane[first]);
    for dy in 0..k {
        let row_at = first + dy * w;
        for (at, &v) in (row_at..).zip(&plane[row_at..row_at + k]) {
            // As PyTorch: a NaN wins, so it propagates. Selects rather than branches: which
            // element wins is unpredictable on real data.
            let better = v > best || v.is_nan();
            best = if better { v } else { best };
            best_at = if better { at } else { best_at };
        }
    }
    best_at
}

impl CustomOp1 for MaxPoolF32 {
    fn name(&self) -> &'static str {
        "desdis-max-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, h, w, h_out, w_out) = self.sizes(layout.dims())?;
        let x = contiguous_f32(storage, layout)?;
        let mut y = vec![0f32; planes * h_out * w_out];
        y.par_chunks_mut(h_out * w_out).zip(x.par_chunks(h * w)).for_each(|(y, plane)| {
            self.for_each_window(plane, w, (h_out, w_out), |i, at| y[i] = plane[at]);
        });
        let dims = layout.dims();
        Ok((CpuStorage::F32(y), Shape::from((dims[0], dims[1], h_out, w_out))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (_, h, w, h_out, w_out) = self.sizes(x.dims())?;
        let dy = dy.contiguous()?;
        let dx = {
            let (xs, xl) = x.storage_and_layout();
            let (gs, gl) = dy.storage_and_layout();
            let (Storage::Cpu(xs), Storage::Cpu(gs)) = (&*xs, &*gs) else {
                bail!("max_pool2d: backward expects CPU tensors")
            };
            let (x, g) = (contiguous_f32(xs, xl)?, contiguous_f32(gs, gl)?);
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(g.par_chunks(h_out * w_out)).for_each(
                |((dx, plane), g)| self.for_each_window(plane, w, (h_out, w_out), |i, at| dx[at] += g[i]),
            );
            dx
        };
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::tanh_f32;

    /// Against f64's tanh on a fine grid across both regimes and the tails, plus special values.
    #[test]
    fn tanh_is_within_3e7_of_the_exact_value() {
        let grid = (-240_000..=240_000).map(|i| i as f32 * 5e-5);
        let tiny = [1e-30f32, -1e-12, 1e-7, 0.399_999_98, 0.4, -0.4, 8.999, 9.0, 20.0, 1e30];
        for x in grid.chain(tiny) {
            let exact = (x as f64).tanh();
            let got = tanh_f32(x) as f64;
            let error = (got - exact).abs();
            assert!(
                error <= 3e-7 && error <= 4e-7 * exact.abs().max(1e-30),
                "tanh({x}) = {got}, exact {exact}"
            );
        }
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert!(tanh_f32(-0.0).is_sign_negative() && tanh_f32(-0.0) == 0.0);
    }
}
