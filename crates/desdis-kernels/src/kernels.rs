//! The f32 CPU convolution kernels: im2col + gemm per image, parallel over the batch.
//!
//! Each rayon task unfolds one image into its patch matrix (in thread-local scratch) and runs
//! single-threaded gemms on it. Parallelising over images rather than inside each image's gemm
//! keeps each thread's patch matrix in its own cache and needs no synchronisation: on 2 threads
//! it ran HardNet's forward layers 2-3x faster than a 2-thread gemm per image. Grouping several
//! images into one wider gemm was also tried, and was no faster.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::im2col::{col2im, im2col, padded_len};
use super::matmul::{matmul, Mat, MatMut, Write};
use super::scratch::with_scratch;
use super::winograd;

/// Chunks of images per thread in the backward pass: more than one so a thread slowed by other
/// work on the machine does not hold everyone up, few so the per-chunk weight-gradient partial
/// sums stay cheap.
const BACKWARD_CHUNKS_PER_THREAD: usize = 4;

/// Distance between the rows of an image's patch matrix. Rows are padded so that their distance
/// is not a multiple of a large power of two (1024 pixels = 4 KiB, say): gemm walks these rows
/// side by side, and addresses a power of two apart compete for the same cache sets. On
/// HardNet's 32x32 layer this made the weight gradient 2.8x faster.
fn col_row_stride(g: &ConvGeometry) -> usize {
    g.out_pixels().next_multiple_of(16) + 16
}

/// The convolution of a batch.
///
/// # Shapes
/// - `x`: `(batch, c_in, h_in, w_in)`, `w`: `(c_out, c_in, k, k)`, returns `(batch, c_out, h_out, w_out)`
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    if g.covers_whole_input() {
        return whole_input_forward(g, x, w);
    }
    if winograd::applies(g) {
        return winograd::forward(g, x, w);
    }
    let mut y = vec![0.0; g.batch * g.out_image_len()];
    y.par_chunks_mut(g.out_image_len())
        .zip(x.par_chunks(g.image_len()))
        .for_each(|(y_image, x_image)| forward_image(g, w, x_image, y_image));
    y
}

/// Forward of one image: `Y = W · im2col(x)`.
fn forward_image(g: &ConvGeometry, w: &[f32], x_image: &[f32], y_image: &mut [f32]) {
    let stride = col_row_stride(g);
    with_scratch(g.patch_len() * stride + padded_len(g), |scratch| {
        let (col, padded) = scratch.split_at_mut(g.patch_len() * stride);
        im2col(g, x_image, stride, padded, col);
        let col = Mat::with_row_stride(col, g.patch_len(), g.out_pixels(), stride);
        let weight = Mat::row_major(w, g.c_out, g.patch_len());
        let y = MatMut::row_major(y_image, g.c_out, g.out_pixels());
        matmul(y, weight, col, Write::Overwrite, Parallelism::None);
    })
}

/// Gradients of a convolution's output with respect to its input and weight; each is computed
/// only if asked for.
#[derive(Debug)]
pub(crate) struct Gradients {
    /// `(batch, c_in, h_in, w_in)`
    pub input: Option<Vec<f32>>,
    /// `(c_out, c_in, k, k)`
    pub weight: Option<Vec<f32>>,
}

/// Which gradients [`backward`] computes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    pub input: bool,
    pub weight: bool,
}

