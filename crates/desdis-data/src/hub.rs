//! Patch data sets published as parquet files on the Hugging Face Hub (feature `hub-datasets`).
//!
//! Each row holds one patch: an image column (encoded PNG/BMP bytes, either directly or as the
//! `{bytes, path}` struct the `datasets` library writes) and an integer column with the patch's
//! 3D point id. Patches of 32x32 are kept, 64x64 are area-averaged, other sizes resized bilinearly.

use crate::error::{DataError, Result};
use crate::patch::{PatchSet, PATCH_SIDE};
use crate::resize::{downsample_area_2x, resize_bilinear_u8};
use candle_datasets::hub::{from_hub, FileReader};
use parquet::file::reader::SerializedFileReader;
use parquet::record::{Field, Row};
use std::path::Path;

/// Names of the columns to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubColumns {
    /// Column with the encoded patch image.
    pub image: String,
    /// Column with the 3D point id.
    pub point_id: String,
}

impl Default for HubColumns {
    fn default() -> Self {
        HubColumns { image: "image".into(), point_id: "label".into() }
    }
}

/// Downloads (or reuses from the Hub cache) every parquet file of `dataset_id` and reads them.
pub fn load_from_hub(dataset_id: &str, columns: &HubColumns) -> Result<PatchSet> {
    let remote = |reason: String| DataError::Remote { name: dataset_id.to_string(), reason };
    let client = hf_hub_v1::HFClientSync::new().map_err(|e| remote(e.to_string()))?;
    let readers = from_hub(&client, dataset_id.to_string()).map_err(|e| remote(e.to_string()))?;
    let mut set = PatchSet::default();
    for reader in readers {
        read_rows(reader, Path::new(dataset_id), columns, &mut set)?;
    }
    Ok(set)
}

/// Reads one local parquet file of the same layout.
pub fn load_parquet_file(path: &Path, columns: &HubColumns) -> Result<PatchSet> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| DataError::invalid(path, format!("not a parquet file: {e}")))?;
    let mut set = PatchSet::default();
    read_rows(reader, path, columns, &mut set)?;
    Ok(set)
}

fn read_rows<R: FileReader>(
    reader: R,
    origin: &Path,
    columns: &HubColumns,
    set: &mut PatchSet,
) -> Result<()> {
    let rows = reader.get_row_iter(None).map_err(|e| DataError::invalid(origin, e.to_string()))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| DataError::parse(origin, i + 1, e.to_string()))?;
        let (patch, id) = patch_of_row(&row, columns).map_err(|m| DataError::parse(origin, i + 1, m))?;
        set.patches.extend_from_slice(&patch);
        set.point_ids.push(id);
    }
    Ok(())
}

/// The 32x32 patch and point id of a row, or what is missing.
fn patch_of_row(row: &Row, columns: &HubColumns) -> std::result::Result<(Vec<u8>, u32), String> {
    let field = |name: &str| row.get_column_iter().find(|(n, _)| n.as_str() == name).map(|(_, f)| f);
    let image = field(&columns.image).ok_or_else(|| format!("no column `{}`", columns.image))?;
    let bytes =
        image_bytes(image).ok_or_else(|| format!("column `{}` holds no image bytes", columns.image))?;
    let id = field(&columns.point_id)
        .and_then(as_u32)
        .ok_or_else(|| format!("column `{}` holds no point id", columns.point_id))?;
    let gray = image::load_from_memory(bytes).map_err(|e| format!("undecodable image: {e}"))?.into_luma8();
    Ok((to_patch(gray.as_raw(), gray.width() as usize, gray.height() as usize), id))
}

fn image_bytes(field: &Field) -> Option<&[u8]> {
    match field {
        Field::Bytes(b) => Some(b.data()),
        Field::Group(group) => group.get_column_iter().find_map(|(name, f)| match f {
            Field::Bytes(b) if name == "bytes" => Some(b.data()),
            _ => None,
        }),
        _ => None,
    }
}

fn as_u32(field: &Field) -> Option<u32> {
    let value: i64 = match field {
        Field::Byte(v) => *v as i64,
        Field::Short(v) => *v as i64,
        Field::Int(v) => *v as i64,
        Field::Long(v) => *v,
        Field::UByte(v) => *v as i64,
        Field::UShort(v) => *v as i64,
        Field::UInt(v) => *v as i64,
        Field::ULong(v) => i64::try_from(*v).ok()?,
        _ => return None,
    };
    u32::try_from(value).ok()
}

fn to_patch(pixels: &[u8], w: usize, h: usize) -> Vec<u8> {
    match (w, h) {
        (PATCH_SIDE, PATCH_SIDE) => pixels.to_vec(),
        (64, 64) => {
            let mut out = vec![0u8; PATCH_SIDE * PATCH_SIDE];
            downsample_area_2x(pixels, 64, &mut out);
            out
        }
        _ => resize_bilinear_u8(pixels, w, h, PATCH_SIDE, PATCH_SIDE),
    }
}
