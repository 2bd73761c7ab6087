//! SOSNet's loss (Tian et al. 2019): a squared first-order triplet term plus the second-order
//! similarity regulariser, which asks each pair's neighbourhood to look the same from both sides.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::distance::{gathered_distance, Metric, DISTANCE_EPS};
use crate::error::{check_at_least, config, input, Result};
use crate::mining::{hardest_negatives_and_neighbours, Mining, FALSE_NEGATIVE_DISTANCE};
use crate::triplet::{masked_mean, Mined, MinedDistances, TripletLoss};

/// Settings of [`SosNetLoss`]; the defaults are SOSNet's published ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SosNetConfig {
    /// Margin of the first-order hinge: 1.0.
    pub margin: f64,
    /// Neighbours per side in the second-order term: 8.
    pub knn: usize,
    /// Weight of the second-order term: 1.0.
    pub sos_weight: f64,
    /// Negatives closer than this are false negatives and never mined: 0.008.
    pub false_negative_threshold: f64,
    /// Where negatives are searched: every other descriptor of the batch.
    pub mining: Mining,
    /// How distances are computed: unit-sphere shortcut, for L2-normalised descriptors.
    pub metric: Metric,
}

impl Default for SosNetConfig {
    fn default() -> Self {
        Self {
            margin: 1.0,
            knn: 8,
            sos_weight: 1.0,
            false_negative_threshold: FALSE_NEGATIVE_DISTANCE,
            mining: Mining::AllPairs,
            metric: Metric::UnitSphere,
        }
    }
}

impl SosNetConfig {
    /// Errors on a negative or non-finite margin, weight or threshold, or `knn = 0`.
    pub fn validate(&self) -> Result<()> {
        check_at_least("sosnet margin", self.margin, 0.0)?;
        check_at_least("sosnet sos_weight", self.sos_weight, 0.0)?;
        check_at_least("sosnet false_negative_threshold", self.false_negative_threshold, 0.0)?;
        if self.knn == 0 {
            return Err(config("sosnet knn must be at least 1"));
        }
        Ok(())
    }
}

/// The two terms of the SOSNet loss, unweighted.
#[derive(Clone, Debug)]
pub struct SosNetTerms {
    /// First-order similarity: `mean_i max(0, margin + d(a_i, p_i) - d_neg(i))²`.
    pub fos: Tensor,
    /// Second-order similarity: `mean_i sqrt(sum_{j in N_i} (d(a_i, a_j) - d(p_i, p_j))² + eps)`.
    pub sos: Tensor,
}

/// `fos + sos_weight * sos` (see [`SosNetTerms`]). `N_i` is the union of the `knn` nearest
/// anchors of `a_i` and the `knn` nearest positives of `p_i` (never `i`; all `N - 1` others when
/// the batch is smaller); `eps` = [`DISTANCE_EPS`] keeps the root differentiable at 0.
#[derive(Clone, Debug, Default)]
pub struct SosNetLoss {
    config: SosNetConfig,
}

impl SosNetLoss {
    /// The loss with `config`, validated.
    pub fn new(config: SosNetConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Its settings.
    pub fn config(&self) -> &SosNetConfig {
        &self.config
    }

    /// Both terms, unweighted.
    ///
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2` → two scalars
    pub fn terms(&self, batch: &PairBatch) -> Result<SosNetTerms> {
        self.terms_mined(batch, &self.mine(batch)?)
    }

    /// Both terms on the negatives and neighbours of `mined`.
    ///
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2` → two scalars
    pub fn terms_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<SosNetTerms> {
        let c = &self.config;
        let Some((of_anchors, of_positives)) = &mined.neighbours else {
            return Err(input(
                "the SOSNet loss needs the neighbours its own mining finds (SosNetLoss::mine)",
            ));
        };
        let d = MinedDistances::new(batch, &mined.negatives, c.metric)?;
        let hinge = ((&d.positive - &d.negative)? + c.margin)?.relu()?;
        let fos = masked_mean(&hinge.sqr()?, d.valid.as_ref())?;
        let sos = self.second_order(batch, NeighbourTable::new(of_anchors, of_positives))?;
        Ok(SosNetTerms { fos, sos })
    }

    /// The second-order term over the neighbour table.
    fn second_order(&self, batch: &PairBatch, neighbours: NeighbourTable) -> Result<Tensor> {
        let (a, p) = (batch.anchors(), batch.positives());
        let metric = self.config.metric;
        let da = gathered_distance(a, &neighbours.rows, &neighbours.cols, metric)?;
        let dp = gathered_distance(p, &neighbours.rows, &neighbours.cols, metric)?;
        let mask =
            Tensor::from_vec(neighbours.mask, neighbours.rows.len(), a.device())?.to_dtype(a.dtype())?;
        let squared = ((da - dp)?.sqr()? * mask)?.reshape((batch.len(), neighbours.width))?;
        Ok((squared.sum(1)? + DISTANCE_EPS)?.sqrt()?.mean_all()?)
    }
}

impl TripletLoss for SosNetLoss {
    /// # Shapes
    /// - `batch`: `(N, D)` anchors and positives, `N >= 2` → `()`
    fn loss_mined(&self, batch: &PairBatch, mined: &Mined) -> Result<Tensor> {
        let terms = self.terms_mined(batch, mined)?;
        Ok((terms.fos + (terms.sos * self.config.sos_weight)?)?)
    }

    fn mine(&self, batch: &PairBatch) -> Result<Mined> {
        let c = &self.config;
        let (negatives, of_anchors, of_positives) =
            hardest_negatives_and_neighbours(batch, c.metric, c.mining, c.false_negative_threshold, c.knn)?;
        Ok(Mined { negatives, neighbours: Some((of_anchors, of_positives)) })
    }

    fn name(&self) -> &'static str {
        "sosnet"
    }
}

/// The neighbour sets `N_i` as a `(N, width)` table in row-major order: entry `(i, slot)` is
/// the pair `(rows, cols)`, padded with `(i, i)` and mask 0 where `N_i` is smaller than `width`.
struct NeighbourTable {
    rows: Vec<u32>,
    cols: Vec<u32>,
    mask: Vec<f32>,
    width: usize,
}

impl NeighbourTable {
    fn new(of_anchors: &[Vec<u32>], of_positives: &[Vec<u32>]) -> Self {
        let sets: Vec<Vec<u32>> = of_anchors
            .iter()
            .zip(of_positives)
            .map(|(mine, other)| {
                let mut union = mine.clone();
                union.extend(other);
                union.sort_unstable();
                union.dedup();
                union
            })
            .collect();
        let width = sets.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut table = Self { rows: vec![], cols: vec![], mask: vec![], width };
        for (i, set) in sets.iter().enumerate() {
            for slot in 0..width {
                table.rows.push(i as u32);
                table.cols.push(set.get(slot).copied().unwrap_or(i as u32));
                table.mask.push(if slot < set.len() { 1.0 } else { 0.0 });
            }
        }
        table
    }
}
