//! What PyTorch's pickles mean: the allow-listed globals, storage persistent ids, the tensor
//! rebuild calls, and turning a (storage, offset, size, stride) view into a dense candle tensor.

use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use super::pickle::Value;

/// Element type of a PyTorch storage, named by its legacy `torch.*Storage` class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element on disk.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// The storage class name, for messages.
    pub(crate) fn class_name(self) -> &'static str {
        match self {
            Self::F64 => "DoubleStorage",
            Self::F32 => "FloatStorage",
            Self::F16 => "HalfStorage",
            Self::BF16 => "BFloat16Storage",
            Self::I64 => "LongStorage",
            Self::I32 => "IntStorage",
            Self::I16 => "ShortStorage",
            Self::I8 => "CharStorage",
            Self::U8 => "ByteStorage",
            Self::Bool => "BoolStorage",
        }
    }
}

/// The only globals a checkpoint may name. Resolving one never imports or runs anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    StorageClass(StorageDtype),
}

impl Global {
    /// The dotted Python name, for messages.
    pub(crate) fn name(self) -> String {
        match self {
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::RebuildTensor => "torch._utils._rebuild_tensor".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::StorageClass(dtype) => format!("torch.{}", dtype.class_name()),
        }
    }
}

/// Maps `module.name` to an allowed [`Global`]; anything else is refused by name.
pub(crate) fn resolve_global(module: &str, name: &str) -> Result<Global, String> {
    let global = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        // Very old checkpoints saved from a GPU name the CUDA storage classes.
        ("torch" | "torch.cuda", class) => StorageDtype::from_storage_class(class).map(Global::StorageClass),
        _ => None,
    };
    global.ok_or_else(|| {
        format!("forbidden global `{module}.{name}` (only the globals of a tensor state dict are allowed)")
    })
}

/// A storage named by a persistent id: its key in the container, element type and length.
#[derive(Debug, Clone)]
pub(crate) struct StorageRef {
    pub(crate) key: String,
    pub(crate) dtype: StorageDtype,
    /// Number of elements the container holds for this storage.
    pub(crate) numel: usize,
    /// Legacy checkpoints may view a sub-range of another storage.
    pub(crate) view: Option<StorageView>,
}

/// A sub-range `[offset, offset + len)` (in elements) of a root storage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageView {
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

/// A tensor as PyTorch describes it: a strided view into a storage.
#[derive(Debug, Clone)]
pub(crate) struct TensorSpec {
    pub(crate) storage: Rc<StorageRef>,
    pub(crate) offset: usize,
    pub(crate) shape: Vec<usize>,
    pub(crate) stride: Vec<usize>,
}

/// Parses `('storage', StorageClass, key, location, numel[, view_metadata])`.
pub(crate) fn storage_from_pid(pid: &Value) -> Result<StorageRef, String> {
    let Value::Tuple(fields) = pid else {
        return Err(format!("persistent id is a {}, expected a tuple", pid.kind()));
    };
    let [Value::Str(tag), class, key, _location, numel, rest @ ..] = &fields[..] else {
        return Err(format!("persistent id has {} fields, expected 5 or 6", fields.len()));
    };
    if &**tag != "storage" {
        return Err(format!("persistent id of kind `{tag}`, expected `storage`"));
    }
    let Value::Global(Global::StorageClass(dtype)) = class else {
        return Err(format!("persistent id names a {} as storage type", class.kind()));
    };
    let key = storage_key(key)?;
    let numel = numel.as_usize().ok_or_else(|| format!("storage `{key}` has an invalid element count"))?;
    let view = match rest {
        [] | [Value::None] => None,
        [Value::Tuple(meta)] => Some(storage_view(&key, meta)?),
        _ => return Err(format!("storage `{key}` has unexpected trailing persistent id fields")),
    };
    Ok(StorageRef { key, dtype: *dtype, numel, view })
}

