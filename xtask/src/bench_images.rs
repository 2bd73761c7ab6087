//! `cargo xtask bench-images`: whole-image speed and matching accuracy of `desdis extract` /
//! `desdis match` on HPatches sequences, against OpenCV SIFT and kornia's DoG + HardNet.
//!
//! Our side runs the release `desdis` binary as a user would, so its times are wall times of
//! whole processes (start, loading the weights, reading and writing the h5 files). The baselines
//! run in `xtask/bench_images.py`, started from here in the same run with the same thread count,
//! right after our configurations on each sequence, so that a change in background load affects
//! both sides alike. Accuracy follows the D2-Net protocol: raw mutual-nearest-neighbour matches
//! of image 1 to images 2..6, scored by their projection error under `H_1_k`.
//!
//! Writes `target/bench-images/results.json`, the block between the `bench-images` markers of
//! `docs/pipeline.md` and the plot `docs/img/mma.png`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use desdis_geometry::mma::{load_homography, mma, projection_errors, DEFAULT_THRESHOLDS};
use desdis_geometry::Mat3;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stdx::workspace_root;

const MARK_BEGIN: &str = "<!-- bench-images:begin -->";
const MARK_END: &str = "<!-- bench-images:end -->";
/// The sequences benchmarked by default, under `../shared/data/hpatches-sequences`. The first
/// one is the one the pipeline's defaults were tuned on; `--quick` runs it alone.
const DEFAULT_SEQUENCES: [&str; 2] = ["v_wormhole", "v_churchill"];
/// Released checkpoints benchmarked besides the built-in default: (label, file name).
const RELEASED: [(&str, &str); 2] = [("DesDis-8", "DesDis-8.pth"), ("DesDis-32", "DesDis-32.pth")];
/// Index of the 3 px threshold in [`DEFAULT_THRESHOLDS`] (correct matches are counted there).
const AT_3PX: usize = 2;
/// MMA thresholds shown in the accuracy tables, in px.
const TABLE_THRESHOLDS: [usize; 4] = [1, 3, 5, 10];
/// Load average above which the timings are likely disturbed (the machine has 2 cores).
const BUSY_LOAD: f64 = 2.5;

/// Times `desdis extract` + `desdis match` on HPatches sequences against Python baselines.
#[derive(clap::Args, Debug)]
pub struct BenchImages {
    /// HPatches sequence folder (1.png..6.png, H_1_2..H_1_6); repeatable. Default: v_wormhole and
    /// v_churchill under ../shared/data/hpatches-sequences.
    #[arg(long = "sequence", value_name = "DIR")]
    sequences: Vec<PathBuf>,
    /// Timed runs per method and sequence; medians are reported (default 3, 1 with --quick).
    #[arg(long)]
    repeats: Option<usize>,
    /// Keypoints per image at most, on both sides.
    #[arg(long, default_value_t = 2000)]
    max_keypoints: usize,
    /// CPU threads on both sides (`RAYON_NUM_THREADS` for desdis, `--threads` for the script).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Folder of the released checkpoints (default: ../shared/data/desdis-official).
    #[arg(long)]
    weights_dir: Option<PathBuf>,
    /// Python with cv2 (and kornia, torch) for the baselines (else `python3`).
    #[arg(long, env = "DESDIS_TORCH_PYTHON")]
    python: Option<PathBuf>,
    /// Skip the Python baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Smoke check: one repeat, the first default sequence only, no baselines, docs left alone.
    #[arg(long)]
    quick: bool,
    /// Print the section only; leave docs/pipeline.md and docs/img/mma.png alone.
    #[arg(long)]
    no_doc: bool,
    /// A flag for every `desdis extract` run (repeatable, e.g. `--extract-arg=--edge-ratio=10`):
    /// how the detector settings in docs/pipeline.md were compared. Leaves the docs alone.
    #[arg(long = "extract-arg", value_name = "ARG", allow_hyphen_values = true)]
    extract_args: Vec<String>,
}

/// Accuracy of one image pair 1 -> k (the script's `pairs` record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PairScore {
    k: usize,
    keypoints_1: usize,
    keypoints_k: usize,
    matches: usize,
    correct_3px: usize,
    /// MMA at 1..10 px.
    mma: Vec<f64>,
}

