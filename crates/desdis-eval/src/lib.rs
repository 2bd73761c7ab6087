//! Evaluation of local patch descriptors, in plain Rust on `f32` descriptors:
//!
//! - [`fpr95`] and the [`RocCurve`] of labelled pairs (distance, same point or not);
//! - [`average_precision`] as the HPatches benchmark computes it;
//! - the HPatches-style verification, matching and retrieval tasks on descriptors with known
//!   correspondences, summarised per sequence by [`SequenceScores`];
//! - [`measure_throughput`] of any describing function;
//! - [`write_hpatches_csv`] for the HPatches benchmark's own code, and [`write_json_atomic`]
//!   for results.
//!
//! The definitions, and how they relate to the published evaluation code, are in
//! `docs/metrics.md`.
//!
//! ```
//! // Three pairs: two matching ones that are close, one non-matching that is far.
//! let fpr = desdis_eval::fpr95(&[0.1, 0.2, 0.9], &[true, true, false])?;
//! assert_eq!(fpr, 0.0);
//! # Ok::<(), desdis_eval::Error>(())
//! ```

mod describe;
mod descriptors;
mod error;
mod export;
mod hpatches;
mod io;
mod pairs;
mod patch_pairs;
mod precision;
mod rates;
mod sequence;
mod speed;

pub use describe::{describe_f32, describe_patches};
pub use descriptors::{distances_to, l2_distance, nearest_neighbour, nearest_neighbours, DescriptorMatrix};
pub use error::{Error, Result};
pub use export::{write_hpatches_csv, HPATCHES_IMAGE_TYPES};
pub use hpatches::{
    matching_ap, matching_map, retrieval_map, verification_ap, verification_pairs, ImageDescriptors,
    LabelledPairs, SequenceScores, NEGATIVES_PER_POSITIVE,
};
pub use io::{write_atomic, write_json_atomic};
pub use patch_pairs::pair_distances;
pub use precision::{average_precision, average_precision_of_retrieved, PrIntegration};
pub use rates::{fpr95, operating_point_at_recall, OperatingPoint, RocCurve, RECALL_95};
pub use sequence::{evaluate_cut, evaluate_cut_with_roc, evaluate_sequence};
pub use speed::{measure_throughput, Throughput, MIN_TIMED_CALLS};