/// Back-propagates `dy` through the convolution of `x` with `w`.
///
/// # Shapes
/// - `x`: `(batch, c_in, h_in, w_in)`, `w`: `(c_out, c_in, k, k)`, `dy`: `(batch, c_out, h_out, w_out)`
pub(crate) fn backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], wanted: Wanted) -> Gradients {
    if g.covers_whole_input() {
        return whole_input_backward(g, x, w, dy, wanted);
    }
    if winograd::applies(g) {
        return Gradients {
            input: wanted.input.then(|| winograd::input_gradient(g, w, dy)),
            weight: wanted.weight.then(|| winograd::weight_gradient(g, x, dy)),
        };
    }
    let chunks = (rayon::current_num_threads() * BACKWARD_CHUNKS_PER_THREAD).clamp(1, g.batch.max(1));
    let chunk_images = g.batch.div_ceil(chunks).max(1);
    // No zero fill: `col2im` writes every element of each image's gradient.
    let dx_len = g.batch * g.image_len();
    let mut dx: Option<Vec<f32>> = wanted.input.then(|| Vec::with_capacity(dx_len));
    let dx_chunks: Vec<Option<&mut [MaybeUninit<f32>]>> = match dx.as_mut() {
        Some(dx) => {
            let slots = &mut dx.spare_capacity_mut()[..dx_len];
            if cfg!(debug_assertions) {
                // Debug builds (the tests) start from NaN, so an element left unwritten would show.
                slots.iter_mut().for_each(|slot| {
                    slot.write(f32::NAN);
                });
            }
            slots.chunks_mut(chunk_images * g.image_len()).map(Some).collect()
        }
        None => (0..g.batch.div_ceil(chunk_images)).map(|_| None).collect(),
    };
    let partials: Vec<Option<Vec<f32>>> = dx_chunks
        .into_par_iter()
        .zip(x.par_chunks(chunk_images * g.image_len()))
        .zip(dy.par_chunks(chunk_images * g.out_image_len()))
        .map(|((dx_chunk, x_chunk), dy_chunk)| {
            let mut dw = wanted.weight.then(|| vec![0.0; g.weight_len()]);
            backward_chunk(g, w, x_chunk, dy_chunk, dx_chunk, dw.as_deref_mut());
            dw
        })
        .collect();
    if let Some(dx) = dx.as_mut() {
        // SAFETY: the chunks cover all `dx_len` slots, `backward_chunk` hands each image of a
        // chunk to `backward_image`, and its `col2im` writes every element of the image.
        unsafe { dx.set_len(dx_len) };
    }
    let dw = sum_in_order(partials.into_iter().flatten().collect())
        .or_else(|| wanted.weight.then(|| vec![0.0; g.weight_len()])); // empty batch
    Gradients { input: dx, weight: dw }
}

/// Back-propagates one chunk of images: writes their input gradients into `dx_chunk` and adds
/// their weight gradient to `dw`, where given.
fn backward_chunk(
    g: &ConvGeometry,
    w: &[f32],
    x_chunk: &[f32],
    dy_chunk: &[f32],
    dx_chunk: Option<&mut [MaybeUninit<f32>]>,
    mut dw: Option<&mut [f32]>,
) {
    let mut dx_images = dx_chunk.map(|dx| dx.chunks_exact_mut(g.image_len()));
    let x_images = x_chunk.chunks_exact(g.image_len());
    for (x_image, dy_image) in x_images.zip(dy_chunk.chunks_exact(g.out_image_len())) {
        let dx_image = dx_images.as_mut().map(|images| images.next().expect("one dx image per x image"));
        backward_image(g, w, x_image, dy_image, dx_image, dw.as_deref_mut());
    }
}

/// Back-propagates one image: `dW += dY · im2col(x)ᵀ`, and `dcol = Wᵀ · dY` folded back onto
/// `dx_image`.
fn backward_image(
    g: &ConvGeometry,
    w: &[f32],
    x_image: &[f32],
    dy_image: &[f32],
    dx_image: Option<&mut [MaybeUninit<f32>]>,
    dw: Option<&mut [f32]>,
) {
    let (patch_len, pixels, stride) = (g.patch_len(), g.out_pixels(), col_row_stride(g));
    let dy = Mat::row_major(dy_image, g.c_out, pixels);
    with_scratch(patch_len * stride + padded_len(g), |scratch| {
        let (col, padded) = scratch.split_at_mut(patch_len * stride);
        if let Some(dw) = dw {
            im2col(g, x_image, stride, padded, col);
            let col = Mat::with_row_stride(col, patch_len, pixels, stride);
            let dw = MatMut::row_major(dw, g.c_out, patch_len);
            matmul(dw, dy, col.t(), Write::Accumulate, Parallelism::None);
        }
        if let Some(dx_image) = dx_image {
            let weight = Mat::row_major(w, g.c_out, patch_len);
            let dcol = MatMut::with_row_stride(col, patch_len, pixels, stride);
            matmul(dcol, weight.t(), dy, Write::Overwrite, Parallelism::None);
            col2im(g, col, stride, padded, dx_image);
        }
    })
}

