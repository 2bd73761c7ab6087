//! Nearest-neighbour matching of L2 descriptors.
//!
//! Distances come from one matrix product per block of query rows
//! (`|a|² + |b|² - 2 a·b`), which is what makes 2000 x 2000 matches cheap; the distances that
//! are reported are then recomputed directly for the kept matches, so they carry no
//! cancellation error.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_finite_f32, Error};

/// How candidate matches are filtered. The default keeps mutual nearest neighbours only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatchConfig {
    /// Keep `i0 -> i1` only when `i0` is also the nearest neighbour of `i1` among image 0's
    /// descriptors (mutual nearest neighbours, "cross check").
    pub mutual: bool,
    /// Lowe's ratio test: keep a match only when `best / second_best < ratio`, on distances
    /// (not squared distances; `0.8` here is `0.64` on squared ones). With a single candidate
    /// in image 1 there is no second neighbour and the test passes.
    pub ratio: Option<f32>,
    /// Keep a match only when its L2 distance is at most this.
    pub max_distance: Option<f32>,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self { mutual: true, ratio: None, max_distance: None }
    }
}

/// One correspondence: descriptor `i0` of image 0 matched to descriptor `i1` of image 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Index into image 0's keypoints.
    pub i0: u32,
    /// Index into image 1's keypoints.
    pub i1: u32,
    /// L2 distance between the two descriptors.
    pub distance: f32,
}

impl Match {
    /// The index pair `(i0, i1)`, the form [`crate::draw_matches`] and
    /// [`crate::projection_errors`] take.
    pub fn pair(&self) -> (u32, u32) {
        (self.i0, self.i1)
    }
}

/// One block's scan: per query row its neighbours, and (when the mutual check needs them)
/// per column the block's smallest squared distance and the query row it belongs to.
struct BlockScan {
    rows: Vec<RowNn>,
    col_sq: Vec<f32>,
    col_row: Vec<u32>,
}

/// The nearest and second-nearest neighbours of one query row, in squared distances.
#[derive(Debug, Clone, Copy)]
struct RowNn {
    best: u32,
    best_sq: f32,
    second_sq: f32,
}

/// Matches descriptors of image 0 (`desc0`, `n0 * dim` floats, keypoint-major) to those of
/// image 1 (`desc1`, `n1 * dim`) by nearest L2 neighbour, filtered by `cfg`.
///
/// Matches come sorted by `i0`, at most one per `i0`. Ties go to the lower index. If either
/// side is empty the result is empty. Errors: `dim == 0`, a length that is not a multiple of
/// `dim`, a NaN or infinite value, an invalid ratio or distance cap.
pub fn match_descriptors(
    desc0: &[f32],
    desc1: &[f32],
    dim: usize,
    cfg: &MatchConfig,
) -> Result<Vec<Match>, Error> {
    validate_config(cfg)?;
    let n0 = count_rows(desc0, dim, "desc0")?;
    let n1 = count_rows(desc1, dim, "desc1")?;
    check_finite_f32(desc0, "desc0")?;
    check_finite_f32(desc1, "desc1")?;
    if n0 == 0 || n1 == 0 {
        return Ok(Vec::new());
    }
    if u32::try_from(n0.max(n1)).is_err() {
        return Err(Error::InvalidParameter(format!("too many descriptors ({})", n0.max(n1))));
    }
    let (rows, col_best) = nearest_neighbours(desc0, desc1, dim, n1, cfg.mutual);
    let ratio_sq = cfg.ratio.map(|r| r * r);
    let mut matches = Vec::new();
    for (i0, nn) in rows.iter().enumerate() {
        if let Some(r2) = ratio_sq {
            // Multiplying instead of dividing makes two equally near candidates (0 / 0) fail.
            if nn.second_sq.is_finite() && nn.best_sq >= r2 * nn.second_sq {
                continue;
            }
        }
        if cfg.mutual && col_best[nn.best as usize] as usize != i0 {
            continue;
        }
        let i1 = nn.best as usize;
        let distance = l2(&desc0[i0 * dim..(i0 + 1) * dim], &desc1[i1 * dim..(i1 + 1) * dim]);
        if cfg.max_distance.is_some_and(|m| distance > m) {
            continue;
        }
        matches.push(Match { i0: i0 as u32, i1: nn.best, distance });
    }
    Ok(matches)
}

