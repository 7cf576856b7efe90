//! `Credentials`: a project user's login, handed over as a URL, a pgpass line, an env file, JSON,
//! a 0600 file or a command's standard input.

use std::path::PathBuf;

use pyo3::prelude::*;
use rds_pg_core as core;
use rds_pg_core::{CredentialSink, SslMode};

use crate::errors::IntoPyResult;
use crate::secret::{password_arg, Secret};
use crate::spec::str_repr;

/// Everything a client needs to log in as a project user. `repr()` never shows the password;
/// every output that contains it comes back as a `Secret`.
///
/// `Credentials(host, port, database, user, password, *, sslmode="prefer", sslrootcert=None)`;
/// `Provisioner.credentials(user, database, password)` fills in the server the provisioner is
/// connected to. Raises `InvalidName` or `InvalidInput` for values a pgpass file, an env file or
/// libpq cannot hold.
#[pyclass(frozen, module = "rds_pg", name = "Credentials")]
pub struct Credentials {
    pub(crate) inner: core::Credentials,
}

pub(crate) fn sslmode_arg(py: Python<'_>, value: &str) -> PyResult<SslMode> {
    value.parse::<SslMode>().py_result(py)
}

impl Credentials {
    /// Delivers to `sink` without the GIL, after the core's check of the sink.
    fn deliver(&self, py: Python<'_>, sink: CredentialSink) -> PyResult<()> {
        py.detach(|| self.inner.deliver(&sink)).py_result(py)
    }
}

#[pymethods]
impl Credentials {
    #[new]
    #[pyo3(signature = (host, port, database, user, password, *, sslmode="prefer", sslrootcert=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: String,
        port: u16,
        database: &str,
        user: &str,
        password: &Bound<'_, PyAny>,
        sslmode: &str,
        sslrootcert: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut inner = core::Credentials::new(host, port, database, user, password_arg(password)?)
            .py_result(py)?
            .sslmode(sslmode_arg(py, sslmode)?);
        if let Some(path) = sslrootcert {
            inner = inner.sslrootcert(path);
        }
        inner.validate().py_result(py)?;
        Ok(Credentials { inner })
    }

    /// The host.
    #[getter]
    fn host(&self) -> &str {
        &self.inner.host
    }

    /// The port.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.port
    }

    /// The database.
    #[getter]
    fn database(&self) -> &str {
        self.inner.database.as_str()
    }

    /// The role.
    #[getter]
    fn user(&self) -> &str {
        self.inner.user.as_str()
    }

    /// The password.
    #[getter]
    fn password(&self, py: Python<'_>) -> PyResult<Py<Secret>> {
        Secret::wrap(py, self.inner.password.clone())
    }

    /// The TLS mode (`"verify-full"`, …).
    #[getter]
    fn sslmode(&self) -> &'static str {
        self.inner.sslmode.as_str()
    }

    /// The CA file, or None.
    #[getter]
    fn sslrootcert(&self) -> Option<PathBuf> {
        self.inner.sslrootcert.clone()
    }

    /// `postgresql://user:password@host:port/database?sslmode=…`, every part percent-encoded.
    fn database_url(&self, py: Python<'_>) -> PyResult<Py<Secret>> {
        Secret::wrap(py, self.inner.database_url().py_result(py)?)
    }

    /// The `~/.pgpass` line (`host:port:database:user:password`, escaped; no newline).
    fn pgpass_line(&self, py: Python<'_>) -> PyResult<Py<Secret>> {
        Secret::wrap(py, self.inner.pgpass_line().py_result(py)?)
    }

    /// The text of an env file (`DATABASE_URL`, `PGHOST`, …, `PGPASSWORD`), quoted so that `sh`
    /// and systemd's `EnvironmentFile=` read it back exactly.
    fn env_file(&self, py: Python<'_>) -> PyResult<Py<Secret>> {
        Secret::wrap(py, self.inner.env_file().py_result(py)?)
    }

    /// The credentials as one JSON object, with AWS Secrets Manager's field names too.
    fn json(&self, py: Python<'_>) -> PyResult<Py<Secret>> {
        Secret::wrap(py, self.inner.json().py_result(py)?)
    }

    /// Writes the env file to `path`, atomically and with mode 0600. Raises `InvalidInput` when
    /// the file's directory does not exist (nothing is written), `IoError` when the file
    /// cannot be written.
    fn write_env_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.deliver(py, CredentialSink::EnvFile(path))
    }

    /// Adds (or replaces) the credentials' line in the password file at `path` (default:
    /// `PGPASSFILE` or `~/.pgpass`), atomically and with mode 0600; other lines are kept.
    /// Raises `InvalidInput` when the file's directory does not exist (nothing is written),
    /// `IoError` when the file cannot be written.
    #[pyo3(signature = (path=None))]
    fn write_pgpass(&self, py: Python<'_>, path: Option<PathBuf>) -> PyResult<()> {
        let path = core::pgpass::path_or_default(path).py_result(py)?;
        self.deliver(py, CredentialSink::Pgpass(path))
    }

    /// Runs `argv` (a program and its arguments, no shell) with the credentials as JSON on its
    /// standard input — never in its arguments or environment. Its environment is this
    /// process's without every `PG*` and `RDS_PG_*` variable and `DATABASE_URL` (none of
    /// master's credentials reach it); `PATH`, `HOME`, `AWS_*` and the rest are kept. Its output
    /// is captured. Raises `NotFound` for a missing program and `ToolError` (password redacted
    /// from its output) when it fails.
    fn send_to_command(&self, py: Python<'_>, argv: Vec<PathBuf>) -> PyResult<()> {
        self.deliver(py, CredentialSink::command(argv))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Credentials(host={}, port={}, database={}, user={}, password=Secret([redacted]), \
             sslmode={})",
            str_repr(py, &self.inner.host)?,
            self.inner.port,
            str_repr(py, self.inner.database.as_str())?,
            str_repr(py, self.inner.user.as_str())?,
            str_repr(py, self.inner.sslmode.as_str())?,
        ))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Credentials>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}
