//! Export to COLMAP's text import format.
//!
//! * `feature_importer --import_path OUT` reads, for an image named `NAME` (its path relative to
//!   the image folder, extension included), the file `OUT/NAME.txt`: a first line
//!   `NUM_FEATURES 128`, then one line per keypoint `X Y SCALE ORIENTATION D_1 ... D_128` with the
//!   D as integers in 0..=255.
//! * `matches_importer --match_type raw --match_list_path OUT/matches.txt` reads blocks of a line
//!   `NAME_1 NAME_2`, one line `IDX_1 IDX_2` per match (0-based keypoint indices), and an empty
//!   line.
//!
//! Conventions, from ours (hloc's) to COLMAP's:
//! * X, Y: COLMAP puts (0.5, 0.5) at the centre of the top-left pixel, hloc (0, 0): add 0.5.
//! * SCALE: the detection sigma in pixels, unchanged (hloc's DoG `scales` are COLMAP's).
//! * ORIENTATION: radians (hloc's `oris` are COLMAP's converted with `rad2deg`): degrees to
//!   radians.
//! * D: [`crate::quantize_descriptor`] (a norm-512 isometry into 0..=255).
//!
//! COLMAP splits the lines of `matches.txt` at whitespace, so image names with whitespace or
//! control characters are refused. Pairs without matches are left out of `matches.txt`.
//! `image_list.txt` lists the image names, one per line (COLMAP's `--image_list_path` format).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::features::name_components;
use crate::{atomic, quantize_descriptor, Error, ImageFeatures};

/// The matches of one image pair for [`export_colmap`]: `(name0, name1, [(i0, i1), ...])` with
/// 0-based keypoint indices into each image.
pub type IndexMatches = (String, String, Vec<(u32, u32)>);

/// What [`export_colmap`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColmapSummary {
    /// Per-image feature files written.
    pub images: usize,
    /// Keypoints written, over all images.
    pub features: usize,
    /// Pair blocks written to `matches.txt` (pairs with at least one match).
    pub pairs: usize,
    /// Matches written, over all pairs.
    pub matches: usize,
}

/// Writes `out_dir/<name>.txt` for every image, `out_dir/matches.txt` for the pairs
/// `(name0, name1, [(i0, i1), ...])` and `out_dir/image_list.txt`, each file atomically.
///
/// A name COLMAP cannot read back, a pair naming an unknown image, an index past an image's
/// keypoints, a pair given twice (in either order) or an image paired with itself, a descriptor
/// dimension outside 1..=128 or a non-finite value is an [`Error::InvalidInput`]; nothing is
/// written then, since all checks run first.
pub fn export_colmap(
    features: &BTreeMap<String, ImageFeatures>,
    matches: &[IndexMatches],
    out_dir: &Path,
) -> Result<ColmapSummary, Error> {
    for (name, image) in features {
        check_name(out_dir, name)?;
        image.check().map_err(|m| Error::invalid(out_dir, format!("image `{name}`"), m))?;
    }
    let (match_list, pairs, match_count) = match_list(out_dir, features, matches)?;
    let feature_files = features
        .iter()
        .map(|(name, image)| Ok((name, feature_file(out_dir, name, image)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    for (name, text) in &feature_files {
        let path = out_dir.join(format!("{name}.txt"));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        atomic::write_atomic(&path, text.as_bytes())?;
    }
    atomic::write_atomic(&out_dir.join("matches.txt"), match_list.as_bytes())?;
    let list: String = features.keys().map(|n| format!("{n}\n")).collect();
    atomic::write_atomic(&out_dir.join("image_list.txt"), list.as_bytes())?;
    Ok(ColmapSummary {
        images: features.len(),
        features: features.values().map(ImageFeatures::len).sum(),
        pairs,
        matches: match_count,
    })
}

/// Refuses names COLMAP would split or that would escape `out_dir`.
fn check_name(out_dir: &Path, name: &str) -> Result<(), Error> {
    let what = || format!("image name `{name}`");
    name_components(name).map_err(|m| Error::invalid(out_dir, what(), m))?;
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(out_dir, what(), "COLMAP's match list cannot hold whitespace in names"));
    }
    Ok(())
}

/// One image's feature file.
fn feature_file(out_dir: &Path, name: &str, image: &ImageFeatures) -> Result<String, Error> {
    let what = || format!("image `{name}`");
    let mut text = format!("{} 128\n", image.len());
    for i in 0..image.len() {
        let [x, y] = image.keypoints[i];
        let (scale, ori) = (image.scales[i], image.oris[i].to_radians());
        if ![x, y, scale, ori].iter().all(|v| v.is_finite()) {
            return Err(Error::invalid(out_dir, what(), format!("keypoint {i} has a non-finite value")));
        }
        let descriptor = image.descriptor(i).unwrap_or_default();
        let q = quantize_descriptor(descriptor)
            .map_err(|m| Error::invalid(out_dir, what(), format!("keypoint {i}: {m}")))?;
        // `{}` on f32 prints the shortest exact decimal, never an exponent.
        let _ = write!(text, "{} {} {scale} {ori}", x + 0.5, y + 0.5);
        for v in q {
            let _ = write!(text, " {v}");
        }
        text.push('\n');
    }
    Ok(text)
}

/// `matches.txt` and its pair and match counts.
fn match_list(
    out_dir: &Path,
    features: &BTreeMap<String, ImageFeatures>,
    matches: &[IndexMatches],
) -> Result<(String, usize, usize), Error> {
    let mut text = String::new();
    let mut seen = BTreeSet::new();
    let (mut pairs, mut count) = (0, 0);
    for (name0, name1, list) in matches {
        let what = || format!("pair `{name0}` - `{name1}`");
        let n0 = keypoint_count(out_dir, features, name0, &what)?;
        let n1 = keypoint_count(out_dir, features, name1, &what)?;
        let key = if name0 <= name1 { (name0, name1) } else { (name1, name0) };
        if name0 == name1 || !seen.insert(key) {
            return Err(Error::invalid(out_dir, what(), "pairs an image with itself or is given twice"));
        }
        if let Some(&(i, j)) = list.iter().find(|&&(i, j)| i as usize >= n0 || j as usize >= n1) {
            return Err(Error::invalid(
                out_dir,
                what(),
                format!("match ({i}, {j}) is past {n0} / {n1} keypoints"),
            ));
        }
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(text, "{name0} {name1}");
        for (i, j) in list {
            let _ = writeln!(text, "{i} {j}");
        }
        text.push('\n');
        pairs += 1;
        count += list.len();
    }
    Ok((text, pairs, count))
}

fn keypoint_count(
    out_dir: &Path,
    features: &BTreeMap<String, ImageFeatures>,
    name: &str,
    what: &dyn Fn() -> String,
) -> Result<usize, Error> {
    features
        .get(name)
        .map(ImageFeatures::len)
        .ok_or_else(|| Error::invalid(out_dir, what(), format!("`{name}` has no features")))
}
