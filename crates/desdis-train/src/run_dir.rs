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
        let text =
            toml::to_string_pretty(config).map_err(|e| Error::Config(format!("cannot write config: {e}")))?;
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
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
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
            write_synced(&staging.join(file), bytes)?;
        }
        let json = serde_json::to_vec_pretty(progress).map_err(|e| Error::Config(e.to_string()))?;
        write_synced(&staging.join("progress.json"), &json)?;
        let target = dir.join(&name);
        let _ = fs::remove_dir_all(&target);
        fs::rename(&staging, &target).map_err(|e| Error::io(&target, e))?;
        sync_dir(&dir)?;
        write_atomic(&dir.join(LATEST), name.as_bytes())?;
        self.remove_checkpoints_except(&name);
        Ok(target)
    }

    /// The newest complete checkpoint, if any: its directory and progress.
    pub fn latest_checkpoint(&self) -> Result<Option<(PathBuf, Progress)>> {
        let dir = self.root.join(CHECKPOINTS);
        let Ok(name) = fs::read_to_string(dir.join(LATEST)) else { return Ok(None) };
        let ckpt = dir.join(name.trim());
        let path = ckpt.join("progress.json");
        let text = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let progress =
            serde_json::from_slice(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok(Some((ckpt, progress)))
    }

    /// Drops metric rows written after a checkpoint, so a resumed run appends where it left off.
    pub fn truncate_metrics(&self, len: u64) -> Result<()> {
        let path = self.path("metrics.csv");
        if !path.exists() {
            return Ok(());
        }
        let file = fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        file.set_len(len).map_err(|e| Error::io(&path, e))
    }

    /// Writes `name` (e.g. `results.json`) atomically as pretty JSON.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&self.path(name), &bytes)
    }

    fn remove_checkpoints_except(&self, keep: &str) {
        let dir = self.root.join(CHECKPOINTS);
        let Ok(entries) = fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("step-") && name != keep {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary sibling, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".{file_name}.{}.tmp", std::process::id()));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(parent)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // A rename is durable only once the directory entry is; opening a directory read-only for fsync works on Unix.
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Cfg {
        seed: u64,
    }

    #[test]
    fn checkpoint_round_trip_and_latest() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let run = RunDir::create(tmp.path(), &Cfg { seed: 7 })?;
        assert_eq!(run.read_config::<Cfg>()?, Cfg { seed: 7 });
        assert!(run.latest_checkpoint()?.is_none());
        let p1 = Progress { epoch: 1, step: 10, metrics_len: 5 };
        run.save_checkpoint(&p1, &[("model.safetensors", vec![1, 2, 3])])?;
        let p2 = Progress { epoch: 2, step: 20, metrics_len: 9 };
        let dir2 = run.save_checkpoint(&p2, &[("model.safetensors", vec![4])])?;
        let (dir, progress) = run.latest_checkpoint()?.expect("a checkpoint");
        assert_eq!((dir.clone(), progress), (dir2, p2));
        assert_eq!(fs::read(dir.join("model.safetensors")).unwrap(), vec![4]);
        let left: Vec<_> = fs::read_dir(tmp.path().join(CHECKPOINTS)).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "only the newest checkpoint and `latest` remain");
        Ok(())
    }

    #[test]
    fn metrics_truncate_drops_rows_after_checkpoint() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let run = RunDir::create(tmp.path(), &Cfg { seed: 1 })?;
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
