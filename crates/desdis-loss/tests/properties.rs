//! Properties every loss must keep, whatever the inputs: mining never picks the positive, the
//! false-negative threshold works, the regularizer vanishes where it should, nothing turns NaN
//! at distance 0, and bad input is an error rather than a panic.

mod common;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use common::{all_finite, inputs, normalize, pseudo_random, scalar};
use desdis_loss::*;

/// `n` pairs of identical one-hot descriptors: every positive at distance 0, every negative at
/// `sqrt(2)`.
fn one_hot_pairs(n: usize) -> Result<(Tensor, Tensor)> {
    let eye = Tensor::eye(n, DType::F64, &Device::Cpu)?;
    Ok((eye.clone(), eye))
}

fn assert_never_the_positive(negatives: &Negatives, n: u32, what: &str) {
    for i in 0..n {
        if !negatives.valid[i as usize] {
            continue;
        }
        let pair = (negatives.left[i as usize], negatives.right[i as usize]);
        assert!(pair != (i, n + i) && pair != (n + i, i), "{what}: pair {i} mined its own positive");
        assert!(pair.0 != pair.1, "{what}: pair {i} mined a descriptor against itself");
        assert!([i, n + i].contains(&pair.0), "{what}: pair {i} mined {pair:?}, not one of its own");
    }
}

#[test]
fn hardest_negative_is_never_the_positive() -> Result<()> {
    // Positives identical to their anchors are the closest of all candidates: exclusion by
    // index, not by distance, must keep them out.
    let a = normalize(&pseudo_random(40, 6, 1)?)?;
    let batch = PairBatch::new(a.clone(), a)?;
    for mining in [Mining::AnchorOnly, Mining::AnchorSwap, Mining::AllPairs] {
        let negatives = hardest_negatives(&batch, Metric::UnitSphere, mining, 0.0)?;
        assert!(negatives.all_valid());
        assert_never_the_positive(&negatives, 40, &format!("{mining:?}"));
    }
    let shifted = shifted_negatives(&batch, Metric::Euclidean, true, 0.0)?;
    assert_never_the_positive(&shifted, 40, "shifted");
    Ok(())
}

#[test]
fn false_negative_threshold_excludes_near_duplicates() -> Result<()> {
    let x = inputs()?;
    let batch = PairBatch::new(x.anchors, x.positives)?;
    let n = batch.len() as u32;
    // The fixture plants anchor 5 next to positive 9: mined without a threshold, skipped with it.
    let without = hardest_negatives(&batch, Metric::UnitSphere, Mining::AnchorSwap, 0.0)?;
    assert_eq!((without.left[5], without.right[5]), (5, n + 9));
    let with = hardest_negatives(&batch, Metric::UnitSphere, Mining::AnchorSwap, FALSE_NEGATIVE_DISTANCE)?;
    assert_ne!((with.left[5], with.right[5]), (5, n + 9));
    let chosen = paired_distance(
        &batch.anchors().get(with.left[5] as usize)?.unsqueeze(0)?,
        &batch.positives().get((with.right[5] - n) as usize)?.unsqueeze(0)?,
        Metric::UnitSphere,
    )?;
    assert!(scalar(&chosen.squeeze(0)?)? >= FALSE_NEGATIVE_DISTANCE);
    Ok(())
}

#[test]
fn a_batch_of_duplicates_has_no_negatives_and_zero_loss() -> Result<()> {
    // Every descriptor the same: every candidate is a false negative.
    let row = normalize(&pseudo_random(1, 5, 3)?)?;
    let same = row.broadcast_as((6, 5))?.contiguous()?;
    let batch = PairBatch::new(same.clone(), same)?;
    let negatives = hardest_negatives(&batch, Metric::UnitSphere, Mining::AllPairs, FALSE_NEGATIVE_DISTANCE)?;
    assert!(negatives.valid.iter().all(|v| !v));
    for kind in [LossKind::HardNet, LossKind::SosNet] {
        let loss = kind.build()?.loss(&batch)?;
        assert!(scalar(&loss)?.abs() < 1e-2, "{kind}: loss {}", scalar(&loss)?);
    }
    assert_eq!(scalar(&HardNetLoss::default().loss(&batch)?)?, 0.0);
    Ok(())
}

#[test]
fn well_separated_pairs_have_zero_hardnet_loss() -> Result<()> {
    // d_p ~ 0.001, every negative at sqrt(2) > margin + d_p.
    let (a, p) = one_hot_pairs(5)?;
    assert_eq!(scalar(&HardNetLoss::default().loss(&PairBatch::new(a, p)?)?)?, 0.0);
    Ok(())
}

