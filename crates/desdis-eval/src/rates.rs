//! False-positive rate at a given recall (FPR95) and the ROC curve of labelled pairs.
//!
//! A pair is accepted as a match when its distance is at most the threshold. Definitions and
//! their relation to the HardNet and HyNet evaluation code are in `docs/metrics.md`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pairs::{check_both_kinds, cmp_finite, rank_by_distance};

/// The recall at which FPR95 is read.
pub const RECALL_95: f64 = 0.95;

/// One threshold on the distance and what it does to the pairs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Pairs with a distance `<= threshold` are accepted.
    pub threshold: f32,
    /// Accepted positives.
    pub true_positives: usize,
    /// Accepted negatives.
    pub false_positives: usize,
    /// `true_positives / positives` (TPR).
    pub recall: f64,
    /// `false_positives / negatives` (FPR).
    pub false_positive_rate: f64,
}

/// FPR95: the false-positive rate at the smallest distance threshold whose recall reaches 95 %.
///
/// `distances[i]` belongs to pair `i`, `labels[i]` says whether it shows the same point.
/// Fails on mismatched lengths, empty input, a non-finite distance, or no positive or no
/// negative pair. See [`operating_point_at_recall`] for the exact rule.
pub fn fpr95(distances: &[f32], labels: &[bool]) -> Result<f64> {
    Ok(operating_point_at_recall(distances, labels, RECALL_95)?.false_positive_rate)
}

/// The operating point at the smallest threshold whose recall reaches `recall` (in `(0, 1]`).
///
/// With `P` positives, `k` is the smallest count with `k >= recall * P`; the threshold is the
/// `k`-th smallest positive distance, and every pair at or below it is accepted — negatives that
/// tie with the threshold count as false positives. The achieved recall can exceed `recall`
/// when positives tie with the threshold.
pub fn operating_point_at_recall(distances: &[f32], labels: &[bool], recall: f64) -> Result<OperatingPoint> {
    let what = "false-positive rate at recall";
    if !(recall > 0.0 && recall <= 1.0) {
        return Err(Error::InvalidArgument(format!("{what}: recall {recall} is not in (0, 1]")));
    }
    let counts = check_both_kinds(what, distances, labels)?;
    let needed = positives_needed(recall, counts.positives);
    let mut positive_distances: Vec<f32> =
        distances.iter().zip(labels).filter(|(_, &l)| l).map(|(&d, _)| d).collect();
    // Selecting the k-th smallest is enough; a full sort is not needed.
    let (_, &mut threshold, _) =
        positive_distances.select_nth_unstable_by(needed - 1, |a, b| cmp_finite(*a, *b));
    let (true_positives, false_positives) = accepted_counts(distances, labels, threshold);
    Ok(OperatingPoint {
        threshold,
        true_positives,
        false_positives,
        recall: true_positives as f64 / counts.positives as f64,
        false_positive_rate: false_positives as f64 / counts.negatives as f64,
    })
}

/// Smallest count `k` of positives with `k >= recall * positives`, at least one.
///
/// The product is compared in floating point exactly as `cumsum(labels) >= 0.95 * sum(labels)`
/// is in the HardNet code, so both pick the same `k` even where `0.95 * P` rounds.
fn positives_needed(recall: f64, positives: usize) -> usize {
    let target = recall * positives as f64;
    (target.ceil() as usize).clamp(1, positives)
}

/// Accepted positives and negatives at `threshold`.
fn accepted_counts(distances: &[f32], labels: &[bool], threshold: f32) -> (usize, usize) {
    distances.iter().zip(labels).filter(|(&d, _)| d <= threshold).fold((0, 0), |(tp, fp), (_, &l)| {
        if l {
            (tp + 1, fp)
        } else {
            (tp, fp + 1)
        }
    })
}

/// The ROC curve of labelled pairs: one [`OperatingPoint`] per distinct distance, in increasing
/// order of threshold (so recall and FPR never decrease). Pairs with equal distances enter
/// together, as they do in [`operating_point_at_recall`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// Number of positive pairs.
    pub positives: usize,
    /// Number of negative pairs.
    pub negatives: usize,
    /// The operating points; the curve implicitly starts at (FPR 0, recall 0).
    pub points: Vec<OperatingPoint>,
}

