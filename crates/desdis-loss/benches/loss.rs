//! Forward + backward time of the HardNet loss at N = 512 and 1024 pairs of 128-d descriptors
//! (f32, CPU): the dense formulation with plain tensor ops, the dense formulation on the fused
//! distance kernel, and the mine-then-gather loss the crate uses; plus SOSNet, HyNet and the
//! default distillation objective for reference.
//!
//! Run: `cargo bench -p desdis-loss --bench loss` (release). Prints the median and the fastest of
//! the timed runs, in milliseconds.

use candle_core::{Device, Tensor, Var};
use desdis_loss::{
    hardnet_dense, DistanceBackend, DistillationConfig, HardNetConfig, HyNetLoss, PairBatch, SosNetLoss,
    TripletLoss,
};
use std::time::Instant;

const DIM: usize = 128;
const WARMUP: usize = 3;
const RUNS: usize = 20;

type Step<'a> = Box<dyn Fn(&PairBatch) -> candle_core::Result<Tensor> + 'a>;

fn unit_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(1)?.sqrt()?)
}

/// Raw descriptors and their unit versions: positives are noisy copies of the anchors.
fn random_batch(n: usize) -> candle_core::Result<(Var, Var, Var, Var)> {
    let raw_a = Tensor::randn(0f32, 1f32, (n, DIM), &Device::Cpu)?;
    let raw_p = (&raw_a + (Tensor::randn(0f32, 1f32, (n, DIM), &Device::Cpu)? * 0.7)?)?;
    let var = |t: &Tensor| Var::from_tensor(t);
    Ok((var(&unit_rows(&raw_a)?)?, var(&unit_rows(&raw_p)?)?, var(&raw_a)?, var(&raw_p)?))
}

/// Median and minimum of `RUNS` timed forward + backward passes, in ms.
fn time(step: &Step<'_>, batch: &PairBatch) -> candle_core::Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(RUNS);
    for run in 0..WARMUP + RUNS {
        let start = Instant::now();
        let grads = step(batch)?.backward()?;
        std::hint::black_box(&grads);
        if run >= WARMUP {
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[RUNS / 2], ms[0]))
}

fn main() -> anyhow::Result<()> {
    let err = |e: desdis_loss::Error| candle_core::Error::Msg(e.to_string());
    println!("rayon threads: {}", rayon::current_num_threads());
    println!("{:<34} {:>6} {:>12} {:>10}", "loss + backward (f32, D = 128)", "N", "median ms", "min ms");
    for n in [512, 1024] {
        let (a, p, raw_a, raw_p) = random_batch(n)?;
        let batch = PairBatch::new(a.as_tensor().clone(), p.as_tensor().clone())?
            .with_raw(raw_a.as_tensor().clone(), raw_p.as_tensor().clone())?;
        let teacher =
            (unit_rows(&Tensor::randn(0f32, 1f32, (n, DIM), &Device::Cpu)?)?, p.as_tensor().detach());
        let hardnet = HardNetConfig::default();
        let mined = desdis_loss::HardNetLoss::default();
        let distill = DistillationConfig::default().build()?;
        let steps: Vec<(&str, Step<'_>)> = vec![
            (
                "hardnet dense, plain distance",
                Box::new(|b| hardnet_dense(b, &hardnet, DistanceBackend::Plain).map_err(err)),
            ),
            (
                "hardnet dense, fused distance",
                Box::new(|b| hardnet_dense(b, &hardnet, DistanceBackend::Fused).map_err(err)),
            ),
            ("hardnet mined (HardNetLoss)", Box::new(|b| mined.loss(b).map_err(err))),
            ("sosnet mined", Box::new(|b| SosNetLoss::default().loss(b).map_err(err))),
            ("hynet mined", Box::new(|b| HyNetLoss::default().loss(b).map_err(err))),
            (
                "distillation (hardnet + R_ts)",
                Box::new(|b| Ok(distill.loss(b, &teacher.0, &teacher.1).map_err(err)?.total)),
            ),
        ];
        for (name, step) in &steps {
            let (median, min) = time(step, &batch)?;
            println!("{name:<34} {n:>6} {median:>12.2} {min:>10.2}");
        }
    }
    Ok(())
}
