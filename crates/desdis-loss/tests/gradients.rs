//! Autograd gradients against central finite differences, in f64, for every loss and every
//! regularizer form; and the fast paths against the plain ones.

mod common;

use anyhow::Result;
use candle_core::{Tensor, Var};
use common::{gradient_error, inputs, normalize, pseudo_random, scalar};
use desdis_loss::*;

/// Central differences of step 1e-6 in f64 agree with exact gradients to about 1e-9; a wrong
/// gradient term shows up at 1e-3 or more.
const FD_TOL: f64 = 1e-6;

fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<()> {
    let err = gradient_error(inputs, f)?;
    assert!(err < FD_TOL, "{name}: worst gradient error {err:e}");
    Ok(())
}

fn triplet_loss_gradient(name: &str, loss: Box<dyn TripletLoss>, raw: bool) -> Result<()> {
    let x = inputs()?;
    let (a, p) = if raw { (x.raw_anchors, x.raw_positives) } else { (x.anchors, x.positives) };
    check(name, &[a, p], |t| Ok(loss.loss(&PairBatch::new(t[0].clone(), t[1].clone())?)?))
}

#[test]
fn hardnet_gradient() -> Result<()> {
    triplet_loss_gradient("hardnet", LossKind::HardNet.build()?, false)
}

#[test]
fn sosnet_gradient() -> Result<()> {
    // The main fixture has neighbours 2e-3 apart, where sqrt(x + eps) curves too sharply for
    // finite differences; the smooth pairs keep every distance above 0.05.
    let x = inputs()?;
    let loss = SosNetLoss::default();
    check("sosnet", &[x.smooth_anchors, x.smooth_positives], |t| {
        Ok(loss.loss(&PairBatch::new(t[0].clone(), t[1].clone())?)?)
    })
}

#[test]
fn tfeat_gradient_both_negative_kinds() -> Result<()> {
    triplet_loss_gradient("tfeat shifted", LossKind::TFeat.build()?, true)?;
    let hardest = TfeatLoss::new(TfeatConfig { negatives: TfeatNegatives::Hardest, ..Default::default() })?;
    triplet_loss_gradient("tfeat hardest", Box::new(hardest), true)
}

#[test]
fn hynet_gradient_includes_raw_descriptors() -> Result<()> {
    let x = inputs()?;
    let loss = HyNetLoss::default();
    check("hynet", &[x.anchors, x.positives, x.raw_anchors, x.raw_positives], |t| {
        let batch = PairBatch::new(t[0].clone(), t[1].clone())?.with_raw(t[2].clone(), t[3].clone())?;
        Ok(loss.loss(&batch)?)
    })
}

#[test]
fn every_rts_form_and_similarity_gradient() -> Result<()> {
    let x = inputs()?;
    for form in [RtsForm::Abs, RtsForm::Squared, RtsForm::Hinge] {
        for similarity in [Similarity::Cosine, Similarity::NegDistance] {
            let config = RtsConfig { form, similarity, ..Default::default() };
            check(&format!("rts {form:?} {similarity:?}"), &[x.anchors.clone(), x.positives.clone()], |t| {
                let batch = PairBatch::new(t[0].clone(), t[1].clone())?;
                Ok(teacher_student_regularizer(&batch, &x.teacher_anchors, &x.teacher_positives, &config)?)
            })?;
        }
    }
    Ok(())
}

#[test]
fn distillation_gradient_and_frozen_teacher() -> Result<()> {
    let x = inputs()?;
    let objective = DistillationConfig::default().build()?;
    check("distillation", &[x.anchors.clone(), x.positives.clone()], |t| {
        Ok(objective
            .loss(&PairBatch::new(t[0].clone(), t[1].clone())?, &x.teacher_anchors, &x.teacher_positives)?
            .total)
    })?;
    // The teacher is frozen: even tracked teacher descriptors receive no gradient.
    let teacher = Var::from_tensor(&x.teacher_anchors)?;
    let batch = PairBatch::new(x.anchors.clone(), x.positives.clone())?;
    let grads = objective.loss(&batch, teacher.as_tensor(), &x.teacher_positives)?.total.backward()?;
    assert!(grads.get(teacher.as_tensor()).is_none(), "the teacher got a gradient");
    Ok(())
}

