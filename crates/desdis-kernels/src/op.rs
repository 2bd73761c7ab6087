//! The convolution as a candle custom op, so autograd calls our own backward kernels.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, WithDType};

use super::geometry::ConvGeometry;
use super::kernels::{backward, forward, Wanted};

/// `conv2d(x, w)` on contiguous f32 CPU tensors, with a first-order backward.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv2dF32 {
    pub stride: usize,
    pub padding: usize,
}

/// The elements of a contiguous CPU tensor's storage, shared by all the custom ops; `op` names
/// the op in the error.
pub(crate) fn contiguous<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op}: expected a contiguous tensor, got strides {:?}", layout.stride())
    };
    Ok(&storage.as_slice::<T>()?[start..end])
}

/// [`contiguous`] for the f32-only ops (convolution, batch norm, FRN, activations).
pub(super) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    contiguous(storage, layout, "desdis op")
}

impl CustomOp2 for Conv2dF32 {
    fn name(&self) -> &'static str {
        "desdis-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let y = forward(&g, contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?);
        Ok((CpuStorage::F32(y), g.output_shape()))
    }

    /// Gradients for `x` and `w`, each only if that argument is tracked. The returned tensors are
    /// plain values, so gradients of gradients are not supported.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (dy_storage, dy_layout) = dy.storage_and_layout();
        let Storage::Cpu(dys) = &*dy_storage else { bail!("desdis conv2d: backward expects CPU tensors") };
        conv_gradients(self.stride, self.padding, x, w, contiguous_f32(dys, dy_layout)?)
    }
}

/// Gradients of `conv2d(x, w)` for `x` and `w` given the output gradient `dy`, each only if that
/// argument is tracked. The returned tensors are plain values (no second order).
pub(super) fn conv_gradients(
    stride: usize,
    padding: usize,
    x: &Tensor,
    w: &Tensor,
    dy: &[f32],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let g = ConvGeometry::new(x.dims(), w.dims(), stride, padding)?;
    let wanted = Wanted { input: x.track_op(), weight: w.track_op() };
    let grads = {
        let (x_storage, x_layout) = x.storage_and_layout();
        let (w_storage, w_layout) = w.storage_and_layout();
        let (Storage::Cpu(xs), Storage::Cpu(ws)) = (&*x_storage, &*w_storage) else {
            bail!("desdis conv2d: backward expects CPU tensors")
        };
        backward(&g, contiguous_f32(xs, x_layout)?, contiguous_f32(ws, w_layout)?, dy, wanted)
    };
    let to_tensor = |data: Option<Vec<f32>>, like: &Tensor| {
        data.map(|d| Tensor::from_vec(d, like.shape(), like.device())).transpose()
    };
    Ok((to_tensor(grads.input, x)?, to_tensor(grads.weight, w)?))
}
