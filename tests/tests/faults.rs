//! Fault injection (issue 13): every changing operation is interrupted at each boundary between
//! the batches it sends — by a failing statement, by the process being killed, by its sessions
//! being terminated from the superuser's connection, by a server restart and by the server going
//! away (connection refused) — and must end in a typed error within the timeouts; a re-run from
//! a new `Provisioner` then converges to exactly the state of a clean run (the catalog compared
//! with names made independent of the project) with no manual cleanup and no membership left to
//! master, and a third run changes nothing. The end state is proven the way a user would notice
//! it: logging in as the project's users and trying.
//!
//! The boundaries of an operation are counted with a recording hook on a clean run. By default
//! every boundary gets one kind, in rotation from the last boundary (the cleanup, where an
//! `abandon` is the headline case: killed after `GRANT owner TO master`) backwards, and
//! every kind hits every operation at least once; `RDS_PG_FAULTS=abandon` adds an `abandon` at
//! every boundary; `RDS_PG_FAULTS=full` runs every kind at every boundary. `RDS_PG_RELIABILITY_LOG=FILE`
//! appends one line of figures per operation and version to FILE (the tables of
//! docs/RELIABILITY.md).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_pg_core::provision::fault::{Fault, FaultPoint};
use rds_pg_core::{
    connect, ConnectOptions, CredentialDelivery, CredentialSink, DatabaseName, DatabaseSpec,
    DropDatabaseOptions, DropUserOptions, Error, ErrorKind, Extension, Password, Provisioner,
    ReadOnlyGrant, Report, RoleName, SqlState, UserSpec,
};
use rds_pg_tests::reliability::{
    assert_no_leftover_membership, assert_no_secret, leftover_memberships, project_state,
};
use rds_pg_tests::{changes_since, log_mark, login_as_application, ok, per_version, Sandbox};

/// The lock timeout of every provisioner here: a faulty run never waits longer for a lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// The sandbox's connect timeout (`Sandbox::master_options`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The application name of the provisioner under test: its sessions are the ones terminated.
const VICTIM: &str = "rds-pg-fault-victim";

// ---------------------------------------------------------------------------------------------
// Fault kinds and operations
// ---------------------------------------------------------------------------------------------

/// What happens at a boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The hook fails the batch as a failing statement would (cleanup still runs).
    Fail,
    /// The process is killed: nothing more is sent, no cleanup, no unlock; its sessions close.
    Abandon,
    /// `pg_terminate_backend` of the provisioner's sessions from rdsadmin's, then go on.
    Terminate,
    /// The server restarts (fast shutdown ends every session), then go on.
    Restart,
    /// The server stops (so reconnecting is refused), then go on; started again before the
    /// re-run.
    Refused,
}

const KINDS: [Kind; 5] = [
    Kind::Fail,
    Kind::Abandon,
    Kind::Terminate,
    Kind::Restart,
    Kind::Refused,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Fail => "fail",
            Kind::Abandon => "abandon",
            Kind::Terminate => "terminate",
            Kind::Restart => "restart",
            Kind::Refused => "refused",
        }
    }
}

/// The changing operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    EnsureUser,
    EnsureUserDelivering,
    EnsureDatabase,
    EnsureDatabasePostgis,
    EnsureExtensions,
    GrantReadOnly,
    RevokeReadOnly,
    RotatePassword,
    RotatePasswordDelivering,
    DropDatabase,
    DropUser,
    DropUserReassign,
    SecureInstance,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::EnsureUser => "ensure_user",
            Op::EnsureUserDelivering => "ensure_user_delivering",
            Op::EnsureDatabase => "ensure_database(hstore)",
            Op::EnsureDatabasePostgis => "ensure_database(hstore, postgis)",
            Op::EnsureExtensions => "ensure_extensions(hstore, citext)",
            Op::GrantReadOnly => "grant_read_only",
            Op::RevokeReadOnly => "revoke_read_only",
            Op::RotatePassword => "rotate_password",
            Op::RotatePasswordDelivering => "rotate_password_delivering",
            Op::DropDatabase => "drop_database",
            Op::DropUser => "drop_user",
            Op::DropUserReassign => "drop_user(reassign_to)",
            Op::SecureInstance => "secure_instance",
        }
    }

    /// Whether every run changes something (a rotation sets a new password each time).
    fn always_changes(self) -> bool {
        matches!(self, Op::RotatePassword | Op::RotatePasswordDelivering)
    }
}

/// The names and passwords of one case's project: every name starts with the case's prefix.
struct Project {
    prefix: String,
    owner: String,
    reader: String,
    heir: String,
    db: String,
    heir_db: String,
    owner_pw: Password,
    reader_pw: Password,
    heir_pw: Password,
    /// The password file credentials are delivered to.
    sink: PathBuf,
}

