//! Row-major descriptor buffers and the Euclidean distances between their rows.
//!
//! The metrics work on plain `f32` slices rather than tensors: evaluation happens once the nets
//! are done, the data is already on the host, and a slice keeps this crate independent of any
//! device or tensor library.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// A borrowed, validated matrix of descriptors: `rows()` descriptors of `dim()` values each,
/// stored row after row.
#[derive(Clone, Copy, Debug)]
pub struct DescriptorMatrix<'a> {
    values: &'a [f32],
    dim: usize,
}

impl<'a> DescriptorMatrix<'a> {
    /// Views `values` as rows of `dim` values. Fails when `dim` is zero, the length is not a
    /// multiple of `dim`, or a value is NaN or infinite (such a value would make every
    /// distance to it meaningless).
    pub fn new(values: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 || !values.len().is_multiple_of(dim) {
            return Err(Error::Shape { len: values.len(), dim });
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { what: "descriptors", index });
        }
        Ok(Self { values, dim })
    }

    /// Number of descriptors.
    pub fn rows(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Length of one descriptor.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether there is no descriptor at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `i`-th descriptor; `None` past the end.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        self.values.get(i * self.dim..(i + 1) * self.dim)
    }

    /// All descriptors in order.
    pub fn iter_rows(&self) -> std::slice::ChunksExact<'a, f32> {
        self.values.chunks_exact(self.dim)
    }

    /// The flat row-major buffer.
    pub fn as_slice(&self) -> &'a [f32] {
        self.values
    }
}

/// Fails unless both sets hold descriptors of the same length.
pub(crate) fn check_same_dim(what: &'static str, a: &DescriptorMatrix, b: &DescriptorMatrix) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(Error::DimensionMismatch { what, left: a.dim(), right: b.dim() });
    }
    Ok(())
}

/// Euclidean distance between two descriptors of equal length.
///
/// Eight independent partial sums let the compiler vectorise the loop; they are added in `f64`
/// so that the rounding error stays near `f32` epsilon relative to the result, whatever the
/// dimension.
pub fn l2_distance(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    const LANES: usize = 8;
    let mut partial = [0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (ca, cb) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for k in 0..LANES {
            let d = ca[k] - cb[k];
            partial[k] += d * d;
        }
    }
    let mut sum: f64 = partial.iter().map(|&p| f64::from(p)).sum();
    for (x, y) in a_tail.iter().zip(b_tail) {
        let d = f64::from(x - y);
        sum += d * d;
    }
    sum.sqrt() as f32
}

/// The nearest row of `candidates` to `query`: `(index, distance)`, the first index on ties
/// (as `argmin` does). `None` when there are no candidates.
pub fn nearest_neighbour(query: &[f32], candidates: &DescriptorMatrix) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (j, row) in candidates.iter_rows().enumerate() {
        let d = l2_distance(query, row);
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((j, d));
        }
    }
    best
}

/// For every row of `queries`, its nearest row of `candidates` (see [`nearest_neighbour`]).
/// Runs over the queries in parallel.
pub fn nearest_neighbours(
    queries: &DescriptorMatrix,
    candidates: &DescriptorMatrix,
) -> Result<Vec<(usize, f32)>> {
    check_same_dim("nearest neighbours", queries, candidates)?;
    let rows: Vec<&[f32]> = queries.iter_rows().collect();
    rows.par_iter()
        .map(|q| nearest_neighbour(q, candidates).ok_or(Error::Empty("nearest neighbours: candidates")))
        .collect()
}

/// Distances from `query` to every row of `candidates`, in row order.
pub fn distances_to(query: &[f32], candidates: &DescriptorMatrix) -> Vec<f32> {
    candidates.iter_rows().map(|row| l2_distance(query, row)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(matches!(DescriptorMatrix::new(&[1.0, 2.0, 3.0], 2), Err(Error::Shape { len: 3, dim: 2 })));
        assert!(matches!(DescriptorMatrix::new(&[1.0], 0), Err(Error::Shape { .. })));
        assert!(matches!(DescriptorMatrix::new(&[1.0, f32::NAN], 1), Err(Error::NonFinite { index: 1, .. })));
    }

    #[test]
    fn distance_matches_the_definition_for_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| (i * i) as f32 * 0.1).collect();
        let direct: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt();
        assert!((f64::from(l2_distance(&a, &b)) - direct).abs() < 1e-5 * direct);
    }

    #[test]
    fn nearest_neighbour_takes_the_first_of_equal_candidates() {
        let c = DescriptorMatrix::new(&[5.0, 1.0, 1.0, 3.0], 1).unwrap();
        let (index, distance) = nearest_neighbour(&[1.2], &c).unwrap();
        assert_eq!(index, 1);
        assert!((distance - 0.2).abs() < 1e-6);
        let empty = DescriptorMatrix::new(&[], 1).unwrap();
        assert_eq!(nearest_neighbour(&[1.2], &empty), None);
    }
}
