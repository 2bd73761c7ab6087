//! A bounds-checked, safe front to `gemm::gemm` for strided `f32`/`f64` matrices held in slices:
//! the one gemm wrapper of the project (convolutions, Winograd, distance matrices).

use candle_core::WithDType;
use gemm::Parallelism;

/// The float types the CPU kernels run on: `f32` and `f64`.
pub trait Real: WithDType {
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// A read-only strided matrix view: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T = f32> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    /// `data` as a dense row-major `(rows, cols)` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "row-major matrix size");
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// `data` as a row-major `(rows, cols)` matrix with rows `row_stride` apart.
    pub fn with_row_stride(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable row-major `(rows, cols)` matrix whose rows are `row_stride` apart.
pub struct MatMut<'a, T = f32> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// `data` as a dense row-major `(rows, cols)` matrix.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "row-major matrix size");
        Self { data, rows, cols, row_stride: cols }
    }

    /// `data` as a row-major `(rows, cols)` matrix with rows `row_stride >= cols` apart.
    pub fn with_row_stride(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(row_stride >= cols, "rows overlap");
        assert!(rows == 0 || (rows - 1) * row_stride + cols <= data.len(), "matrix exceeds its slice");
        Self { data, rows, cols, row_stride }
    }
}

/// Whether the product overwrites the destination or is added to it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Write {
    Overwrite,
    Accumulate,
}

/// `dst = lhs · rhs` or `dst += lhs · rhs`.
///
/// # Shapes
/// - `lhs`: `(m, k)`, `rhs`: `(k, n)`, `dst`: `(m, n)`
///
/// # Panics
/// On mismatched shapes, or a view whose strides reach past its slice.
pub fn matmul<T: Real>(
    dst: MatMut<'_, T>,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    write: Write,
    parallelism: Parallelism,
) {
    matmul_scaled(dst, lhs, rhs, write, T::from_f64(1.0), parallelism)
}

/// `dst = scale * lhs · rhs` or `dst += scale * lhs · rhs`; see [`matmul`].
///
/// # Shapes
/// - `lhs`: `(m, k)`, `rhs`: `(k, n)`, `dst`: `(m, n)`
pub fn matmul_scaled<T: Real>(
    dst: MatMut<'_, T>,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    write: Write,
    scale: T,
    parallelism: Parallelism,
) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(
        lhs.rows == m && rhs.rows == k && rhs.cols == n,
        "matmul shapes: ({m},{n}) = ({},{k}) x ({},{})",
        lhs.rows,
        rhs.rows,
        rhs.cols
    );
    assert!(fits(&lhs) && fits(&rhs), "matrix view exceeds its slice");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if write == Write::Overwrite {
            for row in dst.data.chunks_mut(dst.row_stride).take(m) {
                row[..n].fill(T::from_f64(0.0));
            }
        }
        return;
    }
    // SAFETY: every index gemm touches is `r * row_stride + c * col_stride` with `r < rows`,
    // `c < cols` of a view, which `fits` (and `MatMut`'s constructors, for `dst`) keep inside
    // that view's slice; rows of `dst` do not overlap (`row_stride >= cols`), and `dst` is a
    // unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            write == Write::Accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::from_f64(1.0),
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// True when the view's last element lies inside its slice (or the view is empty).
fn fits<T>(v: &Mat<'_, T>) -> bool {
    v.rows == 0 || v.cols == 0 || (v.rows - 1) * v.row_stride + (v.cols - 1) * v.col_stride < v.data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_product_and_accumulation() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // (2, 3)
        let b = [1.0, 0.0, 2.0, 1.0, 0.0, 3.0]; // (2, 3), used transposed as (3, 2)
        let mut c = [10.0; 4];
        let lhs = Mat::row_major(&a, 2, 3);
        let rhs = Mat::row_major(&b, 2, 3).t();
        matmul(MatMut::row_major(&mut c, 2, 2), lhs, rhs, Write::Overwrite, Parallelism::None);
        assert_eq!(c, [7.0, 10.0, 16.0, 22.0]);
        matmul(MatMut::row_major(&mut c, 2, 2), lhs, rhs, Write::Accumulate, Parallelism::None);
        assert_eq!(c, [14.0, 20.0, 32.0, 44.0]);
    }

    #[test]
    fn strided_destination_leaves_the_gaps_alone() {
        let a = [1.0, 2.0]; // (2, 1)
        let b = [3.0, 4.0]; // (1, 2)
        let mut c = [-1.0; 5]; // (2, 2) with rows 3 apart
        let dst = MatMut::with_row_stride(&mut c, 2, 2, 3);
        matmul(dst, Mat::row_major(&a, 2, 1), Mat::row_major(&b, 1, 2), Write::Overwrite, Parallelism::None);
        assert_eq!(c, [3.0, 4.0, -1.0, 6.0, 8.0]);
    }

    #[test]
    #[should_panic(expected = "matmul shapes")]
    fn mismatched_shapes_panic() {
        let a = [0.0; 6];
        let mut c = [0.0; 4];
        matmul(
            MatMut::row_major(&mut c, 2, 2),
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&a, 2, 3),
            Write::Overwrite,
            Parallelism::None,
        );
    }
}
