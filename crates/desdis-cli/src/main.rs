//! `desdis`: describe patches with learned descriptors, train and evaluate descriptor nets, and match photos.

mod commands;
mod input;
mod pipeline;
mod train;

use std::io::IsTerminal;

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
    /// Detect and describe keypoints on photos; write them in hloc's features.h5 layout.
    Extract(pipeline::Extract),
    /// Match features of image pairs (hloc's matches.h5), or run the whole chain on two photos.
    Match(pipeline::MatchCmd),
    /// Export features and matches for other tools (COLMAP, the HPatches benchmark).
    #[command(subcommand)]
    Export(pipeline::Export),
}

fn main() {
    desdis_kernels::memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DESDIS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: in a log file or a pipe they are noise.
        .with_ansi(color_stderr())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Describe(cmd) => cmd.run(),
        Command::Eval(cmd) => cmd.run(),
        Command::Train(cmd) => cmd.run(),
        Command::Distill(cmd) => cmd.run(),
        Command::Extract(cmd) => cmd.run(),
        Command::Match(cmd) => cmd.run(),
        Command::Export(cmd) => cmd.run(),
    };
    if let Err(err) = result {
        eprintln!("error: {}", error_chain(&err));
        std::process::exit(1);
    }
}

fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The error and its causes on one line, each cause once: many errors already print their
/// source in their own message (`path: io error`), and repeating it would say everything twice.
fn error_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("data.npy: {source}")]
    struct WithSource {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(WithSource { source: io }).context("describing failed");
        assert_eq!(error_chain(&err), "describing failed: data.npy: disk on fire");
    }
}