/// One method on one sequence, in the layout of the script's per-sequence records (so that both
/// sides parse and render alike); our side adds the raw per-run totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MethodResult {
    weights: String,
    extract_ms_per_image: f64,
    extract_ms_total: f64,
    match_ms_per_pair: f64,
    end_to_end_ms: f64,
    end_to_end_ms_runs: Vec<f64>,
    keypoints: Vec<usize>,
    keypoints_mean: f64,
    deterministic: bool,
    pairs: Vec<PairScore>,
    mma_mean: Vec<f64>,
    correct_3px_mean: f64,
    matches_mean: f64,
    /// Wall time of each timed `desdis extract` (ours only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extract_ms_runs: Vec<f64>,
    /// Wall time of each timed `desdis match` (ours only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    match_ms_runs: Vec<f64>,
}

/// One row group of the tables: a method and its results by sequence name.
#[derive(Debug, Serialize)]
struct MethodEntry {
    method: String,
    /// `desdis` (ours) or `baseline`.
    side: &'static str,
    /// False where the MMA is meaningless (kornia's HardNet with random weights).
    accuracy_valid: bool,
    results: BTreeMap<String, MethodResult>,
}

/// The script's output file (only what is read here; `meta` is kept whole).
#[derive(Debug, Deserialize)]
struct BaselineFile {
    meta: Value,
    methods: BTreeMap<String, BTreeMap<String, MethodResult>>,
}

/// Everything of one run, as written to `results.json`.
#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    date_utc: String,
    command: String,
    cpu: String,
    threads: usize,
    repeats: usize,
    max_keypoints: usize,
    load_start: String,
    load_end: String,
    desdis_version: String,
    desdis_binary: PathBuf,
    sequences: Vec<String>,
    /// Why there are no baselines (or only some), when so.
    baselines_note: Option<String>,
    /// The script's `meta`, one per sequence it ran on.
    baseline_meta: Vec<Value>,
    methods: Vec<MethodEntry>,
}

/// One of our configurations: a label and the weights passed to `desdis extract`.
#[derive(Debug)]
struct Config {
    label: String,
    weights: Option<PathBuf>,
    /// Extra flags of `desdis extract` (`--extract-arg`).
    extract_args: Vec<String>,
}

/// An HPatches sequence: reference image, other images and their homographies from image 1.
#[derive(Debug)]
struct Sequence {
    name: String,
    dir: PathBuf,
    /// Image file names in order (`1.png`, ..., `6.png`).
    images: Vec<String>,
    /// (k, image k's name, H_1_k) for k = 2.. .
    pairs: Vec<(usize, String, Mat3)>,
}

/// Timings (ms) and accuracy of one run of extract + match.
#[derive(Debug)]
struct RunOutcome {
    extract_ms: f64,
    match_ms: f64,
    keypoints: Vec<usize>,
    pairs: Vec<PairScore>,
}

