//! `cargo xtask reproduce`: teachers, distilled students and ablations on the embedded set, scored
//! on HPatches-layout sequences.
//!
//! Per teacher recipe (HardNet, SOSNet and HyNet by default) and per seed `s`: the teacher; an
//! equal-weight student (the teacher's architecture, default `R_ts`) distilled from teacher `s`;
//! a light DesDis student from the same teacher; and the light student's `lambda = 0` control.
//! Teacher `s` and the students of seed `s` share the seed, so the same data order and the same
//! initialisation stream: the comparisons are paired. The equal-weight student's `lambda = 0`
//! control is the teacher itself: same architecture, seed, data and recipe, and with `lambda = 0`
//! the frozen teacher's output never reaches the loss, so that run would repeat the teacher's
//! bit for bit (a quick run showed identical scores) and is not trained twice. `--ablations` adds,
//! for every seed, light students at the other weights of [`ABLATION_LAMBDAS`] and one per other
//! `R_ts` form, each compared with the light student's control. Every run gets the same number of
//! steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use candle_core::Device;
use desdis_data::sequence::{cut_patches, CutConfig, CutSet, Jitter, Sequence};
use desdis_loss::{LossKind, RtsConfig, RtsForm};
use desdis_models::arch::Arch;
use desdis_train::{DistillConfig, RunDir, TrainConfig, TrainSummary};

use crate::plots;
use crate::report::{self, ModelResult, SequenceResult};

/// Train teachers, distil students, evaluate, and write the results table.
#[derive(Debug, clap::Args)]
pub struct ReproduceArgs {
    /// A tiny run (a few minutes) that checks the pipeline end to end; writes only into `--out`.
    #[arg(long)]
    quick: bool,
    /// Teacher recipes, comma separated: hardnet, sosnet, hynet, tfeat, l2net.
    #[arg(long, value_delimiter = ',', default_value = "hardnet,sosnet,hynet")]
    teachers: Vec<String>,
    /// Output directory: one run directory per model, results.json and results.md.
    #[arg(long, default_value = "runs/reproduce")]
    pub(crate) out: PathBuf,
    /// Seeds: each gives a teacher and its paired students (default 2).
    #[arg(long)]
    seeds: Option<usize>,
    /// Scales the steps of every run (2: twice as long), for longer CPU or GPU runs.
    #[arg(long, default_value_t = 1.0)]
    budget: f64,
    /// Also train the ablations: light students at lambda = 0.1, 0.3, 1, 3 and with the other
    /// R_ts forms, every seed, each compared with the lambda = 0 control.
    #[arg(long)]
    pub(crate) ablations: bool,
    /// Folder holding HPatches sequences (v_wormhole, v_churchill are used when present).
    #[arg(long)]
    sequences: Option<PathBuf>,
    /// The UBC PhotoTour protocol instead of the embedded set: train on --train-scene, report
    /// FPR95 on the other two scenes' 100k pair files. GPU-sized: by default the published
    /// 10 epochs of 5,000,000 pairs in batches of 1024. Needs --data-dir.
    #[arg(long, requires = "data_dir", conflicts_with = "quick")]
    pub(crate) full: bool,
    /// With --full: folder with (or to download into) liberty/, notredame/, yosemite/
    /// (checksummed archives; set DESDIS_OFFLINE=1 to refuse downloads).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// With --full: the training scene (liberty, notredame or yosemite).
    #[arg(long, default_value = "liberty")]
    pub(crate) train_scene: String,
    /// Overrides the epochs of every run.
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Overrides the pairs per epoch of every run.
    #[arg(long)]
    pub(crate) pairs_per_epoch: Option<usize>,
    /// Overrides the pairs per batch of every run (SGD learning rates scale with it).
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Replaces every teacher (and equal-weight student) architecture, e.g. a small net for a
    /// smoke test of the protocol.
    #[arg(long)]
    pub(crate) arch: Option<Arch>,
    /// Device: `cpu`, `cuda` or `cuda:N` (default: the first GPU when built with `--features cuda`
    /// and one is present, else the CPU).
    #[arg(long)]
    pub(crate) device: Option<String>,
}

