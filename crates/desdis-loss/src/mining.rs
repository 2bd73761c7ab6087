//! In-batch negative mining and nearest neighbours, on a detached host copy of the descriptors.
//!
//! Which negative is hardest is piecewise constant in the descriptors, so it carries no gradient:
//! the losses mine indices here, then gather and differentiate only the `O(N)` distances they
//! use. This gives the same values and gradients as taking a masked minimum over the full
//! differentiable distance matrix (as the published code does), without its `O(N²)` backward.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::distance::Metric;
use crate::error::Result;
use desdis_kernels::distance::distance_matrix;
use desdis_kernels::matmul::Real;

/// Negative pairs closer than this are treated as false negatives (the same point seen twice) and
/// never mined: HardNet's value.
pub const FALSE_NEGATIVE_DISTANCE: f64 = 0.008;

/// Where the hardest negative of pair `i` is searched (never at `j = i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mining {
    /// Only `d(a_i, p_j)`: the row of the anchor.
    AnchorOnly,
    /// `d(a_i, p_j)` and `d(a_j, p_i)`: the row of the anchor and the column of the positive
    /// (HardNet's anchor swap).
    #[default]
    AnchorSwap,
    /// Also `d(a_i, a_j)` and `d(p_i, p_j)`: every other descriptor of the batch (SOSNet, HyNet).
    AllPairs,
}

/// One negative pair per batch pair, as indices into the pool `[anchors; positives]` of `2N`
/// rows: index `k < N` is anchor `k`, index `N + k` is positive `k`.
///
/// A pair whose every candidate is a false negative has no negative: `valid[i]` is false and
/// `(left[i], right[i])` is a placeholder that the losses mask out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negatives {
    /// Pool index of the first descriptor of each negative pair.
    pub left: Vec<u32>,
    /// Pool index of the second descriptor of each negative pair.
    pub right: Vec<u32>,
    /// Whether each pair has a negative at all.
    pub valid: Vec<bool>,
}

impl Negatives {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.valid.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    /// True when every pair has a negative.
    pub fn all_valid(&self) -> bool {
        self.valid.iter().all(|&v| v)
    }

    fn from_choices(choices: Vec<Option<Candidate>>) -> Self {
        let n = choices.len() as u32;
        let placeholder = |i: usize| Candidate { dist: 0.0, left: i as u32, right: n + i as u32 };
        let picked = choices.iter().enumerate().map(|(i, c)| c.unwrap_or_else(|| placeholder(i)));
        let (left, right) = picked.map(|c| (c.left, c.right)).unzip();
        Self { left, right, valid: choices.iter().map(Option::is_some).collect() }
    }
}

/// A candidate negative: its distance and its pool indices.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    dist: f64,
    left: u32,
    right: u32,
}

/// Keeps the closer of `best` and `other`; on a tie the earlier one stays.
fn closer(best: Option<Candidate>, other: Option<Candidate>) -> Option<Candidate> {
    match (best, other) {
        (Some(b), Some(o)) if o.dist < b.dist => Some(o),
        (None, o) => o,
        (b, _) => b,
    }
}

/// The detached descriptors as a host vector of `T`.
fn host_copy<T: Real>(x: &Tensor) -> Result<Vec<T>> {
    Ok(x.detach().to_device(&Device::Cpu)?.to_dtype(T::DTYPE)?.flatten_all()?.to_vec1::<T>()?)
}

/// A square `(n, n)` distance matrix on the host.
struct Square<T> {
    data: Vec<T>,
    n: usize,
}

impl<T: Real> Square<T> {
    fn new(x: &[T], y: &[T], d: usize, metric: Metric) -> Self {
        Self { data: distance_matrix(x, y, d, metric), n: x.len() / d }
    }

    fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// Per row: the closest column `j != i` with distance `>= threshold`, as `(j, distance)`.
    fn row_minima(&self, threshold: f64) -> Vec<Option<(usize, f64)>> {
        (0..self.n)
            .into_par_iter()
            .map(|i| {
                let mut best: Option<(usize, f64)> = None;
                for (j, &v) in self.row(i).iter().enumerate() {
                    let v = v.to_f64();
                    if j != i && v >= threshold && best.is_none_or(|(_, b)| v < b) {
                        best = Some((j, v));
                    }
                }
                best
            })
            .collect()
    }

