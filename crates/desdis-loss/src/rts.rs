//! The DesDis teacher-student regularizer `R_ts`: on the same positive pairs and the same hardest
//! negative pairs, the student's similarity should not stray from the frozen teacher's.
//!
//! Both sides are L2-normalised here, whatever the nets return: TFeat and L2-Net do not end in a
//! unit-norm layer, and on their raw outputs a "cosine" would be a scaled dot product and the
//! unit-sphere distance meaningless. For nets that already normalise this changes nothing.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::{check_matrix_pair, PairBatch};
use crate::distance::{gathered, gathered_distance, paired_distance, paired_dot, Metric};
use crate::error::{check_at_least, input, Result};
use crate::mining::{hardest_negatives, Mining, Negatives, FALSE_NEGATIVE_DISTANCE};
use crate::triplet::validity_mask;
use desdis_kernels::gather::PairMeasure;

/// How a gap between student and teacher similarity is penalised, per pair `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RtsForm {
    /// `|s_p - t_p| + |s_n - t_n|`: stay close to the teacher, both ways.
    #[default]
    Abs,
    /// `(s_p - t_p)² + (s_n - t_n)²`: as `Abs`, but lenient on small gaps and harsh on large ones.
    Squared,
    /// `max(0, t_p - s_p) + max(0, s_n - t_n)`: penalise the student only where it does worse than
    /// its teacher (less similar positives, more similar negatives).
    Hinge,
}

/// Which similarity of two unit descriptors `x`, `y` the regularizer compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// `x·y`, the cosine of unit vectors, in `[-1, 1]`.
    #[default]
    Cosine,
    /// `-d(x, y)` with the unit-sphere distance, in about `[-2, 0]`.
    NegDistance,
}

/// Settings of the regularizer. `lambda` = 0.1 was chosen by an ablation on the tuning sequence
/// (see `docs/losses.md`); form and similarity keep the literal reading (`abs`, cosine), which
/// that ablation did not overturn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtsConfig {
    /// The penalty: `abs`.
    pub form: RtsForm,
    /// The similarity compared: `cosine`.
    pub similarity: Similarity,
    /// Weight of `R_ts` in the total loss: 0.1 (chosen by the ablation in `docs/losses.md`).
    pub lambda: f64,
    /// False-negative threshold of the student's negative mining: 0.008, as HardNet.
    pub false_negative_threshold: f64,
}

impl Default for RtsConfig {
    fn default() -> Self {
        Self {
            form: RtsForm::Abs,
            similarity: Similarity::Cosine,
            lambda: 0.1,
            false_negative_threshold: FALSE_NEGATIVE_DISTANCE,
        }
    }
}

impl RtsConfig {
    /// Errors on a negative or non-finite `lambda` or threshold.
    pub fn validate(&self) -> Result<()> {
        check_at_least("rts lambda", self.lambda, 0.0)?;
        check_at_least("rts false_negative_threshold", self.false_negative_threshold, 0.0)
    }
}

/// Student and teacher similarities on the same index pairs.
#[derive(Clone, Debug)]
pub struct PairSimilarities {
    /// `s_p`: the student's similarity of `(a_i, p_i)`, `(N,)`.
    pub student_positive: Tensor,
    /// `s_n`: the student's similarity of its hardest negative pair, `(N,)`.
    pub student_negative: Tensor,
    /// `t_p`: the teacher's similarity of `(a_i, p_i)`, `(N,)`, detached.
    pub teacher_positive: Tensor,
    /// `t_n`: the teacher's similarity of the student's negative pair, `(N,)`, detached.
    pub teacher_negative: Tensor,
    /// The negative pairs, mined on the student as HardNet mines (anchor swap).
    pub negatives: Negatives,
}

/// The similarities `R_ts` compares, on negatives mined from the normalised student as HardNet
/// mines (anchor swap). The teacher descriptors are detached (the teacher is frozen) and
/// converted to the student's dtype and device; their length may differ from the student's.
///
/// # Shapes
/// - `student`: `(N, D_s)` anchors and positives, `N >= 2`
/// - `teacher_anchors`, `teacher_positives`: `(N, D_t)` → four `(N,)` tensors
pub fn pair_similarities(
    student: &PairBatch,
    teacher_anchors: &Tensor,
    teacher_positives: &Tensor,
    config: &RtsConfig,
) -> Result<PairSimilarities> {
    let unit = PairBatch::new(unit_rows(student.anchors())?, unit_rows(student.positives())?)?;
    let negatives =
        hardest_negatives(&unit, Metric::UnitSphere, Mining::AnchorSwap, config.false_negative_threshold)?;
    pair_similarities_on(student, teacher_anchors, teacher_positives, negatives, config)
}

