//! Scoring a net on labelled patch pairs of a patch set (PhotoTour `m50_*.txt` files).

use candle_core::Device;
use desdis_data::patch::{Dataset, PatchSet};
use desdis_data::phototour::Pair;
use desdis_models::nets::Net;

use crate::describe::describe_patches;
use crate::{l2_distance, Error, LabelledPairs, Result};

/// Patches described per forward pass.
const BATCH: usize = 512;

/// Descriptor distances of `pairs` under `net`, each patch described once however many pairs
/// use it, and the pairs' labels.
pub fn pair_distances(net: &Net, set: &PatchSet, pairs: &[Pair], device: &Device) -> Result<LabelledPairs> {
    if pairs.is_empty() {
        return Err(Error::Empty("patch pairs"));
    }
    let mut used: Vec<u32> = pairs.iter().flat_map(|p| [p.a, p.b]).collect();
    used.sort_unstable();
    used.dedup();
    if let Some(&bad) = used.iter().find(|&&i| i as usize >= set.len()) {
        return Err(Error::InvalidArgument(format!(
            "pair uses patch {bad}, but the set holds {} patches",
            set.len()
        )));
    }
    let patches: Vec<u8> = used.iter().flat_map(|&i| set.patch(i as usize).iter().copied()).collect();
    debug_assert_eq!(patches.len(), used.len() * desdis_data::patch::PATCH_LEN);
    let desc = describe_patches(net, &patches, BATCH, device)?;
    let dim = net.arch().descriptor_size();
    let row = |i: u32| {
        let k = used.binary_search(&i).unwrap_or_default();
        &desc[k * dim..(k + 1) * dim]
    };
    Ok(LabelledPairs {
        distances: pairs.iter().map(|p| l2_distance(row(p.a), row(p.b))).collect(),
        labels: pairs.iter().map(|p| p.is_match).collect(),
    })
}
