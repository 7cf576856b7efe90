//! `dump`, `restore` and `verify_backup` as the project user, and their reports. pg_dump and
//! pg_restore run without the GIL; a progress callback is called with it.

use std::path::PathBuf;

use pyo3::prelude::*;
use rds_pg_core as core;
use rds_pg_core::dump::{self as core_dump, DumpFormat};
use rds_pg_core::ConnectOptions;

use crate::credentials::Credentials;
use crate::errors::IntoPyResult;
use crate::provisioner::Provisioner;
use crate::secret::optional_password_arg;
use crate::spec::{extensions_arg, str_repr};

/// The connection of the project user: `Credentials`, a DSN (over the libpq environment) or None
/// (the libpq environment alone), with an optional password on top.
fn connection_arg(
    py: Python<'_>,
    connection: Option<&Bound<'_, PyAny>>,
    password: Option<&Bound<'_, PyAny>>,
) -> PyResult<ConnectOptions> {
    let mut options = match connection.filter(|c| !c.is_none()) {
        Some(c) => {
            if let Ok(credentials) = c.cast::<Credentials>() {
                credentials.get().inner.connect_options()
            } else if let Ok(dsn) = c.extract::<String>() {
                let mut o = ConnectOptions::from_env().py_result(py)?;
                o.apply_str(&dsn).py_result(py)?;
                o
            } else {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "connection must be rds_pg.Credentials, a DSN string or None",
                ));
            }
        }
        None => ConnectOptions::from_env().py_result(py)?,
    };
    if let Some(password) = optional_password_arg(password)? {
        options = options.password(password);
    }
    Ok(options)
}

/// What `dump` wrote.
#[pyclass(frozen, module = "rds_pg", name = "DumpReport")]
pub struct DumpReport {
    inner: core::DumpReport,
}

#[pymethods]
impl DumpReport {
    /// The archive written.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path.clone()
    }

    /// Its format: `"custom"` or `"directory"`.
    #[getter]
    fn format(&self) -> &'static str {
        self.inner.format.as_str()
    }

    /// Its size in bytes.
    #[getter]
    fn bytes(&self) -> u64 {
        self.inner.bytes
    }

    /// How long pg_dump ran, in seconds.
    #[getter]
    fn duration(&self) -> f64 {
        self.inner.duration.as_secs_f64()
    }

    /// The pg_dump that ran (`"/usr/lib/postgresql/15/bin/pg_dump 15.18"`).
    #[getter]
    fn tool(&self) -> String {
        self.inner.tool.to_string()
    }

    /// The server's version.
    #[getter]
    fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "DumpReport(path={}, format={}, bytes={}, tool={})",
            str_repr(py, &self.inner.path.to_string_lossy())?,
            str_repr(py, self.inner.format.as_str())?,
            self.inner.bytes,
            str_repr(py, &self.inner.tool.to_string())?,
        ))
    }
}

/// An archive entry `restore` left out, and why.
#[pyclass(frozen, module = "rds_pg", name = "SkippedEntry")]
pub struct SkippedEntry {
    inner: core_dump::SkippedEntry,
}

#[pymethods]
impl SkippedEntry {
    /// The entry, as `pg_restore --list` shows it.
    #[getter]
    fn entry(&self) -> String {
        self.inner.entry.to_string()
    }

    /// Why it was left out.
    #[getter]
    fn reason(&self) -> String {
        self.inner.reason.to_string()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "SkippedEntry(entry={}, reason={})",
            str_repr(py, &self.entry())?,
            str_repr(py, &self.reason())?,
        ))
    }
}

/// What `restore` did.
#[pyclass(frozen, module = "rds_pg", name = "RestoreReport")]
pub struct RestoreReport {
    inner: core::RestoreReport,
}

#[pymethods]
impl RestoreReport {
    /// The target database.
    #[getter]
    fn database(&self) -> &str {
        &self.inner.database
    }

    /// The archive restored.
    #[getter]
    fn archive(&self) -> PathBuf {
        self.inner.archive.clone()
    }

