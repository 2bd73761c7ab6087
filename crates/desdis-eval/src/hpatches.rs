//! HPatches-style tasks on descriptors with known correspondences: patch verification, image
//! matching and patch retrieval, and their per-sequence summary [`SequenceScores`].
//!
//! A sequence is one reference image and target images of the same scene; every patch carries
//! the id of the scene point it shows, and two patches correspond when their ids are equal.
//! Where these tasks simplify the benchmark's protocol is listed in `docs/metrics.md`.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::descriptors::{check_same_dim, distances_to, l2_distance, nearest_neighbours, DescriptorMatrix};
use crate::error::{Error, Result};
use crate::precision::{average_precision, average_precision_of_retrieved, PrIntegration};
use crate::rates::fpr95;

/// Negative pairs built per positive pair in [`verification_pairs`]: five, the ratio of the
/// HPatches imbalanced verification protocol (0.2 M positives against 1 M negatives).
pub const NEGATIVES_PER_POSITIVE: usize = 5;

/// The descriptors of the patches cut from one image and the scene point each patch shows.
#[derive(Clone, Copy, Debug)]
pub struct ImageDescriptors<'a> {
    descriptors: DescriptorMatrix<'a>,
    point_ids: &'a [u64],
}

impl<'a> ImageDescriptors<'a> {
    /// Pairs each descriptor row with its point id. Fails when the counts differ or an id
    /// repeats (a point shows once per image, otherwise "the" corresponding patch is ambiguous).
    pub fn new(descriptors: DescriptorMatrix<'a>, point_ids: &'a [u64]) -> Result<Self> {
        if descriptors.rows() != point_ids.len() {
            return Err(Error::LengthMismatch {
                what: "image descriptors: rows vs point ids",
                left: descriptors.rows(),
                right: point_ids.len(),
            });
        }
        let mut seen = HashSet::with_capacity(point_ids.len());
        if let Some(id) = point_ids.iter().find(|&&id| !seen.insert(id)) {
            return Err(Error::InvalidArgument(format!("image descriptors: point id {id} appears twice")));
        }
        Ok(Self { descriptors, point_ids })
    }

    /// The descriptors, one row per patch.
    pub fn descriptors(&self) -> DescriptorMatrix<'a> {
        self.descriptors
    }

    /// The point id of each row.
    pub fn point_ids(&self) -> &'a [u64] {
        self.point_ids
    }

    /// Row index of every point id.
    fn index_of_point(&self) -> HashMap<u64, usize> {
        self.point_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect()
    }
}

/// Distances and labels (`true`: same point) of a set of patch pairs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelledPairs {
    /// Euclidean distance of each pair.
    pub distances: Vec<f32>,
    /// Whether each pair shows the same point.
    pub labels: Vec<bool>,
}

impl LabelledPairs {
    /// Appends the pairs of `other`, e.g. to pool the pairs of every sequence.
    pub fn extend(&mut self, other: &LabelledPairs) {
        self.distances.extend_from_slice(&other.distances);
        self.labels.extend_from_slice(&other.labels);
    }

    fn push(&mut self, distance: f32, label: bool) {
        self.distances.push(distance);
        self.labels.push(label);
    }
}

/// Verification pairs of a sequence, from the reference image to each target image in turn.
///
/// For every reference patch whose point appears in the target at row `j`: one positive pair
/// (with row `j`) and negatives with rows `j + 1 .. j + 5` (cyclically, skipping any that
/// would wrap around to `j` in tiny images). Deterministic, so scores never depend on a seed.
pub fn verification_pairs(
    reference: &ImageDescriptors,
    targets: &[ImageDescriptors],
) -> Result<LabelledPairs> {
    let mut pairs = LabelledPairs::default();
    for target in targets {
        check_same_dim("verification pairs", &reference.descriptors, &target.descriptors)?;
        append_verification_pairs(reference, target, &mut pairs);
    }
    if !pairs.labels.contains(&true) {
        return Err(Error::NoPositives("verification pairs: no reference point appears in a target image"));
    }
    Ok(pairs)
}

