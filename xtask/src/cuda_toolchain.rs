//! `cargo xtask cuda-toolchain`: a CUDA 13 build toolchain for machines without a GPU or a CUDA
//! install, made of NVIDIA's PyPI wheels in a cached local prefix.
//!
//! candle's `cuda` feature needs `nvcc` at build time (its kernels are compiled to PTX and a static
//! library) and links against the driver (`libcuda.so.1`), NVRTC, cuBLAS(Lt), cuRAND and the CUDA
//! runtime. The wheels provide everything but the driver, under `site-packages/nvidia/cu13`, which
//! works as a CUDA root. The driver comes with the GPU, so for linking only we build a stub
//! `libcuda.so.1` that exports the driver functions cudarc binds; at run time the loader must find
//! the real one of the GPU machine, which is why the stub never goes into an rpath.
//!
//! The versions are pinned to the 13.0 line: PTX from a 13.0 `nvcc` loads on any CUDA 13 driver,
//! and an unpinned `nvidia-nvvm` pulls a newer release whose `cicc` emits PTX the 13.0 `ptxas`
//! rejects. The `-cu12` nvcc wheels cannot be used at all: they ship `ptxas` without `nvcc`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The wheels, exactly pinned (see the module docs for why).
pub const WHEELS: [&str; 8] = [
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-curand==10.4.0.35",
    "nvidia-cublas==13.0.2.14",
];

/// Compute capability the kernels are built for when none is given: H100 and H200.
pub const DEFAULT_COMPUTE_CAP: &str = "90";

/// Written into the prefix after a complete install; holds the wheel list it was made from.
const MARKER: &str = ".desdis-cuda-toolchain";

/// Installs (once) the CUDA 13 wheels into a local prefix, adds the link-time pieces they lack, and
/// prints the environment to export before `cargo build --features cuda`.
///
/// Use as `eval "$(cargo xtask cuda-toolchain)"`: progress goes to stderr, the `export` lines to
/// stdout. Needs `python3` with pip, a C compiler (`cc`) and, the first time, access to PyPI.
#[derive(clap::Args, Debug)]
pub struct CudaToolchain {
    /// Install prefix (default: `target/cuda-toolchain` in the workspace); reused when complete.
    #[arg(long)]
    prefix: Option<PathBuf>,
    /// Python interpreter whose pip installs the wheels.
    #[arg(long, env = "DESDIS_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// GPU compute capability to build the kernels for (`CUDA_COMPUTE_CAP`; 90 = H100/H200).
    #[arg(long, default_value = DEFAULT_COMPUTE_CAP)]
    compute_cap: String,
    /// Reinstall the wheels and rebuild the stub even when the prefix is complete.
    #[arg(long)]
    force: bool,
}

impl CudaToolchain {
    /// A request for the default prefix and compute capability (for the other xtasks).
    pub fn defaults() -> Self {
        Self {
            prefix: None,
            python: std::env::var_os("DESDIS_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from),
            compute_cap: DEFAULT_COMPUTE_CAP.into(),
            force: false,
        }
    }

    pub fn run(self) -> anyhow::Result<()> {
        let toolchain = self.ensure()?;
        print!("{}", toolchain.exports());
        Ok(())
    }

    /// Installs what is missing and returns the finished toolchain.
    pub fn ensure(&self) -> anyhow::Result<Toolchain> {
        let prefix = match &self.prefix {
            Some(p) => absolute(p)?,
            None => crate::stdx::workspace_root().join("target/cuda-toolchain"),
        };
        if self.compute_cap.is_empty() || !self.compute_cap.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("--compute-cap {:?}: expected a number such as 90 (or 90a)", self.compute_cap);
        }
        let toolchain =
            Toolchain { root: prefix.join("nvidia/cu13"), compute_cap: self.compute_cap.clone(), prefix };
        let wanted = WHEELS.join("\n");
        let marker = toolchain.prefix.join(MARKER);
        let installed = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == wanted);
        if self.force || !installed || !toolchain.nvcc().is_file() {
            install_wheels(&self.python, &toolchain.prefix)?;
            // Written last, so an interrupted install is redone rather than trusted.
            std::fs::write(&marker, &wanted).with_context(|| format!("writing {}", marker.display()))?;
        } else {
            eprintln!("cuda-toolchain: wheels already in {}", toolchain.prefix.display());
        }
        link_unversioned(&toolchain.lib_dir())?;
        build_driver_stub(&toolchain.stub_dir(), self.force)?;
        toolchain.check_nvcc()?;
        Ok(toolchain)
    }
}

