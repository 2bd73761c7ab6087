//! Project automation. `cargo xtask reproduce` trains teachers, distils students and writes the
//! results table; `cargo xtask train` runs one training config; `cargo xtask bench` times the nets;
//! `cargo xtask ship-weights` updates the default weights in `data/weights/`; `cargo xtask
//! cuda-toolchain` sets up a CUDA build on a machine without one, `cargo xtask gpu-check` packs the
//! GPU self-check bundle, `cargo xtask ci-cuda` checks that the `cuda` feature compiles and
//! `cargo xtask memcheck` that training holds its memory flat.

mod bench;
mod bench_images;
mod ci_cuda;
mod cuda_toolchain;
mod gpu_check;
mod memcheck;
mod plots;
mod report;
mod reproduce;
mod ship_weights;
mod stdx;
mod ubc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Project tasks.
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train teachers, distill students, run the ablations and write docs/results.md (offline).
    Reproduce(reproduce::ReproduceArgs),
    /// Run one training configuration (TOML) into a run directory.
    Train(TrainArgs),
    /// Time every net (inference, train steps) against PyTorch when available; writes docs/performance.md.
    Bench(bench::Bench),
    /// Time `desdis extract` / `desdis match` on HPatches against OpenCV SIFT and kornia; MMA; writes docs/pipeline.md.
    BenchImages(bench_images::BenchImages),
    /// Copy a trained light student into data/weights/ (the default weights of `desdis describe`).
    ShipWeights(ship_weights::ShipWeights),
    /// Install a CUDA 13 build toolchain from PyPI wheels (cached) and print the environment to export.
    CudaToolchain(cuda_toolchain::CudaToolchain),
    /// Build the `cuda` binary and pack the self-contained GPU check bundle (run.sh + binary + scripts).
    GpuCheck(gpu_check::GpuCheck),
    /// Check that the `cuda` feature compiles (toolchain + `cargo check --features cuda`).
    CiCuda(ci_cuda::CiCuda),
    /// Train each net a few hundred steps and fail if resident memory grows after warm-up.
    Memcheck(memcheck::MemCheck),
}

/// Runs one training configuration (TOML) into a run directory.
#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Training config (TOML); defaults apply to every field it omits.
    #[arg(long)]
    config: PathBuf,
    /// Run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue from the run directory's latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Device: `cpu`, `cuda` or `cuda:N` (default: the first GPU when built with `--features cuda`
    /// and one is present, else the CPU).
    #[arg(long)]
    device: Option<String>,
}

fn main() {
    desdis_kernels::memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Reproduce(args) => run_reproduce(&args),
        Command::Train(args) => train(&args),
        Command::Bench(bench) => bench.run(),
        Command::BenchImages(cmd) => cmd.run(),
        Command::ShipWeights(cmd) => cmd.run(),
        Command::CudaToolchain(cmd) => cmd.run(),
        Command::GpuCheck(cmd) => cmd.run(),
        Command::CiCuda(cmd) => cmd.run(),
        Command::Memcheck(cmd) => cmd.run(),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

/// `cargo xtask reproduce`: the embedded experiment, or with `--full` the UBC PhotoTour protocol.
/// Dispatched here so that `ubc` uses `reproduce` and not the other way round.
fn run_reproduce(args: &reproduce::ReproduceArgs) -> anyhow::Result<()> {
    let settings = reproduce::Settings::from_args(args)?;
    if args.full {
        ubc::run(args, &settings.kinds, settings.seeds, &settings.device)
    } else {
        reproduce::run(args, &settings)
    }
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let cfg = desdis_train::TrainConfig::load(&args.config)?;
    let run = if args.resume {
        desdis_train::RunDir::open(&args.out)?
    } else {
        desdis_train::RunDir::create(&args.out, &cfg)?
    };
    let device = desdis_models::device::select_device(args.device.as_deref())?;
    let summary = desdis_train::train(&cfg, &run, args.resume, &device)
        .with_context(|| format!("training into {}", args.out.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
