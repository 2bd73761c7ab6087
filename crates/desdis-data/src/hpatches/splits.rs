//! The official HPatches splits (`splits.json`): a, b, c (train/test), illum, view, full (test only).

use crate::error::{DataError, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One split: sequence names for training (empty for test-only splits) and testing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Split {
    /// The split's name (`a`, `b`, `c`, `illum`, `view`, `full`).
    pub name: String,
    /// Training sequences.
    #[serde(default)]
    pub train: Vec<String>,
    /// Test sequences.
    pub test: Vec<String>,
}

/// All splits of a `splits.json`, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splits(pub BTreeMap<String, Split>);

impl Splits {
    /// Reads `splits.json`.
    pub fn load(path: &Path) -> Result<Splits> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let map: BTreeMap<String, Split> = serde_json::from_str(&text).map_err(|e| {
            DataError::parse(
                path,
                e.line(),
                format!("not a splits file (name -> {{name, train?, test}}): {e}"),
            )
        })?;
        Ok(Splits(map))
    }

    /// The split called `name`.
    pub fn get(&self, name: &str) -> Option<&Split> {
        self.0.get(name)
    }

    /// Split names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}