/// A CUDA root made of wheels plus the driver stub.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The pip `--target` folder.
    pub prefix: PathBuf,
    /// `<prefix>/nvidia/cu13`: `bin/nvcc`, `include`, `lib`, `nvvm`.
    pub root: PathBuf,
    /// `CUDA_COMPUTE_CAP` for candle's kernel build.
    pub compute_cap: String,
}

/// `cargo build --release -p desdis-cli --features cuda`: the `desdis` binary with CUDA.
pub const BUILD_CUDA_CLI: &[&str] = &["build", "--release", "-p", "desdis-cli", "--features", "cuda"];
/// `cargo` arguments that build the GPU check's benchmark binary with CUDA support.
pub const BUILD_CUDA_GPU_CHECK: &[&str] =
    &["build", "--release", "-p", "desdis-gpu-check", "--features", "cuda"];

impl Toolchain {
    /// Runs `cargo <args>` from `root` with this toolchain's environment and `target_dir` as the
    /// target folder (kept apart so the cuda build never evicts the CPU one); `label` prefixes
    /// the log lines. Fails when cargo does.
    pub fn cargo(&self, root: &Path, target_dir: &Path, args: &[&str], label: &str) -> anyhow::Result<()> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.args(args).current_dir(root).env("CARGO_TARGET_DIR", target_dir).envs(self.env());
        eprintln!("{label}: cargo {} (target {})", args.join(" "), target_dir.display());
        let started = std::time::Instant::now();
        let status = cmd.status().with_context(|| format!("running {cargo}"))?;
        if !status.success() {
            bail!("the cuda build failed ({status})");
        }
        eprintln!("{label}: ok in {:.0} s", started.elapsed().as_secs_f64());
        Ok(())
    }

    pub fn nvcc(&self) -> PathBuf {
        self.root.join("bin/nvcc")
    }

    /// The wheels' shared libraries (cuBLAS, cuRAND, NVRTC, the runtime).
    pub fn lib_dir(&self) -> PathBuf {
        self.root.join("lib")
    }

    /// Holds only the link-time `libcuda.so` stub. Kept apart from `lib_dir` and outside any CUDA
    /// search path cudarc derives from `CUDA_ROOT`: cargo puts build-script search paths that lie
    /// inside the target folder on the library path of `cargo run`/`cargo test`, and a stub found
    /// there on a GPU machine would hide the real driver.
    pub fn stub_dir(&self) -> PathBuf {
        self.prefix.join("driver-stub")
    }

    /// The variables a `cargo build --features cuda` needs, as (name, value) pairs; `PATH`,
    /// `LIBRARY_PATH` and `LD_LIBRARY_PATH` get the current value appended.
    pub fn env(&self) -> Vec<(String, String)> {
        let root = self.root.display().to_string();
        let with_current = |name: &str, front: Vec<PathBuf>| {
            let mut parts: Vec<String> = front.iter().map(|p| p.display().to_string()).collect();
            parts.extend(std::env::var(name).ok().filter(|v| !v.is_empty()));
            parts.join(":")
        };
        vec![
            ("CUDA_HOME".into(), root.clone()),
            ("CUDA_ROOT".into(), root.clone()),
            ("CUDA_PATH".into(), root),
            ("CUDA_COMPUTE_CAP".into(), self.compute_cap.clone()),
            ("PATH".into(), with_current("PATH", vec![self.root.join("bin")])),
            ("LIBRARY_PATH".into(), with_current("LIBRARY_PATH", vec![self.stub_dir(), self.lib_dir()])),
            (
                "LD_LIBRARY_PATH".into(),
                with_current("LD_LIBRARY_PATH", vec![self.lib_dir(), self.stub_dir()]),
            ),
        ]
    }

    /// Shell `export` lines for [`Toolchain::env`], referring to the current values symbolically.
    pub fn exports(&self) -> String {
        let root = shell_quote(&self.root.display().to_string());
        let stub = shell_quote(&self.stub_dir().display().to_string());
        let lib = shell_quote(&self.lib_dir().display().to_string());
        format!(
            "# CUDA 13 build toolchain from wheels ({prefix}).\n\
             export CUDA_HOME={root}\n\
             export CUDA_ROOT={root}\n\
             export CUDA_PATH={root}\n\
             export CUDA_COMPUTE_CAP={cap}\n\
             export PATH={root}/bin${{PATH:+:$PATH}}\n\
             # Link time: the driver stub and the wheels' libraries.\n\
             export LIBRARY_PATH={stub}:{lib}${{LIBRARY_PATH:+:$LIBRARY_PATH}}\n\
             # Run time on this machine only (the stub reports no GPU, so cuda builds fall back to the\n\
             # CPU). On a GPU machine use the real driver instead: leave the stub off this path.\n\
             export LD_LIBRARY_PATH={lib}:{stub}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n",
            prefix = self.prefix.display(),
            cap = self.compute_cap,
        )
    }

    /// Runs `nvcc --version` with this environment: the check that the wheels form a compiler.
    fn check_nvcc(&self) -> anyhow::Result<()> {
        let output = Command::new(self.nvcc())
            .arg("--version")
            .envs(self.env())
            .output()
            .with_context(|| format!("running {}", self.nvcc().display()))?;
        if !output.status.success() {
            bail!("{} --version failed: {}", self.nvcc().display(), String::from_utf8_lossy(&output.stderr));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let release = text.lines().find(|l| l.contains("release")).unwrap_or("").trim();
        eprintln!("cuda-toolchain: {release}");
        Ok(())
    }
}

