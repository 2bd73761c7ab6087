//! The CPU hot path of the losses: distance matrices computed with one gemm plus one fused
//! elementwise pass, used both for negative mining (no gradient) and as a differentiable candle
//! custom op.
//!
//! The plain tensor version of a distance matrix makes five or six full passes over the
//! `(N, M)` matrix forward and as many backward, each allocating a new buffer; here the forward
//! is a gemm followed by a single pass, and the backward is one pass plus two gemms.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Shape, Storage, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::matmul::{matmul_scaled, Mat, MatMut, Real, Write};
use crate::op::contiguous;

/// Added under every square root so that the distance between identical descriptors has a
/// finite gradient (the published HardNet and HyNet code use the same value).
pub const DISTANCE_EPS: f64 = 1e-6;

/// How a distance is computed from two descriptors `x`, `y`; both give
/// `sqrt(max(s, 0) + DISTANCE_EPS)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `s = 2 - 2 x·y`: the squared L2 distance of unit vectors. It skips the norms, and its
    /// gradient differs from the Euclidean one only along `x` itself, a direction that the
    /// backward pass of an L2 normalisation removes.
    #[default]
    UnitSphere,
    /// `s = |x - y|²`: the L2 distance of arbitrary vectors (TFeat).
    Euclidean,
}

/// `dst = scale * lhs · rhs` (or `+=` with `accumulate`) with `dst` a dense row-major `(m, n)`
/// matrix.
fn gemm_into<T: Real>(dst: &mut [T], lhs: Mat<'_, T>, rhs: Mat<'_, T>, accumulate: bool, scale: T) {
    let (m, n) = (lhs.rows(), rhs.cols());
    let write = if accumulate { Write::Accumulate } else { Write::Overwrite };
    matmul_scaled(MatMut::row_major(dst, m, n), lhs, rhs, write, scale, Parallelism::Rayon(0));
}

/// Squared norms of the `d`-long rows of `x`.
fn row_sq_norms<T: Real>(x: &[T], d: usize) -> Vec<T> {
    x.chunks_exact(d).map(|row| row.iter().fold(T::from_f64(0.0), |acc, &v| acc + v * v)).collect()
}

/// The `(n, m)` distance matrix between the `d`-long rows of `x` (`n` rows) and of `y` (`m`
/// rows): `sqrt(max(s, 0) + eps)` with `s = 2 - 2 x·y` (unit sphere) or
/// `|x|² + |y|² - 2 x·y` (Euclidean).
pub fn distance_matrix<T: Real>(x: &[T], y: &[T], d: usize, metric: Metric) -> Vec<T> {
    let (n, m) = (x.len() / d, y.len() / d);
    let mut out = vec![T::from_f64(0.0); n * m];
    gemm_into(&mut out, Mat::row_major(x, n, d), Mat::row_major(y, m, d).t(), false, T::from_f64(1.0));
    let eps = T::from_f64(DISTANCE_EPS);
    let (two, zero) = (T::from_f64(2.0), T::from_f64(0.0));
    let clamp_sqrt = move |s: T| (if s > zero { s } else { zero } + eps).sqrt();
    match metric {
        Metric::UnitSphere => out.par_iter_mut().for_each(|v| *v = clamp_sqrt(two - two * *v)),
        Metric::Euclidean => {
            let (nx, ny) = (row_sq_norms(x, d), row_sq_norms(y, d));
            out.par_chunks_mut(m).zip(nx.par_iter()).for_each(|(row, &nxi)| {
                for (v, &nyj) in row.iter_mut().zip(&ny) {
                    *v = clamp_sqrt(nxi + nyj - two * *v);
                }
            });
        }
    }
    out
}

/// Gradients of `sum(g ⊙ D)` for `D = distance_matrix(x, y)`, each only if asked for.
///
/// With `W = g / D` where the distance is not clamped (0 elsewhere):
/// unit sphere `gx = -W y`, `gy = -Wᵀ x`; Euclidean `gx = rowsum(W) ⊙ x - W y`,
/// `gy = colsum(W) ⊙ y - Wᵀ x`.
fn distance_matrix_grads<T: Real>(
    x: &[T],
    y: &[T],
    dist: &[T],
    grad: &[T],
    d: usize,
    metric: Metric,
    wanted: (bool, bool),
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let (n, m) = (x.len() / d, y.len() / d);
    // A clamped entry is exactly sqrt(eps), computed the same way as in the forward pass.
    let clamped = T::from_f64(DISTANCE_EPS).sqrt();
    let zero = T::from_f64(0.0);
    let w: Vec<T> = dist
        .par_iter()
        .zip(grad.par_iter())
        .map(|(&dv, &gv)| if dv > clamped { gv / dv } else { zero })
        .collect();
    let w_view = Mat::row_major(&w, n, m);
    let gx = wanted.0.then(|| {
        let row_sums: Vec<T> = w.chunks_exact(m).map(|r| r.iter().fold(zero, |a, &v| a + v)).collect();
        side_grad(x, y, w_view, &row_sums, d, metric)
    });
    let gy = wanted.1.then(|| {
        let mut col_sums = vec![zero; m];
        for row in w.chunks_exact(m) {
            col_sums.iter_mut().zip(row).for_each(|(c, &v)| *c += v);
        }
        side_grad(y, x, w_view.t(), &col_sums, d, metric)
    });
    (gx, gy)
}

