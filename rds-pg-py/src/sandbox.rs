//! `Sandbox`: the Rust RDS-like throw-away server, as a context manager.

use std::sync::Mutex;

use pyo3::prelude::*;
use rds_pg_core::sandbox::{self as core_sandbox, SandboxOptions};
use rds_pg_core::ConnectOptions;

use crate::errors::{closed, IntoPyResult};
use crate::provisioner::{duration_arg, open, Provisioner};
use crate::secret::Secret;

/// A throw-away PostgreSQL server laid out like RDS (non-superuser master, `rds_superuser`,
/// TLS-only logins on 15+, the extension whitelist where pgextwlist is installed, every
/// statement logged). For tests and practice.
///
/// `Sandbox(version=None)` starts it (None: 15 when PostGIS is installed for it, else the newest
/// installed version); `with Sandbox() as sb:` stops it and deletes its directory at the end, as
/// does `stop()`. Raises `NotFound` (saying how to install the binaries) when the version is
/// missing.
#[pyclass(frozen, module = "rds_pg", name = "Sandbox")]
pub struct Sandbox {
    inner: Mutex<Option<core_sandbox::Sandbox>>,
    master: ConnectOptions,
    /// What a client is told to connect with (no user, password or password file).
    client: ConnectOptions,
    version: String,
    major: u32,
    has_postgis: bool,
}

impl Sandbox {
    fn with_inner<T>(&self, f: impl FnOnce(&core_sandbox::Sandbox) -> T) -> PyResult<T> {
        let guard = self.inner.lock().map_err(|_| closed("the sandbox"))?;
        guard.as_ref().map(f).ok_or_else(|| closed("the sandbox"))
    }
}

#[pymethods]
impl Sandbox {
    #[new]
    #[pyo3(signature = (version=None))]
    fn new(py: Python<'_>, version: Option<u32>) -> PyResult<Self> {
        let sandbox = py
            .detach(move || {
                let mut options = SandboxOptions::new();
                if let Some(v) = version {
                    options = options.version(v);
                }
                core_sandbox::Sandbox::start(options)
            })
            .py_result(py)?;
        Ok(Sandbox {
            master: sandbox.master_options(),
            client: sandbox.client_options(),
            version: sandbox.version().to_owned(),
            major: sandbox.major_version(),
            has_postgis: sandbox.has_postgis(),
            inner: Mutex::new(Some(sandbox)),
        })
    }

    /// The PostgreSQL major versions whose server binaries are installed, oldest first.
    #[staticmethod]
    fn available_versions() -> Vec<u32> {
        core_sandbox::available_versions()
    }

    /// The master user's connection string (`key=value`, TLS settings and the sandbox's
    /// throw-away master password included): `rds_pg.connect(sb.master_dsn)` and `psql` both
    /// take it.
    #[getter]
    fn master_dsn(&self, py: Python<'_>) -> PyResult<String> {
        let master = self.client.clone().user(self.master.get_user());
        let master = match self.master.get_password() {
            Some(password) => master.password(password.clone()),
            None => master,
        };
        let dsn = master.to_conninfo_with_password().py_result(py)?;
        Ok(dsn.expose().to_owned())
    }

    /// A connection string for `user` on this server (no password; add one, or use a pgpass
    /// file).
    #[pyo3(signature = (user, dbname="postgres"))]
    fn dsn_for(&self, py: Python<'_>, user: &str, dbname: &str) -> PyResult<String> {
        self.client
            .clone()
            .user(user)
            .dbname(dbname)
            .to_conninfo()
            .py_result(py)
    }

    /// The master user's name.
    #[getter]
    fn master_user(&self) -> String {
        self.master.get_user()
    }

    /// The master user's password.
    #[getter]
    fn master_password(&self, py: Python<'_>) -> PyResult<Option<Py<Secret>>> {
        self.master
            .get_password()
            .cloned()
            .map(|p| Secret::wrap(py, p))
            .transpose()
    }

    /// The host (`127.0.0.1`).
    #[getter]
    fn host(&self) -> &str {
        self.master.get_host()
    }

    /// The TCP port.
    #[getter]
    fn port(&self) -> u16 {
        self.master.get_port()
    }

    /// The CA certificate (PEM path) to verify the server with on 15+, else None.
    #[getter]
    fn ca_cert_path(&self) -> Option<std::path::PathBuf> {
        self.master.get_sslrootcert().map(|p| p.to_path_buf())
    }

    /// The full server version (`"16.14"`).
    #[getter]
    fn version(&self) -> &str {
        &self.version
    }

    /// The major version (13–18).
    #[getter]
    fn major_version(&self) -> u32 {
        self.major
    }

    /// Whether master can create PostGIS here (through the extension whitelist).
    #[getter]
    fn has_postgis(&self) -> bool {
        self.has_postgis
    }

    /// Connects as master: a `Provisioner` (see `rds_pg.connect` for `lock_timeout`).
    #[pyo3(signature = (*, lock_timeout=None))]
    fn connect(
        &self,
        py: Python<'_>,
        lock_timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Provisioner> {
        self.with_inner(|_| ())?;
        let lock_timeout = lock_timeout
            .map(|t| duration_arg(t, "lock_timeout"))
            .transpose()?;
        open(py, self.master.clone(), lock_timeout)
    }

    /// The server log so far; it records every statement (`log_statement = 'all'`).
    fn log_text(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| self.with_inner(|s| s.log_text()))?
            .py_result(py)
    }

    /// Whether the server was stopped.
    #[getter]
    fn stopped(&self) -> bool {
        self.with_inner(|_| ()).is_err()
    }

    /// Stops the server and deletes its directory. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .inner
            .lock()
            .map(|mut g| g.take())
            .unwrap_or_else(|p| p.into_inner().take());
        match taken {
            Some(sandbox) => py.detach(move || sandbox.stop()).py_result(py),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Sandbox(version='{}', port={}{})",
            self.version,
            self.master.get_port(),
            if self.stopped() { ", stopped" } else { "" }
        )
    }
}