    /// Entries in the archive.
    #[getter]
    fn entries_total(&self) -> usize {
        self.inner.entries_total
    }

    /// Entries restored.
    #[getter]
    fn entries_restored(&self) -> usize {
        self.inner.entries_restored
    }

    /// Entries left out, and why.
    #[getter]
    fn skipped(&self, py: Python<'_>) -> PyResult<Vec<Py<SkippedEntry>>> {
        self.inner
            .skipped
            .iter()
            .map(|s| Py::new(py, SkippedEntry { inner: s.clone() }))
            .collect()
    }

    /// Extensions master created in the target first.
    #[getter]
    fn created_extensions(&self) -> Vec<String> {
        self.inner.created_extensions.clone()
    }

    /// Whether it ran as one transaction.
    #[getter]
    fn single_transaction(&self) -> bool {
        self.inner.single_transaction
    }

    /// Parallel jobs.
    #[getter]
    fn jobs(&self) -> u32 {
        self.inner.jobs
    }

    /// The archive's size in bytes.
    #[getter]
    fn bytes(&self) -> u64 {
        self.inner.bytes
    }

    /// How long pg_restore ran, in seconds.
    #[getter]
    fn duration(&self) -> f64 {
        self.inner.duration.as_secs_f64()
    }

    /// The pg_restore that ran.
    #[getter]
    fn tool(&self) -> String {
        self.inner.tool.to_string()
    }

    /// Warnings pg_restore printed; empty for a clean restore.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "RestoreReport(database={}, entries_restored={}, skipped={}, single_transaction={})",
            str_repr(py, &self.inner.database)?,
            self.inner.entries_restored,
            self.inner.skipped.len(),
            if self.inner.single_transaction {
                "True"
            } else {
                "False"
            }
        ))
    }
}

/// A table's row count in the source and in the restored copy (None: missing there).
#[pyclass(frozen, module = "rds_pg", name = "TableRowCount")]
pub struct TableRowCount {
    inner: core_dump::TableRowCount,
}

#[pymethods]
impl TableRowCount {
    /// The schema.
    #[getter]
    fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The table.
    #[getter]
    fn table(&self) -> &str {
        &self.inner.table
    }

    /// Rows in the source database now.
    #[getter]
    fn source(&self) -> Option<i64> {
        self.inner.source
    }

    /// Rows in the restored copy.
    #[getter]
    fn restored(&self) -> Option<i64> {
        self.inner.restored
    }

    /// Whether both sides have the table with the same number of rows.
    fn matches(&self) -> bool {
        self.inner.matches()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let count = |n: Option<i64>| n.map_or("None".to_owned(), |n| n.to_string());
        Ok(format!(
            "TableRowCount(schema={}, table={}, source={}, restored={})",
            str_repr(py, &self.inner.schema)?,
            str_repr(py, &self.inner.table)?,
            count(self.inner.source),
            count(self.inner.restored),
        ))
    }
}

/// What `verify_backup` found.
#[pyclass(frozen, module = "rds_pg", name = "VerifyReport")]
pub struct VerifyReport {
    inner: core::VerifyReport,
}

#[pymethods]
impl VerifyReport {
    /// The scratch database the archive was restored into.
    #[getter]
    fn scratch_database(&self) -> &str {
        &self.inner.scratch_database
    }

    /// The restore into it.
    #[getter]
    fn restore(&self) -> RestoreReport {
        RestoreReport {
            inner: self.inner.restore.clone(),
        }
    }

    /// Row counts of every table the archive holds rows for.
    #[getter]
    fn tables(&self, py: Python<'_>) -> PyResult<Vec<Py<TableRowCount>>> {
        self.inner
            .tables
            .iter()
            .map(|t| Py::new(py, TableRowCount { inner: t.clone() }))
            .collect()
    }

