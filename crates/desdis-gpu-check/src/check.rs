//! `desdis-gpu-check`: what a GPU machine must show before the project trusts it, in one run that
//! needs nothing but this binary (the photos of the embedded training set are compiled in).
//!
//! 1. Parity: every net, with seeded weights and with any checkpoints given, describes the same
//!    patches on the device and on the CPU; the descriptors must agree to `--tolerance`. In
//!    training mode (dropout off) the descriptors, the loss and every weight gradient are compared
//!    too, which exercises the backward passes of the device's kernels.
//! 2. Speed: inference on one batch and full training steps (two train-mode forwards, the triplet
//!    loss, backward, SGD), each the median of several synchronised runs. With `--torch-dir` the
//!    seeded weights and reference descriptors are written there for `bench_torch.py`, which builds
//!    the same nets in PyTorch and times them on the same card.
//! 3. Distillation: a short DesDis run (student from a frozen teacher) on the device through the
//!    normal trainer (data, mining, validation, checkpoints), whose first epoch is repeated on the
//!    CPU: the per-step losses must agree, since every random choice is made on the host.
//!
//! Prints one JSON report (also `--json FILE`) and exits non-zero when a check fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, ModuleT, Tensor};
use clap::Parser;
use desdis_data::embedded::{self, EmbeddedConfig};
use desdis_data::patch::{Dataset, PATCH_LEN, PATCH_SIDE};
use desdis_loss::{HardNetLoss, PairBatch, TfeatLoss, TripletLoss};
use desdis_models::arch::Arch;
use desdis_models::device::{device_name, select_device};
use desdis_models::init::init_net;
use desdis_models::nets::{load_net, Net};
use desdis_train::{
    named_vars, train_step, DataSource, DistillConfig, Objective, Optimizer, OptimizerConfig, RunDir,
    TrainConfig,
};
use serde_json::{json, Value};

const ALL_ARCHS: &str = "hardnet,sosnet,hynet,l2net,tfeat,desdis-8,desdis-32";
/// Learning rate of the timed SGD steps (its value does not change the work).
const TIMED_LR: f64 = 1e-3;
/// Patches in the reference descriptors written for the PyTorch script.
const TORCH_CHECK_PATCHES: usize = 16;
/// Largest norm-wise relative difference of a weight gradient, `|g_dev - g_cpu| / |g_cpu|`. Not
/// tighter: in training mode every batch-norm backward subtracts two projections of the incoming
/// gradient, so f32 rounding grows layer by layer (the descriptors themselves agree to ~1e-6).
const GRAD_TOLERANCE: f64 = 1e-2;
/// A gradient whose norm is below this fraction of the net's largest gradient norm is zero in
/// exact arithmetic (a convolution bias feeding a batch norm, which removes any constant): both
/// sides hold rounding noise there, so it is reported but not compared.
const STRUCTURAL_ZERO: f64 = 1e-5;
/// Largest relative difference of a triplet loss value, device against CPU, on the same weights.
const LOSS_TOLERANCE: f64 = 1e-4;
/// Largest relative difference of the per-step losses over the first distillation epoch. Looser
/// than [`LOSS_TOLERANCE`]: after the first update the weights differ by float noise, and a
/// near-tie in the negative mining may then resolve differently on the two devices.
const EPOCH_LOSS_TOLERANCE: f64 = 1e-2;