#[test]
fn rts_vanishes_when_student_equals_teacher() -> Result<()> {
    let x = inputs()?;
    let batch = PairBatch::new(x.anchors.clone(), x.positives.clone())?;
    for form in [RtsForm::Abs, RtsForm::Squared, RtsForm::Hinge] {
        for similarity in [Similarity::Cosine, Similarity::NegDistance] {
            let config = RtsConfig { form, similarity, ..Default::default() };
            let rts = teacher_student_regularizer(&batch, &x.anchors, &x.positives, &config)?;
            assert_eq!(scalar(&rts)?, 0.0, "{form:?} {similarity:?}");
        }
    }
    Ok(())
}

#[test]
fn hinge_rts_vanishes_when_the_student_is_better_everywhere() -> Result<()> {
    // Student: identical one-hot pairs, the best possible (s_p maximal, s_n = cos 90°).
    // Teacher: every descriptor leans on a shared direction, so its positives are less and its
    // negatives more similar than the student's.
    let n = 6;
    let (a, p) = one_hot_pairs(n)?;
    let batch = PairBatch::new(a, p)?;
    let shared = Tensor::ones((n, n), DType::F64, &Device::Cpu)?;
    let ta = normalize(&(&shared + pseudo_random(n, n, 8)?)?)?;
    let tp = normalize(&(&shared + pseudo_random(n, n, 9)?)?)?;
    for similarity in [Similarity::Cosine, Similarity::NegDistance] {
        let hinge = RtsConfig { form: RtsForm::Hinge, similarity, ..Default::default() };
        assert_eq!(scalar(&teacher_student_regularizer(&batch, &ta, &tp, &hinge)?)?, 0.0, "{similarity:?}");
        // The two-sided forms still see the gap: the construction is not trivially zero.
        let abs = RtsConfig { form: RtsForm::Abs, similarity, ..Default::default() };
        assert!(scalar(&teacher_student_regularizer(&batch, &ta, &tp, &abs)?)? > 0.1, "{similarity:?}");
    }
    Ok(())
}

/// Values and gradients of `f` at `inputs` are all finite.
fn assert_finite_with_gradients(
    what: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<candle_core::Result<_>>()?;
    let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let loss = f(&tracked)?;
    assert!(all_finite(&loss)?, "{what}: loss {loss}");
    let grads = loss.backward()?;
    for v in &vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            assert!(all_finite(g)?, "{what}: non-finite gradient");
        }
    }
    Ok(())
}

#[test]
fn identical_descriptors_give_finite_values_and_gradients() -> Result<()> {
    // Anchors equal their positives, and pairs 0 and 1 are the same point too.
    let distinct = normalize(&pseudo_random(9, 4, 5)?)?;
    let a = Tensor::cat(&[&distinct.narrow(0, 0, 1)?, &distinct], 0)?;
    let zeros = Tensor::zeros((10, 4), DType::F64, &Device::Cpu)?;
    let all_losses: Vec<(&str, Box<dyn TripletLoss>)> =
        LossKind::ALL.iter().map(|k| (k.as_str(), k.build().unwrap())).collect();
    for (name, loss) in &all_losses {
        // Raw descriptors of zero norm as well: the norm term's root sits at 0.
        assert_finite_with_gradients(name, &[a.clone(), a.clone(), zeros.clone(), zeros.clone()], |t| {
            let batch = PairBatch::new(t[0].clone(), t[1].clone())?.with_raw(t[2].clone(), t[3].clone())?;
            Ok(loss.loss(&batch)?)
        })?;
    }
    for backend in [DistanceBackend::Plain, DistanceBackend::Fused] {
        assert_finite_with_gradients("dense hardnet", &[a.clone(), a.clone()], |t| {
            Ok(hardnet_dense(
                &PairBatch::new(t[0].clone(), t[1].clone())?,
                &HardNetConfig::default(),
                backend,
            )?)
        })?;
    }
    for form in [RtsForm::Abs, RtsForm::Squared, RtsForm::Hinge] {
        for similarity in [Similarity::Cosine, Similarity::NegDistance] {
            let config = RtsConfig { form, similarity, ..Default::default() };
            assert_finite_with_gradients("rts", &[a.clone(), a.clone()], |t| {
                Ok(teacher_student_regularizer(
                    &PairBatch::new(t[0].clone(), t[1].clone())?,
                    &a,
                    &a,
                    &config,
                )?)
            })?;
        }
    }
    Ok(())
}