impl RocCurve {
    /// Builds the curve; fails as [`fpr95`] does on bad input.
    pub fn new(distances: &[f32], labels: &[bool]) -> Result<Self> {
        let counts = check_both_kinds("ROC curve", distances, labels)?;
        let order = rank_by_distance(distances);
        let mut points: Vec<OperatingPoint> = Vec::new();
        let (mut tp, mut fp) = (0, 0);
        for (rank, &i) in order.iter().enumerate() {
            if labels[i] {
                tp += 1;
            } else {
                fp += 1;
            }
            let last_of_tie =
                order.get(rank + 1).is_none_or(|&next| cmp_finite(distances[next], distances[i]).is_gt());
            if last_of_tie {
                points.push(OperatingPoint {
                    threshold: distances[i],
                    true_positives: tp,
                    false_positives: fp,
                    recall: tp as f64 / counts.positives as f64,
                    false_positive_rate: fp as f64 / counts.negatives as f64,
                });
            }
        }
        Ok(Self { positives: counts.positives, negatives: counts.negatives, points })
    }

    /// The first point whose recall reaches `recall` (same rule as
    /// [`operating_point_at_recall`], which gives the same point).
    pub fn at_recall(&self, recall: f64) -> Result<OperatingPoint> {
        if !(recall > 0.0 && recall <= 1.0) {
            return Err(Error::InvalidArgument(format!("ROC curve: recall {recall} is not in (0, 1]")));
        }
        let needed = positives_needed(recall, self.positives);
        self.points
            .iter()
            .find(|p| p.true_positives >= needed)
            .copied()
            .ok_or_else(|| Error::InvalidArgument("ROC curve: no point reaches full recall".into()))
    }

    /// Points at each of `recalls`, e.g. for an FPR-versus-recall plot with a fixed number of
    /// points however many pairs there are.
    pub fn at_recalls(&self, recalls: &[f64]) -> Result<Vec<OperatingPoint>> {
        recalls.iter().map(|&r| self.at_recall(r)).collect()
    }

    /// Area under the curve (FPR on x, recall on y), by the trapezoidal rule from (0, 0), as the
    /// HPatches balanced verification protocol reports it.
    pub fn auc(&self) -> f64 {
        let mut area = 0.0;
        let (mut x, mut y) = (0.0, 0.0);
        for p in &self.points {
            area += (p.false_positive_rate - x) * (p.recall + y) / 2.0;
            (x, y) = (p.false_positive_rate, p.recall);
        }
        area
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_k_never_drops_to_zero() {
        assert_eq!(positives_needed(0.95, 1), 1);
        assert_eq!(positives_needed(0.95, 20), 19);
        assert_eq!(positives_needed(0.95, 21), 20);
        assert_eq!(positives_needed(1e-9, 5), 1);
    }

    #[test]
    fn curve_groups_ties_and_ends_at_the_corner() {
        let d = [0.1, 0.2, 0.2, 0.3];
        let l = [true, false, true, false];
        let roc = RocCurve::new(&d, &l).unwrap();
        let summary: Vec<_> =
            roc.points.iter().map(|p| (p.threshold, p.true_positives, p.false_positives)).collect();
        assert_eq!(summary, vec![(0.1, 1, 0), (0.2, 2, 1), (0.3, 2, 2)]);
        // P(positive nearer than negative), a tie counting one half: 3.5 of 4 pairs.
        assert!((roc.auc() - 0.875).abs() < 1e-12);
    }

    #[test]
    fn recall_out_of_range_is_an_error() {
        let d = [0.1, 0.2];
        let l = [true, false];
        assert!(matches!(operating_point_at_recall(&d, &l, 0.0), Err(Error::InvalidArgument(_))));
        assert!(matches!(operating_point_at_recall(&d, &l, f64::NAN), Err(Error::InvalidArgument(_))));
        assert!(matches!(RocCurve::new(&d, &l).unwrap().at_recall(1.5), Err(Error::InvalidArgument(_))));
    }
}
