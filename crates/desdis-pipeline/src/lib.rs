//! From photos to verified matches, on the project's descriptor nets:
//!
//! - [`Extractor`]: an image to keypoints (DoG scale space, orientations) and descriptors;
//! - [`list_images`]: the images of a folder, named as the feature files name them;
//! - [`match_pair`]: nearest-neighbour matching of two images' descriptors, then geometric
//!   verification (RANSAC homography or fundamental matrix);
//! - [`load_describer`]: a net from a checkpoint, or the shipped student embedded in the binary.
//!
//! The feature and match files (hloc's HDF5 layout) are read and written by `desdis-h5`.

mod error;
mod extract;
mod images;
mod matcher;
mod weights;

pub use error::{Error, Result};
pub use extract::Extractor;
pub use images::{list_images, ImageList, IMAGE_EXTENSIONS};
pub use matcher::{match_pair, PairConfig, PairResult, Verify};
pub use weights::{load_describer, DEFAULT_WEIGHTS_NAME};
