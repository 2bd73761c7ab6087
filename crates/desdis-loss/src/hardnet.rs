//! HardNet's loss (Mishchuk et al. 2017): a margin triplet loss on the hardest in-batch negative.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::distance::Metric;
use crate::error::{check_at_least, Result};
use crate::mining::{hardest_negatives, Mining, FALSE_NEGATIVE_DISTANCE};
use crate::triplet::{masked_mean, Mined, MinedDistances, TripletLoss};

/// Settings of [`HardNetLoss`]; the defaults are HardNet's published ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardNetConfig {
    /// Margin of the hinge: 1.0.
    pub margin: f64,
    /// Negatives closer than this are false negatives and never mined: 0.008.
    pub false_negative_threshold: f64,
    /// Where negatives are searched: anchor row and positive column (anchor swap).
    pub mining: Mining,
    /// How distances are computed: unit-sphere shortcut, for L2-normalised descriptors.
    pub metric: Metric,
}

impl Default for HardNetConfig {
    fn default() -> Self {
        Self {
            margin: 1.0,
            false_negative_threshold: FALSE_NEGATIVE_DISTANCE,
            mining: Mining::AnchorSwap,
            metric: Metric::UnitSphere,
        }
    }
}

impl HardNetConfig {
    /// Errors on a negative or non-finite margin or threshold.
    pub fn validate(&self) -> Result<()> {
        check_at_least("hardnet margin", self.margin, 0.0)?;
        check_at_least("hardnet false_negative_threshold", self.false_negative_threshold, 0.0)
    }
}

/// `mean_i max(0, margin + d(a_i, p_i) - d_neg(i))` with `d_neg(i)` the distance of the hardest
/// valid in-batch negative of pair `i` (see [`crate::hardest_negatives`]); a pair without any
/// valid negative contributes 0.
#[derive(Clone, Debug, Default)]
pub struct HardNetLoss {
    config: HardNetConfig,
}

impl HardNetLoss {
    /// The loss with `config`, validated.
    pub fn new(config: HardNetConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Its settings.
    pub fn config(&self) -> &HardNetConfig {
        &self.config
    }
}

impl TripletLoss for HardNetLoss {
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2` → `()`
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2` → `()`
    fn loss_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<Tensor> {
        let c = &self.config;
        let d = MinedDistances::new(batch, &mined.negatives, c.metric)?;
        let hinge = ((&d.positive - &d.negative)? + c.margin)?.relu()?;
        masked_mean(&hinge, d.valid.as_ref())
    }

    fn mine(&self, batch: &PairBatch) -> Result<Mined> {
        let c = &self.config;
        Ok(Mined::negatives(hardest_negatives(batch, c.metric, c.mining, c.false_negative_threshold)?))
    }

    fn name(&self) -> &'static str {
        "hardnet"
    }
}