impl BenchImages {
    /// Runs the benchmark, writes results.json and (unless told not to) the docs.
    pub fn run(self) -> Result<()> {
        ensure!(self.threads > 0 && self.max_keypoints > 0, "--threads and --max-keypoints must be positive");
        let repeats = self.repeats.unwrap_or(if self.quick { 1 } else { 3 });
        ensure!(repeats > 0, "--repeats must be positive");
        let binary = build_desdis()?;
        // Taken after the build, which loads the machine itself.
        let load_start = load_average();
        warn_if_busy(&load_start);
        let sequences = self.sequence_dirs().iter().map(|d| Sequence::load(d)).collect::<Result<Vec<_>>>()?;
        let configs = self.configs();
        let (python, mut baselines_note) = self.baseline_python();

        let mut methods: Vec<MethodEntry> = Vec::new();
        let mut baseline_meta = Vec::new();
        for seq in &sequences {
            for config in &configs {
                eprintln!("bench-images: {} on {} ({repeats} runs)", config.label, seq.name);
                let result = bench_ours(&binary, config, seq, repeats, self.max_keypoints, self.threads)?;
                entry(&mut methods, &config.label, "desdis", true).results.insert(seq.name.clone(), result);
            }
            if let Some((python, list)) = &python {
                eprintln!("bench-images: baselines {list} on {} ({})", seq.name, python.display());
                match self.run_baselines(python, list, seq, repeats) {
                    Ok(file) => {
                        baseline_meta.push(file.meta);
                        merge_baselines(&mut methods, file.methods);
                    }
                    Err(e) => {
                        eprintln!("bench-images: warning: baselines failed on {}: {e:#}", seq.name);
                        baselines_note = Some(format!("the baseline script failed on {}", seq.name));
                    }
                }
            }
        }

        let report = Report {
            schema: "desdis-xtask-bench-images/1",
            date_utc: utc_now(),
            command: command_line(),
            cpu: baseline_meta
                .first()
                .and_then(|m| m["cpu_model"].as_str())
                .map_or_else(crate::stdx::cpu_model, str::to_string),
            threads: self.threads,
            repeats,
            max_keypoints: self.max_keypoints,
            load_start,
            load_end: load_average(),
            desdis_version: desdis_version(&binary),
            desdis_binary: binary.clone(),
            sequences: sequences.iter().map(|s| s.name.clone()).collect(),
            baselines_note,
            baseline_meta,
            methods,
        };
        let target = binary.parent().and_then(Path::parent).context("the desdis binary has no target dir")?;
        let json = target.join("bench-images/results.json");
        crate::stdx::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
        eprintln!("bench-images: wrote {}", json.display());

        let section = render(&report);
        println!("{section}");
        if self.no_doc || self.quick || !self.extract_args.is_empty() {
            return Ok(());
        }
        let root = workspace_root();
        mma_plot(&report, &root.join("docs/img/mma.png"))?;
        write_section(&root.join("docs/pipeline.md"), &section)?;
        eprintln!("bench-images: updated docs/pipeline.md and docs/img/mma.png");
        Ok(())
    }

    /// The sequence folders: as given, else the default ones (only the first with --quick).
    fn sequence_dirs(&self) -> Vec<PathBuf> {
        if !self.sequences.is_empty() {
            return self.sequences.clone();
        }
        let base = workspace_root().join("../shared/data/hpatches-sequences");
        let count = if self.quick { 1 } else { DEFAULT_SEQUENCES.len() };
        DEFAULT_SEQUENCES[..count].iter().map(|name| base.join(name)).collect()
    }

    /// The built-in default, then each released checkpoint that is present.
    fn configs(&self) -> Vec<Config> {
        let dir = self
            .weights_dir
            .clone()
            .unwrap_or_else(|| workspace_root().join("../shared/data/desdis-official"));
        let mut configs = vec![Config {
            label: "desdis (built-in default)".into(),
            weights: None,
            extract_args: self.extract_args.clone(),
        }];
        for (label, file) in RELEASED {
            let path = dir.join(file);
            if path.is_file() {
                configs.push(Config {
                    label: format!("desdis {label} (released)"),
                    weights: Some(path),
                    extract_args: self.extract_args.clone(),
                });
            } else {
                eprintln!("bench-images: {} not found; skipping {label}", path.display());
            }
        }
        configs
    }

    /// The Python and the baseline methods it can run, or why there are none. The script needs
    /// cv2 in any case; kornia is dropped alone when it does not import.
    fn baseline_python(&self) -> (Option<(PathBuf, String)>, Option<String>) {
        if self.quick || self.no_baselines {
            let why = if self.quick { "--quick" } else { "--no-baselines" };
            return (None, Some(format!("baselines skipped ({why})")));
        }
        let python = self.python.clone().unwrap_or_else(|| PathBuf::from("python3"));
        if !imports(&python, "cv2, numpy") {
            let note = format!("{} cannot import cv2 and numpy: no baselines", python.display());
            eprintln!("bench-images: {note} (set DESDIS_TORCH_PYTHON or --python)");
            return (None, Some(note));
        }
        if imports(&python, "kornia, torch") {
            return (Some((python, "sift,kornia".into())), None);
        }
        let note = format!("{} cannot import kornia and torch: OpenCV SIFT only", python.display());
        eprintln!("bench-images: {note}");
        (Some((python, "sift".into())), Some(note))
    }