fn append_verification_pairs(
    reference: &ImageDescriptors,
    target: &ImageDescriptors,
    pairs: &mut LabelledPairs,
) {
    let target_rows = target.descriptors.rows();
    let index_in_target = target.index_of_point();
    for (r, ref_row) in reference.descriptors.iter_rows().enumerate() {
        let Some(&j) = index_in_target.get(&reference.point_ids[r]) else { continue };
        for shift in 0..=NEGATIVES_PER_POSITIVE.min(target_rows - 1) {
            let t = (j + shift) % target_rows;
            let Some(target_row) = target.descriptors.row(t) else { continue };
            pairs.push(l2_distance(ref_row, target_row), shift == 0);
        }
    }
}

/// Verification average precision (HPatches trapezoid) of labelled pairs.
pub fn verification_ap(pairs: &LabelledPairs) -> Result<f64> {
    average_precision(&pairs.distances, &pairs.labels, PrIntegration::HPatchesTrapezoid)
}

/// Matching average precision from the reference to one target image, as in HPatches.
///
/// Each reference patch whose point appears in the target is matched to its nearest target
/// patch (among all of them); the match is correct when both show the same point. The matches
/// are ranked by distance and AP is taken with recall over all those reference patches, so a
/// wrong nearest neighbour is a positive never retrieved.
pub fn matching_ap(reference: &ImageDescriptors, target: &ImageDescriptors) -> Result<f64> {
    check_same_dim("matching", &reference.descriptors, &target.descriptors)?;
    let target_points: HashSet<u64> = target.point_ids.iter().copied().collect();
    let (query_values, query_ids) = rows_with_points(reference, &target_points);
    if query_ids.is_empty() {
        return Err(Error::NoPositives("matching: no reference point appears in the target image"));
    }
    let queries = DescriptorMatrix::new(&query_values, reference.descriptors.dim())?;
    let matches = nearest_neighbours(&queries, &target.descriptors)?;
    let distances: Vec<f32> = matches.iter().map(|&(_, d)| d).collect();
    let correct: Vec<bool> =
        matches.iter().zip(&query_ids).map(|(&(j, _), &id)| target.point_ids[j] == id).collect();
    average_precision_of_retrieved(&distances, &correct, query_ids.len(), PrIntegration::HPatchesTrapezoid)
}

/// The rows of `image` whose point is in `points`, copied into one buffer, and their ids.
fn rows_with_points(image: &ImageDescriptors, points: &HashSet<u64>) -> (Vec<f32>, Vec<u64>) {
    let mut values = Vec::new();
    let mut ids = Vec::new();
    for (row, &id) in image.descriptors.iter_rows().zip(image.point_ids) {
        if points.contains(&id) {
            values.extend_from_slice(row);
            ids.push(id);
        }
    }
    (values, ids)
}

/// Mean of [`matching_ap`] over the target images.
pub fn matching_map(reference: &ImageDescriptors, targets: &[ImageDescriptors]) -> Result<f64> {
    if targets.is_empty() {
        return Err(Error::Empty("matching: target images"));
    }
    let aps = targets.iter().map(|t| matching_ap(reference, t)).collect::<Result<Vec<_>>>()?;
    Ok(aps.iter().sum::<f64>() / aps.len() as f64)
}

/// Retrieval mean average precision: each query ranks the whole pool by distance; the pool
/// entries with the query's label are its positives.
///
/// Queries without any positive in the pool are left out of the mean (no recall is defined for
/// them); fails when that leaves no query. Labels can encode anything that identifies a point,
/// e.g. `(sequence, point)` packed into a `u64` for a pool spanning several sequences.
pub fn retrieval_map(
    queries: &DescriptorMatrix,
    query_labels: &[u64],
    pool: &DescriptorMatrix,
    pool_labels: &[u64],
) -> Result<f64> {
    check_same_dim("retrieval", queries, pool)?;
    check_label_count("retrieval: query rows vs labels", queries, query_labels)?;
    check_label_count("retrieval: pool rows vs labels", pool, pool_labels)?;
    if queries.is_empty() {
        return Err(Error::Empty("retrieval: queries"));
    }
    let rows: Vec<(&[f32], u64)> = queries.iter_rows().zip(query_labels.iter().copied()).collect();
    let aps: Vec<f64> = rows
        .par_iter()
        .map(|&(query, label)| query_ap(query, label, pool, pool_labels))
        .collect::<Result<Vec<Option<f64>>>>()?
        .into_iter()
        .flatten()
        .collect();
    if aps.is_empty() {
        return Err(Error::NoPositives("retrieval: no query has a positive in the pool"));
    }
    Ok(aps.iter().sum::<f64>() / aps.len() as f64)
}

