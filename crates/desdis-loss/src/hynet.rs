//! HyNet's loss (Tian et al. 2020): a triplet loss on a hybrid of the L2 distance and the inner
//! product, plus a penalty on the norm difference of each pair's raw descriptors.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::distance::{Metric, DISTANCE_EPS};
use crate::error::{check_at_least, input, Result};
use crate::mining::{hardest_negatives, Mining, FALSE_NEGATIVE_DISTANCE};
use crate::triplet::{masked_mean, Mined, MinedDistances, TripletLoss};

/// Settings of [`HyNetLoss`]; the defaults are HyNet's published ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyNetConfig {
    /// Margin of the hinge: 1.2.
    pub margin: f64,
    /// Weight of the inner-product part of the hybrid measure: 2.0.
    pub alpha: f64,
    /// Weight of the raw-norm penalty: 0.1.
    pub norm_weight: f64,
    /// Negatives closer than this are false negatives and never mined: 0.008.
    pub false_negative_threshold: f64,
    /// Where negatives are searched: every other descriptor of the batch.
    pub mining: Mining,
    /// How distances are computed: unit-sphere shortcut, for L2-normalised descriptors.
    pub metric: Metric,
}

impl Default for HyNetConfig {
    fn default() -> Self {
        Self {
            margin: 1.2,
            alpha: 2.0,
            norm_weight: 0.1,
            false_negative_threshold: FALSE_NEGATIVE_DISTANCE,
            mining: Mining::AllPairs,
            metric: Metric::UnitSphere,
        }
    }
}

impl HyNetConfig {
    /// Errors on a negative or non-finite margin, weight or threshold.
    pub fn validate(&self) -> Result<()> {
        check_at_least("hynet margin", self.margin, 0.0)?;
        check_at_least("hynet alpha", self.alpha, 0.0)?;
        check_at_least("hynet norm_weight", self.norm_weight, 0.0)?;
        check_at_least("hynet false_negative_threshold", self.false_negative_threshold, 0.0)
    }
}

/// The two terms of the HyNet loss, unweighted.
#[derive(Clone, Debug)]
pub struct HyNetTerms {
    /// `mean_i max(0, margin + h(d(a_i, p_i)) - h(d_neg(i)))` with `h(d) = d + alpha d² / 2`.
    pub triplet: Tensor,
    /// `mean_i (|raw a_i| - |raw p_i|)²`, each norm `sqrt(sum x² + eps)`.
    pub norm: Tensor,
}

/// `triplet + norm_weight * norm` (see [`HyNetTerms`]).
///
/// For unit vectors `d² / 2 = 1 - x·y`, so `h(d) = d + alpha (1 - x·y)` mixes the L2 distance
/// with the inner-product dissimilarity: HyNet's hybrid similarity, in the form its training code
/// uses. Needs the raw descriptors ([`PairBatch::with_raw`]).
#[derive(Clone, Debug, Default)]
pub struct HyNetLoss {
    config: HyNetConfig,
}

impl HyNetLoss {
    /// The loss with `config`, validated.
    pub fn new(config: HyNetConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Its settings.
    pub fn config(&self) -> &HyNetConfig {
        &self.config
    }

    /// Both terms, unweighted.
    ///
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2`, with raw `(N, D_raw)` → two scalars
    pub fn terms(&self, batch: &PairBatch) -> Result<HyNetTerms> {
        self.terms_mined(batch, &self.mine(batch)?)
    }

    /// Both terms on the negatives of `mined`.
    ///
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2`, with raw `(N, D_raw)` → two scalars
    pub fn terms_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<HyNetTerms> {
        let Some((raw_a, raw_p)) = batch.raw() else {
            return Err(input("the HyNet loss needs the raw descriptors (PairBatch::with_raw)"));
        };
        let c = &self.config;
        let d = MinedDistances::new(batch, &mined.negatives, c.metric)?;
        let hinge = ((self.hybrid(&d.positive)? - self.hybrid(&d.negative)?)? + c.margin)?.relu()?;
        let norm_gap = (safe_norm(raw_a)? - safe_norm(raw_p)?)?;
        Ok(HyNetTerms { triplet: masked_mean(&hinge, d.valid.as_ref())?, norm: norm_gap.sqr()?.mean_all()? })
    }

    /// `h(d) = d + alpha d² / 2`.
    fn hybrid(&self, d: &Tensor) -> Result<Tensor> {
        Ok((d + (d.sqr()? * (self.config.alpha / 2.0))?)?)
    }
}

/// Row norms `sqrt(sum x² + eps)`, finite in gradient at 0.
///
/// # Shapes
/// - `x`: `(N, D)` → `(N,)`
fn safe_norm(x: &Tensor) -> Result<Tensor> {
    Ok((x.sqr()?.sum(1)? + DISTANCE_EPS)?.sqrt()?)
}

impl TripletLoss for HyNetLoss {
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2`, with raw `(N, D_raw)` → `()`
    fn loss_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<Tensor> {
        let terms = self.terms_mined(batch, mined)?;
        Ok((terms.triplet + (terms.norm * self.config.norm_weight)?)?)
    }

    fn mine(&self, batch: &PairBatch) -> Result<Mined> {
        let c = &self.config;
        Ok(Mined::negatives(hardest_negatives(batch, c.metric, c.mining, c.false_negative_threshold)?))
    }

    fn name(&self) -> &'static str {
        "hynet"
    }

    fn needs_raw(&self) -> bool {
        true
    }
}
