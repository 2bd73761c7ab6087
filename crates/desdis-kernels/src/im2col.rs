//! Unfolding an image into the patch matrix a convolution multiplies ("im2col"), and the
//! adjoint that folds a patch-matrix gradient back onto the image ("col2im").
//!
//! Both work on a copy of the image with its zero padding written out, so the inner loops copy
//! whole output rows with no bounds logic (and, at stride 2, with no scalar tails on HardNet's
//! even widths).

use std::mem::MaybeUninit;

use super::geometry::ConvGeometry;

/// Elements of the scratch buffer [`im2col`] and [`col2im`] need for the padded image.
pub(crate) fn padded_len(g: &ConvGeometry) -> usize {
    g.c_in * padded_height(g) * padded_width(g)
}

/// An element [`col2im`] can write its result into: a plain `f32`, or one not yet initialised
/// (so a fresh gradient buffer need not be zero-filled first).
pub(crate) trait Slot {
    fn set(&mut self, value: f32);
}

impl Slot for f32 {
    fn set(&mut self, value: f32) {
        *self = value;
    }
}

impl Slot for MaybeUninit<f32> {
    fn set(&mut self, value: f32) {
        self.write(value);
    }
}

fn padded_height(g: &ConvGeometry) -> usize {
    g.h_in + 2 * g.padding
}

fn padded_width(g: &ConvGeometry) -> usize {
    g.w_in + 2 * g.padding
}

/// Unfolds one image into its patch matrix, overwriting every element of the matrix's rows (not
/// the gaps between them). `buffer` (of [`padded_len`]) holds the padded copy of the image.
///
/// # Shapes
/// - `image`: `(c_in, h_in, w_in)`; `col`: `(c_in * kernel * kernel, h_out * w_out)` with rows
///   `row_stride` apart, row `(c, ky, kx)`, column `(oy, ox)`.
pub(crate) fn im2col(
    g: &ConvGeometry,
    image: &[f32],
    row_stride: usize,
    buffer: &mut [f32],
    col: &mut [f32],
) {
    debug_assert_eq!(image.len(), g.image_len());
    let padded = if g.padding == 0 {
        image
    } else {
        pad(g, image, buffer);
        &*buffer
    };
    let row_step = g.stride * padded_width(g);
    for_each_tap(g, |row, offset| {
        let col_row = &mut col[row * row_stride..][..g.out_pixels()];
        gather_tap(g.stride, g.w_out, row_step, col_row, &padded[offset..]);
    });
}

/// Folds a patch-matrix gradient back onto the image it was unfolded from (the adjoint of
/// [`im2col`]), writing every element of `image_grad`; gradients of padding positions are
/// dropped. `buffer` (of [`padded_len`]) accumulates the padded gradient.
///
/// # Shapes
/// - `col`: `(c_in * kernel * kernel, h_out * w_out)` with rows `row_stride` apart,
///   `image_grad`: `(c_in, h_in, w_in)`
pub(crate) fn col2im(
    g: &ConvGeometry,
    col: &[f32],
    row_stride: usize,
    buffer: &mut [f32],
    image_grad: &mut [impl Slot],
) {
    debug_assert_eq!(image_grad.len(), g.image_len());
    let padded = &mut buffer[..padded_len(g)];
    padded.fill(0.0);
    let row_step = g.stride * padded_width(g);
    for_each_tap(g, |row, offset| {
        let col_row = &col[row * row_stride..][..g.out_pixels()];
        scatter_add_tap(g.stride, g.w_out, row_step, col_row, &mut padded[offset..]);
    });
    unpad(g, padded, image_grad);
}

/// Calls `f(patch_row, offset)` for every patch-matrix row `(c, ky, kx)`, in the order of the
/// weight's last three axes, with `offset` the padded-image index that output pixel `(0, 0)`
/// reads for that row.
fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize)) {
    let (height, width) = (padded_height(g), padded_width(g));
    let mut row = 0;
    for channel in 0..g.c_in {
        for ky in 0..g.kernel {
            for kx in 0..g.kernel {
                f(row, channel * height * width + ky * width + kx);
                row += 1;
            }
        }
    }
}

