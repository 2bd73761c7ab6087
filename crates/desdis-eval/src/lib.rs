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

mod descriptors;
mod error;
mod export;
mod hpatches;
mod io;
mod pairs;
mod precision;
mod rates;
mod speed;

pub use descriptors::{distances_to, l2_distance, nearest_neighbour, nearest_neighbours, DescriptorMatrix};
pub use error::{Error, Result};
pub use export::{write_hpatches_csv, HPATCHES_IMAGE_TYPES};
pub use hpatches::{
    matching_ap, matching_map, retrieval_map, verification_ap, verification_pairs, ImageDescriptors,
    LabelledPairs, SequenceScores, NEGATIVES_PER_POSITIVE,
};
pub use io::{write_atomic, write_json_atomic};
pub use precision::{average_precision, average_precision_of_retrieved, PrIntegration};
pub use rates::{fpr95, operating_point_at_recall, OperatingPoint, RocCurve, RECALL_95};
pub use speed::{measure_throughput, Throughput, MIN_TIMED_CALLS};
