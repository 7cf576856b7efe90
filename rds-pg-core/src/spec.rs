//! What the user wants: [`UserSpec`], [`DatabaseSpec`], [`Extension`], [`ReadOnlyGrant`].

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName, SchemaName};
use crate::secret::Password;

/// A project's login role: `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`.
///
/// The password is used when the role is created (none given: one is generated and returned once
/// in the report). An existing role's password is left alone; rotate it explicitly.
///
/// An IAM user ([`UserSpec::iam`]) has no password: it is a member of RDS's `rds_iam` and logs
/// in with IAM authentication tokens (`aws rds generate-db-auth-token`, see
/// [`crate::ConnectOptions::password_command`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// The role's name.
    pub name: RoleName,
    /// The password to set on creation; `None` generates one.
    pub password: Option<Password>,
    /// `CONNECTION LIMIT`; `None` leaves it as it is (unlimited for a new role).
    pub connection_limit: Option<i32>,
    /// `VALID UNTIL` as PostgreSQL reads a timestamp (`2030-01-01`, `infinity`); `None` leaves it.
    pub valid_until: Option<String>,
    /// IAM database authentication: `Some(true)` makes the role an IAM user (`GRANT rds_iam`,
    /// `PASSWORD NULL`), `Some(false)` a password user (`REVOKE rds_iam`, a new password);
    /// `None` leaves an existing role as it is (a new role gets a password).
    pub iam: Option<bool>,
}

impl UserSpec {
    /// A spec for the role `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name rds-pg may not create (see [`RoleName::creatable`]).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        Ok(UserSpec {
            name: RoleName::creatable(name)?,
            password: None,
            connection_limit: None,
            valid_until: None,
            iam: None,
        })
    }

    /// Sets the password used on creation.
    pub fn password(mut self, password: impl Into<Password>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the connection limit (-1: unlimited).
    pub fn connection_limit(mut self, limit: i32) -> Self {
        self.connection_limit = Some(limit);
        self
    }

    /// Sets the expiry of the password.
    pub fn valid_until(mut self, timestamp: impl Into<String>) -> Self {
        self.valid_until = Some(timestamp.into());
        self
    }

    /// Chooses the authentication: `true` makes the role an IAM user, `false` a password user.
    ///
    /// An IAM user is `LOGIN` with no password (`PASSWORD NULL`) and a member of `rds_iam`: RDS
    /// then accepts only IAM authentication tokens for it. No password is generated for it, and
    /// a credential delivery writes nothing (there is no secret to deliver; the connection
    /// details are the instance's and the role's name). Switching an existing role is an
    /// explicit change of the plan: to IAM, `GRANT rds_iam` and `ALTER ROLE … PASSWORD NULL`;
    /// back, `REVOKE rds_iam` and a new password (the spec's or a generated one, delivered as a
    /// new role's). Without this call an existing role keeps its authentication, and an IAM
    /// user found without `rds_iam` (a run killed while it was suspended) is left so: call
    /// `iam(true)` to converge it.
    pub fn iam(mut self, iam: bool) -> Self {
        self.iam = Some(iam);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.name.ensure_creatable()?;
        if self.iam == Some(true) && self.password.is_some() {
            return Err(Error::InvalidInput(format!(
                "{:?} is an IAM user: it has no password (drop the password or the IAM setting)",
                self.name.as_str()
            )));
        }
        if let Some(limit) = self.connection_limit {
            if limit < -1 {
                return Err(Error::InvalidInput(format!(
                    "connection limit {limit} is invalid: use -1 (unlimited) or more"
                )));
            }
        }
        if let Some(ts) = &self.valid_until {
            if ts.trim().is_empty() || ts.contains('\0') {
                return Err(Error::InvalidInput(
                    "valid_until must be a timestamp".into(),
                ));
            }
        }
        if let Some(p) = &self.password {
            crate::secret::check_new_password(p)?;
        }
        Ok(())
    }
}