/// [`pair_similarities`] on given negative pairs (those the student's triplet loss mined).
///
/// # Shapes
/// - `student`: `(N, D_s)` anchors and positives, `N >= 2`; `negatives`: `N` pairs
/// - `teacher_anchors`, `teacher_positives`: `(N, D_t)` → four `(N,)` tensors
pub fn pair_similarities_on(
    student: &PairBatch,
    teacher_anchors: &Tensor,
    teacher_positives: &Tensor,
    negatives: Negatives,
    config: &RtsConfig,
) -> Result<PairSimilarities> {
    student.require_negatives()?;
    if negatives.len() != student.len() {
        return Err(input(format!(
            "{} negative pairs for a batch of {} pairs",
            negatives.len(),
            student.len()
        )));
    }
    let (ta, tp) = teacher_like_student(student, teacher_anchors, teacher_positives)?;
    let (sa, sp) = (unit_rows(student.anchors())?, unit_rows(student.positives())?);
    let (student_positive, student_negative) = similarities(&sa, &sp, &negatives, config.similarity)?;
    let (teacher_positive, teacher_negative) =
        similarities(&unit_rows(&ta)?, &unit_rows(&tp)?, &negatives, config.similarity)?;
    Ok(PairSimilarities { student_positive, student_negative, teacher_positive, teacher_negative, negatives })
}

/// Rows scaled to unit length (differentiable; a zero row stays near zero).
///
/// # Shapes
/// - `x`: `(N, D)` → `(N, D)`
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(1)?.sqrt()? + UNIT_EPS)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Keeps [`unit_rows`] finite on a zero row; far below any real descriptor's norm.
const UNIT_EPS: f64 = 1e-12;

/// `R_ts = mean_i [pos_i + neg_i]` with the two penalties of `config.form`; a pair without a
/// valid negative contributes only its positive penalty. Unweighted: `lambda` is applied by
/// [`crate::Distillation`].
///
/// # Shapes
/// - `student`: `(N, D_s)` anchors and positives, `N >= 2`
/// - `teacher_anchors`, `teacher_positives`: `(N, D_t)` → `()`
pub fn teacher_student_regularizer(
    student: &PairBatch,
    teacher_anchors: &Tensor,
    teacher_positives: &Tensor,
    config: &RtsConfig,
) -> Result<Tensor> {
    config.validate()?;
    regularizer_of(&pair_similarities(student, teacher_anchors, teacher_positives, config)?, config)
}

/// [`teacher_student_regularizer`] on given negative pairs: those the student's triplet loss
/// mined this step, so both terms constrain the same pairs.
///
/// # Shapes
/// - `student`: `(N, D_s)` anchors and positives, `N >= 2`; `negatives`: `N` pairs
/// - `teacher_anchors`, `teacher_positives`: `(N, D_t)` → `()`
pub fn teacher_student_regularizer_on(
    student: &PairBatch,
    teacher_anchors: &Tensor,
    teacher_positives: &Tensor,
    negatives: Negatives,
    config: &RtsConfig,
) -> Result<Tensor> {
    config.validate()?;
    let s = pair_similarities_on(student, teacher_anchors, teacher_positives, negatives, config)?;
    regularizer_of(&s, config)
}

/// `mean_i [pos_i + neg_i]` of the similarity gaps in `s`.
fn regularizer_of(s: &PairSimilarities, config: &RtsConfig) -> Result<Tensor> {
    let positive_gap = (&s.student_positive - &s.teacher_positive)?;
    let negative_gap = (&s.student_negative - &s.teacher_negative)?;
    let (pos, mut neg) = match config.form {
        RtsForm::Abs => (positive_gap.abs()?, negative_gap.abs()?),
        RtsForm::Squared => (positive_gap.sqr()?, negative_gap.sqr()?),
        // Worse positive: the student's similarity is below the teacher's; worse negative: above.
        RtsForm::Hinge => (positive_gap.neg()?.relu()?, negative_gap.relu()?),
    };
    if let Some(mask) = validity_mask(&s.negatives, &neg)? {
        neg = (neg * mask)?;
    }
    Ok((pos + neg)?.mean_all()?)
}

/// The teacher descriptors, detached, checked against the student batch, on its dtype and device.
fn teacher_like_student(student: &PairBatch, ta: &Tensor, tp: &Tensor) -> Result<(Tensor, Tensor)> {
    check_matrix_pair("teacher anchors", ta, "teacher positives", tp)?;
    if ta.dims() != tp.dims() || ta.dim(0)? != student.len() {
        return Err(input(format!(
            "teacher anchors {:?} and positives {:?} must both be ({}, D_t) like the student batch",
            ta.dims(),
            tp.dims(),
            student.len()
        )));
    }
    let like = student.anchors();
    let convert =
        |t: &Tensor| -> Result<Tensor> { Ok(t.detach().to_device(like.device())?.to_dtype(like.dtype())?) };
    Ok((convert(ta)?, convert(tp)?))
}

/// The positive and negative similarities of one network's descriptors.
fn similarities(
    a: &Tensor,
    p: &Tensor,
    negatives: &Negatives,
    similarity: Similarity,
) -> Result<(Tensor, Tensor)> {
    let pool = Tensor::cat(&[a, p], 0)?;
    let (positive, negative) = match similarity {
        Similarity::Cosine => {
            (paired_dot(a, p)?, gathered(&pool, &negatives.left, &negatives.right, PairMeasure::Dot)?)
        }
        Similarity::NegDistance => (
            paired_distance(a, p, Metric::UnitSphere)?.neg()?,
            gathered_distance(&pool, &negatives.left, &negatives.right, Metric::UnitSphere)?.neg()?,
        ),
    };
    Ok((positive, negative))
}