/// `pip install --target prefix` of [`WHEELS`], after checking Python and pip are there.
fn install_wheels(python: &Path, prefix: &Path) -> anyhow::Result<()> {
    let probe = Command::new(python).args(["-m", "pip", "--version"]).output();
    match probe {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{}` not found: the CUDA toolchain is installed from PyPI wheels and needs Python 3 with pip \
             (install python3 and python3-pip, or pass --python / set DESDIS_PYTHON)",
            python.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("running {}", python.display())),
        Ok(out) if !out.status.success() => bail!(
            "`{} -m pip` does not work ({}): install pip (`{0} -m ensurepip --upgrade` or the python3-pip \
             package)",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }
    // A partial earlier install may hold other versions: start from an empty `nvidia` folder.
    let nvidia = prefix.join("nvidia");
    if nvidia.exists() {
        std::fs::remove_dir_all(&nvidia).with_context(|| format!("removing {}", nvidia.display()))?;
    }
    std::fs::create_dir_all(prefix).with_context(|| format!("creating {}", prefix.display()))?;
    eprintln!("cuda-toolchain: installing {} wheels into {} (about 1.2 GB)", WHEELS.len(), prefix.display());
    // `--no-deps`: the list is complete and exact; letting pip resolve would upgrade nvvm.
    let status = Command::new(python)
        .args(["-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check", "--upgrade"])
        .arg("--target")
        .arg(prefix)
        .args(WHEELS)
        // Pip's progress goes to stderr with ours: stdout carries only the `export` lines.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {} -m pip", python.display()))?;
    if !status.success() {
        bail!("pip could not install the CUDA wheels ({status}); is PyPI reachable?");
    }
    Ok(())
}

/// Adds `libX.so -> libX.so.N` for every versioned library in `lib`: the wheels ship only the
/// versioned names, and the linker's `-lX` looks for the unversioned one.
fn link_unversioned(lib: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(lib).with_context(|| format!("reading {}", lib.display()))?;
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = unversioned_name(&name) else { continue };
        let link = lib.join(&stem);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(&name, &link)
                .with_context(|| format!("linking {} -> {name}", link.display()))?;
        }
    }
    Ok(())
}

/// `libcublas.so.13` -> `libcublas.so`; `None` for anything else (unversioned names, the `.alt`
/// variants, two-part versions such as `libnvrtc-builtins.so.13.0`, which nothing links by name).
fn unversioned_name(name: &str) -> Option<String> {
    let (stem, version) = name.split_once(".so.")?;
    let plain_stem = stem.starts_with("lib") && !stem.contains('.');
    let plain_version = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit());
    (plain_stem && plain_version).then(|| format!("{stem}.so"))
}

/// Builds `libcuda.so.1` (and `libcuda.so`) in `dir`: every driver function of cudarc's bindings as
/// a C function returning `CUDA_ERROR_UNKNOWN`, so that even if the stub were loaded by mistake a
/// program would see a failing driver rather than a working one.
fn build_driver_stub(dir: &Path, force: bool) -> anyhow::Result<()> {
    let lib = dir.join("libcuda.so.1");
    if lib.is_file() && !force {
        return Ok(());
    }
    let symbols = driver_symbols()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let source = dir.join("libcuda_stub.c");
    let mut c = String::from(
        "/* Link-time stand-in for the CUDA driver, generated by `cargo xtask cuda-toolchain`.\n   \
         Never load it: every function fails with CUDA_ERROR_UNKNOWN. */\n",
    );
    for name in &symbols {
        c.push_str(&format!("int {name}(void) {{ return 999; }}\n"));
    }
    std::fs::write(&source, c).with_context(|| format!("writing {}", source.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O0", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(&lib)
        .arg(&source)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no C compiler `{cc}` (set CC): the driver stub is compiled from C")
        }
        Err(e) => return Err(e).with_context(|| format!("running {cc}")),
        Ok(s) if !s.success() => bail!("{cc} failed to build {} ({s})", lib.display()),
        Ok(_) => {}
    }
    let link = dir.join("libcuda.so");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("libcuda.so.1", &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    eprintln!("cuda-toolchain: driver stub with {} functions in {}", symbols.len(), dir.display());
    Ok(())
}

/// The driver functions cudarc's bindings declare, read from its source as cargo resolved it.
/// Every CUDA version's functions are included: exporting extra names costs nothing.
fn driver_symbols() -> anyhow::Result<BTreeSet<String>> {
    let sys = cudarc_dir()?.join("src/driver/sys/mod.rs");
    let text = std::fs::read_to_string(&sys).with_context(|| format!("reading {}", sys.display()))?;
    let symbols = parse_driver_symbols(&text);
    if symbols.len() < 100 {
        bail!(
            "{}: found only {} driver functions; has the binding layout changed?",
            sys.display(),
            symbols.len()
        );
    }
    Ok(symbols)
}

/// Names of the top-level `pub unsafe fn cuXxx(` wrappers of a cudarc `sys` module.
fn parse_driver_symbols(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("pub unsafe fn "))
        .map(|rest| rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or(""))
        .filter(|name| name.starts_with("cu") && name.len() > 2)
        .map(str::to_string)
        .collect()
}

/// The source folder of the `cudarc` crate that the `cuda` feature builds.
fn cudarc_dir() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--features", "desdis-models/cuda"])
        .current_dir(crate::stdx::workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo} metadata"))?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "cudarc")
        .and_then(|p| p["manifest_path"].as_str())
        .context("cargo metadata lists no `cudarc` package for the cuda feature")?;
    Ok(Path::new(manifest).parent().context("cudarc manifest has no folder")?.to_path_buf())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

/// Single-quotes `s` for a POSIX shell unless it is made of safe characters only.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_libraries_get_plain_names() {
        assert_eq!(unversioned_name("libcublas.so.13").as_deref(), Some("libcublas.so"));
        assert_eq!(unversioned_name("libcurand.so.10").as_deref(), Some("libcurand.so"));
        assert_eq!(unversioned_name("libnvrtc.alt.so.13"), None);
        assert_eq!(unversioned_name("libnvrtc-builtins.so.13.0"), None);
        assert_eq!(unversioned_name("libcudart_static.a"), None);
        assert_eq!(unversioned_name("libcublas.so"), None);
    }

    #[test]
    fn driver_symbols_come_from_top_level_wrappers() {
        let text = "pub unsafe fn cuInit(Flags: c_uint) -> CUresult {\n    extern \"C\" {\n        \
                    fn cuInit(Flags: c_uint) -> CUresult;\n    }\n}\npub unsafe fn cuMemAlloc_v2(p: *mut u64) \
                    -> CUresult {}\npub fn culib() {}\npub unsafe fn helper() {}\n";
        let names: Vec<String> = parse_driver_symbols(text).into_iter().collect();
        assert_eq!(names, ["cuInit", "cuMemAlloc_v2"]);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a/b-c_1.2"), "/a/b-c_1.2");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