/// Checks a device against the CPU: descriptor parity, speed, a short distillation (JSON report).
#[derive(Parser, Debug)]
#[command(name = "desdis-gpu-check", version)]
pub struct GpuCheck {
    /// Device to check: `cuda`, `cuda:N` or `cpu` (a dry run). Default: the first GPU if any.
    #[arg(long)]
    device: Option<String>,
    /// Small sizes everywhere, for a dry run on a CPU (explicit flags still win).
    #[arg(long)]
    quick: bool,
    /// Architectures checked with seeded weights, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = ALL_ARCHS)]
    archs: Vec<Arch>,
    /// Checkpoints checked as well (repeatable), e.g. data/weights/desdis-32.safetensors.
    #[arg(long)]
    weights: Vec<String>,
    /// Patches per parity check [default: 256; quick: 32].
    #[arg(long)]
    patches: Option<usize>,
    /// Largest eval-mode descriptor difference (max |device - cpu|) accepted.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
    /// Architectures timed, comma-separated [default: all of --archs; quick: hardnet,desdis-8].
    #[arg(long, value_delimiter = ',')]
    time_archs: Option<Vec<Arch>>,
    /// Patches per timed inference batch [default: 1024; quick: 64].
    #[arg(long)]
    infer_batch: Option<usize>,
    /// Pairs per timed training step, comma-separated [default: 128,512; quick: 16,32].
    #[arg(long, value_delimiter = ',')]
    train_pairs: Option<Vec<usize>>,
    /// Untimed runs before timing [default: 3; quick: 1].
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed runs, of which the median is reported [default: 10; quick: 2].
    #[arg(long)]
    reps: Option<usize>,
    /// Distillation steps on the device, 0 to skip [default: 40; quick: 6].
    #[arg(long)]
    distill_steps: Option<usize>,
    /// Pairs per distillation step [default: 128; quick: 32].
    #[arg(long)]
    distill_batch: Option<usize>,
    /// Steps per distillation epoch; the first epoch is repeated on the CPU [default: 5; quick: 3].
    #[arg(long)]
    distill_epoch_steps: Option<usize>,
    /// Teacher of the distillation (default: HardNet with seeded weights).
    #[arg(long)]
    teacher: Option<String>,
    /// Write seeded weights and reference descriptors of the timed nets here, for bench_torch.py.
    #[arg(long)]
    torch_dir: Option<PathBuf>,
    /// Scratch folder for the generated data and the runs (default: a fresh temporary folder).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Also write the report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed of the weights and patches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The sizes after `--quick` and the explicit flags are applied.
#[derive(Debug)]
struct Sizes {
    patches: usize,
    time_archs: Vec<Arch>,
    infer_batch: usize,
    train_pairs: Vec<usize>,
    warmup: usize,
    reps: usize,
    distill_steps: usize,
    distill_batch: usize,
    distill_epoch_steps: usize,
    /// Keypoints per synthetic sequence of the generated data.
    keypoints: usize,
    validation_pairs: usize,
}

impl GpuCheck {
    fn sizes(&self) -> Sizes {
        let q = self.quick;
        let pick =
            |given: Option<usize>, full: usize, quick: usize| given.unwrap_or(if q { quick } else { full });
        let default_time_archs =
            if q { vec![Arch::HardNet, Arch::DesDis { dim: 8 }] } else { self.archs.clone() };
        Sizes {
            patches: pick(self.patches, 256, 32),
            time_archs: self.time_archs.clone().unwrap_or(default_time_archs),
            infer_batch: pick(self.infer_batch, 1024, 64),
            train_pairs: self.train_pairs.clone().unwrap_or(if q { vec![16, 32] } else { vec![128, 512] }),
            warmup: pick(self.warmup, 3, 1),
            reps: pick(self.reps, 10, 2),
            distill_steps: pick(self.distill_steps, 40, 6),
            distill_batch: pick(self.distill_batch, 128, 32),
            distill_epoch_steps: pick(self.distill_epoch_steps, 5, 3),
            keypoints: if q { 80 } else { 300 },
            validation_pairs: if q { 200 } else { 1000 },
        }
    }

