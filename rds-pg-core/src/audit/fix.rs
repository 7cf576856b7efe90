//! `--fix`: runs the statements of the automatic fixes — revokes and leftover memberships,
//! which lose no data. Role and database-level statements run first over one connection to the
//! maintenance database, then each database's own, `jobs` databases at a time. A statement that
//! must run as its grantor runs after `SET ROLE`, with a membership held for that statement only
//! when master has none (on 16+ `WITH INHERIT FALSE, SET TRUE`, so master never inherits the
//! role).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use postgres::types::Type;
use postgres::Client;
use postgres_protocol::escape::escape_identifier;

use super::{AppliedFix, AuditReport, FixStatement, Rule};
use crate::config::ConnectOptions;
use crate::error::{Error, Result};

/// How long a fix waits for a lock before it fails (as the provisioner's operations).
const LOCK_TIMEOUT_MS: &str = "10000";

fn open(options: &ConnectOptions) -> Result<Client> {
    crate::connect::connect_with_settings(options, &[("lock_timeout", LOCK_TIMEOUT_MS.into())])
}

/// One statement to run, and which finding and statement index it belongs to.
struct Job {
    finding: usize,
    index: usize,
    statement: FixStatement,
    /// The advisory lock an rds-pg operation on the role holds while it runs: a membership of
    /// master it granted for the operation is revoked only when the lock is free.
    lock: Option<String>,
}

/// The key rds-pg's operations lock a role under.
fn role_lock_key(role: &str) -> String {
    crate::provision::lock_key("role", role)
}

/// Runs every automatic fix of `report`; returns what ran and how.
pub(crate) fn apply(
    master: &ConnectOptions,
    jobs: usize,
    report: &AuditReport,
) -> Result<Vec<AppliedFix>> {
    let mut applied: Vec<AppliedFix> = Vec::new();
    let mut cluster_jobs = Vec::new();
    let mut per_database: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for finding in report.findings.iter().filter(|f| f.fix.automatic) {
        let at = applied.len();
        applied.push(AppliedFix {
            finding: finding.clone(),
            results: finding
                .fix
                .statements
                .iter()
                .map(|s| (s.clone(), None))
                .collect(),
        });
        for (index, statement) in finding.fix.statements.iter().enumerate() {
            let lock = (finding.rule == Rule::MasterMembership)
                .then(|| finding.objects.get(1).map(|o| role_lock_key(&o.name)))
                .flatten();
            let job = Job {
                finding: at,
                index,
                statement: statement.clone(),
                lock,
            };
            match &statement.database {
                None => cluster_jobs.push(job),
                Some(db) => per_database.entry(db.clone()).or_default().push(job),
            }
        }
    }
    if applied.is_empty() {
        return Ok(applied);
    }
    let major = report.server_version.major();
    let outcomes = Mutex::new(Vec::new());
    // The maintenance database first: memberships and database privileges, which the
    // per-database statements may rely on.
    let maintenance = master.get_dbname().to_owned();
    let mut first = cluster_jobs;
    if let Some(own) = per_database.remove(&maintenance) {
        first.extend(own);
    }
    run_jobs(master, &maintenance, first, major, &outcomes)?;
    let queue = Mutex::new(per_database.into_iter().collect::<VecDeque<_>>());
    let workers = jobs.clamp(1, queue.lock().expect("not poisoned").len().max(1));
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = queue.lock().expect("not poisoned").pop_front();
                let Some((database, list)) = next else { break };
                if let Err(e) = run_jobs(master, &database, list, major, &outcomes) {
                    failure.lock().expect("not poisoned").get_or_insert(e);
                    queue.lock().expect("not poisoned").clear();
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("not poisoned") {
        return Err(e);
    }
    for (finding, index, error) in outcomes.into_inner().expect("not poisoned") {
        applied[finding].results[index].1 = error;
    }
    Ok(applied)
}

/// Runs `list` in `database`, recording each statement's outcome. A connection that fails is
/// every statement's error.
fn run_jobs(
    master: &ConnectOptions,
    database: &str,
    list: Vec<Job>,
    major: u32,
    outcomes: &Mutex<Vec<(usize, usize, Option<String>)>>,
) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let mut client = match open(&master.for_database(database)) {
        Ok(c) => c,
        Err(e) => {
            let text = e.to_string();
            let mut out = outcomes.lock().expect("not poisoned");
            for job in list {
                out.push((job.finding, job.index, Some(text.clone())));
            }
            return Ok(());
        }
    };
    // rds-pg's operations take their locks in one database: look there.
    let mut lock_client =
        if database != crate::provision::LOCK_DATABASE && list.iter().any(|j| j.lock.is_some()) {
            open(&master.for_database(crate::provision::LOCK_DATABASE)).ok()
        } else {
            None
        };
    for job in list {
        let error = match &job.lock {
            None => run_one(&mut client, &job.statement, major).err(),
            Some(key) => match lock_client.as_mut() {
                Some(locks) => {
                    with_free_lock(locks, key, |_| run_one(&mut client, &job.statement, major))
                        .err()
                }
                None => {
                    with_free_lock(&mut client, key, |c| run_one(c, &job.statement, major)).err()
                }
            },
        };
        outcomes
            .lock()
            .expect("not poisoned")
            .push((job.finding, job.index, error));
    }
    let _ = client.close();
    Ok(())
}