    /// Runs `xtask/bench_images.py` on one sequence and parses its JSON.
    fn run_baselines(
        &self,
        python: &Path,
        methods: &str,
        seq: &Sequence,
        repeats: usize,
    ) -> Result<BaselineFile> {
        let script = workspace_root().join("xtask/bench_images.py");
        let scratch = tempfile::tempdir().context("creating a temporary directory")?;
        let out = scratch.path().join("baselines.json");
        let status = Command::new(python)
            .arg(&script)
            .arg("--sequence")
            .arg(&seq.dir)
            .args(["--max-keypoints", &self.max_keypoints.to_string()])
            .args(["--threads", &self.threads.to_string()])
            .args(["--repeats", &repeats.to_string()])
            .args(["--methods", methods])
            .arg("--output")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {} {}", python.display(), script.display()))?;
        ensure!(status.success(), "{} exited with {status}", script.display());
        let text = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
        let file: BaselineFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} (from {})", out.display(), script.display()))?;
        let threads = file.meta["threads"].as_u64();
        if threads != Some(self.threads as u64) {
            eprintln!(
                "bench-images: warning: the script reports {threads:?} threads, desdis ran {}",
                self.threads
            );
        }
        Ok(file)
    }
}

impl Sequence {
    /// Reads a sequence folder: images named by their index (`1.png`, ...) and `H_1_k` files.
    fn load(dir: &Path) -> Result<Self> {
        let name =
            dir.file_name().context("a sequence path has no folder name")?.to_string_lossy().into_owned();
        let mut images: Vec<(usize, String)> = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let file = entry.with_context(|| format!("listing {}", dir.display()))?.file_name();
            let file = file.to_string_lossy().into_owned();
            let index = file.split_once('.').and_then(|(stem, _)| stem.parse::<usize>().ok());
            if let Some(index) = index {
                images.push((index, file));
            }
        }
        images.sort();
        ensure!(images.first().is_some_and(|(i, _)| *i == 1), "{}: no image 1", dir.display());
        let mut pairs = Vec::new();
        for (k, file) in images.iter().skip(1) {
            let path = dir.join(format!("H_1_{k}"));
            let h = load_homography(&path).with_context(|| format!("reading {}", path.display()))?;
            pairs.push((*k, file.clone(), h));
        }
        ensure!(!pairs.is_empty(), "{}: no images besides 1", dir.display());
        Ok(Self { name, dir: dir.to_path_buf(), images: images.into_iter().map(|(_, f)| f).collect(), pairs })
    }

    /// The pairs file of `desdis match`: image 1 against every other image.
    fn pairs_text(&self) -> String {
        self.pairs.iter().map(|(_, name, _)| format!("{} {name}\n", self.images[0])).collect()
    }
}

/// The entry of `method`, created (in first-seen order, which is the tables' order) if new.
fn entry<'a>(
    methods: &'a mut Vec<MethodEntry>,
    method: &str,
    side: &'static str,
    valid: bool,
) -> &'a mut MethodEntry {
    let index = match methods.iter().position(|m| m.method == method) {
        Some(index) => index,
        None => {
            methods.push(MethodEntry {
                method: method.to_string(),
                side,
                accuracy_valid: valid,
                results: BTreeMap::new(),
            });
            methods.len() - 1
        }
    };
    &mut methods[index]
}

/// Adds the script's results; SIFT first, as it is the reference of the ratio column.
fn merge_baselines(
    methods: &mut Vec<MethodEntry>,
    mut baselines: BTreeMap<String, BTreeMap<String, MethodResult>>,
) {
    for (key, label) in [("sift", "OpenCV SIFT"), ("kornia", "kornia DoG+HardNet (random weights)")] {
        let Some(by_sequence) = baselines.remove(key) else { continue };
        // The HardNet of the script has random weights: its matches say nothing about accuracy.
        let target = entry(methods, label, "baseline", key != "kornia");
        target.results.extend(by_sequence);
    }
}

/// Builds the release `desdis` binary and returns its path (from cargo's artifact messages, so
/// that a `CARGO_TARGET_DIR` elsewhere is found too).
fn build_desdis() -> Result<PathBuf> {
    eprintln!("bench-images: cargo build --release -p desdis-cli");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "-p", "desdis-cli", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build --release -p desdis-cli")?;
    ensure!(output.status.success(), "cargo build --release -p desdis-cli failed ({})", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "desdis")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .context("cargo build reported no `desdis` executable")
}

