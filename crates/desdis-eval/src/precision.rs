//! Average precision of a list ranked by distance.
//!
//! The list is ranked nearest first; equal distances keep their input order. Precision and
//! recall after each rank form the precision-recall curve, which starts at (recall 0,
//! precision 1). See `docs/metrics.md`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pairs::{check_pairs, rank_by_distance};

/// How the area under the precision-recall curve is summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrIntegration {
    /// Trapezoidal rule over the curve from (0, 1): each positive at rank `i` adds
    /// `(precision(i-1) + precision(i)) / 2 / P`. This is what the HPatches benchmark reports
    /// (`np.trapz(precision, recall)`), so numbers compare with published HPatches results.
    #[default]
    HPatchesTrapezoid,
    /// Step rule (non-interpolated AP): each positive at rank `i` adds `precision(i) / P`.
    Step,
}

/// Average precision of pairs ranked by distance, with `P` the number of positive labels.
///
/// Fails on mismatched lengths, empty input, a non-finite distance, or no positive.
pub fn average_precision(distances: &[f32], labels: &[bool], integration: PrIntegration) -> Result<f64> {
    let positives = check_pairs("average precision", distances, labels)?.positives;
    average_precision_of_retrieved(distances, labels, positives, integration)
}

/// Average precision when only part of the relevant items were retrieved: recall is divided by
/// `total_positives`, which may exceed the positives in `labels` (HPatches matching: a
/// reference patch whose nearest neighbour is wrong is a positive never retrieved).
pub fn average_precision_of_retrieved(
    distances: &[f32],
    labels: &[bool],
    total_positives: usize,
    integration: PrIntegration,
) -> Result<f64> {
    let what = "average precision";
    let retrieved = check_pairs(what, distances, labels)?.positives;
    if total_positives == 0 {
        return Err(Error::NoPositives(what));
    }
    if total_positives < retrieved {
        return Err(Error::InvalidArgument(format!(
            "{what}: total_positives {total_positives} is less than the {retrieved} positives in the list"
        )));
    }
    let ranked_labels: Vec<bool> = rank_by_distance(distances).into_iter().map(|i| labels[i]).collect();
    Ok(area_under_pr(&ranked_labels, total_positives, integration))
}

/// Sums the area for labels already in rank order.
fn area_under_pr(ranked_labels: &[bool], total_positives: usize, integration: PrIntegration) -> f64 {
    let mut area = 0.0;
    let mut true_positives = 0usize;
    // The curve starts at precision 1 before anything is retrieved.
    let mut previous_precision = 1.0;
    for (rank0, &is_positive) in ranked_labels.iter().enumerate() {
        true_positives += usize::from(is_positive);
        let precision = true_positives as f64 / (rank0 + 1) as f64;
        if is_positive {
            area += match integration {
                PrIntegration::HPatchesTrapezoid => (previous_precision + precision) / 2.0,
                PrIntegration::Step => precision,
            };
        }
        previous_precision = precision;
    }
    area / total_positives as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ranking() {
        // Ranked labels: +, -, +. Precision after each rank: 1, 1/2, 2/3.
        let d = [0.1, 0.2, 0.3];
        let l = [true, false, true];
        let step = average_precision(&d, &l, PrIntegration::Step).unwrap();
        assert!((step - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        let trapezoid = average_precision(&d, &l, PrIntegration::HPatchesTrapezoid).unwrap();
        let expected = ((1.0 + 1.0) / 2.0 + (0.5 + 2.0 / 3.0) / 2.0) / 2.0;
        assert!((trapezoid - expected).abs() < 1e-12);
    }

    #[test]
    fn unretrieved_positives_lower_the_recall() {
        let ap = average_precision_of_retrieved(&[0.1], &[true], 4, PrIntegration::Step).unwrap();
        assert!((ap - 0.25).abs() < 1e-12);
        assert!(matches!(
            average_precision_of_retrieved(&[0.1, 0.2], &[true, true], 1, PrIntegration::Step),
            Err(Error::InvalidArgument(_))
        ));
    }
}
