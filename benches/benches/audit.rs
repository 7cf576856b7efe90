//! The isolation audit of an instance with 200 project databases, side by side with 200 bare
//! connections (connect as master, `SELECT 1`, close), one database after the other and
//! `--jobs` at a time, locally and behind a simulated network round trip.
//!
//! `cargo bench -p rds-pg-benches --bench audit` (or `make bench`); writes the section "Audit of
//! 200 databases" of docs/BENCHMARKS.md. `RDS_PG_BENCH_VERSION` picks the server (default: 15
//! when PostGIS is installed, else the newest), `RDS_PG_BENCH_RUNS` the runs per row (default 5),
//! `RDS_PG_BENCH_DATABASES` the number of databases (default 200).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rds_pg_benches::{median, write_section, LatencyProxy};
use rds_pg_core::audit::{self, AuditOptions};
use rds_pg_core::sandbox::{preferred_version, Sandbox, SandboxOptions};
use rds_pg_core::{ConnectOptions, DatabaseSpec, Extension, Provisioner, ReadOnlyGrant, UserSpec};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `databases` project databases: two per project owner, the first with hstore (a trusted
/// extension the owner owns) and a read-only user, all through rds-pg.
fn provision(options: &ConnectOptions, databases: usize) {
    Provisioner::connect(options)
        .and_then(|mut p| p.secure_instance())
        .expect("secure_instance");
    for i in 0..databases.div_ceil(2) {
        // A provisioner keeps a connection to each database it touched: one per project.
        let mut rds = Provisioner::connect(options).expect("connect as master");
        let owner = format!("site{i:03}");
        rds.ensure_user(&UserSpec::new(&owner).unwrap()).unwrap();
        for j in 0..2 {
            if 2 * i + j >= databases {
                break;
            }
            let name = format!("{owner}_{j}");
            let mut spec = DatabaseSpec::new(&name, &owner).unwrap();
            if j == 0 {
                spec = spec.extensions([Extension::Hstore]);
            }
            rds.ensure_database(&spec).unwrap();
        }
        let reader = format!("{owner}_ro");
        rds.ensure_user(&UserSpec::new(&reader).unwrap()).unwrap();
        rds.grant_read_only(&ReadOnlyGrant::new(format!("{owner}_0"), &reader).unwrap())
            .unwrap();
    }
}

/// Connects to each of `names`, runs `SELECT 1` and closes, `jobs` at a time.
fn bare_connections(options: &ConnectOptions, names: &[String], jobs: usize) {
    let queue = Mutex::new(names.iter().collect::<VecDeque<_>>());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let Some(name) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let mut client = rds_pg_core::connect(&options.for_database(name)).unwrap();
                client.query_typed_one("SELECT 1", &[]).unwrap();
                client.close().unwrap();
            });
        }
    });
}

/// The 1-minute load average, when the system says.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let version = std::env::var("RDS_PG_BENCH_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(preferred_version)
        .expect("no PostgreSQL installed: run `make setup`");
    let load_before = load_average();
    let runs = env_or("RDS_PG_BENCH_RUNS", 5);
    let count = env_or("RDS_PG_BENCH_DATABASES", 200);
    let sandbox = Sandbox::start(SandboxOptions::new().version(version)).expect("sandbox");
    let started = Instant::now();
    provision(&sandbox.master_options(), count);
    eprintln!(
        "audit bench: {count} databases provisioned in {:.1?}",
        started.elapsed()
    );
    let first = audit::run(&sandbox.master_options(), &AuditOptions::new()).expect("audit");
    // The audit inspects the project databases, postgres and template1: the baseline connects
    // to the very same databases.
    let names = first.databases.clone();
    assert_eq!(names.len(), count + 2, "{first}");
    let findings: Vec<String> = first
        .findings
        .iter()
        .map(|f| f.rule.id().to_owned())
        .collect();
    eprintln!("audit bench: {first}");

    let mut rows = Vec::new();
    for (rtt_ms, jobs) in [(0u64, 1usize), (0, 4), (5, 1), (5, 4)] {
        let proxy = (rtt_ms > 0)
            .then(|| LatencyProxy::start(sandbox.port(), Duration::from_millis(rtt_ms)));
        let options = match &proxy {
            Some(p) => sandbox.master_options().port(p.port()),
            None => sandbox.master_options(),
        };
        let settings = AuditOptions::new().jobs(jobs);
        let (mut ours, mut bare) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Alternate which goes first, so neither always meets a warm or a cold server.
            let mut time_bare = || {
                let t = Instant::now();
                bare_connections(&options, &names, jobs);
                bare.push(t.elapsed());
            };
            let mut time_audit = || {
                let t = Instant::now();
                let report = audit::run(&options, &settings).expect("audit");
                ours.push(t.elapsed());
                assert_eq!(report.databases.len(), names.len());
            };
            if run % 2 == 0 {
                time_bare();
                time_audit();
            } else {
                time_audit();
                time_bare();
            }
        }
        let (o, b) = (median(&mut ours), median(&mut bare));
        rows.push(format!(
            "| {rtt_ms} ms | {jobs} | {} | {} | {:.2}× | {:.1} ms |",
            ms(b),
            ms(o),
            o.as_secs_f64() / b.as_secs_f64(),
            (o.as_secs_f64() - b.as_secs_f64()) * 1000.0 / names.len() as f64 * jobs as f64,
        ));
        eprintln!("{}", rows.last().unwrap());
    }
    let body = format!(
        "`cargo bench -p rds-pg-benches --bench audit` on PostgreSQL {} (sandbox, TLS {}), \
         median of {runs} runs per row, measured {}, 2 cores shared with other work (load \
         average {load_before} when the run started, {} when it ended).\n\n\
         {count} project databases (two per owner; every other one with hstore and a read-only \
         user), provisioned by rds-pg on a secured instance; the audit inspects them and \
         `postgres` and `template1` ({} databases, {} login roles; findings: {}). The audit is \
         the whole `audit::run`: one connection to the maintenance database for the cluster query \
         (and that database's own), then one connection and one catalog query per database, \
         `--jobs` at a time, the TLS check, and the rules. The baseline connects as master to \
         the same databases, runs `SELECT 1` and closes, as many at a time (the same TLS and \
         SCRAM log-in). The last column is the difference per database and connection slot. \
         Round-trip time is added by a local proxy that delays every packet by half of it each \
         way.\n\n\
         | round trip | jobs | {n} × connect + SELECT 1 | rds-pg audit | ratio | audit's own work per database |\n\
         |---|---|---|---|---|---|\n{}\n",
        sandbox.version(),
        if sandbox.major_version() >= 15 { "on" } else { "off" },
        std::process::Command::new("date")
            .arg("+%Y-%m-%d")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default(),
        load_average(),
        names.len(),
        first.login_roles,
        if findings.is_empty() {
            "none".to_owned()
        } else {
            findings.join(", ")
        },
        rows.join("\n"),
        n = names.len(),
    );
    write_section(&format!("Audit of {count} databases"), &body);
    println!("{body}");
}
