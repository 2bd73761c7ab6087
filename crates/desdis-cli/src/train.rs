//! `desdis train` and `desdis distill`: a TOML config (every field has a default), flags that
//! override it, and a self-describing run directory that `--resume` continues exactly.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use desdis_checkpoint::StateDict;
use desdis_loss::{LossKind, RtsConfig};
use desdis_models::arch::Arch;
use desdis_models::nets::check_state_dict;
use desdis_train::{DataSource, DistillConfig, RunDir, TrainConfig};
use serde::de::DeserializeOwned;

/// Flags shared by `train` and `distill`; each overrides the config file's value.
#[derive(Args, Debug, Default)]
pub struct Common {
    /// Run directory: config.toml, metrics.csv, checkpoints/, model.safetensors, results.json.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (weights, optimizer state, data order),
    /// with the config saved there; no other setting may be given.
    #[arg(long)]
    resume: bool,
    /// Training config (TOML); every field it omits keeps its default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Architecture of the trained net: hardnet, sosnet, hynet, l2net, tfeat, desdis-<dim>.
    #[arg(long)]
    arch: Option<String>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Pairs mined per epoch.
    #[arg(long)]
    pairs_per_epoch: Option<usize>,
    /// Pairs per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Master seed (weights, mining, augmentation, dropout).
    #[arg(long)]
    seed: Option<u64>,
    /// Train on a PhotoTour scene folder instead of the embedded set.
    #[arg(long)]
    phototour: Option<PathBuf>,
    /// Validation pairs per epoch (0: none).
    #[arg(long)]
    validation_pairs: Option<usize>,
    /// Device: `cpu`, `cuda` or `cuda:N`. Default: the first GPU when the binary was built with
    /// `--features cuda` and one is present, else the CPU. Allowed with --resume: a run may go on
    /// on another device (same data order, float-level differences only).
    #[arg(long)]
    device: Option<String>,
}

/// Train a descriptor net from scratch with a teacher's published recipe.
#[derive(Args, Debug)]
pub struct Train {
    /// Recipe: hardnet, sosnet, hynet, tfeat or l2net (architecture, loss, optimizer, lr).
    /// Applied before --config and the other flags.
    #[arg(long)]
    recipe: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Distill a student from a frozen teacher: L = L_triplet(student) + lambda * R_ts.
#[derive(Args, Debug)]
pub struct Distill {
    /// Teacher weights: .safetensors, .pth, or hf://org/repo[@rev]/file.
    #[arg(long)]
    teacher: Option<String>,
    /// The teacher's architecture (detected from its keys when omitted).
    #[arg(long)]
    teacher_arch: Option<String>,
    /// Triplet loss and optimizer of the student: the recipe of this teacher kind (default hardnet).
    #[arg(long)]
    recipe: Option<String>,
    /// R_ts form: abs, squared or hinge.
    #[arg(long)]
    rts: Option<String>,
    /// Similarity R_ts compares: cosine or neg_distance.
    #[arg(long)]
    similarity: Option<String>,
    /// Weight of R_ts (0: plain triplet training of the student).
    #[arg(long)]
    lambda: Option<f64>,
    #[command(flatten)]
    common: Common,
}

impl Train {
    pub fn run(self) -> Result<()> {
        if self.common.resume {
            ensure_no_overrides(&self.common, self.recipe.is_some())?;
            return resume(&self.common);
        }
        let mut cfg = base_config(self.recipe.as_deref(), &self.common)?;
        if cfg.distill.is_some() {
            bail!("the config has a [distill] section: use `desdis distill`");
        }
        self.common.apply(&mut cfg)?;
        start(&cfg, &self.common)
    }
}

impl Distill {
    pub fn run(self) -> Result<()> {
        let given = self.teacher.is_some()
            || self.teacher_arch.is_some()
            || self.recipe.is_some()
            || self.rts.is_some()
            || self.similarity.is_some()
            || self.lambda.is_some();
        if self.common.resume {
            ensure_no_overrides(&self.common, given)?;
            return resume(&self.common);
        }
        let mut cfg = base_config(self.recipe.as_deref(), &self.common)?;
        if cfg.distill.is_none() {
            // Without a config file, the student defaults to the light DesDis-32.
            if self.common.config.is_none() && self.common.arch.is_none() {
                cfg.arch = Arch::DesDis { dim: 32 };
            }
        }
        let mut distill = cfg.distill.take().unwrap_or(DistillConfig {
            teacher: String::new(),
            teacher_arch: None,
            rts: RtsConfig::default(),
        });
        if let Some(t) = self.teacher {
            distill.teacher = t;
        }
        if distill.teacher.trim().is_empty() {
            bail!("no teacher: give --teacher WEIGHTS (or `teacher` in the config's [distill] section)");
        }
        if let Some(name) = &self.teacher_arch {
            distill.teacher_arch =
                Some(Arch::parse(name).with_context(|| format!("--teacher-arch {name:?}"))?);
        }
        if let Some(form) = &self.rts {
            distill.rts.form = parse_name("--rts", form)?;
        }
        if let Some(similarity) = &self.similarity {
            distill.rts.similarity = parse_name("--similarity", similarity)?;
        }
        if let Some(lambda) = self.lambda {
            distill.rts.lambda = lambda;
        }
        cfg.distill = Some(distill);
        self.common.apply(&mut cfg)?;
        start(&cfg, &self.common)
    }
}

impl Common {
    /// Applies every flag given to `cfg`, then checks the result.
    fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        if let Some(arch) = &self.arch {
            cfg.arch = Arch::parse(arch).with_context(|| format!("--arch {arch:?}"))?;
        }
        set(&mut cfg.epochs, self.epochs);
        set(&mut cfg.pairs_per_epoch, self.pairs_per_epoch);
        set(&mut cfg.batch_size, self.batch_size);
        set(&mut cfg.lr, self.lr);
        set(&mut cfg.seed, self.seed);
        set(&mut cfg.validation_pairs, self.validation_pairs);
        if let Some(dir) = &self.phototour {
            cfg.data = DataSource::PhotoTour { dir: dir.clone() };
        }
        cfg.validate().context("invalid training settings")?;
        Ok(())
    }