    pub fn run(self) -> Result<()> {
        let sizes = self.sizes();
        if sizes.patches < 4 || sizes.infer_batch == 0 || sizes.reps == 0 {
            bail!("--patches must be at least 4, --infer-batch and --reps at least 1");
        }
        if sizes.train_pairs.iter().any(|&p| p < 2) || sizes.distill_batch < 2 {
            bail!("--train-pairs and --distill-batch must be at least 2");
        }
        let device = select_device(self.device.as_deref())?;
        let work = Scratch::new(self.work.clone())?;
        eprintln!("gpu-check: device {}, scratch {}", device_name(&device), work.path().display());
        let mut report = Report::new(self.json.clone());
        report.set("device", json!(device_name(&device)));
        report.set("cuda_compiled", json!(desdis_models::device::cuda_compiled()));
        report.set("version", json!(env!("CARGO_PKG_VERSION")));
        report.set("seed", json!(self.seed));
        report.set("tolerance", json!(self.tolerance));
        report.set("grad_tolerance", json!(GRAD_TOLERANCE));
        report.set("loss_tolerance", json!(LOSS_TOLERANCE));
        report.set("epoch_loss_tolerance", json!(EPOCH_LOSS_TOLERANCE));

        // Real patches when the generator works (it needs no files), else seeded noise.
        let data = section(&mut report.errors, "data", || generate_data(work.path(), &sizes));
        let patches = match &data {
            Some(set) if set.len() >= sizes.patches => first_patches(set, sizes.patches),
            _ => noise_patches(sizes.patches, self.seed),
        };
        report.set("parity_patches", json!(if data.is_some() { "embedded photos" } else { "seeded noise" }));
        let parity = section(&mut report.errors, "parity", || {
            self.parity(&device, &patches, &sizes, &mut report.failures)
        });
        report.set("parity", json!(parity));
        report.save(false)?;
        let timings = section(&mut report.errors, "timings", || self.timings(&device, &sizes));
        report.set("timings", json!(timings));
        report.save(false)?;
        // The distillation trains on the generated data: without it there is nothing to run.
        if data.is_some() && sizes.distill_steps > 0 {
            let distill = section(&mut report.errors, "distill", || {
                self.distill(&device, work.path(), &sizes, &mut report.failures)
            });
            report.set("distill", json!(distill));
        }
        println!("{}", report.save(true)?);
        if !report.ok() {
            bail!(
                "gpu-check failed: {} error(s), {} failed check(s)",
                report.errors.len(),
                report.failures.len()
            );
        }
        eprintln!("gpu-check: all checks passed in {:.0} s", report.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Device against CPU for every seeded net and every checkpoint.
    fn parity(
        &self,
        device: &Device,
        patches: &[u8],
        sizes: &Sizes,
        failures: &mut Vec<String>,
    ) -> Result<Value> {
        let mut rows = Vec::new();
        for &arch in &self.archs {
            let name = format!("{arch} (seed {})", self.seed);
            eprintln!("gpu-check: parity {name}");
            let row = seeded_parity(arch, self.seed, device, patches, self.tolerance);
            rows.push(checked_row(&name, row, failures));
        }
        for source in &self.weights {
            eprintln!("gpu-check: parity {source}");
            let row = || -> Result<Value> {
                let cpu = load_net(source, None, &Device::Cpu)?;
                let dev = load_net(source, None, device)?;
                let x = patch_tensor(patches, cpu.arch())?;
                let diff = eval_diff(&cpu, &dev, &x)?;
                Ok(json!({
                    "net": source, "arch": cpu.arch().name(), "patches": sizes.patches,
                    "eval_max_abs_diff": diff, "ok": diff <= self.tolerance,
                }))
            };
            rows.push(checked_row(source, row(), failures));
        }
        Ok(Value::Array(rows))
    }

    /// Inference and training-step times on the device; writes the PyTorch inputs on request.
    fn timings(&self, device: &Device, sizes: &Sizes) -> Result<Value> {
        if let Some(dir) = &self.torch_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut rows = Vec::new();
        for &arch in &sizes.time_archs {
            eprintln!("gpu-check: timing {arch} on {}", device_name(device));
            match self.time_arch(arch, device, sizes) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    eprintln!("gpu-check: timing {arch} failed: {e:#}");
                    rows.push(json!({ "arch": arch.name(), "error": format!("{e:#}") }));
                }
            }
        }
        Ok(Value::Array(rows))
    }