/// A random unit batch of `n` pairs whose positives are noisy copies of the anchors.
fn random_unit_batch(n: usize, d: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let a = pseudo_random(n, d, seed)?;
    let p = (&a + (pseudo_random(n, d, seed + 1)? * 0.6)?)?;
    Ok((normalize(&a)?, normalize(&p)?))
}

#[test]
fn mined_hardnet_equals_dense_hardnet_in_value_and_gradient() -> Result<()> {
    let (a, p) = random_unit_batch(64, 16, 7)?;
    let (va, vp) = (Var::from_tensor(&a)?, Var::from_tensor(&p)?);
    let batch = PairBatch::new(va.as_tensor().clone(), vp.as_tensor().clone())?;
    let fast = HardNetLoss::default().loss(&batch)?;
    let fast_grads = fast.backward()?;
    for backend in [DistanceBackend::Plain, DistanceBackend::Fused] {
        let dense = hardnet_dense(&batch, &HardNetConfig::default(), backend)?;
        assert!((scalar(&dense)? - scalar(&fast)?).abs() < 1e-12, "{backend:?}: values differ");
        let dense_grads = dense.backward()?;
        for v in [&va, &vp] {
            let diff = (dense_grads.get(v).unwrap() - fast_grads.get(v).unwrap())?.abs()?.max_all()?;
            assert!(scalar(&diff)? < 1e-12, "{backend:?}: gradients differ by {}", scalar(&diff)?);
        }
    }
    Ok(())
}

#[test]
fn fused_pairwise_distance_equals_plain_in_value_and_gradient() -> Result<()> {
    let x = pseudo_random(9, 5, 3)?;
    let y = pseudo_random(7, 5, 4)?;
    let weights = pseudo_random(9, 7, 5)?;
    for metric in [Metric::UnitSphere, Metric::Euclidean] {
        let (x, y) = match metric {
            Metric::UnitSphere => (normalize(&x)?, normalize(&y)?),
            Metric::Euclidean => (x.clone(), y.clone()),
        };
        let (vx, vy) = (Var::from_tensor(&x)?, Var::from_tensor(&y)?);
        let fused = pairwise_distance(vx.as_tensor(), vy.as_tensor(), metric)?;
        let plain = pairwise_distance_plain(vx.as_tensor(), vy.as_tensor(), metric)?;
        assert!(scalar(&(&fused - &plain)?.abs()?.max_all()?)? < 1e-12, "{metric:?}: values differ");
        let gf = (fused * &weights)?.sum_all()?.backward()?;
        let gp = (plain * &weights)?.sum_all()?.backward()?;
        for v in [&vx, &vy] {
            let diff = (gf.get(v).unwrap() - gp.get(v).unwrap())?.abs()?.max_all()?;
            assert!(scalar(&diff)? < 1e-12, "{metric:?}: gradients differ by {}", scalar(&diff)?);
        }
        // And both against finite differences.
        check(&format!("fused distance {metric:?}"), &[x.clone(), y.clone()], |t| {
            Ok((pairwise_distance(&t[0], &t[1], metric)? * &weights)?.sum_all()?)
        })?;
    }
    Ok(())
}

#[test]
fn fused_distance_of_a_matrix_with_itself_gets_both_gradient_halves() -> Result<()> {
    let x = normalize(&pseudo_random(6, 4, 11)?)?;
    let weights = pseudo_random(6, 6, 12)?;
    check("fused self-distance", &[x], |t| {
        Ok((pairwise_distance(&t[0], &t[0], Metric::Euclidean)? * &weights)?.sum_all()?)
    })
}

#[test]
fn fused_pairwise_distance_runs_in_f32() -> Result<()> {
    let x = normalize(&pseudo_random(33, 7, 21)?)?;
    let y = normalize(&pseudo_random(17, 7, 22)?)?;
    let f32_of = |t: &Tensor| t.to_dtype(candle_core::DType::F32);
    let fused = pairwise_distance(&f32_of(&x)?, &f32_of(&y)?, Metric::UnitSphere)?;
    let exact = pairwise_distance_plain(&x, &y, Metric::UnitSphere)?;
    let diff = (fused.to_dtype(candle_core::DType::F64)? - exact)?.abs()?.max_all()?;
    assert!(scalar(&diff)? < 1e-5, "f32 fused distances off by {}", scalar(&diff)?);
    Ok(())
}