/// Times one configuration on one sequence: an untimed warm-up, then `repeats` timed runs of
/// extract + match, each into fresh files (extract skips images already in its output).
fn bench_ours(
    binary: &Path,
    config: &Config,
    seq: &Sequence,
    repeats: usize,
    max_keypoints: usize,
    threads: usize,
) -> Result<MethodResult> {
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let pairs = scratch.path().join("pairs.txt");
    std::fs::write(&pairs, seq.pairs_text()).with_context(|| format!("writing {}", pairs.display()))?;
    let run = |i: usize| -> Result<RunOutcome> {
        let features = scratch.path().join(format!("features-{i}.h5"));
        let matches = scratch.path().join(format!("matches-{i}.h5"));
        let mut extract = desdis(binary, threads);
        extract.arg("extract").arg("--images").arg(&seq.dir).arg("--output").arg(&features);
        extract.args(["--max-keypoints", &max_keypoints.to_string()]).args(&config.extract_args);
        if let Some(weights) = &config.weights {
            extract.arg("--weights").arg(weights);
        }
        let extract_ms = timed(extract)?;
        let mut matcher = desdis(binary, threads);
        matcher
            .arg("match")
            .arg("--features")
            .arg(&features)
            .arg("--pairs")
            .arg(&pairs)
            .arg("--output")
            .arg(&matches);
        let match_ms = timed(matcher)?;
        let (keypoints, pairs) = accuracy(&features, &matches, seq)?;
        Ok(RunOutcome { extract_ms, match_ms, keypoints, pairs })
    };
    let warmup = run(0)?;
    let runs = (1..=repeats).map(run).collect::<Result<Vec<_>>>()?;
    Ok(summarise(config, seq, &warmup, &runs))
}

/// Medians over the runs, the accuracy of the last one, and whether all runs (the warm-up too)
/// gave the same keypoint counts and matches scores.
fn summarise(config: &Config, seq: &Sequence, warmup: &RunOutcome, runs: &[RunOutcome]) -> MethodResult {
    let deterministic = runs.iter().all(|r| r.keypoints == warmup.keypoints && r.pairs == warmup.pairs);
    let extract_ms_runs: Vec<f64> = runs.iter().map(|r| r.extract_ms).collect();
    let match_ms_runs: Vec<f64> = runs.iter().map(|r| r.match_ms).collect();
    let end_to_end_ms_runs: Vec<f64> = runs.iter().map(|r| r.extract_ms + r.match_ms).collect();
    let extract_ms_total = desdis_stdx::median(&extract_ms_runs);
    let last = runs.last().unwrap_or(warmup);
    let n_pairs = last.pairs.len().max(1) as f64;
    let mma_mean = (0..DEFAULT_THRESHOLDS.len())
        .map(|t| last.pairs.iter().map(|p| p.mma[t]).sum::<f64>() / n_pairs)
        .collect();
    MethodResult {
        weights: config
            .weights
            .as_ref()
            .map_or_else(|| "built-in default".into(), |w| w.display().to_string()),
        extract_ms_per_image: extract_ms_total / seq.images.len() as f64,
        extract_ms_total,
        match_ms_per_pair: desdis_stdx::median(&match_ms_runs) / seq.pairs.len() as f64,
        end_to_end_ms: desdis_stdx::median(&end_to_end_ms_runs),
        end_to_end_ms_runs,
        keypoints_mean: last.keypoints.iter().sum::<usize>() as f64 / last.keypoints.len().max(1) as f64,
        keypoints: last.keypoints.clone(),
        deterministic,
        correct_3px_mean: last.pairs.iter().map(|p| p.correct_3px as f64).sum::<f64>() / n_pairs,
        matches_mean: last.pairs.iter().map(|p| p.matches as f64).sum::<f64>() / n_pairs,
        pairs: last.pairs.clone(),
        mma_mean,
        extract_ms_runs,
        match_ms_runs,
    }
}

/// A `desdis` command on `threads` rayon threads (the only pool it uses on the CPU).
fn desdis(binary: &Path, threads: usize) -> Command {
    let mut command = Command::new(binary);
    command.env("RAYON_NUM_THREADS", threads.to_string());
    command
}

/// Runs `command` to completion and returns its wall time in ms; a failure is an error with
/// the command's output.
fn timed(mut command: Command) -> Result<f64> {
    let start = Instant::now();
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(ms)
}

