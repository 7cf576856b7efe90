//! The hostile-project harness (issue 11): a project role that plants shadowing objects wherever
//! a master session could resolve names, and a runner that executes rds-pg's operations as master
//! step by step and collects everything that went wrong — a planted object that ran with anyone's
//! privileges but its planter's, an attribute or membership the planter gained, an error that is
//! not typed — so that one run lists every attack and its outcome.
//!
//! - [`census`]: the names of `pg_catalog` that master's statements really resolve, read from the
//!   sandbox's statement log.
//! - [`plant`](mod@plant): the objects planted for them.
//! - [`log`]: the server log, entry by entry, with session user and database.
//!
//! Connections of the harness itself are opened here, not with `rds_pg_core::connect` (whose
//! behaviour is under test): [`pinned`] ones (the harness's own checks, never capturable) and
//! [`unpinned`] ones (a plain psql-like session whose search path comes from the database's and
//! role's settings, to prove that the plants capture).

pub mod census;
pub mod log;
pub mod plant;

use std::collections::BTreeSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use rds_pg_core::{ConnectOptions, ErrorKind, SslMode};

use crate::Sandbox;
use plant::{PlantKind, PlantSet};

/// The marker of the recorder's warning in the server log.
pub const HIT_MARKER: &str = "rds-pg-hostile-hit: ";

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

fn raw_connect(options: &ConnectOptions, startup: Option<&str>) -> Result<Client, String> {
    let mut config = postgres::Config::new();
    config
        .host(options.get_host())
        .port(options.get_port())
        .user(&options.get_user())
        .dbname(options.get_dbname())
        .application_name("rds-pg-hostile-harness")
        .ssl_mode(match options.get_sslmode() {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
    if let Some(o) = startup {
        config.options(o);
    }
    if let Some(p) = options.resolve_password().map_err(|e| e.to_string())? {
        config.password(p.expose());
    }
    let tls = rds_pg_core::tls::make_connector(options.get_sslmode(), options.get_sslrootcert())
        .map_err(|e| e.to_string())?;
    config
        .connect(tls)
        .map_err(|e| format!("{}: {}", options.target(), error_text(&e)))
}

/// A client error in words: the server's message (and detail) for a server error, the error and
/// its causes otherwise (`postgres::Error`'s own text is only "db error").
pub fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// A session with `search_path = pg_catalog, pg_temp` from the startup packet on: nothing it
/// runs can be captured.
pub fn pinned(options: &ConnectOptions) -> Client {
    raw_connect(options, Some("-c search_path=pg_catalog,pg_temp"))
        .unwrap_or_else(|e| panic!("pinned connection: {e}"))
}

/// A plain session (like psql's): its search path comes from the server, database and role
/// settings.
pub fn unpinned(options: &ConnectOptions) -> Client {
    raw_connect(options, None).unwrap_or_else(|e| panic!("unpinned connection: {e}"))
}

/// A pinned superuser session in `database`, for the harness's checks and set-up only.
pub fn admin(sandbox: &Sandbox, database: &str) -> Client {
    pinned(&sandbox.rdsadmin_options().dbname(database))
}

// ---------------------------------------------------------------------------------------------
// Hits
// ---------------------------------------------------------------------------------------------

/// One run of a planted object as someone other than its planter, from the server log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The session's user (the log prefix).
    pub session_user: String,
    /// The database the session was in.
    pub database: String,
    /// The recorder's message: who ran what, planted by whom, where.
    pub message: String,
    /// The plant's number.
    pub id: u32,
    /// The planter.
    pub planter: String,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}: {}",
            self.session_user, self.database, self.message
        )
    }
}

