//! Describing patches with a net, in batches: the bridge from pixels to the metrics.

use candle_core::{Device, Tensor};
use desdis_data::patch::{PATCH_LEN, PATCH_SIDE};
use desdis_models::nets::Net;

use crate::{Error, Result};

/// Describes `n` 32x32 patches given as floats in 0..1 (`n * 1024` values, row-major), `batch` at a
/// time, scaled to the pixel range the net's weights expect. Calls `on_batch(done)` after each batch
/// (for progress bars). Returns `n * D` descriptors, row after row.
pub fn describe_f32(
    net: &Net,
    patches: &[f32],
    batch: usize,
    device: &Device,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<f32>> {
    if batch == 0 {
        return Err(Error::InvalidArgument("batch size must be at least 1".into()));
    }
    if patches.is_empty() || !patches.len().is_multiple_of(PATCH_LEN) {
        return Err(Error::Shape { len: patches.len(), dim: PATCH_LEN });
    }
    let mut out = Vec::with_capacity(patches.len() / PATCH_LEN * net.arch().descriptor_size());
    let mut done = 0;
    for chunk in patches.chunks(batch * PATCH_LEN) {
        let n = chunk.len() / PATCH_LEN;
        let x = Tensor::from_slice(chunk, (n, 1, PATCH_SIDE, PATCH_SIDE), device)?;
        // The net scales the 0..1 patches to the range its weights expect.
        let y = net.describe_t(&x, false)?.descriptors;
        out.extend(y.flatten_all()?.to_vec1::<f32>()?);
        done += n;
        on_batch(done);
    }
    Ok(out)
}

/// [`describe_f32`] for 8-bit patches (0..255), as datasets store them.
pub fn describe_patches(net: &Net, patches: &[u8], batch: usize, device: &Device) -> Result<Vec<f32>> {
    let floats: Vec<f32> = patches.iter().map(|&p| f32::from(p) / 255.0).collect();
    describe_f32(net, &floats, batch, device, |_| {})
}
