//! `desdis-gpu-check`: what a GPU machine must show before the project trusts it (see
//! [`check`]). A benchmark binary apart from the user's `desdis` command; `cargo xtask gpu-check`
//! builds it with `--features cuda` and packs it with the PyTorch scripts.

mod check;

use clap::Parser;

fn main() {
    desdis_kernels::memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DESDIS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if let Err(err) = check::GpuCheck::parse().run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
