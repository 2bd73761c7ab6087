//! Scoring a net on an image sequence with ground-truth homographies: cut, describe, score.

use desdis_data::patch::PATCH_SIDE;
use desdis_data::resize::resize_bilinear_u8;
use desdis_data::sequence::{cut_patches, CutConfig, CutSet, Sequence};
use desdis_models::nets::Net;

use crate::describe::describe_patches;
use crate::{verification_pairs, DescriptorMatrix, ImageDescriptors, Result, RocCurve, SequenceScores};

/// Patches described per batch when scoring sequences.
const BATCH: usize = 256;

/// Cuts corresponding patches from every image of `seq` (keypoints of image 1 carried through the
/// homographies, frames jittered as `cut.jitter` says with `seed`), describes them with `net` and
/// scores image 1 against images 2..N.
pub fn evaluate_sequence(net: &Net, seq: &Sequence, cut: &CutConfig, seed: u64) -> Result<SequenceScores> {
    let cut_set = cut_patches(seq, cut, seed)?;
    evaluate_cut(net, &cut_set)
}

/// Scores `net` on patches already cut (see [`evaluate_sequence`]).
pub fn evaluate_cut(net: &Net, cut_set: &CutSet) -> Result<SequenceScores> {
    let (descriptors, ids) = describe_cut(net, cut_set)?;
    let (reference, targets) = image_descriptors(net, &descriptors, &ids)?;
    SequenceScores::compute(&reference, &targets)
}

/// The scores of [`evaluate_cut`] and the ROC curve of the verification pairs they come from,
/// e.g. for FPR-versus-recall plots.
pub fn evaluate_cut_with_roc(net: &Net, cut_set: &CutSet) -> Result<(SequenceScores, RocCurve)> {
    let (descriptors, ids) = describe_cut(net, cut_set)?;
    let (reference, targets) = image_descriptors(net, &descriptors, &ids)?;
    let pairs = verification_pairs(&reference, &targets)?;
    Ok((SequenceScores::compute(&reference, &targets)?, RocCurve::new(&pairs.distances, &pairs.labels)?))
}

/// Descriptors of every view of `cut_set` (one flat vector per view) and the point id of each row.
fn describe_cut(net: &Net, cut_set: &CutSet) -> Result<(Vec<Vec<f32>>, Vec<u64>)> {
    let ids: Vec<u64> = (0..cut_set.num_points() as u64).collect();
    let per_view: Vec<Vec<f32>> = cut_set
        .views
        .iter()
        .map(|view| views_at_32(view, cut_set.patch_size))
        .map(|patches| describe_patches(net, &patches, BATCH, net.device()))
        .collect::<Result<_>>()?;
    Ok((per_view, ids))
}

/// The reference image's descriptors and the target images'.
fn image_descriptors<'a>(
    net: &Net,
    per_view: &'a [Vec<f32>],
    ids: &'a [u64],
) -> Result<(ImageDescriptors<'a>, Vec<ImageDescriptors<'a>>)> {
    let dim = net.arch().descriptor_size();
    let mut images: Vec<ImageDescriptors> = per_view
        .iter()
        .map(|d| ImageDescriptors::new(DescriptorMatrix::new(d, dim)?, ids))
        .collect::<Result<_>>()?;
    if images.is_empty() {
        return Err(crate::Error::Empty("sequence images"));
    }
    let reference = images.remove(0);
    Ok((reference, images))
}

/// The patches of one view at the nets' 32x32 size (cutting at another size resizes bilinearly).
fn views_at_32(view: &[u8], size: usize) -> Vec<u8> {
    if size == PATCH_SIDE {
        return view.to_vec();
    }
    view.chunks(size * size).flat_map(|p| resize_bilinear_u8(p, size, size, PATCH_SIDE, PATCH_SIDE)).collect()
}
