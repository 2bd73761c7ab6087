//! The photos bundled with the crate (CC0 / public domain, see `data/images/LICENSES.txt`).

use crate::error::{DataError, Result};
use image::GrayImage;
use std::path::Path;

/// A bundled photo: its name and PNG bytes.
#[derive(Debug, Clone, Copy)]
pub struct Photo {
    /// File stem, e.g. `brick`.
    pub name: &'static str,
    /// PNG file contents.
    pub png: &'static [u8],
}

macro_rules! photo {
    ($name:literal) => {
        Photo { name: $name, png: include_bytes!(concat!("../../../../data/images/", $name, ".png")) }
    };
}

/// Photos the default training set is generated from.
pub const TRAINING_PHOTOS: [Photo; 10] = [
    photo!("astronaut"),
    photo!("brick"),
    photo!("cell"),
    photo!("chelsea"),
    photo!("clock_motion"),
    photo!("coins"),
    photo!("grass"),
    photo!("gravel"),
    photo!("ihc"),
    photo!("text"),
];

/// Photos never used for training: the first for generated test sequences
/// ([`super::held_out_sequence`]), the rest for validation sets ([`super::EmbeddedConfig::validation`]).
pub const HELD_OUT_PHOTOS: [Photo; 2] = [photo!("camera"), photo!("coffee")];

impl Photo {
    /// Decodes the photo as 8-bit grayscale.
    pub fn decode(&self) -> Result<GrayImage> {
        let image = image::load_from_memory(self.png)
            .map_err(|e| DataError::image(Path::new(&format!("data/images/{}.png", self.name)), e))?;
        Ok(image.into_luma8())
    }
}

/// The bundled photo called `name`, training or held out.
pub fn photo(name: &str) -> Option<Photo> {
    TRAINING_PHOTOS.iter().chain(&HELD_OUT_PHOTOS).find(|p| p.name == name).copied()
}
