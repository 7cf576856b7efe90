//! The four `rds-pg` commands that provision one project (user create, db create, user create,
//! grant readonly) — four processes, each connecting on its own, as an operator runs them —
//! side by side with the very same SQL typed into one `psql` session, locally and behind a
//! simulated network round trip.
//!
//! `cargo bench -p rds-pg-cli --bench cli` (or `make bench`); writes the section "Commands vs
//! psql" of docs/BENCHMARKS.md. `RDS_PG_BENCH_VERSION` picks the server (default: 15 when
//! PostGIS is installed, else the newest), `RDS_PG_BENCH_RUNS` the runs per row (default 7).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres_protocol::escape::escape_literal;
use rds_pg_benches::{median, write_section, LatencyProxy};
use rds_pg_core::sandbox::{preferred_version, Sandbox, SandboxOptions};
use rds_pg_core::{ConnectOptions, Password, Provisioner};
use serde_json::Value;

const RDS_PG: &str = env!("CARGO_BIN_EXE_rds-pg");

fn psql() -> PathBuf {
    ["/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("psql is missing: run `make setup` (installs postgresql-client-15)")
}

/// The libpq environment of `options`, with master's password in a private pgpass file.
fn environment(options: &ConnectOptions, dir: &Path) -> Vec<(String, String)> {
    let passfile = dir.join("pgpass");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&passfile)
        .unwrap();
    let password = options.get_password().unwrap();
    writeln!(
        f,
        "*:*:*:{}:{}",
        options.get_user(),
        password.expose().replace('\\', "\\\\").replace(':', "\\:")
    )
    .unwrap();
    let mut env = vec![
        ("PGHOST".to_owned(), options.get_host().to_owned()),
        ("PGPORT".to_owned(), options.get_port().to_string()),
        ("PGUSER".to_owned(), options.get_user()),
        ("PGDATABASE".to_owned(), options.get_dbname().to_owned()),
        ("PGPASSFILE".to_owned(), passfile.display().to_string()),
        (
            "PGSSLMODE".to_owned(),
            options.get_sslmode().as_str().to_owned(),
        ),
    ];
    if let Some(ca) = options.get_sslrootcert() {
        env.push(("PGSSLROOTCERT".to_owned(), ca.display().to_string()));
    }
    env
}

/// Runs `rds-pg args… --json` with `stdin`, returns its JSON document.
fn rds_pg(env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Value {
    let mut cmd = Command::new(RDS_PG);
    cmd.args(args)
        .arg("--json")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rds-pg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Project {
    owner: String,
    reader: String,
    db: String,
    owner_pw: Password,
    reader_pw: Password,
}

/// The four commands; returns their JSON documents.
fn commands(env: &[(String, String)], p: &Project, extensions: &[&str]) -> Vec<Value> {
    let mut db = vec!["db", "create", &p.db, "--owner", &p.owner];
    for e in extensions {
        db.extend(["--extension", e]);
    }
    vec![
        rds_pg(
            env,
            &["user", "create", &p.owner, "--password-stdin"],
            Some(p.owner_pw.expose()),
        ),
        rds_pg(env, &db, None),
        rds_pg(
            env,
            &["user", "create", &p.reader, "--password-stdin"],
            Some(p.reader_pw.expose()),
        ),
        rds_pg(env, &["grant", "readonly", &p.db, &p.reader], None),
    ]
}

/// The statements the commands ran, as one psql script (`\c` where the database changes, the
/// redacted passwords replaced by verifiers of the same passwords).
fn psql_script(docs: &[Value], p: &Project, maintenance: &str) -> (String, usize) {
    let mut script = String::new();
    let mut current = maintenance.to_owned();
    let mut count = 0;
    for step in docs.iter().flat_map(|d| d["steps"].as_array().unwrap()) {
        let db = step["database"].as_str().unwrap().to_owned();
        if db != current {
            script.push_str(&format!("\\c {db}\n"));
            current = db;
        }
        let mut sql = step["sql"].as_str().unwrap().to_owned();
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

fn run_psql(psql: &Path, env: &[(String, String)], script: &str, dir: &Path) {
    let path = dir.join("flow.sql");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&path)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn teardown(env: &[(String, String)], p: &Project) {
    rds_pg(env, &["db", "drop", &p.db, "--force"], None);
    rds_pg(env, &["user", "drop", &p.reader], None);
    rds_pg(env, &["user", "drop", &p.owner], None);
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
    let runs: usize = std::env::var("RDS_PG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let psql = psql();
    let sandbox = Sandbox::start(SandboxOptions::new().version(version)).expect("sandbox");
    Provisioner::connect(&sandbox.master_options())
        .and_then(|mut p| p.secure_instance())
        .expect("secure_instance");
    let extensions: Vec<&str> = if sandbox.has_postgis() {
        vec!["postgis", "hstore"]
    } else {
        vec!["hstore"]
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut statements = 0;
    for rtt_ms in [0u64, 5, 20] {
        let proxy = (rtt_ms > 0)
            .then(|| LatencyProxy::start(sandbox.port(), Duration::from_millis(rtt_ms)));
        let options = match &proxy {
            Some(p) => sandbox.master_options().port(p.port()),
            None => sandbox.master_options(),
        };
        let env = environment(&options, dir.path());
        let (mut ours, mut theirs, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let tag = format!("cli{rtt_ms}_{i}");
            let project = Project {
                owner: format!("{tag}_owner"),
                reader: format!("{tag}_ro"),
                db: format!("{tag}_db"),
                owner_pw: Password::generate().unwrap(),
                reader_pw: Password::generate().unwrap(),
            };
            // Alternate which side goes first, so neither always meets a warmer server.
            let mut docs = Vec::new();
            let mut measure_ours = |ours: &mut Vec<Duration>, again: &mut Vec<Duration>| {
                let t = Instant::now();
                docs = commands(&env, &project, &extensions);
                ours.push(t.elapsed());
                let t = Instant::now();
                let second = commands(&env, &project, &extensions);
                again.push(t.elapsed());
                assert!(
                    second.iter().all(|d| d["changed"] == false),
                    "a second run changes nothing"
                );
            };
            measure_ours(&mut ours, &mut again);
            let (script, n) = psql_script(&docs, &project, options.get_dbname());
            statements = n;
            teardown(&env, &project);
            let t = Instant::now();
            run_psql(&psql, &env, &script, dir.path());
            theirs.push(t.elapsed());
            teardown(&env, &project);
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
    let body = format!(
        "`cargo bench -p rds-pg-cli --bench cli` on PostgreSQL {} (sandbox, TLS {}), median of \
         {runs} runs per row, measured {}.\n\n\
         One project through four `rds-pg` processes, as an operator types them: `user create \
         OWNER --password-stdin`, `db create DB --owner OWNER` with {}, `user create READER \
         --password-stdin`, `grant readonly DB READER` — {statements} statements, each command \
         connecting on its own. The baseline is the very same statements (from the commands' \
         `--json` output, verifiers filled in) in one `psql -f` session that reconnects with \
         `\\c` where the database changes. Round-trip time is added by the same local proxy as \
         above.\n\n\
         | round trip | psql, same SQL | rds-pg, 4 commands | ratio | 4 commands again (no change) |\n\
         |---|---|---|---|---|\n{}\n",
        sandbox.version(),
        if sandbox.major_version() >= 15 { "on" } else { "off" },
        Command::new("date")
            .arg("+%Y-%m-%d")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default(),
        extensions.join(" + "),
        rows.join("\n")
    );
    write_section("Commands vs psql", &body);
    println!("{body}");
}
