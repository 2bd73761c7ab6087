//! Distances between descriptors: full matrices (differentiable) and gathered pairs.

use candle_core::{DType, Device, Tensor};

use crate::batch::check_matrix_pair;
use crate::error::{input, Result};
use desdis_kernels::distance::FusedDistance;
use desdis_kernels::gather::{GatheredPairs, PairMeasure};
// Part of this crate's configs and signatures: re-exported so users need not name the kernels
// crate (the one kind of re-export the project allows, `docs/architecture.md`).
pub use desdis_kernels::distance::{Metric, DISTANCE_EPS};

/// Checks that `x` `(N, D)` and `y` `(M, D)` can be compared; returns `D`.
fn check_comparable(x: &Tensor, y: &Tensor) -> Result<usize> {
    check_matrix_pair("x", x, "y", y)?;
    let (dx, dy) = (x.dim(1)?, y.dim(1)?);
    if dx != dy {
        return Err(input(format!("descriptor lengths differ: {dx} vs {dy}")));
    }
    Ok(dx)
}

/// `sqrt(max(s, 0) + eps)`, elementwise and differentiable.
fn clamped_sqrt(s: &Tensor) -> Result<Tensor> {
    Ok((s.relu()? + DISTANCE_EPS)?.sqrt()?)
}

/// The differentiable `(N, M)` matrix of distances between the rows of `x` and the rows of `y`.
///
/// On the CPU with `f32`/`f64` descriptors this runs the fused kernel (one gemm, one pass, and a
/// hand-written backward); elsewhere it falls back to [`pairwise_distance_plain`].
///
/// # Shapes
/// - `x`: `(N, D)`, `y`: `(M, D)` → `(N, M)`
pub fn pairwise_distance(x: &Tensor, y: &Tensor, metric: Metric) -> Result<Tensor> {
    check_comparable(x, y)?;
    if !has_cpu_kernel(x) {
        return pairwise_distance_plain(x, y, metric);
    }
    Ok(x.contiguous()?.apply_op2(&y.contiguous()?, FusedDistance { metric })?)
}

/// [`pairwise_distance`] written with plain tensor ops, for any device and dtype.
///
/// # Shapes
/// - `x`: `(N, D)`, `y`: `(M, D)` → `(N, M)`
pub fn pairwise_distance_plain(x: &Tensor, y: &Tensor, metric: Metric) -> Result<Tensor> {
    check_comparable(x, y)?;
    let gram = x.matmul(&y.t()?)?;
    let s = match metric {
        Metric::UnitSphere => gram.affine(-2.0, 2.0)?,
        Metric::Euclidean => {
            let nx = x.sqr()?.sum_keepdim(1)?;
            let ny = y.sqr()?.sum_keepdim(1)?.t()?;
            nx.broadcast_add(&ny)?.broadcast_sub(&(gram * 2.0)?)?
        }
    };
    clamped_sqrt(&s)
}

/// Distances between row `i` of `x` and row `i` of `y`, for every `i`.
///
/// # Shapes
/// - `x`, `y`: `(N, D)` → `(N,)`
pub fn paired_distance(x: &Tensor, y: &Tensor, metric: Metric) -> Result<Tensor> {
    check_comparable(x, y)?;
    if x.dim(0)? != y.dim(0)? {
        return Err(input(format!("row counts differ: {} vs {}", x.dim(0)?, y.dim(0)?)));
    }
    let s = match metric {
        Metric::UnitSphere => (x * y)?.sum(1)?.affine(-2.0, 2.0)?,
        // The difference itself, not |x|² + |y|² - 2 x·y: no cancellation for close vectors.
        Metric::Euclidean => (x - y)?.sqr()?.sum(1)?,
    };
    clamped_sqrt(&s)
}

/// Row-wise dot products: `x_i · y_i`.
///
/// # Shapes
/// - `x`, `y`: `(N, D)` → `(N,)`
pub(crate) fn paired_dot(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok((x * y)?.sum(1)?)
}

