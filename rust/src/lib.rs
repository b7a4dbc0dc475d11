//! vega-dag's Rust core, exposed to Python as `vega_dag._core`.
//!
//! This file is a table of contents: each concern lives in its own module,
//! free of PyO3 types, and `py` holds the thin wrappers that Python sees.

pub mod archive;
pub mod digest;
pub mod error;
pub mod hash;
pub mod imports;
pub mod pyc;
pub mod scan;
pub mod statcache;
pub mod tree;

mod py;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}
