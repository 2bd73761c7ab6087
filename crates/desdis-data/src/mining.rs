//! HardNet-style pair mining: each epoch is a list of (anchor, positive) patch index pairs.
//!
//! For each pair a 3D point with at least two patches is drawn, then two distinct patches of it;
//! within one batch no point appears twice, so that every other pair of the batch is a valid
//! negative. Each batch draws from its own random stream derived from `(seed, batch index)`, so
//! the result is the same for any number of threads.

use crate::error::{DataError, Result};
use crate::phototour::Pair;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Patches grouped by point: the points with at least two patches and their patch indices.
#[derive(Debug, Clone)]
pub struct PointIndex {
    /// `members[offsets[p]..offsets[p + 1]]` are the patches of eligible point `p`.
    offsets: Vec<usize>,
    members: Vec<u32>,
}

impl PointIndex {
    /// Groups patch indices by point id, keeping points with two or more patches.
    pub fn new(point_ids: &[u32]) -> PointIndex {
        let mut order: Vec<u32> = (0..point_ids.len() as u32).collect();
        // Stable, so members keep patch order within a point: the index is deterministic.
        order.sort_by_key(|&i| point_ids[i as usize]);
        let mut offsets = vec![0];
        let mut members = Vec::with_capacity(order.len());
        for group in order.chunk_by(|&a, &b| point_ids[a as usize] == point_ids[b as usize]) {
            if group.len() >= 2 {
                members.extend_from_slice(group);
                offsets.push(members.len());
            }
        }
        PointIndex { offsets, members }
    }

    /// Number of points with at least two patches.
    pub fn num_points(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Patch indices of eligible point `p`.
    pub fn patches_of(&self, p: usize) -> &[u32] {
        &self.members[self.offsets[p]..self.offsets[p + 1]]
    }
}

/// `n` (anchor, positive) pairs in batches of `batch` (the last batch may be smaller).
///
/// Errors when fewer than `batch` points have two or more patches, as a batch could then not
/// avoid repeating a point.
pub fn generate_pairs(point_ids: &[u32], n: usize, batch: usize, seed: u64) -> Result<Vec<(u32, u32)>> {
    let index = PointIndex::new(point_ids);
    if batch == 0 || index.num_points() < batch.min(n).max(1) {
        return Err(DataError::Config(format!(
            "pair mining needs batch >= 1 and at least `batch` ({batch}) points with two or more patches, found {}",
            index.num_points()
        )));
    }
    let mut pairs = vec![(0u32, 0u32); n];
    pairs
        .par_chunks_mut(batch)
        .enumerate()
        .for_each(|(b, chunk)| fill_batch(&index, chunk, batch_rng(seed, b as u64)));
    Ok(pairs)
}

/// The random stream of batch `b`.
pub fn batch_rng(seed: u64, b: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(b);
    rng
}

fn fill_batch(index: &PointIndex, chunk: &mut [(u32, u32)], mut rng: ChaCha8Rng) {
    let points = sample(&mut rng, index.num_points(), chunk.len());
    for (slot, p) in chunk.iter_mut().zip(points.iter()) {
        let members = index.patches_of(p);
        let a = rng.random_range(0..members.len());
        // Drawing from len - 1 and skipping `a` gives a distinct, uniform second patch.
        let mut b = rng.random_range(0..members.len() - 1);
        if b >= a {
            b += 1;
        }
        *slot = (members[a], members[b]);
    }
}

/// `n` evaluation pairs, half matching (two patches of a point) and half not (patches of two
/// different points), shuffled, for writing m50-style files.
pub fn sample_eval_pairs(point_ids: &[u32], n: usize, seed: u64) -> Result<Vec<Pair>> {
    let index = PointIndex::new(point_ids);
    if index.num_points() < 2 {
        return Err(DataError::Config(
            "evaluation pairs need at least two points with two or more patches".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let p = rng.random_range(0..index.num_points());
        let members = index.patches_of(p);
        if i % 2 == 0 {
            let a = rng.random_range(0..members.len());
            let b = (a + rng.random_range(1..members.len())) % members.len();
            pairs.push(Pair { a: members[a], b: members[b], is_match: true });
        } else {
            let q = (p + rng.random_range(1..index.num_points())) % index.num_points();
            let other = index.patches_of(q);
            let (a, b) =
                (members[rng.random_range(0..members.len())], other[rng.random_range(0..other.len())]);
            pairs.push(Pair { a, b, is_match: false });
        }
    }
    Ok(pairs)
}
