//! Python bindings of desdis (`import desdis`): describe patches with the descriptor nets,
//! extract keypoints and descriptors from images, match and verify, all on numpy arrays.
//!
//! Every function checks its arrays (dtype, shape, finite values) before any work, copies them,
//! and computes without the GIL; every Rust error becomes a Python exception carrying the
//! message `desdis` prints on the command line.

mod arrays;
mod describer;
mod errors;
mod geometry;
mod inputs;

use pyo3::prelude::*;

/// The native part of the `desdis` package; the public names are re-exported by `desdis`.
#[pymodule]
fn _desdis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<describer::Describer>()?;
    m.add_function(wrap_pyfunction!(geometry::match_py, m)?)?;
    m.add_function(wrap_pyfunction!(geometry::verify, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
