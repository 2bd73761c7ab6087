//! In-memory patch sets: 32x32 u8 patches in one contiguous buffer, with a 3D point id per patch.

use crate::error::{DataError, Result};

/// Side of the patches the networks consume.
pub const PATCH_SIDE: usize = 32;
/// Bytes in one 32x32 u8 patch.
pub const PATCH_LEN: usize = PATCH_SIDE * PATCH_SIDE;

/// What training and evaluation need from a patch collection.
///
/// Patches with equal point ids show the same 3D point (or the same keypoint in different views).
pub trait Dataset: Sync {
    /// Number of patches.
    fn len(&self) -> usize;
    /// Patch `i`, row-major 32x32. Panics when `i >= len()`, like slice indexing.
    fn patch(&self, i: usize) -> &[u8; PATCH_LEN];
    /// The 3D point id of every patch, in patch order.
    fn point_ids(&self) -> &[u32];
    /// Point id of patch `i`. Panics when `i >= len()`.
    fn point_id(&self, i: usize) -> u32 {
        self.point_ids()[i]
    }
    /// True when there are no patches.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Patches (N x 32 x 32 u8, contiguous, row-major) and their 3D point ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchSet {
    /// `N * PATCH_LEN` bytes.
    pub patches: Vec<u8>,
    /// One id per patch.
    pub point_ids: Vec<u32>,
}

impl PatchSet {
    /// Builds a set, checking that there are exactly `point_ids.len()` patches.
    pub fn new(patches: Vec<u8>, point_ids: Vec<u32>) -> Result<Self> {
        if patches.len() != point_ids.len() * PATCH_LEN {
            return Err(DataError::Config(format!(
                "{} bytes of patches do not make {} patches of {PATCH_LEN} bytes",
                patches.len(),
                point_ids.len()
            )));
        }
        Ok(PatchSet { patches, point_ids })
    }

    /// Appends one patch.
    pub fn push(&mut self, patch: &[u8; PATCH_LEN], point_id: u32) {
        self.patches.extend_from_slice(patch);
        self.point_ids.push(point_id);
    }

    /// Appends all patches of `other`.
    pub fn extend(&mut self, other: &PatchSet) {
        self.patches.extend_from_slice(&other.patches);
        self.point_ids.extend_from_slice(&other.point_ids);
    }

    /// Number of distinct point ids.
    pub fn num_points(&self) -> usize {
        let mut ids = self.point_ids.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

impl Dataset for PatchSet {
    fn len(&self) -> usize {
        self.point_ids.len()
    }

    fn patch(&self, i: usize) -> &[u8; PATCH_LEN] {
        let bytes = &self.patches[i * PATCH_LEN..(i + 1) * PATCH_LEN];
        // The slice has exactly PATCH_LEN bytes by construction, so the conversion cannot fail.
        bytes.try_into().expect("slice of PATCH_LEN bytes")
    }

    fn point_ids(&self) -> &[u32] {
        &self.point_ids
    }
}
