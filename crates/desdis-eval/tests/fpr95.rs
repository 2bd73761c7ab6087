//! FPR95 against the numpy reference, and how it relates to HardNet's `ErrorRateAt95Recall` and
//! HyNet's `cal_fpr95` (both re-implemented in `tests/fixtures/eval/make_fixtures.py`).

mod common;

use common::{assert_close, load, to_f32};
use desdis_eval::{fpr95, operating_point_at_recall, RocCurve, RECALL_95};

const TOL: f64 = 1e-12;

#[test]
fn matches_the_reference_definition_on_every_case() {
    for case in load().fpr95 {
        let got = fpr95(&to_f32(&case.distances), &case.labels).unwrap();
        assert_close(got, case.ours, TOL, &case.name);
    }
}

#[test]
fn equals_hardnet_whenever_no_negative_ties_the_threshold() {
    let cases = load().fpr95;
    assert!(cases.len() > 10, "the fixture covers many counts of positives");
    for case in cases.iter().filter(|c| c.name != "tie_at_threshold") {
        let got = fpr95(&to_f32(&case.distances), &case.labels).unwrap();
        assert_close(got, case.hardnet, TOL, &case.name);
    }
}

#[test]
fn counts_a_tied_negative_where_hardnet_depends_on_the_sort_order() {
    let fixture = load();
    let case = fixture.fpr95.iter().find(|c| c.name == "tie_at_threshold").unwrap();
    let got = fpr95(&to_f32(&case.distances), &case.labels).unwrap();
    let [positives_first, negatives_first] = case.hardnet_tie_bounds;
    // HardNet counts the tied negative only if its argsort ranks it before the 19th positive.
    assert_close(positives_first, 0.0, TOL, "HardNet, tie ranked positive first");
    assert_close(negatives_first, 0.2, TOL, "HardNet, tie ranked negative first");
    assert!(case.hardnet == positives_first || case.hardnet == negatives_first);
    // Ours takes the pessimistic end: no threshold accepts the positive but not the tied negative.
    assert_close(got, negatives_first, TOL, "ours");
    assert_close(case.hynet.unwrap(), 0.6, TOL, "HyNet reads the threshold at the 20th positive");
}

#[test]
fn hynet_reads_the_threshold_one_positive_later() {
    for case in load().fpr95 {
        let distances = to_f32(&case.distances);
        let positives = case.labels.iter().filter(|&&l| l).count();
        let k = (RECALL_95 * positives as f64).ceil() as usize;
        match case.hynet {
            // HyNet's threshold is the (k+1)-th smallest positive distance; half a positive
            // above k/P makes our rule pick exactly that one.
            Some(hynet) => {
                let one_later = (k as f64 + 0.5) / positives as f64;
                let point = operating_point_at_recall(&distances, &case.labels, one_later).unwrap();
                assert_close(point.false_positive_rate, hynet, TOL, &case.name);
                assert!(hynet >= case.ours, "{}: HyNet is never below ours", case.name);
            }
            None => assert!(k >= positives, "{}: HyNet only fails with fewer than 20 positives", case.name),
        }
    }
}

#[test]
fn roc_curve_reads_the_same_operating_point() {
    for case in load().fpr95 {
        let distances = to_f32(&case.distances);
        let roc = RocCurve::new(&distances, &case.labels).unwrap();
        let point = roc.at_recall(RECALL_95).unwrap();
        assert_eq!(point, operating_point_at_recall(&distances, &case.labels, RECALL_95).unwrap());
        assert_close(point.false_positive_rate, case.ours, TOL, &case.name);
        let last = roc.points.last().unwrap();
        assert_eq!((last.recall, last.false_positive_rate), (1.0, 1.0), "{}", case.name);
        let monotone = roc.points.windows(2).all(|w| {
            w[0].threshold < w[1].threshold
                && w[0].recall <= w[1].recall
                && w[0].false_positive_rate <= w[1].false_positive_rate
        });
        assert!(monotone, "{}", case.name);
    }
}

#[test]
fn separable_pairs_give_zero_and_reversed_pairs_give_one() {
    let fixture = load();
    let by_name = |name: &str| fixture.fpr95.iter().find(|c| c.name == name).unwrap();
    let perfect = by_name("perfect");
    assert_eq!(fpr95(&to_f32(&perfect.distances), &perfect.labels).unwrap(), 0.0);
    let reversed = by_name("reversed");
    assert_eq!(fpr95(&to_f32(&reversed.distances), &reversed.labels).unwrap(), 1.0);
}

#[test]
fn reported_threshold_and_recall_are_those_used() {
    let distances = [0.1, 0.2, 0.3, 0.4, 0.5];
    let labels = [true, false, true, true, false];
    let point = operating_point_at_recall(&distances, &labels, 0.6).unwrap();
    // 0.6 * 3 positives = 1.8, so two positives are needed: the threshold is 0.3.
    assert_eq!((point.threshold, point.true_positives, point.false_positives), (0.3, 2, 1));
    assert_close(point.recall, 2.0 / 3.0, TOL, "recall");
    assert_close(point.false_positive_rate, 0.5, TOL, "fpr");
}
