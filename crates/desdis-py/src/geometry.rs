//! `desdis.match` and `desdis.verify`: nearest-neighbour matching of descriptor arrays and the
//! RANSAC inliers of index pairs, as `desdis match` computes them.

use desdis_geometry::{match_descriptors, verify as ransac_verify, MatchConfig, ModelKind, RansacConfig};
use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;

use crate::arrays::{index_pairs, matrix_f32};
use crate::describer::to_matrix;
use crate::errors::{Failure, IntoPyResult, Result};

/// Index pairs `(M, 2)` int64 and their L2 distances `(M,)` float32.
type MatchArrays<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray1<f32>>);

/// The points of image 0 and of image 1 that the matches pair up, in match order.
type PointPairs = (Vec<[f32; 2]>, Vec<[f32; 2]>);

/// Inlier mask `(M,)` and the fitted 3x3 model, when one was found.
type VerifyArrays<'py> = (Bound<'py, PyArray1<bool>>, Option<Bound<'py, PyArray2<f64>>>);

/// Nearest-neighbour matches of `desc0` (N0, D) to `desc1` (N1, D), sorted by index in desc0.
#[pyfunction(name = "match")]
#[pyo3(signature = (desc0, desc1, mutual=true, ratio=None))]
pub fn match_py<'py>(
    py: Python<'py>,
    desc0: &Bound<'py, PyAny>,
    desc1: &Bound<'py, PyAny>,
    mutual: bool,
    ratio: Option<f32>,
) -> PyResult<MatchArrays<'py>> {
    let (d0, _, dim0) = matrix_f32(desc0, "desc0", None).py(py)?;
    let (d1, _, dim1) = matrix_f32(desc1, "desc1", None).py(py)?;
    if dim0 != dim1 {
        return Err(Failure::value(format!(
            "descriptors of dimension {dim0} and {dim1} cannot be matched (features from different nets?)"
        ))
        .into_py_err(py));
    }
    let cfg = MatchConfig { mutual, ratio, max_distance: None };
    let matches =
        py.detach(|| match_descriptors(&d0, &d1, dim0.max(1), &cfg).map_err(Failure::from)).py(py)?;
    let pairs: Vec<i64> = matches.iter().flat_map(|m| [i64::from(m.i0), i64::from(m.i1)]).collect();
    let distances: Vec<f32> = matches.iter().map(|m| m.distance).collect();
    Ok((to_matrix(py, pairs, matches.len(), 2)?, PyArray1::from_vec(py, distances)))
}

/// The matches `(M, 2)` between keypoints `kpts0` (N0, 2) and `kpts1` (N1, 2) that agree with one
/// homography or fundamental matrix (seeded RANSAC, `threshold` pixels).
#[pyfunction]
#[pyo3(signature = (kpts0, kpts1, matches, model="homography", threshold=3.0, seed=0))]
pub fn verify<'py>(
    py: Python<'py>,
    kpts0: &Bound<'py, PyAny>,
    kpts1: &Bound<'py, PyAny>,
    matches: &Bound<'py, PyAny>,
    model: &str,
    threshold: f64,
    seed: u64,
) -> PyResult<VerifyArrays<'py>> {
    let kind = model_kind(model).py(py)?;
    let (k0, _, _) = matrix_f32(kpts0, "kpts0", Some(2)).py(py)?;
    let (k1, _, _) = matrix_f32(kpts1, "kpts1", Some(2)).py(py)?;
    let pairs = index_pairs(matches, "matches").py(py)?;
    let (pts0, pts1) = matched_points(&k0, &k1, &pairs).py(py)?;
    let cfg = RansacConfig { seed, ..RansacConfig::default() };
    let fit =
        py.detach(|| ransac_verify(&pts0, &pts1, kind, threshold, &cfg).map_err(Failure::from)).py(py)?;
    Ok(match fit {
        Some(v) => {
            let flat: Vec<f64> = v.model.matrix().iter().flatten().copied().collect();
            (PyArray1::from_vec(py, v.inliers), Some(to_matrix(py, flat, 3, 3)?))
        }
        // Too few matches or no consistent model: nothing is verified (as `desdis match`).
        None => (PyArray1::from_vec(py, vec![false; pairs.len()]), None),
    })
}

fn model_kind(name: &str) -> Result<ModelKind> {
    match name {
        "homography" => Ok(ModelKind::Homography),
        "fundamental" => Ok(ModelKind::Fundamental),
        other => Err(Failure::value(format!("unknown model `{other}` (homography, fundamental)"))),
    }
}

/// The keypoints each pair names, with every index checked against its array.
fn matched_points(k0: &[f32], k1: &[f32], pairs: &[[i64; 2]]) -> Result<PointPairs> {
    let point = |k: &[f32], i: i64, what: &str| -> Result<[f32; 2]> {
        let n = k.len() / 2;
        match usize::try_from(i).ok().filter(|&i| i < n) {
            Some(i) => Ok([k[2 * i], k[2 * i + 1]]),
            None => Err(Failure::value(format!("matches: index {i} out of range for {what} of length {n}"))),
        }
    };
    let mut pts0 = Vec::with_capacity(pairs.len());
    let mut pts1 = Vec::with_capacity(pairs.len());
    for &[i0, i1] in pairs {
        pts0.push(point(k0, i0, "kpts0")?);
        pts1.push(point(k1, i1, "kpts1")?);
    }
    Ok((pts0, pts1))
}