/// Element-wise sum of the per-chunk partial sums, added in chunk order (a reduction tree
/// shaped by rayon's scheduling would round differently from run to run); `None` if empty.
pub(crate) fn sum_in_order(partials: Vec<Vec<f32>>) -> Option<Vec<f32>> {
    let mut partials = partials.into_iter();
    let mut total = partials.next()?;
    for partial in partials {
        total.iter_mut().zip(&partial).for_each(|(t, p)| *t += p);
    }
    Some(total)
}

/// All threads for one big gemm (used where a single matmul covers the whole batch).
fn all_threads() -> Parallelism {
    Parallelism::Rayon(rayon::current_num_threads())
}

/// Forward of a conv whose kernel covers the whole input: `Y = X · Wᵀ` with each image flattened.
///
/// The output channels are split across threads (each packs only its share of the weights, and
/// the products are interleaved afterwards): on HardNet's 8x8 head this ran 1.5x faster than one
/// gemm parallelised internally.
///
/// # Shapes
/// - `x`: `(batch, patch_len)`, `w`: `(c_out, patch_len)`, returns `(batch, c_out)`
fn whole_input_forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let channels_per_part = g.c_out.div_ceil(rayon::current_num_threads()).max(1);
    let x = Mat::row_major(x, g.batch, g.patch_len());
    let parts: Vec<(usize, Vec<f32>)> = w
        .par_chunks(channels_per_part * g.patch_len())
        .map(|w_part| {
            let channels = w_part.len() / g.patch_len();
            let mut y_part = vec![0.0; g.batch * channels];
            let w_part = Mat::row_major(w_part, channels, g.patch_len());
            let dst = MatMut::row_major(&mut y_part, g.batch, channels);
            matmul(dst, x, w_part.t(), Write::Overwrite, Parallelism::None);
            (channels, y_part)
        })
        .collect();
    let mut y = vec![0.0; g.batch * g.c_out];
    for (part, (channels, y_part)) in parts.iter().enumerate() {
        let channels = *channels;
        for (y_row, part_row) in y.chunks_exact_mut(g.c_out).zip(y_part.chunks_exact(channels)) {
            y_row[part * channels_per_part..][..channels].copy_from_slice(part_row);
        }
    }
    y
}

/// Backward of [`whole_input_forward`]: `dX = dY · W`, `dW = dYᵀ · X`.
fn whole_input_backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], wanted: Wanted) -> Gradients {
    let dy = Mat::row_major(dy, g.batch, g.c_out);
    let input = wanted.input.then(|| {
        let mut dx = vec![0.0; g.batch * g.patch_len()];
        let w = Mat::row_major(w, g.c_out, g.patch_len());
        matmul(MatMut::row_major(&mut dx, g.batch, g.patch_len()), dy, w, Write::Overwrite, all_threads());
        dx
    });
    let weight = wanted.weight.then(|| {
        let mut dw = vec![0.0; g.weight_len()];
        let x = Mat::row_major(x, g.batch, g.patch_len());
        matmul(
            MatMut::row_major(&mut dw, g.c_out, g.patch_len()),
            dy.t(),
            x,
            Write::Overwrite,
            all_threads(),
        );
        dw
    });
    Gradients { input, weight }
}
