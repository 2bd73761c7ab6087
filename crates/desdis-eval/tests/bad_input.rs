//! Bad input gives a clear error, never a NaN or a panic.

use desdis_eval::{
    average_precision, fpr95, matching_ap, operating_point_at_recall, retrieval_map, verification_pairs,
    DescriptorMatrix, Error, ImageDescriptors, PrIntegration, RocCurve, SequenceScores,
};

/// Distances, labels, and the check that the error is the right one.
type BadCase = (&'static [f32], &'static [bool], fn(&Error) -> bool);

#[test]
fn fpr95_rejects_every_kind_of_bad_pair_list() {
    let cases: [BadCase; 5] = [
        (&[0.1, 0.2], &[true], |e| matches!(e, Error::LengthMismatch { left: 2, right: 1, .. })),
        (&[], &[], |e| matches!(e, Error::Empty(_))),
        (&[0.1, 0.2], &[false, false], |e| matches!(e, Error::NoPositives(_))),
        (&[0.1, 0.2], &[true, true], |e| matches!(e, Error::NoNegatives(_))),
        (&[0.1, f32::NAN], &[true, false], |e| matches!(e, Error::NonFinite { index: 1, .. })),
    ];
    for (distances, labels, expected) in cases {
        let err = fpr95(distances, labels).unwrap_err();
        assert!(expected(&err), "{distances:?} {labels:?}: got {err:?}");
        assert!(!err.to_string().is_empty());
        let roc_err = RocCurve::new(distances, labels).unwrap_err();
        assert!(expected(&roc_err), "ROC {distances:?} {labels:?}: got {roc_err:?}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let err = fpr95(&[0.1, 0.2], &[false, false]).unwrap_err();
    assert!(err.to_string().contains("no positive"), "{err}");
    let err = fpr95(&[0.1, 0.2], &[true, true]).unwrap_err();
    assert!(err.to_string().contains("no negative"), "{err}");
    let err = operating_point_at_recall(&[0.1, 0.2], &[true, false], 1.2).unwrap_err();
    assert!(err.to_string().contains("recall 1.2"), "{err}");
}

#[test]
fn average_precision_needs_a_positive_but_not_a_negative() {
    let rule = PrIntegration::HPatchesTrapezoid;
    assert!(matches!(average_precision(&[0.1, 0.2], &[false, false], rule), Err(Error::NoPositives(_))));
    assert!(matches!(average_precision(&[], &[], rule), Err(Error::Empty(_))));
    assert!(matches!(average_precision(&[0.1], &[true, false], rule), Err(Error::LengthMismatch { .. })));
    assert_eq!(average_precision(&[0.3, 0.1], &[true, true], rule).unwrap(), 1.0);
}

#[test]
fn image_descriptors_need_one_unique_id_per_row() {
    let values = [0.0f32; 6];
    let m = DescriptorMatrix::new(&values, 2).unwrap();
    assert!(matches!(
        ImageDescriptors::new(m, &[1, 2]),
        Err(Error::LengthMismatch { left: 3, right: 2, .. })
    ));
    let err = ImageDescriptors::new(m, &[1, 2, 1]).unwrap_err();
    assert!(err.to_string().contains("point id 1 appears twice"), "{err}");
}

#[test]
fn tasks_reject_disjoint_images_and_mismatched_dimensions() {
    let (a, b) = ([0.0f32, 1.0, 2.0, 3.0], [0.0f32, 1.0, 2.0, 3.0]);
    let reference = ImageDescriptors::new(DescriptorMatrix::new(&a, 2).unwrap(), &[1, 2]).unwrap();
    let disjoint = ImageDescriptors::new(DescriptorMatrix::new(&b, 2).unwrap(), &[3, 4]).unwrap();
    assert!(matches!(matching_ap(&reference, &disjoint), Err(Error::NoPositives(_))));
    assert!(matches!(verification_pairs(&reference, &[disjoint]), Err(Error::NoPositives(_))));
    assert!(matches!(SequenceScores::compute(&reference, &[]), Err(Error::Empty(_))));

    let wide = ImageDescriptors::new(DescriptorMatrix::new(&b, 4).unwrap(), &[1]).unwrap();
    assert!(matches!(
        matching_ap(&reference, &wide),
        Err(Error::DimensionMismatch { left: 2, right: 4, .. })
    ));
    assert!(matches!(SequenceScores::compute(&reference, &[wide]), Err(Error::DimensionMismatch { .. })));
}

#[test]
fn retrieval_without_any_positive_is_an_error() {
    let values = [0.0f32, 1.0];
    let m = DescriptorMatrix::new(&values, 1).unwrap();
    assert!(matches!(retrieval_map(&m, &[1, 2], &m, &[3, 4]), Err(Error::NoPositives(_))));
    assert!(matches!(retrieval_map(&m, &[1], &m, &[3, 4]), Err(Error::LengthMismatch { .. })));
    let empty = DescriptorMatrix::new(&[], 1).unwrap();
    assert!(matches!(retrieval_map(&empty, &[], &m, &[3, 4]), Err(Error::Empty(_))));
}

#[test]
fn mean_of_no_sequences_is_an_error() {
    assert!(matches!(SequenceScores::mean(&[]), Err(Error::Empty(_))));
}
