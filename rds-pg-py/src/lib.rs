//! Python binding of rds-pg: conversion and exception mapping only. Every call that touches the
//! network or a subprocess runs without the GIL.
#![warn(missing_docs)]

use pyo3::prelude::*;

mod audit;
mod backup;
mod credentials;
mod dump;
mod errors;
mod inventory;
mod plan;
mod provisioner;
mod sandbox;
mod secret;
mod spec;

/// The native module `rds_pg._rds_pg`; the pure-Python package `rds_pg` re-exports it.
#[pymodule]
fn _rds_pg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<secret::Secret>()?;
    m.add_class::<spec::Extension>()?;
    m.add_class::<spec::UserSpec>()?;
    m.add_class::<spec::DatabaseSpec>()?;
    m.add_class::<spec::ReadOnlyGrant>()?;
    m.add_class::<plan::Step>()?;
    m.add_class::<plan::Plan>()?;
    m.add_class::<plan::Report>()?;
    m.add_class::<provisioner::Provisioner>()?;
    m.add_function(wrap_pyfunction!(provisioner::connect, m)?)?;
    m.add_class::<sandbox::Sandbox>()?;
    m.add_class::<credentials::Credentials>()?;
    m.add_class::<dump::DumpReport>()?;
    m.add_class::<dump::RestoreReport>()?;
    m.add_class::<dump::SkippedEntry>()?;
    m.add_class::<dump::VerifyReport>()?;
    m.add_class::<dump::TableRowCount>()?;
    m.add_function(wrap_pyfunction!(dump::dump, m)?)?;
    m.add_function(wrap_pyfunction!(dump::restore, m)?)?;
    m.add_function(wrap_pyfunction!(dump::verify_backup, m)?)?;
    m.add_class::<inventory::Inventory>()?;
    m.add_class::<inventory::CheckReport>()?;
    m.add_class::<inventory::Finding>()?;
    m.add_class::<inventory::FindingObject>()?;
    m.add_class::<inventory::Location>()?;
    m.add_class::<inventory::InventoryProblem>()?;
    audit::register(m)?;
    m.add_class::<backup::BackupTable>()?;
    m.add_class::<backup::BackupArchive>()?;
    m.add_class::<backup::DatabaseBackup>()?;
    m.add_class::<backup::BackupRunReport>()?;
    m.add_class::<backup::BackupTableCheck>()?;
    m.add_class::<backup::ArchiveVerification>()?;
    m.add_class::<backup::BackupVerifyReport>()?;
    m.add_class::<backup::PruneDecision>()?;
    m.add_class::<backup::PruneReport>()?;
    m.add_function(wrap_pyfunction!(backup::backup_run, m)?)?;
    m.add_function(wrap_pyfunction!(backup::backup_verify, m)?)?;
    m.add_function(wrap_pyfunction!(backup::backup_prune, m)?)?;
    m.add_function(wrap_pyfunction!(backup::backup_list, m)?)?;
    Ok(())
}
