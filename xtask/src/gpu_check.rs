//! `cargo xtask gpu-check`: builds the `desdis-gpu-check` benchmark binary with `--features cuda` on this (CPU-only)
//! machine and packs it with the scripts a GPU machine runs, into one self-contained folder.
//!
//! The GPU machine needs no Rust and no network: `run.sh` finds the CUDA libraries in its PyTorch
//! wheels, runs `desdis-gpu-check` (parity against the CPU, timings, a short distillation), then
//! `bench_torch.py` on the same nets and card, and writes everything under `$OUT`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::cuda_toolchain::{CudaToolchain, Toolchain};

const RUN_SH: &str = include_str!("../gpu_check/run.sh");
const SUMMARY_PY: &str = include_str!("../gpu_check/summary.py");
const BENCH_TORCH_PY: &str = include_str!("../bench_torch.py");
/// What a bundle may weigh in all: it travels to the GPU machine with the repository.
const MAX_BUNDLE_BYTES: u64 = 60 * 1024 * 1024;
/// The one CUDA library the binary needs that recent PyTorch CUDA 13 wheels no longer carry; the
/// bundle holds it compressed and `run.sh` unpacks it only when the machine lacks it.
const CURAND: &str = "libcurand.so.10";
/// The benchmark binary the bundle carries.
const BINARY: &str = "desdis-gpu-check";

/// Builds `desdis-gpu-check` with CUDA support and packs `run.sh`, the binary and the PyTorch scripts into
/// a folder to copy to a GPU machine; `--dry-run` then runs that bundle here on the CPU.
#[derive(clap::Args, Debug)]
pub struct GpuCheck {
    /// Bundle folder (default: target/gpu-check); replaced.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cargo target folder of the cuda build, apart from the CPU one (default: target/cuda).
    #[arg(long, env = "DESDIS_CUDA_TARGET_DIR")]
    target_dir: Option<PathBuf>,
    /// Pack the binary already built in the target folder instead of running cargo.
    #[arg(long)]
    no_build: bool,
    /// Afterwards run the bundle on this machine's CPU with small sizes (`--device cpu --quick`),
    /// output in target/gpu-check-dry-run.
    #[arg(long)]
    dry_run: bool,
}

impl GpuCheck {
    pub fn run(self) -> anyhow::Result<()> {
        let root = crate::stdx::workspace_root();
        let toolchain = CudaToolchain::defaults().ensure()?;
        let target_dir = self.target_dir.clone().unwrap_or_else(|| root.join("target/cuda"));
        if !self.no_build {
            build(&root, &target_dir, &toolchain)?;
        }
        let binary = target_dir.join(format!("release/{BINARY}"));
        if !binary.is_file() {
            bail!("{} is missing: build it (drop --no-build)", binary.display());
        }
        let bundle = self.out.clone().unwrap_or_else(|| root.join("target/gpu-check"));
        pack(&root, &binary, &bundle, &toolchain)?;
        let size = folder_size(&bundle)?;
        eprintln!("gpu-check: bundle {} ({:.1} MiB)", bundle.display(), size as f64 / (1024.0 * 1024.0));
        if size > MAX_BUNDLE_BYTES {
            bail!("the bundle weighs {size} bytes, more than the {MAX_BUNDLE_BYTES} allowed");
        }
        let shown = bundle.strip_prefix(&root).unwrap_or(&bundle);
        println!(
            "On the GPU machine, from the repository root: OUT=<folder> bash {}/run.sh",
            shown.display()
        );
        if self.dry_run {
            dry_run(&root, &bundle, &toolchain)?;
        }
        Ok(())
    }
}

fn build(root: &Path, target_dir: &Path, toolchain: &Toolchain) -> anyhow::Result<()> {
    toolchain.cargo(root, target_dir, crate::cuda_toolchain::BUILD_CUDA_GPU_CHECK, "gpu-check")
}

