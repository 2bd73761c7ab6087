//! The DesDis objective: the student's triplet loss plus the weighted teacher-student regularizer.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::PairBatch;
use crate::error::Result;
use crate::recipe::LossConfig;
use crate::rts::{teacher_student_regularizer, RtsConfig};
use crate::triplet::TripletLoss;

/// The loss of one distillation step, with its parts for logging.
#[derive(Clone, Debug)]
pub struct DistillationLoss {
    /// `triplet + lambda * rts`, the value to differentiate.
    pub total: Tensor,
    /// The student's triplet loss.
    pub triplet: Tensor,
    /// `R_ts`, unweighted.
    pub rts: Tensor,
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

    /// The loss of a step. The teacher descriptors are treated as constants.
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
        let triplet = self.triplet.loss(student)?;
        let rts = teacher_student_regularizer(student, teacher_anchors, teacher_positives, &self.rts)?;
        let total = (&triplet + (&rts * self.rts.lambda)?)?;
        Ok(DistillationLoss { total, triplet, rts })
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
