//! Batches of pairs as tensors: anchors and positives, each (B, 1, 32, 32) f32 scaled to 0..1.

use crate::augment::Symmetry;
use crate::error::Result;
use crate::mining::batch_rng;
use crate::patch::{Dataset, PATCH_LEN, PATCH_SIDE};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// Iterates over `pairs` in batches of `batch_size`, yielding `(anchors, positives)` tensors.
///
/// With augmentation on, each pair gets a random square symmetry (rot90 and flip), the same for
/// both of its patches, drawn from a stream derived from `(seed, batch index)`: deterministic for
/// any thread count.
pub struct PairBatcher<'a, D: Dataset + ?Sized> {
    dataset: &'a D,
    pairs: &'a [(u32, u32)],
    batch_size: usize,
    augment: bool,
    seed: u64,
    device: Device,
    next_batch: usize,
}

impl<'a, D: Dataset + ?Sized> PairBatcher<'a, D> {
    /// A batcher over `pairs` of patch indices into `dataset`.
    pub fn new(dataset: &'a D, pairs: &'a [(u32, u32)], batch_size: usize, device: Device) -> Self {
        PairBatcher {
            dataset,
            pairs,
            batch_size: batch_size.max(1),
            augment: false,
            seed: 0,
            device,
            next_batch: 0,
        }
    }

    /// Turns augmentation on, seeded.
    pub fn with_augmentation(mut self, seed: u64) -> Self {
        self.augment = true;
        self.seed = seed;
        self
    }

    /// Number of batches.
    pub fn num_batches(&self) -> usize {
        self.pairs.len().div_ceil(self.batch_size)
    }

    /// Batch `b` as two f32 buffers of `len * 1024` values in 0..1.
    pub fn batch_buffers(&self, b: usize) -> (Vec<f32>, Vec<f32>) {
        let start = (b * self.batch_size).min(self.pairs.len());
        let pairs = &self.pairs[start..(start + self.batch_size).min(self.pairs.len())];
        let symmetries = self.symmetries(b, pairs.len());
        let mut anchors = vec![0f32; pairs.len() * PATCH_LEN];
        let mut positives = vec![0f32; pairs.len() * PATCH_LEN];
        anchors
            .par_chunks_mut(PATCH_LEN)
            .zip(positives.par_chunks_mut(PATCH_LEN))
            .zip(pairs.par_iter().zip(symmetries.par_iter()))
            .for_each(|((a, p), (&(ia, ip), sym))| {
                write_patch(self.dataset.patch(ia as usize), sym, a);
                write_patch(self.dataset.patch(ip as usize), sym, p);
            });
        (anchors, positives)
    }

    fn symmetries(&self, b: usize, len: usize) -> Vec<Symmetry> {
        if !self.augment {
            return vec![Symmetry::IDENTITY; len];
        }
        // Stream numbers from the top half keep these draws apart from the mining streams.
        let mut rng = batch_rng(self.seed, (1u64 << 63) | b as u64);
        (0..len).map(|_| Symmetry::random(&mut rng)).collect()
    }

    /// Batch `b` as tensors on the batcher's device.
    pub fn batch(&self, b: usize) -> Result<(Tensor, Tensor)> {
        let (anchors, positives) = self.batch_buffers(b);
        let n = anchors.len() / PATCH_LEN;
        let shape = (n, 1, PATCH_SIDE, PATCH_SIDE);
        Ok((
            Tensor::from_vec(anchors, shape, &self.device)?,
            Tensor::from_vec(positives, shape, &self.device)?,
        ))
    }
}

fn write_patch(src: &[u8; PATCH_LEN], sym: &Symmetry, dst: &mut [f32]) {
    let mut turned = [0u8; PATCH_LEN];
    sym.apply(src, &mut turned);
    for (d, &s) in dst.iter_mut().zip(&turned) {
        *d = s as f32 / 255.0;
    }
}

impl<D: Dataset + ?Sized> Iterator for PairBatcher<'_, D> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_batch >= self.num_batches() {
            return None;
        }
        let b = self.next_batch;
        self.next_batch += 1;
        Some(self.batch(b))
    }
}
