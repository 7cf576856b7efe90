//! Property tests (issue 13) over role names, database names and passwords made of arbitrary
//! Unicode, quotes, backslashes, `$$`, control characters and reserved words, on a real server
//! (one sandbox per version, many cases on it):
//!
//! - every name `RoleName::creatable` / `DatabaseName::creatable` accepts, with every password
//!   rds-pg accepts, round-trips exactly: the role and database are created, read back from
//!   `pg_roles`/`pg_database` byte for byte, the role logs in with the password (and into the
//!   database), and both are dropped again;
//! - every name or password rds-pg rejects fails with a typed error before any SQL: the server
//!   log shows no statement from the attempt.
//!
//! `RDS_PG_PROPTEST_CASES` sets the number of cases per version (default 16, plus the special names every run tries);
//! `RDS_PG_PROPTEST_SEED` (a number) picks another deterministic sequence than the default one.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rds_pg_core::{
    connect, DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions, Error, ErrorKind,
    Password, Provisioner, ReadOnlyGrant, RoleName, UserSpec,
};
use rds_pg_tests::reliability::assert_no_secret;
use rds_pg_tests::{log_mark, ok, per_version, provisioner, statements_since, Sandbox};

fn cases() -> u32 {
    std::env::var("RDS_PG_PROPTEST_CASES")
        .ok()
        .map(|v| v.parse().expect("RDS_PG_PROPTEST_CASES: a number"))
        .unwrap_or(16)
}

fn seed() -> u64 {
    std::env::var("RDS_PG_PROPTEST_SEED")
        .ok()
        .map(|v| v.parse().expect("RDS_PG_PROPTEST_SEED: a number"))
        .unwrap_or(13)
}

/// Characters names and passwords are made of, weighted toward the awkward ones.
fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => prop::char::range('A', 'Z'),
        1 => prop::char::range('0', '9'),
        4 => prop::sample::select(vec![
            '\'', '"', '\\', '$', '$', ' ', '_', '-', ';', '%', '.', ',', '=', '@', ':', '/', '*',
            '(', ')', '&', '#', '?', '!', '`', '{', '}', '[', ']', '<', '>', '|', '~', '+',
        ]),
        2 => prop::char::range('\u{1}', '\u{1f}'),
        1 => Just('\u{7f}'),
        2 => prop::sample::select(vec![
            'é', 'ß', 'ü', 'Ω', 'Я', '中', '語', '🔑', '🐘', '\u{200b}', '\u{feff}', 'ﬁ', 'Å',
            '\u{301}', '\u{a0}', '\u{2028}',
        ]),
        2 => any::<char>(),
    ]
}

/// A name: mostly short awkward strings (some starting `pg_`, `rds_` or `$$`), some with a
/// NUL, some too long (reserved words are [`SPECIAL_NAMES`], tried every run).
fn name() -> impl Strategy<Value = String> {
    let body = || prop::collection::vec(awkward_char(), 1..20).prop_map(String::from_iter);
    let prefixes = vec!["", "", "", "", "", "pg_", "rds_", "$$", "Pg_", "'", "\""];
    prop_oneof![
        16 => (prop::sample::select(prefixes), body()).prop_map(|(p, b)| format!("{p}{b}")),
        1 => (body(), any::<prop::sample::Index>()).prop_map(|(b, i)| {
            let mut chars: Vec<char> = b.chars().collect();
            chars.insert(i.index(chars.len() + 1), '\0');
            String::from_iter(chars)
        }),
        2 => prop::collection::vec(awkward_char(), 30..70).prop_map(String::from_iter),
    ]
}

/// Names every run tries first (as a role and as a database): empty, reserved words, and what
/// quoting gets wrong.
const SPECIAL_NAMES: &[&str] = &[
    "",
    "public",
    "none",
    "NONE",
    "current_user",
    "session_user",
    "current_role",
    "postgres",
    "template0",
    "template1",
    "rdsadmin",
    "rds_superuser",
    "pg_monitor",
    "$$",
    "x$$y",
    "a\\b",
    "it's",
    "\"q\"",
    " ",
    "\t",
    "\n",
    "\0",
    "a\0b",
];

