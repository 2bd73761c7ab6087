//! Every loss against the independent float64 numpy reference of
//! `tests/fixtures/loss/make_fixtures.py`, to a relative 1e-6 (computed here in f64).

mod common;

use anyhow::Result;
use common::{assert_rel, expected_f64, expected_indices, inputs, scalar};
use desdis_loss::*;

const REL: f64 = 1e-6;

fn fixture_batch() -> Result<PairBatch> {
    let x = inputs()?;
    Ok(PairBatch::new(x.anchors, x.positives)?.with_raw(x.raw_anchors, x.raw_positives)?)
}

fn raw_batch() -> Result<PairBatch> {
    let x = inputs()?;
    Ok(PairBatch::new(x.raw_anchors, x.raw_positives)?)
}

#[test]
fn hardnet_matches_reference() -> Result<()> {
    let batch = fixture_batch()?;
    let loss = HardNetLoss::default().loss(&batch)?;
    assert_rel(scalar(&loss)?, expected_f64(&["hardnet"])?, REL, "hardnet");
    let row_only = HardNetLoss::new(HardNetConfig { mining: Mining::AnchorOnly, ..Default::default() })?;
    assert_rel(scalar(&row_only.loss(&batch)?)?, expected_f64(&["hardnet_anchor_only"])?, REL, "anchor only");
    let no_threshold =
        HardNetLoss::new(HardNetConfig { false_negative_threshold: 0.0, ..Default::default() })?;
    assert_rel(scalar(&no_threshold.loss(&batch)?)?, expected_f64(&["hardnet_no_threshold"])?, REL, "thr 0");
    Ok(())
}

#[test]
fn dense_hardnet_matches_reference_with_both_kernels() -> Result<()> {
    let batch = fixture_batch()?;
    for backend in [DistanceBackend::Plain, DistanceBackend::Fused] {
        let loss = hardnet_dense(&batch, &HardNetConfig::default(), backend)?;
        assert_rel(scalar(&loss)?, expected_f64(&["hardnet"])?, REL, &format!("dense {backend:?}"));
    }
    Ok(())
}

#[test]
fn mined_negatives_match_reference() -> Result<()> {
    let batch = fixture_batch()?;
    let cases = [
        ("hardnet_negatives", Mining::AnchorSwap, FALSE_NEGATIVE_DISTANCE),
        ("hardnet_negatives_no_threshold", Mining::AnchorSwap, 0.0),
        ("all_pairs_negatives", Mining::AllPairs, FALSE_NEGATIVE_DISTANCE),
    ];
    for (key, mining, threshold) in cases {
        let got = hardest_negatives(&batch, Metric::UnitSphere, mining, threshold)?;
        assert_eq!(got.left, expected_indices(&[key, "left"])?, "{key}: left");
        assert_eq!(got.right, expected_indices(&[key, "right"])?, "{key}: right");
        assert!(got.all_valid(), "{key}: every pair has a negative");
    }
    Ok(())
}

#[test]
fn sosnet_matches_reference() -> Result<()> {
    let terms = SosNetLoss::default().terms(&fixture_batch()?)?;
    assert_rel(scalar(&terms.fos)?, expected_f64(&["sosnet", "fos"])?, REL, "sosnet fos");
    assert_rel(scalar(&terms.sos)?, expected_f64(&["sosnet", "sos"])?, REL, "sosnet sos");
    let total = SosNetLoss::default().loss(&fixture_batch()?)?;
    assert_rel(scalar(&total)?, expected_f64(&["sosnet", "total"])?, REL, "sosnet total");
    Ok(())
}

#[test]
fn sosnet_matches_reference_on_smooth_pairs() -> Result<()> {
    let x = inputs()?;
    let terms = SosNetLoss::default().terms(&PairBatch::new(x.smooth_anchors, x.smooth_positives)?)?;
    assert_rel(scalar(&terms.fos)?, expected_f64(&["smooth", "sosnet", "fos"])?, REL, "smooth fos");
    assert_rel(scalar(&terms.sos)?, expected_f64(&["smooth", "sosnet", "sos"])?, REL, "smooth sos");
    Ok(())
}

#[test]
fn hynet_matches_reference() -> Result<()> {
    let terms = HyNetLoss::default().terms(&fixture_batch()?)?;
    assert_rel(scalar(&terms.triplet)?, expected_f64(&["hynet", "triplet"])?, REL, "hynet triplet");
    assert_rel(scalar(&terms.norm)?, expected_f64(&["hynet", "norm"])?, REL, "hynet norm");
    let total = HyNetLoss::default().loss(&fixture_batch()?)?;
    assert_rel(scalar(&total)?, expected_f64(&["hynet", "total"])?, REL, "hynet total");
    Ok(())
}

#[test]
fn tfeat_matches_reference() -> Result<()> {
    let shifted = TfeatLoss::default().loss(&raw_batch()?)?;
    assert_rel(scalar(&shifted)?, expected_f64(&["tfeat_shifted"])?, REL, "tfeat shifted");
    let hardest = TfeatLoss::new(TfeatConfig { negatives: TfeatNegatives::Hardest, ..Default::default() })?;
    assert_rel(
        scalar(&hardest.loss(&raw_batch()?)?)?,
        expected_f64(&["tfeat_hardest"])?,
        REL,
        "tfeat hardest",
    );
    Ok(())
}

#[test]
fn every_rts_form_and_similarity_matches_reference() -> Result<()> {
    let x = inputs()?;
    let batch = fixture_batch()?;
    for (form, form_name) in [(RtsForm::Abs, "abs"), (RtsForm::Squared, "squared"), (RtsForm::Hinge, "hinge")]
    {
        for (similarity, sim_name) in
            [(Similarity::Cosine, "cosine"), (Similarity::NegDistance, "neg_distance")]
        {
            let config = RtsConfig { form, similarity, ..Default::default() };
            let rts = teacher_student_regularizer(&batch, &x.teacher_anchors, &x.teacher_positives, &config)?;
            let key = format!("{form_name}_{sim_name}");
            assert_rel(scalar(&rts)?, expected_f64(&["rts", &key])?, REL, &key);
        }
    }
    Ok(())
}

#[test]
fn default_distillation_matches_reference() -> Result<()> {
    let x = inputs()?;
    let loss = DistillationConfig::default().build()?.loss(
        &fixture_batch()?,
        &x.teacher_anchors,
        &x.teacher_positives,
    )?;
    assert_rel(scalar(&loss.triplet)?, expected_f64(&["distillation_default", "triplet"])?, REL, "triplet");
    assert_rel(scalar(&loss.rts)?, expected_f64(&["distillation_default", "rts"])?, REL, "rts");
    assert_rel(scalar(&loss.total)?, expected_f64(&["distillation_default", "total"])?, REL, "total");
    Ok(())
}

#[test]
fn f32_descriptors_agree_with_f64() -> Result<()> {
    let x = inputs()?;
    let f32_batch = PairBatch::new(
        x.anchors.to_dtype(candle_core::DType::F32)?,
        x.positives.to_dtype(candle_core::DType::F32)?,
    )?;
    for kind in [LossKind::HardNet, LossKind::SosNet] {
        let got = scalar(&kind.build()?.loss(&f32_batch)?)?;
        let want = scalar(&kind.build()?.loss(&fixture_batch()?)?)?;
        assert_rel(got, want, 1e-5, &format!("{kind} in f32"));
    }
    Ok(())
}
