//! A run directory that describes itself: `config.toml`, `metrics.csv`, checkpoints, `results.json`.
//!
//! Every file is written atomically (temporary file in the same directory, fsync, rename), so a
//! crash at any instant leaves either the old or the new version, never a torn one. A checkpoint is
//! several files (model, optimizer, progress): they are written into a fresh directory that is
//! renamed into place whole, and `latest` names the newest complete one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Error, Result};

const CHECKPOINTS: &str = "checkpoints";
const LATEST: &str = "latest";

/// Where a run was when a checkpoint was taken: enough to continue it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs fully done.
    pub epoch: usize,
    /// Optimizer steps done in total.
    pub step: u64,
    /// Length in bytes of `metrics.csv` at that moment (rows written later are dropped on resume).
    pub metrics_len: u64,
}

/// A run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) `root` and writes `config.toml`.
    pub fn create<C: Serialize>(root: &Path, config: &C) -> Result<Self> {
        fs::create_dir_all(root.join(CHECKPOINTS)).map_err(|e| Error::io(root, e))?;
        let dir = Self { root: root.to_path_buf() };
        let text = toml::to_string_pretty(config).map_err(|e| Error::context("cannot write config", e))?;
        write_atomic(&dir.path("config.toml"), text.as_bytes())?;
        Ok(dir)
    }

    /// Opens an existing run directory (for `--resume` or evaluation).
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join("config.toml").is_file() {
            return Err(Error::Config(format!("{}: not a run directory (no config.toml)", root.display())));
        }
        Ok(Self { root: root.to_path_buf() })
    }

    /// The run's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Reads the run's `config.toml`.
    pub fn read_config<C: DeserializeOwned>(&self) -> Result<C> {
        let path = self.path("config.toml");
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        toml::from_str(&text).map_err(|e| Error::context(path.display().to_string(), e))
    }

    /// Appends one row to `metrics.csv`, writing `header` first when the file is new or empty
    /// (a resume from step 0 truncates it to nothing).
    pub fn append_metrics(&self, header: &str, row: &str) -> Result<()> {
        let path = self.path("metrics.csv");
        let is_new = fs::metadata(&path).map_or(true, |m| m.len() == 0);
        let mut file =
            fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let text = if is_new { format!("{header}\n{row}\n") } else { format!("{row}\n") };
        file.write_all(text.as_bytes()).map_err(|e| Error::io(&path, e))
    }

    /// Current length of `metrics.csv` (0 when absent).
    pub fn metrics_len(&self) -> u64 {
        fs::metadata(self.path("metrics.csv")).map(|m| m.len()).unwrap_or(0)
    }

    /// Writes a complete checkpoint: each `(file name, bytes)` plus `progress.json`, then points
    /// `latest` at it and removes older checkpoints.
    pub fn save_checkpoint(&self, progress: &Progress, files: &[(&str, Vec<u8>)]) -> Result<PathBuf> {
        let name = format!("step-{:09}", progress.step);
        let dir = self.root.join(CHECKPOINTS);
        let staging = dir.join(format!(".{name}.tmp"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        for (file, bytes) in files {
            let path = staging.join(file);
            desdis_stdx::write_synced(&path, bytes).map_err(|e| Error::io(&path, e))?;
        }
        let json = serde_json::to_vec_pretty(progress).map_err(|e| Error::Config(e.to_string()))?;
        let progress = staging.join("progress.json");
        desdis_stdx::write_synced(&progress, &json).map_err(|e| Error::io(&progress, e))?;
        let target = dir.join(&name);
        let _ = fs::remove_dir_all(&target);
        fs::rename(&staging, &target).map_err(|e| Error::io(&target, e))?;
        desdis_stdx::sync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        // The checkpoint `latest` named until now stays as the fallback for a damaged newest one.
        let previous = self.latest_name().filter(|p| *p != name);
        write_atomic(&dir.join(LATEST), name.as_bytes())?;
        self.remove_checkpoints_except(&[Some(name.as_str()), previous.as_deref()]);
        Ok(target)
    }

    /// The name `checkpoints/latest` holds, when it is a plain checkpoint name.
    fn latest_name(&self) -> Option<String> {
        let text = fs::read_to_string(self.root.join(CHECKPOINTS).join(LATEST)).ok()?;
        let name = text.trim();
        checkpoint_step(name).map(|_| name.to_string())
    }

    /// The newest intact checkpoint, if any: its directory and progress.
    ///
    /// Nothing in the run directory is taken on trust. `checkpoints/latest` must name a plain
    /// `step-NNNNNNNNN` directory inside `checkpoints/` (a name with `/` or `..` is refused, so no
    /// checkpoint is read from outside the run), and a checkpoint counts as intact only when
    /// [`RunDir::check_checkpoint`] accepts it: its files load, every weight is finite, and its
    /// progress agrees with `metrics.csv` and `config.toml`. When the newest checkpoint is
    /// damaged, the previous intact one is used with a warning, and `latest` is pointed at it.
    pub fn latest_checkpoint(&self) -> Result<Option<(PathBuf, Progress)>> {
        let dir = self.root.join(CHECKPOINTS);
        let latest = dir.join(LATEST);
        let named = match fs::read_to_string(&latest) {
            Ok(text) => Some(text.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&latest, e)),
        };
        if let Some(name) = &named {
            if checkpoint_step(name).is_none() {
                return Err(Error::Config(format!(
                    "{}: names {name:?}, not a checkpoint directory `step-NNNNNNNNN` of this run; \
                     the run directory was edited or is corrupt",
                    latest.display()
                )));
            }
        }
        let candidates = self.checkpoint_candidates(named.as_deref())?;
        if candidates.is_empty() {
            return Ok(None);
        }
        let metrics = self.read_metrics_for_resume()?;
        let mut damaged = Vec::new();
        for name in &candidates {
            let ckpt = dir.join(name);
            match self.check_checkpoint(&ckpt, &metrics) {
                Ok(progress) => {
                    self.warn_fallback(name, named.as_deref(), &damaged)?;
                    return Ok(Some((ckpt, progress)));
                }
                Err(e) => damaged.push(e.to_string()),
            }
        }
        Err(Error::Config(format!(
            "{}: no intact checkpoint to resume from:\n  {}",
            dir.display(),
            damaged.join("\n  ")
        )))
    }

    /// Checkpoint names to try, newest first: the one `latest` names, then the other
    /// `step-NNNNNNNNN` directories by decreasing step. (A checkpoint directory is renamed into
    /// place before `latest` is written, so one may exist that `latest` does not name yet.)
    fn checkpoint_candidates(&self, named: Option<&str>) -> Result<Vec<String>> {
        let dir = self.root.join(CHECKPOINTS);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut others: Vec<(u64, String)> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                checkpoint_step(&name).filter(|_| Some(name.as_str()) != named).map(|step| (step, name))
            })
            .collect();
        others.sort_unstable_by(|a, b| b.cmp(a));
        Ok(named.map(str::to_string).into_iter().chain(others.into_iter().map(|(_, n)| n)).collect())
    }

    /// Says which checkpoint a resume falls back to and why, and repoints `latest` at it so the
    /// next checkpoint keeps it as its own fallback.
    fn warn_fallback(&self, used: &str, named: Option<&str>, damaged: &[String]) -> Result<()> {
        if Some(used) == named {
            return Ok(());
        }
        if damaged.is_empty() {
            tracing::warn!("checkpoints/latest names no checkpoint yet; resuming from {used}");
        } else {
            tracing::warn!(
                "the newest checkpoint is damaged ({}); resuming from the previous intact one, {used}",
                damaged.join("; ")
            );
        }
        write_atomic(&self.root.join(CHECKPOINTS).join(LATEST), used.as_bytes())
    }

    /// `metrics.csv` as a resume needs it: every checkpoint's progress points into it, so a run
    /// with checkpoints but no metrics cannot be continued faithfully.
    fn read_metrics_for_resume(&self) -> Result<Vec<u8>> {
        let path = self.path("metrics.csv");
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Config(format!(
                "{}: missing, but the run has checkpoints: its history is lost, so it cannot be \
                 resumed (start a new run in another --out)",
                path.display()
            ))),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Checks one checkpoint directory against what is on disk; its progress when intact.
    ///
    /// - `progress.json` parses, and `model.safetensors` and `optimizer.safetensors` (when the
    ///   checkpoint has them) load with only finite values;
    /// - `metrics_len` is within `metrics.csv` and ends on a row boundary; the rows before it are
    ///   the header and one row per step, the last for step `step` of epoch `epoch - 1`;
    /// - when `config.toml` is a training config: `step == epoch * steps_per_epoch` and
    ///   `epoch <= epochs` (checkpoints are taken at epoch ends).
    pub fn check_checkpoint(&self, ckpt: &Path, metrics: &[u8]) -> Result<Progress> {
        let name = ckpt.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bad = |msg: String| Error::Config(format!("{}: {msg}", ckpt.display()));
        let path = ckpt.join("progress.json");
        let text = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let progress: Progress =
            serde_json::from_slice(&text).map_err(|e| Error::context(path.display().to_string(), e))?;
        if checkpoint_step(&name) != Some(progress.step) {
            return Err(bad(format!(
                "progress.json says step {}, the directory's name another",
                progress.step
            )));
        }
        for file in ["model.safetensors", "optimizer.safetensors"] {
            check_tensor_file(&ckpt.join(file), file == "model.safetensors")?;
        }
        check_metrics(&self.path("metrics.csv"), metrics, &progress).map_err(bad)?;
        self.check_against_config(&progress).map_err(bad)?;
        Ok(progress)
    }

    /// Epoch and step against the run's own config, when it is a training config.
    fn check_against_config(&self, p: &Progress) -> std::result::Result<(), String> {
        let Ok(cfg) = self.read_config::<crate::TrainConfig>() else { return Ok(()) };
        let per_epoch = cfg.steps_per_epoch() as u64;
        if p.epoch > cfg.epochs || Some(p.step) != (p.epoch as u64).checked_mul(per_epoch) {
            return Err(format!(
                "progress.json says epoch {} and step {}, but config.toml has {} epochs of {per_epoch} steps",
                p.epoch, p.step, cfg.epochs
            ));
        }
        Ok(())
    }

    /// Drops metric rows written after a checkpoint, so a resumed run appends where it left off.
    pub fn truncate_metrics(&self, len: u64) -> Result<()> {
        let path = self.path("metrics.csv");
        if !path.exists() {
            return Ok(());
        }
        let file = fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let current = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        // set_len past the end would pad the file with NUL bytes: a length from a damaged record
        // must never grow the metrics.
        if len > current {
            return Err(Error::Config(format!(
                "{}: cannot keep {len} bytes of a {current}-byte file; the checkpoint's record is wrong",
                path.display()
            )));
        }
        file.set_len(len).map_err(|e| Error::io(&path, e))
    }

    /// Writes `name` (e.g. `results.json`) atomically as pretty JSON.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&self.path(name), &bytes)
    }

    fn remove_checkpoints_except(&self, keep: &[Option<&str>]) {
        let dir = self.root.join(CHECKPOINTS);
        let Ok(entries) = fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("step-") && !keep.contains(&Some(name.as_ref())) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The step of a checkpoint directory name `step-NNNNNNNNN` (nine or more digits, nothing else).
fn checkpoint_step(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.len() < 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A checkpoint's safetensors file loads and holds only finite values. The optimizer state is
/// optional (a checkpoint of weights only), the model is not.
fn check_tensor_file(path: &Path, required: bool) -> Result<()> {
    if !required && !path.exists() {
        return Ok(());
    }
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .map_err(|e| Error::Config(format!("{}: not a readable safetensors file ({e})", path.display())))?;
    desdis_checkpoint::check_finite(path, &tensors)?;
    Ok(())
}

/// `metrics.csv` up to `p.metrics_len`: within the file, ending on a row boundary, and holding
/// the header plus exactly one row per step, the last for step `p.step` of epoch `p.epoch - 1`
/// (checked by column name, so the columns may move).
fn check_metrics(path: &Path, metrics: &[u8], p: &Progress) -> std::result::Result<(), String> {
    let shown = path.display();
    let len = usize::try_from(p.metrics_len).ok().filter(|&l| l <= metrics.len()).ok_or_else(|| {
        format!("progress.json says {shown} had {} bytes, but it has {}", p.metrics_len, metrics.len())
    })?;
    let kept = &metrics[..len];
    if p.step == 0 {
        return Ok(());
    }
    if kept.last() != Some(&b'\n') {
        return Err(format!("progress.json's metrics length {len} does not end a row of {shown}"));
    }
    let text = std::str::from_utf8(kept).map_err(|_| format!("{shown} is not text"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<&str> = lines.collect();
    if rows.len() as u64 != p.step {
        return Err(format!(
            "{shown} holds {} rows before the checkpoint's length, not {} (one per step)",
            rows.len(),
            p.step
        ));
    }
    let last: Vec<&str> = rows.last().map(|r| r.split(',').collect()).unwrap_or_default();
    let column = |name: &str| header.iter().position(|h| *h == name).and_then(|i| last.get(i).copied());
    if let Some(step) = column("step") {
        if step.parse::<u64>().ok() != Some(p.step) {
            return Err(format!(
                "the last row of {shown} before the checkpoint is step {step}, not {}",
                p.step
            ));
        }
    }
    if let Some(epoch) = column("epoch") {
        if epoch.parse::<u64>().ok().map(|e| e + 1) != Some(p.epoch as u64) {
            return Err(format!(
                "progress.json says epoch {} is done, but the last row of {shown} is of epoch {epoch}",
                p.epoch
            ));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`desdis_stdx::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    desdis_stdx::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a training config (its field is unknown to one), so only the generic checks apply.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Cfg {
        test_seed: u64,
    }

    const HEADER: &str = "step,epoch,loss";

    /// safetensors bytes of one tensor holding `values`.
    fn weights(dir: &Path, values: &[f32]) -> Vec<u8> {
        let t = candle_core::Tensor::new(values, &candle_core::Device::Cpu).unwrap();
        let path = dir.join(".w.safetensors");
        candle_core::safetensors::save(&std::collections::HashMap::from([("w".to_string(), t)]), &path)
            .unwrap();
        fs::read(&path).unwrap()
    }

    /// A run of `Cfg` with one checkpoint after each of `epochs` epochs of `per_epoch` steps.
    fn run_with_checkpoints(root: &Path, epochs: usize, per_epoch: u64) -> RunDir {
        let run = RunDir::create(root, &Cfg { test_seed: 1 }).unwrap();
        let mut step = 0;
        for epoch in 0..epochs {
            for _ in 0..per_epoch {
                step += 1;
                run.append_metrics(HEADER, &format!("{step},{epoch},0.5")).unwrap();
            }
            let p = Progress { epoch: epoch + 1, step, metrics_len: run.metrics_len() };
            run.save_checkpoint(&p, &[("model.safetensors", weights(root, &[step as f32]))]).unwrap();
        }
        run
    }

    fn edit_progress(ckpt: &Path, edit: impl FnOnce(&mut Progress)) {
        let path = ckpt.join("progress.json");
        let mut p: Progress = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        edit(&mut p);
        fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
    }

    fn step_dir(run: &RunDir, step: u64) -> PathBuf {
        run.path(CHECKPOINTS).join(format!("step-{step:09}"))
    }

    #[test]
    fn checkpoint_round_trip_and_latest() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let run = RunDir::create(tmp.path(), &Cfg { test_seed: 7 })?;
        assert_eq!(run.read_config::<Cfg>()?, Cfg { test_seed: 7 });
        assert!(run.latest_checkpoint()?.is_none());
        let run = run_with_checkpoints(tmp.path(), 3, 2);
        let (dir, progress) = run.latest_checkpoint()?.expect("a checkpoint");
        assert_eq!((dir.clone(), progress.epoch, progress.step), (step_dir(&run, 6), 3, 6));
        let mut left: Vec<_> =
            fs::read_dir(tmp.path().join(CHECKPOINTS)).unwrap().flatten().map(|e| e.file_name()).collect();
        left.sort();
        let names: Vec<_> =
            ["latest", "step-000000004", "step-000000006"].map(std::ffi::OsString::from).into();
        assert_eq!(left, names, "the newest checkpoint, the previous one and `latest` remain");
        Ok(())
    }

    #[test]
    fn latest_naming_a_path_outside_the_run_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let run = run_with_checkpoints(&tmp.path().join("run"), 1, 2);
        for name in ["../../x", "/etc", "step-000000002/..", "step-2", ""] {
            fs::write(run.path(CHECKPOINTS).join(LATEST), name).unwrap();
            let err = run.latest_checkpoint().unwrap_err().to_string();
            assert!(err.contains("latest") && err.contains("step-NNNNNNNNN"), "{name:?}: {err}");
        }
    }

    #[test]
    fn damaged_latest_falls_back_to_the_previous_checkpoint() {
        type Damage = fn(&RunDir, &Path);
        let damages: [(&str, Damage); 6] = [
            ("metrics_len past the end", |_, c| edit_progress(c, |p| p.metrics_len = 100_000_000)),
            ("metrics_len inside a row", |_, c| edit_progress(c, |p| p.metrics_len -= 3)),
            ("wrong epoch", |_, c| edit_progress(c, |p| p.epoch = 7)),
            ("truncated model", |_, c| {
                let bytes = fs::read(c.join("model.safetensors")).unwrap();
                fs::write(c.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
            }),
            ("NaN weight", |r, c| {
                fs::write(c.join("model.safetensors"), weights(r.root(), &[f32::NAN])).unwrap()
            }),
            ("no progress.json", |_, c| fs::remove_file(c.join("progress.json")).unwrap()),
        ];
        for (what, damage) in damages {
            let tmp = tempfile::tempdir().unwrap();
            let run = run_with_checkpoints(tmp.path(), 2, 3);
            damage(&run, &step_dir(&run, 6));
            let (dir, p) =
                run.latest_checkpoint().unwrap().unwrap_or_else(|| panic!("{what}: no checkpoint"));
            assert_eq!((dir, p.epoch, p.step), (step_dir(&run, 3), 1, 3), "{what}");
            let latest = fs::read_to_string(run.path(CHECKPOINTS).join(LATEST)).unwrap();
            assert_eq!(latest, "step-000000003", "{what}: `latest` now names the intact checkpoint");
        }
    }

    #[test]
    fn no_intact_checkpoint_or_no_metrics_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let run = run_with_checkpoints(tmp.path(), 2, 3);
        for step in [3, 6] {
            edit_progress(&step_dir(&run, step), |p| p.metrics_len += 1);
        }
        let err = run.latest_checkpoint().unwrap_err().to_string();
        assert!(err.contains("no intact checkpoint") && err.contains("metrics.csv"), "{err}");
        fs::remove_file(run.path("metrics.csv")).unwrap();
        let err = run.latest_checkpoint().unwrap_err().to_string();
        assert!(err.contains("metrics.csv: missing"), "{err}");
    }

    #[test]
    fn progress_must_agree_with_a_training_config() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = crate::TrainConfig { epochs: 3, pairs_per_epoch: 4, batch_size: 2, ..Default::default() };
        let run = RunDir::create(tmp.path(), &cfg).unwrap();
        // Rows consistent with a 3-step epoch, while the config says 2 steps per epoch.
        for step in 1..=3 {
            run.append_metrics(HEADER, &format!("{step},0,0.5")).unwrap();
        }
        let p = Progress { epoch: 1, step: 3, metrics_len: run.metrics_len() };
        let ckpt = run.save_checkpoint(&p, &[("model.safetensors", weights(tmp.path(), &[1.0]))]).unwrap();
        let err = run.latest_checkpoint().unwrap_err().to_string();
        assert!(err.contains("2 steps") && err.contains(&ckpt.display().to_string()), "{err}");
    }

    #[test]
    fn truncate_never_grows_the_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), &Cfg { test_seed: 1 }).unwrap();
        run.append_metrics(HEADER, "1,0,0.5").unwrap();
        let before = fs::read(run.path("metrics.csv")).unwrap();
        assert!(run.truncate_metrics(1 << 20).is_err());
        assert_eq!(fs::read(run.path("metrics.csv")).unwrap(), before, "no NUL padding");
    }

    #[test]
    fn metrics_truncate_drops_rows_after_checkpoint() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let run = RunDir::create(tmp.path(), &Cfg { test_seed: 1 })?;
        run.append_metrics("step,loss", "1,0.5")?;
        let len = run.metrics_len();
        run.append_metrics("step,loss", "2,0.4")?;
        run.truncate_metrics(len)?;
        assert_eq!(fs::read_to_string(run.path("metrics.csv")).unwrap(), "step,loss\n1,0.5\n");
        run.truncate_metrics(0)?;
        run.append_metrics("step,loss", "1,0.7")?;
        assert_eq!(fs::read_to_string(run.path("metrics.csv")).unwrap(), "step,loss\n1,0.7\n");
        Ok(())
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let path = tmp.path().join("results.json");
        write_atomic(&path, b"{}")?;
        write_atomic(&path, b"{\"a\":1}")?;
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("results.json")]);
        Ok(())
    }
}