    fn any_setting(&self) -> bool {
        self.config.is_some()
            || self.arch.is_some()
            || self.epochs.is_some()
            || self.pairs_per_epoch.is_some()
            || self.batch_size.is_some()
            || self.lr.is_some()
            || self.seed.is_some()
            || self.phototour.is_some()
            || self.validation_pairs.is_some()
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The recipe's config (or the defaults), then the config file over it.
fn base_config(recipe: Option<&str>, common: &Common) -> Result<TrainConfig> {
    if let Some(path) = &common.config {
        if recipe.is_some() {
            bail!("give either --recipe or --config: the config file already names the recipe's settings");
        }
        return Ok(TrainConfig::load(path)?);
    }
    let kind: LossKind = recipe.unwrap_or("hardnet").parse().map_err(|e| anyhow::anyhow!("--recipe: {e}"))?;
    Ok(TrainConfig::for_teacher(kind))
}

/// `--resume` takes everything from the run directory; a setting given with it would be ignored
/// silently, so it is refused instead.
fn ensure_no_overrides(common: &Common, other_settings: bool) -> Result<()> {
    if common.any_setting() || other_settings {
        bail!(
            "--resume continues {} with the config.toml saved there: drop the other settings \
             (or start a new run in another --out)",
            common.out.display()
        );
    }
    Ok(())
}

fn start(cfg: &TrainConfig, common: &Common) -> Result<()> {
    let out = &common.out;
    if out.join("config.toml").exists() {
        if has_progress(out) {
            bail!(
                "{} already holds a run: continue it with --resume, or choose another --out",
                out.display()
            );
        }
        // A start that failed (bad teacher, bad data) or was killed before its first checkpoint
        // leaves only config.toml and a few metric rows: nothing to lose, so a new start takes
        // the directory over instead of blocking it for good.
        tracing::warn!("{}: replacing a run that never reached a checkpoint", out.display());
        discard_unstarted_run(out)?;
    }
    let run =
        RunDir::create(out, cfg).with_context(|| format!("creating the run directory {}", out.display()))?;
    finish(cfg, &run, false, common.device.as_deref())
}

/// Whether the run in `out` has anything worth keeping: a checkpoint (complete or being
/// written), final weights or results.
fn has_progress(out: &Path) -> bool {
    let checkpoints = std::fs::read_dir(out.join("checkpoints"))
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name == "latest" || name.starts_with("step-")
            })
        })
        .unwrap_or(false);
    checkpoints || out.join("model.safetensors").exists() || out.join("results.json").exists()
}

/// Removes what an unstarted run wrote (only the files a run writes, never the folder itself:
/// `--out` may hold other things).
fn discard_unstarted_run(out: &Path) -> Result<()> {
    for name in ["config.toml", "metrics.csv"] {
        let path = out.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot remove", path.display())),
        }
    }
    Ok(())
}

fn resume(common: &Common) -> Result<()> {
    let out = &common.out;
    let run = RunDir::open(out).with_context(|| format!("opening the run directory {}", out.display()))?;
    let cfg: TrainConfig = run.read_config()?;
    cfg.validate().with_context(|| format!("{}", run.path("config.toml").display()))?;
    check_checkpoint_arch(&run, &cfg)?;
    finish(&cfg, &run, true, common.device.as_deref())
}

/// The checkpoint a resume would load must hold the config's architecture, tensor for tensor:
/// checked here so that a mismatch names the file and the tensor instead of failing deep inside
/// the tensor library.
fn check_checkpoint_arch(run: &RunDir, cfg: &TrainConfig) -> Result<()> {
    let Some((dir, _)) = run.latest_checkpoint()? else { return Ok(()) };
    let path = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let sd = StateDict { path, tensors };
    let arch = cfg.arch;
    check_state_dict(&sd, arch).with_context(|| {
        format!(
            "the checkpoint does not match arch = \"{}\" in {}",
            cfg.arch,
            run.path("config.toml").display()
        )
    })?;
    Ok(())
}

fn finish(cfg: &TrainConfig, run: &RunDir, resume: bool, device: Option<&str>) -> Result<()> {
    let device = desdis_models::device::select_device(device)?;
    tracing::info!("training on {}", desdis_models::device::device_name(&device));
    let summary = desdis_train::train(cfg, run, resume, &device)
        .with_context(|| format!("training into {}", run.root().display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Parses a config enum from its name as written in TOML (e.g. `squared`, `neg-distance`).
fn parse_name<T: DeserializeOwned>(flag: &str, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|e| anyhow::anyhow!("{flag} {name:?}: {e}"))
}
