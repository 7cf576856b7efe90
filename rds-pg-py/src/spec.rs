//! `UserSpec`, `DatabaseSpec`, `ReadOnlyGrant` and `Extension`: keyword arguments with the Rust
//! defaults, validated on construction.

use pyo3::prelude::*;
use pyo3::types::PyString;
use rds_pg_core as core;

use crate::errors::IntoPyResult;
use crate::secret::{optional_password_arg, Secret};

/// Defines the Python `Extension` class from one list of (Python name, core variant) pairs, with
/// its conversions to and from the core's `Extension`.
macro_rules! known_extensions {
    ($($(#[doc = $doc:literal])* $name:literal => $variant:ident,)*) => {
        /// An extension known by name. Every argument that takes extensions also accepts their
        /// names as strings (`"postgis"`, `"uuid-ossp"`), including extensions not listed here.
        #[pyclass(eq, frozen, hash, module = "rds_pg", name = "Extension")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Extension {
            $($(#[doc = $doc])* #[pyo3(name = $name)] $variant,)*
        }

        impl Extension {
            /// Every member, in the class's order.
            #[cfg(test)]
            const ALL: &'static [(&'static str, Extension)] = &[$(($name, Extension::$variant),)*];

            fn to_core(self) -> core::Extension {
                match self {
                    $(Extension::$variant => core::Extension::$variant,)*
                }
            }

            fn from_core(extension: &core::Extension) -> Option<Self> {
                match extension {
                    $(core::Extension::$variant => Some(Extension::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

known_extensions! {
    /// `postgis`; its `spatial_ref_sys` table is handed to the database owner.
    "POSTGIS" => Postgis,
    /// `postgis_topology` (needs `postgis`); its schema and tables are handed to the owner.
    "POSTGIS_TOPOLOGY" => PostgisTopology,
    /// `hstore`.
    "HSTORE" => Hstore,
    /// `citext`.
    "CITEXT" => Citext,
    /// `pg_trgm`.
    "PG_TRGM" => PgTrgm,
    /// `uuid-ossp`.
    "UUID_OSSP" => UuidOssp,
    /// `pgcrypto`.
    "PGCRYPTO" => Pgcrypto,
    /// `unaccent`.
    "UNACCENT" => Unaccent,
    /// `btree_gist`.
    "BTREE_GIST" => BtreeGist,
    /// `btree_gin`.
    "BTREE_GIN" => BtreeGin,
    /// `ltree`.
    "LTREE" => Ltree,
    /// `fuzzystrmatch`.
    "FUZZYSTRMATCH" => Fuzzystrmatch,
    /// `pg_stat_statements`.
    "PG_STAT_STATEMENTS" => PgStatStatements,
}

#[pymethods]
impl Extension {
    /// The name `CREATE EXTENSION` takes (`"uuid-ossp"`).
    #[getter]
    fn value(&self) -> String {
        self.to_core().name().to_owned()
    }

    /// The extension named `name`: an `Extension` member when rds_pg knows it, else the name
    /// itself (as a `str`).
    ///
    /// Raises `InvalidInput` for an empty name, one longer than 63 bytes, or one with NUL.
    #[staticmethod]
    fn from_name(py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        let extension = core::Extension::from_name(name).py_result(py)?;
        extension_to_py(py, &extension)
    }

    fn __str__(&self) -> String {
        self.value()
    }
}

/// An extension for Python: an `Extension` member, or its name for one rds_pg does not list.
pub(crate) fn extension_to_py(py: Python<'_>, extension: &core::Extension) -> PyResult<Py<PyAny>> {
    Ok(match Extension::from_core(extension) {
        Some(known) => Py::new(py, known)?.into_any(),
        None => PyString::new(py, extension.name()).into_any().unbind(),
    })
}

/// An extension argument: an `Extension` member or a name.
pub(crate) fn extension_arg(value: &Bound<'_, PyAny>) -> PyResult<core::Extension> {
    if let Ok(known) = value.cast::<Extension>() {
        return Ok(known.get().to_core());
    }
    if value.is_instance_of::<PyString>() {
        let name: String = value.extract()?;
        return core::Extension::from_name(&name).py_result(value.py());
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "an extension must be an rds_pg.Extension or a str, not {}",
        value.get_type().name()?
    )))
}

/// A list of extension arguments (a single string is refused: it would be read letter by
/// letter).
pub(crate) fn extensions_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<core::Extension>> {
    if value.is_instance_of::<PyString>() || value.cast::<Extension>().is_ok() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "extensions must be a list of rds_pg.Extension or str, not a single one",
        ));
    }
    value
        .try_iter()?
        .map(|item| extension_arg(&item?))
        .collect()
}

/// Python's `repr()` of a string.
pub(crate) fn str_repr(py: Python<'_>, value: &str) -> PyResult<String> {
    PyString::new(py, value).repr()?.extract()
}

/// Python's `repr()` of an optional string.
fn optional_str_repr(py: Python<'_>, value: Option<&str>) -> PyResult<String> {
    value.map_or(Ok("None".into()), |v| str_repr(py, v))
}

/// Python's `repr()` of a list of strings.
fn list_repr<'a>(py: Python<'_>, values: impl IntoIterator<Item = &'a str>) -> PyResult<String> {
    let items = values
        .into_iter()
        .map(|v| str_repr(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(format!("[{}]", items.join(", ")))
}

fn optional_int_repr(value: Option<i32>) -> String {
    value.map_or("None".into(), |v| v.to_string())
}

/// A project's login role: `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`.
///
/// `password` (a `str` or `Secret`) is set when the role is created; without one a password is
/// generated and returned once in `Report.generated_password`. An existing role's password is
/// left alone (use `Provisioner.rotate_password`). `connection_limit` and `valid_until` (a
/// timestamp PostgreSQL reads, such as `"2030-01-01"` or `"infinity"`) are left as they are when
/// None. `iam=True` makes an IAM user (no password, a member of `rds_iam`, logs in with IAM
/// tokens), `iam=False` a password user; an existing user is switched explicitly in the plan
/// (`GRANT rds_iam` + `PASSWORD NULL`, or `REVOKE rds_iam` + a new password), and `iam=None`
/// leaves it as it is. Raises `InvalidName` for a name rds_pg may not create.
#[pyclass(frozen, module = "rds_pg", name = "UserSpec")]
pub struct UserSpec {
    pub(crate) inner: core::UserSpec,
}

#[pymethods]
impl UserSpec {
    #[new]
    #[pyo3(signature = (name, *, password=None, connection_limit=None, valid_until=None, iam=None))]
    fn new(
        py: Python<'_>,
        name: String,
        password: Option<&Bound<'_, PyAny>>,
        connection_limit: Option<i32>,
        valid_until: Option<String>,
        iam: Option<bool>,
    ) -> PyResult<Self> {
        let mut inner = core::UserSpec::new(name).py_result(py)?;
        inner.password = optional_password_arg(password)?;
        inner.connection_limit = connection_limit;
        inner.valid_until = valid_until;
        inner.iam = iam;
        Ok(UserSpec { inner })
    }

    /// True for an IAM user, False for a password user, None to leave an existing user as it is.
    #[getter]
    fn iam(&self) -> Option<bool> {
        self.inner.iam
    }

    /// The role's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name.as_str()
    }

    /// The password set on creation, or None (one is generated).
    #[getter]
    fn password(&self, py: Python<'_>) -> PyResult<Option<Py<Secret>>> {
        self.inner
            .password
            .clone()
            .map(|p| Secret::wrap(py, p))
            .transpose()
    }

    /// `CONNECTION LIMIT`, or None to leave it as it is.
    #[getter]
    fn connection_limit(&self) -> Option<i32> {
        self.inner.connection_limit
    }

    /// `VALID UNTIL`, or None to leave it as it is.
    #[getter]
    fn valid_until(&self) -> Option<&str> {
        self.inner.valid_until.as_deref()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "UserSpec(name={}, password={}, connection_limit={}, valid_until={})",
            str_repr(py, self.inner.name.as_str())?,
            if self.inner.password.is_some() {
                "Secret([redacted])"
            } else {
                "None"
            },
            optional_int_repr(self.inner.connection_limit),
            optional_str_repr(py, self.inner.valid_until.as_deref())?,
        ))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<UserSpec>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}

/// A project's database, owned by its user.
///
/// `extensions` lists `Extension` members or names; `encoding` defaults to `"UTF8"`; `template`
/// None picks `template0` on 15+ and `template1` before 15 (see the Rust documentation); `strict`
/// also refuses trusted extensions next to names the owner planted. Raises `InvalidName` for a
/// reserved database name or an invalid owner.
#[pyclass(frozen, module = "rds_pg", name = "DatabaseSpec")]
pub struct DatabaseSpec {
    pub(crate) inner: core::DatabaseSpec,
}

#[pymethods]
impl DatabaseSpec {
    #[new]
    #[pyo3(signature = (
        name, owner, *, extensions=None, encoding=None, locale=None, lc_collate=None,
        lc_ctype=None, template=None, connection_limit=None, strict=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: String,
        owner: String,
        extensions: Option<&Bound<'_, PyAny>>,
        encoding: Option<String>,
        locale: Option<String>,
        lc_collate: Option<String>,
        lc_ctype: Option<String>,
        template: Option<String>,
        connection_limit: Option<i32>,
        strict: bool,
    ) -> PyResult<Self> {
        let mut inner = core::DatabaseSpec::new(name, owner).py_result(py)?;
        if let Some(extensions) = extensions {
            inner = inner.extensions(extensions_arg(extensions)?);
        }
        if let Some(encoding) = encoding {
            inner = inner.encoding(encoding);
        }
        inner.locale = locale;
        inner.lc_collate = lc_collate;
        inner.lc_ctype = lc_ctype;
        if let Some(template) = template {
            inner = inner.template(template).py_result(py)?;
        }
        inner.connection_limit = connection_limit;
        inner = inner.strict(strict);
        Ok(DatabaseSpec { inner })
    }

    /// The database's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name.as_str()
    }

    /// The role that owns it.
    #[getter]
    fn owner(&self) -> &str {
        self.inner.owner.as_str()
    }

    /// The extensions to create: `Extension` members, or names for unlisted ones.
    #[getter]
    fn extensions(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.inner
            .extensions
            .iter()
            .map(|e| extension_to_py(py, e))
            .collect()
    }

    /// The encoding (default `"UTF8"`).
    #[getter]
    fn encoding(&self) -> &str {
        &self.inner.encoding
    }

    /// `LOCALE`, or None.
    #[getter]
    fn locale(&self) -> Option<&str> {
        self.inner.locale.as_deref()
    }

    /// `LC_COLLATE`, or None.
    #[getter]
    fn lc_collate(&self) -> Option<&str> {
        self.inner.lc_collate.as_deref()
    }

    /// `LC_CTYPE`, or None.
    #[getter]
    fn lc_ctype(&self) -> Option<&str> {
        self.inner.lc_ctype.as_deref()
    }

    /// The template, or None for the version's default.
    #[getter]
    fn template(&self) -> Option<&str> {
        self.inner.template.as_ref().map(|t| t.as_str())
    }

    /// `CONNECTION LIMIT`, or None.
    #[getter]
    fn connection_limit(&self) -> Option<i32> {
        self.inner.connection_limit
    }

    /// Whether trusted extensions are refused too when the owner's schema holds names that
    /// shadow pg_catalog's (untrusted ones always are).
    #[getter]
    fn strict(&self) -> bool {
        self.inner.strict
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "DatabaseSpec(name={}, owner={}, extensions={}, encoding={}, template={})",
            str_repr(py, self.inner.name.as_str())?,
            str_repr(py, self.inner.owner.as_str())?,
            list_repr(py, self.inner.extensions.iter().map(|e| e.name()))?,
            str_repr(py, &self.inner.encoding)?,
            optional_str_repr(py, self.template())?,
        ))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<DatabaseSpec>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}

