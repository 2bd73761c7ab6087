//! Geometry for local-feature evaluation, independent of any neural-network code:
//!
//! - [`matching`]: nearest-neighbour descriptor matching (mutual check, Lowe's ratio test,
//!   distance cap) with hloc-style `matches0` conversion;
//! - [`homography`] and [`fundamental`]: normalised linear fits and their error measures;
//! - [`ransac`]: seeded, reproducible RANSAC verification with either model;
//! - [`mod@mma`]: the HPatches mean-matching-accuracy protocol (as used by D2-Net);
//! - [`draw`]: side-by-side match visualisation.
//!
//! Points are `[x, y]` pixel coordinates with `(0, 0)` at the centre of the top-left pixel.
//! Every fallible function returns [`Error`]; none panics on finite input.

pub mod draw;
pub mod error;
pub mod fundamental;
pub mod homography;
mod linalg;
pub mod matching;
pub mod mma;
pub mod ransac;

pub use draw::{draw_matches, DrawConfig};
pub use error::Error;
pub use matching::{from_matches0, match_descriptors, to_matches0, Match, MatchConfig};
pub use mma::{
    load_homography, mma, parse_homography, projection_errors, MmaAtThreshold, DEFAULT_THRESHOLDS,
};
pub use ransac::{verify, Model, ModelKind, RansacConfig, Verification};

/// A 3x3 matrix, row-major: `m[row][col]`.
pub type Mat3 = [[f64; 3]; 3];
