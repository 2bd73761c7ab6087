//! The training loop: seeded, checkpointed each epoch, and resumable bit for bit.
//!
//! Every random choice derives from the config's seed: initial weights from `seed`, the pairs and
//! augmentation of epoch `e` from `(seed, e)`, the dropout masks of step `s` from `(seed, s)`.
//! With the weights, batch-norm statistics and optimizer state saved at each epoch end, a resumed
//! run therefore repeats exactly what the uninterrupted run would have done.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use desdis_data::batch::PairBatcher;
use desdis_data::embedded::{self, EmbeddedConfig};
use desdis_data::mining::{generate_pairs, sample_eval_pairs};
use desdis_data::patch::{Dataset, PatchSet};
use desdis_data::phototour::{self, CachePolicy};
use desdis_loss::Distillation;
use desdis_models::init::init_net;
use desdis_models::nets::{load_net, Net};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{DataSource, TrainConfig};
use crate::metrics::{read_metrics, MetricsRow};
use crate::optim::Optimizer;
use crate::run_dir::{Progress, RunDir};
use crate::step::{train_step, Objective};
use crate::{Error, Result};

const MODEL_FILE: &str = "model.safetensors";
/// The weights of the epoch with the lowest validation FPR95 so far, and which epoch that was.
const BEST_MODEL_FILE: &str = "best.safetensors";
const BEST_FILE: &str = "best.json";
/// The weights after the last step, when `model.safetensors` holds the best epoch's instead.
const LAST_MODEL_FILE: &str = "last.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// What a finished run reports (also written as `results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// The trained architecture's name.
    pub arch: String,
    /// Epochs done.
    pub epochs: usize,
    /// Optimizer steps done.
    pub steps: u64,
    /// Mean total loss over the first epoch of this run's history.
    pub first_epoch_loss: f64,
    /// Mean total loss over the last epoch.
    pub last_epoch_loss: f64,
    /// Validation FPR95 after each epoch (empty without validation).
    pub val_fpr95: Vec<f64>,
    /// Mean training throughput of the steps this call ran, in pairs per second.
    pub pairs_per_s: f64,
    /// The epoch (1-based) whose weights `model.safetensors` holds: the one with the lowest
    /// validation FPR95 (`None` without validation: then it holds the last weights).
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// That epoch's validation FPR95.
    #[serde(default)]
    pub best_val_fpr95: Option<f64>,
}

/// The best epoch so far by validation FPR95 (`best.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Epochs done when it was taken (1-based).
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: u64,
    /// Its validation FPR95.
    pub val_fpr95: f64,
}

/// Mixes `seed` with a stream tag and an index into a fresh seed (SplitMix64 finaliser), so that
/// per-epoch and per-step seeds never collide between streams.
pub fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const STREAM_MINING: u64 = 1;
const STREAM_AUGMENT: u64 = 2;
const STREAM_DROPOUT: u64 = 3;
const STREAM_VALIDATION: u64 = 4;

/// Trains as `cfg` says, writing metrics, checkpoints, `model.safetensors` and `results.json`
/// into `run`. With `resume`, continues from the run's latest checkpoint (from scratch if it has
/// none); otherwise any earlier metrics in `run` are discarded.
pub fn train(cfg: &TrainConfig, run: &RunDir, resume: bool, device: &Device) -> Result<TrainSummary> {
    train_until(cfg, run, resume, device, cfg.epochs)
}