impl ReproduceArgs {
    /// The teacher recipes named by --teachers.
    pub(crate) fn kinds(&self) -> Result<Vec<LossKind>> {
        self.teachers
            .iter()
            .map(|t| t.parse::<LossKind>().with_context(|| format!("--teachers: {t:?}")))
            .collect()
    }

    /// Steps per epoch of every run: the mode's, times `--budget` (at least 1).
    fn scaled_steps(&self, budget: &Budget) -> usize {
        ((budget.steps_per_epoch as f64 * self.budget).round() as usize).max(1)
    }

    /// `cfg` sized by the budget, then by the size flags.
    pub(crate) fn sized(&self, budget: &Budget, cfg: TrainConfig) -> TrainConfig {
        let batch_size = self.batch_size.unwrap_or(budget.batch_size);
        TrainConfig {
            arch: self.arch.or(budget.teacher_arch).unwrap_or(cfg.arch),
            epochs: self.epochs.unwrap_or(budget.epochs),
            pairs_per_epoch: self.pairs_per_epoch.unwrap_or(self.scaled_steps(budget) * batch_size),
            batch_size,
            validation_pairs: budget.validation_pairs,
            ..cfg
        }
    }
}

/// The sizes of one mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Replaces every teacher architecture (quick mode: a small DesDis net).
    pub teacher_arch: Option<Arch>,
    pub light_arch: Arch,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub batch_size: usize,
    pub validation_pairs: usize,
    pub max_keypoints: usize,
}

// Default: 300 steps of 128 pairs per run, sized to about 45 minutes on two cores: three
// teachers, two seeds, per seed two HardNet-sized runs (teacher and equal-weight student; about
// 0.35-0.6 s a step) and two light ones (about 0.2 s a step with the teacher's forward), plus
// validation and scoring. `--budget` scales it.
const DEFAULT: Budget = Budget {
    teacher_arch: None,
    light_arch: Arch::DesDis { dim: 32 },
    epochs: 3,
    steps_per_epoch: 100,
    batch_size: 128,
    validation_pairs: 2000,
    max_keypoints: 1000,
};

const QUICK: Budget = Budget {
    teacher_arch: Some(Arch::DesDis { dim: 16 }),
    light_arch: Arch::DesDis { dim: 8 },
    epochs: 2,
    steps_per_epoch: 20,
    batch_size: 64,
    validation_pairs: 200,
    max_keypoints: 100,
};

/// The sequences scored when `--sequences` is not given.
const SEQUENCES: [&str; 2] = ["v_wormhole", "v_churchill"];

/// What both modes of `cargo xtask reproduce` (the embedded experiment and `--full`) read from
/// the flags, checked once.
#[derive(Debug)]
pub struct Settings {
    /// The teachers' loss kinds.
    pub kinds: Vec<LossKind>,
    /// Seeds per student.
    pub seeds: usize,
    /// Where every run trains.
    pub device: Device,
}

impl Settings {
    /// Checks the budget and seed count, parses the teachers and picks the device.
    pub fn from_args(args: &ReproduceArgs) -> Result<Self> {
        let seeds = args.seeds.unwrap_or(2);
        ensure!(args.budget > 0.0 && args.budget.is_finite(), "--budget must be a positive number");
        ensure!(seeds >= 1, "--seeds must be at least 1");
        let kinds = args.kinds()?;
        let device = desdis_models::device::select_device(args.device.as_deref())?;
        Ok(Settings { kinds, seeds, device })
    }
}

