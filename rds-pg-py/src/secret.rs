//! `Secret`: a password that prints as `[redacted]`, and the conversion of password arguments.

use pyo3::prelude::*;
use pyo3::types::PyString;
use rds_pg_core::Password;

/// A password. `repr()` and `str()` show `[redacted]`; `reveal()` returns the text.
///
/// Generated passwords come back as `Secret`; every argument that takes a password accepts a
/// `Secret` or a `str`. A `Secret` cannot be pickled.
#[pyclass(frozen, module = "rds_pg", name = "Secret")]
pub struct Secret(pub(crate) Password);

#[pymethods]
impl Secret {
    /// Wraps `value`.
    #[new]
    fn new(value: String) -> Self {
        Secret(Password::new(value))
    }

    /// The password's text, for the one place that needs it (a vault, a settings file).
    fn reveal(&self) -> &str {
        self.0.expose()
    }

    fn __repr__(&self) -> &'static str {
        "Secret([redacted])"
    }

    fn __str__(&self) -> &'static str {
        "[redacted]"
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<Secret>() {
            Ok(other) => other.get().0 == self.0,
            Err(_) => false,
        }
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err(
            "a Secret cannot be pickled: reveal() it deliberately",
        ))
    }
}

impl Secret {
    /// Wraps a password for Python.
    pub(crate) fn wrap(py: Python<'_>, password: Password) -> PyResult<Py<Secret>> {
        Py::new(py, Secret(password))
    }
}

/// A password argument: a `Secret` or a `str`.
pub(crate) fn password_arg(value: &Bound<'_, PyAny>) -> PyResult<Password> {
    if let Ok(secret) = value.cast::<Secret>() {
        return Ok(secret.get().0.clone());
    }
    if value.is_instance_of::<PyString>() {
        return Ok(Password::new(value.extract::<String>()?));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "a password must be a str or an rds_pg.Secret, not {}",
        value.get_type().name()?
    )))
}

/// An optional password argument.
pub(crate) fn optional_password_arg(
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Password>> {
    value.filter(|v| !v.is_none()).map(password_arg).transpose()
}
