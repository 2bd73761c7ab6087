//! The HPatches-style tasks on a synthetic sequence against the numpy reference, and on
//! constructed sequences whose scores are known exactly.

mod common;

use common::{assert_close, load, to_f32, Image};
use desdis_eval::{
    matching_ap, matching_map, retrieval_map, verification_ap, verification_pairs, DescriptorMatrix,
    ImageDescriptors, SequenceScores, NEGATIVES_PER_POSITIVE,
};

// Distances here are f32 (numpy: f64); the fixture script checks no ranking is that close.
const TOL: f64 = 1e-9;

struct OwnedImage {
    values: Vec<f32>,
    ids: Vec<u64>,
}

impl OwnedImage {
    fn from_fixture(image: &Image) -> Self {
        Self { values: to_f32(&image.descriptors), ids: image.point_ids.clone() }
    }

    fn view(&self, dim: usize) -> ImageDescriptors<'_> {
        ImageDescriptors::new(DescriptorMatrix::new(&self.values, dim).unwrap(), &self.ids).unwrap()
    }
}

fn fixture_images() -> (usize, OwnedImage, Vec<OwnedImage>) {
    let seq = load().sequence;
    let targets = seq.targets.iter().map(OwnedImage::from_fixture).collect();
    (seq.dim, OwnedImage::from_fixture(&seq.reference), targets)
}

#[test]
fn matching_ap_per_image_matches_the_reference() {
    let expected = load().sequence;
    let (dim, reference, targets) = fixture_images();
    let reference = reference.view(dim);
    for (i, target) in targets.iter().enumerate() {
        let got = matching_ap(&reference, &target.view(dim)).unwrap();
        assert_close(got, expected.matching_ap[i], TOL, &format!("target {i}"));
    }
    let views: Vec<_> = targets.iter().map(|t| t.view(dim)).collect();
    assert_close(matching_map(&reference, &views).unwrap(), expected.matching_map, TOL, "mAP");
}

#[test]
fn verification_pairs_and_scores_match_the_reference() {
    let expected = load().sequence;
    let (dim, reference, targets) = fixture_images();
    let views: Vec<_> = targets.iter().map(|t| t.view(dim)).collect();
    let pairs = verification_pairs(&reference.view(dim), &views).unwrap();
    let positives = pairs.labels.iter().filter(|&&l| l).count();
    assert_eq!(positives, expected.verification_positives);
    assert_eq!(pairs.labels.len() - positives, expected.verification_negatives);
    assert_eq!(expected.verification_negatives, NEGATIVES_PER_POSITIVE * positives);
    assert_close(verification_ap(&pairs).unwrap(), expected.verification_ap, TOL, "verification AP");
}

#[test]
fn sequence_scores_match_the_reference() {
    let expected = load().sequence;
    let (dim, reference, targets) = fixture_images();
    let views: Vec<_> = targets.iter().map(|t| t.view(dim)).collect();
    let scores = SequenceScores::compute(&reference.view(dim), &views).unwrap();
    assert_close(scores.verification_ap, expected.verification_ap, TOL, "verification AP");
    assert_close(scores.matching_map, expected.matching_map, TOL, "matching mAP");
    assert_close(scores.retrieval_map, expected.retrieval_map, TOL, "retrieval mAP");
    assert_close(scores.fpr95, expected.fpr95, TOL, "FPR95");
    assert!(scores.fpr95 > 0.0 && scores.matching_map < 1.0, "the fixture is not trivially easy");
}

/// A reference of `n` points in `dim` dimensions and targets holding the same descriptors in a
/// rotated row order, so every descriptor has an exact copy with the same point id.
fn copied_sequence(n: usize, dim: usize, targets: usize) -> (OwnedImage, Vec<OwnedImage>) {
    let values: Vec<f32> = (0..n * dim).map(|i| ((i * 37 % 101) as f32 / 101.0).sin()).collect();
    let ids: Vec<u64> = (0..n as u64).map(|i| 1000 + 7 * i).collect();
    let rotated = |shift: usize| OwnedImage {
        values: (0..n).flat_map(|r| values[((r + shift) % n) * dim..][..dim].to_vec()).collect(),
        ids: (0..n).map(|r| ids[(r + shift) % n]).collect(),
    };
    let reference = OwnedImage { values: values.clone(), ids: ids.clone() };
    (reference, (1..=targets).map(rotated).collect())
}

#[test]
fn perfect_descriptors_score_perfectly() {
    let (reference, targets) = copied_sequence(30, 8, 3);
    let views: Vec<_> = targets.iter().map(|t| t.view(8)).collect();
    let scores = SequenceScores::compute(&reference.view(8), &views).unwrap();
    assert_eq!(
        scores,
        SequenceScores { verification_ap: 1.0, matching_map: 1.0, retrieval_map: 1.0, fpr95: 0.0 }
    );
}

#[test]
fn descriptors_of_the_wrong_points_score_low() {
    let (reference, mut targets) = copied_sequence(30, 8, 3);
    // Every target patch now claims the point of the next patch: each exact copy is a negative.
    for target in &mut targets {
        target.ids.rotate_left(1);
    }
    let views: Vec<_> = targets.iter().map(|t| t.view(8)).collect();
    let scores = SequenceScores::compute(&reference.view(8), &views).unwrap();
    assert_eq!(scores.matching_map, 0.0, "every nearest neighbour is wrong");
    assert!(scores.verification_ap < 0.5, "verification AP {}", scores.verification_ap);
    assert!(scores.retrieval_map < 0.5, "retrieval mAP {}", scores.retrieval_map);
    assert!(scores.fpr95 > 0.1, "FPR95 {}", scores.fpr95);
}

#[test]
fn retrieval_skips_queries_without_positives() {
    let pool_values = [0.0, 1.0, 2.0, 3.0];
    let pool = DescriptorMatrix::new(&pool_values, 1).unwrap();
    let query_values = [0.1, 2.9];
    let queries = DescriptorMatrix::new(&query_values, 1).unwrap();
    // Query 0 (label 5) has positives at 0.0 and 3.0; query 1 (label 9) has none.
    let map = retrieval_map(&queries, &[5, 9], &pool, &[5, 6, 7, 5]).unwrap();
    // Query 0 ranks 0.0 (+), 1.0, 2.0, 3.0 (+), precisions 1, 1/2, 1/3, 2/4: the trapezoid adds
    // (1 + 1)/2 at rank 1 and (1/3 + 2/4)/2 at rank 4, over 2 positives.
    let expected = ((1.0 + 1.0) / 2.0 + (1.0 / 3.0 + 2.0 / 4.0) / 2.0) / 2.0;
    assert_close(map, expected, 1e-12, "one query counted");
}

#[test]
fn mean_weights_every_sequence_equally() {
    let a = SequenceScores { verification_ap: 1.0, matching_map: 0.5, retrieval_map: 0.2, fpr95: 0.0 };
    let b = SequenceScores { verification_ap: 0.5, matching_map: 0.0, retrieval_map: 0.4, fpr95: 0.2 };
    let mean = SequenceScores::mean(&[a, b]).unwrap();
    assert_close(mean.verification_ap, 0.75, 1e-12, "verification");
    assert_close(mean.matching_map, 0.25, 1e-12, "matching");
    assert_close(mean.retrieval_map, 0.3, 1e-12, "retrieval");
    assert_close(mean.fpr95, 0.1, 1e-12, "fpr95");
}
