//! One full project provisioning (the seed's flow: project user, database with PostGIS and
//! hstore, read-only user, read-only grant) through rds-pg, side by side with the very same SQL
//! typed into one `psql` session, locally and behind a simulated network round trip.
//!
//! `cargo bench -p rds-pg-benches --bench provision` (or `make bench`); writes the section
//! "Provisioning vs psql" of docs/BENCHMARKS.md. `RDS_PG_BENCH_VERSION` picks the server
//! (default: 15 when PostGIS is installed, else the newest), `RDS_PG_BENCH_RUNS` the runs per
//! row (default 7).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use postgres_protocol::escape::escape_literal;
use rds_pg_benches::{median, write_section, LatencyProxy};
use rds_pg_core::sandbox::{preferred_version, Sandbox, SandboxOptions};
use rds_pg_core::{
    ConnectOptions, DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions, Extension,
    Password, Provisioner, ReadOnlyGrant, Report, RoleName, UserSpec,
};

fn psql() -> PathBuf {
    let candidates = [
        PathBuf::from("/usr/lib/postgresql/15/bin/psql"),
        PathBuf::from("/usr/bin/psql"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("psql is missing: run `make setup` (installs postgresql-client-15)")
}

struct Project {
    owner: String,
    reader: String,
    db: String,
    owner_pw: Password,
    reader_pw: Password,
}

impl Project {
    fn new(tag: &str) -> Project {
        Project {
            owner: format!("{tag}_owner"),
            reader: format!("{tag}_ro"),
            db: format!("{tag}_db"),
            owner_pw: Password::generate().unwrap(),
            reader_pw: Password::generate().unwrap(),
        }
    }
}

/// The seed's flow through rds-pg; returns the reports.
fn provision(options: &ConnectOptions, p: &Project, extensions: &[Extension]) -> Vec<Report> {
    let mut rds = Provisioner::connect(options).expect("connect as master");
    let spec = DatabaseSpec::new(&p.db, &p.owner)
        .unwrap()
        .extensions(extensions.iter().cloned());
    vec![
        rds.ensure_user(
            &UserSpec::new(&p.owner)
                .unwrap()
                .password(p.owner_pw.clone()),
        )
        .unwrap(),
        rds.ensure_database(&spec).unwrap(),
        rds.ensure_user(
            &UserSpec::new(&p.reader)
                .unwrap()
                .password(p.reader_pw.clone()),
        )
        .unwrap(),
        rds.grant_read_only(&ReadOnlyGrant::new(&p.db, &p.reader).unwrap())
            .unwrap(),
    ]
}

fn teardown(options: &ConnectOptions, p: &Project) {
    let mut rds = Provisioner::connect(options).unwrap();
    rds.drop_database(
        &DatabaseName::new(&p.db).unwrap(),
        &DropDatabaseOptions::new().force(true),
    )
    .unwrap();
    for r in [&p.reader, &p.owner] {
        rds.drop_user(&RoleName::new(r).unwrap(), &DropUserOptions::new())
            .unwrap();
    }
}

/// The statements the reports ran, as a psql script: `\c` where the database changes, the
/// redacted passwords replaced by verifiers of the same passwords.
fn psql_script(reports: &[Report], p: &Project, maintenance: &str) -> (String, usize) {
    let mut script = String::new();
    let mut current = maintenance.to_owned();
    let mut count = 0;
    for step in reports.iter().flat_map(|r| r.steps.iter()) {
        let db = step
            .database
            .as_ref()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_else(|| maintenance.to_owned());
        if db != current {
            script.push_str(&format!("\\c {db}\n"));
            current = db;
        }
        let mut sql = step.sql();
        if sql.contains("'[redacted]'") {
            let pw = if sql.contains(&format!("\"{}\"", p.owner)) {
                &p.owner_pw
            } else {
                &p.reader_pw
            };
            sql = sql.replace(
                "'[redacted]'",
                &escape_literal(pw.scram_verifier().expose()),
            );
        }
        script.push_str(&sql);
        script.push_str(";\n");
        count += 1;
    }
    (script, count)
}

fn run_psql(psql: &PathBuf, options: &ConnectOptions, script: &str, dir: &std::path::Path) {
    let passfile = dir.join("pgpass");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&passfile)
        .unwrap();
    writeln!(
        f,
        "*:*:*:{}:{}",
        options.get_user(),
        options
            .get_password()
            .unwrap()
            .expose()
            .replace('\\', "\\\\")
            .replace(':', "\\:")
    )
    .unwrap();
    let script_path = dir.join("flow.sql");
    std::fs::write(&script_path, script).unwrap();
    let mut cmd = Command::new(psql);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script_path)
        .env_clear()
        .env("PGHOST", options.get_host())
        .env("PGPORT", options.get_port().to_string())
        .env("PGUSER", options.get_user())
        .env("PGDATABASE", options.get_dbname())
        .env("PGPASSFILE", &passfile)
        .env("PGSSLMODE", options.get_sslmode().as_str());
    if let Some(ca) = options.get_sslrootcert() {
        cmd.env("PGSSLROOTCERT", ca);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let version = std::env::var("RDS_PG_BENCH_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(preferred_version)
        .expect("no PostgreSQL installed: run `make setup`");
    let runs: usize = std::env::var("RDS_PG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let psql = psql();
    let sandbox = Sandbox::start(SandboxOptions::new().version(version)).expect("sandbox");
    // Once per instance, outside the timings (before 15 template1 is open to PUBLIC).
    Provisioner::connect(&sandbox.master_options())
        .and_then(|mut p| p.secure_instance())
        .expect("secure_instance");
    let extensions = if sandbox.has_postgis() {
        vec![Extension::Postgis, Extension::Hstore]
    } else {
        vec![Extension::Hstore]
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut statements = 0;
    let mut databases = 0;
    for rtt_ms in [0u64, 5, 20] {
        let rtt = Duration::from_millis(rtt_ms);
        let proxy = (rtt_ms > 0).then(|| LatencyProxy::start(sandbox.port(), rtt));
        let options = match &proxy {
            Some(p) => sandbox.master_options().port(p.port()),
            None => sandbox.master_options(),
        };
        let (mut ours, mut theirs, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let project = Project::new(&format!("bench{rtt_ms}_{i}"));
            let t = Instant::now();
            let reports = provision(&options, &project, &extensions);
            ours.push(t.elapsed());
            let t = Instant::now();
            let second = provision(&options, &project, &extensions);
            again.push(t.elapsed());
            assert!(
                second.iter().all(|r| !r.changed),
                "a second run changes nothing"
            );
            let (script, n) = psql_script(&reports, &project, options.get_dbname());
            statements = n;
            databases = 1 + script.matches("\\c ").count();
            teardown(&options, &project);
            let t = Instant::now();
            run_psql(&psql, &options, &script, dir.path());
            theirs.push(t.elapsed());
            teardown(&options, &project);
        }
        let (o, t, a) = (median(&mut ours), median(&mut theirs), median(&mut again));
        rows.push(format!(
            "| {rtt_ms} ms | {} | {} | {:.2}× | {} |",
            ms(t),
            ms(o),
            o.as_secs_f64() / t.as_secs_f64(),
            ms(a)
        ));
        eprintln!("{}", rows.last().unwrap());
    }
    let body =
        format!(
        "`cargo bench -p rds-pg-benches --bench provision` on PostgreSQL {} (sandbox, TLS {}), \
         median of {runs} runs per row, measured {}.\n\n\
         One project: `ensure_user(owner)`, `ensure_database` with {}, `ensure_user(reader)`, \
         `grant_read_only` — {statements} statements. The baseline is the very same statements \
         (taken from rds-pg's reports, verifiers included) in one `psql -f` session, which \
         reconnects with `\\c` where the database changes ({databases} connections). Both include \
         connecting. Round-trip time is added by a local proxy that delays every packet by half \
         of it each way (a VPC hop or an SSH tunnel is typically 1–20 ms).\n\n\
         | round trip | psql, same SQL | rds-pg | ratio | rds-pg again (no change) |\n\
         |---|---|---|---|---|\n{}\n",
        sandbox.version(),
        if sandbox.major_version() >= 15 { "on" } else { "off" },
        std::process::Command::new("date")
            .arg("+%Y-%m-%d")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default(),
        extensions
            .iter()
            .map(|e| e.name().to_owned())
            .collect::<Vec<_>>()
            .join(" + "),
        rows.join("\n")
    );
    write_section("Provisioning vs psql", &body);
    println!("{body}");
}
