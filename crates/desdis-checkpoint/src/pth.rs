//! The two PyTorch `.pth` containers: the zip archive of PyTorch >= 1.6 and the legacy stream of
//! consecutive pickles followed by raw storages.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::rc::Rc;

use candle_core::{Device, Tensor};

use super::pickle::{self, Unpickled, Value};
use super::torch::{self, StorageDtype, TensorSpec};
use crate::{Error, Result};

/// Magic number that the legacy format pickles first.
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// Protocol version that the legacy format pickles second.
const LEGACY_PROTOCOL: i64 = 1001;
/// A state dict's pickle is a few KiB; this only stops a compressed bomb.
const MAX_PICKLE_BYTES: u64 = 256 << 20;
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// The container a checkpoint's bytes are in, judged by content only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Zip,
    Legacy,
    /// Neither PyTorch container (maybe safetensors).
    Other,
}

/// Detects the container from the first bytes: a zip local header, or a first pickle that is the
/// legacy magic number.
pub(crate) fn detect(data: &[u8]) -> Format {
    if data.starts_with(ZIP_MAGIC) {
        return Format::Zip;
    }
    // Only pay for a pickle parse when the first byte is the PROTO opcode.
    let is_legacy = data.first() == Some(&0x80)
        && pickle::unpickle(data, 0).is_ok_and(|first| matches!(first.root, Value::BigInt(LEGACY_MAGIC)));
    if is_legacy {
        Format::Legacy
    } else {
        Format::Other
    }
}

/// Reads the tensors of a PyTorch checkpoint in either container.
///
/// A top-level `state_dict` entry is unwrapped; entries that are not tensors are skipped
/// (integer buffers such as `num_batches_tracked` are tensors and kept, as i64).
pub fn read_pth(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_pth_bytes(path, &data, device)
}

/// [`read_pth`] on bytes already read from `path`.
pub(crate) fn read_pth_bytes(path: &Path, data: &[u8], device: &Device) -> Result<HashMap<String, Tensor>> {
    match detect(data) {
        Format::Zip => read_zip(path, data, device),
        Format::Legacy => read_legacy(path, data, device),
        Format::Other => Err(Error::checkpoint(
            path,
            "not a PyTorch checkpoint: neither a zip archive nor a legacy pickle stream",
        )),
    }
}

fn read_zip(path: &Path, data: &[u8], device: &Device) -> Result<HashMap<String, Tensor>> {
    let fail = |msg: String| Error::checkpoint(path, msg);
    let mut archive = zip::ZipArchive::new(Cursor::new(data))
        .map_err(|e| fail(format!("not a valid zip archive (truncated or corrupt?): {e}")))?;
    let pickle_name =
        find_data_pkl(&archive).ok_or_else(|| fail("zip archive has no `<dir>/data.pkl`".into()))?;
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    check_byteorder(&mut archive, prefix).map_err(fail)?;
    let pickle_bytes = read_entry(&mut archive, &pickle_name, MAX_PICKLE_BYTES).map_err(fail)?;
    let unpickled = pickle::unpickle(&pickle_bytes, 0).map_err(|e| fail(format!("{pickle_name}: {e}")))?;
    let specs = tensor_specs(&unpickled).map_err(|e| fail(format!("{pickle_name}: {e}")))?;

    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for (_, spec) in &specs {
        let layout = &spec.storage;
        if storages.contains_key(&layout.key) {
            continue;
        }
        let need = storage_bytes(layout.numel, layout.dtype).map_err(fail)?;
        let entry = format!("{prefix}data/{}", layout.key);
        // One byte past the need, so that an exact-size entry is read to its end (and its CRC checked).
        let mut bytes = read_entry(&mut archive, &entry, need as u64 + 1).map_err(fail)?;
        bytes.truncate(need);
        storages.insert(layout.key.clone(), bytes);
    }
    let views = storages.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
    build_tensors(path, specs, &views, device)
}

/// The shallowest entry named `data.pkl` (PyTorch writes `<archive name>/data.pkl`).
fn find_data_pkl<R: Read + std::io::Seek>(archive: &zip::ZipArchive<R>) -> Option<String> {
    archive
        .file_names()
        .filter(|name| *name == "data.pkl" || (name.ends_with("/data.pkl") && name.matches('/').count() == 1))
        .min_by_key(|name| name.len())
        .map(str::to_owned)
}

/// Newer archives record the byte order of the raw storages; only little-endian is supported.
fn check_byteorder<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    prefix: &str,
) -> std::result::Result<(), String> {
    let name = format!("{prefix}byteorder");
    if archive.index_for_name(&name).is_none() {
        return Ok(());
    }
    let order = read_entry(archive, &name, 64)?;
    match String::from_utf8_lossy(&order).trim() {
        "little" => Ok(()),
        other => Err(format!("storages are stored `{other}`-endian; only little-endian is supported")),
    }
}

/// Reads at most `limit` bytes of a zip entry; the buffer grows only with bytes actually read.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> std::result::Result<Vec<u8>, String> {
    let entry = archive.by_name(name).map_err(|e| format!("zip entry `{name}`: {e}"))?;
    let mut bytes = Vec::new();
    entry
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading zip entry `{name}` (truncated or corrupt?): {e}"))?;
    Ok(bytes)
}