    /// The tables whose counts differ or that are missing on one side.
    #[getter]
    fn mismatches(&self, py: Python<'_>) -> PyResult<Vec<Py<TableRowCount>>> {
        self.inner
            .mismatches()
            .into_iter()
            .map(|t| Py::new(py, TableRowCount { inner: t.clone() }))
            .collect()
    }

    /// Whether every table matched.
    #[getter]
    fn verified(&self) -> bool {
        self.inner.is_verified()
    }

    /// Whether the scratch database was dropped afterwards.
    #[getter]
    fn scratch_dropped(&self) -> bool {
        self.inner.scratch_dropped
    }

    fn __repr__(&self) -> String {
        format!(
            "VerifyReport(verified={}, tables={}, mismatches={}, scratch_dropped={})",
            if self.inner.is_verified() {
                "True"
            } else {
                "False"
            },
            self.inner.tables.len(),
            self.inner.mismatches().len(),
            if self.inner.scratch_dropped {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// A Python `progress(done, total, message)` called from Rust with the GIL taken only for the
/// call; the first exception it raises is kept and raised once the operation has finished.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    error: Option<PyErr>,
}

impl PyProgress {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        PyProgress {
            callback,
            error: None,
        }
    }

    fn report(&mut self, p: &core_dump::Progress) {
        if let Some(f) = &self.callback {
            Python::attach(|py| {
                if let Err(e) = f.call1(py, (p.done, p.total, p.message.as_str())) {
                    self.error.get_or_insert(e);
                }
            });
        }
    }

    fn finish(self) -> PyResult<()> {
        self.error.map_or(Ok(()), Err)
    }
}

/// Dumps a database as the project user with a pg_dump at least as new as the server.
///
/// `connection` is the project user's `Credentials`, a DSN (read over the libpq environment) or
/// None (the environment alone); `password` overrides its password. The password reaches
/// pg_dump through a private 0600 passfile, never argv or `PGPASSWORD`. `format` is `"custom"`
/// (default, one file) or `"directory"` (needed for `jobs` > 1). `progress(done, total,
/// message)` is called as pg_dump starts on each table's rows (`total`: the tables to dump); an
/// exception it raises is raised when the dump has finished. Raises `ToolError` with pg_dump's
/// `stderr` when it fails, or naming the missing client when none is new enough.
#[pyfunction]
#[pyo3(signature = (
    connection, output, *, password=None, database=None, format="custom", jobs=None,
    exclude_schemas=None, tools_dir=None, progress=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn dump(
    py: Python<'_>,
    connection: Option<&Bound<'_, PyAny>>,
    output: PathBuf,
    password: Option<&Bound<'_, PyAny>>,
    database: Option<String>,
    format: &str,
    jobs: Option<u32>,
    exclude_schemas: Option<Vec<String>>,
    tools_dir: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<DumpReport> {
    let mut options = core::DumpOptions::new(connection_arg(py, connection, password)?, output)
        .format(format.parse::<DumpFormat>().py_result(py)?);
    if let Some(database) = database {
        options = options.database(database);
    }
    if let Some(jobs) = jobs {
        options = options.jobs(jobs);
    }
    for schema in exclude_schemas.unwrap_or_default() {
        options = options.exclude_schema(schema).py_result(py)?;
    }
    if let Some(dir) = tools_dir {
        options = options.tools_dir(dir);
    }
    let mut progress = PyProgress::new(progress);
    let inner = py
        .detach(|| core_dump::dump_with(&options, &mut |p| progress.report(p)))
        .py_result(py)?;
    progress.finish()?;
    Ok(DumpReport { inner })
}

/// Restores an archive into an existing database owned by the project user, in one transaction
/// (any error leaves the target as it was), leaving out what a non-superuser cannot and need not
/// restore (extensions master made, their comments and configuration rows, privileges).
///
/// `connection`/`password` as for `dump`; the target is the connection's database or `database`.
/// The connected user must be the target's owner and hold no privilege beyond it (no
/// CREATEROLE/CREATEDB/..., no membership of rds_superuser, pg_read_all_data and the like):
/// otherwise `PolicyViolation` is raised before pg_restore starts, with `hint` saying to connect
/// as the owner (master is always refused: the archive's content runs with the restoring role's
/// privileges). `extensions` (`Extension` members or names) are created first by `master` (a
/// `Provisioner`, then required) when the target lacks them; an extension the archive uses that
/// the target lacks and that is not named raises `NotFound` before anything changes. `jobs` > 1
/// restores in parallel (not one transaction). `progress(done, total, message)` is called as
/// pg_restore works through the entries; an exception it raises is raised when the restore has
/// finished. Raises `ToolError` with pg_restore's `stderr` when an entry fails.
#[pyfunction]
#[pyo3(signature = (
    connection, archive, *, password=None, database=None, jobs=None, tools_dir=None, master=None,
    extensions=None, progress=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore(
    py: Python<'_>,
    connection: Option<&Bound<'_, PyAny>>,
    archive: PathBuf,
    password: Option<&Bound<'_, PyAny>>,
    database: Option<String>,
    jobs: Option<u32>,
    tools_dir: Option<PathBuf>,
    master: Option<&Provisioner>,
    extensions: Option<&Bound<'_, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<RestoreReport> {
    let mut options = core::RestoreOptions::new(connection_arg(py, connection, password)?, archive);
    if let Some(extensions) = extensions.filter(|e| !e.is_none()) {
        options = options.create_extensions(extensions_arg(extensions)?);
    }
    if let Some(database) = database {
        options = options.database(database);
    }
    if let Some(jobs) = jobs {
        options = options.jobs(jobs);
    }
    if let Some(dir) = tools_dir {
        options = options.tools_dir(dir);
    }
    let mut progress = PyProgress::new(progress);
    let mut on_progress = |p: &core_dump::Progress| progress.report(p);
    let report = match master {
        None => py
            .detach(|| core::restore_with(&options, None, &mut on_progress))
            .py_result(py)?,
        Some(master) => master.call(py, |m| {
            core::restore_with(&options, Some(m), &mut on_progress)
        })?,
    };
    progress.finish()?;
    Ok(RestoreReport { inner: report })
}

/// Verifies a backup: restores `archive` into a scratch database owned by the project user
/// (created and dropped by `master`, a `Provisioner`), then compares the row count of every
/// table with the source database `connection` points to (as for `dump`). The scratch database
/// gets `extensions` (default None: those installed in the source database now, never the
/// archive's list). The restore and the row counts run as the project user, which must hold no
/// privilege beyond its own (else `PolicyViolation`, before anything changes). Differences are
/// in the report (`verified`, `mismatches`), not an error; the scratch database is dropped also
/// when the restore fails. `progress` is called as for `restore`, during the scratch restore.
#[pyfunction]
#[pyo3(signature = (
    master, connection, archive, *, password=None, jobs=None, tools_dir=None,
    scratch_database=None, extensions=None, progress=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify_backup(
    py: Python<'_>,
    master: &Provisioner,
    connection: Option<&Bound<'_, PyAny>>,
    archive: PathBuf,
    password: Option<&Bound<'_, PyAny>>,
    jobs: Option<u32>,
    tools_dir: Option<PathBuf>,
    scratch_database: Option<String>,
    extensions: Option<&Bound<'_, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<VerifyReport> {
    let mut options = core::VerifyOptions::new(connection_arg(py, connection, password)?, archive);
    if let Some(extensions) = extensions.filter(|e| !e.is_none()) {
        options = options.extensions(extensions_arg(extensions)?);
    }
    if let Some(jobs) = jobs {
        options = options.jobs(jobs);
    }
    if let Some(dir) = tools_dir {
        options = options.tools_dir(dir);
    }
    if let Some(name) = scratch_database {
        options = options.scratch_database(name).py_result(py)?;
    }
    let mut progress = PyProgress::new(progress);
    let inner = master.call(py, |m| {
        core_dump::verify_backup_with(m, &options, &mut |p| progress.report(p))
    })?;
    progress.finish()?;
    Ok(VerifyReport { inner })
}
