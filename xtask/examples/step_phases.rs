//! Times the phases of one CPU train step (two train-mode forwards, the HardNet loss, backward,
//! SGD update) for profiling: `cargo run --release -p xtask --example step_phases -- hardnet 128 [steps]`,
//! under `perf record` to see where a step's time goes. Means over `steps` (5) steps after a
//! warm-up, and the fastest step (the least disturbed on a shared machine); the side-by-side
//! comparison with PyTorch is `cargo xtask bench`.

use std::time::{Duration, Instant};

use candle_core::{Device, ModuleT, Tensor};
use desdis_loss::{HardNetLoss, PairBatch, TripletLoss};
use desdis_models::arch::Arch;
use desdis_models::init::init_net;
use desdis_train::{Optimizer, OptimizerConfig};

const LR: f64 = 0.01;

fn main() -> anyhow::Result<()> {
    desdis_kernels::memory::keep_freed_memory();
    let mut args = std::env::args().skip(1);
    let arch: Arch = args.next().unwrap_or_else(|| "hardnet".into()).parse()?;
    let pairs: usize = args.next().unwrap_or_else(|| "128".into()).parse()?;
    let steps: usize = args.next().unwrap_or_else(|| "5".into()).parse()?;
    let device = Device::Cpu;
    let (varmap, net) = init_net(arch, 0, &device)?;
    let vars = {
        let data = varmap.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        data.iter().map(|(key, var)| (key.clone(), var.clone())).collect::<Vec<_>>()
    };
    let mut optimizer = Optimizer::new(OptimizerConfig::hardnet_sgd(), vars);
    let scale = arch.input_range();
    let anchors = Tensor::rand(0f32, scale, (pairs, 1, 32, 32), &device)?;
    let noise = Tensor::rand(0f32, 0.05 * scale, (pairs, 1, 32, 32), &device)?;
    let positives = (&anchors + noise)?.clamp(0f32, scale)?;
    let loss = HardNetLoss::default();
    let mut totals = [Duration::ZERO; 4];
    let mut fastest = Duration::MAX;
    for step in 0..=steps {
        let start = Instant::now();
        let batch = PairBatch::new(net.forward_t(&anchors, true)?, net.forward_t(&positives, true)?)?;
        let forwarded = Instant::now();
        let value = loss.loss(&batch)?;
        let lossed = Instant::now();
        let grads = value.backward()?;
        let backwarded = Instant::now();
        optimizer.step(&grads, LR)?;
        let done = Instant::now();
        if step > 0 {
            let phases = [forwarded - start, lossed - forwarded, backwarded - lossed, done - backwarded];
            totals.iter_mut().zip(phases).for_each(|(total, phase)| *total += phase);
            fastest = fastest.min(done - start);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / steps.max(1) as f64;
    let [forward, loss, backward, update] = totals.map(ms);
    println!(
        "{arch}, {pairs} pairs: forward {forward:.1} ms, loss {loss:.1} ms, backward {backward:.1} ms, \
         update {update:.1} ms, step {:.1} ms (fastest {:.1} ms)",
        forward + loss + backward + update,
        fastest.as_secs_f64() * 1e3
    );
    Ok(())
}