/// Runs the whole experiment on the embedded set (`--full` is `ubc::run`'s).
pub fn run(args: &ReproduceArgs, settings: &Settings) -> Result<()> {
    let started = Instant::now();
    let budget = if args.quick { QUICK } else { DEFAULT };
    let (kinds, seeds, device) = (&settings.kinds, settings.seeds, &settings.device);
    let cuts = load_cuts(args, &budget)?;
    let mut results = Vec::new();
    for kind in kinds {
        let root = args.out.join(kind.as_str());
        let teacher = teacher_config(args, &budget, *kind);
        for job in plan_jobs(*kind, &root, &teacher, budget.light_arch, seeds, args.ablations) {
            results.push(run_job(*kind, &job, &cuts, device)?);
        }
    }
    let sequences: Vec<String> = cuts.iter().map(|(name, _)| name.clone()).collect();
    let plots = draw_plots(&args.out, &results, kinds, &sequences);
    let flags: Vec<String> = std::env::args().skip(2).collect();
    let ctx = report::ReportContext {
        quick: args.quick,
        flags: flags.join(" "),
        seconds: started.elapsed().as_secs_f64(),
        sequences: &sequences,
        plots: &plots,
    };
    let table = report::write(&args.out, &results, &ctx)?;
    if args.quick {
        check_quick(args, &results)?;
    } else {
        publish(&args.out, &table, &plots)?;
    }
    println!("{table}");
    tracing::info!("reproduce finished in {:.0} s", ctx.seconds);
    Ok(())
}

/// Draws the loss and FPR-recall plots into `out/img`; returns (file relative to the report,
/// caption) of each one drawn. A plot that fails (e.g. no usable font) is skipped with a warning:
/// the numbers matter more than the pictures.
fn draw_plots(
    out: &Path,
    results: &[ModelResult],
    kinds: &[LossKind],
    sequences: &[String],
) -> Vec<(String, String)> {
    let img = out.join("img");
    if let Err(e) = std::fs::create_dir_all(&img) {
        tracing::warn!("no plots: cannot create {}: {e}", img.display());
        return Vec::new();
    }
    let acceptance = sequences.last().cloned().unwrap_or_default();
    let mut drawn = Vec::new();
    for kind in kinds {
        let teacher = kind.to_string();
        let loss = format!("loss-{teacher}.png");
        let roc = format!("fpr-recall-{teacher}.png");
        let attempts: [(String, String, Result<()>); 2] = [
            (
                loss.clone(),
                format!("{teacher}: training curves (triplet term, seed 0)"),
                plots::loss_curves(results, &teacher, &img.join(&loss)),
            ),
            (
                roc.clone(),
                format!("{teacher}: false-positive rate against recall on {acceptance} (seed 0)"),
                plots::fpr_recall(results, &teacher, &acceptance, &img.join(&roc)),
            ),
        ];
        for (file, caption, result) in attempts {
            match result {
                Ok(()) => drawn.push((format!("img/{file}"), caption)),
                Err(e) => tracing::warn!("plot {file} skipped: {e:#}"),
            }
        }
    }
    drawn
}

/// Full mode: the report and its plots go to `docs/`.
fn publish(out: &Path, table: &str, plots: &[(String, String)]) -> Result<()> {
    let docs = crate::stdx::workspace_root().join("docs");
    std::fs::create_dir_all(docs.join("img"))?;
    for (file, _) in plots {
        let bytes = std::fs::read(out.join(file))?;
        desdis_eval::write_atomic(&docs.join(file), &bytes)?;
    }
    desdis_eval::write_atomic(&docs.join("results.md"), table.as_bytes())?;
    tracing::info!("wrote {}", docs.join("results.md").display());
    Ok(())
}

/// Corresponding patches of each test sequence, cut once and shared by every model.
fn load_cuts(args: &ReproduceArgs, budget: &Budget) -> Result<Vec<(String, CutSet)>> {
    let dir = args
        .sequences
        .clone()
        .unwrap_or_else(|| crate::stdx::workspace_root().join("../shared/data/hpatches-sequences"));
    let mut cuts = Vec::new();
    for name in SEQUENCES {
        let path = dir.join(name);
        if path.is_dir() {
            let seq = Sequence::load(&path).with_context(|| format!("loading {}", path.display()))?;
            cuts.extend(jitter_cuts(name, &seq, budget)?);
        }
    }
    if cuts.is_empty() {
        tracing::warn!("no HPatches sequences in {}: scoring on the held-out photo", dir.display());
        let seq = desdis_data::embedded::held_out_sequence(0)?;
        cuts.extend(jitter_cuts("held-out", &seq, budget)?);
    }
    Ok(cuts)
}

