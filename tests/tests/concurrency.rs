//! Concurrency (issue 13): on one instance, 8 threads provision 8 distinct projects while 4
//! threads provision the same project, round after round, each thread with its own
//! `Provisioner` (one deploy run per round). Within a round every step starts at once (a
//! barrier), and the same-project threads also create a second database for the owner while
//! others grant read-only access to its first one — operations that gain and give up the same
//! master→owner membership, which must serialise on the owner. After the checks, every thread
//! tears its project down again, at once too (which also keeps the disk use of 50 rounds flat).
//! Nothing may fail (no `tuple concurrently updated`, no deadlock, no lock timeout), each
//! duplicated change is made by exactly one thread, every project of a round — the shared one
//! included — ends in one and the same state, the users can do what they should, the teardown
//! leaves nothing, and master is left no membership.
//!
//! `RDS_PG_CONCURRENT_ROUNDS` sets the number of rounds (default 2; the 50 are run
//! for docs/RELIABILITY.md with `RDS_PG_CONCURRENT_ROUNDS=50`).

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use rds_pg_core::{
    DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions, Extension, Password,
    Provisioner, ReadOnlyGrant, Report, RoleName, SqlState, UserSpec,
};
use rds_pg_tests::reliability::{assert_no_leftover_membership, assert_no_secret, project_state};
use rds_pg_tests::{login_as_application, ok, per_version, Sandbox};

const DISTINCT: usize = 8;
const SAME: usize = 4;

fn rounds() -> usize {
    std::env::var("RDS_PG_CONCURRENT_ROUNDS")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("RDS_PG_CONCURRENT_ROUNDS: bad number {v:?}"))
        })
        .unwrap_or(2)
}

/// The same password for every role of a kind: a given password makes ensure_user's result
/// the same whichever thread creates the role.
fn owner_pw() -> Password {
    Password::new("Concurrent-owner-pw'\"$$")
}

fn reader_pw() -> Password {
    Password::new("Concurrent-reader-pw\\ü")
}

/// What one thread did in one step: the operation and its report, or the error's text.
type Outcome = (String, Result<Report, String>);

fn step(results: &Mutex<Vec<Outcome>>, what: String, result: rds_pg_core::Result<Report>) {
    let result = result.map_err(|e| format!("{:?}: {e}", e.kind()));
    results.lock().unwrap().push((what, result));
}

/// The operations of thread `t` in step `s` of round `r`.
fn run_step(p: &mut Provisioner, t: usize, s: usize, r: usize, results: &Mutex<Vec<Outcome>>) {
    let distinct = t < DISTINCT;
    let prefix = if distinct {
        format!("c{r:02}t{t:02}_")
    } else {
        format!("c{r:02}s_")
    };
    let owner = format!("{prefix}owner");
    let reader = format!("{prefix}reader");
    let db = format!("{prefix}db");
    let db2 = format!("{prefix}db2");
    let spec = |name: &str| {
        DatabaseSpec::new(name, &owner)
            .unwrap()
            .extension(Extension::Hstore)
    };
    match s {
        0 if r == 0 => step(results, "secure_instance".into(), p.secure_instance()),
        0 => {}
        1 => {
            step(
                results,
                format!("ensure_user {owner}"),
                p.ensure_user(&UserSpec::new(&owner).unwrap().password(owner_pw())),
            );
            step(
                results,
                format!("ensure_user {reader}"),
                p.ensure_user(&UserSpec::new(&reader).unwrap().password(reader_pw())),
            );
        }
        2 => step(
            results,
            format!("ensure_database {db}"),
            p.ensure_database(&spec(&db)),
        ),
        3 => {
            // Same project: two threads grant read-only access to the owner's first database
            // while two create its second one.
            let grant = ReadOnlyGrant::new(&db, &reader).unwrap();
            if distinct || t % 2 == 0 {
                step(
                    results,
                    format!("grant_read_only {db} {reader}"),
                    p.grant_read_only(&grant),
                );
            } else {
                step(
                    results,
                    format!("ensure_database {db2}"),
                    p.ensure_database(&spec(&db2)),
                );
            }
            if distinct {
                step(
                    results,
                    format!("ensure_database {db2}"),
                    p.ensure_database(&spec(&db2)),
                );
            }
        }
        4 => {
            // Teardown, every thread of a project at once.
            for d in [&db, &db2] {
                step(
                    results,
                    format!("drop_database {d}"),
                    p.drop_database(
                        &DatabaseName::new(d.as_str()).unwrap(),
                        &DropDatabaseOptions::new(),
                    ),
                );
            }
            for u in [&reader, &owner] {
                step(
                    results,
                    format!("drop_user {u}"),
                    p.drop_user(&RoleName::new(u.as_str()).unwrap(), &DropUserOptions::new()),
                );
            }
        }
        _ => unreachable!(),
    }
}

/// Steps per round: 0–3 provision, 4 tears down (after the round's checks).
const STEPS: usize = 5;

