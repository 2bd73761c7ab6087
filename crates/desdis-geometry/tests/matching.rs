//! Descriptor matching against a plain-loop reference, and the filters' semantics.

use desdis_geometry::matching::{distance_from_similarity, similarity_from_distance};
use desdis_geometry::{from_matches0, match_descriptors, to_matches0, Error, Match, MatchConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_descriptors(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Squared distance in f64, the reference's precision.
fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
}

/// Straightforward nearest-neighbour matching: all distances by loops.
fn reference(desc0: &[f32], desc1: &[f32], dim: usize, cfg: &MatchConfig) -> Vec<(u32, u32, f64)> {
    let (n0, n1) = (desc0.len() / dim, desc1.len() / dim);
    let d = |i: usize, j: usize| sq_dist(&desc0[i * dim..(i + 1) * dim], &desc1[j * dim..(j + 1) * dim]);
    let nearest1 = |i: usize| (0..n1).min_by(|&a, &b| d(i, a).total_cmp(&d(i, b)).then(a.cmp(&b)));
    let nearest0 = |j: usize| (0..n0).min_by(|&a, &b| d(a, j).total_cmp(&d(b, j)).then(a.cmp(&b)));
    let mut out = Vec::new();
    for i in 0..n0 {
        let Some(j) = nearest1(i) else { continue };
        let best = d(i, j).sqrt();
        let second = (0..n1).filter(|&k| k != j).map(|k| d(i, k).sqrt()).fold(f64::INFINITY, f64::min);
        if let Some(r) = cfg.ratio {
            if second.is_finite() && best >= f64::from(r) * second {
                continue;
            }
        }
        if cfg.mutual && nearest0(j) != Some(i) {
            continue;
        }
        if cfg.max_distance.is_some_and(|m| best > f64::from(m)) {
            continue;
        }
        out.push((i as u32, j as u32, best));
    }
    out
}

fn assert_matches_reference(desc0: &[f32], desc1: &[f32], dim: usize, cfg: &MatchConfig) {
    let got = match_descriptors(desc0, desc1, dim, cfg).unwrap();
    let want = reference(desc0, desc1, dim, cfg);
    let got: Vec<(u32, u32, f64)> = got.iter().map(|m| (m.i0, m.i1, f64::from(m.distance))).collect();
    assert_eq!(got.len(), want.len(), "match count for dim {dim}, cfg {cfg:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "dim {dim}, cfg {cfg:?}");
        assert!((g.2 - w.2).abs() < 1e-4 * (1.0 + w.2), "distance {} vs {}", g.2, w.2);
    }
}

#[test]
fn gemm_path_agrees_with_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for dim in [8, 32, 128] {
        // Several hundred rows: more than one block of query rows.
        let desc0 = random_descriptors(&mut rng, 300, dim);
        let desc1 = random_descriptors(&mut rng, 257, dim);
        for cfg in [
            MatchConfig::default(),
            MatchConfig { mutual: false, ratio: None, max_distance: None },
            MatchConfig { mutual: false, ratio: Some(0.9), max_distance: None },
            MatchConfig { mutual: true, ratio: Some(0.95), max_distance: Some(0.5 * (dim as f32).sqrt()) },
        ] {
            assert_matches_reference(&desc0, &desc1, dim, &cfg);
        }
    }
}

#[test]
fn many_query_rows_against_few() {
    // More query rows than any block and a tiny image 1: the column minima must be reduced
    // across blocks.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let desc0 = random_descriptors(&mut rng, 1500, 16);
    let desc1 = random_descriptors(&mut rng, 3, 16);
    assert_matches_reference(&desc0, &desc1, 16, &MatchConfig::default());
    let all =
        match_descriptors(&desc0, &desc1, 16, &MatchConfig { mutual: false, ..Default::default() }).unwrap();
    assert_eq!(all.len(), 1500);
}

#[test]
fn mutual_check_drops_one_sided_matches() {
    // 1-D descriptors: 0 -> 0.4 and 1 -> 0.4, but 0.4's nearest is 0; 10 <-> 9 mutually.
    let desc0 = [0.0, 1.0, 10.0];
    let desc1 = [0.4, 9.0];
    let pairs = |cfg: MatchConfig| -> Vec<(u32, u32)> {
        match_descriptors(&desc0, &desc1, 1, &cfg).unwrap().iter().map(Match::pair).collect()
    };
    assert_eq!(pairs(MatchConfig::default()), vec![(0, 0), (2, 1)]);
    assert_eq!(pairs(MatchConfig { mutual: false, ..Default::default() }), vec![(0, 0), (1, 0), (2, 1)]);
}

#[test]
fn ratio_test_is_on_distances() {
    // best 1.0, second 1.1: ratio 0.909 on distances, 0.826 on squared distances.
    let desc0 = [0.0];
    let desc1 = [1.0, 1.1, 5.0];
    let run = |ratio: f32| {
        let cfg = MatchConfig { mutual: false, ratio: Some(ratio), max_distance: None };
        match_descriptors(&desc0, &desc1, 1, &cfg).unwrap().len()
    };
    assert_eq!(run(0.95), 1);
    assert_eq!(run(0.85), 0, "0.85 must reject a 0.909 distance ratio");
    assert_eq!(run(0.9), 0);
}

#[test]
fn ratio_test_with_single_candidate_and_equal_candidates() {
    let cfg = MatchConfig { mutual: false, ratio: Some(0.8), max_distance: None };
    assert_eq!(match_descriptors(&[0.0], &[3.0], 1, &cfg).unwrap().len(), 1);
    // Two identical candidates are ambiguous even at distance 0.
    assert_eq!(match_descriptors(&[0.0], &[0.0, 0.0], 1, &cfg).unwrap().len(), 0);
}

