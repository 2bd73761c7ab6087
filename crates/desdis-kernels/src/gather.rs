//! A measure (dot product or distance) between listed pairs of rows of one matrix, as a candle op
//! that reads the rows in place: the plain version gathers copies of the rows with `index_select`
//! and scatters their gradients back with `index_add`, which on the CPU costs more than the rest
//! of a mined loss together.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::distance::{Metric, DISTANCE_EPS};
use crate::matmul::Real;
use crate::op::contiguous;

const OP: &str = "desdis gathered pairs";

/// What is measured between two rows `x`, `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairMeasure {
    /// `x·y`.
    Dot,
    /// `sqrt(max(s, 0) + eps)` with `s` as the metric defines it.
    Distance(Metric),
}

/// `measure(pool[left[k]], pool[right[k]])` for every `k`, with a first-order backward.
#[derive(Clone, Debug)]
pub struct GatheredPairs {
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    pub measure: PairMeasure,
}

fn dot<T: Real>(x: &[T], y: &[T]) -> T {
    x.iter().zip(y).fold(T::from_f64(0.0), |acc, (&u, &v)| acc + u * v)
}

/// The `s` under the square root of a distance: `2 - 2 x·y` or `|x - y|²`.
fn squared_distance<T: Real>(x: &[T], y: &[T], metric: Metric) -> T {
    match metric {
        Metric::UnitSphere => T::from_f64(2.0) - T::from_f64(2.0) * dot(x, y),
        Metric::Euclidean => x.iter().zip(y).fold(T::from_f64(0.0), |acc, (&u, &v)| acc + (u - v) * (u - v)),
    }
}

impl GatheredPairs {
    fn value<T: Real>(&self, x: &[T], y: &[T]) -> T {
        match self.measure {
            PairMeasure::Dot => dot(x, y),
            PairMeasure::Distance(metric) => {
                let s = squared_distance(x, y, metric);
                let zero = T::from_f64(0.0);
                (if s > zero { s } else { zero } + T::from_f64(DISTANCE_EPS)).sqrt()
            }
        }
    }

    fn forward<T: Real>(&self, pool: &[T], d: usize) -> Vec<T> {
        let row = |k: u32| &pool[k as usize * d..(k as usize + 1) * d];
        self.left.par_iter().zip(self.right.par_iter()).map(|(&l, &r)| self.value(row(l), row(r))).collect()
    }

    /// `(coefficient on y for x's gradient, coefficient on x for x's)`: the gradient of the
    /// measure with respect to `x` is `cy * y + cx * x`, and with respect to `y` it is
    /// `cy * x + cx * y` (every measure here is symmetric in the two rows).
    fn coefficients<T: Real>(&self, x: &[T], y: &[T], value: T, grad: T) -> (T, T) {
        let zero = T::from_f64(0.0);
        match self.measure {
            PairMeasure::Dot => (grad, zero),
            PairMeasure::Distance(metric) => {
                // As the relu of the plain version: the gradient passes where s >= 0.
                if squared_distance(x, y, metric) < zero {
                    return (zero, zero);
                }
                let c = grad / value;
                match metric {
                    Metric::UnitSphere => (zero - c, zero),
                    Metric::Euclidean => (zero - c, c),
                }
            }
        }
    }

    fn backward<T: Real>(&self, pool: &[T], d: usize, values: &[T], grads: &[T]) -> Vec<T> {
        let mut out = vec![T::from_f64(0.0); pool.len()];
        let row = |k: u32| k as usize * d..(k as usize + 1) * d;
        for (k, (&l, &r)) in self.left.iter().zip(&self.right).enumerate() {
            let (x, y) = (&pool[row(l)], &pool[row(r)]);
            let (cy, cx) = self.coefficients(x, y, values[k], grads[k]);
            for (o, (&u, &v)) in out[row(l)].iter_mut().zip(x.iter().zip(y)) {
                *o += cy * v + cx * u;
            }
            for (o, (&u, &v)) in out[row(r)].iter_mut().zip(x.iter().zip(y)) {
                *o += cy * u + cx * v;
            }
        }
        out
    }

    fn check_indices(&self, rows: usize) -> candle_core::Result<()> {
        match self.left.iter().chain(&self.right).find(|&&k| k as usize >= rows) {
            Some(k) => bail!("desdis gathered pairs: row {k} out of {rows}"),
            None => Ok(()),
        }
    }
}

impl CustomOp1 for GatheredPairs {
    fn name(&self) -> &'static str {
        "desdis-gathered-pairs"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let &[rows, d] = layout.dims() else {
            bail!("desdis gathered pairs: expected a matrix, got {:?}", layout.dims())
        };
        self.check_indices(rows)?;
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(self.forward(contiguous::<f32>(storage, layout, OP)?, d)),
            CpuStorage::F64(_) => CpuStorage::F64(self.forward(contiguous::<f64>(storage, layout, OP)?, d)),
            _ => bail!("desdis gathered pairs: expected f32 or f64"),
        };
        Ok((out, Shape::from(self.left.len())))
    }

    /// The gradient of the pool, as a plain value: gradients of gradients are not supported.
    fn bwd(&self, pool: &Tensor, values: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        match pool.dtype() {
            candle_core::DType::F32 => self.pool_grad::<f32>(pool, values, &grad).map(Some),
            candle_core::DType::F64 => self.pool_grad::<f64>(pool, values, &grad).map(Some),
            other => bail!("desdis gathered pairs: unsupported dtype {other:?}"),
        }
    }
}

impl GatheredPairs {
    fn pool_grad<T: Real>(
        &self,
        pool: &Tensor,
        values: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let d = pool.dim(1)?;
        let out = {
            let (ps, pl) = pool.storage_and_layout();
            let (vs, vl) = values.storage_and_layout();
            let (gs, gl) = grad.storage_and_layout();
            let (Storage::Cpu(ps), Storage::Cpu(vs), Storage::Cpu(gs)) = (&*ps, &*vs, &*gs) else {
                bail!("desdis gathered pairs: backward expects CPU tensors")
            };
            self.backward(
                contiguous::<T>(ps, pl, OP)?,
                d,
                contiguous::<T>(vs, vl, OP)?,
                contiguous::<T>(gs, gl, OP)?,
            )
        };
        Tensor::from_vec(out, pool.shape(), pool.device())
    }
}
