//! Times HardNet's conv stack (batch 256 of 32x32 patches) with candle's `conv2d` and with
//! `desdis_kernels::conv2d`: forward, and forward + backward, whole stack and per layer.
//!
//! `cargo bench -p desdis-kernels --bench conv`; `CONV_BENCH_BATCH` and `CONV_BENCH_REPS` override
//! the batch size (256) and repetitions (5, the best reported); `CONV_BENCH_FILTER` runs only the
//! rows whose name contains it. Timings are wall-clock, so run on
//! an otherwise idle machine or compare ratios within one run.

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use desdis_kernels::conv2d;

/// One conv of the stack: `(c_in, c_out, kernel, stride, padding)`.
type Layer = (usize, usize, usize, usize, usize);

const HARDNET: [Layer; 7] = [
    (1, 32, 3, 1, 1),
    (32, 32, 3, 1, 1),
    (32, 64, 3, 2, 1),
    (64, 64, 3, 1, 1),
    (64, 128, 3, 2, 1),
    (128, 128, 3, 1, 1),
    (128, 128, 8, 1, 0),
];

type Conv = fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> Result<Tensor>;

fn candle_conv(x: &Tensor, w: &Tensor, _b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    x.conv2d(w, padding, stride, 1, 1)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Shortest wall time of `reps` runs of `f`, in milliseconds, after one warm-up run: on a shared
/// machine the minimum is the run least disturbed by other work.
fn best_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times.into_iter().fold(f64::INFINITY, f64::min))
}

/// Forward FLOPs of one layer on a `side`x`side` input; returns them and the output side.
fn layer_flops(batch: usize, side: usize, &(c_in, c_out, k, s, p): &Layer) -> (f64, usize) {
    let out = (side + 2 * p - k) / s + 1;
    (2.0 * (batch * c_out * out * out * c_in * k * k) as f64, out)
}

/// Forward FLOPs of the whole stack.
fn stack_flops(batch: usize) -> f64 {
    let mut side = 32;
    let mut total = 0.0;
    for layer in &HARDNET {
        let (flops, out_side) = layer_flops(batch, side, layer);
        total += flops;
        side = out_side;
    }
    total
}

/// Weights scaled like He initialisation, so activations stay of order one through the stack.
fn weights(layers: &[Layer]) -> Result<Vec<Var>> {
    layers
        .iter()
        .map(|&(c_in, c_out, k, _, _)| {
            let std = (2.0 / (c_in * k * k) as f64).sqrt();
            Var::from_tensor(&Tensor::randn(0f32, std as f32, (c_out, c_in, k, k), &Device::Cpu)?)
        })
        .collect()
}

fn stack_forward(conv: Conv, x: &Tensor, ws: &[Var]) -> Result<Tensor> {
    HARDNET
        .iter()
        .zip(ws)
        .try_fold(x.clone(), |h, (&(_, _, _, s, p), w)| conv(&h, w.as_tensor(), None, s, p)?.relu())
}

fn stack_train(conv: Conv, x: &Tensor, ws: &[Var]) -> Result<()> {
    let grads = stack_forward(conv, x, ws)?.sum_all()?.backward()?;
    assert!(ws.iter().all(|w| grads.get(w.as_tensor()).is_some()));
    Ok(())
}

/// One layer alone, with both input and weight tracked so both gradients are computed.
fn layer_train(conv: Conv, x: &Var, w: &Var, s: usize, p: usize) -> Result<()> {
    conv(x.as_tensor(), w.as_tensor(), None, s, p)?.sum_all()?.backward().map(drop)
}

/// True when the row `name` should run under `CONV_BENCH_FILTER`.
fn selected(name: &str) -> bool {
    std::env::var("CONV_BENCH_FILTER").map_or(true, |filter| name.contains(&filter))
}

fn report(what: &str, flops: f64, candle_ms: f64, ours_ms: f64) {
    let gflops = |ms: f64| flops / ms / 1e6;
    println!(
        "{what:<28} candle {candle_ms:8.1} ms {:6.1} GFLOP/s | ours {ours_ms:8.1} ms {:6.1} GFLOP/s | speed-up {:5.2}x",
        gflops(candle_ms),
        gflops(ours_ms),
        candle_ms / ours_ms
    );
}

/// Times `f` with candle's conv and ours and prints a row, if `name` passes the filter.
/// `CONV_BENCH_IMPL=ours` (or `candle`) times only one side, e.g. under a profiler.
fn row(name: &str, flops: f64, reps: usize, f: &dyn Fn(Conv) -> Result<()>) -> Result<()> {
    if !selected(name) {
        return Ok(());
    }
    let which = std::env::var("CONV_BENCH_IMPL").unwrap_or_default();
    let time = |side: &str, conv: Conv| {
        if which.is_empty() || which == side {
            best_ms(reps, || f(conv))
        } else {
            Ok(f64::NAN)
        }
    };
    let (candle_ms, ours_ms) = (time("candle", candle_conv)?, time("ours", conv2d)?);
    report(name, flops, candle_ms, ours_ms);
    Ok(())
}

fn main() -> Result<()> {
    // As in training: without it every large buffer is fresh pages, and page faults dominate.
    desdis_kernels::memory::keep_freed_memory();
    let batch = env_or("CONV_BENCH_BATCH", 256);
    let reps = env_or("CONV_BENCH_REPS", 5);
    println!(
        "HardNet conv stack, batch {batch}, {} rayon threads, best of {reps}",
        rayon::current_num_threads()
    );
    let x = Tensor::randn(0f32, 1.0, (batch, 1, 32, 32), &Device::Cpu)?;
    let ws = weights(&HARDNET)?;
    let total_flops = stack_flops(batch);
    row("stack forward", total_flops, reps, &|conv| stack_forward(conv, &x, &ws).map(drop))?;
    row("stack forward+backward", 3.0 * total_flops, reps, &|conv| stack_train(conv, &x, &ws))?;

    let mut side = 32;
    for (i, (layer, w)) in HARDNET.iter().zip(&ws).enumerate() {
        let &(c_in, c_out, k, s, p) = layer;
        let (flops, out_side) = layer_flops(batch, side, layer);
        let h = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, c_in, side, side), &Device::Cpu)?)?;
        let name = format!("L{i} {c_in}->{c_out} k{k} s{s} {side}x{side}");
        let forward = |conv: Conv| conv(h.as_tensor(), w.as_tensor(), None, s, p).map(drop);
        row(&format!("{name} fwd"), flops, reps, &forward)?;
        row(&format!("{name} fwd+bwd"), 3.0 * flops, reps, &|conv| layer_train(conv, &h, w, s, p))?;
        side = out_side;
    }
    Ok(())
}