impl Project {
    fn new(prefix: &str, dir: &Path) -> Project {
        Project {
            prefix: prefix.to_owned(),
            owner: format!("{prefix}owner"),
            reader: format!("{prefix}reader"),
            heir: format!("{prefix}heir"),
            db: format!("{prefix}db"),
            heir_db: format!("{prefix}heirdb"),
            // Quotes, a backslash and dollar quotes: the passwords are looked for in the log.
            owner_pw: Password::new(format!("{prefix}Own'er\\pw$$x")),
            reader_pw: Password::new(format!("{prefix}Rea\"der-pw$$")),
            heir_pw: Password::new(format!("{prefix}Heir-pw ü")),
            sink: dir.join(format!("{prefix}pgpass")),
        }
    }

    fn delivery(&self) -> CredentialDelivery {
        CredentialDelivery::new(CredentialSink::Pgpass(self.sink.clone()))
            .database(DatabaseName::new("postgres").unwrap())
    }
}

/// What the tests of one version share.
struct Ctx<'a> {
    sandbox: &'a Sandbox,
    dir: tempfile::TempDir,
    /// Every password seen (given, generated, delivered), looked for in the log at the end.
    passwords: Mutex<Vec<Password>>,
}

impl Ctx<'_> {
    fn seen(&self, password: &Password) {
        self.passwords.lock().unwrap().push(password.clone());
    }

    fn provisioner(&self, application_name: &str) -> Provisioner {
        let options = self
            .sandbox
            .master_options()
            .application_name(application_name);
        let p = ok(Provisioner::connect(&options), "Provisioner::connect");
        ok(p.with_lock_timeout(LOCK_TIMEOUT), "with_lock_timeout")
    }
}

fn user(name: &str, password: &Password) -> UserSpec {
    UserSpec::new(name).unwrap().password(password.clone())
}

fn db_name(name: &str) -> DatabaseName {
    DatabaseName::new(name).unwrap()
}

fn role_name(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

fn login(sandbox: &Sandbox, user: &str, db: &str, password: &Password) -> postgres::Client {
    login_as_application(
        &sandbox
            .options_for(user)
            .dbname(db)
            .password(password.clone()),
    )
    .unwrap_or_else(|e| panic!("{user:?} cannot log in to {db:?}: {e}"))
}

/// Logs in as `user` with the password file a delivery wrote, as the project's server would.
fn login_with_passfile(sandbox: &Sandbox, user: &str, passfile: &Path) -> postgres::Client {
    let options = sandbox
        .options_for(user)
        .dbname("postgres")
        .passfile(passfile);
    login_as_application(&options).unwrap_or_else(|e| {
        panic!(
            "{user:?} cannot log in with the delivered {}: {e}",
            passfile.display()
        )
    })
}

/// The password a delivery wrote for `user` into `passfile`.
fn delivered_password(passfile: &Path, sandbox: &Sandbox, user: &str) -> Password {
    rds_pg_core::pgpass::lookup(passfile, "127.0.0.1", sandbox.port(), "postgres", user)
        .unwrap()
        .password
        .unwrap_or_else(|| panic!("no line for {user:?} in {}", passfile.display()))
}

#[track_caller]
fn assert_refused_login(options: &ConnectOptions, says: &str, what: &str) {
    match connect(options) {
        Ok(_) => panic!("{what}: the login unexpectedly succeeded"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Connection, "{what}: {e}");
            assert!(e.to_string().contains(says), "{what}: {e}");
        }
    }
}

#[track_caller]
fn assert_denied(result: Result<(), postgres::Error>, what: &str) {
    let e = result.expect_err(what);
    assert_eq!(
        e.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{what}: {e}"
    );
}

