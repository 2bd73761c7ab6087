//! Fundamental-matrix fitting on a synthetic two-view scene, and parity with OpenCV.

mod common;

use common::*;
use desdis_geometry::fundamental::{fit_fundamental, max_epipolar_distance, sampson_distance};
use desdis_geometry::{verify, Model, ModelKind, RansacConfig};
use rand::Rng;

/// Camera 0 at the origin, camera 1 rotated and translated; `n` points 4 to 9 units deep.
fn scene(seed: u64, n: usize) -> (Vec<[f64; 2]>, Vec<[f64; 2]>, Mat3) {
    let mut rng = rng(seed);
    let k = intrinsics();
    let cam0 = Camera { k, r: rotation([0.0, 0.0, 1.0], 0.0), t: [0.0; 3] };
    let cam1 = Camera { k, r: rotation([0.1, 1.0, 0.05], 0.15), t: [-0.8, 0.05, 0.1] };
    let (mut p0, mut p1) = (vec![], vec![]);
    for _ in 0..n {
        let x = [rng.random_range(-2.0..2.0), rng.random_range(-1.5..1.5), rng.random_range(4.0..9.0)];
        p0.push(cam0.project(x));
        p1.push(cam1.project(x));
    }
    (p0, p1, true_fundamental(&k, &cam1.r, cam1.t))
}

#[test]
fn exact_correspondences_give_zero_sampson_error() {
    for n in [8, 9, 50] {
        let (p0, p1, f_true) = scene(1, n);
        let f = fit_fundamental(&p0, &p1).unwrap().expect("non-degenerate");
        for (a, b) in p0.iter().zip(&p1) {
            assert!(sampson_distance(&f, *a, *b) < 1e-6);
            assert!(sampson_distance(&f_true, *a, *b) < 1e-6, "the reference F is wrong");
        }
        let norm: f64 = f.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        assert!(det(&f).abs() < 1e-9 * norm.powi(3), "rank 2");
        // Same matrix up to scale as the true one.
        let scale = f_true[2][2] / f[2][2];
        for r in 0..3 {
            for c in 0..3 {
                let tol = 1e-5 * f_true.iter().flatten().map(|v| v.abs()).fold(0.0, f64::max);
                assert!((f[r][c] * scale - f_true[r][c]).abs() < tol, "{f:?} vs {f_true:?}");
            }
        }
    }
}

#[test]
fn too_few_points_give_none() {
    let (p0, p1, _) = scene(2, 7);
    assert_eq!(fit_fundamental(&p0, &p1).unwrap(), None);
    let (a, b): (Vec<_>, Vec<_>) = p0.iter().zip(&p1).map(|(x, y)| (to_f32(*x), to_f32(*y))).unzip();
    assert_eq!(verify(&a, &b, ModelKind::Fundamental, 1.0, &RansacConfig::default()).unwrap(), None);
}

#[test]
fn ransac_rejects_outliers() {
    let (p0, mut p1, f_true) = scene(3, 250);
    let mut rng = rng(4);
    let mut truth = vec![true; p0.len()];
    for i in 0..p0.len() {
        if i % 10 < 3 {
            // Outliers well away from their epipolar line.
            p1[i] = loop {
                let o = uniform_point(&mut rng, 640.0, 480.0);
                if sampson_distance(&f_true, p0[i], o) > 5.0 {
                    break o;
                }
            };
            truth[i] = false;
        } else {
            p1[i] = [p1[i][0] + 0.2 * gaussian(&mut rng), p1[i][1] + 0.2 * gaussian(&mut rng)];
        }
    }
    let (a, b): (Vec<_>, Vec<_>) = p0.iter().zip(&p1).map(|(x, y)| (to_f32(*x), to_f32(*y))).unzip();
    let cfg = RansacConfig { seed: 3, ..Default::default() };
    let v = verify(&a, &b, ModelKind::Fundamental, 1.0, &cfg).unwrap().expect("a model");
    assert!(matches!(v.model, Model::Fundamental(_)));
    assert!(mismatches(&v.inliers, &truth) <= 4, "{} mismatches", mismatches(&v.inliers, &truth));
}

#[test]
fn agrees_with_opencv_find_fundamental_mat() {
    let fx = fixture();
    let case = &fx.fundamental;
    let cfg = RansacConfig { seed: 0, ..Default::default() };
    let v = verify(&case.pts0, &case.pts1, ModelKind::Fundamental, case.threshold, &cfg)
        .unwrap()
        .expect("a model");
    let overlap = jaccard(&v.inliers, &case.opencv_inliers);
    assert!(overlap >= 0.95, "inlier overlap with OpenCV {}: {overlap}", fx.opencv_version);
    // OpenCV's FM_RANSAC thresholds the larger point-to-line distance, not Sampson's: with
    // that measure our model reproduces OpenCV's mask almost exactly.
    let f = v.model.matrix();
    let theirs_measure: Vec<bool> = case
        .pts0
        .iter()
        .zip(&case.pts1)
        .map(|(a, b)| max_epipolar_distance(f, to_f64(*a), to_f64(*b)) <= case.threshold)
        .collect();
    let same_measure = jaccard(&theirs_measure, &case.opencv_inliers);
    assert!(same_measure >= 0.95, "{same_measure}");
    println!(
        "F vs OpenCV {}: Jaccard {overlap:.3} (Sampson), {same_measure:.3} (OpenCV's measure); inliers ours {}, OpenCV {}",
        fx.opencv_version,
        v.num_inliers(),
        case.opencv_inliers.iter().filter(|&&m| m).count()
    );
    // Both models explain the true inliers to well within the threshold.
    for (i, _) in case.true_inliers.iter().enumerate().filter(|(_, &t)| t) {
        let (a, b) = (to_f64(case.pts0[i]), to_f64(case.pts1[i]));
        assert!(sampson_distance(&case.opencv_model, a, b) < 1.5);
        assert!(sampson_distance(f, a, b) < 1.5);
    }
}

#[test]
fn sampson_and_epipolar_distances_by_hand() {
    // Rectified stereo: epipolar lines are rows, the constraint is y1 = y0.
    let f = [[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]];
    // Residual -2, both line normals of length 1: Sampson sqrt(4 / 2), line distances 2.
    assert!((sampson_distance(&f, [0.0, 0.0], [5.0, 2.0]) - 2f64.sqrt()).abs() < 1e-12);
    assert!((max_epipolar_distance(&f, [0.0, 0.0], [5.0, 2.0]) - 2.0).abs() < 1e-12);
    assert_eq!(sampson_distance(&f, [3.0, 7.0], [-4.0, 7.0]), 0.0);
}
