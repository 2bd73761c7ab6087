//! The DesDis objective: the student's triplet loss plus the weighted teacher-student regularizer.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::error::Result;
use crate::recipe::LossConfig;
use crate::rts::{teacher_student_regularizer_on, RtsConfig};
use crate::triplet::{Mined, TripletLoss};

/// The loss of one distillation step, with its parts for logging.
#[derive(Clone, Debug)]
pub struct DistillationLoss {
    /// `triplet + lambda * rts`, the value to differentiate.
    pub total: Tensor,
    /// The student's triplet loss.
    pub triplet: Tensor,
    /// `R_ts`, unweighted.
    pub rts: Tensor,
    /// The pairs both terms were computed on, mined once on the student.
    pub mined: Mined,
}

/// `L = L_triplet(student) + lambda * R_ts(student, teacher)`.
#[derive(Debug)]
pub struct Distillation {
    pub triplet: Box<dyn TripletLoss>,
    pub rts: RtsConfig,
}

impl Distillation {
    /// The objective from a triplet loss and a validated regularizer config.
    pub fn new(triplet: Box<dyn TripletLoss>, rts: RtsConfig) -> Result<Self> {
        rts.validate()?;
        Ok(Self { triplet, rts })
    }

    /// The loss of a step. The teacher descriptors are treated as constants. The student's
    /// negatives are mined once, by the triplet loss's own rule, and the same pairs enter
    /// `R_ts`: the objective constrains the similarity of exactly the pairs it trains on.
    ///
    /// # Shapes
    /// - `student`: `(N, D_s)` anchors and positives, `N >= 2` (with raw descriptors if the
    ///   triplet loss needs them)
    /// - `teacher_anchors`, `teacher_positives`: `(N, D_t)` → three scalars
    pub fn loss(
        &self,
        student: &PairBatch,
        teacher_anchors: &Tensor,
        teacher_positives: &Tensor,
    ) -> Result<DistillationLoss> {
        let mined = self.triplet.mine(student)?;
        let triplet = self.triplet.loss_mined(student, &mined)?;
        let negatives = mined.negatives.clone();
        let rts = teacher_student_regularizer_on(
            student,
            teacher_anchors,
            teacher_positives,
            negatives,
            &self.rts,
        )?;
        let total = (&triplet + (&rts * self.rts.lambda)?)?;
        Ok(DistillationLoss { total, triplet, rts, mined })
    }
}

/// A serialisable [`Distillation`]: `{ "triplet": { "kind": "hardnet", ... }, "rts": { ... } }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillationConfig {
    /// The student's triplet loss: HardNet's by default.
    pub triplet: LossConfig,
    /// The regularizer.
    pub rts: RtsConfig,
}

impl DistillationConfig {
    /// The objective this configures, validated.
    pub fn build(&self) -> Result<Distillation> {
        Distillation::new(self.triplet.build()?, self.rts.clone())
    }
}