/// Writes `image` with `g.padding` zeros around each channel plane into `padded`.
fn pad(g: &ConvGeometry, image: &[f32], padded: &mut [f32]) {
    let (p, width) = (g.padding, padded_width(g));
    let planes = padded.chunks_exact_mut(padded_height(g) * width);
    for (padded_plane, plane) in planes.zip(image.chunks_exact(g.h_in * g.w_in)) {
        let (top, rest) = padded_plane.split_at_mut(p * width);
        let (middle, bottom) = rest.split_at_mut(g.h_in * width);
        top.fill(0.0);
        bottom.fill(0.0);
        for (padded_row, row) in middle.chunks_exact_mut(width).zip(plane.chunks_exact(g.w_in)) {
            padded_row[..p].fill(0.0);
            padded_row[p..p + g.w_in].copy_from_slice(row);
            padded_row[p + g.w_in..].fill(0.0);
        }
    }
}

/// Copies the interior of each padded channel plane into `image`, every element of it.
fn unpad(g: &ConvGeometry, padded: &[f32], image: &mut [impl Slot]) {
    let (p, width) = (g.padding, padded_width(g));
    let planes = padded.chunks_exact(padded_height(g) * width);
    for (padded_plane, plane) in planes.zip(image.chunks_exact_mut(g.h_in * g.w_in)) {
        let middle = &padded_plane[p * width..][..g.h_in * width];
        for (padded_row, row) in middle.chunks_exact(width).zip(plane.chunks_exact_mut(g.w_in)) {
            row.iter_mut().zip(&padded_row[p..p + g.w_in]).for_each(|(slot, &v)| slot.set(v));
        }
    }
}

/// One patch-matrix row: `col_row[oy * w_out + ox] = src[oy * row_step + ox * stride]`.
///
/// HardNet's rows are 8 to 32 pixels wide (the DesDis students' 4 to 16): a copy call per output row costs more than the copy.
/// At the common widths and strides the compiler gets the row length as a constant and turns each
/// row into a few vector moves (shuffles at stride 2).
fn gather_tap(stride: usize, w_out: usize, row_step: usize, col_row: &mut [f32], src: &[f32]) {
    let done = match (stride, w_out) {
        (1, 4) => gather_tap_fixed::<1, 4>(row_step, col_row, src),
        (1, 8) => gather_tap_fixed::<1, 8>(row_step, col_row, src),
        (1, 16) => gather_tap_fixed::<1, 16>(row_step, col_row, src),
        (1, 32) => gather_tap_fixed::<1, 32>(row_step, col_row, src),
        (2, 4) => gather_tap_fixed::<2, 4>(row_step, col_row, src),
        (2, 8) => gather_tap_fixed::<2, 8>(row_step, col_row, src),
        (2, 16) => gather_tap_fixed::<2, 16>(row_step, col_row, src),
        (2, 32) => gather_tap_fixed::<2, 32>(row_step, col_row, src),
        _ => false,
    };
    if !done {
        for (oy, out_row) in col_row.chunks_exact_mut(w_out).enumerate() {
            let src = &src[oy * row_step..];
            match stride {
                1 => out_row.copy_from_slice(&src[..w_out]),
                _ => out_row.iter_mut().zip(src.iter().step_by(stride)).for_each(|(d, &s)| *d = s),
            }
        }
    }
}

/// [`gather_tap`] at a constant stride and width; `false` (and nothing written) when the last
/// row's whole `STRIDE * W` window does not fit in `src`.
fn gather_tap_fixed<const STRIDE: usize, const W: usize>(
    row_step: usize,
    col_row: &mut [f32],
    src: &[f32],
) -> bool {
    let rows = col_row.len() / W;
    if rows == 0 || src.len() < (rows - 1) * row_step + STRIDE * W {
        return false;
    }
    for (oy, out_row) in col_row.chunks_exact_mut(W).enumerate() {
        let window = &src[oy * row_step..][..W * STRIDE];
        for ox in 0..W {
            out_row[ox] = window[ox * STRIDE];
        }
    }
    true
}

