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
//!
//! ```
//! // One epoch of HardNet-style pairs over five 3D points seen twice each, in batches of 2.
//! let point_ids = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4];
//! let pairs = desdis_data::mining::generate_pairs(&point_ids, 4, 2, 7)?;
//! assert_eq!(pairs.len(), 4);
//! for (a, p) in pairs {
//!     assert_ne!(a, p);
//!     assert_eq!(point_ids[a as usize], point_ids[p as usize]);
//! }
//! # Ok::<(), desdis_data::DataError>(())
//! ```

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
pub mod npy;
pub mod patch;
pub mod phototour;
pub mod resize;
pub mod sequence;

pub use error::{DataError, Result};
pub use hash::StableHasher;
pub use image::GrayImage;