/// Keypoints per image and the accuracy of each pair 1 -> k, from the h5 files of one run.
fn accuracy(features: &Path, matches: &Path, seq: &Sequence) -> Result<(Vec<usize>, Vec<PairScore>)> {
    let feats =
        desdis_h5::read_features(features).with_context(|| format!("reading {}", features.display()))?;
    let found = desdis_h5::read_matches(matches).with_context(|| format!("reading {}", matches.display()))?;
    let image = |name: &str| {
        feats.get(name).with_context(|| format!("{}: no features of {name}", features.display()))
    };
    let keypoints = seq.images.iter().map(|name| image(name).map(|f| f.len())).collect::<Result<Vec<_>>>()?;
    let first = image(&seq.images[0])?;
    let mut scores = Vec::new();
    for (k, name, h) in &seq.pairs {
        let other = image(name)?;
        let key = desdis_h5::pair_key(&seq.images[0], name);
        let (group, subgroup) = key.split_once('/').unwrap_or((&key, ""));
        let pair = found
            .get(&(group.to_string(), subgroup.to_string()))
            .with_context(|| format!("{}: no pair {key}", matches.display()))?;
        let errors = projection_errors(&first.keypoints, &other.keypoints, &pair.pairs(), h)
            .with_context(|| format!("{}: pair {key}", matches.display()))?;
        let at = mma(&errors, &DEFAULT_THRESHOLDS);
        scores.push(PairScore {
            k: *k,
            keypoints_1: first.len(),
            keypoints_k: other.len(),
            matches: errors.len(),
            correct_3px: at[AT_3PX].correct,
            mma: at.iter().map(|a| a.fraction).collect(),
        });
    }
    Ok((keypoints, scores))
}

/// Whether `python -c "import <modules>"` succeeds.
fn imports(python: &Path, modules: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ----------------------------------------------------------------------------------------------
// Facts about the run.

/// `/proc/loadavg`'s 1, 5 and 15 minute load averages, or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Warns when the 1-minute load says other work competes for the cores.
fn warn_if_busy(load: &str) {
    let one_minute = load.split(',').next().and_then(|l| l.trim().parse::<f64>().ok());
    if one_minute.is_some_and(|l| l > BUSY_LOAD) {
        eprintln!("bench-images: warning: load average {load}: timings will be disturbed");
    }
}

/// Now as `YYYY-MM-DD HH:MM` UTC, from `date` (the only place a calendar date is needed here).
fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

/// `desdis --version`, or "unknown".
fn desdis_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// This run's command line as typed (`cargo xtask bench-images ...`).
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}

// ----------------------------------------------------------------------------------------------
// The docs section.

fn render(report: &Report) -> String {
    let mut out = String::from("## Speed and accuracy on HPatches (`cargo xtask bench-images`)\n\n");
    out.push_str(&render_intro(report));
    out.push_str("### Speed\n\n");
    out.push_str(&render_speed(report));
    for seq in &report.sequences {
        out.push_str(&format!("\n### Accuracy on {seq}\n\n"));
        out.push_str(&render_accuracy(report, seq));
    }
    out.push_str("\n![MMA against threshold, one panel per sequence](img/mma.png)\n");
    out
}

