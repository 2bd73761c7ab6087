//! `cargo xtask memcheck`: trains each architecture for a few hundred steps through the real
//! trainer and fails when resident memory keeps growing after warm-up (a leak would otherwise only
//! show as an out-of-memory kill thousands of steps into a long run).
//!
//! Each architecture runs in a child process of its own: the C allocator keeps freed memory (see
//! `desdis_kernels::memory`), so a net trained after a bigger one would grow into the heap the
//! bigger one left behind and hide a leak.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use desdis_loss::LossKind;
use desdis_models::arch::Arch;
use desdis_train::{DataSource, RunDir, TrainConfig};

const DEFAULT_ARCHS: &str = "hardnet,sosnet,hynet,l2net,tfeat,desdis-8,desdis-32";

/// Train each net for `--steps` steps and check resident memory stays flat after warm-up.
#[derive(Debug, clap::Args)]
pub struct MemCheck {
    /// Architectures, comma-separated (each trained with its own recipe).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_ARCHS)]
    archs: Vec<Arch>,
    /// Optimizer steps per architecture.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Pairs per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Steps before the baseline reading (allocator pools and caches fill up first).
    #[arg(long, default_value_t = 40)]
    warmup: usize,
    /// Largest allowed growth of resident memory from the end of warm-up to the last step, MB.
    #[arg(long, default_value_t = 48.0)]
    max_growth_mb: f64,
    /// Internal: run one architecture in this process and print its reading as JSON.
    #[arg(long, hide = true)]
    single: Option<Arch>,
}

/// Resident memory at the baseline step and at the end, of one architecture.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Reading {
    arch: String,
    baseline_step: u64,
    baseline_mb: f64,
    last_step: u64,
    last_mb: f64,
    peak_mb: f64,
}

impl Reading {
    fn growth_mb(&self) -> f64 {
        self.last_mb - self.baseline_mb
    }
}

impl MemCheck {
    pub fn run(self) -> anyhow::Result<()> {
        if self.warmup >= self.steps {
            bail!("--warmup ({}) must be below --steps ({})", self.warmup, self.steps);
        }
        if let Some(arch) = self.single {
            let reading = self.measure(arch)?;
            println!("{}", serde_json::to_string(&reading)?);
            return Ok(());
        }
        let mut failed = Vec::new();
        println!(
            "| net | steps | RSS at step {} (MB) | at the end (MB) | growth (MB) | peak (MB) |",
            self.warmup
        );
        println!("|---|---|---|---|---|---|");
        for &arch in &self.archs {
            let r = self.in_child(arch)?;
            println!(
                "| {} | {} | {:.0} | {:.0} | {:+.1} | {:.0} |",
                r.arch,
                r.last_step,
                r.baseline_mb,
                r.last_mb,
                r.growth_mb(),
                r.peak_mb
            );
            if r.growth_mb() > self.max_growth_mb {
                failed.push(format!("{} grew by {:.1} MB", r.arch, r.growth_mb()));
            }
        }
        if !failed.is_empty() {
            bail!(
                "resident memory grew after warm-up by more than {} MB: {}",
                self.max_growth_mb,
                failed.join(", ")
            );
        }
        Ok(())
    }

    /// Runs `--single arch` in a fresh process and parses its reading.
    fn in_child(&self, arch: Arch) -> anyhow::Result<Reading> {
        let exe = std::env::current_exe().context("locating the xtask binary")?;
        let output = std::process::Command::new(exe)
            .arg("memcheck")
            .args(["--single", &arch.name()])
            .args(["--steps", &self.steps.to_string()])
            .args(["--batch-size", &self.batch_size.to_string()])
            .args(["--warmup", &self.warmup.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("starting the memcheck child")?;
        if !output.status.success() {
            bail!("memcheck of {arch} failed ({})", output.status);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        serde_json::from_str(line).with_context(|| format!("parsing the memcheck reading of {arch}"))
    }

    /// Trains `arch` in this process while a sampler thread reads resident memory per step.
    fn measure(&self, arch: Arch) -> anyhow::Result<Reading> {
        let tmp = tempfile::tempdir()?;
        let cfg = self.config(arch);
        let run = RunDir::create(tmp.path(), &cfg)?;
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (done, metrics) = (done.clone(), run.path("metrics.csv"));
            std::thread::spawn(move || sample(&metrics, &done))
        };
        let trained = desdis_train::train(&cfg, &run, false, &candle_core::Device::Cpu);
        done.store(true, Ordering::Relaxed);
        let samples = sampler.join().map_err(|_| anyhow::anyhow!("the memory sampler panicked"))?;
        trained.with_context(|| format!("training {arch}"))?;
        reading(arch, &samples, self.warmup as u64)
    }

    fn config(&self, arch: Arch) -> TrainConfig {
        let recipe = match arch {
            Arch::SosNet => LossKind::SosNet,
            Arch::HyNet => LossKind::HyNet,
            Arch::L2Net => LossKind::L2Net,
            Arch::TFeat => LossKind::TFeat,
            _ => LossKind::HardNet,
        };
        let mut cfg = TrainConfig::for_teacher(recipe);
        cfg.arch = arch;
        cfg.epochs = 1;
        cfg.batch_size = self.batch_size;
        cfg.pairs_per_epoch = self.steps * self.batch_size;
        cfg.validation_pairs = 0;
        cfg.data = DataSource::Embedded { config: Default::default(), cache_dir: None, limit: None };
        cfg
    }
}

/// `(step, resident MB)` every 50 ms until `done`; the step is the number of rows in `metrics`.
fn sample(metrics: &Path, done: &AtomicBool) -> Vec<(u64, f64)> {
    let mut samples = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let steps = std::fs::read_to_string(metrics).map_or(0, |t| t.lines().count().saturating_sub(1));
        if let Some(mb) = resident_mb() {
            samples.push((steps as u64, mb));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    samples
}

/// This process's resident set size in MB, from `/proc/self/statm` (Linux only).
fn resident_mb() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

/// The largest reading at the first sampled step at or after `warmup`, and the last reading.
fn reading(arch: Arch, samples: &[(u64, f64)], warmup: u64) -> anyhow::Result<Reading> {
    let Some(&(last_step, last_mb)) = samples.last() else {
        bail!("{arch}: no memory readings (is /proc mounted?)");
    };
    let baseline_step = samples.iter().map(|s| s.0).find(|&s| s >= warmup).unwrap_or(last_step);
    let baseline_mb =
        samples.iter().filter(|s| s.0 == baseline_step).map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let peak_mb = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    Ok(Reading { arch: arch.name(), baseline_step, baseline_mb, last_step, last_mb, peak_mb })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_measured_from_the_first_step_after_warmup() -> anyhow::Result<()> {
        let samples = [(0, 10.0), (5, 50.0), (12, 60.0), (12, 62.0), (30, 100.0)];
        let r = reading(Arch::HardNet, &samples, 10)?;
        assert_eq!((r.baseline_step, r.last_step), (12, 30));
        assert_eq!((r.baseline_mb, r.last_mb, r.peak_mb), (62.0, 100.0, 100.0));
        assert_eq!(r.growth_mb(), 38.0);
        Ok(())
    }

    #[test]
    fn resident_memory_is_readable() {
        assert!(resident_mb().is_some_and(|mb| mb > 0.0));
    }
}
