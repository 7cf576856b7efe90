//! Validated PostgreSQL names: [`RoleName`], [`DatabaseName`], [`SchemaName`].
//!
//! PostgreSQL silently truncates identifiers longer than 63 bytes (`NAMEDATALEN - 1`), which can make
//! two different names collide; rds-pg refuses them instead. Names are case-sensitive and may hold
//! spaces, quotes and any UTF-8: they are always quoted with
//! [`postgres_protocol::escape::escape_identifier`] in SQL.

use std::fmt;

use crate::error::{Error, NameKind, Result};

/// Longest identifier PostgreSQL keeps without truncation, in bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// Names rds-pg never creates, alters or drops (beyond the `pg_` and `rds_` prefixes).
pub const RESERVED_NAMES: &[&str] = &["rdsadmin", "public", "postgres", "template0", "template1"];

fn validate(kind: NameKind, name: &str) -> Result<()> {
    let refuse = |reason: String| Error::InvalidName {
        kind,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(refuse("must not be empty".into()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(refuse(format!(
            "is {} bytes long; PostgreSQL would silently truncate it to {MAX_NAME_BYTES} bytes",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(refuse("must not contain a NUL character".into()));
    }
    if name.starts_with("pg_") {
        return Err(refuse(
            "names starting with \"pg_\" are reserved by PostgreSQL".into(),
        ));
    }
    Ok(())
}

fn validate_creatable(kind: NameKind, name: &str) -> Result<()> {
    if matches!(kind, NameKind::Role) && name == "none" {
        // CREATE ROLE refuses it as it refuses "public" (role name "none" is reserved).
        return Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
            reason: "is reserved by PostgreSQL as a role name".into(),
        });
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
            reason: "is reserved on RDS; rds-pg does not create, alter or drop it".into(),
        });
    }
    if name.starts_with("rds_") {
        return Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
            reason: "names starting with \"rds_\" are reserved by Amazon RDS".into(),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// Validates a name that refers to an object: 1–63 bytes, no NUL, no `pg_` prefix.
            ///
            /// # Errors
            /// [`Error::InvalidName`] saying why the name was refused.
            pub fn new(name: impl Into<String>) -> Result<Self> {
                let name = name.into();
                validate($kind, &name)?;
                Ok($ty(name))
            }

            /// Validates a name rds-pg may create, alter or drop: as [`Self::new`], and also not
            /// one of [`RESERVED_NAMES`] nor starting with `rds_`.
            ///
            /// # Errors
            /// [`Error::InvalidName`] saying why the name was refused.
            pub fn creatable(name: impl Into<String>) -> Result<Self> {
                let name = Self::new(name)?;
                name.ensure_creatable()?;
                Ok(name)
            }

            /// Fails when this name is reserved (see [`Self::creatable`]).
            ///
            /// # Errors
            /// [`Error::InvalidName`] for a reserved name.
            pub fn ensure_creatable(&self) -> Result<()> {
                validate_creatable($kind, &self.0)
            }

            /// A name read from the server's catalog: it exists, so it is taken as it is.
            pub(crate) fn from_catalog(name: impl Into<String>) -> Self {
                $ty(name.into())
            }

            /// The name as PostgreSQL stores it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name quoted as an SQL identifier (`"Weird ""Name"""`).
            pub fn quoted(&self) -> String {
                postgres_protocol::escape::escape_identifier(&self.0)
            }

            /// The name quoted as an SQL string literal, for functions that take a name as text.
            pub fn literal(&self) -> String {
                postgres_protocol::escape::escape_literal(&self.0)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// The name of a role (a user or a group).
    RoleName,
    NameKind::Role
);
name_type!(
    /// The name of a database.
    DatabaseName,
    NameKind::Database
);
name_type!(
    /// The name of a schema.
    SchemaName,
    NameKind::Schema
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes_and_keeps_case_spaces_unicode() {
        assert_eq!(
            RoleName::new("Weird \"Name\"").unwrap().quoted(),
            "\"Weird \"\"Name\"\"\""
        );
        assert_eq!(RoleName::new("app").unwrap().quoted(), "\"app\"");
        assert_eq!(DatabaseName::new("My DB").unwrap().quoted(), "\"My DB\"");
        assert_eq!(
            SchemaName::new("Ünïcødé_σχήμα").unwrap().quoted(),
            "\"Ünïcødé_σχήμα\""
        );
        assert_eq!(RoleName::new("o'brien").unwrap().literal(), "'o''brien'");
        assert_eq!(
            RoleName::new("back\\slash").unwrap().literal(),
            " E'back\\\\slash'"
        );
    }

    #[test]
    fn length_is_counted_in_bytes() {
        let ok = "a".repeat(63);
        assert!(RoleName::new(ok.as_str()).is_ok());
        let err = RoleName::new("a".repeat(64)).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidName {
                kind: NameKind::Role,
                ..
            }
        ));
        assert!(err.to_string().contains("64 bytes"), "{err}");
        // 21 three-byte characters = 63 bytes; 22 = 66 bytes.
        assert!(DatabaseName::new("€".repeat(21)).is_ok());
        assert!(DatabaseName::new("€".repeat(22)).is_err());
    }

    #[test]
    fn empty_nul_and_pg_prefix_are_refused() {
        for bad in ["", "a\0b", "pg_foo", "pg_"] {
            let err = SchemaName::new(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidName, "{bad:?}");
        }
        // Only the exact lower-case prefix is reserved by PostgreSQL.
        assert!(RoleName::new("PG_upper").is_ok());
    }

    #[test]
    fn reserved_names_can_be_referenced_but_not_created() {
        for name in [
            "rdsadmin",
            "public",
            "postgres",
            "template0",
            "template1",
            "rds_superuser",
        ] {
            assert!(RoleName::new(name).is_ok(), "{name}");
            let err = RoleName::creatable(name).unwrap_err();
            assert!(err.to_string().contains("reserved"), "{err}");
        }
        // PostgreSQL reserves "none" as a role name only.
        let err = RoleName::creatable("none").unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        assert!(DatabaseName::creatable("none").is_ok());
        assert!(
            DatabaseName::creatable("Postgres").is_ok(),
            "names are case-sensitive"
        );
        assert!(RoleName::creatable("app_user").is_ok());
    }

    #[test]
    fn debug_shows_kind_and_name() {
        assert_eq!(
            format!("{:?}", RoleName::new("x").unwrap()),
            "RoleName(\"x\")"
        );
    }
}
