//! Patch data for descriptor learning.
//!
//! - [`phototour`]: UBC PhotoTour folders (sheets + `info.txt` + m50 pairs), cached, downloadable.
//! - [`hpatches`]: HPatches patch strips and the official splits.
//! - [`sequence`]: image sequences with ground-truth homographies, keypoint detection and patch
//!   cutting (PhotoTour-like sets or HPatches strips).
//! - [`embedded`]: the default training set, generated deterministically from bundled photos.
//! - [`mining`], [`augment`], [`batch`]: HardNet-style pair epochs and (B,1,32,32) tensor batches.
//!
//! All patches handed to training are 32x32 u8 ([`PatchSet`], [`Dataset`]).

pub mod augment;
pub mod batch;
mod cache;
pub mod embedded;
pub mod error;
pub mod geometry;
mod hash;
pub mod hpatches;
#[cfg(feature = "hub-datasets")]
pub mod hub;
pub mod imageops;
pub mod mining;
pub mod patch;
pub mod phototour;
pub mod resize;
pub mod sequence;

pub use error::{DataError, Result};
pub use hash::StableHasher;
pub use image::GrayImage;
pub use patch::{Dataset, PatchSet, PATCH_LEN, PATCH_SIDE};
