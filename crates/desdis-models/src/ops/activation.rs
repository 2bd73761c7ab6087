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
            y.iter_mut().zip(x).for_each(|(y, x)| *y = x.tanh());
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

    /// Index within the plane of the first maximum of output position `(oy, ox)`'s window.
    fn argmax(&self, plane: &[f32], w: usize, oy: usize, ox: usize) -> usize {
        let first = (oy * self.k) * w + ox * self.k;
        let (mut best_at, mut best) = (first, plane[first]);
        for row_at in (first..).step_by(w).take(self.k) {
            for (at, &v) in (row_at..).zip(&plane[row_at..row_at + self.k]) {
                // As PyTorch: a NaN wins, so it propagates. Selects rather than branches: which
                // element wins is unpredictable on real data.
                let better = v > best || v.is_nan();
                best = if better { v } else { best };
                best_at = if better { at } else { best_at };
            }
        }
        best_at
    }
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
            for (i, out) in y.iter_mut().enumerate() {
                *out = plane[self.argmax(plane, w, i / w_out, i % w_out)];
            }
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
                |((dx, plane), g)| {
                    for (i, &g) in g.iter().enumerate() {
                        dx[self.argmax(plane, w, i / w_out, i % w_out)] += g;
                    }
                },
            );
            dx
        };
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