fn connect(sandbox: &Sandbox) -> Provisioner {
    let p = ok(Provisioner::connect(&sandbox.master_options()), "connect");
    // Generous: waiting for one another is expected, a timeout is a failure.
    ok(p.with_lock_timeout(Duration::from_secs(60)), "lock timeout")
}

/// The checks of round `r` once it is provisioned: every project in the state of the first
/// one, proven by its users; no leftover membership.
fn check_round(sandbox: &Sandbox, r: usize) {
    assert_no_leftover_membership(sandbox, &format!("round {r}"));
    let first = format!("c{r:02}t00_");
    let reference = project_state(sandbox, &first, false);
    assert!(
        reference.contains("database: Pdb2 owner=Powner"),
        "{reference}"
    );
    for t in 0..DISTINCT {
        let prefix = format!("c{r:02}t{t:02}_");
        assert_eq!(
            project_state(sandbox, &prefix, false),
            reference,
            "project {prefix} differs from {first}"
        );
        prove(sandbox, &prefix);
    }
    let same = format!("c{r:02}s_");
    assert_eq!(
        project_state(sandbox, &same, false),
        reference,
        "the project 4 threads provisioned at once differs from one provisioned alone"
    );
    prove(sandbox, &same);
}

/// What the project's users can do: the owner creates and fills a table in both databases, the
/// reader reads the first one and cannot write.
fn prove(sandbox: &Sandbox, prefix: &str) {
    let owner = format!("{prefix}owner");
    let reader = format!("{prefix}reader");
    for db in [format!("{prefix}db"), format!("{prefix}db2")] {
        let mut o =
            login_as_application(&sandbox.options_for(&owner).dbname(&db).password(owner_pw()))
                .unwrap_or_else(|e| panic!("{owner} logs in to {db}: {e}"));
        o.batch_execute(
            "CREATE TABLE t (id serial PRIMARY KEY, h hstore); INSERT INTO t (h) VALUES ('a=>b')",
        )
        .unwrap();
    }
    let mut r = login_as_application(
        &sandbox
            .options_for(&reader)
            .dbname(format!("{prefix}db"))
            .password(reader_pw()),
    )
    .unwrap_or_else(|e| panic!("{reader} logs in: {e}"));
    let n: i64 = r.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    let e = r
        .batch_execute("INSERT INTO t (h) VALUES ('x=>y')")
        .expect_err("the reader writes");
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
}

