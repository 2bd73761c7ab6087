//! Average precision against the numpy re-implementation of the HPatches benchmark's `pr`.

mod common;

use common::{assert_close, load, to_f32};
use desdis_eval::{average_precision, average_precision_of_retrieved, PrIntegration};

// HPatches clamps precision with 1e-10 before the first hit; we use 0 there.
const TOL: f64 = 1e-9;

#[test]
fn both_integrations_match_the_reference() {
    for case in load().average_precision {
        let distances = to_f32(&case.distances);
        for (rule, expected) in
            [(PrIntegration::HPatchesTrapezoid, case.hpatches_trapezoid), (PrIntegration::Step, case.step)]
        {
            let got =
                average_precision_of_retrieved(&distances, &case.labels, case.total_positives, rule).unwrap();
            assert_close(got, expected, TOL, &format!("{} {rule:?}", case.name));
        }
    }
}

#[test]
fn the_plain_form_counts_the_positives_in_the_list() {
    for case in load().average_precision.iter().filter(|c| c.name != "unretrieved_positives") {
        let got = average_precision(&to_f32(&case.distances), &case.labels, PrIntegration::HPatchesTrapezoid)
            .unwrap();
        assert_close(got, case.hpatches_trapezoid, TOL, &case.name);
    }
}

#[test]
fn perfect_ranking_scores_one_and_reversed_scores_low() {
    let fixture = load();
    let by_name = |name: &str| fixture.average_precision.iter().find(|c| c.name == name).unwrap();
    for rule in [PrIntegration::HPatchesTrapezoid, PrIntegration::Step] {
        let perfect = by_name("perfect");
        assert_eq!(average_precision(&to_f32(&perfect.distances), &perfect.labels, rule).unwrap(), 1.0);
        let reversed = by_name("reversed");
        let low = average_precision(&to_f32(&reversed.distances), &reversed.labels, rule).unwrap();
        assert!(low < 0.2, "{rule:?}: reversed ranking scored {low}");
    }
}

#[test]
fn ties_are_ranked_in_input_order() {
    // Same distances; the positive first or last in the input decides the result.
    let d = [0.5, 0.5];
    let first = average_precision(&d, &[true, false], PrIntegration::Step).unwrap();
    let last = average_precision(&d, &[false, true], PrIntegration::Step).unwrap();
    assert_eq!((first, last), (1.0, 0.5));
}
