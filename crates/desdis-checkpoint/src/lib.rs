//! Reading and writing weights: PyTorch `.pth` (zip and legacy), safetensors, `hf://` sources.
//!
//! The format of a file is judged by its content, never its extension. PyTorch pickles are read by
//! a restricted pickle machine that accepts only what a tensor state dict needs and never runs
//! code, so loading an untrusted checkpoint is safe.

mod error;
mod hub;
mod pickle;
mod pth;
mod torch;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};

pub use error::{Error, Result};
pub use hub::{default_cache_dir, resolve, resolve_in_cache, HubSource, HF_SCHEME};
pub use pth::read_pth;

/// Named tensors read from one checkpoint, with the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct StateDict {
    /// The file the tensors were read from.
    pub path: PathBuf,
    /// Tensors by their PyTorch state-dict key.
    pub tensors: HashMap<String, Tensor>,
}

impl StateDict {
    /// The keys in sorted order (a `HashMap` has none), for listings and messages.
    pub fn sorted_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// Writes the tensors to `path` as safetensors; see [`save_safetensors`].
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        save_safetensors(&self.tensors, path)
    }
}

/// Loads a checkpoint from a path or an `hf://org/repo[@rev]/path/in/repo` source.
///
/// The format is detected from the content: a zip archive is a PyTorch (>= 1.6) `.pth`, a stream
/// starting with the legacy magic number is a pre-1.6 `.pth`, anything else must be safetensors.
/// A top-level `state_dict` entry of a `.pth` is unwrapped and its non-tensor entries skipped.
pub fn load(source: &str, device: &Device) -> Result<StateDict> {
    let path = resolve(source, None)?;
    let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    load_bytes(&path, &data, device)
}

/// [`load`] from the bytes of a checkpoint already in memory (weights embedded in a binary);
/// `path` names it in messages.
pub fn load_bytes(path: &Path, data: &[u8], device: &Device) -> Result<StateDict> {
    let tensors = match pth::detect(data) {
        pth::Format::Zip | pth::Format::Legacy => pth::read_pth_bytes(path, data, device)?,
        pth::Format::Other => read_safetensors_bytes(path, data, device)?,
    };
    check_finite(path, &tensors)?;
    Ok(StateDict { path: path.to_path_buf(), tensors })
}

/// Refuses a checkpoint with a NaN or infinite value in any float tensor, naming the tensor.
///
/// One Inf weight turns every descriptor into NaN, and one NaN weight can hide behind a ReLU and
/// give finite but wrong descriptors, so a damaged checkpoint must fail at load, not later.
pub fn check_finite(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let tensor = &tensors[key];
        if !tensor.dtype().is_float() {
            continue;
        }
        let values = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if let Some(first) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor `{key}` holds {bad} non-finite value(s) (first: {} at index {first}); the checkpoint is damaged",
                    values[first]
                ),
            ));
        }
    }
    Ok(())
}

fn read_safetensors_bytes(path: &Path, data: &[u8], device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(data, device).map_err(|e| {
        Error::checkpoint(
            path,
            format!("not a PyTorch zip, legacy PyTorch or safetensors file (as safetensors: {e})"),
        )
    })
}

/// Writes `tensors` to `path` as safetensors, atomically: the data goes to a temporary file in
/// the same directory, is flushed to disk, then renamed over `path`, so a crash never leaves a
/// half-written checkpoint behind.
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    check_saveable(tensors, path)?;
    let temp = TempFile::beside(path)?;
    candle_core::safetensors::save(tensors, temp.path())
        .map_err(|e| Error::checkpoint(path, format!("writing safetensors: {e}")))?;
    File::open(temp.path()).and_then(|f| f.sync_all()).map_err(|e| Error::io(temp.path(), e))?;
    temp.persist(path)?;
    sync_parent_dir(path);
    Ok(())
}

/// candle cannot serialise its sub-byte float types and would panic on them, so refuse them here.
fn check_saveable(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let supported = [
        DType::U8,
        DType::U32,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::BF16,
        DType::F16,
        DType::F32,
        DType::F64,
    ];
    for (key, tensor) in tensors {
        if !supported.contains(&tensor.dtype()) {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor `{key}` has dtype {:?}, which cannot be saved as safetensors",
                    tensor.dtype()
                ),
            ));
        }
    }
    Ok(())
}

/// Makes the rename durable. Best effort: some platforms cannot open a directory for syncing,
/// and the file itself is already complete and synced.
fn sync_parent_dir(path: &Path) {
    if let Ok(dir) = File::open(parent_dir(path)) {
        let _ = dir.sync_all();
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A temporary file next to its final destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    fn beside(target: &Path) -> Result<Self> {
        let name = target
            .file_name()
            .ok_or_else(|| Error::checkpoint(target, "output path has no file name"))?
            .to_string_lossy();
        // Unique per process and per call, so concurrent saves to one target never share a file.
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent_dir(target).join(format!(".{name}.{}-{serial}.tmp", std::process::id()));
        // Create it exclusively: a stale file of the same name is an error, not something to clobber.
        let mut file =
            File::options().write(true).create_new(true).open(&path).map_err(|e| Error::io(&path, e))?;
        file.flush().map_err(|e| Error::io(&path, e))?;
        Ok(TempFile { path, persisted: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn persist(mut self, target: &Path) -> Result<()> {
        std::fs::rename(&self.path, target).map_err(|e| Error::io(target, e))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