/// Read-only access for `role` to `database`: CONNECT, USAGE on `schemas` (default
/// `["public"]`), SELECT on their tables, on sequences when `sequences` (default True), and on
/// objects the owner creates later when `future` (default True). Raises `InvalidName` for invalid
/// names.
#[pyclass(frozen, module = "rds_pg", name = "ReadOnlyGrant")]
pub struct ReadOnlyGrant {
    pub(crate) inner: core::ReadOnlyGrant,
}

#[pymethods]
impl ReadOnlyGrant {
    #[new]
    #[pyo3(signature = (database, role, *, schemas=None, sequences=true, future=true))]
    fn new(
        py: Python<'_>,
        database: String,
        role: String,
        schemas: Option<Vec<String>>,
        sequences: bool,
        future: bool,
    ) -> PyResult<Self> {
        let mut inner = core::ReadOnlyGrant::new(database, role).py_result(py)?;
        if let Some(schemas) = schemas {
            inner = inner.schemas(schemas).py_result(py)?;
        }
        Ok(ReadOnlyGrant {
            inner: inner.sequences(sequences).future(future),
        })
    }

    /// The database.
    #[getter]
    fn database(&self) -> &str {
        self.inner.database.as_str()
    }

    /// The role that gets read access.
    #[getter]
    fn role(&self) -> &str {
        self.inner.role.as_str()
    }