/// [`train`], stopping after epoch `stop_epoch` (exclusive, at most `cfg.epochs`) as if
/// interrupted there: the learning-rate schedule still spans all `cfg.epochs`, so resuming later
/// completes the very run [`train`] would have done.
pub fn train_until(
    cfg: &TrainConfig,
    run: &RunDir,
    resume: bool,
    device: &Device,
    stop_epoch: usize,
) -> Result<TrainSummary> {
    cfg.validate()?;
    let arch = cfg.arch;
    // The teacher first: a wrong path should fail before any data is generated.
    let objective = objective(cfg, device)?;
    let data = load_training_set(cfg)?;
    let validation = validation_set(cfg, device)?;
    let (varmap, mut net) = init_net(arch, cfg.seed, device)?;
    let mut optimizer = Optimizer::new(cfg.optimizer.clone(), named_vars(&varmap));
    let mut progress = Progress { epoch: 0, step: 0, metrics_len: 0 };
    if resume {
        if let Some(p) = restore(run, &varmap, &mut optimizer, device)? {
            progress = p;
        }
    }
    run.truncate_metrics(progress.metrics_len)?;
    if !resume {
        forget_best(run)?;
    }
    tracing::info!(
        "training {} from seed {} ({} steps)",
        arch.name(),
        cfg.seed,
        cfg.epochs * cfg.steps_per_epoch()
    );
    let total_steps = (cfg.epochs * cfg.steps_per_epoch()) as u64;
    let bar = progress_bar(total_steps, progress.step);
    let started = Instant::now();
    let first_step = progress.step;
    let mut val = Vec::new();
    for epoch in progress.epoch..stop_epoch.min(cfg.epochs) {
        let ctx =
            EpochCtx { cfg, run, data: data.as_ref(), objective: &objective, total_steps, bar: &bar, device };
        let fpr = run_epoch(&ctx, epoch, &mut net, &mut optimizer, &mut progress, validation.as_ref())?;
        val.extend(fpr);
        progress.epoch = epoch + 1;
        if let Some(f) = fpr {
            keep_if_best(run, &varmap, Best { epoch: progress.epoch, step: progress.step, val_fpr95: f })?;
        }
        progress.metrics_len = run.metrics_len();
        if cfg.checkpoint_each_epoch || epoch + 1 == cfg.epochs {
            save_checkpoint(run, &progress, &varmap, &optimizer)?;
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let pairs = (progress.step - first_step) as f64 * cfg.batch_size as f64;
    finish(cfg, run, &varmap, progress.epoch, pairs / elapsed)
}

/// What every step of an epoch shares.
struct EpochCtx<'a> {
    cfg: &'a TrainConfig,
    run: &'a RunDir,
    data: &'a dyn Dataset,
    objective: &'a Objective,
    total_steps: u64,
    bar: &'a ProgressBar,
    device: &'a Device,
}

/// Runs one epoch's steps, logging each; returns the validation FPR95 after it, if validating.
fn run_epoch(
    ctx: &EpochCtx,
    epoch: usize,
    net: &mut Net,
    optimizer: &mut Optimizer,
    progress: &mut Progress,
    validation: Option<&Validation>,
) -> Result<Option<f64>> {
    let cfg = ctx.cfg;
    let steps = cfg.steps_per_epoch();
    let mining_seed = derive_seed(cfg.seed, STREAM_MINING, epoch as u64);
    let pairs = generate_pairs(ctx.data.point_ids(), steps * cfg.batch_size, cfg.batch_size, mining_seed)
        .map_err(|e| Error::context("mining training pairs", e))?;
    let mut batcher = PairBatcher::new(ctx.data, &pairs, cfg.batch_size, ctx.device.clone());
    if cfg.augmentation {
        batcher = batcher.with_augmentation(derive_seed(cfg.seed, STREAM_AUGMENT, epoch as u64));
    }
    let mut fpr = None;
    for b in 0..steps {
        let t0 = Instant::now();
        let (anchors, positives) = batcher.batch(b).map_err(data_err)?;
        let lr = cfg.schedule.lr_at(cfg.lr, progress.step, ctx.total_steps);
        net.seed_dropout(derive_seed(cfg.seed, STREAM_DROPOUT, progress.step));
        let at_step = |e: Error| Error::AtStep { step: progress.step + 1, source: Box::new(e) };
        let loss = train_step(ctx.objective, net, optimizer, &anchors, &positives, lr).map_err(at_step)?;
        let total = loss.total;
        progress.step += 1;
        let rate = cfg.batch_size as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        if b + 1 == steps {
            fpr = validation.map(|v| v.fpr95(net)).transpose()?;
        }
        let row = MetricsRow {
            step: progress.step,
            epoch,
            lr,
            loss: f64::from(total),
            triplet: f64::from(loss.triplet),
            rts: f64::from(loss.rts),
            pairs_per_s: rate,
            val_fpr95: fpr,
        };
        ctx.run.append_metrics(MetricsRow::HEADER, &row.to_csv())?;
        ctx.bar.set_message(format!("epoch {epoch} loss {total:.4} lr {lr:.3e} {rate:.0} pairs/s"));
        ctx.bar.inc(1);
    }
    if let Some(f) = fpr {
        tracing::info!("epoch {epoch}: validation FPR95 {:.4}", f);
    }
    Ok(fpr)
}

/// The plain triplet loss, or the distillation objective with its frozen teacher.
fn objective(cfg: &TrainConfig, device: &Device) -> Result<Objective> {
    let triplet = cfg.loss.build().map_err(|e| Error::context("loss", e))?;
    let Some(d) = &cfg.distill else { return Ok(Objective::Plain(triplet)) };
    let teacher = load_net(&d.teacher, d.teacher_arch, device)
        .map_err(|e| Error::context(format!("distill.teacher = {:?}", d.teacher), e))?;
    tracing::info!("distilling {} from teacher {} ({})", cfg.arch, d.teacher, teacher.arch().name());
    let loss = Distillation::new(triplet, d.rts.clone()).map_err(|e| Error::context("distill.rts", e))?;
    Ok(Objective::Distill { loss, teacher: Box::new(teacher) })
}

/// The variables of `varmap` by state-dict key.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The tensors of `varmap` by state-dict key (the keys the nets load).
pub fn varmap_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    named_vars(varmap).into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect()
}

