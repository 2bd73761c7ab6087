//! `patchesNNNN.bmp` sheets: 1024x1024 grayscale, 16x16 patches of 64x64, row-major.

use crate::error::{DataError, Result};
use crate::patch::{PATCH_LEN, PATCH_SIDE};
use crate::resize::{downsample_area_2x, upsample_nearest_2x};
use image::codecs::bmp::BmpDecoder;
use image::{GrayImage, ImageDecoder};
use rayon::prelude::*;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// Side of a sheet in pixels.
pub const SHEET_SIDE: usize = 1024;
/// Side of a patch as stored in a sheet.
pub const SHEET_PATCH_SIDE: usize = 64;
/// Patches per sheet row.
const PER_ROW: usize = SHEET_SIDE / SHEET_PATCH_SIDE;
/// Patches per sheet.
pub const PER_SHEET: usize = PER_ROW * PER_ROW;

/// File name of sheet `index`.
pub fn sheet_name(index: usize) -> String {
    format!("patches{index:04}.bmp")
}

/// The sheet number in a file name like `patches0012.bmp`, if it is one.
fn sheet_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("patches")?.strip_suffix(".bmp")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The sheets of `dir` in file-name order, checking that they are numbered 0, 1, 2... without gaps.
pub fn list_sheets(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut sheets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(number) = sheet_number(&name) {
            sheets.push((name, number, entry.path()));
        }
    }
    sheets.sort();
    for (expected, (_, number, _)) in sheets.iter().enumerate() {
        if *number != expected {
            let missing = dir.join(sheet_name(expected));
            return Err(DataError::invalid(
                &missing,
                "missing sheet: the sheets must be numbered from 0 without gaps",
            ));
        }
    }
    Ok(sheets.into_iter().map(|(_, _, path)| path).collect())
}

/// Decodes the sheets into `out` (`count` patches of 32x32, area-averaged), in parallel.
pub fn decode_sheets(sheets: &[PathBuf], out: &mut [u8]) -> Result<()> {
    out.par_chunks_mut(PER_SHEET * PATCH_LEN)
        .zip(sheets.par_iter())
        .try_for_each(|(chunk, path)| decode_sheet(path, chunk))
}

/// Decodes the first `chunk.len() / PATCH_LEN` patches of one sheet.
fn decode_sheet(path: &Path, chunk: &mut [u8]) -> Result<()> {
    let gray = read_gray_sheet(path)?;
    if gray.width() as usize != SHEET_SIDE || gray.height() as usize != SHEET_SIDE {
        return Err(DataError::invalid(
            path,
            format!("sheet is {}x{}, expected {SHEET_SIDE}x{SHEET_SIDE}", gray.width(), gray.height()),
        ));
    }
    let pixels = gray.as_raw();
    let mut big = vec![0u8; SHEET_PATCH_SIDE * SHEET_PATCH_SIDE];
    for (j, patch) in chunk.chunks_exact_mut(PATCH_LEN).enumerate() {
        let (top, left) = ((j / PER_ROW) * SHEET_PATCH_SIDE, (j % PER_ROW) * SHEET_PATCH_SIDE);
        for y in 0..SHEET_PATCH_SIDE {
            let start = (top + y) * SHEET_SIDE + left;
            big[y * SHEET_PATCH_SIDE..(y + 1) * SHEET_PATCH_SIDE]
                .copy_from_slice(&pixels[start..start + SHEET_PATCH_SIDE]);
        }
        downsample_area_2x(&big, SHEET_PATCH_SIDE, patch);
    }
    Ok(())
}

/// Reads a sheet as 8-bit gray. The sheets are palette BMPs: decoding the palette indices and
/// mapping them through a 256-entry table is several times faster than expanding to RGB first.
fn read_gray_sheet(path: &Path) -> Result<GrayImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let mut decoder = BmpDecoder::new(Cursor::new(&bytes)).map_err(|e| DataError::image(path, e))?;
    let Some(palette) = decoder.get_palette().map(luma_table) else {
        let image = image::load_from_memory(&bytes).map_err(|e| DataError::image(path, e))?;
        return Ok(image.into_luma8());
    };
    decoder.set_indexed_color(true);
    let (w, h) = decoder.dimensions();
    // The header's size decides the allocation below: refuse anything but a sheet's size first.
    if (w as usize, h as usize) != (SHEET_SIDE, SHEET_SIDE) {
        return Err(DataError::invalid(
            path,
            format!("sheet is {w}x{h}, expected {SHEET_SIDE}x{SHEET_SIDE}"),
        ));
    }
    let mut indices = vec![0u8; decoder.total_bytes() as usize];
    decoder.read_image(&mut indices).map_err(|e| DataError::image(path, e))?;
    let values = indices.iter().map(|&i| palette.get(i as usize).copied().unwrap_or(0)).collect();
    GrayImage::from_raw(w, h, values)
        .ok_or_else(|| DataError::invalid(path, "decoded size does not match the header"))
}

/// Gray value of each palette entry, with the integer Rec. 709 luma weights the `image` crate
/// uses, so both decoding paths agree.
fn luma_table(palette: &[[u8; 3]]) -> Vec<u8> {
    palette
        .iter()
        .map(|&[r, g, b]| ((2126 * r as u32 + 7152 * g as u32 + 722 * b as u32) / 10000) as u8)
        .collect()
}

/// Writes `patches` (32x32 each) as sheets in `dir`, each pixel repeated 2x2 so that reading
/// them back with area averaging gives the same bytes. Unused slots of the last sheet are black.
pub fn write_sheets(dir: &Path, patches: &[u8]) -> Result<()> {
    patches.par_chunks(PER_SHEET * PATCH_LEN).enumerate().try_for_each(|(index, chunk)| {
        let path = dir.join(sheet_name(index));
        let sheet = render_sheet(chunk);
        image::save_buffer(&path, &sheet, SHEET_SIDE as u32, SHEET_SIDE as u32, image::ExtendedColorType::L8)
            .map_err(|e| DataError::image(&path, e))
    })
}

/// Deletes `patches<first>.bmp` and the sheets numbered after it.
pub fn remove_sheets_from(dir: &Path, first: usize) -> Result<()> {
    let mut index = first;
    loop {
        let path = dir.join(sheet_name(index));
        match std::fs::remove_file(&path) {
            Ok(()) => index += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DataError::io(&path, e)),
        }
    }
}

fn render_sheet(chunk: &[u8]) -> Vec<u8> {
    let mut sheet = vec![0u8; SHEET_SIDE * SHEET_SIDE];
    let mut big = vec![0u8; SHEET_PATCH_SIDE * SHEET_PATCH_SIDE];
    for (j, patch) in chunk.chunks_exact(PATCH_LEN).enumerate() {
        upsample_nearest_2x(patch, PATCH_SIDE, &mut big);
        let (top, left) = ((j / PER_ROW) * SHEET_PATCH_SIDE, (j % PER_ROW) * SHEET_PATCH_SIDE);
        for y in 0..SHEET_PATCH_SIDE {
            let start = (top + y) * SHEET_SIDE + left;
            sheet[start..start + SHEET_PATCH_SIDE]
                .copy_from_slice(&big[y * SHEET_PATCH_SIDE..(y + 1) * SHEET_PATCH_SIDE]);
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_numbers() {
        assert_eq!(sheet_number("patches0012.bmp"), Some(12));
        assert_eq!(sheet_number("patches.bmp"), None);
        assert_eq!(sheet_number("patches00a1.bmp"), None);
        assert_eq!(sheet_number("info.txt"), None);
        assert_eq!(sheet_name(3), "patches0003.bmp");
    }
}