    /// Per column: the closest row `i != j` with distance `>= threshold`, as `(i, distance)`.
    fn column_minima(&self, threshold: f64) -> Vec<Option<(usize, f64)>> {
        const CHUNK: usize = 64;
        let mut best: Vec<Option<(usize, f64)>> = vec![None; self.n];
        // Columns in parallel chunks; rows in order inside each, so ties keep the first row.
        best.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
            for i in 0..self.n {
                let row = &self.row(i)[c * CHUNK..c * CHUNK + chunk.len()];
                for (jj, (slot, &v)) in chunk.iter_mut().zip(row).enumerate() {
                    let v = v.to_f64();
                    if c * CHUNK + jj != i && v >= threshold && slot.is_none_or(|(_, b)| v < b) {
                        *slot = Some((i, v));
                    }
                }
            }
        });
        best
    }

    /// Per row: the `k` closest columns `j != i`, nearest first (ties by index).
    fn nearest(&self, k: usize) -> Vec<Vec<u32>> {
        (0..self.n).into_par_iter().map(|i| nearest_in_row(self.row(i), i, k)).collect()
    }
}

/// The `k` smallest entries of `row` other than `skip`, as indices, smallest first; equal
/// distances keep index order. One pass with a short sorted list: most entries cost one compare.
fn nearest_in_row<T: Real>(row: &[T], skip: usize, k: usize) -> Vec<u32> {
    let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
    for (j, &v) in row.iter().enumerate() {
        let v = v.to_f64();
        if j == skip || (best.len() == k && best.last().is_some_and(|&(worst, _)| v >= worst)) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b <= v);
        best.insert(at, (v, j as u32));
        best.truncate(k);
    }
    best.into_iter().map(|(_, j)| j).collect()
}

/// Turns per-row (or per-column) minima into candidates with pool indices.
fn candidates(
    minima: Vec<Option<(usize, f64)>>,
    pool_pair: impl Fn(usize, usize) -> (usize, usize),
) -> Vec<Option<Candidate>> {
    minima
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            m.map(|(j, dist)| {
                let (left, right) = pool_pair(i, j);
                Candidate { dist, left: left as u32, right: right as u32 }
            })
        })
        .collect()
}

/// Keeps, per pair, the closer of the current choice and the new candidate.
fn merge(choices: &mut [Option<Candidate>], new: Vec<Option<Candidate>>) {
    choices.iter_mut().zip(new).for_each(|(c, o)| *c = closer(*c, o));
}

/// The hardest negatives from the anchor-positive distances `ap` and, for [`Mining::AllPairs`],
/// the anchor-anchor and positive-positive ones `within`.
fn hardest_in<T: Real>(
    ap: &Square<T>,
    within: Option<(&Square<T>, &Square<T>)>,
    mining: Mining,
    threshold: f64,
) -> Negatives {
    let n = ap.n;
    let mut choices = candidates(ap.row_minima(threshold), |i, j| (i, n + j));
    if mining != Mining::AnchorOnly {
        merge(&mut choices, candidates(ap.column_minima(threshold), |i, k| (k, n + i)));
    }
    if let (Mining::AllPairs, Some((aa, pp))) = (mining, within) {
        merge(&mut choices, candidates(aa.row_minima(threshold), |i, j| (i, j)));
        merge(&mut choices, candidates(pp.row_minima(threshold), |i, j| (n + i, n + j)));
    }
    Negatives::from_choices(choices)
}

/// Runs `f32` or `f64` host code on the batch, matching its dtype (`f64` stays `f64`; anything
/// else is mined in `f32`).
macro_rules! on_host {
    ($dtype:expr, |$t:ident| $body:expr) => {
        match $dtype {
            DType::F64 => {
                type $t = f64;
                $body
            }
            _ => {
                type $t = f32;
                $body
            }
        }
    };
}

/// The hardest valid negative of every pair of `batch`: the closest candidate of `mining` whose
/// distance is at least `threshold`; ties go to the earlier candidate (anchor row, positive
/// column, anchor-anchor, positive-positive; lower index first).
pub fn hardest_negatives(
    batch: &PairBatch,
    metric: Metric,
    mining: Mining,
    threshold: f64,
) -> Result<Negatives> {
    batch.require_negatives()?;
    let d = batch.dim();
    on_host!(batch.anchors().dtype(), |T| {
        let (a, p) = (host_copy::<T>(batch.anchors())?, host_copy::<T>(batch.positives())?);
        let ap = Square::new(&a, &p, d, metric);
        let within = (mining == Mining::AllPairs)
            .then(|| (Square::new(&a, &a, d, metric), Square::new(&p, &p, d, metric)));
        Ok(hardest_in(&ap, within.as_ref().map(|(aa, pp)| (aa, pp)), mining, threshold))
    })
}

