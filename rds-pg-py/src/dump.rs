//! `dump`, `restore` and `verify_backup` as the project user, and their reports. pg_dump and
//! pg_restore run without the GIL; a progress callback is called with it.

use std::path::PathBuf;

use pyo3::prelude::*;
use rds_pg_core as core;
use rds_pg_core::dump::{self as core_dump, DumpFormat};
use rds_pg_core::ConnectOptions;

use crate::credentials::Credentials;
use crate::errors::IntoPyResult;
use crate::provisioner::{ssh_forward, Provisioner};
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
    crate::errors::warn_about_pgpass(py, &options)?;
    Ok(options)
}

/// `True`/`False` for a repr.
fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// What `dump` wrote.
#[pyclass(frozen, get_all, module = "rds_pg", name = "DumpReport")]
pub struct DumpReport {
    /// The archive written.
    path: PathBuf,
    /// Its format: `"custom"` or `"directory"`.
    format: &'static str,
    /// Its size in bytes.
    bytes: u64,
    /// How long pg_dump ran, in seconds.
    duration: f64,
    /// The pg_dump that ran (`"/usr/lib/postgresql/15/bin/pg_dump 15.18"`).
    tool: String,
    /// The server's version.
    server_version: String,
}

impl From<core::DumpReport> for DumpReport {
    fn from(r: core::DumpReport) -> Self {
        DumpReport {
            format: r.format.as_str(),
            bytes: r.bytes,
            duration: r.duration.as_secs_f64(),
            tool: r.tool.to_string(),
            server_version: r.server_version,
            path: r.path,
        }
    }
}

#[pymethods]
impl DumpReport {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "DumpReport(path={}, format={}, bytes={}, tool={})",
            str_repr(py, &self.path.to_string_lossy())?,
            str_repr(py, self.format)?,
            self.bytes,
            str_repr(py, &self.tool)?,
        ))
    }
}

/// An archive entry `restore` left out, and why.
#[pyclass(frozen, get_all, module = "rds_pg", name = "SkippedEntry")]
#[derive(Clone)]
pub struct SkippedEntry {
    /// What the entry is (`"TABLE DATA public.spatial_ref_sys"`, `"COMMENT EXTENSION
    /// postgis"`), as the command line's restore names it.
    entry: String,
    /// The entry as `pg_restore --list` shows it.
    list_line: String,
    /// Why it was left out.
    reason: String,
}

impl From<&core_dump::SkippedEntry> for SkippedEntry {
    fn from(s: &core_dump::SkippedEntry) -> Self {
        SkippedEntry {
            entry: s.entry.to_string(),
            list_line: s.entry.list_line(),
            reason: s.reason.to_string(),
        }
    }
}

#[pymethods]
impl SkippedEntry {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "SkippedEntry(entry={}, reason={})",
            str_repr(py, &self.entry)?,
            str_repr(py, &self.reason)?,
        ))
    }
}

/// What `restore` did.
#[pyclass(frozen, get_all, module = "rds_pg", name = "RestoreReport")]
#[derive(Clone)]
pub struct RestoreReport {
    /// The target database.
    database: String,
    /// The archive restored.
    archive: PathBuf,
    /// Entries in the archive.
    entries_total: usize,
    /// Entries restored.
    entries_restored: usize,
    /// Entries left out, and why.
    skipped: Vec<SkippedEntry>,
    /// Extensions master created in the target first.
    created_extensions: Vec<String>,
    /// Whether it ran as one transaction.
    single_transaction: bool,
    /// Parallel jobs.
    jobs: u32,
    /// The archive's size in bytes.
    bytes: u64,
    /// How long pg_restore ran, in seconds.
    duration: f64,
    /// The pg_restore that ran.
    tool: String,
    /// Warnings pg_restore printed; empty for a clean restore.
    warnings: Vec<String>,
}

impl From<core::RestoreReport> for RestoreReport {
    fn from(r: core::RestoreReport) -> Self {
        RestoreReport {
            skipped: r.skipped.iter().map(SkippedEntry::from).collect(),
            duration: r.duration.as_secs_f64(),
            tool: r.tool.to_string(),
            database: r.database,
            archive: r.archive,
            entries_total: r.entries_total,
            entries_restored: r.entries_restored,
            created_extensions: r.created_extensions,
            single_transaction: r.single_transaction,
            jobs: r.jobs,
            bytes: r.bytes,
            warnings: r.warnings,
        }
    }
}

#[pymethods]
impl RestoreReport {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "RestoreReport(database={}, entries_restored={}, skipped={}, single_transaction={})",
            str_repr(py, &self.database)?,
            self.entries_restored,
            self.skipped.len(),
            py_bool(self.single_transaction)
        ))
    }
}

