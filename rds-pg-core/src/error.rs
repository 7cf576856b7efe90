//! The one error type of rds-pg, with kinds a caller can act on.

use std::fmt;

pub use postgres::error::SqlState;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of name failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A login or group role.
    Role,
    /// A database.
    Database,
    /// A schema.
    Schema,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Role => "role name",
            NameKind::Database => "database name",
            NameKind::Schema => "schema name",
        })
    }
}

/// The broad category of an [`Error`], for callers that branch on it (the CLI's exit codes,
/// the Python binding's exception classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A name that PostgreSQL would truncate, reject, or that rds-pg refuses to touch.
    InvalidName,
    /// Bad input other than a name: an option, a connection string, a pgpass file.
    InvalidInput,
    /// The connected role lacks a privilege; the error carries the fix when rds-pg knows it.
    PermissionDenied,
    /// A role, database or extension that does not exist.
    NotFound,
    /// An object is in use (connected sessions, a lock that could not be taken in time).
    StillInUse,
    /// The request would break a rule rds-pg enforces (for example: touching a superuser).
    PolicyViolation,
    /// The server could not be reached or refused the login.
    Connection,
    /// TLS set-up or verification failed.
    Tls,
    /// Any other error reported by the server.
    Server,
    /// An external tool (initdb, pg_dump, …) failed.
    Tool,
    /// A file-system or process error.
    Io,
}

impl ErrorKind {
    /// A stable `snake_case` name (`invalid_name`, `permission_denied`, `still_in_use`, …): the
    /// `kind` of an error in the command line's JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::StillInUse => "still_in_use",
            ErrorKind::PolicyViolation => "policy_violation",
            ErrorKind::Connection => "connection",
            ErrorKind::Tls => "tls",
            ErrorKind::Server => "server",
            ErrorKind::Tool => "tool",
            ErrorKind::Io => "io",
        }
    }
}

