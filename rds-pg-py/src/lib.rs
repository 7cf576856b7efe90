//! Python binding of rds-pg: conversion and exception mapping only. The binding grows with the
//! provisioning, teardown and dump/restore operations of `rds-pg-core`.

use pyo3::prelude::*;

/// The native module `rds_pg._rds_pg`.
#[pymodule]
fn _rds_pg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
