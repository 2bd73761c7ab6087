//! `cargo xtask ci-cuda`: proves the `cuda` feature compiles on a machine without CUDA. `.ci/run`
//! calls it last: the first run downloads about 1.2 GB of wheels and compiles candle's kernels
//! (about 10 minutes on two cores), later runs reuse both.

use crate::cuda_toolchain::{CudaToolchain, BUILD_CUDA_CLI};

/// Installs the CUDA toolchain (cached) and runs `cargo check --features cuda` on the workspace
/// crates that have the feature, in their own target folder (`target/cuda` by default).
#[derive(clap::Args, Debug)]
pub struct CiCuda {
    /// Cargo target folder of the cuda build (kept apart so it does not evict the CPU build).
    #[arg(long, env = "DESDIS_CUDA_TARGET_DIR")]
    target_dir: Option<std::path::PathBuf>,
    /// `cargo build --release` of the `desdis` binary instead of `cargo check` (also links it).
    #[arg(long)]
    build: bool,
}

impl CiCuda {
    pub fn run(self) -> anyhow::Result<()> {
        let toolchain = CudaToolchain::defaults().ensure()?;
        let root = crate::stdx::workspace_root();
        let target_dir = self.target_dir.unwrap_or_else(|| root.join("target/cuda"));
        if self.build {
            return toolchain.cargo(&root, &target_dir, BUILD_CUDA_CLI, "ci-cuda");
        }
        // `--release`: the kernels candle's build script compiles are then shared with the
        // release build of `xtask gpu-check` in the same target folder.
        let mut args = vec!["check", "--release", "--all-targets", "--features", "cuda"];
        for krate in [
            "desdis-models",
            "desdis-loss",
            "desdis-data",
            "desdis-eval",
            "desdis-train",
            "desdis-cli",
            "desdis-gpu-check",
            "xtask",
        ] {
            args.extend(["-p", krate]);
        }
        toolchain.cargo(&root, &target_dir, &args, "ci-cuda")
    }
}
