//! TFeat's loss (Balntas et al. 2016): a margin triplet loss with anchor swap on descriptors
//! that are not L2-normalised.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::distance::Metric;
use crate::error::{check_at_least, Result};
use crate::mining::{hardest_negatives, shifted_negatives, Mining};
use crate::triplet::{masked_mean, Mined, MinedDistances, TripletLoss};

/// Where TFeat's negative comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TfeatNegatives {
    /// The positive of the next pair in the batch: a random negative, as TFeat trains with.
    #[default]
    Shifted,
    /// The hardest in-batch negative, mined as HardNet does.
    Hardest,
}

/// Settings of [`TfeatLoss`]; the defaults follow TFeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfeatConfig {
    /// Margin of the hinge: 2.0.
    pub margin: f64,
    /// Measure the negative from whichever of anchor and positive is closer to it: true.
    pub anchor_swap: bool,
    /// Random (shifted) or hardest negatives: shifted.
    pub negatives: TfeatNegatives,
    /// Negatives closer than this are never used: 0 (TFeat has no such filter, and its
    /// descriptors have no fixed scale).
    pub false_negative_threshold: f64,
    /// How distances are computed: Euclidean, since TFeat does not normalise.
    pub metric: Metric,
}

impl Default for TfeatConfig {
    fn default() -> Self {
        Self {
            margin: 2.0,
            anchor_swap: true,
            negatives: TfeatNegatives::Shifted,
            false_negative_threshold: 0.0,
            metric: Metric::Euclidean,
        }
    }
}

impl TfeatConfig {
    /// Errors on a negative or non-finite margin or threshold.
    pub fn validate(&self) -> Result<()> {
        check_at_least("tfeat margin", self.margin, 0.0)?;
        check_at_least("tfeat false_negative_threshold", self.false_negative_threshold, 0.0)
    }
}

/// `mean_i max(0, margin + d(a_i, p_i) - d_neg(i))` with the negative of [`TfeatNegatives`]:
/// shifted, `d_neg(i) = min(d(a_i, p_{i+1}), d(p_i, p_{i+1}))` (indices wrap; without anchor
/// swap only the first); hardest, as [`crate::HardNetLoss`] mines it.
#[derive(Clone, Debug, Default)]
pub struct TfeatLoss {
    config: TfeatConfig,
}

impl TfeatLoss {
    /// The loss with `config`, validated.
    pub fn new(config: TfeatConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Its settings.
    pub fn config(&self) -> &TfeatConfig {
        &self.config
    }
}

impl TripletLoss for TfeatLoss {
    fn mine(&self, batch: &PairBatch) -> Result<Mined> {
        let c = &self.config;
        let negatives = match c.negatives {
            TfeatNegatives::Shifted => {
                shifted_negatives(batch, c.metric, c.anchor_swap, c.false_negative_threshold)?
            }
            TfeatNegatives::Hardest => {
                let mining = if c.anchor_swap { Mining::AnchorSwap } else { Mining::AnchorOnly };
                hardest_negatives(batch, c.metric, mining, c.false_negative_threshold)?
            }
        };
        Ok(Mined::negatives(negatives))
    }

    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2` → `()`
    fn loss_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<Tensor> {
        let c = &self.config;
        let d = MinedDistances::new(batch, &mined.negatives, c.metric)?;
        let hinge = ((&d.positive - &d.negative)? + c.margin)?.relu()?;
        masked_mean(&hinge, d.valid.as_ref())
    }

    fn name(&self) -> &'static str {
        "tfeat"
    }
}
