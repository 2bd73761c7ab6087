//! Line-oriented readers and writers of PhotoTour text files: `info.txt`, `interest.txt`, m50 pairs.

use crate::error::{DataError, Result};
use std::fmt::Write as _;
use std::path::Path;

/// A pair of patches from an m50 file and whether they show the same 3D point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Index of the first patch.
    pub a: u32,
    /// Index of the second patch.
    pub b: u32,
    /// Both patches come from the same 3D point.
    pub is_match: bool,
}

/// One row of `interest.txt`: where the patch's interest point was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InterestPoint {
    /// Id of the reference image the point was detected in.
    pub image_id: u32,
    /// Column in that image.
    pub x: f32,
    /// Row in that image.
    pub y: f32,
    /// Orientation, radians.
    pub orientation: f32,
    /// Scale.
    pub scale: f32,
}

pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

/// Non-blank lines with their 1-based numbers; a blank line is an error unless only trailing.
fn numbered_lines<'a>(path: &'a Path, text: &'a str) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    let last_content =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).last().map_or(0, |(i, _)| i + 1);
    text.lines().take(last_content).enumerate().map(move |(i, line)| {
        if line.trim().is_empty() {
            Err(DataError::parse(path, i + 1, "empty line"))
        } else {
            Ok((i + 1, line))
        }
    })
}

fn parse_field<T: std::str::FromStr>(
    path: &Path,
    line_no: usize,
    line: &str,
    field: Option<&str>,
    what: &str,
) -> Result<T> {
    let field =
        field.ok_or_else(|| DataError::parse(path, line_no, format!("missing {what} in `{line}`")))?;
    field.parse().map_err(|_| {
        DataError::parse(path, line_no, format!("{what} `{field}` is not a valid number in `{line}`"))
    })
}

/// Reads `info.txt`: one line per patch, the first column the 3D point id (the second is unused).
pub fn read_info(path: &Path) -> Result<Vec<u32>> {
    let text = read_text(path)?;
    numbered_lines(path, &text)
        .map(|entry| {
            let (no, line) = entry?;
            let mut fields = line.split_whitespace();
            let id = parse_field(path, no, line, fields.next(), "3D point id")?;
            parse_field::<i64>(path, no, line, fields.next(), "second column")?;
            Ok(id)
        })
        .collect()
}

/// Writes `info.txt` for `point_ids` (second column 0).
pub fn write_info(path: &Path, point_ids: &[u32]) -> Result<()> {
    let mut text = String::with_capacity(point_ids.len() * 10);
    for id in point_ids {
        let _ = writeln!(text, "{id} 0");
    }
    std::fs::write(path, text).map_err(|e| DataError::io(path, e))
}

/// Reads `interest.txt`: `image_id x y orientation scale` per patch.
pub fn read_interest(path: &Path) -> Result<Vec<InterestPoint>> {
    let text = read_text(path)?;
    numbered_lines(path, &text)
        .map(|entry| {
            let (no, line) = entry?;
            let mut f = line.split_whitespace();
            Ok(InterestPoint {
                image_id: parse_field(path, no, line, f.next(), "image id")?,
                x: parse_field(path, no, line, f.next(), "x")?,
                y: parse_field(path, no, line, f.next(), "y")?,
                orientation: parse_field(path, no, line, f.next(), "orientation")?,
                scale: parse_field(path, no, line, f.next(), "scale")?,
            })
        })
        .collect()
}

/// Reads an m50 pair file (`patch1 point1 _ patch2 point2 _` per line); a match is equal point ids.
///
/// `num_patches`, when given, bounds the patch indices: an index past it is an error.
pub fn read_pairs(path: &Path, num_patches: Option<usize>) -> Result<Vec<Pair>> {
    let text = read_text(path)?;
    numbered_lines(path, &text)
        .map(|entry| {
            let (no, line) = entry?;
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 6 {
                return Err(DataError::parse(
                    path,
                    no,
                    format!(
                        "expected 6 fields `patch1 point1 _ patch2 point2 _`, found {} in `{line}`",
                        f.len()
                    ),
                ));
            }
            let a: u32 = parse_field(path, no, line, Some(f[0]), "patch1")?;
            let point_a: u32 = parse_field(path, no, line, Some(f[1]), "point1")?;
            let b: u32 = parse_field(path, no, line, Some(f[3]), "patch2")?;
            let point_b: u32 = parse_field(path, no, line, Some(f[4]), "point2")?;
            check_index(path, no, a, num_patches)?;
            check_index(path, no, b, num_patches)?;
            Ok(Pair { a, b, is_match: point_a == point_b })
        })
        .collect()
}

fn check_index(path: &Path, line: usize, index: u32, num_patches: Option<usize>) -> Result<()> {
    match num_patches {
        Some(n) if index as usize >= n => Err(DataError::parse(
            path,
            line,
            format!("patch index {index} out of range: the data set has {n} patches"),
        )),
        _ => Ok(()),
    }
}

/// Writes an m50-style pair file; point ids come from `point_ids` (indexed by patch).
pub fn write_pairs(path: &Path, pairs: &[Pair], point_ids: &[u32]) -> Result<()> {
    let mut text = String::with_capacity(pairs.len() * 32);
    let id_of = |i: u32| {
        point_ids.get(i as usize).copied().ok_or_else(|| {
            DataError::invalid(
                path,
                format!("pair names patch {i}, but there are {} patches", point_ids.len()),
            )
        })
    };
    for p in pairs {
        let (pa, pb) = (id_of(p.a)?, id_of(p.b)?);
        let _ = writeln!(text, "{} {pa} 0 {} {pb} 0", p.a, p.b);
    }
    std::fs::write(path, text).map_err(|e| DataError::io(path, e))
}