/// The frame-jitter levels every sequence is cut at, as HPatches' easy, hard and tough patches
/// perturb the detected frames; named `<sequence> <level>`.
pub(crate) const JITTER_LEVELS: [(&str, Jitter); 3] =
    [("easy", Jitter::Easy), ("hard", Jitter::Hard), ("tough", Jitter::Tough)];

/// `seq` cut at every jitter level (the same keypoints, frames perturbed per level).
fn jitter_cuts(name: &str, seq: &Sequence, budget: &Budget) -> Result<Vec<(String, CutSet)>> {
    JITTER_LEVELS
        .iter()
        .map(|(level, jitter)| {
            let cut =
                CutConfig { max_keypoints: budget.max_keypoints, jitter: *jitter, ..CutConfig::default() };
            Ok((format!("{name} {level}"), cut_patches(seq, &cut, 0)?))
        })
        .collect()
}

/// A model to train: its table row, directory and configuration.
pub(crate) struct Job {
    pub row: String,
    pub seed: u64,
    pub dir: PathBuf,
    pub cfg: TrainConfig,
}

/// Every run of one teacher recipe under `root`, in dependency order (teachers before their
/// students); see the module documentation.
pub(crate) fn plan_jobs(
    kind: LossKind,
    root: &Path,
    teacher: &TrainConfig,
    light_arch: Arch,
    seeds: usize,
    ablations: bool,
) -> Vec<Job> {
    let teacher_path = |s: u64| root.join(format!("teacher-s{s}")).join("model.safetensors");
    let mut jobs = Vec::new();
    for s in 0..seeds as u64 {
        let cfg = TrainConfig { seed: s, ..teacher.clone() };
        jobs.push(Job {
            row: format!("{kind} {}", report::TEACHER_ROW),
            seed: s,
            dir: root.join(format!("teacher-s{s}")),
            cfg,
        });
    }
    // A student shares its teacher's seed: the same data order and initialisation stream, so
    // each teacher-student comparison is paired.
    let student = |s: u64, arch: Arch, rts: RtsConfig| TrainConfig {
        arch,
        seed: s,
        distill: Some(DistillConfig {
            teacher: teacher_path(s).to_string_lossy().into_owned(),
            teacher_arch: Some(teacher.arch),
            rts,
        }),
        ..teacher.clone()
    };
    // The form does not matter at lambda = 0; fixing it keeps the control's config (and so its
    // reuse by a later `reproduce`) independent of the default form.
    let control = RtsConfig { lambda: 0.0, form: RtsForm::Abs, ..RtsConfig::default() };
    for s in 0..seeds as u64 {
        let students = [
            (report::EQUAL_ROW.to_string(), "equal", teacher.arch, RtsConfig::default()),
            (format!("{} {light_arch}", report::LIGHT_ROW), "light", light_arch, RtsConfig::default()),
            (
                format!("{} {light_arch}", report::LIGHT_CONTROL_ROW),
                "light-lambda0",
                light_arch,
                control.clone(),
            ),
        ];
        for (row, dir, arch, rts) in students {
            jobs.push(Job {
                row,
                seed: s,
                dir: root.join(format!("{dir}-s{s}")),
                cfg: student(s, arch, rts),
            });
        }
    }
    if !ablations {
        return jobs;
    }
    // The light student is what the project ships, so its regularizer is what the ablation
    // tunes: every seed, against the same lambda = 0 control as the default light student.
    let default_rts = RtsConfig::default();
    let forms = [("abs", RtsForm::Abs), ("squared", RtsForm::Squared), ("hinge", RtsForm::Hinge)];
    for s in 0..seeds as u64 {
        for lambda in ABLATION_LAMBDAS.into_iter().filter(|l| *l != default_rts.lambda) {
            let rts = RtsConfig { lambda, ..default_rts.clone() };
            jobs.push(Job {
                row: format!("{}, lambda = {lambda} {light_arch}", report::ABLATION_ROW),
                seed: s,
                dir: root.join(format!("light-lambda{lambda}-s{s}")),
                cfg: student(s, light_arch, rts),
            });
        }
        for (name, form) in forms.into_iter().filter(|(_, f)| *f != default_rts.form) {
            let rts = RtsConfig { form, ..default_rts.clone() };
            jobs.push(Job {
                row: format!("{}, R_ts {name} {light_arch}", report::ABLATION_ROW),
                seed: s,
                dir: root.join(format!("light-{name}-s{s}")),
                cfg: student(s, light_arch, rts),
            });
        }
    }
    jobs
}