fn as_rdsadmin(sandbox: &Sandbox, db: &str, sql: &str) {
    sandbox
        .connect_rdsadmin(db)
        .unwrap()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A login role made by hand, member of nothing, that no project granted anything.
const STRANGER: &str = "stranger";

fn stranger_pw() -> Password {
    Password::new("Stranger-pw-1")
}

// ---------------------------------------------------------------------------------------------
// Set-up, the operation itself, and what a user sees afterwards
// ---------------------------------------------------------------------------------------------

/// Brings a fresh project to the state the operation starts from (a clean provisioner).
fn setup(ctx: &Ctx, op: Op, pr: &Project) {
    let sandbox = ctx.sandbox;
    let mut p = ctx.provisioner("rds-pg-fault-setup");
    let owner_and_db = |p: &mut Provisioner| {
        ok(
            p.ensure_user(&user(&pr.owner, &pr.owner_pw)),
            "setup: owner",
        );
        ok(
            p.ensure_database(&DatabaseSpec::new(&pr.db, &pr.owner).unwrap()),
            "setup: database",
        );
        login(sandbox, &pr.owner, &pr.db, &pr.owner_pw)
            .batch_execute(
                "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('one')",
            )
            .unwrap();
    };
    match op {
        Op::EnsureUser | Op::EnsureUserDelivering => {}
        Op::EnsureDatabase
        | Op::EnsureDatabasePostgis
        | Op::RotatePassword
        | Op::RotatePasswordDelivering => {
            ok(
                p.ensure_user(&user(&pr.owner, &pr.owner_pw)),
                "setup: owner",
            );
        }
        Op::EnsureExtensions | Op::DropDatabase => owner_and_db(&mut p),
        Op::GrantReadOnly | Op::RevokeReadOnly => {
            owner_and_db(&mut p);
            ok(
                p.ensure_user(&user(&pr.reader, &pr.reader_pw)),
                "setup: reader",
            );
            if op == Op::RevokeReadOnly {
                ok(
                    p.grant_read_only(&ReadOnlyGrant::new(&pr.db, &pr.reader).unwrap()),
                    "setup: grant",
                );
            }
        }
        Op::DropUser => {
            // The role to drop owns nothing but holds privileges the heir granted in the heir's
            // database (DROP OWNED must revoke them as the heir).
            ok(p.ensure_user(&user(&pr.heir, &pr.heir_pw)), "setup: heir");
            ok(
                p.ensure_database(&DatabaseSpec::new(&pr.heir_db, &pr.heir).unwrap()),
                "setup: heir's database",
            );
            login(sandbox, &pr.heir, &pr.heir_db, &pr.heir_pw)
                .batch_execute("CREATE TABLE h (id int); INSERT INTO h VALUES (7)")
                .unwrap();
            ok(
                p.ensure_user(&user(&pr.owner, &pr.owner_pw)),
                "setup: owner",
            );
            ok(
                p.grant_read_only(&ReadOnlyGrant::new(&pr.heir_db, &pr.owner).unwrap()),
                "setup: grant",
            );
        }
        Op::DropUserReassign => {
            owner_and_db(&mut p);
            ok(p.ensure_user(&user(&pr.heir, &pr.heir_pw)), "setup: heir");
        }
        Op::SecureInstance => {
            // An instance as RDS leaves a pre-15 one (on 15+: opened by hand).
            for db in ["postgres", "template1"] {
                as_rdsadmin(sandbox, db, "GRANT CREATE ON SCHEMA public TO PUBLIC");
            }
        }
    }
}

/// Runs the operation.
fn run(op: Op, p: &mut Provisioner, pr: &Project) -> rds_pg_core::Result<Report> {
    match op {
        Op::EnsureUser => p.ensure_user(&user(&pr.owner, &pr.owner_pw)),
        Op::EnsureUserDelivering => {
            p.ensure_user_delivering(&UserSpec::new(&pr.owner)?, &pr.delivery())
        }
        Op::EnsureDatabase => {
            p.ensure_database(&DatabaseSpec::new(&pr.db, &pr.owner)?.extension(Extension::Hstore))
        }
        Op::EnsureDatabasePostgis => p.ensure_database(
            &DatabaseSpec::new(&pr.db, &pr.owner)?
                .extensions([Extension::Hstore, Extension::Postgis]),
        ),
        Op::EnsureExtensions => {
            p.ensure_extensions(&db_name(&pr.db), &[Extension::Hstore, Extension::Citext])
        }
        Op::GrantReadOnly => p.grant_read_only(&ReadOnlyGrant::new(&pr.db, &pr.reader)?),
        Op::RevokeReadOnly => p.revoke_read_only(&ReadOnlyGrant::new(&pr.db, &pr.reader)?),
        Op::RotatePassword => p.rotate_password(&role_name(&pr.owner), None),
        Op::RotatePasswordDelivering => {
            p.rotate_password_delivering(&role_name(&pr.owner), None, &pr.delivery())
        }
        Op::DropDatabase => p.drop_database(&db_name(&pr.db), &DropDatabaseOptions::new()),
        Op::DropUser => p.drop_user(&role_name(&pr.owner), &DropUserOptions::new()),
        Op::DropUserReassign => p.drop_user(
            &role_name(&pr.owner),
            &DropUserOptions::new().reassign_to(pr.heir.as_str())?,
        ),
        Op::SecureInstance => p.secure_instance(),
    }
}

/// What must hold right after a faulty run, before anything is repaired: a password change and
/// its delivery are one unit, so the old password still works and a new role does not exist.
fn after_fault(ctx: &Ctx, op: Op, pr: &Project) {
    let sandbox = ctx.sandbox;
    match op {
        Op::RotatePassword | Op::RotatePasswordDelivering => {
            login(sandbox, &pr.owner, "postgres", &pr.owner_pw);
        }
        Op::EnsureUserDelivering => {
            let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_roles WHERE rolname = $1",
                    &[&pr.owner],
                )
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "a role whose credentials were not committed exists");
        }
        _ => {}
    }
}