/// Writes the bundle: the binary without debug info and cuRAND, both xz-compressed (the kernels
/// candle compiles in make the binary alone larger than the bundle may be), the scripts, and a
/// manifest of the build.
fn pack(root: &Path, binary: &Path, bundle: &Path, toolchain: &Toolchain) -> anyhow::Result<()> {
    if bundle.exists() {
        std::fs::remove_dir_all(bundle).with_context(|| format!("removing {}", bundle.display()))?;
    }
    std::fs::create_dir_all(bundle).with_context(|| format!("creating {}", bundle.display()))?;
    let stripped = bundle.join(format!("{BINARY}.stripped"));
    // Debug info is a large part of the binary; the symbol table stays for readable backtraces.
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("gpu-check: `strip` unavailable or failed; packing the binary as it is");
        std::fs::copy(binary, &stripped).with_context(|| format!("copying {}", binary.display()))?;
    }
    eprintln!("gpu-check: compressing the binary");
    xz(&stripped, &bundle.join(format!("{BINARY}.xz")))?;
    std::fs::remove_file(&stripped).with_context(|| format!("removing {}", stripped.display()))?;
    // Compressing cuRAND takes minutes: done once per toolchain.
    let curand_xz = toolchain.prefix.join(format!("{CURAND}.xz"));
    if !curand_xz.is_file() {
        eprintln!("gpu-check: compressing {CURAND} (once)");
        xz(&toolchain.lib_dir().join(CURAND), &curand_xz)?;
    }
    std::fs::copy(&curand_xz, bundle.join(format!("{CURAND}.xz")))
        .with_context(|| format!("copying {}", curand_xz.display()))?;
    write(bundle, "run.sh", RUN_SH, true)?;
    write(bundle, "summary.py", SUMMARY_PY, false)?;
    write(bundle, "bench_torch.py", BENCH_TORCH_PY, false)?;
    write(bundle, "MANIFEST.txt", &manifest(root, toolchain), false)?;
    Ok(())
}

/// `xz -9` of `src` into `dest` (through a temporary name, so a cut run leaves no truncated file).
fn xz(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let temp = dest.with_extension("xz.partial");
    let file = std::fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let status = Command::new("xz").args(["-9", "-T0", "-c"]).arg(src).stdout(file).status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("`xz` not found: install xz-utils (the bundle is compressed to fit its size limit)")
        }
        Err(e) => return Err(e).context("running xz"),
        Ok(s) if !s.success() => bail!("xz failed on {} ({s})", src.display()),
        Ok(_) => {}
    }
    std::fs::rename(&temp, dest).with_context(|| format!("renaming {}", temp.display()))
}

fn write(bundle: &Path, name: &str, text: &str, executable: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = bundle.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Which sources and toolchain made the binary.
fn manifest(root: &Path, toolchain: &Toolchain) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let dirty =
        if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { " (modified)" };
    format!(
        "desdis gpu-check bundle\ncommit: {}{dirty}\nfeatures: cuda\nCUDA: 13.0 wheels {}\ncompute capability: {}\n",
        git(&["rev-parse", "--short", "HEAD"]),
        crate::cuda_toolchain::WHEELS.join(" "),
        toolchain.compute_cap,
    )
}

fn folder_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let meta = entry?.metadata()?;
        total += if meta.is_dir() { 0 } else { meta.len() };
    }
    Ok(total)
}

/// Runs the bundle on this machine's CPU, with the toolchain's libraries and the driver stub in
/// place of the GPU machine's (the stub makes CUDA unavailable, so the binary must stay on the CPU).
fn dry_run(root: &Path, bundle: &Path, toolchain: &Toolchain) -> anyhow::Result<()> {
    let out = root.join("target/gpu-check-dry-run");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    let libs = format!("{}:{}", toolchain.lib_dir().display(), toolchain.stub_dir().display());
    eprintln!("gpu-check: dry run on the CPU into {}", out.display());
    let status = Command::new("bash")
        .arg(bundle.join("run.sh"))
        .args(["--device", "cpu", "--quick"])
        .current_dir(root)
        .env("OUT", &out)
        .env("DESDIS_CUDA_LIBS", libs)
        .status()
        .context("running bash")?;
    if !status.success() {
        bail!("the dry run failed ({status}); see {}", out.display());
    }
    Ok(())
}