#[test]
fn bad_shapes_are_errors() -> Result<()> {
    let cpu = &Device::Cpu;
    let m = |r: usize, c: usize| Tensor::zeros((r, c), DType::F32, cpu);
    assert!(PairBatch::new(m(4, 8)?, m(4, 7)?).is_err(), "different D");
    assert!(PairBatch::new(m(4, 8)?, m(3, 8)?).is_err(), "different N");
    assert!(
        PairBatch::new(Tensor::zeros(8, DType::F32, cpu)?, Tensor::zeros(8, DType::F32, cpu)?).is_err(),
        "rank 1"
    );
    assert!(PairBatch::new(m(0, 8)?, m(0, 8)?).is_err(), "empty");
    assert!(PairBatch::new(m(4, 8)?, m(4, 8)?.to_dtype(DType::F64)?).is_err(), "mixed dtypes");
    let ints = Tensor::zeros((4, 8), DType::U32, cpu)?;
    assert!(PairBatch::new(ints.clone(), ints).is_err(), "integers");
    assert!(PairBatch::new(m(4, 8)?, m(4, 8)?)?.with_raw(m(3, 8)?, m(3, 8)?).is_err(), "raw N");
    assert!(pairwise_distance(&m(4, 8)?, &m(4, 7)?, Metric::UnitSphere).is_err());
    assert!(paired_distance(&m(4, 8)?, &m(3, 8)?, Metric::Euclidean).is_err());

    let single = PairBatch::new(m(1, 8)?, m(1, 8)?)?;
    for kind in LossKind::ALL {
        assert!(kind.build()?.loss(&single).is_err(), "{kind}: one pair has no negatives");
    }
    let batch = PairBatch::new(m(4, 8)?, m(4, 8)?)?;
    assert!(HyNetLoss::default().loss(&batch).is_err(), "hynet without raw descriptors");
    let rts = RtsConfig::default();
    assert!(teacher_student_regularizer(&batch, &m(5, 8)?, &m(5, 8)?, &rts).is_err(), "teacher N");
    assert!(teacher_student_regularizer(&batch, &m(4, 8)?, &m(4, 9)?, &rts).is_err(), "teacher shapes");
    // A teacher of another length and dtype is fine.
    let teacher = Tensor::zeros((4, 16), DType::F64, cpu)?;
    assert!(teacher_student_regularizer(&batch, &teacher, &teacher, &rts).is_ok());
    Ok(())
}

#[test]
fn bad_configs_are_errors() {
    assert!(HardNetLoss::new(HardNetConfig { margin: -1.0, ..Default::default() }).is_err());
    assert!(
        HardNetLoss::new(HardNetConfig { false_negative_threshold: f64::NAN, ..Default::default() }).is_err()
    );
    assert!(SosNetLoss::new(SosNetConfig { knn: 0, ..Default::default() }).is_err());
    assert!(HyNetLoss::new(HyNetConfig { alpha: f64::INFINITY, ..Default::default() }).is_err());
    assert!(TfeatLoss::new(TfeatConfig { margin: f64::NAN, ..Default::default() }).is_err());
    let bad_rts = RtsConfig { lambda: -0.5, ..Default::default() };
    assert!(Distillation::new(Box::new(HardNetLoss::default()), bad_rts).is_err());
}