/// Proves the end state as the project's users see it. `report` is the converging run's.
fn verify(ctx: &Ctx, op: Op, pr: &Project, report: &Report) {
    let sandbox = ctx.sandbox;
    match op {
        Op::EnsureUser => {
            let mut c = login(sandbox, &pr.owner, "postgres", &pr.owner_pw);
            assert_denied(
                c.batch_execute(&format!("CREATE DATABASE \"{}x\"", pr.prefix)),
                "a project user may not create databases",
            );
        }
        Op::EnsureUserDelivering => {
            let password = delivered_password(&pr.sink, sandbox, &pr.owner);
            ctx.seen(&password);
            login_with_passfile(sandbox, &pr.owner, &pr.sink);
        }
        Op::EnsureDatabase | Op::EnsureDatabasePostgis | Op::EnsureExtensions => {
            let mut c = login(sandbox, &pr.owner, &pr.db, &pr.owner_pw);
            c.batch_execute(
                "CREATE TABLE t_end (id serial PRIMARY KEY, h hstore);
                 INSERT INTO t_end (h) VALUES ('a=>b')",
            )
            .unwrap();
            let v: Option<String> = c
                .query_one("SELECT h -> 'a' FROM t_end", &[])
                .unwrap()
                .get(0);
            assert_eq!(v.as_deref(), Some("b"));
            if op == Op::EnsureExtensions {
                c.batch_execute("CREATE TABLE t_ci (c citext); INSERT INTO t_ci VALUES ('A')")
                    .unwrap();
                let n: i64 = c
                    .query_one("SELECT count(*) FROM t_ci WHERE c = 'a'", &[])
                    .unwrap()
                    .get(0);
                assert_eq!(n, 1, "citext compares case-insensitively");
            }
            if op == Op::EnsureDatabasePostgis {
                c.batch_execute(
                    "CREATE TABLE places (id serial PRIMARY KEY, geom geometry(Point, 4326));
                     INSERT INTO places (geom) VALUES (ST_SetSRID(ST_MakePoint(1, 2), 4326))",
                )
                .unwrap();
                let n: i64 = c
                    .query_one(
                        "SELECT count(*) FROM spatial_ref_sys WHERE srid = 4326",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(n, 1);
            }
            assert_refused_login(
                &sandbox
                    .options_for(STRANGER)
                    .dbname(&pr.db)
                    .password(stranger_pw()),
                "permission denied for database",
                "another login role connects to the project's database",
            );
        }
        Op::GrantReadOnly => {
            let mut o = login(sandbox, &pr.owner, &pr.db, &pr.owner_pw);
            o.batch_execute(
                "CREATE TABLE t_later (id serial PRIMARY KEY); INSERT INTO t_later DEFAULT VALUES",
            )
            .unwrap();
            let mut r = login(sandbox, &pr.reader, &pr.db, &pr.reader_pw);
            let n: i64 = r.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
            assert_eq!(n, 1);
            let n: i64 = r
                .query_one("SELECT count(*) FROM t_later", &[])
                .unwrap()
                .get(0);
            assert_eq!(n, 1, "a table created later is readable");
            assert_denied(
                r.batch_execute("INSERT INTO t (v) VALUES ('reader')"),
                "the reader writes",
            );
            assert_denied(
                r.batch_execute("CREATE TABLE mine (id int)"),
                "the reader creates",
            );
        }
        Op::RevokeReadOnly => {
            assert_refused_login(
                &sandbox
                    .options_for(&pr.reader)
                    .dbname(&pr.db)
                    .password(pr.reader_pw.clone()),
                "permission denied for database",
                "the reader connects after the revocation",
            );
            login(sandbox, &pr.owner, &pr.db, &pr.owner_pw)
                .batch_execute("INSERT INTO t (v) VALUES ('still mine')")
                .unwrap();
        }
        Op::RotatePassword | Op::RotatePasswordDelivering => {
            let new = if op == Op::RotatePassword {
                report
                    .generated_password
                    .clone()
                    .expect("a generated password")
            } else {
                delivered_password(&pr.sink, sandbox, &pr.owner)
            };
            ctx.seen(&new);
            if op == Op::RotatePassword {
                login(sandbox, &pr.owner, "postgres", &new);
            } else {
                login_with_passfile(sandbox, &pr.owner, &pr.sink);
            }
            assert_refused_login(
                &sandbox.options_for(&pr.owner).password(pr.owner_pw.clone()),
                "password authentication failed",
                "the old password after the rotation",
            );
        }
        Op::DropDatabase => {
            assert_refused_login(
                &sandbox
                    .options_for(&pr.owner)
                    .dbname(&pr.db)
                    .password(pr.owner_pw.clone()),
                "does not exist",
                "connecting to the dropped database",
            );
            login(sandbox, &pr.owner, "postgres", &pr.owner_pw);
        }
        Op::DropUser | Op::DropUserReassign => {
            assert_refused_login(
                &sandbox.options_for(&pr.owner).password(pr.owner_pw.clone()),
                "password authentication failed",
                "logging in as the dropped role",
            );
            if op == Op::DropUser {
                let mut h = login(sandbox, &pr.heir, &pr.heir_db, &pr.heir_pw);
                let n: i32 = h.query_one("SELECT id FROM h", &[]).unwrap().get(0);
                assert_eq!(n, 7, "the heir's table is intact");
            } else {
                let mut h = login(sandbox, &pr.heir, &pr.db, &pr.heir_pw);
                h.batch_execute("INSERT INTO t (v) VALUES ('heir')")
                    .unwrap();
                let n: i64 = h.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
                assert_eq!(n, 2, "the heir owns the table and its row");
                h.batch_execute("CREATE TABLE heirs (id int)").unwrap();
            }
        }
        Op::SecureInstance => {
            for db in ["postgres", "template1"] {
                let mut c = login(sandbox, STRANGER, db, &stranger_pw());
                assert_denied(
                    c.batch_execute("CREATE TABLE public.planted (id int)"),
                    &format!("a login role creates in public of {db}"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The hook
// ---------------------------------------------------------------------------------------------

/// What the hook saw and did during one run.
#[derive(Default)]
struct HookLog {
    /// Each point, described (the batch's redacted SQL, or the point before COMMIT).
    points: Vec<String>,
    /// Whether the fault was injected.
    fired: bool,
    /// Time spent inside the hook (restarts), not counted against the operation's timeouts.
    hook_time: Duration,
    /// What the hook itself could not do.
    trouble: Option<String>,
}

fn describe(point: &FaultPoint<'_>) -> String {
    let sql: Vec<String> = point
        .steps
        .iter()
        .map(|s| format!("[{}] {}", s.database_label(), s.sql()))
        .collect();
    let what = if point.before_commit {
        "before COMMIT of"
    } else if point.cleanup {
        "cleanup"
    } else {
        "batch"
    };
    format!("{what}: {}", sql.join("; "))
}

/// Terminates the sessions of the provisioner under test, and waits until they are gone.
fn terminate_victims(rdsadmin: &ConnectOptions) -> Result<usize, String> {
    let mut admin = connect(rdsadmin).map_err(|e| e.to_string())?;
    let pids: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = $1",
            &[&VICTIM],
        )
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    admin
        .query(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.unnest($1::int4[]) pid",
            &[&pids],
        )
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        if left == 0 {
            return Ok(pids.len());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{left} terminated session(s) still listed after 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A hook that records every point (with `prefix` written `P`) and injects `fault` at point `at`.
fn hook(
    sandbox: &Sandbox,
    prefix: &str,
    fault: Option<(usize, Kind)>,
    log: Arc<Mutex<HookLog>>,
) -> rds_pg_core::provision::fault::FaultHook {
    let control = sandbox.control();
    let rdsadmin = sandbox.rdsadmin_options();
    let master = sandbox.master_options();
    let prefix = prefix.to_owned();
    Box::new(move |point: &FaultPoint<'_>| {
        let mut log = log.lock().unwrap();
        let index = log.points.len();
        log.points.push(describe(point).replace(&prefix, "P"));
        let Some((at, kind)) = fault.filter(|(at, _)| *at == index) else {
            return Fault::Continue;
        };
        log.fired = true;
        let started = Instant::now();
        let outcome = match kind {
            Kind::Fail => {
                return Fault::Fail(Error::io(
                    format!("fault injected at boundary {at}"),
                    std::io::Error::other("injected failure"),
                ))
            }
            Kind::Abandon => return Fault::Abandon,
            Kind::Terminate => match terminate_victims(&rdsadmin) {
                Ok(0) => Err("no session of the provisioner to terminate".to_owned()),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
            Kind::Restart => control.restart().map_err(|e| e.to_string()),
            Kind::Refused => control.stop().map_err(|e| e.to_string()).and_then(|()| {
                // Anything that connects now is refused at once, with a typed error.
                let tried = Instant::now();
                match Provisioner::connect(&master) {
                    Ok(_) => Err("connected to a stopped server".to_owned()),
                    Err(e) if e.kind() != ErrorKind::Connection => {
                        Err(format!("not a connection error: {e:?}"))
                    }
                    Err(_) if tried.elapsed() > Duration::from_secs(2) => {
                        Err(format!("refused only after {:?}", tried.elapsed()))
                    }
                    Err(_) => Ok(()),
                }
            }),
        };
        log.hook_time += started.elapsed();
        if let Err(e) = outcome {
            log.trouble = Some(format!("{} at {at}: {e}", kind.name()));
        }
        Fault::Continue
    })
}

// ---------------------------------------------------------------------------------------------
// One case, and the suite of one operation
// ---------------------------------------------------------------------------------------------

/// The reference of an operation: its boundaries and the state a clean run leaves.
struct Reference {
    points: Vec<String>,
    state: String,
}

/// How one faulty run ended.
struct CaseResult {
    kind: Kind,
    /// The faulty run's error kind.
    error_kind: String,
    /// The faulty run's error, for the log.
    ended: String,
    /// Whether master was left a member of a project role (removed by the re-run).
    left_membership: bool,
}

fn shared_schemas(op: Op) -> bool {
    op == Op::SecureInstance
}

/// Runs the operation on a clean project, recording its boundaries and end state.
fn reference(ctx: &Ctx, op: Op, pr: &Project) -> Reference {
    setup(ctx, op, pr);
    let log = Arc::new(Mutex::new(HookLog::default()));
    let mut p = ctx.provisioner(VICTIM);
    p.set_fault_hook(Some(hook(ctx.sandbox, &pr.prefix, None, log.clone())));
    let report = ok(run(op, &mut p, pr), &format!("clean {}", op.name()));
    drop(p);
    assert!(report.changed, "the clean run changes something");
    check_report_secrets(ctx, &report, pr);
    let state = project_state(ctx.sandbox, &pr.prefix, shared_schemas(op));
    assert_no_leftover_of(ctx.sandbox, &pr.prefix, "after the clean run");
    third_run_and_verify(ctx, op, pr, &report);
    let points = std::mem::take(&mut log.lock().unwrap().points);
    assert!(!points.is_empty(), "{} sends at least one batch", op.name());
    Reference { points, state }
}

/// How long each phase of a case took.
struct Phases(Vec<String>, Instant);

impl Phases {
    fn new() -> Phases {
        Phases(Vec::new(), Instant::now())
    }

    fn mark(&mut self, what: &str) {
        self.0
            .push(format!("{what} {:.2} s", self.1.elapsed().as_secs_f64()));
        self.1 = Instant::now();
    }
}

/// Master's leftover memberships of the roles of the project `prefix`.
fn leftover_of(sandbox: &Sandbox, prefix: &str) -> Vec<String> {
    leftover_memberships(sandbox)
        .into_iter()
        .filter(|m| m.starts_with(prefix))
        .collect()
}

#[track_caller]
fn assert_no_leftover_of(sandbox: &Sandbox, prefix: &str, what: &str) {
    let left = leftover_of(sandbox, prefix);
    assert!(
        left.is_empty(),
        "{what}: master is still a member of {left:?}"
    );
}

/// The third run and the user's view; a rotation's view first (its third run sets another
/// password).
fn third_run_and_verify(ctx: &Ctx, op: Op, pr: &Project, report: &Report) {
    if op.always_changes() {
        verify(ctx, op, pr, report);
        third_run(ctx, op, pr);
    } else {
        third_run(ctx, op, pr);
        verify(ctx, op, pr, report);
    }
}

/// A run with nothing left to do changes nothing and sends no changing statement (a rotation
/// always sets a new password: its third run must not touch anything else).
fn third_run(ctx: &Ctx, op: Op, pr: &Project) {
    let mark = log_mark(ctx.sandbox);
    let sink_before = std::fs::read(&pr.sink).ok();
    let mut p = ctx.provisioner("rds-pg-fault-third");
    let report = ok(run(op, &mut p, pr), "third run");
    drop(p);
    check_report_secrets(ctx, &report, pr);
    if op.always_changes() {
        if let Some(pw) = &report.generated_password {
            ctx.seen(pw);
        }
        assert!(
            report.steps.len() == 1
                && matches!(
                    report.steps[0].change,
                    rds_pg_core::Change::SetPassword { .. }
                ),
            "a rotation changes only the password: {report:#?}"
        );
        assert!(report.temporary_grants.is_empty(), "{report:#?}");
        if op == Op::RotatePasswordDelivering {
            ctx.seen(&delivered_password(&pr.sink, ctx.sandbox, &pr.owner));
        }
        return;
    }
    assert!(!report.changed, "third run reports a change: {report:#?}");
    assert!(report.steps.is_empty(), "third run ran steps: {report:#?}");
    assert_eq!(
        changes_since(ctx.sandbox, mark),
        Vec::<String>::new(),
        "third run sent changing statements"
    );
    assert_eq!(
        std::fs::read(&pr.sink).ok(),
        sink_before,
        "third run rewrote the credentials"
    );
}

fn check_report_secrets(ctx: &Ctx, report: &Report, pr: &Project) {
    for pw in [&report.generated_password, &report.new_password]
        .into_iter()
        .flatten()
    {
        ctx.seen(pw);
    }
    let shown = format!("{report}\n{report:?}");
    let mut secrets: Vec<&Password> = vec![&pr.owner_pw, &pr.reader_pw, &pr.heir_pw];
    secrets.extend(report.generated_password.iter());
    secrets.extend(report.new_password.iter());
    assert_no_secret(&shown, &secrets, true, "a report's Display/Debug");
}

/// One faulty run at boundary `at`, then the converging run, the state check, the third run
/// and the user's view.
fn case(
    ctx: &Ctx,
    op: Op,
    reference: &Reference,
    pr: &Project,
    at: usize,
    kind: Kind,
) -> CaseResult {
    let sandbox = ctx.sandbox;
    let mut phases = Phases::new();
    setup(ctx, op, pr);
    phases.mark("setup");
    let log = Arc::new(Mutex::new(HookLog::default()));
    let mut p = ctx.provisioner(VICTIM);
    p.set_fault_hook(Some(hook(
        sandbox,
        &pr.prefix,
        Some((at, kind)),
        log.clone(),
    )));
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| run(op, &mut p, pr)));
    let elapsed = started.elapsed();
    // A killed process's sessions close with it.
    drop(p);
    let (fired, hook_time, trouble, points) = {
        let log = log.lock().unwrap();
        (
            log.fired,
            log.hook_time,
            log.trouble.clone(),
            log.points.clone(),
        )
    };
    if kind == Kind::Refused && !sandbox.control().is_running().unwrap() {
        sandbox.control().start().expect("the server starts again");
    }
    let result = result.unwrap_or_else(|_| panic!("the faulty run panicked"));
    assert!(trouble.is_none(), "the hook failed: {trouble:?}");
    assert!(
        fired,
        "boundary {at} was not reached: this run's points {points:#?}, the clean run's {:#?}",
        reference.points
    );
    assert_eq!(
        points[..=at],
        reference.points[..=at],
        "the faulty run planned differently from the clean run up to the fault"
    );
    let worked = elapsed.saturating_sub(hook_time);
    assert!(
        worked < LOCK_TIMEOUT + CONNECT_TIMEOUT + Duration::from_secs(5),
        "the faulty run took {worked:?} besides the hook"
    );
    let e = match &result {
        Ok(report) => panic!(
            "the run interrupted by {} at boundary {at} reported success: {report:#?}",
            kind.name()
        ),
        Err(e) => e,
    };
    let shown = format!("{e}\n{e:?}");
    assert_no_secret(
        &shown,
        &[
            &pr.owner_pw,
            &pr.reader_pw,
            &pr.heir_pw,
            sandbox.master_password(),
        ],
        true,
        "the faulty run's error",
    );
    match kind {
        Kind::Fail => assert!(
            e.to_string()
                .contains(&format!("fault injected at boundary {at}")),
            "the injected failure is the one reported: {e}"
        ),
        Kind::Abandon => assert!(matches!(e, Error::Abandoned), "{e:?}"),
        // The session is gone: the error says so, typed.
        _ => assert!(
            matches!(e.kind(), ErrorKind::Server | ErrorKind::Connection),
            "a lost session is a server or connection error: {e:?}"
        ),
    }
    let error_kind = format!("{:?}", e.kind());
    let ended = format!("{error_kind}: {e}").replace(&pr.prefix, "P");
    after_fault(ctx, op, pr);
    let left = leftover_of(sandbox, &pr.prefix);
    phases.mark("faulty run");

    // The re-run, from a new provisioner, with no manual cleanup.
    let mut q = ctx.provisioner("rds-pg-fault-rerun");
    let rerun = ok(run(op, &mut q, pr), "the re-run after the fault");
    drop(q);
    check_report_secrets(ctx, &rerun, pr);
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    for m in &left {
        let role = m.split(' ').next().unwrap();
        // A role the re-run dropped took its memberships with it.
        let exists: bool = admin
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)",
                &[&role],
            )
            .unwrap()
            .get(0);
        if !exists {
            continue;
        }
        assert!(
            rerun
                .notes
                .iter()
                .any(|n| n.contains("removed") && n.contains(&format!("{role:?}"))),
            "the re-run removed master's leftover membership of {role:?} and said so: {:?}",
            rerun.notes
        );
    }
    phases.mark("re-run");
    assert_no_leftover_of(sandbox, &pr.prefix, "after the re-run");
    let state = project_state(sandbox, &pr.prefix, shared_schemas(op));
    assert_eq!(
        state, reference.state,
        "the re-run converged to a different state than a clean run"
    );
    phases.mark("state");
    third_run_and_verify(ctx, op, pr, &rerun);
    phases.mark("third run and logins");
    let ended = format!("{ended} [{}]", phases.0.join(", "));
    CaseResult {
        kind,
        error_kind,
        ended,
        left_membership: !left.is_empty(),
    }
}

/// The (boundary, kind) pairs run for an operation with `boundaries` boundaries.
fn schedule(boundaries: usize) -> Vec<(usize, Kind)> {
    if std::env::var("RDS_PG_FAULTS").is_ok_and(|v| v == "full") {
        return (0..boundaries)
            .flat_map(|at| KINDS.iter().map(move |k| (at, *k)))
            .collect();
    }
    let mut cases: Vec<(usize, Kind)> = Vec::new();
    if std::env::var("RDS_PG_FAULTS").is_ok_and(|v| v == "abandon") {
        // Abandon (the killed process) everywhere, the other kinds in rotation on top.
        cases.extend((0..boundaries).map(|at| (at, Kind::Abandon)));
        let others = [Kind::Fail, Kind::Terminate, Kind::Restart, Kind::Refused];
        for i in 0..boundaries.max(others.len()) {
            cases.push((i % boundaries, others[i % others.len()]));
        }
    } else {
        // One kind per boundary, from the last one backwards starting with abandon, until every
        // boundary has one and every kind has hit the operation.
        let order = [
            Kind::Abandon,
            Kind::Fail,
            Kind::Terminate,
            Kind::Restart,
            Kind::Refused,
        ];
        for i in 0..boundaries.max(order.len()) {
            cases.push((boundaries - 1 - i % boundaries, order[i % order.len()]));
        }
    }
    cases.sort();
    cases.dedup();
    cases
}

/// Runs every scheduled fault of `op` (the `index`-th operation of its sandbox), each on its
/// own project, prints the figures and returns the faults not survived.
fn suite(ctx: &Ctx, index: usize, op: Op) -> Vec<String> {
    let sandbox = ctx.sandbox;
    let started = Instant::now();
    let prefix = |n: usize| format!("o{index:02}c{n:03}_");
    let reference_project = Project::new(&prefix(0), ctx.dir.path());
    let reference = match catch_unwind(AssertUnwindSafe(|| reference(ctx, op, &reference_project)))
    {
        Ok(r) => r,
        Err(panic) => {
            return vec![format!(
                "{}: the clean run: {}",
                op.name(),
                panic_text(&panic)
            )]
        }
    };
    let boundaries = reference.points.len();
    eprintln!(
        "{} on PostgreSQL {}: {boundaries} boundaries\n  {}",
        op.name(),
        sandbox.major_version(),
        reference.points.join("\n  ")
    );
    let mut results: Vec<CaseResult> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (n, (at, kind)) in schedule(boundaries).into_iter().enumerate() {
        let pr = Project::new(&prefix(n + 1), ctx.dir.path());
        match catch_unwind(AssertUnwindSafe(|| {
            case(ctx, op, &reference, &pr, at, kind)
        })) {
            Ok(r) => {
                eprintln!("  {} at {at}: ended {}", kind.name(), r.ended);
                results.push(r);
            }
            Err(panic) => {
                failures.push(format!(
                    "{} on PostgreSQL {}, {} at boundary {at} ({}): {}",
                    op.name(),
                    sandbox.major_version(),
                    kind.name(),
                    reference.points[at],
                    panic_text(&panic)
                ));
                // Whatever the case left, the next one needs a running server.
                if !sandbox.control().is_running().unwrap_or(true) {
                    let _ = sandbox.control().start();
                }
            }
        }
    }
    let injected = results.len() + failures.len();
    let by_kind: Vec<String> = KINDS
        .iter()
        .map(|k| {
            let n = results.iter().filter(|r| r.kind == *k).count();
            format!("{} {n}", k.name())
        })
        .collect();
    let mut endings: Vec<&str> = results.iter().map(|r| r.error_kind.as_str()).collect();
    endings.sort();
    endings.dedup();
    let endings: Vec<String> = endings
        .iter()
        .map(|e| {
            format!(
                "{e} x{}",
                results.iter().filter(|r| r.error_kind == *e).count()
            )
        })
        .collect();
    let left = results.iter().filter(|r| r.left_membership).count();
    let line = format!(
        "FAULTS pg{} {}: boundaries {boundaries}, injected {injected}, survived {} ({}); faulty \
         runs ended {}; {left} left master a membership, removed by the re-run; {:.1} s",
        sandbox.major_version(),
        op.name(),
        results.len(),
        by_kind.join(", "),
        endings.join(", "),
        started.elapsed().as_secs_f64()
    );
    eprintln!("{line}");
    if let Ok(path) = std::env::var("RDS_PG_RELIABILITY_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
        for failure in &failures {
            writeln!(f, "  FAILED {failure}").unwrap();
        }
    }
    failures
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs the fault suites of `ops` on one sandbox; fails listing every fault not survived.
fn suites(sandbox: &Sandbox, ops: &[Op]) {
    let ctx = Ctx {
        sandbox,
        dir: tempfile::tempdir().unwrap(),
        passwords: Mutex::new(Vec::new()),
    };
    {
        // Secure once, and a login role that is nobody's.
        let mut p = ctx.provisioner("rds-pg-fault-setup");
        ok(p.secure_instance(), "secure_instance");
        ok(p.ensure_user(&user(STRANGER, &stranger_pw())), "stranger");
    }
    let mut failures = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        failures.extend(suite(&ctx, i, *op));
    }
    if failures.is_empty() {
        assert_no_leftover_membership(sandbox, "after every case");
    }
    // Every password of the suites, in the server log: none in cleartext.
    let log = sandbox.log_text().unwrap();
    let passwords = ctx.passwords.lock().unwrap().clone();
    let mut all: Vec<&Password> = passwords.iter().collect();
    all.push(sandbox.master_password());
    assert_no_secret(&log, &all, false, "the server log");
    assert!(
        failures.is_empty(),
        "{} faults were not survived:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// One test per group of operations and version (one sandbox each)
// ---------------------------------------------------------------------------------------------

per_version!(
    fn user_and_password_operations_survive_every_fault(sandbox) {
        suites(
            sandbox,
            &[
                Op::EnsureUser,
                Op::EnsureUserDelivering,
                Op::RotatePassword,
                Op::RotatePasswordDelivering,
            ],
        );
    }
);

per_version!(
    fn database_operations_survive_every_fault(sandbox) {
        let mut ops = vec![Op::EnsureDatabase, Op::EnsureExtensions];
        if sandbox.has_postgis() {
            ops.push(Op::EnsureDatabasePostgis);
        }
        suites(sandbox, &ops);
    }
);

per_version!(
    fn read_only_grants_survive_every_fault(sandbox) {
        suites(sandbox, &[Op::GrantReadOnly, Op::RevokeReadOnly]);
    }
);

per_version!(
    fn teardown_survives_every_fault(sandbox) {
        suites(sandbox, &[Op::DropDatabase, Op::DropUser, Op::DropUserReassign]);
    }
);

per_version!(
    /// Alone on its sandbox: its set-up opens `template1`, which database creation refuses.
    fn secure_instance_survives_every_fault(sandbox) {
        suites(sandbox, &[Op::SecureInstance]);
    }
);