fn render_intro(report: &Report) -> String {
    let mut out = format!(
        "Measured {} UTC with `{}` on {}, {} threads on both sides (`RAYON_NUM_THREADS={}` for \
         `desdis`, `--threads {}` for the Python baselines), in one run. Load average (1, 5, 15 \
         min): {} at the start, {} at the end. `{}`.",
        report.date_utc,
        report.command,
        report.cpu,
        report.threads,
        report.threads,
        report.threads,
        report.load_start,
        report.load_end,
        report.desdis_version,
    );
    match report.baseline_meta.first() {
        Some(meta) => {
            let v = |key: &str| meta["versions"][key].as_str().unwrap_or("n/a").to_string();
            out.push_str(&format!(
                " Baselines: Python {}, numpy {}, OpenCV {}, torch {}, kornia {}.",
                v("python"),
                v("numpy"),
                v("cv2"),
                v("torch"),
                v("kornia")
            ));
        }
        None => out.push_str(" **Without baselines**: only our rows, no ratio to SIFT."),
    }
    if let Some(note) = &report.baselines_note {
        out.push_str(&format!(" Note: {note}."));
    }
    out.push_str(&format!(
        "\n\nProtocol (D2-Net's on HPatches): every method keeps at most {} keypoints per image and \
         matches image 1 to images 2..6 by mutual nearest neighbours, without geometric \
         verification, so the raw matches are scored. `desdis` is timed as the wall time of its \
         processes: `desdis extract` on the sequence folder (ms/image = total / images; includes \
         process start, loading the weights and writing features.h5) and one `desdis match` over \
         the 5 pairs (ms/pair = total / 5; includes reading features.h5). The baselines \
         (`xtask/bench_images.py`) are timed inside Python on decoded images, so their numbers \
         leave out process start, imports and image decoding. End-to-end: all extractions plus \
         all matchings of one sequence. Medians of {} timed run(s) after an untimed warm-up. \
         Ratio: end-to-end time over OpenCV SIFT's on the same sequence (below 1: faster).\n\n",
        report.max_keypoints, report.repeats
    ));
    out.push_str(
        "Accuracy: a match is correct at t px when its image-1 keypoint, projected with `H_1_k`, \
         lands within t px of the matched keypoint; MMA@t is the fraction of correct matches, \
         averaged over the 5 pairs; keypoints are the mean per image, matches and correct@3 the \
         mean per pair. kornia's HardNet ran with random weights (no pretrained weights were \
         available), so its rows measure speed only and its accuracy is n/a. OpenCV's keypoints \
         sit about 0.25 px off the pixel-centre convention in both images alike (uncorrected). \
         `v_wormhole` was used to tune the pipeline's defaults; `v_churchill` was not.\n\n",
    );
    out
}

