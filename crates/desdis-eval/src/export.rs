//! Descriptors in the layout the HPatches benchmark code reads:
//! `<out>/<descriptor name>/<sequence>/<image type>.csv`, one descriptor per line, values
//! separated by commas, no header.
//!
//! The benchmark pairs rows by index, so all 16 files of a sequence must hold the same points in
//! the same order (the order of the patches in the sequence's `<type>.png` strips).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::descriptors::DescriptorMatrix;
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// The image types of an HPatches sequence: the reference and five images each of the easy,
/// hard and tough geometric noise levels.
pub const HPATCHES_IMAGE_TYPES: [&str; 16] =
    ["ref", "e1", "e2", "e3", "e4", "e5", "h1", "h2", "h3", "h4", "h5", "t1", "t2", "t3", "t4", "t5"];

/// Writes one image's descriptors to `<out>/<descriptor_name>/<sequence>/<image_type>.csv`
/// atomically and returns that path.
///
/// Values are written in the shortest form that reads back to the same `f32`. Fails when a name
/// is not a single plain path component, `image_type` is not one of [`HPATCHES_IMAGE_TYPES`],
/// there are no descriptors, or the file cannot be written.
pub fn write_hpatches_csv(
    out: &Path,
    descriptor_name: &str,
    sequence: &str,
    image_type: &str,
    descriptors: &DescriptorMatrix,
) -> Result<PathBuf> {
    check_component("descriptor name", descriptor_name)?;
    check_component("sequence", sequence)?;
    if !HPATCHES_IMAGE_TYPES.contains(&image_type) {
        return Err(Error::InvalidArgument(format!(
            "HPatches export: image type {image_type:?} is not one of {HPATCHES_IMAGE_TYPES:?}"
        )));
    }
    if descriptors.is_empty() {
        return Err(Error::Empty("HPatches export: descriptors"));
    }
    let path = out.join(descriptor_name).join(sequence).join(format!("{image_type}.csv"));
    write_atomic(&path, csv_text(descriptors).as_bytes())?;
    Ok(path)
}

/// Rejects names that would escape or restructure the output tree.
fn check_component(what: &str, name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).components().count() == 1;
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("HPatches export: {what} {name:?} is not a plain file name")))
    }
}

fn csv_text(descriptors: &DescriptorMatrix) -> String {
    let mut text = String::with_capacity(descriptors.as_slice().len() * 12);
    for row in descriptors.iter_rows() {
        for (k, v) in row.iter().enumerate() {
            if k > 0 {
                text.push(',');
            }
            // `Display` of f32 is the shortest decimal that parses back to the same value.
            let _ = write!(text, "{v}");
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain_components() {
        for bad in ["", ".", "..", "a/b", "a\\b", "/abs"] {
            assert!(check_component("sequence", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_component("sequence", "v_boat").is_ok());
    }

    #[test]
    fn csv_rows_round_trip_exactly() {
        let values = [0.1f32, -2.5e-8, 3.0, 1.0 / 3.0];
        let text = csv_text(&DescriptorMatrix::new(&values, 2).unwrap());
        let parsed: Vec<f32> =
            text.lines().flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap())).collect();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(parsed, values);
    }
}