/// `sums ⊙ own - w · other` (Euclidean) or `-w · other` (unit sphere): the gradient for the
/// rows of `own`, whose distances to the rows of `other` are weighted by `w` (`own` × `other`).
fn side_grad<T: Real>(own: &[T], other: &[T], w: Mat<'_, T>, sums: &[T], d: usize, metric: Metric) -> Vec<T> {
    let mut out = match metric {
        Metric::UnitSphere => vec![T::from_f64(0.0); own.len()],
        Metric::Euclidean => {
            own.chunks_exact(d).zip(sums).flat_map(|(row, &s)| row.iter().map(move |&v| s * v)).collect()
        }
    };
    let other_view = Mat::row_major(other, other.len() / d, d);
    gemm_into(&mut out, w, other_view, metric == Metric::Euclidean, T::from_f64(-1.0));
    out
}

const OP: &str = "desdis pairwise distance";

/// The pairwise distance matrix as a candle op with its own first-order backward, for
/// contiguous `f32`/`f64` CPU tensors.
#[derive(Debug, Clone, Copy)]
pub struct FusedDistance {
    pub metric: Metric,
}

impl FusedDistance {
    fn forward<T: Real>(&self, x: &[T], y: &[T], d: usize) -> CpuStorage {
        T::to_cpu_storage_owned(distance_matrix(x, y, d, self.metric))
    }

    fn backward<T: Real>(
        &self,
        x: &Tensor,
        y: &Tensor,
        dist: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = x.dim(1)?;
        let wanted = (x.track_op(), y.track_op());
        let (gx, gy) = {
            let (xs, xl) = x.storage_and_layout();
            let (ys, yl) = y.storage_and_layout();
            let (ds, dl) = dist.storage_and_layout();
            let (gs, gl) = grad.storage_and_layout();
            let (Storage::Cpu(xs), Storage::Cpu(ys), Storage::Cpu(ds), Storage::Cpu(gs)) =
                (&*xs, &*ys, &*ds, &*gs)
            else {
                bail!("desdis pairwise distance: backward expects CPU tensors")
            };
            distance_matrix_grads(
                contiguous::<T>(xs, xl, OP)?,
                contiguous::<T>(ys, yl, OP)?,
                contiguous::<T>(ds, dl, OP)?,
                contiguous::<T>(gs, gl, OP)?,
                d,
                self.metric,
                wanted,
            )
        };
        let to_tensor = |data: Option<Vec<T>>, like: &Tensor| {
            data.map(|v| Tensor::from_vec(v, like.shape(), like.device())).transpose()
        };
        Ok((to_tensor(gx, x)?, to_tensor(gy, y)?))
    }
}

impl CustomOp2 for FusedDistance {
    fn name(&self) -> &'static str {
        "desdis-pairwise-distance"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (&[n, d], &[m, d2]) = (l1.dims(), l2.dims()) else {
            bail!("desdis pairwise distance: expected two matrices, got {:?} and {:?}", l1.dims(), l2.dims())
        };
        if d != d2 {
            bail!("desdis pairwise distance: descriptor lengths differ ({d} vs {d2})")
        }
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                self.forward(contiguous::<f32>(s1, l1, OP)?, contiguous::<f32>(s2, l2, OP)?, d)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                self.forward(contiguous::<f64>(s1, l1, OP)?, contiguous::<f64>(s2, l2, OP)?, d)
            }
            _ => bail!("desdis pairwise distance: expected two f32 or two f64 tensors"),
        };
        Ok((storage, Shape::from((n, m))))
    }

    /// Gradients of both inputs (only those tracked), as plain values: gradients of gradients
    /// are not supported.
    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        dist: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        match x.dtype() {
            candle_core::DType::F32 => self.backward::<f32>(x, y, dist, &grad),
            candle_core::DType::F64 => self.backward::<f64>(x, y, dist, &grad),
            other => bail!("desdis pairwise distance: unsupported dtype {other:?}"),
        }
    }
}
