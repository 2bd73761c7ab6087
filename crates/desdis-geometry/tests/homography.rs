//! Homography fitting and RANSAC verification, including parity with OpenCV.

mod common;

use common::*;
use desdis_geometry::homography::{fit_homography, project, transfer_error};
use desdis_geometry::ransac::required_iterations;
use desdis_geometry::{verify, Error, Model, ModelKind, RansacConfig};

const H_TRUE: Mat3 = [[0.9, 0.08, 30.0], [-0.06, 1.05, -12.0], [2e-4, -1e-4, 1.0]];

fn apply(h: &Mat3, p: [f64; 2]) -> [f64; 2] {
    project(h, p[0], p[1]).expect("finite projection")
}

#[test]
fn recovers_known_homography_from_exact_points() {
    let mut rng = rng(1);
    for n in [4, 5, 30] {
        let pts0: Vec<[f64; 2]> = (0..n).map(|_| uniform_point(&mut rng, 640.0, 480.0)).collect();
        let pts1: Vec<[f64; 2]> = pts0.iter().map(|&p| apply(&H_TRUE, p)).collect();
        let h = fit_homography(&pts0, &pts1).unwrap().expect("non-degenerate");
        for r in 0..3 {
            for c in 0..3 {
                assert!((h[r][c] - H_TRUE[r][c]).abs() < 1e-6 * (1.0 + H_TRUE[r][c].abs()), "{h:?}");
            }
        }
        for (p, q) in pts0.iter().zip(&pts1) {
            assert!(transfer_error(&h, *p, *q) < 1e-6);
        }
    }
}

/// 60% inliers with 0.5 px noise; outliers at least 10 px from where `H_TRUE` sends them.
fn noisy_scene(seed: u64, n: usize) -> (Vec<[f32; 2]>, Vec<[f32; 2]>, Vec<bool>) {
    let mut rng = rng(seed);
    let (mut pts0, mut pts1, mut truth) = (vec![], vec![], vec![]);
    for i in 0..n {
        let p = uniform_point(&mut rng, 640.0, 480.0);
        let q = apply(&H_TRUE, p);
        let inlier = i % 5 < 3;
        let q = if inlier {
            [q[0] + 0.5 * gaussian(&mut rng), q[1] + 0.5 * gaussian(&mut rng)]
        } else {
            loop {
                let o = uniform_point(&mut rng, 640.0, 480.0);
                if transfer_error(&H_TRUE, p, o) > 10.0 {
                    break o;
                }
            }
        };
        pts0.push(to_f32(p));
        pts1.push(to_f32(q));
        truth.push(inlier);
    }
    (pts0, pts1, truth)
}

#[test]
fn ransac_separates_inliers_from_outliers() {
    let (pts0, pts1, truth) = noisy_scene(2, 300);
    let cfg = RansacConfig { seed: 11, ..Default::default() };
    let v = verify(&pts0, &pts1, ModelKind::Homography, 3.0, &cfg).unwrap().expect("a model");
    let Model::Homography(h) = v.model else { panic!("wrong model kind") };
    // 0.5 px noise on inliers: about 1 in 8000 lies beyond 3 px, so "a few" is generous.
    assert!(mismatches(&v.inliers, &truth) <= 3, "{} mismatches", mismatches(&v.inliers, &truth));
    for p in [[0.0, 0.0], [640.0, 0.0], [0.0, 480.0], [640.0, 480.0], [320.0, 240.0]] {
        let (a, b) = (apply(&h, p), apply(&H_TRUE, p));
        assert!((a[0] - b[0]).hypot(a[1] - b[1]) < 1.0, "corner {p:?}: {a:?} vs {b:?}");
    }
    assert!(v.iterations < 10_000, "adaptive stopping should cut the iterations");
    assert!(v.iterations >= required_iterations(1.0, 4, 0.999));
}

#[test]
fn ransac_is_reproducible_for_a_seed() {
    let (pts0, pts1, _) = noisy_scene(3, 120);
    let cfg = RansacConfig { seed: 5, ..Default::default() };
    let a = verify(&pts0, &pts1, ModelKind::Homography, 2.0, &cfg).unwrap();
    let b = verify(&pts0, &pts1, ModelKind::Homography, 2.0, &cfg).unwrap();
    assert_eq!(a, b);
}

