//! numpy arrays in, plain Rust buffers out: shapes, dtypes and value ranges are checked here,
//! with the GIL held, and the data copied, so that the work after this runs without the GIL and
//! without touching memory Python code could change meanwhile.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::{Failure, Result};

/// The values of a numpy array, in logical (C) order whatever its strides.
#[derive(Debug)]
pub enum Values {
    /// uint8.
    U8(Vec<u8>),
    /// uint16.
    U16(Vec<u16>),
    /// float32.
    F32(Vec<f32>),
}

/// An array's shape and its values, copied out of Python.
#[derive(Debug)]
pub struct Owned {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Values,
}

/// `obj` as a numpy array, or a `TypeError` naming `what`.
pub fn untyped<'a, 'py>(obj: &'a Bound<'py, PyAny>, what: &str) -> Result<&'a Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().map_err(|_| {
        let got = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        Failure::type_error(format!("{what}: expected a numpy array, got {got}"))
    })
}

/// The dtype's name (`uint8`, `int32`, ...), for messages.
pub fn dtype_name(array: &Bound<'_, PyUntypedArray>) -> String {
    array.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "unknown".into())
}

/// Copies a typed array, whatever its memory layout.
fn copy<T: numpy::Element + Copy>(array: &Bound<'_, PyArrayDyn<T>>, what: &str) -> Result<Vec<T>> {
    let view = array
        .try_readonly()
        .map_err(|e| Failure::value(format!("{what}: the array cannot be read ({e})")))?;
    let view = view.as_array();
    Ok(match view.as_slice() {
        Some(slice) => slice.to_vec(),
        None => view.iter().copied().collect(),
    })
}

/// Copies `obj` when its dtype is one of `accepted` (`"uint8"`, `"uint16"`, `"float32"`);
/// otherwise a `ValueError` saying which dtypes are.
pub fn read(obj: &Bound<'_, PyAny>, what: &str, accepted: &[&str]) -> Result<Owned> {
    let array = untyped(obj, what)?;
    let shape = array.shape().to_vec();
    let values = if let Some(a) = array.cast::<PyArrayDyn<u8>>().ok().filter(|_| accepted.contains(&"uint8"))
    {
        Values::U8(copy(a, what)?)
    } else if let Some(a) = array.cast::<PyArrayDyn<u16>>().ok().filter(|_| accepted.contains(&"uint16")) {
        Values::U16(copy(a, what)?)
    } else if let Some(a) = array.cast::<PyArrayDyn<f32>>().ok().filter(|_| accepted.contains(&"float32")) {
        Values::F32(copy(a, what)?)
    } else {
        return Err(Failure::value(format!(
            "{what}: dtype {} is not supported (expected {}); convert with .astype()",
            dtype_name(array),
            accepted.join(" or ")
        )));
    };
    Ok(Owned { shape, values })
}

/// Refuses NaN and infinite values, and floats outside 0..1: 0..255 floats would silently give
/// wrong descriptors for nets that normalise by a fixed range, so they are refused, not guessed.
pub fn check_unit_floats(values: &[f32], what: &str) -> Result<()> {
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        return Err(Failure::value(format!("{what}: value {bad} is not finite")));
    }
    if values.iter().any(|&v| !(-0.01..=1.01).contains(&v)) {
        return Err(Failure::value(format!(
            "{what}: float32 values must be in 0..1 (found values outside); divide by 255 or pass uint8"
        )));
    }
    Ok(())
}

/// A float array of shape `(N, cols)` (float32, or float64 converted), as rows of `cols`
/// values; `cols = None` accepts any width. Returns the values and the shape.
pub fn matrix_f32(
    obj: &Bound<'_, PyAny>,
    what: &str,
    cols: Option<usize>,
) -> Result<(Vec<f32>, usize, usize)> {
    let array = untyped(obj, what)?;
    let shape = array.shape().to_vec();
    let ok_shape = shape.len() == 2 && cols.is_none_or(|c| shape[1] == c);
    if !ok_shape {
        let expected = cols.map_or("(N, D)".to_string(), |c| format!("(N, {c})"));
        return Err(Failure::value(format!("{what}: expected shape {expected}, found {shape:?}")));
    }
    let values = if let Ok(a) = array.cast::<PyArrayDyn<f32>>() {
        copy(a, what)?
    } else if let Ok(a) = array.cast::<PyArrayDyn<f64>>() {
        copy(a, what)?.into_iter().map(|v| v as f32).collect()
    } else {
        return Err(Failure::value(format!(
            "{what}: dtype {} is not supported (expected float32 or float64)",
            dtype_name(array)
        )));
    };
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        return Err(Failure::value(format!("{what}: value {bad} is not finite")));
    }
    Ok((values, shape[0], shape[1]))
}

/// An integer array of shape `(M, 2)`: index pairs, each checked to be non-negative.
pub fn index_pairs(obj: &Bound<'_, PyAny>, what: &str) -> Result<Vec<[i64; 2]>> {
    let array = untyped(obj, what)?;
    let shape = array.shape().to_vec();
    if shape.len() != 2 || shape[1] != 2 {
        return Err(Failure::value(format!("{what}: expected shape (M, 2), found {shape:?}")));
    }
    let flat: Vec<i64> = if let Ok(a) = array.cast::<PyArrayDyn<i64>>() {
        copy(a, what)?
    } else if let Ok(a) = array.cast::<PyArrayDyn<i32>>() {
        copy(a, what)?.into_iter().map(i64::from).collect()
    } else if let Ok(a) = array.cast::<PyArrayDyn<u32>>() {
        copy(a, what)?.into_iter().map(i64::from).collect()
    } else {
        return Err(Failure::value(format!(
            "{what}: dtype {} is not supported (expected int64, int32 or uint32)",
            dtype_name(array)
        )));
    };
    Ok(flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
}
