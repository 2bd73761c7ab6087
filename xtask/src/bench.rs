//! `cargo xtask bench`: CPU speed of every net in candle against the same net in PyTorch.
//!
//! For each architecture it times inference (`forward_t(x, false)` on one batch) and full
//! training steps (two train-mode forwards, the recipe's triplet loss, backward, SGD with
//! momentum), each as the median of several runs after a warm-up. The weights are drawn from a
//! seed and saved as safetensors, so `xtask/bench_torch.py` loads exactly the same nets, checks
//! that its eval-mode descriptors match ours, and times the same work with the same thread count
//! in the same run. The table goes to `docs/performance.md` between the `bench` markers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use candle_core::{Device, ModuleT, Tensor};
use desdis_loss::{HardNetLoss, TfeatLoss, TripletLoss};
use desdis_models::arch::Arch;
use desdis_models::init::init_net;
use desdis_train::{named_vars, train_step, varmap_tensors, Objective, Optimizer, OptimizerConfig};
use serde::{Deserialize, Serialize};

const DEFAULT_ARCHS: &str = "hardnet,sosnet,hynet,l2net,tfeat,desdis-8,desdis-32";
const MARK_START: &str = "<!-- bench:start -->";
const MARK_END: &str = "<!-- bench:end -->";
/// Learning rate of the timed SGD steps (its value does not change the work).
const LR: f64 = 1e-3;
/// Patches in the descriptor check against PyTorch.
const CHECK_PATCHES: usize = 16;
/// Largest eval-mode descriptor difference accepted as "the same net".
const CHECK_TOLERANCE: f64 = 1e-3;