impl fmt::Display for ErrorKind {
    /// [`ErrorKind::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure of rds-pg.
///
/// Causes are kept (`std::error::Error::source`) and a server's SQLSTATE is reachable through
/// [`Error::sqlstate`]. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name failed validation before any SQL was sent.
    #[error("invalid {kind} {name:?}: {reason}")]
    InvalidName {
        /// Which kind of name.
        kind: NameKind,
        /// The name as given (lossy UTF-8 when it was not valid UTF-8).
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// Bad input other than a name.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The connected role lacks a privilege.
    #[error("permission denied: {message}{}", hint.as_ref().map(|h| format!(" (fix: {h})")).unwrap_or_default())]
    PermissionDenied {
        /// What was denied.
        message: String,
        /// How to fix it, when known.
        hint: Option<String>,
        /// The server's error, when the server said it.
        #[source]
        source: Option<postgres::Error>,
    },
    /// Something that must exist does not.
    #[error("not found: {message}")]
    NotFound {
        /// What is missing.
        message: String,
        /// The server's error, when the server said it.
        #[source]
        source: Option<postgres::Error>,
    },
    /// An object is in use.
    #[error("still in use: {message}")]
    StillInUse {
        /// What is in use, and by whom when known.
        message: String,
        /// The server's error, when the server said it.
        #[source]
        source: Option<postgres::Error>,
    },
    /// The request breaks a rule rds-pg enforces.
    #[error("refused: {0}")]
    PolicyViolation(String),
    /// The request breaks a rule rds-pg enforces, and rds-pg knows what an operator runs to
    /// repair the state that made it refuse (kind [`ErrorKind::PolicyViolation`]).
    #[error("refused: {message} (fix: {fix})")]
    Refused {
        /// What was refused, and why.
        message: String,
        /// The SQL or command that repairs it (also [`Error::hint`]).
        fix: String,
    },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to {target}: {message}")]
    Connection {
        /// `host:port/dbname` as user@host:port/dbname.
        target: String,
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// TLS configuration or verification failed.
    #[error("TLS: {message}")]
    Tls {
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Another error reported by the server.
    #[error("server error: {}", describe_db_error(.0))]
    Server(#[source] postgres::Error),
    /// An external tool failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        /// The program that ran.
        tool: String,
        /// Its exit status, as text.
        status: String,
        /// What it wrote to standard error.
        stderr: String,
    },
    /// No client tool (`pg_dump`, `pg_restore`) of a major version at least the server's was found.
    #[error(
        "no {tool} of major version {server_major} or newer for server {server_version} (found: {}); fix: {fix}",
        if found.is_empty() { "none".to_owned() } else { found.join(", ") }
    )]
    ToolVersion {
        /// The tool that was looked for.
        tool: String,
        /// The server's version (`17.2`).
        server_version: String,
        /// The server's major version: the oldest client major that works.
        server_major: u32,
        /// Each client found, as `path (version)`.
        found: Vec<String>,
        /// How to get a client that works.
        fix: String,
    },
    /// Client tools of a suitable major version were found, but none can restore this archive
    /// into this server: pg_restore reads only the archive formats of its own and older pg_dump
    /// versions, and pg_restore 17 and newer set `transaction_timeout`, which servers before 17
    /// reject (checked before anything changes).
    #[error(
        "no pg_restore found can restore the archive {archive} into server {server_version} \
         (found: {}); fix: {fix}",
        if found.is_empty() { "none".to_owned() } else { found.join(", ") }
    )]
    ArchiveVersion {
        /// The archive and what wrote it, as its header says: `shop.dump (written by pg_dump
        /// 18.6, archive format 1.16-0)`.
        archive: String,
        /// The target server's version.
        server_version: String,
        /// Each pg_restore found that is new enough for the server, as `path version (why it
        /// cannot)`.
        found: Vec<String>,
        /// What would work.
        fix: String,
    },
    /// A restore needs extensions the target database lacks and the caller did not name for
    /// master to create (checked before anything changes).
    #[error(
        "not found: the archive uses extensions that database {database:?} lacks: {}; master must \
         create them first (Provisioner::ensure_extensions), or name them as extensions master \
         creates for the restore (RestoreOptions::create_extensions with master's Provisioner)",
        extensions.join(", ")
    )]
    MissingExtensions {
        /// The target database.
        database: String,
        /// The extensions it lacks.
        extensions: Vec<String>,
    },
    /// A restore (also a backup verification's) would run the archive's content with more
    /// privileges than the target database's owner has: the connected role is not the owner, or
    /// it is privileged (SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS, or a member of
    /// a role that is, or of `rds_superuser`, `pg_read_all_data` and the like). Refused before
    /// pg_restore starts.
    #[error(
        "refused: {} (fix: {hint})",
        restore_role_message(role, database, owner, privileges)
    )]
    RestoreRole {
        /// The target database.
        database: String,
        /// The role the restore connected as (its login role).
        role: String,
        /// The target database's owner.
        owner: String,
        /// What makes the role privileged (`CREATEROLE`, `member of rds_superuser`); empty
        /// when the only reason is that it is not the owner.
        privileges: Vec<String>,
        /// How to restore as the owner instead.
        hint: String,
    },
    /// An inventory that could not be loaded: every problem, each at its line (see
    /// [`crate::inventory::Inventory::load`]). Its kind is [`ErrorKind::InvalidInput`].
    #[error("{0}")]
    Inventory(#[from] crate::inventory::InventoryError),
    /// New credentials could not be delivered, so the change that set them was rolled back
    /// (its kind is the delivery error's).
    #[error("credentials not delivered to the {sink}: {message}")]
    NotDelivered {
        /// Where they were to go.
        sink: String,
        /// What failed, and the state left behind.
        message: String,
        /// The delivery's error.
        #[source]
        source: Box<Error>,
    },
    /// A change was made and its credentials delivered, but the transaction's end failed: what
    /// the server kept is unknown (kind [`ErrorKind::Server`]).
    #[error("commit uncertain: {message}")]
    Uncommitted {
        /// What happened, and what to look at.
        message: String,
    },
    /// The operation stopped at a test's fault-injection point as a killed process would, with
    /// nothing cleaned up (feature `fault-injection` only ever produces it).
    #[error("abandoned at a fault-injection point")]
    Abandoned,
    /// A role's credentials are not where the inventory says they were delivered, or cannot be
    /// read back from there (a backup reads them to log in as the project's role). Its kind is
    /// [`ErrorKind::NotFound`].
    #[error("no credentials for role {role:?} in the {expected}: {reason}")]
    MissingCredentials {
        /// The role.
        role: String,
        /// Where they were expected (`password file "/etc/shop/pgpass"`).
        expected: String,
        /// What is wrong there, and how to fix it.
        reason: String,
    },
    /// A backup archive failed verification: it changed since it was written, it does not
    /// restore, or the restored copy differs from what its manifest records. Its kind is
    /// [`ErrorKind::InvalidInput`] (the archive is bad input).
    #[error("backup {archive} failed verification: {}", problems.join("; "))]
    BackupVerification {
        /// The archive.
        archive: String,
        /// Every check that failed.
        problems: Vec<String>,
    },
    /// A file-system or process error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why [`Error::RestoreRole`] refused: the privileges first, else the ownership.
fn restore_role_message(role: &str, database: &str, owner: &str, privileges: &[String]) -> String {
    let why = if privileges.is_empty() {
        format!("it is not the database's owner ({owner:?})")
    } else {
        format!("it is privileged ({})", privileges.join(", "))
    };
    format!(
        "{role:?} may not restore into database {database:?}: {why}, and an archive's content \
         runs with the privileges of the role that restores it"
    )
}

fn describe_db_error(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(detail) = db.detail() {
                s.push_str("; detail: ");
                s.push_str(detail);
            }
            if let Some(hint) = db.hint() {
                s.push_str("; hint: ");
                s.push_str(hint);
            }
            s
        }
        None => err.to_string(),
    }
}