fn save_checkpoint(run: &RunDir, progress: &Progress, varmap: &VarMap, optimizer: &Optimizer) -> Result<()> {
    let model = safetensors_bytes(run, &varmap_tensors(varmap))?;
    let optim = safetensors_bytes(run, &optimizer.state_tensors()?)?;
    run.save_checkpoint(progress, &[(MODEL_FILE, model), (OPTIMIZER_FILE, optim)])?;
    Ok(())
}

/// Serialises tensors to safetensors bytes, through a scratch file in the run directory.
fn safetensors_bytes(run: &RunDir, tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let scratch = run.path(&format!(".scratch-{}.safetensors", std::process::id()));
    candle_core::safetensors::save(tensors, &scratch)?;
    let bytes = std::fs::read(&scratch).map_err(|e| Error::io(&scratch, e));
    let _ = std::fs::remove_file(&scratch);
    bytes
}

/// Loads the latest checkpoint into the variables and the optimizer; its progress, if any.
fn restore(
    run: &RunDir,
    varmap: &VarMap,
    optimizer: &mut Optimizer,
    device: &Device,
) -> Result<Option<Progress>> {
    let Some((dir, progress)) = run.latest_checkpoint()? else {
        tracing::warn!("{}: no checkpoint to resume from, starting afresh", run.root().display());
        return Ok(None);
    };
    let model = candle_core::safetensors::load(dir.join(MODEL_FILE), device)
        .map_err(|e| Error::context(dir.join(MODEL_FILE).display().to_string(), e))?;
    for (key, var) in named_vars(varmap) {
        let t = model.get(&key).ok_or_else(|| {
            Error::Config(format!("{}: checkpoint lacks tensor `{key}`", dir.join(MODEL_FILE).display()))
        })?;
        var.set(t)?;
    }
    let state = candle_core::safetensors::load(dir.join(OPTIMIZER_FILE), device)
        .map_err(|e| Error::context(dir.join(OPTIMIZER_FILE).display().to_string(), e))?;
    optimizer.load_state(state)?;
    tracing::info!("resuming at epoch {} (step {})", progress.epoch, progress.step);
    Ok(Some(progress))
}