fn check_label_count(what: &'static str, rows: &DescriptorMatrix, labels: &[u64]) -> Result<()> {
    if rows.rows() != labels.len() {
        return Err(Error::LengthMismatch { what, left: rows.rows(), right: labels.len() });
    }
    Ok(())
}

/// AP of one query over the pool; `None` when the pool holds no positive for it.
fn query_ap(query: &[f32], label: u64, pool: &DescriptorMatrix, pool_labels: &[u64]) -> Result<Option<f64>> {
    let relevant: Vec<bool> = pool_labels.iter().map(|&l| l == label).collect();
    if !relevant.contains(&true) {
        return Ok(None);
    }
    let distances = distances_to(query, pool);
    average_precision(&distances, &relevant, PrIntegration::HPatchesTrapezoid).map(Some)
}

/// The four summary scores of one sequence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceScores {
    /// AP of [`verification_pairs`] (higher is better).
    pub verification_ap: f64,
    /// [`matching_map`] over the target images (higher is better).
    pub matching_map: f64,
    /// [`retrieval_map`] of the reference patches against all target patches (higher is better).
    pub retrieval_map: f64,
    /// [`fpr95`] of the verification pairs (lower is better).
    pub fpr95: f64,
}

impl SequenceScores {
    /// Scores a sequence: `reference` is the reference image, `targets` the other images.
    pub fn compute(reference: &ImageDescriptors, targets: &[ImageDescriptors]) -> Result<Self> {
        if targets.is_empty() {
            return Err(Error::Empty("sequence scores: target images"));
        }
        let pairs = verification_pairs(reference, targets)?;
        Ok(Self {
            verification_ap: verification_ap(&pairs)?,
            matching_map: matching_map(reference, targets)?,
            retrieval_map: sequence_retrieval_map(reference, targets)?,
            fpr95: fpr95(&pairs.distances, &pairs.labels)?,
        })
    }

    /// Unweighted mean over sequences, each sequence counting once as in HPatches summaries.
    pub fn mean(scores: &[SequenceScores]) -> Result<Self> {
        if scores.is_empty() {
            return Err(Error::Empty("mean of sequence scores"));
        }
        let n = scores.len() as f64;
        let mean_of = |f: fn(&SequenceScores) -> f64| scores.iter().map(f).sum::<f64>() / n;
        Ok(Self {
            verification_ap: mean_of(|s| s.verification_ap),
            matching_map: mean_of(|s| s.matching_map),
            retrieval_map: mean_of(|s| s.retrieval_map),
            fpr95: mean_of(|s| s.fpr95),
        })
    }
}

/// Retrieval within one sequence: queries are the reference patches, the pool is every patch of
/// every target image.
fn sequence_retrieval_map(reference: &ImageDescriptors, targets: &[ImageDescriptors]) -> Result<f64> {
    let mut pool_values = Vec::new();
    let mut pool_labels = Vec::new();
    for target in targets {
        check_same_dim("retrieval", &reference.descriptors, &target.descriptors)?;
        pool_values.extend_from_slice(target.descriptors.as_slice());
        pool_labels.extend_from_slice(target.point_ids);
    }
    let pool = DescriptorMatrix::new(&pool_values, reference.descriptors.dim())?;
    retrieval_map(&reference.descriptors, reference.point_ids, &pool, &pool_labels)
}