impl Error {
    /// The broad category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidName { .. } => ErrorKind::InvalidName,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::StillInUse { .. } => ErrorKind::StillInUse,
            Error::PolicyViolation(_) | Error::Refused { .. } | Error::RestoreRole { .. } => {
                ErrorKind::PolicyViolation
            }
            Error::Connection { .. } => ErrorKind::Connection,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Server(_) => ErrorKind::Server,
            Error::Tool { .. } | Error::ToolVersion { .. } | Error::ArchiveVersion { .. } => {
                ErrorKind::Tool
            }
            Error::MissingExtensions { .. } => ErrorKind::NotFound,
            Error::Inventory(_) => ErrorKind::InvalidInput,
            Error::NotDelivered { source, .. } => source.kind(),
            Error::Uncommitted { .. } => ErrorKind::Server,
            Error::Abandoned => ErrorKind::Io,
            Error::MissingCredentials { .. } => ErrorKind::NotFound,
            Error::BackupVerification { .. } => ErrorKind::InvalidInput,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    /// The SQLSTATE the server gave, if this error came from the server.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        self.postgres_error().and_then(|e| e.code())
    }

    /// The remediation hint of a permission error, a refused restore, or a refusal whose repair
    /// rds-pg knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::PermissionDenied { hint, .. } => hint.as_deref(),
            Error::Refused { fix, .. } => Some(fix),
            Error::RestoreRole { hint, .. } => Some(hint),
            _ => None,
        }
    }

    /// Whether the connection the error came over is gone: closed, reset, or ended by the
    /// server (`pg_terminate_backend`, a shutdown or restart). Such a connection is opened
    /// again rather than used.
    pub fn is_connection_lost(&self) -> bool {
        let Some(e) = self.postgres_error() else {
            return false;
        };
        if e.is_closed() {
            return true;
        }
        if let Some(code) = e.code() {
            return [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code);
        }
        std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
    }

    /// The server's error, if there is one behind this error.
    pub fn postgres_error(&self) -> Option<&postgres::Error> {
        match self {
            Error::Server(e) => Some(e),
            Error::PermissionDenied { source, .. }
            | Error::NotFound { source, .. }
            | Error::StillInUse { source, .. } => source.as_ref(),
            Error::Connection {
                source: Some(s), ..
            } => s.downcast_ref::<postgres::Error>(),
            _ => None,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Sorts an error from the server into the kind a caller can act on.
    pub fn from_postgres(err: postgres::Error) -> Self {
        Self::from_postgres_with_hint(err, None)
    }

    /// As [`Error::from_postgres`], attaching `hint` to a permission error.
    pub fn from_postgres_with_hint(err: postgres::Error, hint: Option<String>) -> Self {
        let Some(db) = err.as_db_error() else {
            return Error::Server(err);
        };
        let code = db.code().clone();
        let message = match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        };
        if code == SqlState::INSUFFICIENT_PRIVILEGE {
            Error::PermissionDenied {
                message,
                hint,
                source: Some(err),
            }
        } else if code == SqlState::OBJECT_IN_USE || code == SqlState::LOCK_NOT_AVAILABLE {
            Error::StillInUse {
                message,
                source: Some(err),
            }
        } else if code == SqlState::UNDEFINED_OBJECT
            || code == SqlState::INVALID_CATALOG_NAME
            || code == SqlState::UNDEFINED_TABLE
            || code == SqlState::UNDEFINED_FILE
        {
            Error::NotFound {
                message,
                source: Some(err),
            }
        } else {
            Error::Server(err)
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(err: postgres::Error) -> Self {
        Error::from_postgres(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_snake_case_and_distinct() {
        let kinds = [
            ErrorKind::InvalidName,
            ErrorKind::InvalidInput,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::StillInUse,
            ErrorKind::PolicyViolation,
            ErrorKind::Connection,
            ErrorKind::Tls,
            ErrorKind::Server,
            ErrorKind::Tool,
            ErrorKind::Io,
        ];
        let names: std::collections::BTreeSet<&str> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), kinds.len());
        for kind in kinds {
            let name = kind.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(kind.to_string(), name);
            // The variant's name, in snake_case.
            let debug = format!("{kind:?}");
            let snake: String = debug
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let lower = c.to_ascii_lowercase();
                    if c.is_ascii_uppercase() && i > 0 {
                        vec!['_', lower]
                    } else {
                        vec![lower]
                    }
                })
                .collect();
            assert_eq!(name, snake);
        }
    }
}