/// A password: awkward characters, sometimes with a NUL, sometimes empty.
fn password() -> impl Strategy<Value = String> {
    let body = || prop::collection::vec(awkward_char(), 1..40).prop_map(String::from_iter);
    prop_oneof![
        12 => body(),
        1 => (body(), any::<prop::sample::Index>()).prop_map(|(b, i)| {
            let mut chars: Vec<char> = b.chars().collect();
            chars.insert(i.index(chars.len() + 1), '\0');
            String::from_iter(chars)
        }),
        1 => Just(String::new()),
    ]
}

/// What rds-pg must accept as a password (the rules of `UserSpec`: not empty, no NUL).
fn password_accepted(p: &str) -> bool {
    // SASLprep maps these to nothing: a password of only them is the empty one.
    let mapped_to_nothing = |c: char| {
        matches!(c, '\u{00AD}' | '\u{034F}' | '\u{1806}' | '\u{180B}'..='\u{180D}'
            | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}')
    };
    !p.is_empty() && !p.contains('\0') && !p.chars().all(mapped_to_nothing)
}

#[derive(Default)]
struct Counts {
    roles_round_tripped: u32,
    databases_round_tripped: u32,
    role_names_rejected: u32,
    database_names_rejected: u32,
    passwords_rejected: u32,
    passwords_round_tripped: u32,
    cases: u32,
}

struct World<'a> {
    sandbox: &'a Sandbox,
    p: RefCell<Provisioner>,
    admin: RefCell<postgres::Client>,
    counts: RefCell<Counts>,
    passwords: RefCell<Vec<Password>>,
}

