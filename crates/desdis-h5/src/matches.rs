//! `matches.h5` in hloc's layout.
//!
//! One group per pair: group `name0'` holding subgroup `name1'`, where `name'` is the image name
//! with every `/` replaced by `-` (hloc's `names_to_pair`, whose `/` separator makes the nesting).
//! The subgroup holds `matches0` (N0,), the index in image 1 of each keypoint of image 0 or -1
//! when unmatched, and `matching_scores0` (N0,).
//!
//! hloc writes `matches0` as int16 and the scores as float16. This crate writes int32 and
//! float32: int16 cannot index past keypoint 32767, which dense extractors exceed, and float16
//! saves nothing that matters here. h5py and hloc's readers take any width. Reading accepts any
//! integer width for `matches0` and any float width for `matching_scores0`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hdf5_pure::{File, FileBuilder};

use crate::h5read::{self, Loc};
use crate::{atomic, Error};

/// Matches of one image pair, hloc's `matches0` / `matching_scores0`.
#[derive(Debug, Clone, PartialEq)]
pub struct PairMatches {
    /// For each keypoint of image 0: its match's index among image 1's keypoints, or -1.
    pub matches0: Vec<i32>,
    /// For each keypoint of image 0: the matcher's confidence (0.0 where unmatched).
    pub scores0: Vec<f32>,
}

impl PairMatches {
    /// The matched index pairs `(i0, i1)`, in order of `i0`.
    pub fn pairs(&self) -> Vec<(u32, u32)> {
        self.matches0
            .iter()
            .enumerate()
            .filter_map(|(i, &j)| Some((u32::try_from(i).ok()?, u32::try_from(j).ok()?)))
            .collect()
    }
}

/// hloc's `names_to_pair`: each name with `/` replaced by `-`, joined by `/`
/// (`pair_key("seq/1.png", "a.jpg") == "seq-1.png/a.jpg"`).
pub fn pair_key(name0: &str, name1: &str) -> String {
    format!("{}/{}", name0.replace('/', "-"), name1.replace('/', "-"))
}

/// Reads every pair of a matches file, keyed by the (group, subgroup) names as stored, i.e.
/// with `/` already replaced by `-` (the replacement cannot be undone: resolve them against the
/// image names with [`pair_key`]).
///
/// A top-level group holding `matches0` itself (hloc's old single-level `name0_name1` layout) is
/// an [`Error::Layout`]. A missing `matching_scores0` reads as 0.0 for every keypoint.
pub fn read_matches(path: &Path) -> Result<BTreeMap<(String, String), PairMatches>, Error> {
    let file = h5read::open(path)?;
    let root = file.root();
    let (groups, datasets) = h5read::children(path, "", &root)?;
    if !datasets.is_empty() {
        return Err(layout(path, format!("unexpected datasets at the root: {datasets:?}")));
    }
    let mut out = BTreeMap::new();
    for name0 in groups {
        let group0 = h5read::subgroup(path, &name0, &root, &name0)?;
        let (subgroups, datasets0) = h5read::children(path, &name0, &group0)?;
        if datasets0.iter().any(|d| d == "matches0") {
            return Err(layout(
                path,
                format!("group `{name0}` holds matches0 itself: the old single-level pair layout is not supported"),
            ));
        }
        for name1 in subgroups {
            let key = format!("{name0}/{name1}");
            let group1 = h5read::subgroup(path, &key, &group0, &name1)?;
            let pair = read_pair(path, &file, &key, &group1)?;
            out.insert((name0.clone(), name1), pair);
        }
    }
    Ok(out)
}

fn layout(path: &Path, message: String) -> Error {
    Error::Layout { path: path.to_path_buf(), message }
}

