//! hloc's HDF5 files, `features.h5` and `matches.h5`, read and written in pure Rust, and an
//! export to COLMAP's text import format (`feature_importer`, `matches_importer --match_type raw`).
//!
//! The layouts and conventions are those of hloc (as written through h5py) and COLMAP; each
//! module documents its own, and `docs/formats.md` collects them. Writes are atomic. Reading a
//! file from another tool checks every shape before allocating, and any problem is an [`Error`]
//! naming the file, the group and the dataset.

mod atomic;
pub mod colmap;
mod error;
pub mod features;
mod h5read;
pub mod matches;
pub mod quantize;

pub use colmap::{export_colmap, ColmapSummary, IndexMatches};
pub use error::Error;
pub use features::{feature_names, read_features, write_features, ImageFeatures};
pub use matches::{pair_key, read_matches, write_matches, PairMatches};
pub use quantize::{quantize_descriptor, COLMAP_DESCRIPTOR_DIM, QUANT_OFFSET, QUANT_SCALE};
