//! HPatches: patch strips (`<seq>/<ref|e1..e5|h1..h5|t1..t5>.png`, 65x65 patches stacked
//! vertically) and the official train/test splits.

mod splits;
mod strip;

pub use splits::{Split, Splits};
pub use strip::{read_strip, write_strip, HPatchesSequence, Resize, Strip, STRIP_NAMES, STRIP_PATCH_SIDE};