/// A table's row count in the source and in the restored copy (None: missing there).
#[pyclass(frozen, module = "rds_pg", name = "TableRowCount")]
#[derive(Clone)]
pub struct TableRowCount {
    /// The schema.
    #[pyo3(get)]
    schema: String,
    /// The table.
    #[pyo3(get)]
    table: String,
    /// Rows in the source database now.
    #[pyo3(get)]
    source: Option<i64>,
    /// Rows in the restored copy.
    #[pyo3(get)]
    restored: Option<i64>,
    matches: bool,
}

impl From<&core_dump::TableRowCount> for TableRowCount {
    fn from(t: &core_dump::TableRowCount) -> Self {
        TableRowCount {
            schema: t.schema.clone(),
            table: t.table.clone(),
            source: t.source,
            restored: t.restored,
            matches: t.matches(),
        }
    }
}

#[pymethods]
impl TableRowCount {
    /// Whether both sides have the table with the same number of rows.
    fn matches(&self) -> bool {
        self.matches
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let count = |n: Option<i64>| n.map_or("None".to_owned(), |n| n.to_string());
        Ok(format!(
            "TableRowCount(schema={}, table={}, source={}, restored={})",
            str_repr(py, &self.schema)?,
            str_repr(py, &self.table)?,
            count(self.source),
            count(self.restored),
        ))
    }
}

/// What `verify_backup` found.
#[pyclass(frozen, get_all, module = "rds_pg", name = "VerifyReport")]
pub struct VerifyReport {
    /// The scratch database the archive was restored into.
    scratch_database: String,
    /// The restore into it.
    restore: RestoreReport,
    /// Row counts of every table the archive holds rows for.
    tables: Vec<TableRowCount>,
    /// The tables whose counts differ or that are missing on one side.
    mismatches: Vec<TableRowCount>,
    /// Whether every table matched.
    verified: bool,
    /// Whether the scratch database was dropped afterwards.
    scratch_dropped: bool,
}

impl From<core::VerifyReport> for VerifyReport {
    fn from(r: core::VerifyReport) -> Self {
        VerifyReport {
            mismatches: r
                .mismatches()
                .into_iter()
                .map(TableRowCount::from)
                .collect(),
            verified: r.is_verified(),
            tables: r.tables.iter().map(TableRowCount::from).collect(),
            scratch_database: r.scratch_database,
            restore: r.restore.into(),
            scratch_dropped: r.scratch_dropped,
        }
    }
}

#[pymethods]
impl VerifyReport {
    fn __repr__(&self) -> String {
        format!(
            "VerifyReport(verified={}, tables={}, mismatches={}, scratch_dropped={})",
            py_bool(self.verified),
            self.tables.len(),
            self.mismatches.len(),
            py_bool(self.scratch_dropped)
        )
    }
}

/// A Python `progress(done, total, message)` (or `progress(done, total, message, bytes)`, when
/// it takes a fourth argument) called from Rust with the GIL taken only for the call; the first
/// exception it raises is kept and raised once the operation has finished.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    /// Whether the callback takes the byte count as a fourth argument.
    with_bytes: bool,
    error: Option<PyErr>,
}

impl PyProgress {
    fn new(py: Python<'_>, callback: Option<Py<PyAny>>) -> Self {
        let with_bytes = callback
            .as_ref()
            .is_some_and(|f| takes_four_arguments(f.bind(py)));
        PyProgress {
            callback,
            with_bytes,
            error: None,
        }
    }

    fn report(&mut self, p: &core_dump::Progress) {
        if let Some(f) = &self.callback {
            Python::attach(|py| {
                let called = if self.with_bytes {
                    f.call1(py, (p.done, p.total, p.message.as_str(), p.bytes))
                } else {
                    f.call1(py, (p.done, p.total, p.message.as_str()))
                };
                if let Err(e) = called {
                    self.error.get_or_insert(e);
                }
            });
        }
    }

    fn finish(self) -> PyResult<()> {
        self.error.map_or(Ok(()), Err)
    }
}

/// Whether `callback` accepts four positional arguments (`inspect.signature(…).bind`); a
/// callable without a signature is called with three.
fn takes_four_arguments(callback: &Bound<'_, PyAny>) -> bool {
    let py = callback.py();
    py.import("inspect")
        .and_then(|inspect| inspect.call_method1("signature", (callback,)))
        .and_then(|signature| signature.call_method1("bind", (0, 0, "", py.None())))
        .is_ok()
}