    /// [`GpuCheck::timings`] of one net.
    fn time_arch(&self, arch: Arch, device: &Device, sizes: &Sizes) -> Result<Value> {
        let (varmap, net) = init_net(arch, self.seed, device)?;
        let scale = arch.input_range();
        if let Some(dir) = &self.torch_dir {
            write_torch_inputs(dir, arch, &varmap, &net, self.seed)?;
        }
        let x = Tensor::rand(0f32, scale, (sizes.infer_batch, 1, PATCH_SIDE, PATCH_SIDE), device)?;
        let infer_s = median_seconds(device, sizes.warmup, sizes.reps, || {
            net.forward_t(&x, false)?;
            Ok(())
        })?;
        let objective = Objective::Plain(triplet_loss(arch));
        let mut optimizer = Optimizer::new(optimizer_config(arch), named_vars(&varmap));
        let mut train_s = BTreeMap::new();
        for &pairs in &sizes.train_pairs {
            // The shared training step takes 0..1 patches and scales them itself.
            let anchors = Tensor::rand(0f32, 1.0, (pairs, 1, PATCH_SIDE, PATCH_SIDE), device)?;
            let noise = Tensor::rand(0f32, 0.05, (pairs, 1, PATCH_SIDE, PATCH_SIDE), device)?;
            let positives = (&anchors + noise)?.clamp(0f32, 1.0)?;
            let seconds = median_seconds(device, sizes.warmup, sizes.reps, || {
                train_step(&objective, &net, &mut optimizer, &anchors, &positives, TIMED_LR)?;
                Ok(())
            })?;
            train_s.insert(pairs.to_string(), seconds);
        }
        let train_pairs_per_s: BTreeMap<String, f64> =
            train_s.iter().map(|(k, s)| (k.clone(), k.parse::<f64>().unwrap_or(0.0) / s)).collect();
        Ok(json!({
            "arch": arch.name(),
            "infer_batch": sizes.infer_batch,
            "infer_s": infer_s,
            "infer_patches_per_s": sizes.infer_batch as f64 / infer_s,
            "train_s": train_s,
            "train_pairs_per_s": train_pairs_per_s,
            "warmup": sizes.warmup,
            "reps": sizes.reps,
        }))
    }

    /// A short distillation on the device, and its first epoch again on the CPU.
    fn distill(
        &self,
        device: &Device,
        work: &Path,
        sizes: &Sizes,
        failures: &mut Vec<String>,
    ) -> Result<Value> {
        let (teacher, teacher_arch) = match &self.teacher {
            Some(t) => (t.clone(), None),
            None => {
                let path = work.join("teacher-hardnet.safetensors");
                let (varmap, _) = init_net(Arch::HardNet, self.seed, &Device::Cpu)?;
                desdis_checkpoint::save_safetensors(&desdis_train::varmap_tensors(&varmap), &path)?;
                (path.display().to_string(), Some(Arch::HardNet))
            }
        };
        let epoch_steps = sizes.distill_epoch_steps.clamp(1, sizes.distill_steps.max(1));
        let cfg = TrainConfig {
            arch: Arch::DesDis { dim: 8 },
            epochs: sizes.distill_steps.div_ceil(epoch_steps),
            pairs_per_epoch: epoch_steps * sizes.distill_batch,
            batch_size: sizes.distill_batch,
            seed: self.seed,
            data: DataSource::Embedded {
                config: data_config(sizes),
                cache_dir: Some(work.join("data")),
                limit: None,
            },
            validation_pairs: sizes.validation_pairs,
            distill: Some(DistillConfig { teacher, teacher_arch, rts: Default::default() }),
            ..TrainConfig::default()
        };
        eprintln!(
            "gpu-check: distilling desdis-8 for {} steps of {} pairs on {}",
            cfg.epochs * epoch_steps,
            cfg.batch_size,
            device_name(device)
        );
        let run = RunDir::create(&work.join("distill-device"), &cfg)?;
        let t0 = Instant::now();
        let summary = desdis_train::train(&cfg, &run, false, device)?;
        let seconds = t0.elapsed().as_secs_f64();
        let rows = desdis_train::read_metrics(&run)?;

        eprintln!("gpu-check: repeating the first {epoch_steps} steps on the CPU");
        let cpu_run = RunDir::create(&work.join("distill-cpu"), &cfg)?;
        desdis_train::train_until(&cfg, &cpu_run, false, &Device::Cpu, 1)?;
        let cpu_rows = desdis_train::read_metrics(&cpu_run)?;
        let rel: Vec<f64> = rows
            .iter()
            .zip(&cpu_rows)
            .map(|(d, c)| (d.loss - c.loss).abs() / c.loss.abs().max(1e-6))
            .collect();
        let first = rel.first().copied().unwrap_or(f64::INFINITY);
        let max_rel = rel.iter().copied().fold(first, f64::max);
        let ok =
            first <= LOSS_TOLERANCE && max_rel <= EPOCH_LOSS_TOLERANCE && summary.last_epoch_loss.is_finite();
        if !ok {
            failures.push(format!(
                "distill: losses differ from the CPU's by {first:.2e} at the first step (at most \
                 {LOSS_TOLERANCE:.0e}) and up to {max_rel:.2e} over the first epoch (at most \
                 {EPOCH_LOSS_TOLERANCE:.0e}), relative"
            ));
        }
        Ok(json!({
            "student": "desdis-8",
            "teacher": cfg.distill.as_ref().map(|d| d.teacher.clone()),
            "steps": summary.steps,
            "epochs": summary.epochs,
            "batch": cfg.batch_size,
            "keypoints_per_sequence": sizes.keypoints,
            "seconds": seconds,
            "pairs_per_s": summary.pairs_per_s,
            "first_epoch_loss": summary.first_epoch_loss,
            "last_epoch_loss": summary.last_epoch_loss,
            "val_fpr95": summary.val_fpr95,
            "losses": rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
            "cpu_first_epoch_losses": cpu_rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
            "first_step_rel_loss_diff": first,
            "max_rel_loss_diff": max_rel,
            "ok": ok,
        }))
    }
}

/// The report as it grows. It is written after every section, so that a run cut short (by a
/// timeout, or a crash inside a device kernel) still leaves what it measured.
struct Report {
    fields: serde_json::Map<String, Value>,
    errors: Vec<Value>,
    failures: Vec<String>,
    started: Instant,
    path: Option<PathBuf>,
}

impl Report {
    fn new(path: Option<PathBuf>) -> Self {
        Self { fields: Default::default(), errors: vec![], failures: vec![], started: Instant::now(), path }
    }

    fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.into(), value);
    }

    fn ok(&self) -> bool {
        self.errors.is_empty() && self.failures.is_empty()
    }

    /// Writes the report to its file, if any; returns its text. `complete` is false while
    /// sections are still to run.
    fn save(&self, complete: bool) -> Result<String> {
        let mut all = self.fields.clone();
        all.insert("complete".into(), json!(complete));
        all.insert("ok".into(), json!(complete && self.ok()));
        all.insert("errors".into(), json!(self.errors));
        all.insert("failures".into(), json!(self.failures));
        all.insert("seconds".into(), json!(self.started.elapsed().as_secs_f64()));
        let text = serde_json::to_string_pretty(&Value::Object(all))?;
        if let Some(path) = &self.path {
            desdis_eval::write_atomic(path, text.as_bytes())
                .with_context(|| format!("{}: cannot write the report", path.display()))?;
        }
        Ok(text)
    }
}

/// Runs one section; an error is recorded in `errors` and the next section still runs.
fn section<T>(errors: &mut Vec<Value>, name: &str, f: impl FnOnce() -> Result<T>) -> Option<T> {
    let t0 = Instant::now();
    match f() {
        Ok(v) => {
            eprintln!("gpu-check: {name} done in {:.1} s", t0.elapsed().as_secs_f64());
            Some(v)
        }
        Err(e) => {
            eprintln!("gpu-check: {name} failed: {e:#}");
            errors.push(json!({ "section": name, "error": format!("{e:#}") }));
            None
        }
    }
}

/// A parity row, or an error row for `net`; either way a failure is noted when it is not ok.
fn checked_row(net: &str, row: Result<Value>, failures: &mut Vec<String>) -> Value {
    let row = row.unwrap_or_else(|e| {
        eprintln!("gpu-check: parity {net} failed: {e:#}");
        json!({ "net": net, "error": format!("{e:#}"), "ok": false })
    });
    if row["ok"] != Value::Bool(true) {
        failures.push(format!("parity: {row}"));
    }
    row
}

/// The small embedded set the checks use: real patches for parity, training data for distillation.
fn data_config(sizes: &Sizes) -> EmbeddedConfig {
    let base = EmbeddedConfig::default();
    EmbeddedConfig {
        sequences_per_photo: 1,
        cut: desdis_data::sequence::CutConfig { max_keypoints: sizes.keypoints, ..base.cut },
        ..base
    }
}

fn generate_data(work: &Path, sizes: &Sizes) -> Result<desdis_data::patch::PatchSet> {
    let set = embedded::load_or_generate(&work.join("data"), &data_config(sizes))?;
    eprintln!("gpu-check: {} training patches generated from the embedded photos", set.len());
    Ok(set)
}

fn first_patches(set: &desdis_data::patch::PatchSet, n: usize) -> Vec<u8> {
    // Spread over the set rather than the first n, which all come from one photo.
    let step = (set.len() / n).max(1);
    (0..n).flat_map(|i| set.patch(i * step % set.len()).iter().copied()).collect()
}

/// Seeded pseudo-random 8-bit patches (SplitMix64), for when the generator cannot run.
fn noise_patches(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n * PATCH_LEN)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z >> 56) as u8
        })
        .collect()
}