/// Runs `op` while holding the advisory lock `key`, or says an operation holds it (then the
/// membership is that operation's, not a leftover).
fn with_free_lock(
    client: &mut Client,
    key: &str,
    op: impl FnOnce(&mut Client) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let describe = |e: postgres::Error| Error::from(e).to_string();
    let got: bool = client
        .query_typed_one(
            "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended($1::pg_catalog.text, 0::pg_catalog.int8))",
            &[(&key, Type::TEXT)],
        )
        .map_err(describe)?
        .get(0);
    if !got {
        return Err(format!(
            "an rds-pg operation holds the lock {key:?}: the membership is its own while it runs; \
             audit again when it is done"
        ));
    }
    let result = op(client);
    let _ = client.query_typed(
        "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended($1::pg_catalog.text, 0::pg_catalog.int8))",
        &[(&key, Type::TEXT)],
    );
    result
}

/// Runs one statement, as its `run_as` role when it has one.
fn run_one(
    client: &mut Client,
    statement: &FixStatement,
    major: u32,
) -> std::result::Result<(), String> {
    let describe = |e: postgres::Error| Error::from(e).to_string();
    let Some(role) = &statement.run_as else {
        return client.batch_execute(&statement.sql).map_err(describe);
    };
    let privilege = if major >= 16 { "SET" } else { "MEMBER" };
    let can_set: bool = client
        .query_typed_one(
            &format!(
                "SELECT pg_catalog.pg_has_role(CURRENT_USER, r.oid, '{privilege}')
                   FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.text"
            ),
            &[(role, Type::TEXT)],
        )
        .map_err(describe)?
        .get(0);
    let me = client
        .query_typed_one("SELECT CURRENT_USER::pg_catalog.text", &[])
        .map_err(describe)?
        .get::<_, String>(0);
    let r = escape_identifier(role);
    let m = escape_identifier(&me);
    if !can_set {
        let grant = if major >= 16 {
            format!("GRANT {r} TO {m} WITH INHERIT FALSE, SET TRUE")
        } else {
            format!("GRANT {r} TO {m}")
        };
        client.batch_execute(&grant).map_err(describe)?;
    }
    // One implicit transaction: when the statement fails, SET ROLE is undone with it.
    let result = client
        .batch_execute(&format!("SET ROLE {r}; {}; RESET ROLE", statement.sql))
        .map_err(describe);
    let _ = client.batch_execute("RESET ROLE");
    if !can_set {
        let revoke = client
            .batch_execute(&format!("REVOKE {r} FROM {m}"))
            .map_err(describe);
        result.clone()?;
        revoke?;
    }
    result
}