/// Dumps a database as the project user with a pg_dump at least as new as the server.
///
/// `connection` is the project user's `Credentials`, a DSN (read over the libpq environment) or
/// None (the environment alone); `password` overrides its password. The password reaches
/// pg_dump through a private 0600 passfile, never argv or `PGPASSWORD`. `format` is `"custom"`
/// (default, one file) or `"directory"` (needed for `jobs` > 1). `progress(done, total,
/// message)` is called as pg_dump starts on each table's rows (`total`: the tables to dump), and
/// once more when it has finished; a callback that takes a fourth argument also gets the
/// archive's size in bytes so far (`progress(done, total, message, bytes)`). An exception it
/// raises is raised when the dump has finished. `ssh="user@host"` (and `ssh_config`, as for
/// `connect`) dumps through an SSH forward via that host, open for the dump only. Raises
/// `ToolError` with pg_dump's `stderr` when it fails, or naming the missing client when none is
/// new enough.
#[pyfunction]
#[pyo3(signature = (
    connection, output, *, password=None, database=None, format="custom", jobs=None,
    exclude_schemas=None, tools_dir=None, progress=None, ssh=None, ssh_config=None
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
    ssh: Option<String>,
    ssh_config: Option<PathBuf>,
) -> PyResult<DumpReport> {
    let mut options = core::DumpOptions::new(connection_arg(py, connection, password)?, output)
        .format(format.parse::<DumpFormat>().py_result(py)?);
    if let Some(database) = database {
        options = options.database(database);
    }
    for schema in exclude_schemas.unwrap_or_default() {
        options = options.exclude_schema(schema).py_result(py)?;
    }
    options.jobs = jobs;
    options.tools_dir = tools_dir;
    options.ssh = ssh_forward(py, ssh, ssh_config)?;
    let mut progress = PyProgress::new(py, progress);
    let report = py
        .detach(|| core_dump::dump_with(&options, &mut |p| progress.report(p)))
        .py_result(py)?;
    progress.finish()?;
    Ok(report.into())
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
/// pg_restore works through the entries (a callback that takes a fourth argument gets None
/// there: a restore writes no archive); an exception it raises is raised when the restore has
/// finished. `ssh`/`ssh_config` restore through an SSH forward, as for `dump` (`master` keeps
/// its own connection). Raises `ToolError` with pg_restore's `stderr` when an entry fails.
#[pyfunction]
#[pyo3(signature = (
    connection, archive, *, password=None, database=None, jobs=None, tools_dir=None, master=None,
    extensions=None, progress=None, ssh=None, ssh_config=None
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
    ssh: Option<String>,
    ssh_config: Option<PathBuf>,
) -> PyResult<RestoreReport> {
    let mut options = core::RestoreOptions::new(connection_arg(py, connection, password)?, archive);
    if let Some(extensions) = extensions.filter(|e| !e.is_none()) {
        options = options.create_extensions(extensions_arg(extensions)?);
    }
    if let Some(database) = database {
        options = options.database(database);
    }
    options.jobs = jobs;
    options.tools_dir = tools_dir;
    options.ssh = ssh_forward(py, ssh, ssh_config)?;
    let mut progress = PyProgress::new(py, progress);
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
    Ok(report.into())
}

/// Verifies a backup: restores `archive` into a scratch database owned by the project user
/// (created and dropped by `master`, a `Provisioner`), then compares the row count of every
/// table with the source database `connection` points to (as for `dump`). The scratch database
/// gets `extensions` (default None: those installed in the source database now, never the
/// archive's list). The restore and the row counts run as the project user, which must hold no
/// privilege beyond its own (else `PolicyViolation`, before anything changes). Differences are
/// in the report (`verified`, `mismatches`), not an error; the scratch database is dropped also
/// when the restore fails. `progress` is called as for `restore`, during the scratch restore.
/// `ssh`/`ssh_config` reach the source and the scratch database through an SSH forward, as for
/// `dump` (`master` keeps its own connection: open it with `connect(ssh=…)`).
#[pyfunction]
#[pyo3(signature = (
    master, connection, archive, *, password=None, jobs=None, tools_dir=None,
    scratch_database=None, extensions=None, progress=None, ssh=None, ssh_config=None
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
    ssh: Option<String>,
    ssh_config: Option<PathBuf>,
) -> PyResult<VerifyReport> {
    let mut options = core::VerifyOptions::new(connection_arg(py, connection, password)?, archive);
    if let Some(extensions) = extensions.filter(|e| !e.is_none()) {
        options = options.extensions(extensions_arg(extensions)?);
    }
    options.jobs = jobs;
    options.tools_dir = tools_dir;
    if let Some(name) = scratch_database {
        options = options.scratch_database(name).py_result(py)?;
    }
    options.ssh = ssh_forward(py, ssh, ssh_config)?;
    let mut progress = PyProgress::new(py, progress);
    let report = master.call(py, |m| {
        core_dump::verify_backup_with(m, &options, &mut |p| progress.report(p))
    })?;
    progress.finish()?;
    Ok(report.into())
}
