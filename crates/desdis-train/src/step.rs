//! One training step: forward both nets, mine once, loss, backward, update. The trainer, the
//! benchmarks and the GPU check all run this function, so what they time is what trains.

use candle_core::Tensor;
use desdis_loss::{Distillation, PairBatch, TripletLoss};
use desdis_models::nets::Net;

use crate::optim::Optimizer;
use crate::{Error, Result};

/// The loss a run minimises.
#[derive(Debug)]
pub enum Objective {
    /// The recipe's triplet loss on the student alone.
    Plain(Box<dyn TripletLoss>),
    /// `L_triplet(student) + lambda * R_ts` against a frozen teacher.
    Distill { loss: Distillation, teacher: Box<Net> },
}

/// The logged parts of a step's loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLoss {
    /// The differentiated total.
    pub total: f32,
    /// The student's triplet loss.
    pub triplet: f32,
    /// `R_ts`, unweighted (0 without a teacher).
    pub rts: f32,
}

/// One optimizer step on a batch of pairs of patches with values in `0..1`.
///
/// The student runs in training mode, the teacher (if any) in evaluation mode with its output
/// detached. A non-finite loss stops before the update, so the weights stay usable, and a
/// non-finite weight after it ([`Optimizer::non_finite_param`]); the caller names the step.
///
/// # Shapes
/// - `anchors`, `positives`: `(N, 1, 32, 32)` in `0..1`, `N >= 2`
pub fn train_step(
    objective: &Objective,
    net: &Net,
    optimizer: &mut Optimizer,
    anchors: &Tensor,
    positives: &Tensor,
    lr: f64,
) -> Result<StepLoss> {
    let (total, triplet, rts) = step_loss(objective, net, anchors, positives)?;
    let value = total.to_scalar::<f32>()?;
    if !value.is_finite() {
        return Err(Error::Diverged { what: format!("the loss ({value})") });
    }
    let grads = total.backward()?;
    optimizer.step(&grads, lr)?;
    if let Some(name) = optimizer.non_finite_param()? {
        return Err(Error::Diverged { what: format!("weight `{name}` after the update") });
    }
    let triplet = triplet.map_or(Ok(value), |t| t.to_scalar::<f32>())?;
    let rts = rts.map_or(Ok(0.0), |t| t.to_scalar::<f32>())?;
    Ok(StepLoss { total: value, triplet, rts })
}

/// The total loss tensor, and the triplet and `R_ts` parts when they differ from it.
fn step_loss(
    objective: &Objective,
    net: &Net,
    anchors: &Tensor,
    positives: &Tensor,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    let a = net.describe_t(anchors, true)?;
    let p = net.describe_t(positives, true)?;
    let batch = PairBatch::new(a.descriptors, p.descriptors)?.with_raw(a.raw, p.raw)?;
    match objective {
        Objective::Plain(loss) => Ok((loss.loss(&batch)?, None, None)),
        Objective::Distill { loss, teacher } => {
            let ta = teacher.describe_t(anchors, false)?.descriptors.detach();
            let tp = teacher.describe_t(positives, false)?.descriptors.detach();
            let out = loss.loss(&batch, &ta, &tp)?;
            Ok((out.total, Some(out.triplet), Some(out.rts)))
        }
    }
}