fn validate_config(cfg: &MatchConfig) -> Result<(), Error> {
    if let Some(r) = cfg.ratio {
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::InvalidParameter(format!("ratio must be positive and finite, got {r}")));
        }
    }
    if let Some(m) = cfg.max_distance {
        if !(m.is_finite() && m >= 0.0) {
            return Err(Error::InvalidParameter(format!("max_distance must be >= 0 and finite, got {m}")));
        }
    }
    Ok(())
}

fn count_rows(desc: &[f32], dim: usize, what: &'static str) -> Result<usize, Error> {
    if dim == 0 {
        return Err(Error::ZeroDimension);
    }
    if !desc.len().is_multiple_of(dim) {
        return Err(Error::DescriptorLength { what, len: desc.len(), dim });
    }
    Ok(desc.len() / dim)
}

/// Exact L2 distance between two equally long vectors.
fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

fn sq_norms(desc: &[f32], dim: usize) -> Vec<f32> {
    desc.chunks_exact(dim).map(|r| r.iter().map(|v| v * v).sum()).collect()
}

/// Query rows per block: enough blocks to feed every thread, and a bounded distance buffer
/// (`rows * n1` floats) so that huge image-1 sets do not allocate gigabytes per thread.
fn block_rows(n0: usize, n1: usize) -> usize {
    const MAX_BUFFER: usize = 1 << 22;
    let per_thread = n0.div_ceil(4 * rayon::current_num_threads().max(1));
    per_thread.clamp(16, 256).min((MAX_BUFFER / n1).max(1))
}

/// For every row of `desc0` its two nearest squared distances in `desc1`, and (when
/// `want_cols`) for every row of `desc1` the index of its nearest row of `desc0`.
fn nearest_neighbours(
    desc0: &[f32],
    desc1: &[f32],
    dim: usize,
    n1: usize,
    want_cols: bool,
) -> (Vec<RowNn>, Vec<u32>) {
    let norms1 = sq_norms(desc1, dim);
    let rows_per_block = block_rows(desc0.len() / dim, n1);
    let blocks: Vec<BlockScan> = desc0
        .par_chunks(rows_per_block * dim)
        .enumerate()
        .map(|(b, block)| scan_block(block, b * rows_per_block, desc1, &norms1, dim, want_cols))
        .collect();
    // Blocks are reduced in order with a strict comparison, so ties keep the lowest i0.
    let n_cols = if want_cols { n1 } else { 0 };
    let (mut col_sq, mut col_row) = (vec![f32::INFINITY; n_cols], vec![0u32; n_cols]);
    let mut rows = Vec::with_capacity(desc0.len() / dim);
    for block in blocks {
        rows.extend(block.rows);
        for (j, (&d, &i)) in block.col_sq.iter().zip(&block.col_row).enumerate() {
            if d < col_sq[j] {
                (col_sq[j], col_row[j]) = (d, i);
            }
        }
    }
    (rows, col_row)
}

/// Nearest neighbours of one block of query rows starting at row `first`, plus (when
/// `want_cols`) the block's nearest query row for every column.
fn scan_block(
    block: &[f32],
    first: usize,
    desc1: &[f32],
    norms1: &[f32],
    dim: usize,
    want_cols: bool,
) -> BlockScan {
    let rows = block.len() / dim;
    let n1 = norms1.len();
    let mut dist = vec![0f32; rows * n1];
    dot_products(block, rows, desc1, n1, dim, &mut dist);
    let norms0 = sq_norms(block, dim);
    let n_cols = if want_cols { n1 } else { 0 };
    let mut out = BlockScan {
        rows: Vec::with_capacity(rows),
        col_sq: vec![f32::INFINITY; n_cols],
        col_row: vec![0; n_cols],
    };
    scan_rows(&mut dist, &norms0, norms1, first as u32, &mut out);
    out
}