/// Storage keys are strings; some legacy writers used integers.
pub(crate) fn storage_key(key: &Value) -> Result<String, String> {
    match key {
        Value::Str(s) => Ok(s.to_string()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(format!("storage key is a {}, expected a string", other.kind())),
    }
}

fn storage_view(key: &str, meta: &[Value]) -> Result<StorageView, String> {
    match meta {
        [_view_key, offset, len] => match (offset.as_usize(), len.as_usize()) {
            (Some(offset), Some(len)) => Ok(StorageView { offset, len }),
            _ => Err(format!("storage `{key}` has an invalid view offset or length")),
        },
        _ => Err(format!("storage `{key}` has malformed view metadata")),
    }
}

/// "Calls" an allowed torch global: builds the tensor description it would return.
pub(crate) fn call(global: Global, args: &[Value]) -> Result<Value, String> {
    match global {
        Global::RebuildTensor | Global::RebuildTensorV2 => rebuild_tensor(args),
        Global::RebuildParameter => match args.first() {
            Some(Value::Tensor(tensor)) => Ok(Value::Tensor(Rc::clone(tensor))),
            _ => Err("_rebuild_parameter expects a tensor as first argument".into()),
        },
        other => Err(format!("calling `{}` is not allowed", other.name())),
    }
}

/// `_rebuild_tensor[_v2](storage, storage_offset, size, stride, ...)`; the remaining arguments
/// (requires_grad, hooks, metadata) do not affect the values.
fn rebuild_tensor(args: &[Value]) -> Result<Value, String> {
    let [Value::Storage(storage), offset, size, stride, ..] = args else {
        return Err("_rebuild_tensor expects (storage, offset, size, stride, ...)".into());
    };
    let offset = offset.as_usize().ok_or("tensor storage offset is not a non-negative integer")?;
    let shape = usize_tuple(size).ok_or("tensor size is not a tuple of non-negative integers")?;
    let stride = usize_tuple(stride).ok_or("tensor stride is not a tuple of non-negative integers")?;
    if shape.len() != stride.len() {
        return Err(format!("tensor size has {} dims but stride has {}", shape.len(), stride.len()));
    }
    Ok(Value::Tensor(Rc::new(TensorSpec { storage: Rc::clone(storage), offset, shape, stride })))
}

fn usize_tuple(value: &Value) -> Option<Vec<usize>> {
    match value {
        Value::Tuple(items) => items.iter().map(Value::as_usize).collect(),
        _ => None,
    }
}

/// Copies the elements `spec` views out of `storage` (the raw little-endian bytes of its root
/// storage) into a dense tensor on `device`.
///
/// Every bound is checked before allocating, so a lying header gives an error, never a panic or
/// an allocation larger than the storage itself.
pub(crate) fn materialize(spec: &TensorSpec, storage: &[u8], device: &Device) -> Result<Tensor, String> {
    let layout = &spec.storage;
    let elem = layout.dtype.size();
    let declared = layout.numel.checked_mul(elem).ok_or("storage size overflows")?;
    if storage.len() < declared {
        return Err(format!(
            "storage `{}` is too short: {} bytes, but it declares {} {} elements ({declared} bytes)",
            layout.key,
            storage.len(),
            layout.numel,
            layout.dtype.class_name()
        ));
    }
    let (base, available) = visible_range(layout)?;
    let numel =
        spec.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or("tensor size overflows")?;
    if numel > 0 {
        check_extent(spec, numel, available)?;
    }
    let bytes = gather(&storage[base * elem..(base + available) * elem], elem, spec, numel);
    to_tensor(layout.dtype, bytes, &spec.shape, device)
}

/// The element range of the root storage that this storage (or storage view) covers.
fn visible_range(layout: &StorageRef) -> Result<(usize, usize), String> {
    match layout.view {
        None => Ok((0, layout.numel)),
        Some(view) => {
            let end = view.offset.checked_add(view.len).filter(|&end| end <= layout.numel);
            match end {
                Some(_) => Ok((view.offset, view.len)),
                None => Err(format!(
                    "storage view [{}, +{}) lies outside storage `{}` of {} elements",
                    view.offset, view.len, layout.key, layout.numel
                )),
            }
        }
    }
}

/// Checks that every element of the view lies inside the `available` storage elements, and that
/// the dense copy is no larger than the storage (overlapping views, e.g. stride 0, are refused so
/// that a tiny file cannot ask for a huge tensor).
fn check_extent(spec: &TensorSpec, numel: usize, available: usize) -> Result<(), String> {
    let last = spec
        .shape
        .iter()
        .zip(&spec.stride)
        .filter(|(&size, _)| size > 1)
        .try_fold(spec.offset, |acc, (&size, &stride)| (size - 1).checked_mul(stride)?.checked_add(acc))
        .ok_or("tensor extent overflows")?;
    if last >= available {
        return Err(format!(
            "storage `{}` is too short: the tensor (offset {}, size {:?}, stride {:?}) reaches element {last}, \
             but the storage holds {available} elements",
            spec.storage.key, spec.offset, spec.shape, spec.stride
        ));
    }
    if numel > available {
        return Err(format!(
            "tensor of {numel} elements overlaps itself in storage `{}` of {available} elements (unsupported)",
            spec.storage.key
        ));
    }
    Ok(())
}

/// Row-major copy of the strided view; `src` starts at the storage's first visible element.
/// Bounds were checked by [`check_extent`].
fn gather(src: &[u8], elem: usize, spec: &TensorSpec, numel: usize) -> Vec<u8> {
    let start = spec.offset * elem;
    if numel == 0 {
        return Vec::new();
    }
    if is_row_major(&spec.shape, &spec.stride) {
        return src[start..start + numel * elem].to_vec();
    }
    // Dims of size 1 never advance, and their (arbitrary) stride must not affect the offset.
    let stride: Vec<usize> =
        spec.shape.iter().zip(&spec.stride).map(|(&n, &s)| if n == 1 { 0 } else { s }).collect();
    let mut out = Vec::with_capacity(numel * elem);
    let mut index = vec![0usize; spec.shape.len()];
    let mut offset = spec.offset;
    for _ in 0..numel {
        out.extend_from_slice(&src[offset * elem..(offset + 1) * elem]);
        for dim in (0..index.len()).rev() {
            index[dim] += 1;
            offset += stride[dim];
            if index[dim] < spec.shape[dim] {
                break;
            }
            offset -= stride[dim] * spec.shape[dim];
            index[dim] = 0;
        }
    }
    out
}

fn is_row_major(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&size, &step) in shape.iter().zip(stride).rev() {
        if size != 1 && step != expected {
            return false;
        }
        expected = expected.saturating_mul(size);
    }
    true
}

/// Builds the candle tensor. candle has no i8 or bool: i8 widens to i16, bool becomes u8 (0/1).
fn to_tensor(
    dtype: StorageDtype,
    bytes: Vec<u8>,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor, String> {
    let (dtype, bytes) = match dtype {
        StorageDtype::F64 => (DType::F64, bytes),
        StorageDtype::F32 => (DType::F32, bytes),
        StorageDtype::F16 => (DType::F16, bytes),
        StorageDtype::BF16 => (DType::BF16, bytes),
        StorageDtype::I64 => (DType::I64, bytes),
        StorageDtype::I32 => (DType::I32, bytes),
        StorageDtype::I16 => (DType::I16, bytes),
        StorageDtype::I8 => {
            (DType::I16, bytes.iter().flat_map(|&b| i16::from(b as i8).to_le_bytes()).collect())
        }
        StorageDtype::U8 | StorageDtype::Bool => (DType::U8, bytes),
    };
    // The data is little-endian; candle reads native order, which is little-endian on every
    // platform this crate targets.
    Tensor::from_raw_buffer(&bytes, dtype, shape, device).map_err(|e| format!("building the tensor: {e}"))
}