fn read_pair(path: &Path, file: &File, key: &str, group: &hdf5_pure::Group) -> Result<PairMatches, Error> {
    let (_, datasets) = h5read::children(path, key, group)?;
    let loc = Loc { path, group: key, dataset: "matches0" };
    let ds = h5read::dataset_opt(loc, group, &datasets)?.ok_or_else(|| loc.missing())?;
    let shape = h5read::checked_shape(loc, &ds, file.file_size())?;
    let &[n] = shape.as_slice() else {
        return Err(loc.bad(format!("expected shape (N0,), found {shape:?}")));
    };
    let matches0 = h5read::read_ints(loc, &ds)?
        .into_iter()
        .map(|m| i32::try_from(m).ok().filter(|&m| m >= -1))
        .collect::<Option<Vec<i32>>>()
        .ok_or_else(|| loc.bad("holds an index below -1 or beyond i32"))?;
    let scores_loc = Loc { dataset: "matching_scores0", ..loc };
    let scores0 = match h5read::dataset_opt(scores_loc, group, &datasets)? {
        None => vec![0.0; matches0.len()],
        Some(ds) => {
            let shape = h5read::checked_shape(scores_loc, &ds, file.file_size())?;
            if shape.as_slice() != [n] {
                return Err(scores_loc.bad(format!("expected shape ({n},), found {shape:?}")));
            }
            h5read::read_floats(scores_loc, &ds)?
        }
    };
    if matches0.len() as u64 != n || scores0.len() as u64 != n {
        return Err(loc.bad(format!("read fewer values than the shape ({n},) claims")));
    }
    Ok(PairMatches { matches0, scores0 })
}

/// Writes the pairs `(name0, name1, matches)` to `path` in hloc's layout (group
/// `pair_key(name0, name1)`, int32 `matches0`, float32 `matching_scores0`), atomically.
///
/// Names are the original image names. Two entries with the same key, `matches0` and `scores0`
/// of different lengths, or an index below -1 are an [`Error::InvalidInput`].
pub fn write_matches(path: &Path, matches: &[(String, String, PairMatches)]) -> Result<(), Error> {
    let mut tree: BTreeMap<String, BTreeMap<String, &PairMatches>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (name0, name1, pair) in matches {
        let what = format!("pair `{name0}` - `{name1}`");
        check_pair(pair).map_err(|m| Error::invalid(path, &what, m))?;
        let (g0, g1) = (name0.replace('/', "-"), name1.replace('/', "-"));
        for g in [&g0, &g1] {
            if g.is_empty() || g == "." || g == ".." {
                return Err(Error::invalid(path, &what, "image names must be non-empty, not `.` or `..`"));
            }
        }
        if !seen.insert((g0.clone(), g1.clone())) {
            return Err(Error::invalid(path, &what, format!("key `{g0}/{g1}` given twice")));
        }
        tree.entry(g0).or_default().insert(g1, pair);
    }
    let mut builder = FileBuilder::new();
    for (g0, subgroups) in &tree {
        let mut group0 = builder.create_group(g0);
        for (g1, pair) in subgroups {
            let mut group1 = group0.create_group(g1);
            let n = pair.matches0.len() as u64;
            group1.create_dataset("matches0").with_i32_data(&pair.matches0).with_shape(&[n]);
            group1.create_dataset("matching_scores0").with_f32_data(&pair.scores0).with_shape(&[n]);
            group0.add_group(group1.finish());
        }
        builder.add_group(group0.finish());
    }
    let bytes = builder
        .finish()
        .map_err(|source| Error::Encode { path: path.to_path_buf(), source: Box::new(source) })?;
    atomic::write_atomic(path, &bytes)
}

fn check_pair(pair: &PairMatches) -> Result<(), String> {
    if pair.matches0.len() != pair.scores0.len() {
        return Err(format!("matches0 has {} values, scores0 {}", pair.matches0.len(), pair.scores0.len()));
    }
    if pair.matches0.iter().any(|&m| m < -1) {
        return Err("matches0 holds an index below -1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_key_replaces_slashes_in_each_name() {
        assert_eq!(pair_key("a.jpg", "b.jpg"), "a.jpg/b.jpg");
        assert_eq!(pair_key("seq/1.png", "x/y/z.png"), "seq-1.png/x-y-z.png");
    }

    #[test]
    fn pairs_skip_unmatched() {
        let m = PairMatches { matches0: vec![2, -1, 0], scores0: vec![0.5, 0.0, 0.1] };
        assert_eq!(m.pairs(), vec![(0, 2), (2, 0)]);
    }
}