/// [`scan_rows_body`] compiled for AVX2 where the CPU has it (chosen at run time, so the
/// binary still runs on older CPUs): the scans are most of the cost once the product is done.
fn scan_rows(dist: &mut [f32], norms0: &[f32], norms1: &[f32], first: u32, out: &mut BlockScan) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above; the function has no other
        // precondition.
        unsafe { scan_rows_avx2(dist, norms0, norms1, first, out) };
        return;
    }
    scan_rows_body(dist, norms0, norms1, first, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_rows_avx2(dist: &mut [f32], norms0: &[f32], norms1: &[f32], first: u32, out: &mut BlockScan) {
    scan_rows_body(dist, norms0, norms1, first, out);
}

/// Turns a block's dot products into squared distances row by row and records each row's
/// two nearest columns and each column's nearest row (when `out` asks for columns).
#[inline(always)]
fn scan_rows_body(dist: &mut [f32], norms0: &[f32], norms1: &[f32], first: u32, out: &mut BlockScan) {
    let n1 = norms1.len();
    for (r, (row, &na)) in dist.chunks_exact_mut(n1).zip(norms0).enumerate() {
        // Separate, branch-free passes so that the compiler can vectorise them. The clamp is
        // there because rounding can make the expansion slightly negative for near-equal
        // vectors.
        for (v, &nb) in row.iter_mut().zip(norms1) {
            *v = (na + nb - 2.0 * *v).max(0.0);
        }
        out.rows.push(two_smallest(row));
        let i0 = first + r as u32;
        // Indexing over equal-length slices (not a three-way zip) lets the loop vectorise.
        let n = out.col_sq.len().min(out.col_row.len()).min(row.len());
        let (col_sq, col_row, row) = (&mut out.col_sq[..n], &mut out.col_row[..n], &row[..n]);
        for j in 0..n {
            let better = row[j] < col_sq[j];
            col_row[j] = if better { i0 } else { col_row[j] };
            col_sq[j] = if better { row[j] } else { col_sq[j] };
        }
    }
}

/// Independent running minima kept side by side, so that the scan over a row compiles to
/// vector selects instead of one unpredictable branch per entry.
const LANES: usize = 8;

/// The smallest and second-smallest entries of a row of squared distances; ties go to the
/// lower index.
#[inline(always)]
fn two_smallest(row: &[f32]) -> RowNn {
    let (mut best, mut second, mut idx) = ([f32::INFINITY; LANES], [f32::INFINITY; LANES], [0u32; LANES]);
    let chunks = row.chunks_exact(LANES);
    let tail_start = row.len() - chunks.remainder().len();
    for (c, chunk) in chunks.enumerate() {
        for l in 0..LANES {
            let v = chunk[l];
            let better = v < best[l];
            // Plain compare-and-select rather than `f32::min`, whose NaN handling blocks
            // vectorisation (the inputs hold no NaN).
            let runner_up = if v < second[l] { v } else { second[l] };
            second[l] = if better { best[l] } else { runner_up };
            idx[l] = if better { (c * LANES + l) as u32 } else { idx[l] };
            best[l] = if better { v } else { best[l] };
        }
    }
    let mut nn = RowNn { best: 0, best_sq: f32::INFINITY, second_sq: f32::INFINITY };
    for l in 0..LANES {
        offer(&mut nn, best[l], idx[l]);
        nn.second_sq = nn.second_sq.min(second[l]);
    }
    for (j, &v) in row.iter().enumerate().skip(tail_start) {
        offer(&mut nn, v, j as u32);
    }
    nn
}

/// Merges one candidate `(d2, j)` into the two smallest so far.
#[inline(always)]
fn offer(nn: &mut RowNn, d2: f32, j: u32) {
    if d2 < nn.best_sq || (d2 == nn.best_sq && j < nn.best) {
        nn.second_sq = nn.best_sq;
        (nn.best_sq, nn.best) = (d2, j);
    } else {
        nn.second_sq = nn.second_sq.min(d2);
    }
}

/// `out[r * n1 + j] = a_r · b_j` for the `rows` rows of `a` and `n1` rows of `b`.
fn dot_products(a: &[f32], rows: usize, b: &[f32], n1: usize, dim: usize, out: &mut [f32]) {
    // Checked here so the unsafe call below can rely on it whatever the caller did.
    assert!(a.len() >= rows * dim && b.len() >= n1 * dim && out.len() == rows * n1, "dot_products shapes");
    if rows == 0 || n1 == 0 {
        return;
    }
    // SAFETY: `a` is row-major (rows, dim), `b` row-major (n1, dim) read as its transpose
    // (column stride dim, row stride 1), `out` row-major (rows, n1); the assert above bounds
    // every index gemm touches, and `out` is a unique borrow aliasing neither input.
    unsafe {
        gemm::gemm(
            rows,
            n1,
            dim,
            out.as_mut_ptr(),
            1,
            n1 as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            // Parallelism comes from rayon over blocks; nesting gemm's own threads would
            // oversubscribe.
            gemm::Parallelism::None,
        );
    }
}

/// The similarity score hloc-style outputs carry for a match: `1 - d²/2`, clamped to `[0, 1]`.
/// For unit-norm descriptors this is their cosine similarity (clamped at 0), so 1 is a perfect
/// match; for other descriptors it is only a monotone transform of the distance.
pub fn similarity_from_distance(distance: f32) -> f32 {
    (1.0 - 0.5 * distance * distance).clamp(0.0, 1.0)
}

/// The inverse of [`similarity_from_distance`] on `[0, 1]`: `sqrt(2 (1 - s))`. Scores of 0
/// come back as `sqrt(2)` whatever the distance was, since the clamp lost it.
pub fn distance_from_similarity(score: f32) -> f32 {
    (2.0 * (1.0 - score.clamp(0.0, 1.0))).sqrt()
}

/// hloc's `matches0` / `matching_scores0` for image 0's `n0` keypoints: `matches0[i0]` is the
/// matched `i1` or `-1`, and the score is [`similarity_from_distance`] (0 where unmatched).
///
/// Errors: an `i0 >= n0`, an index that does not fit an `i32`, or the same `i0` twice.
pub fn to_matches0(matches: &[Match], n0: usize) -> Result<(Vec<i32>, Vec<f32>), Error> {
    let mut matches0 = vec![-1i32; n0];
    let mut scores0 = vec![0f32; n0];
    for m in matches {
        let i0 = m.i0 as usize;
        if i0 >= n0 {
            return Err(Error::IndexOutOfRange { what: "match i0", index: i64::from(m.i0), len: n0 });
        }
        let i1 = i32::try_from(m.i1).map_err(|_| Error::IndexOutOfRange {
            what: "match i1",
            index: i64::from(m.i1),
            len: i32::MAX as usize,
        })?;
        if matches0[i0] != -1 {
            return Err(Error::DuplicateMatch { i0: m.i0 });
        }
        matches0[i0] = i1;
        scores0[i0] = similarity_from_distance(m.distance);
    }
    Ok((matches0, scores0))
}

/// The inverse of [`to_matches0`]: one [`Match`] per non-negative entry, with the distance
/// recovered by [`distance_from_similarity`] (exact for scores in `(0, 1]`).
///
/// Errors: lengths differ, an entry below `-1`, a non-finite score.
pub fn from_matches0(matches0: &[i32], scores0: &[f32]) -> Result<Vec<Match>, Error> {
    if matches0.len() != scores0.len() {
        return Err(Error::LengthMismatch {
            what: "matches0 and scores0",
            left: matches0.len(),
            right: scores0.len(),
        });
    }
    check_finite_f32(scores0, "scores0")?;
    let mut out = Vec::new();
    for (i0, (&m, &s)) in matches0.iter().zip(scores0).enumerate() {
        if m < -1 {
            return Err(Error::IndexOutOfRange { what: "matches0 entry", index: i64::from(m), len: 0 });
        }
        if m >= 0 {
            out.push(Match { i0: i0 as u32, i1: m as u32, distance: distance_from_similarity(s) });
        }
    }
    Ok(out)
}
