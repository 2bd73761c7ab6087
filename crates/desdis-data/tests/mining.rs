//! Pair mining and batching: determinism across thread counts, HardNet's constraints, tensors.

use desdis_data::batch::PairBatcher;
use desdis_data::mining::{generate_pairs, sample_eval_pairs, PointIndex};
use desdis_data::patch::{PatchSet, PATCH_LEN};
use std::collections::HashSet;

/// 1000 points with 1..=4 patches each (point `p` has `p % 4 + 1`).
fn point_ids() -> Vec<u32> {
    (0..1000u32).flat_map(|p| std::iter::repeat_n(p * 7 + 3, (p % 4 + 1) as usize)).collect()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn same_seed_gives_identical_pairs_on_1_and_2_threads() {
    let ids = point_ids();
    let one = in_pool(1, || generate_pairs(&ids, 10_000, 128, 42).unwrap());
    let two = in_pool(2, || generate_pairs(&ids, 10_000, 128, 42).unwrap());
    assert_eq!(one, two);
    assert_ne!(one, generate_pairs(&ids, 10_000, 128, 43).unwrap());
}

#[test]
fn pairs_follow_hardnet_rules() {
    let ids = point_ids();
    let batch = 256;
    let pairs = generate_pairs(&ids, 5_000, batch, 1).unwrap();
    assert_eq!(pairs.len(), 5_000);
    for chunk in pairs.chunks(batch) {
        let mut seen = HashSet::new();
        for &(a, p) in chunk {
            assert_ne!(a, p, "anchor and positive must be distinct patches");
            assert_eq!(ids[a as usize], ids[p as usize], "anchor and positive must show one point");
            assert!(seen.insert(ids[a as usize]), "point {} twice in a batch", ids[a as usize]);
        }
    }
    // Points with a single patch are never drawn.
    assert!(pairs.iter().all(|&(a, _)| ids.iter().filter(|&&i| i == ids[a as usize]).count() >= 2));
    assert_eq!(PointIndex::new(&ids).num_points(), 750);
}

#[test]
fn too_few_points_for_a_batch_is_an_error() {
    let ids = [1, 1, 2, 2, 3];
    let err = generate_pairs(&ids, 10, 3, 0).unwrap_err().to_string();
    assert!(err.contains("batch") && err.contains("found 2"), "{err}");
    assert_eq!(generate_pairs(&ids, 10, 2, 0).unwrap().len(), 10);
}

#[test]
fn eval_pairs_are_half_matching_and_correctly_labelled() {
    let ids = point_ids();
    let pairs = sample_eval_pairs(&ids, 1000, 9).unwrap();
    assert_eq!(pairs.iter().filter(|p| p.is_match).count(), 500);
    for p in &pairs {
        assert_eq!(p.is_match, ids[p.a as usize] == ids[p.b as usize]);
        assert_ne!(p.a, p.b);
    }
}

/// Two patches per point, identical content, each patch asymmetric so every symmetry shows.
fn twin_set() -> PatchSet {
    let mut set = PatchSet::default();
    for p in 0..64u32 {
        let patch: [u8; PATCH_LEN] = std::array::from_fn(|i| ((i * (p as usize + 3) + i / 32) % 256) as u8);
        set.push(&patch, p);
        set.push(&patch, p);
    }
    set
}

#[test]
fn batches_are_scaled_tensors_with_shared_augmentation() {
    let set = twin_set();
    let pairs = generate_pairs(&set.point_ids, 100, 32, 5).unwrap();
    let batcher = PairBatcher::new(&set, &pairs, 32, candle_core::Device::Cpu).with_augmentation(8);
    assert_eq!(batcher.num_batches(), 4);
    let batches: Vec<_> = batcher.collect::<Result<_, _>>().unwrap();
    let (a, p) = &batches[0];
    assert_eq!(a.dims(), [32, 1, 32, 32]);
    assert_eq!(batches[3].0.dims(), [4, 1, 32, 32]);
    let (a, p) = (
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        p.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(a, p, "twin patches must receive the same symmetry");
    // Augmentation changes some patches relative to the raw ones.
    let raw = PairBatcher::new(&set, &pairs, 32, candle_core::Device::Cpu).batch_buffers(0).0;
    assert_ne!(raw, a);
    assert_eq!(
        raw[..PATCH_LEN].iter().map(|v| (v * 255.0).round() as u8).collect::<Vec<_>>(),
        set.patches[pairs[0].0 as usize * PATCH_LEN..][..PATCH_LEN]
    );
}

#[test]
fn augmented_batches_are_deterministic_across_thread_counts() {
    let set = twin_set();
    let pairs = generate_pairs(&set.point_ids, 64, 32, 5).unwrap();
    let run = |threads| {
        in_pool(threads, || {
            PairBatcher::new(&set, &pairs, 32, candle_core::Device::Cpu).with_augmentation(3).batch_buffers(1)
        })
    };
    assert_eq!(run(1), run(2));
}
