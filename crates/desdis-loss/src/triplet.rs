//! The trait every teacher recipe's loss implements, and the pieces the losses share.

use candle_core::Tensor;

use crate::batch::PairBatch;
use crate::distance::{gathered_distance, paired_distance, Metric};
use crate::error::Result;
use crate::mining::{Negatives, Neighbours};

/// What a loss mines from a batch: index sets only, no gradient. Mined once per step, the same
/// negatives feed the triplet term and `R_ts` ([`crate::Distillation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mined {
    /// One negative pair per batch pair.
    pub negatives: Negatives,
    /// The nearest anchors of each anchor and the nearest positives of each positive, for losses
    /// with a second-order term (SOSNet); `None` for the others.
    pub neighbours: Option<(Neighbours, Neighbours)>,
}

impl Mined {
    /// Negatives only.
    pub fn negatives(negatives: Negatives) -> Self {
        Self { negatives, neighbours: None }
    }
}

/// A triplet-style descriptor loss over a batch of matching pairs.
pub trait TripletLoss: Send + Sync + std::fmt::Debug {
    /// The scalar loss of the batch, differentiable with respect to every descriptor tensor of
    /// the batch: [`TripletLoss::loss_mined`] on what [`TripletLoss::mine`] finds.
    ///
    /// # Shapes
    /// - `batch`: `N` pairs of `(N, D)` descriptors → `()` (a scalar)
    fn loss(&self, batch: &PairBatch) -> Result<Tensor> {
        self.loss_mined(batch, &self.mine(batch)?)
    }

    /// The negatives (and neighbours) this loss uses, mined on the detached descriptors.
    ///
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2`
    fn mine(&self, batch: &PairBatch) -> Result<Mined>;

    /// The loss on the pairs of `mined` (from [`TripletLoss::mine`] on the same batch).
    ///
    /// # Shapes
    /// - `batch`: `N` pairs of `(N, D)` descriptors → `()` (a scalar)
    fn loss_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<Tensor>;

    /// The recipe's name, as [`crate::LossKind`] spells it.
    fn name(&self) -> &'static str;

    /// Whether [`TripletLoss::loss`] needs the raw descriptors of the batch ([`PairBatch::with_raw`]).
    fn needs_raw(&self) -> bool {
        false
    }
}

/// The positive distance and the mined negative distance of every pair.
#[derive(Debug)]
pub(crate) struct MinedDistances {
    /// `d(a_i, p_i)`, `(N,)`.
    pub positive: Tensor,
    /// Distance of the mined negative pair, `(N,)` (a placeholder where `valid` is 0).
    pub negative: Tensor,
    /// 1 where the pair has a negative, 0 where all its candidates were false negatives; `None`
    /// when every pair has one.
    pub valid: Option<Tensor>,
}

impl MinedDistances {
    /// Differentiable distances for the pairs of `batch` and their mined `negatives`.
    pub fn new(batch: &PairBatch, negatives: &Negatives, metric: Metric) -> Result<Self> {
        let (a, p) = (batch.anchors(), batch.positives());
        let pool = Tensor::cat(&[a, p], 0)?;
        Ok(Self {
            positive: paired_distance(a, p, metric)?,
            negative: gathered_distance(&pool, &negatives.left, &negatives.right, metric)?,
            valid: validity_mask(negatives, a)?,
        })
    }
}

/// `negatives.valid` as a 0/1 tensor of `like`'s dtype and device, or `None` when all are valid.
pub(crate) fn validity_mask(negatives: &Negatives, like: &Tensor) -> Result<Option<Tensor>> {
    if negatives.all_valid() {
        return Ok(None);
    }
    let ones: Vec<f32> = negatives.valid.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    let mask = Tensor::from_vec(ones, negatives.len(), like.device())?.to_dtype(like.dtype())?;
    Ok(Some(mask))
}

/// The mean over all `N` pairs of `per_pair`, with pairs that have no negative counted as 0.
///
/// # Shapes
/// - `per_pair`: `(N,)` → `()`
pub(crate) fn masked_mean(per_pair: &Tensor, valid: Option<&Tensor>) -> Result<Tensor> {
    let kept = match valid {
        Some(mask) => (per_pair * mask)?,
        None => per_pair.clone(),
    };
    Ok(kept.mean_all()?)
}