/// The hits logged after `mark`.
pub fn hits_since(sandbox: &Sandbox, mark: usize) -> Vec<Hit> {
    log::entries_since(sandbox, mark)
        .into_iter()
        .filter(|e| e.level == "WARNING")
        .filter_map(|e| {
            let first = e.message.lines().next()?;
            let message = first.strip_prefix(HIT_MARKER)?.to_owned();
            let id = message
                .split_once("[#")
                .and_then(|(_, r)| r.split_once(' '))
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or(0);
            let planter = message
                .split_once(" planted by ")
                .and_then(|(_, r)| r.split_once(" in "))
                .map(|(p, _)| p.to_owned())
                .unwrap_or_default();
            Some(Hit {
                session_user: e.user,
                database: e.database,
                message,
                id,
                planter,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Planting
// ---------------------------------------------------------------------------------------------

/// A project role that plants: its name and login options (password included).
#[derive(Debug, Clone)]
pub struct Planter {
    /// The role.
    pub role: String,
    /// How it logs in (to `postgres`; the database is set per call).
    pub options: ConnectOptions,
}

/// Plants `set` as `planter` in `database`'s `public` (`own_database`: the planter owns it).
///
/// # Errors
/// The server's error with the statement it failed on, e.g. when the planter may not create in
/// `public` there.
pub fn plant(
    planter: &Planter,
    set: &PlantSet,
    database: &str,
    own_database: bool,
) -> Result<(), String> {
    let mut c = pinned(&planter.options.for_database(database));
    let sql = format!(
        "BEGIN;\n{}\nCOMMIT;",
        set.sql(&planter.role, database, own_database)
    );
    c.batch_execute(&sql).map_err(|e| describe_error(&e, &sql))
}

/// A server error with the part of `sql` it points at.
pub fn describe_error(e: &postgres::Error, sql: &str) -> String {
    let Some(db) = e.as_db_error() else {
        return error_text(e);
    };
    let mut s = format!("{}: {}", db.severity(), db.message());
    if let Some(d) = db.detail() {
        s.push_str(&format!(" ({d})"));
    }
    if let Some(postgres::error::ErrorPosition::Original(p)) = db.position() {
        let at = (*p as usize).saturating_sub(1);
        let chars: Vec<char> = sql.chars().collect();
        let from = at.saturating_sub(200);
        let to = (at + 200).min(chars.len());
        let context: String = chars[from..to].iter().collect();
        s.push_str(&format!("\nat: …{context}…"));
    } else if let Some(w) = db.where_() {
        s.push_str(&format!("\nwhere: {w}"));
    }
    s
}

/// What planting should have made of `database`: counts of the planter's objects.
pub fn planted_counts(sandbox: &Sandbox, database: &str, planter: &str) -> (i64, i64, i64) {
    let mut c = admin(sandbox, database);
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
                      WHERE r.rolname = $1 AND p.pronamespace = 'public'::regnamespace),
                    (SELECT count(*) FROM pg_operator o JOIN pg_roles r ON r.oid = o.oprowner
                      WHERE r.rolname = $1 AND o.oprnamespace = 'public'::regnamespace),
                    (SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                      WHERE r.rolname = $1 AND c.relnamespace = 'public'::regnamespace)",
            &[&planter],
        )
        .expect("counting planted objects");
    (r.get(0), r.get(1), r.get(2))
}

/// Runs the probe of `set` in `database` as master over an unpinned session, in a transaction
/// that is rolled back, and returns the plants that were expected to capture it but did not.
/// `public_first`: the database puts `public` before `pg_catalog` on the search path (then
/// every plant must capture; otherwise the ones that duplicate a catalog signature cannot).
pub fn probe(
    sandbox: &Sandbox,
    set: &PlantSet,
    database: &str,
    planter: &str,
    public_first: bool,
) -> ProbeResult {
    let expected: Vec<&plant::Plant> = set
        .plants
        .iter()
        .filter(|p| {
            public_first
                || (!p.duplicates_catalog
                    && matches!(
                        p.kind,
                        PlantKind::Function | PlantKind::Aggregate | PlantKind::Operator
                    ))
        })
        .collect();
    let mut c = unpinned(&sandbox.master_options().dbname(database));
    let search_path: String = c
        .query_one("SHOW search_path", &[])
        .expect("search_path")
        .get(0);
    let mark = log::mark(sandbox);
    c.batch_execute(&format!("BEGIN;\n{}\nROLLBACK;", set.probe_sql(&expected)))
        .unwrap_or_else(|e| panic!("the probe in {database} failed: {e}"));
    let hit: BTreeSet<u32> = hits_since(sandbox, mark)
        .into_iter()
        .filter(|h| h.planter == planter && h.database == database)
        .map(|h| h.id)
        .collect();
    let missed = expected
        .iter()
        .filter(|p| !hit.contains(&p.id))
        .map(|p| p.signature.clone())
        .collect();
    ProbeResult {
        database: database.to_owned(),
        search_path,
        expected: expected.len(),
        captured: hit.len(),
        missed,
    }
}

/// What a probe found.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// Where it ran.
    pub database: String,
    /// The unpinned session's search path there.
    pub search_path: String,
    /// How many plants were expected to capture it.
    pub expected: usize,
    /// How many did.
    pub captured: usize,
    /// The expected ones that did not.
    pub missed: Vec<String>,
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unpinned master session in {} (search_path {}): {}/{} plants captured it",
            self.database, self.search_path, self.captured, self.expected
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Roles and objects
// ---------------------------------------------------------------------------------------------

/// A role's attributes and memberships, as `pg_roles` and `pg_auth_members` show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    /// `(attribute, value)`: SUPERUSER, INHERIT, CREATEROLE, CREATEDB, LOGIN, REPLICATION,
    /// BYPASSRLS.
    pub attributes: Vec<(&'static str, bool)>,
    /// `(role it is a member of, grantor)`.
    pub member_of: BTreeSet<(String, String)>,
}

const ATTRIBUTES: [&str; 7] = [
    "SUPERUSER",
    "INHERIT",
    "CREATEROLE",
    "CREATEDB",
    "LOGIN",
    "REPLICATION",
    "BYPASSRLS",
];

/// The state of `role`, `None` when it does not exist.
pub fn role_state(admin: &mut Client, role: &str) -> Option<RoleState> {
    let row = admin
        .query_opt(
            "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
                    rolreplication, rolbypassrls
               FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .expect("reading pg_roles")?;
    let attributes = ATTRIBUTES
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, row.get::<_, bool>(i)))
        .collect();
    let member_of = admin
        .query(
            "SELECT g.rolname::text, coalesce(gr.rolname::text, '')
               FROM pg_auth_members m
               JOIN pg_roles g ON g.oid = m.roleid
               JOIN pg_roles r ON r.oid = m.member
               LEFT JOIN pg_roles gr ON gr.oid = m.grantor
              WHERE r.rolname = $1",
            &[&role],
        )
        .expect("reading pg_auth_members")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Some(RoleState {
        attributes,
        member_of,
    })
}

/// What changed from `before` to `after`, in words (`gained CREATEROLE`).
pub fn role_changes(before: &RoleState, after: &RoleState) -> Vec<String> {
    let mut out = Vec::new();
    for ((a, was), (_, now)) in before.attributes.iter().zip(&after.attributes) {
        if was != now {
            out.push(format!("{} {a}", if *now { "gained" } else { "lost" }));
        }
    }
    let roles = |s: &BTreeSet<(String, String)>| -> BTreeSet<String> {
        s.iter().map(|(r, _)| r.clone()).collect()
    };
    for r in roles(&after.member_of).difference(&roles(&before.member_of)) {
        out.push(format!("became a member of {r}"));
    }
    for r in roles(&before.member_of).difference(&roles(&after.member_of)) {
        out.push(format!("is no longer a member of {r}"));
    }
    out
}

/// Puts `role` back into `state` (attributes; memberships gained are revoked).
pub fn restore_role(admin: &mut Client, major: u32, role: &str, state: &RoleState) {
    let Some(now) = role_state(admin, role) else {
        return;
    };
    let r = escape_identifier(role);
    let attrs: Vec<String> = state
        .attributes
        .iter()
        .map(|(a, on)| format!("{}{a}", if *on { "" } else { "NO" }))
        .collect();
    let mut sql = format!("ALTER ROLE {r} {};\n", attrs.join(" "));
    let before: BTreeSet<&String> = state.member_of.iter().map(|(g, _)| g).collect();
    for (g, grantor) in &now.member_of {
        if !before.contains(g) {
            let by = if major >= 16 && !grantor.is_empty() {
                format!(" GRANTED BY {}", escape_identifier(grantor))
            } else {
                String::new()
            };
            sql.push_str(&format!("REVOKE {} FROM {r}{by};\n", escape_identifier(g)));
        }
    }
    admin
        .batch_execute(&sql)
        .unwrap_or_else(|e| panic!("restoring {role}: {e}\n{sql}"));
}

/// Objects in `database` owned by any of `roles` (from `pg_shdepend`), described.
pub fn objects_owned_by(sandbox: &Sandbox, database: &str, roles: &[&str]) -> Vec<String> {
    let mut c = admin(sandbox, database);
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    c.query(
        "SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' (owner ' || r.rolname || ')'
           FROM pg_shdepend d
           JOIN pg_roles r ON r.oid = d.refobjid
           JOIN pg_database db ON db.oid = d.dbid
          WHERE db.datname = current_database() AND d.deptype = 'o'
            AND d.refclassid = 'pg_authid'::regclass AND r.rolname::text = ANY($1)
          ORDER BY 1",
        &[&roles],
    )
    .expect("reading pg_shdepend")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Rows of `public.hostile_log` in `database` written by someone other than `planter`.
pub fn recorded_rows(sandbox: &Sandbox, database: &str, planter: &str) -> Vec<String> {
    let mut c = admin(sandbox, database);
    let exists: bool = c
        .query_one("SELECT to_regclass('public.hostile_log') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    if !exists {
        return Vec::new();
    }
    c.query(
        "SELECT who || ' (session ' || session_who || ') ran ' || what || ' in ' || db
                || ' (' || count(*) || ' rows)'
           FROM public.hostile_log WHERE who <> $1 OR session_who <> $1
          GROUP BY who, session_who, what, db ORDER BY min(at)",
        &[&planter],
    )
    .expect("reading hostile_log")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Whether `role` may create in schema `public` of `database`.
pub fn may_create_in_public(sandbox: &Sandbox, database: &str, role: &str) -> bool {
    admin(sandbox, database)
        .query_one(
            "SELECT has_schema_privilege($1, 'public', 'CREATE')",
            &[&role],
        )
        .unwrap()
        .get(0)
}

/// On PostgreSQL 14 and older, opens (`true`, as RDS delivers an instance) or closes (`false`,
/// as `secure_instance` leaves it) CREATE on `public` of `postgres` and `template1` for PUBLIC,
/// as the superuser. rds-pg refuses to create a database from a `template1` others may create
/// in, so the suites set up clean projects (the census, the hostile project's own database) on
/// a secured instance, then open both schemas again before planting: the attack runs against
/// an instance as RDS delivers it.
pub fn shared_public_schemas_open(sandbox: &Sandbox, open: bool) {
    if sandbox.major_version() >= 15 {
        return;
    }
    let sql = if open {
        "GRANT CREATE ON SCHEMA public TO PUBLIC"
    } else {
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
    };
    for database in ["postgres", "template1"] {
        admin(sandbox, database).batch_execute(sql).unwrap();
    }
}

/// Runs `sql` (statements separated by `;\n`, as rds-pg prints a fix) over `client` as one
/// batch, as an operator pasting it into psql would. When the batch fails (and so changed
/// nothing), each statement is tried again in order under a savepoint, all of it rolled back,
/// and the failures are described: `n of m statements fail`, then one example per distinct
/// error.
pub fn run_fix(client: &mut Client, sql: &str) -> Result<(), String> {
    let Err(first) = client.batch_execute(sql) else {
        return Ok(());
    };
    let statements: Vec<&str> = sql
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut failures: Vec<(String, String)> = Vec::new();
    let tried = client.batch_execute("BEGIN").and_then(|_| {
        for statement in &statements {
            client.batch_execute("SAVEPOINT rds_pg_fix")?;
            if let Err(e) = client.batch_execute(statement) {
                failures.push(((*statement).to_owned(), error_text(&e)));
                client.batch_execute("ROLLBACK TO SAVEPOINT rds_pg_fix")?;
            }
        }
        client.batch_execute("ROLLBACK")
    });
    let mut s = format!(
        "{} of {} statements fail (as one batch: {})",
        failures.len(),
        statements.len(),
        error_text(&first)
    );
    if let Err(e) = tried {
        s.push_str(&format!(
            "; trying them one by one failed: {}",
            error_text(&e)
        ));
    }
    let mut seen = BTreeSet::new();
    for (statement, error) in &failures {
        // One example per error, the object's own name left out.
        let class: String = error.split(['"', '(']).next().unwrap_or("").to_owned();
        let class = if error.contains("does not exist") {
            "does not exist".to_owned()
        } else {
            class
        };
        if seen.insert(class) {
            s.push_str(&format!("\n  {statement}: {error}"));
        }
    }
    Err(s)
}

/// Cleans `template1` as the superuser: drops what `planters` own there and closes CREATE on
/// its `public`. Only for going on after the printed cleaning SQL failed (which is a finding
/// of its own), so that the steps after it still run.
pub fn clean_template1_as_superuser(sandbox: &Sandbox, planters: &[&str]) {
    let mut sql = String::new();
    for p in planters {
        sql.push_str(&format!("DROP OWNED BY {};\n", escape_identifier(p)));
    }
    sql.push_str("REVOKE CREATE ON SCHEMA public FROM PUBLIC;");
    admin(sandbox, "template1")
        .batch_execute(&sql)
        .unwrap_or_else(|e| panic!("cleaning template1 as the superuser: {}", error_text(&e)));
}

/// Whether `database` exists.
pub fn database_exists(sandbox: &Sandbox, database: &str) -> bool {
    admin(sandbox, "postgres")
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .unwrap()
        .is_some()
}

/// The extensions installed in `database`, `plpgsql` left out.
pub fn installed_extensions(sandbox: &Sandbox, database: &str) -> Vec<String> {
    admin(sandbox, database)
        .query(
            "SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A database's setting for `search_path`, when one is set.
pub fn database_search_path(sandbox: &Sandbox, database: &str) -> Option<String> {
    admin(sandbox, "postgres")
        .query_opt(
            "SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s
               JOIN pg_database d ON d.oid = s.setdatabase
              WHERE d.datname = $1 AND s.setrole = 0",
            &[&database],
        )
        .unwrap()
        .map(|r| r.get(0))
}

// ---------------------------------------------------------------------------------------------
// The attack runner
// ---------------------------------------------------------------------------------------------

/// A stable lower-case name for an error kind (the CLI's JSON names).
pub fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
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
        _ => "other",
    }
}

/// What a step must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Success.
    Ok,
    /// A refusal of this kind (a [`kind_label`]).
    Refused(&'static str),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Ok => f.write_str("success"),
            Expect::Refused(k) => write!(f, "a {k} refusal"),
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It failed with an error of a kind.
    Failed {
        /// The kind's label.
        kind: String,
        /// The message.
        message: String,
    },
    /// It panicked (the library) or died (the CLI).
    Crashed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Failed { kind, message } => {
                let short: String = message.chars().take(300).collect();
                write!(f, "{kind}: {short}")
            }
            Outcome::Crashed(m) => write!(f, "CRASHED: {m}"),
        }
    }
}

impl Outcome {
    /// The outcome of a library call.
    pub fn of<T>(result: &rds_pg_core::Result<T>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed {
                kind: kind_label(e.kind()).to_owned(),
                message: e.to_string(),
            },
        }
    }
}

/// Runs rds-pg's operations as master one by one and collects, for each, what went wrong.
pub struct Attack<'s> {
    sandbox: &'s Sandbox,
    /// `pg15`.
    pub label: String,
    admin: Client,
    watched: Vec<(String, RoleState)>,
    /// Everything that went wrong, one line each.
    pub findings: Vec<String>,
    /// Every step and how it ended, one line each.
    pub steps: Vec<String>,
}

