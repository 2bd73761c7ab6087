//! How the losses are wired together in a distillation step: one mining per step shared by the
//! triplet term and `R_ts`, and `R_ts` on normalised descriptors whatever the nets return.

mod common;

use anyhow::Result;
use candle_core::Tensor;
use common::{normalize, pseudo_random, scalar};
use desdis_loss::{
    teacher_student_regularizer, teacher_student_regularizer_on, Distillation, HardNetLoss, HyNetLoss,
    Mining, PairBatch, RtsConfig, RtsForm, Similarity, SosNetLoss, TfeatLoss, TripletLoss,
};

/// A batch of `n` noisy pairs of `d`-dimensional rows, unit or not.
fn noisy_pairs(n: usize, d: usize, seed: u64, unit: bool) -> Result<(Tensor, Tensor)> {
    let a = pseudo_random(n, d, seed)?;
    let p = (&a + (pseudo_random(n, d, seed + 1)? * 0.6)?)?;
    if unit {
        Ok((normalize(&a)?, normalize(&p)?))
    } else {
        // TFeat-like: tanh outputs of varied norms.
        Ok(((a * 1.7)?.tanh()?, (p * 0.9)?.tanh()?))
    }
}

#[test]
fn rts_on_unnormalised_descriptors_equals_rts_on_their_normalised_copies() -> Result<()> {
    let (sa, sp) = noisy_pairs(12, 16, 3, false)?;
    let (ta, tp) = noisy_pairs(12, 24, 7, false)?;
    let raw = PairBatch::new(sa.clone(), sp.clone())?;
    let unit = PairBatch::new(normalize(&sa)?, normalize(&sp)?)?;
    for form in [RtsForm::Abs, RtsForm::Squared, RtsForm::Hinge] {
        for similarity in [Similarity::Cosine, Similarity::NegDistance] {
            let cfg = RtsConfig { form, similarity, ..Default::default() };
            let on_raw = scalar(&teacher_student_regularizer(&raw, &ta, &tp, &cfg)?)?;
            let on_unit =
                scalar(&teacher_student_regularizer(&unit, &normalize(&ta)?, &normalize(&tp)?, &cfg)?)?;
            assert!((on_raw - on_unit).abs() < 1e-9, "{form:?} {similarity:?}: {on_raw} vs {on_unit}");
            // Scaling the raw outputs must not move it either (a raw dot product would).
            let scaled = PairBatch::new((&sa * 3.0)?, (&sp * 3.0)?)?;
            let on_scaled = scalar(&teacher_student_regularizer(&scaled, &(&ta * 0.2)?, &tp, &cfg)?)?;
            assert!((on_scaled - on_unit).abs() < 1e-9, "{form:?} {similarity:?}: scaled {on_scaled}");
        }
    }
    Ok(())
}

#[test]
fn triplet_term_and_rts_see_the_same_negatives() -> Result<()> {
    let (sa, sp) = noisy_pairs(16, 8, 11, true)?;
    let (ta, tp) = noisy_pairs(16, 8, 21, true)?;
    let batch = PairBatch::new(sa.clone(), sp.clone())?.with_raw((&sa * 2.0)?, (&sp * 0.5)?)?;
    let losses: Vec<Box<dyn TripletLoss>> = vec![
        Box::new(HardNetLoss::default()),
        Box::new(SosNetLoss::default()),
        Box::new(HyNetLoss::default()),
        Box::new(TfeatLoss::default()),
    ];
    let mut differs_from_own_mining = false;
    for triplet in losses {
        let name = triplet.name();
        let mined = triplet.mine(&batch)?;
        let distill = Distillation::new(triplet, RtsConfig::default())?;
        let out = distill.loss(&batch, &ta, &tp)?;
        assert_eq!(out.mined, mined, "{name}: the step's pairs are the triplet loss's own mining");
        let rts_on_mined =
            teacher_student_regularizer_on(&batch, &ta, &tp, mined.negatives.clone(), &RtsConfig::default())?;
        assert_eq!(scalar(&out.rts)?, scalar(&rts_on_mined)?, "{name}");
        assert_eq!(scalar(&out.triplet)?, scalar(&distill.triplet.loss_mined(&batch, &mined)?)?, "{name}");
        let own = desdis_loss::hardest_negatives(
            &batch,
            desdis_loss::Metric::UnitSphere,
            Mining::AnchorSwap,
            desdis_loss::FALSE_NEGATIVE_DISTANCE,
        )?;
        differs_from_own_mining |= own != mined.negatives;
    }
    // The batch is one where the all-pairs and shifted minings pick other pairs than R_ts's own
    // anchor-swap rule would: otherwise the test could not tell the wirings apart.
    assert!(differs_from_own_mining);
    Ok(())
}

#[test]
fn hynet_norm_term_is_not_zero_on_raw_descriptors_of_different_norms() -> Result<()> {
    let (sa, sp) = noisy_pairs(8, 16, 5, true)?;
    let with_raw = PairBatch::new(sa.clone(), sp.clone())?.with_raw((&sa * 2.0)?, (&sp * 0.5)?)?;
    let terms = HyNetLoss::default().terms(&with_raw)?;
    assert!(scalar(&terms.norm)? > 0.5, "norm term {}", scalar(&terms.norm)?);
    // Passing the unit descriptors as the raw ones (the old wiring) silences it.
    let unit_as_raw = PairBatch::new(sa.clone(), sp.clone())?.with_raw(sa, sp)?;
    assert!(scalar(&HyNetLoss::default().terms(&unit_as_raw)?.norm)? < 1e-12);
    Ok(())
}