/// Writes the final weights and `results.json`, and summarises the run from `metrics.csv`.
fn finish(
    cfg: &TrainConfig,
    run: &RunDir,
    varmap: &VarMap,
    epochs: usize,
    pairs_per_s: f64,
) -> Result<TrainSummary> {
    let best = read_best(run)?;
    let last = varmap_tensors(varmap);
    match best {
        Some(_) => {
            desdis_checkpoint::save_safetensors(&last, &run.path(LAST_MODEL_FILE))?;
            let bytes = std::fs::read(run.path(BEST_MODEL_FILE))
                .map_err(|e| Error::io(run.path(BEST_MODEL_FILE), e))?;
            crate::run_dir::write_atomic(&run.path(MODEL_FILE), &bytes)?;
        }
        None => desdis_checkpoint::save_safetensors(&last, &run.path(MODEL_FILE))?,
    }
    let rows = read_metrics(run)?;
    let epoch_mean = |e: usize| {
        let v: Vec<f64> = rows.iter().filter(|r| r.epoch == e).map(|r| r.loss).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let summary = TrainSummary {
        arch: cfg.arch.name(),
        epochs,
        steps: rows.last().map_or(0, |r| r.step),
        first_epoch_loss: epoch_mean(0),
        last_epoch_loss: epoch_mean(epochs.saturating_sub(1)),
        val_fpr95: rows.iter().filter_map(|r| r.val_fpr95).collect(),
        pairs_per_s,
        best_epoch: best.map(|b| b.epoch),
        best_val_fpr95: best.map(|b| b.val_fpr95),
    };
    run.write_json("results.json", &summary)?;
    Ok(summary)
}

/// The run's best epoch so far, if it validates.
pub fn read_best(run: &RunDir) -> Result<Option<Best>> {
    let path = run.path(BEST_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::context(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Saves the weights as the best ones when `candidate` validates better than the best so far
/// (ties keep the earlier epoch). Weights first, then `best.json`; a resumed run repeats the
/// epoch after a crash between the two, with the same validation result.
fn keep_if_best(run: &RunDir, varmap: &VarMap, candidate: Best) -> Result<()> {
    if read_best(run)?.is_some_and(|b| b.val_fpr95 <= candidate.val_fpr95) {
        return Ok(());
    }
    desdis_checkpoint::save_safetensors(&varmap_tensors(varmap), &run.path(BEST_MODEL_FILE))?;
    run.write_json(BEST_FILE, &candidate)
}

/// Removes the best-epoch record of an earlier run in the same directory.
fn forget_best(run: &RunDir) -> Result<()> {
    for name in [BEST_FILE, BEST_MODEL_FILE, LAST_MODEL_FILE] {
        let path = run.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(())
}

fn progress_bar(total: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}") {
        bar.set_style(style);
    }
    bar.set_position(done);
    bar
}

fn data_err(e: desdis_data::DataError) -> Error {
    Error::context("training data", e)
}

/// The training patches `cfg.data` names.
fn load_training_set(cfg: &TrainConfig) -> Result<Box<dyn Dataset>> {
    match &cfg.data {
        DataSource::Embedded { config, cache_dir, limit } => {
            let dir = cache_dir.clone().unwrap_or_else(embedded::default_cache_dir);
            let set = embedded::load_or_generate(&dir, config)
                .map_err(|e| Error::context(format!("embedded training set (cache {})", dir.display()), e))?;
            Ok(Box::new(match limit {
                Some(n) => truncate(&set, *n)?,
                None => set,
            }))
        }
        DataSource::PhotoTour { dir } => {
            let set = phototour::load(dir, &CachePolicy::NextToData)
                .map_err(|e| Error::context(format!("data.dir = {}", dir.display()), e))?;
            Ok(Box::new(set))
        }
    }
}

/// The first `n` patches of `set`.
fn truncate(set: &PatchSet, n: usize) -> Result<PatchSet> {
    let n = n.min(set.len());
    let patches = (0..n).flat_map(|i| set.patch(i).iter().copied()).collect();
    PatchSet::new(patches, set.point_ids()[..n].to_vec()).map_err(data_err)
}

/// Labelled pairs of held-out patches for the per-epoch FPR95.
struct Validation {
    set: PatchSet,
    pairs: Vec<desdis_data::phototour::Pair>,
    device: Device,
}

/// The validation pairs: from the embedded validation photo, for any training source.
fn validation_set(cfg: &TrainConfig, device: &Device) -> Result<Option<Validation>> {
    if cfg.validation_pairs == 0 {
        return Ok(None);
    }
    let (base, dir) = match &cfg.data {
        DataSource::Embedded { config, cache_dir, .. } => (*config, cache_dir.clone()),
        DataSource::PhotoTour { .. } => (EmbeddedConfig::default(), None),
    };
    let dir = dir.unwrap_or_else(embedded::default_cache_dir);
    let set = embedded::load_or_generate(&dir, &base.validation())
        .map_err(|e| Error::context(format!("embedded validation set (cache {})", dir.display()), e))?;
    let seed = derive_seed(cfg.seed, STREAM_VALIDATION, 0);
    let pairs = sample_eval_pairs(set.point_ids(), cfg.validation_pairs, seed).map_err(data_err)?;
    Ok(Some(Validation { set, pairs, device: device.clone() }))
}

impl Validation {
    /// FPR95 of `net` (in evaluation mode) on the pairs, scored as `desdis eval` scores pairs.
    fn fpr95(&self, net: &Net) -> Result<f64> {
        let scored = desdis_eval::pair_distances(net, &self.set, &self.pairs, &self.device)
            .map_err(|e| Error::context("validation pairs", e))?;
        desdis_eval::fpr95(&scored.distances, &scored.labels)
            .map_err(|e| Error::context("validation FPR95", e))
    }
}