/// The adjoint of [`gather_tap`]: `dst[oy * row_step + ox * stride] += col_row[oy * w_out + ox]`.
fn scatter_add_tap(stride: usize, w_out: usize, row_step: usize, col_row: &[f32], dst: &mut [f32]) {
    let done = match (stride, w_out) {
        (1, 4) => scatter_add_tap_fixed::<1, 4>(row_step, col_row, dst),
        (1, 8) => scatter_add_tap_fixed::<1, 8>(row_step, col_row, dst),
        (1, 16) => scatter_add_tap_fixed::<1, 16>(row_step, col_row, dst),
        (1, 32) => scatter_add_tap_fixed::<1, 32>(row_step, col_row, dst),
        (2, 4) => scatter_add_tap_fixed::<2, 4>(row_step, col_row, dst),
        (2, 8) => scatter_add_tap_fixed::<2, 8>(row_step, col_row, dst),
        (2, 16) => scatter_add_tap_fixed::<2, 16>(row_step, col_row, dst),
        (2, 32) => scatter_add_tap_fixed::<2, 32>(row_step, col_row, dst),
        _ => false,
    };
    if !done {
        for (oy, in_row) in col_row.chunks_exact(w_out).enumerate() {
            let dst = &mut dst[oy * row_step..];
            dst.iter_mut().step_by(stride).zip(in_row).for_each(|(d, &s)| *d += s);
        }
    }
}

