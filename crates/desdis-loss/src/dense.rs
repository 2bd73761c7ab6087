//! HardNet's loss computed the way the published code does: from the full differentiable
//! distance matrix, with masks and minima over rows and columns.
//!
//! [`crate::HardNetLoss`] mines first and differentiates only the distances it uses; this version
//! is kept as an independent cross-check of its values and gradients, and as the baseline of the
//! benchmark.

use candle_core::Tensor;

use crate::batch::PairBatch;
use crate::distance::{pairwise_distance, pairwise_distance_plain};
use crate::error::{input, Result};
use crate::hardnet::HardNetConfig;
use crate::mining::Mining;

/// Added to the excluded entries (diagonal, false negatives) before taking minima, as HardNet
/// does: larger than any distance of unit vectors plus the margin, so an excluded entry that
/// still wins (no valid negative at all) gives a zero hinge.
const EXCLUDED_PENALTY: f64 = 10.0;

/// Which kernel computes the distance matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistanceBackend {
    /// [`pairwise_distance_plain`]: plain tensor ops.
    Plain,
    /// [`pairwise_distance`]: the fused CPU kernel where available.
    Fused,
}

/// HardNet's loss from the full `(N, N)` distance matrix; for unit descriptors it equals
/// [`crate::HardNetLoss`] in value and gradient.
///
/// # Shapes
/// - `batch`: `(N, D)` anchors and positives, `N >= 2` → `()`
pub fn hardnet_dense(batch: &PairBatch, config: &HardNetConfig, backend: DistanceBackend) -> Result<Tensor> {
    config.validate()?;
    batch.require_negatives()?;
    if config.mining == Mining::AllPairs {
        return Err(input("the dense HardNet loss supports anchor-only and anchor-swap mining"));
    }
    let (a, p) = (batch.anchors(), batch.positives());
    let dist = match backend {
        DistanceBackend::Plain => pairwise_distance_plain(a, p, config.metric)?,
        DistanceBackend::Fused => pairwise_distance(a, p, config.metric)?,
    };
    let eye = Tensor::eye(batch.len(), dist.dtype(), dist.device())?;
    let positive = (&dist * &eye)?.sum(1)?;
    let false_negatives = dist.lt(config.false_negative_threshold)?.to_dtype(dist.dtype())?;
    let penalty = ((eye + false_negatives)? * EXCLUDED_PENALTY)?;
    let masked = (&dist + penalty.detach())?;
    let mut negative = masked.min(1)?;
    if config.mining == Mining::AnchorSwap {
        negative = negative.minimum(&masked.min(0)?)?;
    }
    let hinge = ((positive - negative)? + config.margin)?.relu()?;
    Ok(hinge.mean_all()?)
}