    /// The schemas.
    #[getter]
    fn schemas(&self) -> Vec<&str> {
        self.inner.schemas.iter().map(|s| s.as_str()).collect()
    }

    /// Whether sequences are included.
    #[getter]
    fn sequences(&self) -> bool {
        self.inner.sequences
    }

    /// Whether objects created later are included.
    #[getter]
    fn future(&self) -> bool {
        self.inner.future
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ReadOnlyGrant(database={}, role={}, schemas={}, sequences={}, future={})",
            str_repr(py, self.inner.database.as_str())?,
            str_repr(py, self.inner.role.as_str())?,
            list_repr(py, self.schemas())?,
            if self.inner.sequences {
                "True"
            } else {
                "False"
            },
            if self.inner.future { "True" } else { "False" },
        ))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<ReadOnlyGrant>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Python member is one of the core's named extensions (not `Other`), under the name
    /// the core gives it, spelled as a Python constant.
    #[test]
    fn every_member_is_a_core_extension_under_its_core_name() {
        for (python_name, member) in Extension::ALL {
            let core = member.to_core();
            assert_eq!(
                core::Extension::from_name(core.name()).unwrap(),
                core,
                "{python_name}: the core knows it by name"
            );
            assert!(!matches!(core, core::Extension::Other(_)), "{python_name}");
            assert_eq!(Extension::from_core(&core), Some(*member));
            assert_eq!(*python_name, core.name().to_uppercase().replace('-', "_"));
        }
        let names: std::collections::BTreeSet<&str> =
            Extension::ALL.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), Extension::ALL.len(), "no member twice");
    }

    /// And the other way round: every extension the core knows by name is a Python member.
    #[test]
    fn every_core_extension_is_a_member() {
        for (name, core) in core::Extension::known() {
            assert!(
                Extension::from_core(&core).is_some(),
                "core's {name} has no Python member: add it to known_extensions!"
            );
        }
        assert_eq!(core::Extension::known().count(), Extension::ALL.len());
    }
}