fn render_speed(report: &Report) -> String {
    let mut out = String::from(
        "| method | sequence | extract ms/image | match ms/pair | end-to-end ms per sequence | vs SIFT |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let sift = report.methods.iter().find(|m| m.method == "OpenCV SIFT");
    for seq in &report.sequences {
        let reference = sift.and_then(|m| m.results.get(seq)).map(|r| r.end_to_end_ms);
        for m in &report.methods {
            let Some(r) = m.results.get(seq) else { continue };
            let ratio = reference.map_or_else(|| "–".into(), |s| format!("{:.2}", r.end_to_end_ms / s));
            out.push_str(&format!(
                "| {} | {seq} | {:.0} | {:.1} | {:.0} | {ratio} |\n",
                m.method, r.extract_ms_per_image, r.match_ms_per_pair, r.end_to_end_ms
            ));
        }
    }
    out
}

fn render_accuracy(report: &Report, seq: &str) -> String {
    let mut out = String::from("| method | keypoints | matches |");
    for t in TABLE_THRESHOLDS {
        out.push_str(&format!(" MMA@{t} |"));
    }
    out.push_str(" correct@3 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for m in &report.methods {
        let Some(r) = m.results.get(seq) else { continue };
        let row = if m.accuracy_valid {
            let cells: Vec<String> = TABLE_THRESHOLDS
                .iter()
                .map(|&t| format!("{:.3}", r.mma_mean.get(t - 1).copied().unwrap_or(f64::NAN)))
                .collect();
            format!(
                "{:.0} | {:.1} | {} | {:.1}",
                r.keypoints_mean,
                r.matches_mean,
                cells.join(" | "),
                r.correct_3px_mean
            )
        } else {
            format!("{:.0} | {:.1} | n/a | n/a | n/a | n/a | n/a", r.keypoints_mean, r.matches_mean)
        };
        out.push_str(&format!("| {} | {row} |\n", m.method));
    }
    out
}

/// Replaces what lies between the `bench-images` markers of `path` with `section`, writing a
/// temporary file beside it and renaming it over the original. The markers must exist: the
/// rest of the file belongs to others, so nothing is appended.
fn write_section(path: &Path, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let new = splice_section(&old, section).with_context(|| format!("updating {}", path.display()))?;
    crate::stdx::write_atomic(path, new.as_bytes())
}

fn splice_section(old: &str, section: &str) -> Result<String> {
    crate::stdx::replace_between(old, MARK_BEGIN, MARK_END, section)?
        .with_context(|| format!("no `{MARK_BEGIN}` / `{MARK_END}` markers"))
}

// ----------------------------------------------------------------------------------------------
// The plot.

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// MMA against threshold (1..10 px) of every method with meaningful accuracy, one panel per
/// sequence, written under a temporary `.png` name (the backend picks the encoder by extension)
/// and renamed.
fn mma_plot(report: &Report, path: &Path) -> Result<()> {
    let name = path.file_name().context("the plot path has no file name")?.to_string_lossy();
    let temp = path.with_file_name(format!(".tmp-{}-{name}", std::process::id()));
    draw_mma(report, &temp).map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
}

fn draw_mma(report: &Report, path: &Path) -> DrawResult {
    let panels = report.sequences.len().max(1);
    let root = BitMapBackend::new(path, (520 * panels as u32, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, seq) in root.split_evenly((1, panels)).iter().zip(&report.sequences) {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("MMA on {seq}"), ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..10.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("threshold (px)")
            .y_desc("MMA")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()?;
        let plotted = report.methods.iter().filter(|m| m.accuracy_valid);
        for (i, m) in plotted.enumerate() {
            let Some(r) = m.results.get(seq) else { continue };
            let style = Palette99::pick(i).stroke_width(2);
            let points = DEFAULT_THRESHOLDS.iter().copied().zip(r.mma_mean.iter().copied());
            chart
                .draw_series(LineSeries::new(points, style))?
                .label(m.method.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        // MMA curves rise to the right: the legend goes where they are low.
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_marked_block_changes() -> Result<()> {
        let old = format!("intro\n{MARK_BEGIN}\nold table\n{MARK_END}\ntail\n");
        let new = splice_section(&old, "new table\n")?;
        assert_eq!(new, format!("intro\n{MARK_BEGIN}\nnew table\n{MARK_END}\ntail\n"));
        assert_eq!(splice_section(&new, "new table")?, new);
        assert!(splice_section("no markers", "x").is_err());
        Ok(())
    }

    #[test]
    fn the_plot_is_drawn() -> Result<()> {
        let result: MethodResult = serde_json::from_value(serde_json::json!({
            "weights": "w", "extract_ms_per_image": 1.0, "extract_ms_total": 6.0, "match_ms_per_pair": 1.0,
            "end_to_end_ms": 11.0, "end_to_end_ms_runs": [11.0], "keypoints": [5], "keypoints_mean": 5.0,
            "deterministic": true, "pairs": [], "correct_3px_mean": 1.0, "matches_mean": 2.0,
            "mma_mean": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
        }))?;
        let mut methods = Vec::new();
        for seq in ["a", "b"] {
            entry(&mut methods, "m", "desdis", true).results.insert(seq.into(), result.clone());
        }
        let report = Report {
            schema: "test",
            date_utc: String::new(),
            command: String::new(),
            cpu: String::new(),
            threads: 2,
            repeats: 1,
            max_keypoints: 5,
            load_start: String::new(),
            load_end: String::new(),
            desdis_version: String::new(),
            desdis_binary: PathBuf::new(),
            sequences: vec!["a".into(), "b".into()],
            baselines_note: None,
            baseline_meta: vec![],
            methods,
        };
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mma.png");
        mma_plot(&report, &path)?;
        assert!(std::fs::metadata(&path)?.len() > 1000);
        assert!(render(&report).contains("| m | a | 1 | 1.0 | 11 | – |"));
        Ok(())
    }

    #[test]
    fn baseline_records_parse() -> Result<()> {
        let json = r#"{"meta": {"threads": 2}, "methods": {"sift": {"v": {
            "weights": "n/a", "extract_ms_per_image": 1.0, "extract_ms_total": 6.0,
            "extract_ms_images": [1, 1, 1, 1, 1, 1], "match_ms_per_pair": 2.0, "match_ms_pairs": [2],
            "end_to_end_ms": 16.0, "end_to_end_ms_runs": [16.0], "keypoints": [5, 5], "keypoints_mean": 5.0,
            "deterministic": true, "pairs": [{"k": 2, "keypoints_1": 5, "keypoints_k": 5, "matches": 3,
            "correct_3px": 2, "mma": [0.5]}], "mma_mean": [0.5], "correct_3px_mean": 2.0, "matches_mean": 3.0}}}}"#;
        let file: BaselineFile = serde_json::from_str(json)?;
        let mut methods = Vec::new();
        merge_baselines(&mut methods, file.methods);
        assert_eq!(methods.len(), 1);
        assert_eq!(methods[0].method, "OpenCV SIFT");
        assert_eq!(methods[0].results["v"].pairs[0].correct_3px, 2);
        Ok(())
    }
}