/// An extension, by the name `CREATE EXTENSION` takes.
///
/// Whether it is trusted (creatable by the database owner) is read from the server's catalog, not
/// from this list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Extension {
    /// `postgis`; its `spatial_ref_sys` table is re-owned to the database owner.
    Postgis,
    /// `postgis_topology` (needs `postgis`); its schema and tables are re-owned to the owner.
    PostgisTopology,
    /// `hstore`.
    Hstore,
    /// `citext`.
    Citext,
    /// `pg_trgm`.
    PgTrgm,
    /// `uuid-ossp`.
    UuidOssp,
    /// `pgcrypto`.
    Pgcrypto,
    /// `unaccent`.
    Unaccent,
    /// `btree_gist`.
    BtreeGist,
    /// `btree_gin`.
    BtreeGin,
    /// `ltree`.
    Ltree,
    /// `fuzzystrmatch`.
    Fuzzystrmatch,
    /// `pg_stat_statements`.
    PgStatStatements,
    /// Any other extension, by name.
    Other(String),
}

const KNOWN: &[(&str, Extension)] = &[
    ("postgis", Extension::Postgis),
    ("postgis_topology", Extension::PostgisTopology),
    ("hstore", Extension::Hstore),
    ("citext", Extension::Citext),
    ("pg_trgm", Extension::PgTrgm),
    ("uuid-ossp", Extension::UuidOssp),
    ("pgcrypto", Extension::Pgcrypto),
    ("unaccent", Extension::Unaccent),
    ("btree_gist", Extension::BtreeGist),
    ("btree_gin", Extension::BtreeGin),
    ("ltree", Extension::Ltree),
    ("fuzzystrmatch", Extension::Fuzzystrmatch),
    ("pg_stat_statements", Extension::PgStatStatements),
];

impl Extension {
    /// Every extension rds-pg knows by name (the named variants), with its name, in a fixed
    /// order.
    pub fn known() -> impl Iterator<Item = (&'static str, Extension)> {
        KNOWN.iter().cloned()
    }

    /// The extension's name in `pg_extension`.
    pub fn name(&self) -> &str {
        match self {
            Extension::Other(name) => name,
            known => KNOWN
                .iter()
                .find(|(_, e)| e == known)
                .map(|(n, _)| *n)
                .unwrap_or(""),
        }
    }

    /// The extension named `name` (a known variant when there is one).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty name, one longer than 63 bytes, or with NUL.
    pub fn from_name(name: &str) -> Result<Self> {
        if name.is_empty() || name.len() > crate::ident::MAX_NAME_BYTES || name.contains('\0') {
            return Err(Error::InvalidInput(format!(
                "invalid extension name {name:?}"
            )));
        }
        Ok(KNOWN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| Extension::Other(name.to_owned())))
    }

    /// Whether the extension's install script reads the session's *default* `search_path` (its
    /// `reset_val`) and makes it, plus its own schema, both the path for the rest of the script
    /// and the database's default: PostGIS topology and the TIGER geocoder do (`AddToSearchPath`).
    /// rds-pg creates these in a session of their own whose default is PostgreSQL's
    /// (`"$user", public`), as psql's would be, so the script finds PostGIS and the database's
    /// default path comes out as PostGIS documents it.
    pub fn script_reads_default_search_path(&self) -> bool {
        matches!(self.name(), "postgis_topology" | "postgis_tiger_geocoder")
    }

    /// Extensions that must exist first.
    pub fn requires(&self) -> &'static [Extension] {
        match self {
            Extension::PostgisTopology => &[Extension::Postgis],
            _ => &[],
        }
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Extension {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Extension::from_name(s)
    }
}