/// [`scatter_add_tap`] at a constant stride and width, as [`gather_tap_fixed`].
fn scatter_add_tap_fixed<const STRIDE: usize, const W: usize>(
    row_step: usize,
    col_row: &[f32],
    dst: &mut [f32],
) -> bool {
    let rows = col_row.len() / W;
    if rows == 0 || dst.len() < (rows - 1) * row_step + STRIDE * W {
        return false;
    }
    for (oy, in_row) in col_row.chunks_exact(W).enumerate() {
        let window = &mut dst[oy * row_step..][..W * STRIDE];
        for ox in 0..W {
            window[ox * STRIDE] += in_row[ox];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense patch matrix of one image.
    fn unfold(g: &ConvGeometry, x: &[f32]) -> Vec<f32> {
        let mut col = vec![f32::NAN; g.col_len()];
        im2col(g, x, g.out_pixels(), &mut vec![f32::NAN; padded_len(g)], &mut col);
        col
    }

    /// Input gradient of one image from a dense patch-matrix gradient.
    fn fold(g: &ConvGeometry, col: &[f32]) -> Vec<f32> {
        let mut image = vec![f32::NAN; g.image_len()];
        col2im(g, col, g.out_pixels(), &mut vec![f32::NAN; padded_len(g)], &mut image);
        image
    }

    /// `<im2col(x), c> == <x, col2im(c)>` for all x, c: the fold is the unfold's adjoint.
    #[test]
    fn col2im_is_adjoint_of_im2col() {
        for (stride, padding, kernel) in [(1, 1, 3), (2, 1, 3), (3, 2, 5), (1, 0, 2), (2, 0, 3)] {
            let g = ConvGeometry::new(&[1, 2, 7, 6], &[1, 2, kernel, kernel], stride, padding).unwrap();
            let x: Vec<f32> = (0..g.image_len()).map(|i| (i as f32 * 0.37).sin()).collect();
            let c: Vec<f32> = (0..g.col_len()).map(|i| (i as f32 * 0.91).cos()).collect();
            let lhs: f32 = unfold(&g, &x).iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&fold(&g, &c)).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-4, "stride {stride} padding {padding}: {lhs} vs {rhs}");
        }
    }

    /// Padded rows hold the same values as dense ones, and the gaps are neither written nor read.
    #[test]
    fn padded_rows_match_dense_rows() {
        let g = ConvGeometry::new(&[1, 2, 7, 5], &[1, 2, 3, 3], 2, 1).unwrap();
        let x: Vec<f32> = (0..g.image_len()).map(|i| i as f32).collect();
        let dense = unfold(&g, &x);
        let stride = g.out_pixels() + 3;
        let mut padded = vec![f32::NAN; g.patch_len() * stride];
        im2col(&g, &x, stride, &mut vec![0.0; padded_len(&g)], &mut padded);
        for (dense_row, padded_row) in dense.chunks(g.out_pixels()).zip(padded.chunks(stride)) {
            assert_eq!(dense_row, &padded_row[..g.out_pixels()]);
            assert!(padded_row[g.out_pixels()..].iter().all(|v| v.is_nan()));
        }
        let mut folded = vec![0.0; g.image_len()];
        col2im(&g, &padded, stride, &mut vec![0.0; padded_len(&g)], &mut folded);
        assert_eq!(folded, fold(&g, &dense));
    }

    #[test]
    fn im2col_reads_the_right_pixels() {
        // One 2x3 channel, kernel 2, stride 1, padding 1: 4 taps x (3x4) output pixels.
        let g = ConvGeometry::new(&[1, 1, 2, 3], &[1, 1, 2, 2], 1, 1).unwrap();
        let x = [1., 2., 3., 4., 5., 6.];
        #[rustfmt::skip]
        let expected = [
            0., 0., 0., 0.,  0., 1., 2., 3.,  0., 4., 5., 6., // tap (0, 0)
            0., 0., 0., 0.,  1., 2., 3., 0.,  4., 5., 6., 0., // tap (0, 1)
            0., 1., 2., 3.,  0., 4., 5., 6.,  0., 0., 0., 0., // tap (1, 0)
            1., 2., 3., 0.,  4., 5., 6., 0.,  0., 0., 0., 0., // tap (1, 1)
        ];
        assert_eq!(unfold(&g, &x), expected);
    }

    #[test]
    fn col2im_drops_padding_and_sums_overlaps() {
        // 3x3 kernel, stride 2, padding 1 on a 1x5 image: one output row of 3 pixels, and output
        // pixel ox reads input column 2 ox + kx - 1 of the middle kernel row.
        let g = ConvGeometry::new(&[1, 1, 1, 5], &[1, 1, 3, 3], 2, 1).unwrap();
        assert_eq!((g.h_out, g.w_out), (1, 3));
        let padding_rows = [1000.0; 9]; // kernel rows 0 and 2 only ever read padding
        #[rustfmt::skip]
        let col: Vec<f32> = [
            &padding_rows[..],
            &[1., 2., 3.,  10., 20., 30.,  100., 200., 300.],
            &padding_rows[..],
        ].concat();
        // Column -1 (gets 1) and column 5 (gets 300) are padding.
        assert_eq!(fold(&g, &col), [10., 100. + 2., 20., 200. + 3., 30.]);
    }

    /// The constant-width copies agree with the plain strided loops, element for element, at
    /// every (stride, width) they are compiled for, and decline when the last window would run
    /// past the buffer.
    #[test]
    fn fixed_width_taps_match_the_generic_loops() {
        for (stride, w_out) in [(1, 4), (1, 8), (1, 16), (1, 32), (2, 4), (2, 8), (2, 16), (2, 32)] {
            let (rows, row_step) = (3, stride * w_out + 5);
            let len = (rows - 1) * row_step + stride * w_out;
            let src: Vec<f32> = (0..len).map(|i| (i as f32 * 0.73).sin()).collect();
            let mut fast = vec![f32::NAN; rows * w_out];
            gather_tap(stride, w_out, row_step, &mut fast, &src);
            let expected: Vec<f32> = (0..rows)
                .flat_map(|oy| (0..w_out).map(move |ox| oy * row_step + ox * stride))
                .map(|i| src[i])
                .collect();
            assert_eq!(fast, expected, "gather, stride {stride}, width {w_out}");

            let mut dst = src.clone();
            scatter_add_tap(stride, w_out, row_step, &expected, &mut dst);
            let mut plain = src.clone();
            for (oy, row) in expected.chunks(w_out).enumerate() {
                for (ox, v) in row.iter().enumerate() {
                    plain[oy * row_step + ox * stride] += v;
                }
            }
            assert_eq!(dst, plain, "scatter, stride {stride}, width {w_out}");
            if stride > 1 {
                // A buffer that ends right after the last element read is too short for the
                // whole-window copy: the fallback must still give the same values.
                let mut fallback = vec![f32::NAN; rows * w_out];
                gather_tap(stride, w_out, row_step, &mut fallback, &src[..len - stride + 1]);
                assert_eq!(fallback, expected, "short buffer, stride {stride}, width {w_out}");
            }
        }
    }
}