impl<'s> Attack<'s> {
    /// A runner watching the attributes and memberships of `roles`.
    pub fn new(sandbox: &'s Sandbox, roles: &[&str]) -> Attack<'s> {
        let mut admin = admin(sandbox, "postgres");
        let watched = roles
            .iter()
            .map(|r| {
                let s = role_state(&mut admin, r).unwrap_or_else(|| panic!("no role {r}"));
                ((*r).to_owned(), s)
            })
            .collect();
        Attack {
            sandbox,
            label: format!("pg{}", sandbox.major_version()),
            admin,
            watched,
            findings: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// The harness's superuser session (pinned), for set-up between steps.
    pub fn admin(&mut self) -> &mut Client {
        &mut self.admin
    }

    /// Takes `role`'s current state as its baseline (after the harness changed it on purpose).
    pub fn rebaseline(&mut self, role: &str) {
        if let Some(s) = role_state(&mut self.admin, role) {
            for (r, state) in &mut self.watched {
                if r == role {
                    *state = s.clone();
                }
            }
        }
    }

    /// Stops watching `role` (it was dropped on purpose).
    pub fn forget(&mut self, role: &str) {
        self.watched.retain(|(r, _)| r != role);
    }

    /// Records a finding that is not tied to a step's outcome.
    pub fn finding(&mut self, text: impl Into<String>) {
        let text = format!("{}: {}", self.label, text.into());
        eprintln!("FINDING {text}");
        self.findings.push(text);
    }

    /// Runs a library operation as step `what`: panics are caught, then hits, role changes and
    /// an outcome other than `expect` become findings (and the watched roles are put back).
    /// Returns the result, `None` after a panic.
    pub fn lib<T>(
        &mut self,
        what: &str,
        expect: Expect,
        run: impl FnOnce() -> rds_pg_core::Result<T>,
    ) -> Option<rds_pg_core::Result<T>> {
        let mark = log::mark(self.sandbox);
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(run));
        let outcome = match &result {
            Ok(r) => Outcome::of(r),
            Err(p) => Outcome::Crashed(panic_message(p.as_ref())),
        };
        self.check(what, expect, &outcome, mark, started.elapsed());
        result.ok()
    }

    /// As [`Attack::lib`] for an operation that reports its own [`Outcome`] (a CLI run).
    pub fn run(&mut self, what: &str, expect: Expect, run: impl FnOnce() -> Outcome) -> Outcome {
        let mark = log::mark(self.sandbox);
        let started = Instant::now();
        let outcome = match catch_unwind(AssertUnwindSafe(run)) {
            Ok(o) => o,
            Err(p) => Outcome::Crashed(panic_message(p.as_ref())),
        };
        self.check(what, expect, &outcome, mark, started.elapsed());
        outcome
    }

    fn check(
        &mut self,
        what: &str,
        expect: Expect,
        outcome: &Outcome,
        mark: usize,
        took: Duration,
    ) {
        let mut problems = Vec::new();
        match (expect, outcome) {
            (_, Outcome::Crashed(m)) => problems.push(format!("crashed: {m}")),
            (Expect::Ok, Outcome::Ok) => {}
            (Expect::Refused(k), Outcome::Failed { kind, .. }) if kind == k => {}
            (_, Outcome::Failed { kind, .. }) if kind == "server" || kind == "other" => problems
                .push(format!(
                    "expected {expect}, got an untyped error: {outcome}"
                )),
            _ => problems.push(format!("expected {expect}, got {outcome}")),
        }
        let hits = hits_since(self.sandbox, mark);
        let mut seen = BTreeSet::new();
        for h in hits {
            if seen.insert(h.message.clone()) {
                problems.push(format!("planted code ran: {h}"));
            }
        }
        let major = self.sandbox.major_version();
        for (role, baseline) in &self.watched {
            match role_state(&mut self.admin, role) {
                Some(now) if now != *baseline => {
                    let changes = role_changes(baseline, &now);
                    problems.push(format!("{role} {}", changes.join(", ")));
                    restore_role(&mut self.admin, major, role, baseline);
                }
                _ => {}
            }
        }
        let line = format!("{}: {what}: {outcome}", self.label);
        eprintln!("STEP ({:.2}s) {line}", took.as_secs_f64());
        self.steps.push(line);
        for p in problems {
            self.finding(format!("{what}: {p}"));
        }
    }

    /// The report of every step and finding, for the test's output.
    pub fn report(&self) -> String {
        let mut s = format!("== {} steps\n", self.label);
        for l in &self.steps {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str(&format!(
            "== {} findings ({})\n",
            self.label,
            self.findings.len()
        ));
        for f in &self.findings {
            s.push_str(f);
            s.push('\n');
        }
        s
    }

    /// Panics with the report when anything was found. With `RDS_PG_HOSTILE_KEEP` set to a
    /// directory, the report and the server log are copied there first.
    pub fn assert_clean(&self) {
        let report = self.report();
        eprintln!("{report}");
        if let Some(dir) = std::env::var_os("RDS_PG_HOSTILE_KEEP") {
            let dir = std::path::PathBuf::from(dir);
            let name = format!(
                "{}-{}",
                self.label,
                std::thread::current().name().unwrap_or("test")
            )
            .replace("::", "-");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("{name}.report")), &report);
            let _ = std::fs::copy(self.sandbox.log_path(), dir.join(format!("{name}.log")));
        }
        assert!(
            self.findings.is_empty(),
            "{} attack(s) succeeded or went wrong:\n{}",
            self.findings.len(),
            self.findings.join("\n")
        );
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// `GRANT`s a role to another as the superuser, for a scenario (e.g. master already a member
/// of the project role, as many RDS guides set it up).
pub fn grant_as_admin(admin: &mut Client, role: &str, to: &str) {
    admin
        .batch_execute(&format!(
            "GRANT {} TO {}",
            escape_identifier(role),
            escape_identifier(to)
        ))
        .unwrap();
}

/// `REVOKE`s what [`grant_as_admin`] granted. On 16+ the superuser's grant lands on the same
/// `pg_auth_members` row as the ADMIN membership PostgreSQL gave the role's creator (both have the
/// bootstrap superuser as grantor), so only the options it added are taken back: a plain REVOKE
/// would take master's ADMIN on the role with it.
pub fn revoke_as_admin(admin: &mut Client, role: &str, from: &str) {
    let version: i32 = admin
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
            &[],
        )
        .unwrap()
        .get(0);
    let (role, from) = (escape_identifier(role), escape_identifier(from));
    let sql = if version >= 160000 {
        format!("REVOKE INHERIT OPTION FOR {role} FROM {from}; REVOKE SET OPTION FOR {role} FROM {from}")
    } else {
        format!("REVOKE {role} FROM {from}")
    };
    admin.batch_execute(&sql).unwrap();
}

/// Whether `planter` may create in `public` of `database`: tries it, as the planter would.
/// `Ok(())` when it could (the object is dropped again), the server's error otherwise.
pub fn try_create_in_public(planter: &Planter, database: &str) -> Result<(), postgres::Error> {
    let mut c = pinned(&planter.options.for_database(database));
    c.batch_execute(
        "BEGIN; CREATE FUNCTION public.rds_pg_squat() RETURNS pg_catalog.int4 \
         LANGUAGE sql AS 'SELECT 1'; ROLLBACK;",
    )
}

/// Whether `sql` revokes CREATE on schema `public` from PUBLIC (`REVOKE CREATE ON SCHEMA
/// "public" FROM PUBLIC`, whatever the quoting, spacing and case).
pub fn closes_public_create(sql: &str) -> bool {
    let flat = sql
        .replace('"', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    flat.contains("REVOKE CREATE ON SCHEMA PUBLIC FROM PUBLIC")
}

/// Whether `text` names at least one of the planted objects (names of three characters or
/// more, so that `=` or `-` in a message do not count).
pub fn names_a_plant(text: &str, set: &PlantSet) -> bool {
    set.plants
        .iter()
        .any(|p| p.name.len() >= 3 && text.contains(&p.name))
}

/// `literal` quoted for SQL (re-exported for the tests' own statements).
pub fn literal(s: &str) -> String {
    escape_literal(s)
}