#[test]
fn collinear_points_give_no_model() {
    let pts0: Vec<[f64; 2]> = (0..20).map(|i| [10.0 * f64::from(i), 3.0 * f64::from(i) + 7.0]).collect();
    let pts1: Vec<[f64; 2]> = pts0.iter().map(|&p| apply(&H_TRUE, p)).collect();
    assert_eq!(fit_homography(&pts0, &pts1).unwrap(), None);
    let (p0, p1): (Vec<_>, Vec<_>) = pts0.iter().zip(&pts1).map(|(a, b)| (to_f32(*a), to_f32(*b))).unzip();
    assert_eq!(verify(&p0, &p1, ModelKind::Homography, 3.0, &RansacConfig::default()).unwrap(), None);
    // All points identical.
    let same = vec![[5.0f32, 5.0]; 10];
    assert_eq!(verify(&same, &same, ModelKind::Homography, 3.0, &RansacConfig::default()).unwrap(), None);
}

#[test]
fn too_few_or_invalid_inputs() {
    let p = vec![[0.0f32, 0.0], [1.0, 0.0], [0.0, 1.0]];
    let cfg = RansacConfig::default();
    assert_eq!(verify(&p, &p, ModelKind::Homography, 3.0, &cfg).unwrap(), None);
    assert_eq!(verify(&[], &[], ModelKind::Homography, 3.0, &cfg).unwrap(), None);
    assert!(matches!(
        verify(&p, &p[..2], ModelKind::Homography, 3.0, &cfg),
        Err(Error::LengthMismatch { .. })
    ));
    let mut bad = p.clone();
    bad[1][1] = f32::INFINITY;
    assert!(matches!(
        verify(&p, &bad, ModelKind::Homography, 3.0, &cfg),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(verify(&p, &p, ModelKind::Homography, 0.0, &cfg), Err(Error::InvalidParameter(_))));
    let conf = RansacConfig { confidence: 1.0, ..cfg };
    assert!(matches!(verify(&p, &p, ModelKind::Homography, 1.0, &conf), Err(Error::InvalidParameter(_))));
}

#[test]
fn extreme_but_finite_inputs_do_not_panic() {
    let mut rng = rng(9);
    let mut pts: Vec<[f32; 2]> = (0..50).map(|_| to_f32(uniform_point(&mut rng, 1.0, 1.0))).collect();
    pts[0] = [f32::MAX, -f32::MAX];
    pts[1] = [1e-30, 1e-30];
    let other: Vec<[f32; 2]> = pts.iter().rev().copied().collect();
    for kind in [ModelKind::Homography, ModelKind::Fundamental] {
        let cfg = RansacConfig { max_iterations: 200, ..Default::default() };
        let _ = verify(&pts, &other, kind, 1.0, &cfg).unwrap();
    }
}

#[test]
fn agrees_with_opencv_find_homography() {
    let fx = fixture();
    let case = &fx.homography;
    let cfg = RansacConfig { seed: 0, ..Default::default() };
    let v = verify(&case.pts0, &case.pts1, ModelKind::Homography, case.threshold, &cfg)
        .unwrap()
        .expect("a model");
    let overlap = jaccard(&v.inliers, &case.opencv_inliers);
    assert!(overlap >= 0.95, "inlier overlap with OpenCV {}: {overlap}", fx.opencv_version);
    // Both models send OpenCV's inliers to (nearly) the same place.
    let h = *v.model.matrix();
    let mut worst = 0.0f64;
    for (p, _) in case.pts0.iter().zip(&case.opencv_inliers).filter(|(_, &m)| m) {
        let (a, b) = (apply(&h, to_f64(*p)), apply(&case.opencv_model, to_f64(*p)));
        let d = (a[0] - b[0]).hypot(a[1] - b[1]);
        assert!(d < 0.5, "point {p:?}: ours {a:?}, OpenCV {b:?}");
        worst = worst.max(d);
    }
    println!(
        "H vs OpenCV {}: inlier Jaccard {overlap:.3}, largest projection difference {worst:.3} px",
        fx.opencv_version
    );
}

#[test]
fn transfer_error_is_one_way_in_image_1() {
    let h = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]];
    // Forward: H (1, 1) = (2, 2), 1 px from (3, 2); the backward error would be 0.5 px.
    assert!((transfer_error(&h, [1.0, 1.0], [3.0, 2.0]) - 1.0).abs() < 1e-12);
    assert_eq!(project(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, -1.0]], 1.0, 0.0), None);
    assert!(transfer_error(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, -1.0]], [1.0, 0.0], [0.0, 0.0])
        .is_infinite());
}