/// Asserts that `result` is a typed error of `kind` and that nothing reached the server since
/// `mark`.
#[track_caller]
fn rejected_before_sql<T: std::fmt::Debug>(
    sandbox: &Sandbox,
    mark: usize,
    result: rds_pg_core::Result<T>,
    kind: ErrorKind,
    what: &str,
) {
    match result {
        Ok(v) => panic!("{what}: accepted: {v:?}"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
    }
    let sent = statements_since(sandbox, mark);
    assert!(sent.is_empty(), "{what}: SQL reached the server: {sent:?}");
}

impl World<'_> {
    fn role_case(&self, role: &str, db: &str, pw: &str) {
        let sandbox = self.sandbox;
        let mut p = self.p.borrow_mut();
        self.counts.borrow_mut().cases += 1;
        let password = Password::new(pw);
        self.passwords.borrow_mut().push(password.clone());

        // Names rejected outright: no value to pass to any operation.
        let Ok(role_name) = RoleName::new(role) else {
            let e = UserSpec::new(role).unwrap_err();
            assert!(matches!(e, Error::InvalidName { .. }), "{role:?}: {e}");
            assert!(ReadOnlyGrant::new("x", role).is_err());
            assert!(DatabaseSpec::new("x", role).is_err());
            assert!(DropUserOptions::new().reassign_to(role).is_err());
            self.counts.borrow_mut().role_names_rejected += 1;
            return;
        };
        // Names that refer to a role but that rds-pg never creates, changes or drops.
        if role_name.ensure_creatable().is_err() {
            assert!(UserSpec::new(role).is_err(), "{role:?}");
            let mark = log_mark(sandbox);
            rejected_before_sql(
                sandbox,
                mark,
                p.rotate_password(&role_name, Some(Password::new("Valid-pw-1"))),
                ErrorKind::InvalidName,
                &format!("rotate_password({role:?})"),
            );
            rejected_before_sql(
                sandbox,
                mark,
                p.drop_user(&role_name, &DropUserOptions::new()),
                ErrorKind::InvalidName,
                &format!("drop_user({role:?})"),
            );
            self.counts.borrow_mut().role_names_rejected += 1;
            return;
        }
        // Roles of the instance itself are refused by policy, after a look: not name cases.
        if role == sandbox.master_user() || role == "stranger" {
            return;
        }
        let spec = UserSpec::new(role).unwrap().password(password.clone());
        // Accepted: created, read back exactly, logs in, dropped.
        let report = p
            .ensure_user(&spec)
            .unwrap_or_else(|e| panic!("ensure_user({role:?}): {:?}: {e}", e.kind()));
        assert!(report.changed, "{role:?} created");
        if pw.chars().count() >= 8 {
            // (A shorter one is found in any text by chance.)
            let shown = format!("{report}\n{report:?}");
            assert_no_secret(&shown, &[&password], true, "the report");
        }
        let mut admin = self.admin.borrow_mut();
        let back: Vec<String> = admin
            .query(
                "SELECT rolname::text FROM pg_roles WHERE rolname = $1::text::name",
                &[&role],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(back, [role], "pg_roles holds the name exactly");
        let mut c = connect(&sandbox.options_for(role).password(password.clone()))
            .unwrap_or_else(|e| panic!("{role:?} logs in with its password: {e}"));
        let who: String = c
            .query_one("SELECT current_user::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(who, role);
        drop(c);

        match DatabaseName::creatable(db) {
            Err(_) => {
                assert!(DatabaseSpec::new(db, role).is_err(), "{db:?}");
                if let Ok(name) = DatabaseName::new(db) {
                    // Reserved: never dropped, before any SQL.
                    let mark = log_mark(sandbox);
                    let e = p
                        .drop_database(&name, &DropDatabaseOptions::new())
                        .expect_err("dropping a reserved database");
                    assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::InvalidName | ErrorKind::PolicyViolation
                        ),
                        "{db:?}: {e}"
                    );
                    assert_eq!(statements_since(sandbox, mark), Vec::<String>::new());
                }
                self.counts.borrow_mut().database_names_rejected += 1;
            }
            Ok(name) => {
                let spec = DatabaseSpec::new(db, role).unwrap();
                p.ensure_database(&spec)
                    .unwrap_or_else(|e| panic!("ensure_database({db:?}, {role:?}): {e}"));
                let back: Vec<(String, String)> = admin
                    .query(
                        "SELECT datname::text, pg_get_userbyid(datdba)::text FROM pg_database
                          WHERE datname = $1::text::name",
                        &[&db],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                assert_eq!(back, [(db.to_owned(), role.to_owned())], "pg_database");
                let mut c = connect(
                    &sandbox
                        .options_for(role)
                        .dbname(db)
                        .password(password.clone()),
                )
                .unwrap_or_else(|e| panic!("{role:?} logs in to {db:?}: {e}"));
                let here: String = c
                    .query_one("SELECT current_database()::text", &[])
                    .unwrap()
                    .get(0);
                assert_eq!(here, db);
                c.batch_execute("CREATE TABLE public.t (id int)").unwrap();
                drop(c);
                p.drop_database(&name, &DropDatabaseOptions::new())
                    .unwrap_or_else(|e| panic!("drop_database({db:?}): {e}"));
                self.counts.borrow_mut().databases_round_tripped += 1;
            }
        }
        p.drop_user(&role_name, &DropUserOptions::new())
            .unwrap_or_else(|e| panic!("drop_user({role:?}): {e}"));
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname = $1::text::name",
                &[&role],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{role:?} dropped");
        self.counts.borrow_mut().roles_round_tripped += 1;
    }
}

impl World<'_> {
    /// A password: one rds-pg accepts is set by a creation and by a rotation and logs in both
    /// times; one it refuses is refused by both before any SQL.
    fn password_case(&self, pw: &str) {
        let sandbox = self.sandbox;
        let mut p = self.p.borrow_mut();
        self.counts.borrow_mut().cases += 1;
        let password = Password::new(pw);
        self.passwords.borrow_mut().push(password.clone());
        let existing = RoleName::new("prop_existing").unwrap();
        let spec = UserSpec::new("prop_new")
            .unwrap()
            .password(password.clone());
        if !password_accepted(pw) {
            let mark = log_mark(sandbox);
            rejected_before_sql(
                sandbox,
                mark,
                p.ensure_user(&spec),
                ErrorKind::InvalidInput,
                &format!("ensure_user with a password of {} bytes", pw.len()),
            );
            rejected_before_sql(
                sandbox,
                mark,
                p.rotate_password(&existing, Some(password)),
                ErrorKind::InvalidInput,
                &format!("rotate_password to a password ensure_user refuses ({pw:?})"),
            );
            self.counts.borrow_mut().passwords_rejected += 1;
            return;
        }
        // Each case on a new role (a failed case may have left the last one).
        let new = RoleName::new("prop_new").unwrap();
        ok(
            p.drop_user(&new, &DropUserOptions::new()),
            "drop_user(prop_new)",
        );
        let report = ok(p.ensure_user(&spec), "ensure_user(prop_new)");
        assert!(report.changed, "prop_new created");
        connect(&sandbox.options_for("prop_new").password(password.clone()))
            .unwrap_or_else(|e| panic!("the new role logs in with its password: {e}"));
        ok(
            p.rotate_password(&existing, Some(password.clone())),
            "rotate_password",
        );
        connect(
            &sandbox
                .options_for("prop_existing")
                .password(password.clone()),
        )
        .unwrap_or_else(|e| panic!("the rotated role logs in with its password: {e}"));
        ok(
            p.drop_user(&RoleName::new("prop_new").unwrap(), &DropUserOptions::new()),
            "drop",
        );
        self.counts.borrow_mut().passwords_round_tripped += 1;
    }
}

