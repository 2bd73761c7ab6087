//! Sequences with homographies: loading, errors, and patch cutting that yields corresponding
//! patches (checked by normalised cross-correlation).

use desdis_data::embedded::{render_sequence, PhotometricRange, SequenceConfig, HELD_OUT_PHOTOS};
use desdis_data::geometry::Homography;
use desdis_data::hpatches::HPatchesSequence;
use desdis_data::sequence::{cut_hpatches, cut_patches, CutConfig, CutSet, Jitter, Sequence};
use desdis_stdx::testing::shared_data;

/// Normalised cross-correlation of two equally sized patches.
fn ncc(a: &[u8], b: &[u8]) -> f64 {
    let mean = |p: &[u8]| p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(1e-9)
}

/// Mean NCC between image 1's patches and image `view`'s, matched or with points shifted by one.
fn mean_ncc(cut: &CutSet, view: usize, shuffled: bool) -> f64 {
    let n = cut.num_points();
    let total: f64 = (0..n)
        .map(|i| ncc(cut.patch(0, i), cut.patch(view, if shuffled { (i + n / 2 + 1) % n } else { i })))
        .sum();
    total / n as f64
}

/// The held-out photo and a view of it under a known homography, without photometric changes.
fn warped_pair() -> Sequence {
    let photo = HELD_OUT_PHOTOS[0].decode().unwrap();
    let still = PhotometricRange { log_gain: 0.0, log_gamma: 0.0, bias: 0.0, max_blur: 0.0, max_noise: 0.0 };
    let cfg = SequenceConfig { images: 2, photometric: still, ..SequenceConfig::default() };
    let (images, homographies) = render_sequence(&photo, &Homography::IDENTITY, &cfg, 7);
    Sequence::new(images, homographies).unwrap()
}

#[test]
fn known_homography_gives_corresponding_patches() {
    let seq = warped_pair();
    let cut = cut_patches(&seq, &CutConfig::default(), 1).unwrap();
    assert!(cut.num_points() >= 50, "only {} keypoints", cut.num_points());
    let (matched, shuffled) = (mean_ncc(&cut, 1, false), mean_ncc(&cut, 1, true));
    eprintln!("synthetic warp: mean NCC {matched:.3} matched, {shuffled:.3} shuffled");
    assert!(matched > 0.9, "matched NCC {matched}");
    assert!(shuffled.abs() < 0.2, "shuffled NCC {shuffled}");
}

#[test]
fn jitter_lowers_but_keeps_correspondence() {
    let seq = warped_pair();
    let exact = cut_patches(&seq, &CutConfig::default(), 1).unwrap();
    let tough = cut_patches(&seq, &CutConfig { jitter: Jitter::Tough, ..CutConfig::default() }, 1).unwrap();
    let (a, b) = (mean_ncc(&exact, 1, false), mean_ncc(&tough, 1, false));
    eprintln!("mean NCC exact {a:.3}, tough jitter {b:.3}");
    assert!(b < a - 0.05 && b > 0.4, "exact {a}, tough {b}");
}

#[test]
fn real_sequence_gives_corresponding_patches() {
    let Some(dir) = shared_data("hpatches-sequences/v_wormhole") else { return };
    let seq = Sequence::load(&dir).unwrap();
    assert_eq!((seq.images.len(), seq.homographies.len()), (6, 5));
    let cut = cut_patches(&seq, &CutConfig { max_keypoints: 300, ..CutConfig::default() }, 3).unwrap();
    assert!(cut.num_points() >= 100, "only {} keypoints", cut.num_points());
    for view in 1..6 {
        let (matched, shuffled) = (mean_ncc(&cut, view, false), mean_ncc(&cut, view, true));
        eprintln!("v_wormhole image {}: mean NCC {matched:.3} matched, {shuffled:.3} shuffled", view + 1);
        assert!(matched > 0.65 && shuffled.abs() < 0.2, "image {}: {matched} vs {shuffled}", view + 1);
    }
}

#[test]
fn cutting_is_deterministic_across_thread_counts() {
    let seq = warped_pair();
    let cfg = CutConfig { jitter: Jitter::Hard, max_keypoints: 100, ..CutConfig::default() };
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| cut_patches(&seq, &cfg, 11).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_ne!(one, cut_patches(&seq, &cfg, 12).unwrap(), "the seed must drive the jitter");
}

#[test]
fn patch_set_groups_views_by_point() {
    let seq = warped_pair();
    let cut = cut_patches(&seq, &CutConfig { max_keypoints: 10, ..CutConfig::default() }, 1).unwrap();
    let set = cut.to_patch_set(100);
    assert_eq!(set.point_ids[..4], [100, 100, 101, 101]);
    assert_eq!(&set.patches[1024..2048], cut.patch(1, 0));
}

#[test]
fn hpatches_strips_are_cut_and_written() {
    let seq = warped_pair();
    let cfg = CutConfig { patch_size: 65, max_keypoints: 20, ..CutConfig::default() };
    let cut = cut_hpatches(&seq, &cfg, 5).unwrap();
    assert_eq!(cut.strips.keys().collect::<Vec<_>>(), ["e1", "h1", "ref", "t1"]);
    let dir = tempfile::tempdir().unwrap();
    cut.write(dir.path()).unwrap();
    let loaded = HPatchesSequence::load(dir.path()).unwrap();
    assert_eq!(loaded.strips["ref"].len(), cut.keypoints.len());
    assert_eq!(loaded.strips["t1"].patches, cut.strips["t1"]);
}

#[test]
fn sequence_round_trips_through_files() {
    let seq = warped_pair();
    let dir = tempfile::tempdir().unwrap();
    seq.write(dir.path()).unwrap();
    let loaded = Sequence::load(dir.path()).unwrap();
    assert_eq!(loaded.images, seq.images);
    let (a, b) = (loaded.homographies[0].0, seq.homographies[0].0);
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
        }
    }
}

#[test]
fn homography_with_8_numbers_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    warped_pair().write(dir.path()).unwrap();
    std::fs::write(dir.path().join("H_1_2"), "1 0 0\n0 1 0\n0 0\n").unwrap();
    let err = Sequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("H_1_2") && err.contains("needs 9 numbers (3x3), found 8"), "{err}");
    std::fs::write(dir.path().join("H_1_2"), "1 0 0\n0 1 0\n0 0 one\n").unwrap();
    let err = Sequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("H_1_2:3:") && err.contains("`one`"), "{err}");
}

#[test]
fn sequence_with_a_missing_image_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let seq = warped_pair();
    let three = Sequence::new(
        [seq.images.clone(), vec![seq.images[1].clone()]].concat(),
        vec![seq.homographies[0]; 2],
    )
    .unwrap();
    three.write(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("2.png")).unwrap();
    let err = Sequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("2.png") && err.contains("missing image 2"), "{err}");
    std::fs::remove_file(dir.path().join("3.png")).unwrap();
    let err = Sequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("at least images 1 and 2"), "{err}");
    three.write(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("H_1_3")).unwrap();
    let err = Sequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("H_1_3") && err.contains("missing homography"), "{err}");
}

#[test]
fn homography_without_its_image_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let seq = warped_pair();
    seq.write(dir.path()).unwrap();
    seq.homographies[0].write(&dir.path().join("H_1_3")).unwrap();
    let err = Sequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("3.png") && err.contains("H_1_3 exists"), "{err}");
}
