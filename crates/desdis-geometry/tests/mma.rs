//! The HPatches matching-accuracy protocol on a hand-computed case, and the `H_1_k` loader.

use desdis_geometry::{load_homography, mma, parse_homography, projection_errors, Error, DEFAULT_THRESHOLDS};

#[test]
fn hand_computed_mma() {
    // H doubles coordinates and shifts by (1, -1).
    let h = [[2.0, 0.0, 1.0], [0.0, 2.0, -1.0], [0.0, 0.0, 1.0]];
    let kpts1 = [[0.0f32, 0.0], [1.0, 1.0], [3.0, 2.0]];
    // Projections: (1, -1), (3, 1), (7, 3).
    let kptsk = [[1.0f32, -1.0], [3.5, 1.0], [10.0, 3.0]];
    let matches = [(0, 0), (1, 1), (2, 2), (0, 2)];
    let errors = projection_errors(&kpts1, &kptsk, &matches, &h).unwrap();
    let expected = [0.0, 0.5, 3.0, (81.0f64 + 16.0).sqrt()];
    for (e, x) in errors.iter().zip(expected) {
        assert!((e - x).abs() < 1e-9, "{errors:?}");
    }
    let curve = mma(&errors, &DEFAULT_THRESHOLDS);
    let correct: Vec<usize> = curve.iter().map(|c| c.correct).collect();
    assert_eq!(correct, vec![2, 2, 3, 3, 3, 3, 3, 3, 3, 4]);
    assert_eq!(curve[0].fraction, 0.5);
    assert_eq!(curve[2].fraction, 0.75);
    assert_eq!(curve[9].fraction, 1.0);
    assert_eq!(curve[4].threshold, 5.0);
}

#[test]
fn no_matches_and_points_at_infinity_count_as_wrong() {
    let curve = mma(&[], &[1.0, 3.0]);
    assert!(curve.iter().all(|c| c.correct == 0 && c.fraction == 0.0));
    // This H sends the line x = 1 to infinity.
    let h = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, -1.0]];
    let errors = projection_errors(&[[1.0, 5.0]], &[[0.0, 0.0]], &[(0, 0)], &h).unwrap();
    assert!(errors[0].is_infinite());
    assert_eq!(mma(&[f64::NAN, 0.0], &[1.0])[0].correct, 1);
}

#[test]
fn bad_match_indices_are_errors() {
    let h = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let k = [[0.0f32, 0.0]];
    assert!(matches!(projection_errors(&k, &k, &[(0, 1)], &h), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(projection_errors(&[[f32::NAN, 0.0]], &k, &[], &h), Err(Error::NonFinite { .. })));
}

#[test]
fn parses_hpatches_files() {
    let text = "0.79208  0.010314  27.69\n-0.023778 0.92862 -0.87192\n\t-5.7865e-05 -3.2201e-05 1  \n\n";
    let h = parse_homography(text, "H_1_2").unwrap();
    assert_eq!(h[0], [0.79208, 0.010314, 27.69]);
    assert_eq!(h[2], [-5.7865e-05, -3.2201e-05, 1.0]);

    let dir = std::env::temp_dir().join(format!("desdis-geometry-mma-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("H_1_3");
    std::fs::write(&path, text).unwrap();
    assert_eq!(load_homography(&path).unwrap(), h);
    let missing = load_homography(dir.join("H_1_9")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }) && missing.to_string().contains("H_1_9"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_hpatches_files_name_the_file() {
    for (text, needle) in [
        ("1 0 0\n0 1 0\n", "3 rows"),
        ("1 0 0\n0 1\n0 0 1\n", "row 2"),
        ("1 0 0\n0 1 0\n0 0 x\n", "`x`"),
        ("1 0 0\n0 1 0\n0 0 inf\n", "not finite"),
    ] {
        let err = parse_homography(text, "v_graffiti/H_1_4").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("v_graffiti/H_1_4") && msg.contains(needle), "{msg}");
    }
}
