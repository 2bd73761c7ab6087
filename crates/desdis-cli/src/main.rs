//! `desdis`: describe patches with learned descriptors, and evaluate descriptor nets.

mod commands;
mod gpu_check;
mod input;
mod train;

use clap::{Parser, Subcommand};

/// Learned local patch descriptors (HardNet, SOSNet, HyNet, L2-Net, TFeat, DesDis students).
#[derive(Parser, Debug)]
#[command(name = "desdis", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compute descriptors of 32x32 patches and save them as a float32 (N, D) .npy.
    Describe(commands::Describe),
    /// Score a net: FPR95 on PhotoTour pairs, or HPatches-style mAP on an image sequence.
    Eval(commands::Eval),
    /// Train a descriptor net from scratch with a published recipe (HardNet, SOSNet, HyNet, TFeat, L2-Net).
    Train(train::Train),
    /// Distill a student (equal-weight or light DesDis) from a frozen teacher.
    Distill(train::Distill),
    /// Check a GPU against the CPU: descriptor parity, speed, a short distillation (JSON report).
    GpuCheck(gpu_check::GpuCheck),
}

fn main() {
    desdis_models::memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DESDIS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Describe(cmd) => cmd.run(),
        Command::Eval(cmd) => cmd.run(),
        Command::Train(cmd) => cmd.run(),
        Command::Distill(cmd) => cmd.run(),
        Command::GpuCheck(cmd) => cmd.run(),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
