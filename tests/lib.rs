//! Shared harness of the integration tests: each test runs once per PostgreSQL major version on
//! its own RDS-like [`Sandbox`].
//!
//! `RDS_PG_TEST_VERSIONS` (for example `15,18`) selects versions; the default is all six. A
//! selected version whose binaries are missing fails with the command that installs them.

pub use rds_pg_core::sandbox::{Sandbox, SandboxOptions, ServerControl, SUPPORTED_VERSIONS};

pub mod fleet;
pub mod hostile;
pub mod reliability;
pub mod sshd;
pub mod vpc;

/// The versions selected by `RDS_PG_TEST_VERSIONS` (default: 13–18).
pub fn selected_versions() -> Vec<u32> {
    match std::env::var("RDS_PG_TEST_VERSIONS") {
        Ok(v) if !v.trim().is_empty() => v
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("RDS_PG_TEST_VERSIONS: bad version {s:?}"))
            })
            .collect(),
        _ => SUPPORTED_VERSIONS.to_vec(),
    }
}

/// Whether `major` is selected by `RDS_PG_TEST_VERSIONS`; a version that is not is reported
/// on stderr as skipped.
pub fn selected(major: u32) -> bool {
    let selected = selected_versions().contains(&major);
    if !selected {
        eprintln!("PostgreSQL {major} not in RDS_PG_TEST_VERSIONS: skipped");
    }
    selected
}

/// Starts a sandbox for `major` with `options` (the version is set here).
///
/// # Panics
/// When it cannot start, and on 15 when PostGIS is missing: there it must be there, so a
/// machine missing the packages fails loudly instead of skipping the tests that use it.
pub fn start_sandbox(major: u32, options: SandboxOptions) -> Sandbox {
    let sandbox = Sandbox::start(options.version(major))
        .unwrap_or_else(|e| panic!("cannot start a PostgreSQL {major} sandbox: {e}"));
    eprintln!(
        "PostgreSQL {} sandbox started in {:?}",
        sandbox.version(),
        sandbox.startup_time()
    );
    assert!(
        major != 15 || sandbox.has_postgis(),
        "PostgreSQL 15 sandbox without PostGIS/pgextwlist: run `make setup` \
         (apt-get install postgresql-15-postgis-3 postgresql-15-pgextwlist)"
    );
    sandbox
}

/// Starts a sandbox for `major` and runs `test` on it; a version that was not selected is
/// reported on stderr and skipped.
pub fn run_on(major: u32, test: impl FnOnce(&Sandbox)) {
    if selected(major) {
        test(&start_sandbox(major, SandboxOptions::new()));
    }
}

/// Defines a test module with one `#[test]` per supported major version (`pg13` … `pg18`),
/// each running the body on a fresh sandbox of that version.
///
/// ```text
/// per_version!(fn master_is_not_superuser(sandbox) { … });
/// ```
///
/// With `(major: u32)` the body gets the version instead, and starts what it needs itself
/// (a sandbox with options of its own, with [`start_sandbox`]).
#[macro_export]
macro_rules! per_version {
    ($(#[$meta:meta])* fn $name:ident($major:ident: u32) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($major: u32) $body
            #[test] fn pg13() { if $crate::selected(13) { body(13) } }
            #[test] fn pg14() { if $crate::selected(14) { body(14) } }
            #[test] fn pg15() { if $crate::selected(15) { body(15) } }
            #[test] fn pg16() { if $crate::selected(16) { body(16) } }
            #[test] fn pg17() { if $crate::selected(17) { body(17) } }
            #[test] fn pg18() { if $crate::selected(18) { body(18) } }
        }
    };
    ($(#[$meta:meta])* fn $name:ident($sb:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($sb: &$crate::Sandbox) $body
            #[test] fn pg13() { $crate::run_on(13, body) }
            #[test] fn pg14() { $crate::run_on(14, body) }
            #[test] fn pg15() { $crate::run_on(15, body) }
            #[test] fn pg16() { $crate::run_on(16, body) }
            #[test] fn pg17() { $crate::run_on(17, body) }
            #[test] fn pg18() { $crate::run_on(18, body) }
        }
    };
}

/// The server error's message, or a panic saying the statement unexpectedly succeeded.
pub fn expect_db_error(
    result: Result<impl std::fmt::Debug, postgres::Error>,
    what: &str,
) -> postgres::error::DbError {
    match result {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e
            .as_db_error()
            .cloned()
            .unwrap_or_else(|| panic!("{what}: expected a server error, got {e}")),
    }
}

/// Logs in the way a project's application or `psql` does: after connecting, the session gets
/// PostgreSQL's default `search_path` (`"$user", public`) instead of the one rds-pg pins for its
/// own sessions, so tests write SQL as the project would.
pub fn login_as_application(
    options: &rds_pg_core::ConnectOptions,
) -> Result<postgres::Client, rds_pg_core::Error> {
    let mut client = rds_pg_core::connect(options)?;
    client.batch_execute("SET search_path TO \"$user\", public")?;
    Ok(client)
}