/// Per row, the indices of its nearest other rows, nearest first.
pub type Neighbours = Vec<Vec<u32>>;

/// [`hardest_negatives`] together with [`nearest_neighbours`] of the anchors and of the
/// positives, from one set of distance matrices.
pub(crate) fn hardest_negatives_and_neighbours(
    batch: &PairBatch,
    metric: Metric,
    mining: Mining,
    threshold: f64,
    k: usize,
) -> Result<(Negatives, Neighbours, Neighbours)> {
    batch.require_negatives()?;
    let d = batch.dim();
    on_host!(batch.anchors().dtype(), |T| {
        let (a, p) = (host_copy::<T>(batch.anchors())?, host_copy::<T>(batch.positives())?);
        let (aa, pp) = (Square::new(&a, &a, d, metric), Square::new(&p, &p, d, metric));
        let negatives = hardest_in(&Square::new(&a, &p, d, metric), Some((&aa, &pp)), mining, threshold);
        Ok((negatives, aa.nearest(k), pp.nearest(k)))
    })
}

/// TFeat's random negative: for pair `i`, the positive of pair `i + 1` (wrapping), a random
/// patch of another point since pairs are shuffled into batches. With `anchor_swap` the negative
/// is measured from whichever of `a_i`, `p_i` is closer to it.
pub fn shifted_negatives(
    batch: &PairBatch,
    metric: Metric,
    anchor_swap: bool,
    threshold: f64,
) -> Result<Negatives> {
    batch.require_negatives()?;
    let (n, d) = (batch.len(), batch.dim());
    on_host!(batch.anchors().dtype(), |T| {
        let (a, p) = (host_copy::<T>(batch.anchors())?, host_copy::<T>(batch.positives())?);
        let pool: Vec<T> = a.iter().chain(&p).copied().collect();
        let choices = (0..n)
            .map(|i| {
                let negative = n + (i + 1) % n;
                let from_anchor = candidate(&pool, d, metric, threshold, i, negative);
                let from_positive =
                    anchor_swap.then(|| candidate(&pool, d, metric, threshold, n + i, negative)).flatten();
                closer(from_anchor, from_positive)
            })
            .collect();
        Ok(Negatives::from_choices(choices))
    })
}

/// The candidate `(left, right)` of the pool, if it is not a false negative.
fn candidate<T: Real>(
    pool: &[T],
    d: usize,
    metric: Metric,
    threshold: f64,
    left: usize,
    right: usize,
) -> Option<Candidate> {
    let row = |k: usize| &pool[k * d..(k + 1) * d];
    let dist = pair_distance(row(left), row(right), metric);
    (dist >= threshold).then_some(Candidate { dist, left: left as u32, right: right as u32 })
}

/// The distance between two descriptors, in `f64`, computed as [`crate::paired_distance`] does.
fn pair_distance<T: Real>(x: &[T], y: &[T], metric: Metric) -> f64 {
    let s: f64 = match metric {
        Metric::UnitSphere => {
            2.0 - 2.0 * x.iter().zip(y).map(|(&u, &v)| u.to_f64() * v.to_f64()).sum::<f64>()
        }
        Metric::Euclidean => x.iter().zip(y).map(|(&u, &v)| (u.to_f64() - v.to_f64()).powi(2)).sum(),
    };
    (s.max(0.0) + crate::distance::DISTANCE_EPS).sqrt()
}

/// For every row `i` of `x`, the `k` nearest other rows (nearest first, ties by index); fewer
/// when `x` has at most `k` rows.
///
/// # Shapes
/// - `x`: `(N, D)` → `N` lists of `min(k, N - 1)` row indices
pub fn nearest_neighbours(x: &Tensor, k: usize, metric: Metric) -> Result<Neighbours> {
    crate::batch::check_matrix("descriptors", x)?;
    let d = x.dim(1)?;
    on_host!(x.dtype(), |T| {
        let host = host_copy::<T>(x)?;
        Ok(Square::new(&host, &host, d, metric).nearest(k))
    })
}