/// Times inference and training steps of the nets on the CPU, against PyTorch when available.
#[derive(clap::Args, Debug)]
pub struct Bench {
    /// Architectures to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_ARCHS)]
    archs: Vec<Arch>,
    /// Fewer repetitions (1 warm-up, median of 3) for a quick look.
    #[arg(long)]
    quick: bool,
    /// Warm-up runs before timing (default 2, or 1 with --quick).
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed runs, of which the median is reported (default 5, or 3 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Patches per inference batch.
    #[arg(long, default_value_t = 1024)]
    infer_batch: usize,
    /// Pairs per training step, comma-separated (each step runs 2x this many patches).
    #[arg(long, value_delimiter = ',', default_value = "128,512")]
    train_pairs: Vec<usize>,
    /// Threads for both sides (default: rayon's choice, `RAYON_NUM_THREADS` or all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// FMA peak of the machine in GFLOP/s that the achieved rates are compared with (the default
    /// was measured once on the 2-core AVX-512 development machine; it is not measured here).
    #[arg(long, default_value_t = 349.0)]
    peak_gflops: f64,
    /// Python with torch for the comparison (else `python3` if it imports torch).
    #[arg(long, env = "DESDIS_TORCH_PYTHON")]
    python: Option<PathBuf>,
    /// Skip the PyTorch comparison.
    #[arg(long)]
    no_torch: bool,
    /// Markdown file whose `bench` section gets the table.
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Print the table only; leave the docs alone.
    #[arg(long)]
    no_doc: bool,
    /// Also write the raw timings as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Median seconds of one architecture's runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Timings {
    /// One inference batch.
    infer_s: f64,
    /// One training step, by pairs per step.
    train_s: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
struct TorchArch {
    infer_s: f64,
    train_s: BTreeMap<String, f64>,
    check_max_abs_diff: f64,
}

#[derive(Debug, Deserialize)]
struct TorchReport {
    torch: String,
    threads: usize,
    results: HashMap<String, TorchArch>,
}

#[derive(Debug, Serialize)]
struct ArchResult {
    arch: String,
    macs_per_patch: u64,
    candle: Timings,
    torch: Option<Timings>,
    torch_check_max_abs_diff: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    cpu: String,
    threads: usize,
    torch_version: Option<String>,
    date_utc: String,
    warmup: usize,
    reps: usize,
    infer_batch: usize,
    train_pairs: Vec<usize>,
    peak_gflops: f64,
    results: Vec<ArchResult>,
}

impl Bench {
    /// Runs the benchmark, prints the table and updates the docs.
    pub fn run(self) -> anyhow::Result<()> {
        self.validate()?;
        let threads = self.setup_threads();
        let (warmup, reps) = self.repetitions();
        let python = if self.no_torch { None } else { find_torch_python(self.python.as_deref()) };
        let dir = ScratchDir::new()?;

        let mut results = Vec::new();
        // Each architecture runs on both sides before the next one starts, so that a change in
        // background load between them affects the two sides alike.
        let mut torch_version = None;
        for &arch in &self.archs {
            eprintln!("bench: {arch} (candle, {threads} threads)");
            let candle = self.bench_arch(arch, dir.path(), warmup, reps)?;
            let mut result = ArchResult {
                arch: arch.name(),
                macs_per_patch: arch.macs_per_patch(),
                candle,
                torch: None,
                torch_check_max_abs_diff: None,
            };
            if let Some(python) = &python {
                eprintln!("bench: {arch} (PyTorch, {})", python.display());
                let report = self.run_torch(python, arch, dir.path(), threads, warmup, reps)?;
                if report.threads != threads {
                    eprintln!("bench: warning: PyTorch ran {} threads, candle {threads}", report.threads);
                }
                let torch = report
                    .results
                    .get(&result.arch)
                    .with_context(|| format!("bench_torch.py returned no result for {arch}"))?;
                if torch.check_max_abs_diff > CHECK_TOLERANCE {
                    bail!(
                        "{arch}: PyTorch's descriptors differ from ours by up to {:.2e}: not the same net",
                        torch.check_max_abs_diff
                    );
                }
                result.torch = Some(Timings { infer_s: torch.infer_s, train_s: torch.train_s.clone() });
                result.torch_check_max_abs_diff = Some(torch.check_max_abs_diff);
                torch_version = Some(report.torch);
            }
            results.push(result);
        }
        if python.is_none() && !self.no_torch {
            eprintln!("bench: no Python with torch found (set DESDIS_TORCH_PYTHON or --python); candle only");
        }

        let report = Report {
            cpu: crate::stdx::cpu_model(),
            threads,
            torch_version,
            date_utc: utc_now(),
            warmup,
            reps,
            infer_batch: self.infer_batch,
            train_pairs: self.train_pairs.clone(),
            peak_gflops: self.peak_gflops,
            results,
        };
        let section = render(&report);
        println!("{section}");
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if !self.no_doc {
            let doc =
                self.doc.clone().unwrap_or_else(|| crate::stdx::workspace_root().join("docs/performance.md"));
            write_section(&doc, &section)?;
            eprintln!("bench: updated {}", doc.display());
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.archs.is_empty() {
            bail!("--archs names no architecture");
        }
        if self.infer_batch == 0 || self.train_pairs.iter().any(|&p| p < 2) {
            bail!("--infer-batch must be positive and every --train-pairs at least 2");
        }
        if self.reps == Some(0) {
            bail!("--reps must be at least 1");
        }
        if self.peak_gflops <= 0.0 {
            bail!("--peak-gflops must be positive");
        }
        Ok(())
    }

    /// Applies `--threads` to rayon (our kernels) and to candle's own matmuls, which read
    /// `RAYON_NUM_THREADS`; returns the count both sides use.
    fn setup_threads(&self) -> usize {
        if let Some(n) = self.threads.filter(|&n| n > 0) {
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            // Fails only if the pool already exists, in which case the count below says what we got.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        }
        rayon::current_num_threads()
    }

    fn repetitions(&self) -> (usize, usize) {
        let (warmup, reps) = if self.quick { (1, 3) } else { (2, 5) };
        (self.warmup.unwrap_or(warmup), self.reps.unwrap_or(reps))
    }

    /// Times one architecture in candle, leaving its weights and a descriptor check in `dir`.
    fn bench_arch(&self, arch: Arch, dir: &Path, warmup: usize, reps: usize) -> anyhow::Result<Timings> {
        let device = Device::Cpu;
        let (varmap, net) = init_net(arch, self.seed, &device)?;
        desdis_checkpoint::save_safetensors(
            &varmap_tensors(&varmap),
            &dir.join(format!("{arch}.safetensors")),
        )?;
        let scale = arch.input_range();
        let check_x = Tensor::rand(0f32, scale, (CHECK_PATCHES, 1, 32, 32), &device)?;
        let check_y = net.forward_t(&check_x, false)?;
        let check = HashMap::from([("x".to_string(), check_x), ("y".to_string(), check_y)]);
        desdis_checkpoint::save_safetensors(&check, &dir.join(format!("{arch}.check.safetensors")))?;

        let x = Tensor::rand(0f32, scale, (self.infer_batch, 1, 32, 32), &device)?;
        let infer_s = desdis_stdx::median_seconds::<anyhow::Error>(warmup, reps, || {
            net.forward_t(&x, false)?;
            Ok(())
        })?;

        let loss: Box<dyn TripletLoss> = match arch {
            Arch::TFeat => Box::new(TfeatLoss::default()),
            _ => Box::new(HardNetLoss::default()),
        };
        let objective = Objective::Plain(loss);
        let config = match arch {
            Arch::TFeat => OptimizerConfig::tfeat_sgd(),
            _ => OptimizerConfig::hardnet_sgd(),
        };
        let mut optimizer = Optimizer::new(config, named_vars(&varmap));
        let mut train_s = BTreeMap::new();
        for &pairs in &self.train_pairs {
            // The training step takes 0..1 patches and scales them to the net's range itself.
            let anchors = Tensor::rand(0f32, 1.0, (pairs, 1, 32, 32), &device)?;
            let noise = Tensor::rand(0f32, 0.05, (pairs, 1, 32, 32), &device)?;
            let positives = (&anchors + noise)?.clamp(0f32, 1.0)?;
            let seconds = desdis_stdx::median_seconds::<anyhow::Error>(warmup, reps, || {
                train_step(&objective, &net, &mut optimizer, &anchors, &positives, LR)?;
                Ok(())
            })?;
            train_s.insert(pairs.to_string(), seconds);
        }
        Ok(Timings { infer_s, train_s })
    }

    fn run_torch(
        &self,
        python: &Path,
        arch: Arch,
        dir: &Path,
        threads: usize,
        warmup: usize,
        reps: usize,
    ) -> anyhow::Result<TorchReport> {
        let script = crate::stdx::workspace_root().join("xtask/bench_torch.py");
        let pairs: Vec<String> = self.train_pairs.iter().map(usize::to_string).collect();
        let output = Command::new(python)
            .arg(&script)
            .arg("--dir")
            .arg(dir)
            .args(["--archs", &arch.name()])
            .args(["--threads", &threads.to_string()])
            .args(["--infer-batch", &self.infer_batch.to_string()])
            .args(["--train-pairs", &pairs.join(",")])
            .args(["--warmup", &warmup.to_string()])
            .args(["--reps", &reps.to_string()])
            .args(["--seed", &self.seed.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {} {}", python.display(), script.display()))?;
        if !output.status.success() {
            bail!("{} failed ({})", script.display(), output.status);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
        serde_json::from_str(json).with_context(|| format!("parsing the output of {}", script.display()))
    }
}

fn find_torch_python(explicit: Option<&Path>) -> Option<PathBuf> {
    let imports_torch = |python: &Path| {
        Command::new(python)
            .args(["-c", "import torch, numpy"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    match explicit {
        Some(python) if imports_torch(python) => Some(python.to_path_buf()),
        Some(python) => {
            eprintln!("bench: warning: {} cannot import torch and numpy", python.display());
            None
        }
        None => Some(PathBuf::from("python3")).filter(|p| imports_torch(p)),
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("desdis-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ----------------------------------------------------------------------------------------------
// The report.

/// GFLOP/s of inference: 2 FLOPs per multiply-add.
fn infer_gflops(macs: u64, batch: usize, seconds: f64) -> f64 {
    2.0 * macs as f64 * batch as f64 / seconds / 1e9
}

/// GFLOP/s of a training step: two forwards over `pairs` patches each, with backward counted as
/// twice the forward work (3x the forward FLOPs in all).
fn train_gflops(macs: u64, pairs: usize, seconds: f64) -> f64 {
    3.0 * 2.0 * macs as f64 * 2.0 * pairs as f64 / seconds / 1e9
}

fn ratio_cell(ours: f64, torch: Option<f64>) -> String {
    torch.map_or_else(|| "–".into(), |t| format!("{:.2}", ours / t))
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let torch = match &report.torch_version {
        Some(v) => format!(
            "PyTorch {v} on {} threads, timed in the same invocation, each net right after ours",
            report.threads
        ),
        None => "no PyTorch available, so no comparison".into(),
    };
    out.push_str("## Nets against PyTorch (`cargo xtask bench`)\n\n");
    out.push_str(&format!(
        "Machine: {}, {} threads; {torch}. Measured {} UTC; {} warm-up run(s), then the median of {}.\n\n",
        report.cpu, report.threads, report.date_utc, report.warmup, report.reps
    ));
    out.push_str(&format!(
        "Inference: `forward_t(x, false)` on {} patches. Train step: two train-mode forwards \
         (anchors, positives), the HardNet loss (TFeat: its own loss), backward and an SGD-momentum \
         update. Ratio = candle time / PyTorch time (below 1: candle is faster). GFLOP/s counts \
         convolution and linear multiply-adds as 2 FLOPs, a train step as 3x the FLOPs of its two \
         forwards; % is of an FMA peak of {:.0} GFLOP/s (`--peak-gflops`, measured once on this \
         machine, not in this run).\n\n",
        report.infer_batch, report.peak_gflops
    ));

    let mut header = String::from("| arch | MMAC/patch | infer patches/s | torch | ratio |");
    let mut rule = String::from("|---|---:|---:|---:|---:|");
    for pairs in &report.train_pairs {
        header.push_str(&format!(" train {pairs} pairs | torch | ratio |"));
        rule.push_str("---:|---:|---:|");
    }
    header.push_str(" GFLOP/s infer | GFLOP/s train |");
    rule.push_str("---:|---:|");
    out.push_str(&header);
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');

    for r in &report.results {
        let macs = r.macs_per_patch;
        let ours_pps = report.infer_batch as f64 / r.candle.infer_s;
        let torch_infer = r.torch.as_ref().map(|t| t.infer_s);
        let torch_pps =
            torch_infer.map_or_else(|| "–".into(), |s| format!("{:.0}", report.infer_batch as f64 / s));
        let mut row = format!(
            "| {} | {:.2} | {ours_pps:.0} | {torch_pps} | {} |",
            r.arch,
            macs as f64 / 1e6,
            ratio_cell(r.candle.infer_s, torch_infer)
        );
        for pairs in &report.train_pairs {
            let key = pairs.to_string();
            let ours = r.candle.train_s.get(&key).copied().unwrap_or(f64::NAN);
            let theirs = r.torch.as_ref().and_then(|t| t.train_s.get(&key).copied());
            let theirs_cell = theirs.map_or_else(|| "–".into(), |s| format!("{:.1} ms", s * 1e3));
            row.push_str(&format!(" {:.1} ms | {theirs_cell} | {} |", ours * 1e3, ratio_cell(ours, theirs)));
        }
        let peak = report.peak_gflops;
        let infer = infer_gflops(macs, report.infer_batch, r.candle.infer_s);
        let (train, largest) = match report.train_pairs.iter().max() {
            Some(&pairs) => {
                let seconds = r.candle.train_s.get(&pairs.to_string()).copied().unwrap_or(f64::NAN);
                (train_gflops(macs, pairs, seconds), pairs)
            }
            None => (f64::NAN, 0),
        };
        row.push_str(&format!(
            " {infer:.0} ({:.0}%) | {train:.0} ({:.0}%, {largest} pairs) |",
            100.0 * infer / peak,
            100.0 * train / peak
        ));
        out.push_str(&row);
        out.push('\n');
    }
    let checks: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| r.torch_check_max_abs_diff.map(|d| format!("{} {d:.1e}", r.arch)))
        .collect();
    if !checks.is_empty() {
        out.push_str(&format!(
            "\nSame nets on both sides: largest eval-mode descriptor difference on {CHECK_PATCHES} \
             patches: {}.\n",
            checks.join(", ")
        ));
    }
    out
}

/// Replaces what lies between the bench markers of `path` with `section` (appending the markers
/// when missing), writing a temporary file beside it and renaming it over the original.
fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = splice_section(&old, section)?;
    crate::stdx::write_atomic(path, new.as_bytes())
}

/// `old` with the bench section replaced, or appended (with its markers) when it has none.
fn splice_section(old: &str, section: &str) -> anyhow::Result<String> {
    if let Some(new) = crate::stdx::replace_between(old, MARK_START, MARK_END, section)? {
        return Ok(new);
    }
    let sep = match old {
        "" => "",
        _ if old.ends_with("\n\n") => "",
        _ if old.ends_with('\n') => "\n",
        _ => "\n\n",
    };
    Ok(format!("{old}{sep}{MARK_START}\n{}\n{MARK_END}\n", section.trim_end()))
}

/// Now as `YYYY-MM-DD HH:MM`, UTC.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days as i64);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

/// Gregorian (year, month, day) of a day count since 1970-01-01, by 400-year eras of 146,097 days.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_819), (2027, 1, 1));
    }

    #[test]
    fn section_is_appended_then_replaced() -> anyhow::Result<()> {
        let first = splice_section("# Performance\n\nText.\n", "table 1\n")?;
        assert_eq!(first, format!("# Performance\n\nText.\n\n{MARK_START}\ntable 1\n{MARK_END}\n"));
        let second = splice_section(&format!("{first}\n## After\n"), "table 2")?;
        assert_eq!(
            second,
            format!("# Performance\n\nText.\n\n{MARK_START}\ntable 2\n{MARK_END}\n\n## After\n")
        );
        assert!(splice_section(&format!("{MARK_END} {MARK_START}"), "x").is_err());
        Ok(())
    }

    /// The benchmark on one small net, without docs or PyTorch: `cargo test -p xtask --release
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore = "slow: runs the benchmark"]
    fn bench_runs() -> anyhow::Result<()> {
        use clap::Parser;
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            bench: Bench,
        }
        let args =
            std::env::var("DESDIS_BENCH_ARGS").unwrap_or_else(|_| "--archs desdis-8 --quick --no-doc".into());
        let cli = Cli::try_parse_from(
            std::iter::once("bench".to_string()).chain(args.split_whitespace().map(String::from)),
        )?;
        cli.bench.run()
    }
}
