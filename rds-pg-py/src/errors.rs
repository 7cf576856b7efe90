//! The exception classes of `rds_pg` and the one place where a Rust [`Error`] becomes one.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use rds_pg_core::{Error, ErrorKind};

create_exception!(
    rds_pg,
    RdsPgError,
    PyException,
    "Base class of every rds_pg error. `kind` names the error's kind as the command line's JSON \
     does (`not_found`, `still_in_use`, ...); `sqlstate` is the server's SQLSTATE code when the \
     server reported the error, else None."
);
create_exception!(
    rds_pg,
    InvalidName,
    RdsPgError,
    "A role, database or schema name that PostgreSQL would truncate or reject, or that rds_pg \
     refuses to touch. Raised before any SQL is sent."
);
create_exception!(
    rds_pg,
    InvalidInput,
    RdsPgError,
    "Bad input other than a name: an option, a connection string, a pgpass file, an inventory. \
     `problems` lists every problem of an invalid inventory (InventoryProblem, each with its \
     location), else None."
);
create_exception!(
    rds_pg,
    PermissionDenied,
    RdsPgError,
    "The connected role lacks a privilege. `hint` holds the fix when rds_pg knows it (for \
     example the GRANT … WITH ADMIN OPTION an administrator must run), else None."
);
create_exception!(
    rds_pg,
    NotFound,
    RdsPgError,
    "A role, database, schema or extension that does not exist."
);
create_exception!(
    rds_pg,
    StillInUse,
    RdsPgError,
    "An object is in use: sessions are connected to it, or a lock was not granted within \
     lock_timeout."
);
create_exception!(
    rds_pg,
    PolicyViolation,
    RdsPgError,
    "The request would break a rule rds_pg enforces (for example: using master or a superuser as \
     a project user, or restoring an archive as anyone but the database's unprivileged owner). \
     `hint` holds the fix when rds_pg knows it, else None."
);
create_exception!(
    rds_pg,
    ConnectionError,
    RdsPgError,
    "The server could not be reached or refused the login (also raised by a closed Provisioner). \
     Note: this is rds_pg.ConnectionError, not the built-in ConnectionError."
);
create_exception!(
    rds_pg,
    TlsError,
    RdsPgError,
    "TLS set-up or certificate verification failed."
);
create_exception!(
    rds_pg,
    ServerError,
    RdsPgError,
    "Any other error reported by the server; `sqlstate` says which."
);
create_exception!(
    rds_pg,
    ToolError,
    RdsPgError,
    "An external program (pg_dump, pg_restore, initdb, …) failed. `tool` names it, `status` is its \
     exit status as text and `stderr` what it wrote to standard error."
);
create_exception!(
    rds_pg,
    IoError,
    RdsPgError,
    "A file-system or process error on the client side."
);

/// Adds the exception classes to the module, with the attributes every instance of a class has
/// even when the error did not set them.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<RdsPgError>();
    base.setattr("sqlstate", py.None())?;
    base.setattr("kind", py.None())?;
    py.get_type::<PermissionDenied>()
        .setattr("hint", py.None())?;
    py.get_type::<PolicyViolation>()
        .setattr("hint", py.None())?;
    py.get_type::<InvalidInput>()
        .setattr("problems", py.None())?;
    let tool = py.get_type::<ToolError>();
    for attr in ["tool", "status", "stderr"] {
        tool.setattr(attr, py.None())?;
    }
    m.add("RdsPgError", base)?;
    m.add("InvalidName", py.get_type::<InvalidName>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("StillInUse", py.get_type::<StillInUse>())?;
    m.add("PolicyViolation", py.get_type::<PolicyViolation>())?;
    m.add("ConnectionError", py.get_type::<ConnectionError>())?;
    m.add("TlsError", py.get_type::<TlsError>())?;
    m.add("ServerError", py.get_type::<ServerError>())?;
    m.add("ToolError", tool)?;
    m.add("IoError", py.get_type::<IoError>())?;
    Ok(())
}

/// Turns an rds-pg error into the Python exception of its kind, with `sqlstate`, `hint` and the
/// tool's output as attributes. The message is the error's `Display`, which never holds a
/// password.
pub(crate) fn to_py_err(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    let exc = match err.kind() {
        ErrorKind::InvalidName => InvalidName::new_err(message),
        ErrorKind::InvalidInput => InvalidInput::new_err(message),
        ErrorKind::PermissionDenied => PermissionDenied::new_err(message),
        ErrorKind::NotFound => NotFound::new_err(message),
        ErrorKind::StillInUse => StillInUse::new_err(message),
        ErrorKind::PolicyViolation => PolicyViolation::new_err(message),
        ErrorKind::Connection => ConnectionError::new_err(message),
        ErrorKind::Tls => TlsError::new_err(message),
        ErrorKind::Server => ServerError::new_err(message),
        ErrorKind::Tool => ToolError::new_err(message),
        ErrorKind::Io => IoError::new_err(message),
        _ => RdsPgError::new_err(message),
    };
    if let Err(e) = set_attributes(py, &exc, &err) {
        return e;
    }
    exc
}

fn set_attributes(py: Python<'_>, exc: &PyErr, err: &Error) -> PyResult<()> {
    let value = exc.value(py);
    value.setattr("kind", err.kind().as_str())?;
    if let Some(code) = err.sqlstate() {
        value.setattr("sqlstate", code.code())?;
    }
    if let Some(hint) = err.hint() {
        value.setattr("hint", hint)?;
    }
    if let Error::Tool {
        tool,
        status,
        stderr,
    } = err
    {
        value.setattr("tool", tool.as_str())?;
        value.setattr("status", status.as_str())?;
        value.setattr("stderr", stderr.as_str())?;
    }
    if let Error::ToolVersion { tool, .. } = err {
        value.setattr("tool", tool.as_str())?;
    }
    if let Error::ArchiveVersion { .. } = err {
        value.setattr("tool", "pg_restore")?;
    }
    if let Error::Inventory(inventory) = err {
        value.setattr("problems", crate::inventory::problems(py, inventory)?)?;
    }
    Ok(())
}

/// `Result<T, Error>` → `PyResult<T>` through [`to_py_err`].
pub(crate) trait IntoPyResult<T> {
    /// Converts the error, if any.
    fn py_result(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py_err(py, e))
    }
}

/// The error of a call on a closed provisioner or a stopped sandbox.
pub(crate) fn closed(what: &str) -> PyErr {
    ConnectionError::new_err(format!("{what} is closed"))
}

/// Shows, as a Python `UserWarning`, what libpq would print on standard error when `options`
/// consult a password file it then ignores (open to the group or others, not a plain file): the
/// core returns the warning instead of printing it.
///
/// # Errors
/// The warning raised as an exception, when the warnings filter says so (`-W error`).
pub(crate) fn warn_about_pgpass(
    py: Python<'_>,
    options: &rds_pg_core::ConnectOptions,
) -> PyResult<()> {
    let Some(warning) = options.pgpass_warning() else {
        return Ok(());
    };
    // A path cannot hold a NUL, so neither can the message; be safe anyway.
    let message = std::ffi::CString::new(warning.to_string().replace('\0', "?"))
        .expect("NUL characters were replaced");
    let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
    PyErr::warn(py, category.as_any(), &message, 1)
}