fn world(sandbox: &Sandbox) -> World<'_> {
    let mut p = provisioner(sandbox);
    ok(
        p.ensure_user(
            &UserSpec::new("prop_existing")
                .unwrap()
                .password("Existing-1"),
        ),
        "prop_existing",
    );
    World {
        sandbox,
        p: RefCell::new(p),
        admin: RefCell::new(sandbox.connect_rdsadmin("postgres").unwrap()),
        counts: RefCell::new(Counts::default()),
        passwords: RefCell::new(Vec::new()),
    }
}

fn runner() -> TestRunner {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed().to_le_bytes());
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}

/// Fails with proptest's report, then checks the log for passwords and prints the figures.
fn finish<T: std::fmt::Debug>(
    world: &World,
    what: &str,
    started: std::time::Instant,
    result: Result<(), proptest::test_runner::TestError<T>>,
) {
    let sandbox = world.sandbox;
    let log = sandbox.log_text().unwrap();
    let passwords = world.passwords.borrow();
    let mut secrets: Vec<&Password> = passwords
        .iter()
        .filter(|p| p.expose().chars().count() >= 8)
        .collect();
    secrets.push(sandbox.master_password());
    assert_no_secret(&log, &secrets, false, "the server log");
    let c = world.counts.borrow();
    let line = format!(
        "PROPERTIES pg{} {what}: {} cases: {} roles and {} databases round-tripped, {} passwords \
         set and logged in with; rejected before any SQL: {} role names, {} database names, {} \
         passwords; {:.1} s",
        sandbox.major_version(),
        c.cases,
        c.roles_round_tripped,
        c.databases_round_tripped,
        c.passwords_round_tripped,
        c.role_names_rejected,
        c.database_names_rejected,
        c.passwords_rejected,
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
        if let Err(e) = &result {
            writeln!(f, "  FAILED {e}").unwrap();
        }
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

per_version!(
    fn names_round_trip_exactly_or_fail_before_any_sql(sandbox) {
        let world = world(sandbox);
        let started = std::time::Instant::now();
        let mut special_failures = Vec::new();
        for name in SPECIAL_NAMES {
            for (role, db) in [(*name, "prop_special_db"), ("prop_special", *name)] {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    world.role_case(role, db, "Special-pw-1'$$")
                }));
                if let Err(panic) = run {
                    let text = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    special_failures.push(format!("role {role:?}, database {db:?}: {text}"));
                }
            }
        }
        let passwords = password().prop_filter("accepted", |p| password_accepted(p));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let result = runner().run(&(name(), name(), passwords), |(role, db, pw)| {
                world.role_case(&role, &db, &pw);
                Ok(())
            });
            finish(&world, "names", started, result);
        }));
        assert!(
            special_failures.is_empty(),
            "names every run tries:\n{}",
            special_failures.join("\n")
        );
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
);

per_version!(
    fn passwords_log_in_or_fail_before_any_sql(sandbox) {
        let world = world(sandbox);
        let started = std::time::Instant::now();
        let result = runner().run(&password(), |pw| {
            world.password_case(&pw);
            Ok(())
        });
        finish(&world, "passwords", started, result);
    }
);