/// The rows of `pool` at `indices`, differentiably.
///
/// # Shapes
/// - `pool`: `(P, D)` → `(indices.len(), D)`
fn gather_rows(pool: &Tensor, indices: &[u32]) -> Result<Tensor> {
    let ids = Tensor::from_slice(indices, indices.len(), pool.device())?;
    Ok(pool.index_select(&ids, 0)?)
}

/// True where the CPU kernels of this crate can run on `x`.
fn has_cpu_kernel(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// `measure(pool[left[k]], pool[right[k]])` for every `k`: in place on the CPU, through gathered
/// copies of the rows elsewhere.
///
/// # Shapes
/// - `pool`: `(P, D)` → `(left.len(),)`
pub(crate) fn gathered(pool: &Tensor, left: &[u32], right: &[u32], measure: PairMeasure) -> Result<Tensor> {
    if left.len() != right.len() {
        return Err(input(format!("{} left indices but {} right ones", left.len(), right.len())));
    }
    if has_cpu_kernel(pool) {
        let op = GatheredPairs { left: left.to_vec(), right: right.to_vec(), measure };
        return Ok(pool.contiguous()?.apply_op1(op)?);
    }
    gathered_plain(pool, left, right, measure)
}

/// [`gathered`] with plain tensor ops.
pub(crate) fn gathered_plain(
    pool: &Tensor,
    left: &[u32],
    right: &[u32],
    measure: PairMeasure,
) -> Result<Tensor> {
    let (x, y) = (gather_rows(pool, left)?, gather_rows(pool, right)?);
    match measure {
        PairMeasure::Dot => paired_dot(&x, &y),
        PairMeasure::Distance(metric) => paired_distance(&x, &y, metric),
    }
}

/// Distances between `pool[left[k]]` and `pool[right[k]]` for every `k`.
///
/// # Shapes
/// - `pool`: `(P, D)` → `(left.len(),)`
pub(crate) fn gathered_distance(
    pool: &Tensor,
    left: &[u32],
    right: &[u32],
    metric: Metric,
) -> Result<Tensor> {
    gathered(pool, left, right, PairMeasure::Distance(metric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Values and pool gradients of the in-place op and of the gather/scatter version, for
    /// repeated rows and a row paired with itself.
    #[test]
    fn in_place_pairs_equal_gathered_copies() -> crate::Result<()> {
        let left = [0u32, 3, 3, 5, 2, 4];
        let right = [1u32, 0, 4, 5, 2, 1];
        let weights = Tensor::new(&[0.3f64, -1.2, 0.7, 2.0, -0.4, 1.1], &Device::Cpu)?;
        let measures = [
            PairMeasure::Dot,
            PairMeasure::Distance(Metric::UnitSphere),
            PairMeasure::Distance(Metric::Euclidean),
        ];
        for dtype in [DType::F64, DType::F32] {
            let raw = Tensor::arange(0f64, 24.0, &Device::Cpu)?.reshape((6, 4))?;
            let pool = ((raw * 0.37)?.sin()? * 0.8)?.to_dtype(dtype)?;
            let var = Var::from_tensor(&pool)?;
            for measure in measures {
                let fast = gathered(var.as_tensor(), &left, &right, measure)?;
                let plain = gathered_plain(var.as_tensor(), &left, &right, measure)?;
                let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
                let gap = |x: &Tensor, y: &Tensor| -> crate::Result<f64> {
                    Ok((x - y)?.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
                };
                assert!(gap(&fast, &plain)? < tol, "{measure:?} {dtype:?}: values");
                let w = weights.to_dtype(dtype)?;
                let g_fast = (fast * &w)?.sum_all()?.backward()?;
                let g_plain = (plain * &w)?.sum_all()?.backward()?;
                assert!(
                    gap(g_fast.get(&var).unwrap(), g_plain.get(&var).unwrap())? < tol,
                    "{measure:?} {dtype:?}: grads"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn out_of_range_rows_are_errors() -> crate::Result<()> {
        let pool = Tensor::zeros((3, 2), DType::F32, &Device::Cpu)?;
        assert!(gathered(&pool, &[0, 3], &[1, 1], PairMeasure::Dot).is_err());
        assert!(gathered(&pool, &[0], &[1, 1], PairMeasure::Dot).is_err());
        Ok(())
    }
}