/// A project's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// The database's name.
    pub name: DatabaseName,
    /// The role that owns it (a project user, never a superuser or master).
    pub owner: RoleName,
    /// Extensions to create in it.
    pub extensions: Vec<Extension>,
    /// Encoding (default `UTF8`).
    pub encoding: String,
    /// `LOCALE` (sets both collation and ctype), if any.
    pub locale: Option<String>,
    /// `LC_COLLATE`, if any.
    pub lc_collate: Option<String>,
    /// `LC_CTYPE`, if any.
    pub lc_ctype: Option<String>,
    /// Template; `None` (the default) picks `template0` on 15+ and `template1` before 15, whose
    /// schema `public` belongs to master on RDS (template0's belongs to `rdsadmin`, which master
    /// can neither re-own nor restrict). A template other than `template0` is audited first:
    /// objects of roles other than master, or CREATE for anyone else in it, refuse the creation
    /// (everything in a template is copied into the new database).
    pub template: Option<DatabaseName>,
    /// `CONNECTION LIMIT`, if any.
    pub connection_limit: Option<i32>,
    /// Strict extensions (default off): also refuse a *trusted* extension when the schema its
    /// script runs in holds functions, aggregates or operators named like `pg_catalog` ones that
    /// belong to no extension. Untrusted extensions (created by master) are refused in that case
    /// whatever this says; trusted ones, created as the owner, are otherwise created with a note.
    pub strict: bool,
    /// Allow shadowing (default off): create an *untrusted* extension (its script runs as
    /// master) even when the schema it runs in holds functions, aggregates or operators named
    /// like `pg_catalog` ones — for a project whose own objects legitimately carry such names,
    /// after the operator has checked them. The plan notes them.
    pub allow_shadowing: bool,
    /// Take over (default off): when the database exists and belongs to another role, hand it
    /// to [`DatabaseSpec::owner`] (`ALTER DATABASE … OWNER TO`) instead of refusing — moving a
    /// database from one project to another is never done unasked.
    pub take_over: bool,
}

impl DatabaseSpec {
    /// A spec for database `name` owned by `owner`, UTF8, default template, no extensions.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a reserved database name or an invalid owner name.
    pub fn new(name: impl Into<String>, owner: impl Into<String>) -> Result<Self> {
        Ok(DatabaseSpec {
            name: DatabaseName::creatable(name)?,
            owner: RoleName::creatable(owner)?,
            extensions: Vec::new(),
            encoding: "UTF8".into(),
            locale: None,
            lc_collate: None,
            lc_ctype: None,
            template: None,
            connection_limit: None,
            strict: false,
            allow_shadowing: false,
            take_over: false,
        })
    }

    /// Sets take over (see [`DatabaseSpec::take_over`]).
    pub fn take_over(mut self, take_over: bool) -> Self {
        self.take_over = take_over;
        self
    }

    /// Sets allow shadowing (see [`DatabaseSpec::allow_shadowing`]).
    pub fn allow_shadowing(mut self, allow: bool) -> Self {
        self.allow_shadowing = allow;
        self
    }

    /// Sets strict extensions (see [`DatabaseSpec::strict`]).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Adds an extension.
    pub fn extension(mut self, extension: Extension) -> Self {
        if !self.extensions.contains(&extension) {
            self.extensions.push(extension);
        }
        self
    }

    /// Adds several extensions.
    pub fn extensions(mut self, extensions: impl IntoIterator<Item = Extension>) -> Self {
        for e in extensions {
            self = self.extension(e);
        }
        self
    }

    /// Sets the encoding.
    pub fn encoding(mut self, encoding: impl Into<String>) -> Self {
        self.encoding = encoding.into();
        self
    }