/// The weights of `R_ts` the ablation trains light students with (besides the default's).
const ABLATION_LAMBDAS: [f64; 4] = [0.1, 0.3, 1.0, 3.0];

/// The teacher recipe of `kind`, sized by `budget` and the size flags. SGD learning rates are
/// scaled linearly with the batch from the batch of the recipe's own rate
/// ([`TrainConfig::recipe_batch_size`]: 1024 for HardNet's lr 10, 128 for TFeat's lr 0.1), since
/// far smaller batches at the full rate diverge.
pub(crate) fn teacher_config(args: &ReproduceArgs, budget: &Budget, kind: LossKind) -> TrainConfig {
    let mut cfg = args.sized(budget, TrainConfig::for_teacher(kind));
    if matches!(cfg.optimizer, desdis_train::OptimizerConfig::Sgd { .. }) {
        cfg.lr *= cfg.batch_size as f64 / TrainConfig::recipe_batch_size(kind) as f64;
    }
    cfg
}

/// Trains (or reuses a finished run of the same config) and evaluates one model.
fn run_job(kind: LossKind, job: &Job, cuts: &[(String, CutSet)], device: &Device) -> Result<ModelResult> {
    let t0 = Instant::now();
    let summary = train_or_reuse(job, device)?;
    // A reused run took no time now: count its steps at its recorded throughput instead, so the
    // report shows every run's own training time (validation excluded) either way.
    let pairs = (summary.steps as usize * job.cfg.batch_size) as f64;
    let train_seconds = match summary.pairs_per_s > 0.0 {
        true => pairs / summary.pairs_per_s,
        false => t0.elapsed().as_secs_f64(),
    };
    let arch = job.cfg.arch;
    let model = job.dir.join("model.safetensors");
    let net = desdis_models::nets::load_net(&model.to_string_lossy(), Some(arch), device)?;
    let sequences = cuts.iter().map(|(name, cut)| score(&net, name, cut)).collect::<Result<Vec<_>>>()?;
    let patches_per_s = report::throughput(&net)?;
    let last = &sequences.last().context("no test sequence")?.scores;
    tracing::info!("{} (seed {}): {:?}, {:.0} s", job.row, job.seed, last, train_seconds);
    Ok(ModelResult {
        teacher: kind.to_string(),
        row: job.row.clone(),
        arch: arch.name(),
        seed: job.seed,
        dir: job.dir.to_string_lossy().into_owned(),
        sequences,
        patches_per_s,
        params: arch.learnable_param_count(),
        macs: arch.macs_per_patch(),
        summary,
        train_seconds,
    })
}

/// Scores of `net` on one cut sequence, with its FPR-recall curve sampled for plotting.
fn score(net: &desdis_models::nets::Net, name: &str, cut: &CutSet) -> Result<SequenceResult> {
    let (scores, roc) =
        desdis_eval::evaluate_cut_with_roc(net, cut).with_context(|| format!("scoring on {name}"))?;
    let fpr_at_recall =
        roc.at_recalls(&report::plotted_recalls())?.iter().map(|p| p.false_positive_rate).collect();
    Ok(SequenceResult { sequence: name.to_string(), scores, fpr_at_recall })
}