per_version!(
    fn many_provisioners_at_once_agree_and_leave_nothing_behind(sandbox) {
        let rounds = rounds();
        let threads = DISTINCT + SAME;
        let started = Instant::now();
        let barrier = Barrier::new(threads);
        let results: Vec<Mutex<Vec<Outcome>>> =
            (0..rounds * STEPS).map(|_| Mutex::new(Vec::new())).collect();
        let check_failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for t in 0..threads {
                let barrier = &barrier;
                let results = &results;
                let check_failures = &check_failures;
                scope.spawn(move || {
                    for r in 0..rounds {
                        // A deploy run per round (a long-lived provisioner keeps a session per
                        // database it touched: see the test below).
                        let mut p = connect(sandbox);
                        for s in 0..STEPS - 1 {
                            barrier.wait();
                            run_step(&mut p, t, s, r, &results[r * STEPS + s]);
                        }
                        drop(p);
                        barrier.wait();
                        let round_started = Instant::now();
                        if t == 0 {
                            // A panic here must not leave the other threads at the barrier.
                            let checked = std::panic::catch_unwind(|| check_round(sandbox, r));
                            if let Err(panic) = checked {
                                let text = panic
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                    .unwrap_or_default();
                                check_failures.lock().unwrap().push(format!("round {r}: {text}"));
                            }
                        }
                        barrier.wait();
                        let checked = round_started.elapsed();
                        let mut p = connect(sandbox);
                        run_step(&mut p, t, STEPS - 1, r, &results[r * STEPS + STEPS - 1]);
                        if t == 0 {
                            eprintln!(
                                "round {r}: checks {:.1} s, own teardown {:.1} s",
                                checked.as_secs_f64(),
                                (round_started.elapsed() - checked).as_secs_f64()
                            );
                        }
                    }
                });
            }
        });
        let elapsed = started.elapsed();

        let mut failures = Vec::new();
        let mut operations = 0;
        for (i, cell) in results.iter().enumerate() {
            let (r, s) = (i / STEPS, i % STEPS);
            let outcomes = cell.lock().unwrap();
            operations += outcomes.len();
            for (what, result) in outcomes.iter() {
                if let Err(e) = result {
                    failures.push(format!("round {r} step {s} {what}: {e}"));
                }
            }
            // Each change made by exactly one of the threads that asked for it.
            let mut by_what: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
            for (what, result) in outcomes.iter() {
                let e = by_what.entry(what.as_str()).or_default();
                e.0 += 1;
                if result.as_ref().is_ok_and(|rep| rep.changed) {
                    e.1 += 1;
                }
            }
            for (what, (asked, changed)) in by_what {
                let expected = if what == "secure_instance" && sandbox.major_version() >= 15 {
                    0
                } else {
                    1
                };
                if changed != expected {
                    failures.push(format!(
                        "round {r} step {s} {what}: {changed} of {asked} threads made the change"
                    ));
                }
            }
        }
        let checks = check_failures.into_inner().unwrap();
        let line = format!(
            "CONCURRENCY pg{}: {rounds} rounds x {threads} threads ({DISTINCT} distinct projects, \
             {SAME} on one project), {operations} operations, {} failed or duplicated changes, \
             {} rounds failed their checks, {:.1} s",
            sandbox.major_version(),
            failures.len(),
            checks.len(),
            elapsed.as_secs_f64()
        );
        eprintln!("{line}");
        if let Ok(path) = std::env::var("RDS_PG_RELIABILITY_LOG") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            writeln!(f, "{line}").unwrap();
            for failure in &failures {
                writeln!(f, "  FAILED {failure}").unwrap();
            }
        }
        if !failures.is_empty() {
            // What the server saw of each failed project, for the diagnosis.
            let log = sandbox.log_text().unwrap();
            for failure in &failures {
                let Some(prefix) = failure.split_whitespace().find_map(|w| {
                    let end = w.find('_')?;
                    (w.starts_with('c') && end >= 4).then(|| w[..=end].to_owned())
                }) else {
                    continue;
                };
                // Every line of the sessions that named the project, up to its first error.
                let lines: Vec<&str> = log.lines().collect();
                let pid = |l: &str| l.split_whitespace().nth(3).map(str::to_owned);
                let pids: std::collections::BTreeSet<String> =
                    lines.iter().filter(|l| l.contains(&prefix)).filter_map(|l| pid(l)).collect();
                let error = lines
                    .iter()
                    .position(|l| l.contains("ERROR:") && pid(l).is_some_and(|p| pids.contains(&p)))
                    .unwrap_or(lines.len());
                let window: Vec<&str> = lines[..(error + 10).min(lines.len())]
                    .iter()
                    .copied()
                    .filter(|l| pid(l).is_some_and(|p| pids.contains(&p)))
                    .filter(|l| !l.contains("connection authorized") && !l.contains("connection received"))
                    .collect();
                eprintln!(
                    "server log of the sessions that named {prefix}, up to its first error:\n{}",
                    window[window.len().saturating_sub(400)..].join("\n")
                );
            }
        }
        let text = failures.join("\n");
        assert!(
            !text.contains("tuple concurrently updated"),
            "tuple concurrently updated:\n{text}"
        );
        assert!(!text.contains("deadlock"), "deadlock:\n{text}");
        assert!(failures.is_empty(), "{} failures:\n{text}", failures.len());

        assert!(checks.is_empty(), "{} rounds failed their checks:\n{}", checks.len(), checks.join("\n"));
        assert_no_leftover_membership(sandbox, "after the concurrent rounds");
        // The teardown left nothing of any project.
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        let left: i64 = admin
            .query_one(
                "SELECT (SELECT count(*) FROM pg_roles WHERE rolname ~ '^c[0-9]{2}(t[0-9]{2}|s)_')
                      + (SELECT count(*) FROM pg_database WHERE datname ~ '^c[0-9]{2}(t[0-9]{2}|s)_')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "roles or databases left after the teardown");
        let log = sandbox.log_text().unwrap();
        assert_no_secret(
            &log,
            &[&owner_pw(), &reader_pw(), sandbox.master_password()],
            false,
            "the server log",
        );
    }
);

per_version!(
    /// A deploy script that keeps one `Provisioner` for many projects must not hold a session
    /// per database it ever touched: on RDS `max_connections` is a few dozen on small
    /// instances, and the project's own applications need those slots.
    fn a_long_lived_provisioner_does_not_keep_a_session_per_database(sandbox) {
        let options = sandbox.master_options().application_name("rds-pg-long-lived");
        let mut p = ok(Provisioner::connect(&options), "connect");
        ok(p.secure_instance(), "secure_instance");
        let projects = 12;
        for i in 0..projects {
            let owner = format!("ll{i:02}_owner");
            let db = format!("ll{i:02}_db");
            ok(p.ensure_user(&UserSpec::new(&owner).unwrap().password(owner_pw())), "ensure_user");
            ok(
                p.ensure_database(&DatabaseSpec::new(&db, &owner).unwrap().extension(Extension::Hstore)),
                "ensure_database",
            );
        }
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        let sessions: Vec<String> = admin
            .query(
                "SELECT coalesce(datname::text, '-') FROM pg_stat_activity
                  WHERE application_name = 'rds-pg-long-lived' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            sessions.len() <= 3,
            "after provisioning {projects} projects one provisioner holds {} sessions: {sessions:?}",
            sessions.len()
        );
    }
);