    /// Sets `LOCALE`.
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }

    /// Sets `LC_COLLATE`.
    pub fn lc_collate(mut self, value: impl Into<String>) -> Self {
        self.lc_collate = Some(value.into());
        self
    }

    /// Sets `LC_CTYPE`.
    pub fn lc_ctype(mut self, value: impl Into<String>) -> Self {
        self.lc_ctype = Some(value.into());
        self
    }

    /// Sets the template database.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an invalid name.
    pub fn template(mut self, template: impl Into<String>) -> Result<Self> {
        self.template = Some(DatabaseName::new(template)?);
        Ok(self)
    }

    /// Sets the connection limit (-1: unlimited).
    pub fn connection_limit(mut self, limit: i32) -> Self {
        self.connection_limit = Some(limit);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.name.ensure_creatable()?;
        self.owner.ensure_creatable()?;
        for (what, v) in [
            ("encoding", Some(&self.encoding)),
            ("locale", self.locale.as_ref()),
            ("lc_collate", self.lc_collate.as_ref()),
            ("lc_ctype", self.lc_ctype.as_ref()),
        ] {
            if let Some(v) = v {
                if v.is_empty() || v.contains('\0') || v.len() > 128 {
                    return Err(Error::InvalidInput(format!("invalid {what} {v:?}")));
                }
            }
        }
        if matches!(self.connection_limit, Some(l) if l < -1) {
            return Err(Error::InvalidInput(
                "connection limit must be -1 (unlimited) or more".into(),
            ));
        }
        Ok(())
    }
}

/// Read-only access for `role` to `database`: CONNECT, USAGE on the schemas, SELECT on their tables
/// (and sequences), and default privileges so tables the owner creates later are readable too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOnlyGrant {
    /// The database.
    pub database: DatabaseName,
    /// The login role that gets read access.
    pub role: RoleName,
    /// Schemas (default `public`).
    pub schemas: Vec<SchemaName>,
    /// Also SELECT on sequences (default true).
    pub sequences: bool,
    /// Also objects created later by the database owner (default true).
    pub future: bool,
}

impl ReadOnlyGrant {
    /// Read access for `role` to schema `public` of `database`, sequences and future objects
    /// included.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for invalid names.
    pub fn new(database: impl Into<String>, role: impl Into<String>) -> Result<Self> {
        Ok(ReadOnlyGrant {
            database: DatabaseName::creatable(database)?,
            role: RoleName::creatable(role)?,
            schemas: vec![SchemaName::new("public")?],
            sequences: true,
            future: true,
        })
    }

    /// Replaces the schemas.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for invalid names.
    pub fn schemas<S: Into<String>>(
        mut self,
        schemas: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        self.schemas = schemas
            .into_iter()
            .map(SchemaName::new)
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// Whether sequences are included.
    pub fn sequences(mut self, yes: bool) -> Self {
        self.sequences = yes;
        self
    }

    /// Whether future objects are included.
    pub fn future(mut self, yes: bool) -> Self {
        self.future = yes;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.database.ensure_creatable()?;
        self.role.ensure_creatable()?;
        if self.schemas.is_empty() {
            return Err(Error::InvalidInput(
                "a read-only grant needs at least one schema".into(),
            ));
        }
        Ok(())
    }
}

/// Options of [`crate::Provisioner::drop_database`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropDatabaseOptions {
    /// Terminate connected sessions (`DROP DATABASE … WITH (FORCE)`) instead of failing with
    /// [`Error::StillInUse`]. Default false.
    pub force: bool,
}

impl DropDatabaseOptions {
    /// The defaults: fail when sessions are connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether connected sessions are terminated.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

/// Options of [`crate::Provisioner::drop_user`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropUserOptions {
    /// Give what the role owns (objects in every database, and databases) to this role before
    /// dropping it, instead of dropping the objects. Without it, a role that owns a database is
    /// refused.
    pub reassign_to: Option<RoleName>,
}

impl DropUserOptions {
    /// The defaults: drop what the role owns.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reassigns what the role owns to `role` (`REASSIGN OWNED BY … TO role`).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an invalid name.
    pub fn reassign_to(mut self, role: impl Into<String>) -> Result<Self> {
        self.reassign_to = Some(RoleName::new(role)?);
        Ok(self)
    }
}
