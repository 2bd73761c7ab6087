//! Reading single datasets defensively: shapes and sizes are checked against the file before
//! anything is allocated, any float width (16, 32, 64 bits) or integer width is decoded, and every
//! failure becomes an [`Error`] naming the file, the group and the dataset.

use std::path::Path;

use hdf5_pure::{Dataset, Datatype, DatatypeByteOrder, File, Group};

use crate::Error;

/// The most elements one dataset may claim (2^31, 8 GiB of f32), whatever the file size. Far
/// beyond any real features file, small enough that a hostile header cannot ask for terabytes.
const MAX_ELEMENTS: u64 = 1 << 31;

/// Where a dataset sits, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Loc<'a> {
    pub path: &'a Path,
    pub group: &'a str,
    pub dataset: &'a str,
}

impl Loc<'_> {
    pub(crate) fn bad(&self, message: impl Into<String>) -> Error {
        Error::BadDataset {
            path: self.path.to_path_buf(),
            group: self.group.to_string(),
            dataset: self.dataset.to_string(),
            message: message.into(),
        }
    }

    fn read_err(&self, source: hdf5_pure::Error) -> Error {
        Error::ReadDataset {
            path: self.path.to_path_buf(),
            group: self.group.to_string(),
            dataset: self.dataset.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn missing(&self) -> Error {
        Error::MissingDataset {
            path: self.path.to_path_buf(),
            group: self.group.to_string(),
            dataset: self.dataset.to_string(),
        }
    }
}

/// Opens `path` (read into memory: features files are read whole anyway).
pub(crate) fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::Open { path: path.to_path_buf(), source: Box::new(source) })
}

/// The names of `group`'s child groups and datasets, sorted.
pub(crate) fn children(
    path: &Path,
    group_path: &str,
    group: &Group,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let err = |source: hdf5_pure::Error| Error::Group {
        path: path.to_path_buf(),
        group: group_path.to_string(),
        source: Box::new(source),
    };
    let mut groups = group.groups().map_err(err)?;
    let mut datasets = group.datasets().map_err(err)?;
    groups.sort();
    datasets.sort();
    Ok((groups, datasets))
}

/// Opens child group `name` of `group`.
pub(crate) fn subgroup(path: &Path, child_path: &str, group: &Group, name: &str) -> Result<Group, Error> {
    group.group(name).map_err(|source| Error::Group {
        path: path.to_path_buf(),
        group: child_path.to_string(),
        source: Box::new(source),
    })
}

/// Opens dataset `loc.dataset` of `group`, `None` when the group has no such dataset.
pub(crate) fn dataset_opt(loc: Loc<'_>, group: &Group, names: &[String]) -> Result<Option<Dataset>, Error> {
    if !names.iter().any(|n| n == loc.dataset) {
        return Ok(None);
    }
    group.dataset(loc.dataset).map(Some).map_err(|e| loc.read_err(e))
}

/// The dataset's shape, after checking that its size is plausible for a file of `file_size`
/// bytes: an unfiltered (contiguous or compact) dataset cannot hold more bytes than the file.
pub(crate) fn checked_shape(loc: Loc<'_>, ds: &Dataset, file_size: u64) -> Result<Vec<u64>, Error> {
    let shape = ds.shape().map_err(|e| loc.read_err(e))?;
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| loc.bad(format!("shape {shape:?} is implausibly large")))?;
    let element_size = ds.element_size().map_err(|e| loc.read_err(e))?;
    let bytes = elements.saturating_mul(element_size);
    if ds.filters().is_empty() && bytes > file_size {
        return Err(loc.bad(format!("shape {shape:?} needs {bytes} bytes but the file has only {file_size}")));
    }
    Ok(shape)
}

/// Reads a floating-point dataset of any width as f32. Integer or other datatypes are an error:
/// coordinates and descriptors stored as integers are not hloc's layout.
pub(crate) fn read_floats(loc: Loc<'_>, ds: &Dataset) -> Result<Vec<f32>, Error> {
    match ds.datatype().map_err(|e| loc.read_err(e))? {
        Datatype::FloatingPoint { size: 4 | 8, .. } => ds.read_f32().map_err(|e| loc.read_err(e)),
        Datatype::FloatingPoint { size: 2, byte_order, layout }
            if layout.exponent_size == 5 && layout.mantissa_size == 10 && layout.bit_offset == 0 =>
        {
            // hdf5-pure has no half-precision conversion: decode IEEE binary16 from the raw bytes.
            let raw = ds.read_raw().map_err(|e| loc.read_err(e))?;
            Ok(decode_f16(&raw, &byte_order))
        }
        other => {
            Err(loc.bad(format!("expected a floating-point dataset (16, 32 or 64 bits), found {other:?}")))
        }
    }
}

/// Reads an integer dataset of any width and signedness as i64.
pub(crate) fn read_ints(loc: Loc<'_>, ds: &Dataset) -> Result<Vec<i64>, Error> {
    match ds.datatype().map_err(|e| loc.read_err(e))? {
        Datatype::FixedPoint { .. } => ds.read_i64().map_err(|e| loc.read_err(e)),
        other => Err(loc.bad(format!("expected an integer dataset, found {other:?}"))),
    }
}

fn decode_f16(raw: &[u8], order: &DatatypeByteOrder) -> Vec<f32> {
    raw.chunks_exact(2)
        .map(|b| {
            let bits = match order {
                DatatypeByteOrder::BigEndian => u16::from_be_bytes([b[0], b[1]]),
                _ => u16::from_le_bytes([b[0], b[1]]),
            };
            f16_to_f32(bits)
        })
        .collect()
}

/// IEEE 754 binary16 to binary32, exact (every half value is representable as a float).
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000), -0.0);
    }
}