/// `(N, 1, 32, 32)` CPU tensor of the patches in the pixel range `arch` expects.
fn patch_tensor(patches: &[u8], arch: Arch) -> Result<Tensor> {
    let scale = arch.input_range() / 255.0;
    let values: Vec<f32> = patches.iter().map(|&p| f32::from(p) * scale).collect();
    let n = patches.len() / PATCH_LEN;
    Ok(Tensor::from_vec(values, (n, 1, PATCH_SIDE, PATCH_SIDE), &Device::Cpu)?)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok(f64::from(desdis_kernels::compare::max_abs_diff(a, b)?))
}

/// Euclidean norm of all elements, accumulated in f64.
fn norm(a: &Tensor) -> Result<f64> {
    Ok(a.to_dtype(candle_core::DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt())
}

/// Largest eval-mode descriptor difference between the CPU net and the device net.
fn eval_diff(cpu: &Net, dev: &Net, x: &Tensor) -> Result<f64> {
    let y_cpu = cpu.forward_t(x, false)?;
    let y_dev = dev.forward_t(&x.to_device(dev.device())?, false)?.to_device(&Device::Cpu)?;
    max_abs_diff(&y_cpu, &y_dev)
}

/// Eval- and train-mode parity of one seeded net, with its loss and weight gradients.
fn seeded_parity(arch: Arch, seed: u64, device: &Device, patches: &[u8], tolerance: f64) -> Result<Value> {
    let (cpu_vars, mut cpu) = init_net(arch, seed, &Device::Cpu)?;
    let (dev_vars, mut dev) = init_net(arch, seed, device)?;
    let x = patch_tensor(patches, arch)?;
    let eval = eval_diff(&cpu, &dev, &x)?;

    // Training mode without dropout: deterministic, so both sides compute the same function.
    cpu.set_dropout(0.0)?;
    dev.set_dropout(0.0)?;
    let n = x.dim(0)? / 2;
    let (a, p) = (x.narrow(0, 0, n)?, x.narrow(0, n, n)?);
    let loss = triplet_loss(arch);
    // The gradients are taken of a fixed random projection of the descriptors, not of the triplet
    // loss: its hardest-negative choice is discrete, and two candidates within float noise of each
    // other would pick different pairs on the two devices. The projection is smooth, and still runs
    // every backward kernel of the net.
    let dim = arch.descriptor_size();
    let projection = |salt: u64| -> Result<Tensor> {
        let values: Vec<f32> = noise_patches(n * dim / PATCH_LEN + 1, seed ^ salt)[..n * dim]
            .iter()
            .map(|&v| f32::from(v) / 127.5 - 1.0)
            .collect();
        Ok(Tensor::from_vec(values, (n, dim), &Device::Cpu)?)
    };
    let (ra, rp) = (projection(0xa11ce)?, projection(0xb0b)?);
    let side = |net: &Net, vars: &candle_nn::VarMap| -> Result<(Tensor, f64, HashMap<String, Tensor>)> {
        let target = net.device();
        let (ya, yp) =
            (net.forward_t(&a.to_device(target)?, true)?, net.forward_t(&p.to_device(target)?, true)?);
        let value = loss.loss(&PairBatch::new(ya.clone(), yp.clone())?)?;
        let objective =
            ((&ya * ra.to_device(target)?)?.sum_all()? + (&yp * rp.to_device(target)?)?.sum_all()?)?;
        let grads = objective.backward()?;
        let mut out = HashMap::new();
        for (name, var) in named_vars(vars) {
            if let Some(g) = grads.get(var.as_tensor()) {
                out.insert(name, g.to_device(&Device::Cpu)?);
            }
        }
        Ok((ya.to_device(&Device::Cpu)?, f64::from(value.to_scalar::<f32>()?), out))
    };
    let (ya_cpu, loss_cpu, grads_cpu) = side(&cpu, &cpu_vars)?;
    let (ya_dev, loss_dev, grads_dev) = side(&dev, &dev_vars)?;
    let train = max_abs_diff(&ya_cpu, &ya_dev)?;
    let mut grad_rel: f64 = 0.0;
    let mut worst = String::new();
    let mut structural_zeros = Vec::new();
    let largest = grads_cpu.values().map(norm).collect::<Result<Vec<_>>>()?.into_iter().fold(0.0, f64::max);
    for (name, g_cpu) in &grads_cpu {
        let g_dev = grads_dev.get(name).with_context(|| format!("no device gradient for {name}"))?;
        let size = norm(g_cpu)?;
        if size < STRUCTURAL_ZERO * largest {
            structural_zeros.push(name.clone());
            continue;
        }
        let rel = norm(&(g_cpu - g_dev.to_device(g_cpu.device())?)?)? / size.max(1e-30);
        if rel > grad_rel {
            grad_rel = rel;
            worst = name.clone();
        }
    }
    structural_zeros.sort();
    if grads_cpu.len() != grads_dev.len() {
        bail!("{arch}: {} gradients on the CPU, {} on the device", grads_cpu.len(), grads_dev.len());
    }
    // Loss values are robust to a near-tie in the mining: both choices give nearly the same loss.
    let loss_rel = (loss_cpu - loss_dev).abs() / loss_cpu.abs().max(1e-6);
    let ok =
        eval <= tolerance && train <= tolerance && grad_rel <= GRAD_TOLERANCE && loss_rel <= LOSS_TOLERANCE;
    Ok(json!({
        "net": format!("{arch} (seed {seed})"),
        "arch": arch.name(),
        "patches": x.dim(0)?,
        "eval_max_abs_diff": eval,
        "train_max_abs_diff": train,
        "loss_cpu": loss_cpu,
        "loss_device": loss_dev,
        "grad_tensors": grads_cpu.len(),
        "grad_max_rel_diff": grad_rel,
        "grad_worst_tensor": worst,
        "grad_structural_zeros": structural_zeros,
        "ok": ok,
    }))
}

/// The recipe's triplet loss for timing and gradient checks: TFeat's own, HardNet's otherwise.
fn triplet_loss(arch: Arch) -> Box<dyn TripletLoss> {
    match arch {
        Arch::TFeat => Box::new(TfeatLoss::default()),
        _ => Box::new(HardNetLoss::default()),
    }
}

fn optimizer_config(arch: Arch) -> OptimizerConfig {
    match arch {
        Arch::TFeat => OptimizerConfig::tfeat_sgd(),
        _ => OptimizerConfig::hardnet_sgd(),
    }
}

/// `{arch}.safetensors` (the seeded weights) and `{arch}.check.safetensors` (`x`: patches, `y`:
/// this device's eval-mode descriptors of them), the inputs of `bench_torch.py`.
fn write_torch_inputs(
    dir: &Path,
    arch: Arch,
    varmap: &candle_nn::VarMap,
    net: &Net,
    seed: u64,
) -> Result<()> {
    let save = desdis_checkpoint::save_safetensors;
    let weights: HashMap<String, Tensor> = desdis_train::varmap_tensors(varmap)
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    save(&weights, &dir.join(format!("{arch}.safetensors")))?;
    let x = patch_tensor(&noise_patches(TORCH_CHECK_PATCHES, seed ^ 0x70c4), arch)?;
    let y = net.forward_t(&x, false)?.to_device(&Device::Cpu)?;
    let check = HashMap::from([("x".to_string(), x), ("y".to_string(), y)]);
    save(&check, &dir.join(format!("{arch}.check.safetensors")))?;
    Ok(())
}

/// Median wall-clock seconds of `reps` runs of `f` after `warmup` untimed ones, each run ended by
/// a device synchronisation so that queued GPU work is counted (and the next run starts on an
/// idle device).
fn median_seconds(
    device: &Device,
    warmup: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    device.synchronize()?;
    desdis_stdx::median_seconds(warmup, reps, || {
        f()?;
        Ok(device.synchronize()?)
    })
}

/// The scratch folder: the one given (kept), or a fresh temporary one removed at the end.
struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Scratch {
    fn new(given: Option<PathBuf>) -> Result<Self> {
        let (path, remove) = match given {
            Some(p) => (p, false),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                (std::env::temp_dir().join(format!("desdis-gpu-check-{}-{nanos}", std::process::id())), true)
            }
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, remove })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_seeded_and_spread() {
        let a = noise_patches(2, 1);
        assert_eq!(a, noise_patches(2, 1));
        assert_ne!(a, noise_patches(2, 2));
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
        assert!((100.0..156.0).contains(&mean), "mean {mean}");
    }
}