#[test]
fn recipes_by_name() -> Result<()> {
    for kind in LossKind::ALL {
        assert_eq!(kind.as_str().parse::<LossKind>()?, kind);
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(" HardNet ".parse::<LossKind>()?, LossKind::HardNet);
    assert!(matches!("hardnett".parse::<LossKind>(), Err(Error::UnknownLoss(_))));
    assert_eq!(LossKind::L2Net.build()?.name(), "hardnet");
    assert_eq!(LossKind::HyNet.build()?.name(), "hynet");
    assert!(LossKind::HyNet.build()?.needs_raw() && !LossKind::SosNet.build()?.needs_raw());
    Ok(())
}

#[test]
fn configs_default_to_published_values_and_reject_typos() -> Result<()> {
    let hardnet: HardNetConfig = serde_json::from_str("{}")?;
    assert_eq!(
        (hardnet.margin, hardnet.false_negative_threshold, hardnet.mining),
        (1.0, 0.008, Mining::AnchorSwap)
    );
    let sosnet: SosNetConfig = serde_json::from_str("{}")?;
    assert_eq!((sosnet.knn, sosnet.sos_weight, sosnet.mining), (8, 1.0, Mining::AllPairs));
    let hynet: HyNetConfig = serde_json::from_str(r#"{"margin": 1.0}"#)?;
    assert_eq!((hynet.margin, hynet.alpha, hynet.norm_weight), (1.0, 2.0, 0.1));
    let tfeat: TfeatConfig = serde_json::from_str("{}")?;
    assert_eq!((tfeat.margin, tfeat.anchor_swap, tfeat.metric), (2.0, true, Metric::Euclidean));

    let l2net: LossConfig = serde_json::from_str(r#"{"kind": "l2net"}"#)?;
    assert_eq!(l2net, LossConfig::HardNet(HardNetConfig::default()));
    let tuned: LossConfig = serde_json::from_str(r#"{"kind": "sosnet", "knn": 4}"#)?;
    assert_eq!(tuned, LossConfig::SosNet(SosNetConfig { knn: 4, ..Default::default() }));
    assert!(serde_json::from_str::<LossConfig>(r#"{"kind": "hardnet", "margn": 2.0}"#).is_err());
    assert!(serde_json::from_str::<RtsConfig>(r#"{"form": "cubic"}"#).is_err());

    let distill: DistillationConfig = serde_json::from_str(
        r#"{"triplet": {"kind": "hynet"}, "rts": {"form": "hinge", "similarity": "neg_distance"}}"#,
    )?;
    assert_eq!(distill.triplet, LossKind::HyNet.default_config());
    assert_eq!(
        (distill.rts.form, distill.rts.similarity, distill.rts.lambda),
        (RtsForm::Hinge, Similarity::NegDistance, 0.1)
    );
    let round_trip: DistillationConfig = serde_json::from_str(&serde_json::to_string(&distill)?)?;
    assert_eq!(round_trip, distill);
    Ok(())
}

#[test]
fn nearest_neighbours_are_sorted_and_exclude_self() -> Result<()> {
    let x = normalize(&pseudo_random(12, 3, 17)?)?;
    let lists = nearest_neighbours(&x, 4, Metric::UnitSphere)?;
    let d = pairwise_distance(&x, &x, Metric::UnitSphere)?.to_vec2::<f64>()?;
    for (i, list) in lists.iter().enumerate() {
        assert_eq!(list.len(), 4);
        assert!(!list.contains(&(i as u32)));
        let dists: Vec<f64> = list.iter().map(|&j| d[i][j as usize]).collect();
        assert!(dists.windows(2).all(|w| w[0] <= w[1]), "row {i} not sorted");
        let farthest_kept = dists[3];
        let closer_left_out =
            (0..12).filter(|&j| j != i && !list.contains(&(j as u32))).any(|j| d[i][j] < farthest_kept);
        assert!(!closer_left_out, "row {i}: a closer neighbour was left out");
    }
    // Fewer rows than k: every other row.
    assert!(nearest_neighbours(&x.narrow(0, 0, 3)?, 8, Metric::UnitSphere)?.iter().all(|l| l.len() == 2));
    Ok(())
}

#[test]
fn half_precision_takes_the_plain_tensor_path_and_agrees() -> Result<()> {
    // The CPU kernels cover f32/f64 only; f16 goes through the plain tensor ops that other
    // devices use, so this runs that path end to end. The smooth pairs, because f16 rounding
    // moves distances near 0 by more than the false-negative threshold.
    let x = inputs()?;
    let half = |t: &Tensor| t.to_dtype(DType::F16);
    let (a, p) = (&x.smooth_anchors, &x.smooth_positives);
    let (raw_a, raw_p) = ((a * 1.7)?, (p * 0.6)?);
    let exact = PairBatch::new(a.clone(), p.clone())?.with_raw(raw_a.clone(), raw_p.clone())?;
    let low = PairBatch::new(half(a)?, half(p)?)?.with_raw(half(&raw_a)?, half(&raw_p)?)?;
    for kind in LossKind::ALL {
        let (want, got) = (scalar(&kind.build()?.loss(&exact)?)?, scalar(&kind.build()?.loss(&low)?)?);
        assert!((got - want).abs() <= 2e-2 * want.abs(), "{kind}: f16 {got} vs f64 {want}");
    }
    let objective = DistillationConfig::default().build()?;
    let want = scalar(&objective.loss(&exact, &x.teacher_anchors, &x.teacher_positives)?.total)?;
    let got = scalar(&objective.loss(&low, &x.teacher_anchors, &x.teacher_positives)?.total)?;
    assert!((got - want).abs() <= 2e-2 * want.abs(), "distillation: f16 {got} vs f64 {want}");
    Ok(())
}
