//! Checks shared by every metric on labelled pairs (a distance and a "same point" flag each).

use crate::error::{Error, Result};

/// How many pairs of each kind a valid input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairCounts {
    pub positives: usize,
    pub negatives: usize,
}

/// Fails unless `distances` and `labels` pair up, are non-empty and every distance is finite.
pub(crate) fn check_pairs(what: &'static str, distances: &[f32], labels: &[bool]) -> Result<PairCounts> {
    if distances.len() != labels.len() {
        return Err(Error::LengthMismatch { what, left: distances.len(), right: labels.len() });
    }
    if distances.is_empty() {
        return Err(Error::Empty(what));
    }
    if let Some(index) = distances.iter().position(|d| !d.is_finite()) {
        return Err(Error::NonFinite { what, index });
    }
    let positives = labels.iter().filter(|&&l| l).count();
    Ok(PairCounts { positives, negatives: labels.len() - positives })
}

/// [`check_pairs`], and both kinds present: what rates on both sides (TPR and FPR) need.
pub(crate) fn check_both_kinds(what: &'static str, distances: &[f32], labels: &[bool]) -> Result<PairCounts> {
    let counts = check_pairs(what, distances, labels)?;
    if counts.positives == 0 {
        return Err(Error::NoPositives(what));
    }
    if counts.negatives == 0 {
        return Err(Error::NoNegatives(what));
    }
    Ok(counts)
}

/// Indices of `distances` from nearest to farthest; equal distances keep their input order, so
/// a ranking never depends on the sorting algorithm.
pub(crate) fn rank_by_distance(distances: &[f32]) -> Vec<usize> {
    use rayon::slice::ParallelSliceMut;
    let mut order: Vec<usize> = (0..distances.len()).collect();
    // A stable sort: the tie order is part of the definition (see docs/metrics.md).
    order.par_sort_by(|&a, &b| cmp_finite(distances[a], distances[b]));
    order
}

/// Orders two finite values; `-0.0` and `0.0` compare equal, as they do under `<=`, so rankings
/// and thresholds agree on ties.
pub(crate) fn cmp_finite(a: f32, b: f32) -> std::cmp::Ordering {
    a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
}