/// Reruns unless the directory already holds a finished run of exactly this config, so an
/// interrupted `reproduce` resumes where it stopped.
pub(crate) fn train_or_reuse(job: &Job, device: &Device) -> Result<TrainSummary> {
    if let Ok(run) = RunDir::open(&job.dir) {
        let same = run.read_config::<TrainConfig>().is_ok_and(|c| c == job.cfg);
        let results = run.path("results.json");
        if same && results.is_file() {
            let text = std::fs::read_to_string(&results)?;
            if let Ok(summary) = serde_json::from_str::<TrainSummary>(&text) {
                if summary.epochs == job.cfg.epochs {
                    tracing::info!("reusing {}", job.dir.display());
                    return Ok(summary);
                }
            }
        }
        if same {
            return Ok(desdis_train::train(&job.cfg, &run, true, device)?);
        }
    }
    let run = RunDir::create(&job.dir, &job.cfg)?;
    desdis_train::train(&job.cfg, &run, false, device)
        .with_context(|| format!("training {}", job.dir.display()))
}

/// The checks of `--quick`: every number finite, the students' loss decreasing, files written.
fn check_quick(args: &ReproduceArgs, results: &[ModelResult]) -> Result<()> {
    for r in results {
        for s in r.sequences.iter().map(|s| &s.scores) {
            let numbers = [s.verification_ap, s.matching_map, s.retrieval_map, s.fpr95, r.patches_per_s];
            ensure!(numbers.iter().all(|v| v.is_finite()), "{}: non-finite score {numbers:?}", r.row);
        }
        ensure!(
            r.summary.first_epoch_loss.is_finite() && r.summary.last_epoch_loss.is_finite(),
            "{}: non-finite loss",
            r.row
        );
        if r.row.contains("student") && r.summary.last_epoch_loss >= r.summary.first_epoch_loss {
            bail!(
                "{} (seed {}): loss did not decrease ({} -> {})",
                r.row,
                r.seed,
                r.summary.first_epoch_loss,
                r.summary.last_epoch_loss
            );
        }
    }
    for file in ["results.json", "results.md"] {
        ensure!(args.out.join(file).is_file(), "{} was not written", args.out.join(file).display());
    }
    tracing::info!("quick checks passed ({} models)", results.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_gets_a_teacher_and_three_paired_students() {
        let teacher = TrainConfig { arch: Arch::HardNet, ..TrainConfig::default() };
        let jobs = plan_jobs(LossKind::HardNet, Path::new("r"), &teacher, Arch::DesDis { dim: 32 }, 2, false);
        assert_eq!(jobs.len(), 2 * 4);
        for s in 0..2u64 {
            let of_seed: Vec<&Job> = jobs.iter().filter(|j| j.seed == s).collect();
            assert_eq!(of_seed.len(), 4);
            // Same seed: same data order and initialisation stream as the teacher.
            assert!(of_seed.iter().all(|j| j.cfg.seed == s));
            let controls =
                of_seed.iter().filter(|j| j.cfg.distill.as_ref().is_some_and(|d| d.rts.lambda == 0.0));
            // The light student's control; the equal-weight student's is the teacher itself.
            assert_eq!(controls.count(), 1);
            let teacher_model = format!("teacher-s{s}");
            assert!(of_seed
                .iter()
                .filter_map(|j| j.cfg.distill.as_ref())
                .all(|d| d.teacher.contains(&teacher_model)));
        }
        let with = plan_jobs(LossKind::HardNet, Path::new("r"), &teacher, Arch::DesDis { dim: 32 }, 2, true);
        assert!(with.len() > jobs.len());
    }

    #[test]
    fn sgd_rates_scale_from_each_recipes_own_batch() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ReproduceArgs,
        }
        let args = Wrapper::try_parse_from(["x", "--batch-size", "128"]).unwrap().args;
        // HardNet's lr 10 goes with 1024 pairs, TFeat's 0.1 with 128: only HardNet's shrinks.
        assert_eq!(teacher_config(&args, &DEFAULT, LossKind::HardNet).lr, 10.0 * 128.0 / 1024.0);
        assert_eq!(teacher_config(&args, &DEFAULT, LossKind::TFeat).lr, 0.1);
        assert_eq!(
            teacher_config(&args, &DEFAULT, LossKind::SosNet).lr,
            TrainConfig::for_teacher(LossKind::SosNet).lr
        );
    }
}