#[test]
fn ties_go_to_the_lower_index_and_distance_cap_applies() {
    let m = match_descriptors(&[0.0, 0.0], &[2.0, -2.0, 2.0], 1, &MatchConfig::default()).unwrap();
    assert_eq!(m, vec![Match { i0: 0, i1: 0, distance: 2.0 }]);
    let capped = MatchConfig { max_distance: Some(1.5), ..Default::default() };
    assert!(match_descriptors(&[0.0], &[2.0], 1, &capped).unwrap().is_empty());
    let loose = MatchConfig { max_distance: Some(2.0), ..Default::default() };
    assert_eq!(match_descriptors(&[0.0], &[2.0], 1, &loose).unwrap().len(), 1);
}

#[test]
fn empty_inputs_give_no_matches() {
    let d = [1.0f32, 2.0, 3.0, 4.0];
    for cfg in
        [MatchConfig::default(), MatchConfig { mutual: false, ratio: Some(0.8), max_distance: Some(1.0) }]
    {
        assert!(match_descriptors(&[], &d, 2, &cfg).unwrap().is_empty());
        assert!(match_descriptors(&d, &[], 2, &cfg).unwrap().is_empty());
        assert!(match_descriptors(&[], &[], 2, &cfg).unwrap().is_empty());
    }
}

#[test]
fn malformed_inputs_are_errors() {
    let cfg = MatchConfig::default();
    let d = [0.0f32; 6];
    assert!(matches!(
        match_descriptors(&d[..5], &d, 2, &cfg),
        Err(Error::DescriptorLength { what: "desc0", len: 5, dim: 2 })
    ));
    assert!(matches!(
        match_descriptors(&d, &d[..5], 3, &cfg),
        Err(Error::DescriptorLength { what: "desc1", .. })
    ));
    assert!(matches!(match_descriptors(&d, &d, 0, &cfg), Err(Error::ZeroDimension)));
    let mut nan = d;
    nan[4] = f32::NAN;
    assert!(matches!(
        match_descriptors(&d, &nan, 2, &cfg),
        Err(Error::NonFinite { what: "desc1", index: 4 })
    ));
    assert!(matches!(
        match_descriptors(&nan, &d, 2, &cfg),
        Err(Error::NonFinite { what: "desc0", index: 4 })
    ));
    let bad_ratio = MatchConfig { ratio: Some(f32::NAN), ..Default::default() };
    assert!(matches!(match_descriptors(&d, &d, 2, &bad_ratio), Err(Error::InvalidParameter(_))));
}

#[test]
fn matches0_round_trip() {
    let matches = vec![Match { i0: 1, i1: 4, distance: 0.5 }, Match { i0: 3, i1: 0, distance: 0.0 }];
    let (m0, s0) = to_matches0(&matches, 5).unwrap();
    assert_eq!(m0, vec![-1, 4, -1, 0, -1]);
    assert_eq!(s0, vec![0.0, 1.0 - 0.125, 0.0, 1.0, 0.0]);
    let back = from_matches0(&m0, &s0).unwrap();
    assert_eq!(back.len(), 2);
    for (b, m) in back.iter().zip(&matches) {
        assert_eq!((b.i0, b.i1), (m.i0, m.i1));
        assert!((b.distance - m.distance).abs() < 1e-6);
    }
    assert_eq!(similarity_from_distance(3.0), 0.0);
    assert!((distance_from_similarity(0.0) - 2f32.sqrt()).abs() < 1e-6);
}

#[test]
fn matches0_rejects_what_it_cannot_express() {
    let m = Match { i0: 2, i1: 1, distance: 0.1 };
    assert!(matches!(to_matches0(&[m], 2), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(to_matches0(&[m, m], 3), Err(Error::DuplicateMatch { i0: 2 })));
    assert!(matches!(from_matches0(&[0, -2], &[1.0, 0.0]), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(from_matches0(&[0], &[1.0, 0.0]), Err(Error::LengthMismatch { .. })));
}

/// Timing of the 2000 x 2000 case; run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_match_2000x2000() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for dim in [8, 32, 64, 128] {
        let desc0 = random_descriptors(&mut rng, 2000, dim);
        let desc1 = random_descriptors(&mut rng, 2000, dim);
        let cfg = MatchConfig { mutual: true, ratio: Some(0.9), max_distance: None };
        match_descriptors(&desc0, &desc1, dim, &cfg).unwrap();
        let reps = 10;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(match_descriptors(&desc0, &desc1, dim, &cfg).unwrap());
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(reps);
        println!("2000 x 2000, dim {dim}: {ms:.2} ms per call");
    }
}

#[test]
fn ties_among_many_candidates() {
    // More candidates than the scan's lanes: equal nearest values in the same lane (3, 11),
    // in different lanes (13) and in the tail (17).
    for tied in [[3usize, 11], [13, 3], [17, 13]] {
        let mut desc1: Vec<f32> = (0..18).map(|j| 10.0 + j as f32).collect();
        for &j in &tied {
            desc1[j] = 1.0;
        }
        let plain = MatchConfig { mutual: false, ..Default::default() };
        let m = match_descriptors(&[0.0], &desc1, 1, &plain).unwrap();
        assert_eq!(m[0].i1 as usize, *tied.iter().min().unwrap(), "{tied:?}");
        let ratio = MatchConfig { ratio: Some(0.99), ..plain };
        assert!(match_descriptors(&[0.0], &desc1, 1, &ratio).unwrap().is_empty(), "{tied:?}");
    }
}