fn storage_bytes(numel: usize, dtype: StorageDtype) -> std::result::Result<usize, String> {
    numel
        .checked_mul(dtype.size())
        .filter(|&n| n < usize::MAX)
        .ok_or_else(|| format!("storage of {numel} {} elements is too large", dtype.class_name()))
}

/// The legacy stream: magic number, protocol version, system info, the state dict, the list of
/// storage keys, then for each key an i64 element count and the raw little-endian elements.
fn read_legacy(path: &Path, data: &[u8], device: &Device) -> Result<HashMap<String, Tensor>> {
    let fail = |msg: String| Error::checkpoint(path, msg);
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Unpickled> {
        let out = pickle::unpickle(data, pos).map_err(|e| fail(format!("legacy {what} pickle: {e}")))?;
        pos = out.end;
        Ok(out)
    };
    let magic = next("magic number")?;
    if !matches!(magic.root, Value::BigInt(LEGACY_MAGIC)) {
        return Err(fail("legacy checkpoint does not start with the PyTorch magic number".into()));
    }
    let protocol = next("protocol version")?;
    if !matches!(protocol.root, Value::Int(LEGACY_PROTOCOL)) {
        return Err(fail(format!("unsupported legacy protocol version (expected {LEGACY_PROTOCOL})")));
    }
    check_little_endian(&next("system info")?).map_err(fail)?;
    let state = next("state dict")?;
    let keys = next("storage keys")?;
    let storages = legacy_storages(data, pos, &state, &keys).map_err(fail)?;
    let specs = tensor_specs(&state).map_err(|e| fail(format!("legacy state dict: {e}")))?;
    build_tensors(path, specs, &storages, device)
}

fn check_little_endian(info: &Unpickled) -> std::result::Result<(), String> {
    match info.dict_get(&info.root, "little_endian") {
        Some(Value::Bool(false)) => {
            Err("checkpoint was written big-endian; only little-endian is supported".into())
        }
        _ => Ok(()),
    }
}

/// Slices the raw storages that follow the pickles, in the order of the key list. Each storage's
/// element type comes from the persistent ids that named it.
fn legacy_storages<'a>(
    data: &'a [u8],
    mut pos: usize,
    state: &Unpickled,
    keys: &Unpickled,
) -> std::result::Result<HashMap<String, &'a [u8]>, String> {
    let dtypes: HashMap<&str, StorageDtype> =
        state.storages.iter().map(|s| (s.key.as_str(), s.dtype)).collect();
    let key_list = keys
        .sequence_items(&keys.root)
        .ok_or_else(|| format!("storage key list is a {}, expected a list", keys.root.kind()))?;
    let mut storages = HashMap::new();
    for key in key_list {
        let key = torch::storage_key(key)?;
        let dtype = *dtypes
            .get(key.as_str())
            .ok_or_else(|| format!("storage `{key}` is listed but no tensor names its type"))?;
        let count_bytes = data.get(pos..pos + 8).ok_or_else(|| truncated(&key, pos, 8, data.len()))?;
        let count = i64::from_le_bytes(count_bytes.try_into().map_err(|_| "unreachable: 8-byte slice")?);
        let numel = usize::try_from(count)
            .map_err(|_| format!("storage `{key}` has a negative element count {count}"))?;
        let len = storage_bytes(numel, dtype)?;
        let start = pos + 8;
        let bytes = start
            .checked_add(len)
            .and_then(|end| data.get(start..end))
            .ok_or_else(|| truncated(&key, start, len, data.len()))?;
        storages.insert(key, bytes);
        pos = start + len;
    }
    Ok(storages)
}

fn truncated(key: &str, at: usize, need: usize, file_len: usize) -> String {
    format!(
        "truncated file: storage `{key}` needs {need} bytes at byte {at}, but only {} are left",
        file_len.saturating_sub(at)
    )
}

/// The tensors of the pickled state dict (unwrapping a top-level `state_dict` entry), skipping
/// entries that are not tensors. Later duplicates of a key win, as in a Python dict.
fn tensor_specs(state: &Unpickled) -> std::result::Result<Vec<(String, Rc<TensorSpec>)>, String> {
    if state.dict_entries(&state.root).is_none() {
        return Err(format!("the pickle holds a {}, expected a dict of tensors", state.root.kind()));
    }
    let dict = match state.dict_get(&state.root, "state_dict") {
        Some(inner @ Value::Dict(_)) => inner,
        _ => &state.root,
    };
    let entries = state.dict_entries(dict).unwrap_or_default();
    let specs = entries.iter().filter_map(|(key, value)| match (key, value) {
        (Value::Str(key), Value::Tensor(spec)) => Some((key.to_string(), Rc::clone(spec))),
        _ => None,
    });
    Ok(specs.collect())
}

fn build_tensors(
    path: &Path,
    specs: Vec<(String, Rc<TensorSpec>)>,
    storages: &HashMap<String, &[u8]>,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::with_capacity(specs.len());
    for (key, spec) in specs {
        let storage = storages.get(&spec.storage.key).ok_or_else(|| {
            Error::checkpoint(path, format!("tensor `{key}`: storage `{}` is missing", spec.storage.key))
        })?;
        let tensor = torch::materialize(&spec, storage, device)
            .map_err(|e| Error::checkpoint(path, format!("tensor `{key}`: {e}")))?;
        tensors.insert(key, tensor);
    }
    Ok(tensors)
}
