//! Reading and writing weights: PyTorch `.pth` (zip and legacy), safetensors, `hf://` sources.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;

/// Named tensors read from one checkpoint, with the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct StateDict {
    /// The file the tensors were read from.
    pub path: PathBuf,
    /// Tensors by their PyTorch state-dict key.
    pub tensors: HashMap<String, Tensor>,
}