/// The error of a connection that must fail, or a panic saying it succeeded.
pub fn connect_error(options: &rds_pg_core::ConnectOptions) -> rds_pg_core::Error {
    match rds_pg_core::connect(options) {
        Ok(_) => panic!("connecting as {} unexpectedly succeeded", options.target()),
        Err(e) => e,
    }
}

/// Asserts that `error` is a login the server refused with SQLSTATE `code` (kind
/// [`rds_pg_core::ErrorKind::Connection`], the server's error behind it), and returns the
/// server's error for the message and detail a user would read.
pub fn refused_login(
    error: &rds_pg_core::Error,
    code: &rds_pg_core::SqlState,
) -> postgres::error::DbError {
    assert_eq!(
        error.kind(),
        rds_pg_core::ErrorKind::Connection,
        "a refused login: {error}"
    );
    let db = error
        .postgres_error()
        .and_then(|e| e.as_db_error())
        .cloned()
        .unwrap_or_else(|| panic!("the server refused the login with an error: {error}"));
    assert_eq!(
        db.code(),
        code,
        "SQLSTATE {} expected, the server said {} {:?}: {error}",
        code.code(),
        db.code().code(),
        db.message()
    );
    db
}

/// Asserts that logging in as `user` failed on a wrong (or no longer valid) password, or a role
/// that does not exist: the server says the same for both (SQLSTATE 28P01), and rds-pg's message
/// names the user.
pub fn assert_password_refused(error: &rds_pg_core::Error, user: &str) {
    refused_login(error, &rds_pg_core::SqlState::INVALID_PASSWORD);
    assert!(
        error
            .to_string()
            .contains(&format!("password authentication failed for user {user:?}")),
        "{error}"
    );
}

/// The length of the server log so far: statements after this mark are "new".
pub fn log_mark(sandbox: &Sandbox) -> usize {
    sandbox.log_text().unwrap().len()
}

/// Every statement logged after `mark` (simple-protocol `statement:` and extended-protocol
/// `execute …:` entries, with their continuation lines).
pub fn statements_since(sandbox: &Sandbox, mark: usize) -> Vec<String> {
    let log = sandbox.log_text().unwrap();
    let tail = log.get(mark..).unwrap_or("");
    let starts_entry = |line: &str| {
        let b = line.as_bytes();
        b.len() > 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
    };
    let mut entries = Vec::new();
    let mut current: Option<String> = None;
    for line in tail.lines() {
        if starts_entry(line) {
            if let Some(c) = current.take() {
                entries.push(c);
            }
            if let Some(i) = line.find("LOG:  statement: ") {
                current = Some(line[i + "LOG:  statement: ".len()..].to_owned());
            } else if let Some(i) = line.find("LOG:  execute ") {
                let rest = &line[i + "LOG:  execute ".len()..];
                if let Some(j) = rest.find(": ") {
                    current = Some(rest[j + 2..].to_owned());
                }
            }
        } else if let Some(c) = current.as_mut() {
            c.push('\n');
            c.push_str(line);
        }
    }
    entries.extend(current);
    entries
}

/// Statements logged after `mark` that change something (DDL, DCL, DML, role switches). Each
/// `;`-separated piece of a logged batch is looked at, so `BEGIN; GRANT …` counts.
pub fn changes_since(sandbox: &Sandbox, mark: usize) -> Vec<String> {
    const CHANGING: &[&str] = &[
        "CREATE",
        "ALTER",
        "GRANT",
        "REVOKE",
        "DROP",
        "COMMENT",
        "SECURITY LABEL",
        "REASSIGN",
        "SET ROLE",
        "SET LOCAL ROLE",
        "SET SESSION ROLE",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
    ];
    statements_since(sandbox, mark)
        .into_iter()
        .filter(|s| {
            s.split(';').any(|piece| {
                let words = piece.split_whitespace().collect::<Vec<_>>().join(" ");
                let upper = words.to_uppercase();
                CHANGING
                    .iter()
                    .any(|k| upper == *k || upper.starts_with(&format!("{k} ")))
            })
        })
        .collect()
}

/// `result`'s value, or a panic naming `what` with the error's kind and message.
pub fn ok<T>(result: rds_pg_core::Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {:?}: {e}", e.kind()))
}

/// The error of an operation that must fail, or a panic saying it succeeded.
pub fn err<T: std::fmt::Debug>(result: rds_pg_core::Result<T>, what: &str) -> rds_pg_core::Error {
    match result {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// A [`rds_pg_core::Provisioner`] logged in as the sandbox's master, on an instance an operator
/// has secured once (`secure_instance`: before 15, PUBLIC may otherwise create in `template1`,
/// which `ensure_database` then refuses to copy).
pub fn provisioner(sandbox: &Sandbox) -> rds_pg_core::Provisioner {
    let mut p = unsecured_provisioner(sandbox);
    ok(p.secure_instance(), "secure_instance");
    p
}

/// A [`rds_pg_core::Provisioner`] logged in as the sandbox's master, the instance left as RDS
/// creates it.
pub fn unsecured_provisioner(sandbox: &Sandbox) -> rds_pg_core::Provisioner {
    ok(
        rds_pg_core::Provisioner::connect(&sandbox.master_options()),
        "Provisioner::connect as master",
    )
}
