//! `fleet apply` timed two ways, locally and behind a simulated network round trip:
//!
//! - one project provisioned by `fleet apply` from an inventory, side by side with the very same
//!   SQL typed into one `psql` session ("Fleet apply vs psql");
//! - a `fleet apply` with nothing to change, whose cost grows by one round trip per database
//!   beyond connecting, against the same connections alone and against the four `ensure_*` calls
//!   per project a deploy script makes today ("No-op fleet apply: round trips per database").
//!
//! `cargo bench -p rds-pg-benches --bench fleet` (or `make bench`); writes both sections of
//! docs/BENCHMARKS.md. `RDS_PG_BENCH_VERSION` picks the server (default: 15 when PostGIS is
//! installed, else the newest), `RDS_PG_BENCH_RUNS` the runs per row (default 5).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use postgres_protocol::escape::escape_literal;
use rds_pg_benches::{median, write_section, LatencyProxy};
use rds_pg_core::fleet::{self, FleetOptions, FleetReport, ItemState};
use rds_pg_core::sandbox::{preferred_version, Sandbox, SandboxOptions};
use rds_pg_core::{
    pgpass, ConnectOptions, DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions,
    Extension, Inventory, Password, Provisioner, ReadOnlyGrant, RoleName, UserSpec,
};

fn psql() -> PathBuf {
    [
        PathBuf::from("/usr/lib/postgresql/15/bin/psql"),
        PathBuf::from("/usr/bin/psql"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("psql is missing: run `make setup` (installs postgresql-client-15)")
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// An inventory of one instance (the sandbox behind `port`) with `projects`, each with one
/// database (extensions, one reader) and credentials in env files under `dir`.
fn inventory(
    sandbox: &Sandbox,
    port: u16,
    dir: &Path,
    projects: &[String],
    extensions: &str,
) -> Inventory {
    let pgpass_path = dir.join("master.pgpass");
    let line = pgpass::format_line(
        "127.0.0.1",
        port,
        "postgres",
        sandbox.master_user(),
        sandbox.master_password(),
    )
    .unwrap();
    write_private(&pgpass_path, &format!("{}\n", line.expose()));
    let tls = match sandbox.ca_cert_path() {
        Some(ca) => format!("sslrootcert = \"{}\"", ca.display()),
        None => "sslmode = \"disable\"".to_owned(),
    };
    let mut text = format!(
        "[[client]]\nname = \"bench\"\naccount_id = \"111122223333\"\n\n\
         [[instance]]\nname = \"bench-db\"\nclient = \"bench\"\nenvironment = \"production\"\n\
         region = \"eu-west-1\"\npostgres_major = {}\nendpoint = \"127.0.0.1\"\nport = {port}\n\
         master_user = \"{}\"\nmaster_password = {{ pgpass = \"{}\" }}\n{tls}\n\n",
        sandbox.major_version(),
        sandbox.master_user(),
        pgpass_path.display()
    );
    for p in projects {
        text.push_str(&format!(
            "[[project]]\nname = \"{p}\"\nclient = \"bench\"\nenvironment = \"production\"\n\
             region = \"eu-west-1\"\ninstance = \"bench-db\"\n\n\
             [[project.database]]\nname = \"{p}\"\nowner = \"{p}\"\nextensions = {extensions}\n\
             readers = [\"{p}_ro\"]\n\n[project.credentials]\n{p} = {{ env_file = \"{d}/{p}.env\" }}\n\
             {p}_ro = {{ env_file = \"{d}/{p}_ro.env\" }}\n\n",
            d = dir.display()
        ));
    }
    Inventory::from_str(&text, "bench.toml").unwrap()
}

fn check(report: &FleetReport) {
    for i in &report.instances {
        assert!(i.error.is_none(), "{i}");
        for item in &i.items {
            assert!(item.state.error().is_none(), "{item}: {:?}", item.state);
        }
    }
}

/// The password an env file rds-pg wrote holds.
fn env_password(path: &Path) -> Password {
    let text = std::fs::read_to_string(path).unwrap();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("PGPASSWORD="))
        .unwrap();
    Password::new(value.trim_matches('\''))
}

/// The statements the apply ran, as a psql script (`\c` where the database changes, the
/// redacted verifiers replaced by verifiers of the delivered passwords).
fn psql_script(report: &FleetReport, dir: &Path) -> (String, usize) {
    let mut script = String::new();
    let mut current = "postgres".to_owned();
    let mut count = 0;
    for item in &report.instances[0].items {
        let ItemState::Applied(r) = &item.state else {
            continue;
        };
        for step in &r.steps {
            let db = step
                .database
                .as_ref()
                .map(|d| d.as_str().to_owned())
                .unwrap_or_else(|| "postgres".into());
            if db != current {
                script.push_str(&format!("\\c {db}\n"));
                current = db;
            }
            let mut sql = step.sql();
            if sql.contains("'[redacted]'") {
                let pw = env_password(&dir.join(format!("{}.env", item.name)));
                sql = sql.replace(
                    "'[redacted]'",
                    &escape_literal(pw.scram_verifier().expose()),
                );
            }
            script.push_str(&sql);
            script.push_str(";\n");
            count += 1;
        }
    }
    (script, count)
}

fn run_psql(psql: &Path, options: &ConnectOptions, script: &str, dir: &Path) {
    let passfile = dir.join("psql.pgpass");
    write_private(
        &passfile,
        &format!(
            "*:*:*:{}:{}\n",
            options.get_user(),
            options
                .get_password()
                .unwrap()
                .expose()
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        ),
    );
    let script_path = dir.join("flow.sql");
    std::fs::write(&script_path, script).unwrap();
    let mut cmd = Command::new(psql);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script_path)
        .env_clear()
        .env("PGHOST", options.get_host())
        .env("PGPORT", options.get_port().to_string())
        .env("PGUSER", options.get_user())
        .env("PGDATABASE", "postgres")
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

fn teardown(options: &ConnectOptions, project: &str) {
    let mut rds = Provisioner::connect(options).unwrap();
    rds.drop_database(
        &DatabaseName::new(project).unwrap(),
        &DropDatabaseOptions::new().force(true),
    )
    .unwrap();
    for r in [format!("{project}_ro"), project.to_owned()] {
        rds.drop_user(&RoleName::new(r).unwrap(), &DropUserOptions::new())
            .unwrap();
    }
}

fn date() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The four `ensure_*` calls a deploy script makes per project, each planning on its own.
fn per_operation(options: &ConnectOptions, projects: &[String], extensions: &[Extension]) {
    let mut rds = Provisioner::connect(options).unwrap();
    for p in projects {
        let reader = format!("{p}_ro");
        let a = rds.ensure_user(&UserSpec::new(p).unwrap()).unwrap();
        let b = rds
            .ensure_database(
                &DatabaseSpec::new(p, p)
                    .unwrap()
                    .extensions(extensions.iter().cloned()),
            )
            .unwrap();
        let c = rds.ensure_user(&UserSpec::new(&reader).unwrap()).unwrap();
        let d = rds
            .grant_read_only(&ReadOnlyGrant::new(p, &reader).unwrap())
            .unwrap();
        assert!(!(a.changed || b.changed || c.changed || d.changed));
    }
}

/// Opens and closes one connection to each of `databases`, as the fleet's no-op run does.
fn connections_only(options: &ConnectOptions, databases: &[String]) {
    for d in databases {
        let client = rds_pg_core::connect(&options.for_database(d.as_str())).unwrap();
        drop(client);
    }
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
        .unwrap_or(5);
    let psql = psql();
    let sandbox = Sandbox::start(SandboxOptions::new().version(version)).expect("sandbox");
    // Once per instance, outside the timings (fleet apply would do it on its first run).
    Provisioner::connect(&sandbox.master_options())
        .and_then(|mut p| p.secure_instance())
        .expect("secure_instance");
    let (extensions, ext_list) = if sandbox.has_postgis() {
        (
            vec![Extension::Postgis, Extension::Hstore],
            "[\"postgis\", \"hstore\"]",
        )
    } else {
        (vec![Extension::Hstore], "[\"hstore\"]")
    };
    let tls = if sandbox.major_version() >= 15 {
        "on"
    } else {
        "off"
    };

    // ------------------------------------------------------------- one project vs psql
    let mut rows = Vec::new();
    let mut statements = 0;
    let mut connections = 0;
    for rtt_ms in [0u64, 5, 20] {
        let proxy = (rtt_ms > 0)
            .then(|| LatencyProxy::start(sandbox.port(), Duration::from_millis(rtt_ms)));
        let port = proxy.as_ref().map(|p| p.port()).unwrap_or(sandbox.port());
        let master = sandbox.master_options().port(port);
        let (mut ours, mut theirs, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let dir = tempfile::tempdir().unwrap();
            let project = format!("fleet{rtt_ms}_{i}");
            let inv = inventory(
                &sandbox,
                port,
                dir.path(),
                std::slice::from_ref(&project),
                ext_list,
            );
            let t = Instant::now();
            let report = fleet::apply(&inv, &FleetOptions::new()).unwrap();
            ours.push(t.elapsed());
            check(&report);
            let t = Instant::now();
            let second = fleet::apply(&inv, &FleetOptions::new()).unwrap();
            again.push(t.elapsed());
            assert!(
                second.is_in_sync(),
                "a second run changes nothing: {second}"
            );
            let (script, n) = psql_script(&report, dir.path());
            statements = n;
            connections = 1 + script.matches("\\c ").count();
            teardown(&master, &project);
            let t = Instant::now();
            run_psql(&psql, &master, &script, dir.path());
            theirs.push(t.elapsed());
            teardown(&master, &project);
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
        "`cargo bench -p rds-pg-benches --bench fleet` on PostgreSQL {} (sandbox, TLS {tls}), \
         median of {runs} runs per row, measured {}.\n\n\
         `fleet apply` of an inventory with one project on one instance: owner, database with {}, \
         a reader and its grant, both roles' credentials delivered to env files — {statements} \
         statements, the whole call (master's password from a pgpass file, connecting, the bulk \
         inspection, the operations under their locks). The baseline is the very same statements \
         (from the apply's report, verifiers of the delivered passwords filled in) in one \
         `psql -f` session that reconnects with `\\c` where the database changes ({connections} \
         connections). Round-trip time is added by the local proxy of the other sections.\n\n\
         | round trip | psql, same SQL | fleet apply | ratio | fleet apply again (no change) |\n\
         |---|---|---|---|---|\n{}\n",
        sandbox.version(),
        date(),
        extensions
            .iter()
            .map(|e| e.name().to_owned())
            .collect::<Vec<_>>()
            .join(" + "),
        rows.join("\n")
    );
    write_section("Fleet apply vs psql", &body);
    println!("{body}");

    // ------------------------------------------------------------- no-op: round trips
    let projects: Vec<String> = (0..4).map(|i| format!("noop{i}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let setup = inventory(&sandbox, sandbox.port(), dir.path(), &projects, ext_list);
    check(&fleet::apply(&setup, &FleetOptions::new()).unwrap());
    let mut databases: Vec<String> = vec!["postgres".into()];
    databases.extend(projects.iter().cloned());
    if sandbox.major_version() < 15 {
        databases.push("template1".into());
    }
    let mut measured = Vec::new();
    let mut queries = 0;
    // Round trips and connections counted at the proxy: fleet apply, connections only, ensure_*.
    let mut counted: Option<[(usize, usize); 3]> = None;
    for rtt_ms in [0u64, 5, 20] {
        let proxy = (rtt_ms > 0)
            .then(|| LatencyProxy::start(sandbox.port(), Duration::from_millis(rtt_ms)));
        let port = proxy.as_ref().map(|p| p.port()).unwrap_or(sandbox.port());
        let inv = inventory(&sandbox, port, dir.path(), &projects, ext_list);
        let master = sandbox.master_options().port(port);
        let (mut noop, mut bare, mut ops) = (Vec::new(), Vec::new(), Vec::new());
        let trips = || {
            proxy
                .as_ref()
                .map(|p| (p.round_trips(), p.connections()))
                .unwrap_or_default()
        };
        for _ in 0..runs.max(3) {
            let (r0, c0) = trips();
            let t = Instant::now();
            let r = fleet::apply(&inv, &FleetOptions::new()).unwrap();
            noop.push(t.elapsed());
            let (r1, c1) = trips();
            assert!(r.is_in_sync(), "{r}");
            queries = r.instances[0].inspection_queries;
            let t = Instant::now();
            connections_only(&master, &databases);
            bare.push(t.elapsed());
            let (r2, c2) = trips();
            let t = Instant::now();
            per_operation(&master, &projects, &extensions);
            ops.push(t.elapsed());
            let (r3, c3) = trips();
            if proxy.is_some() {
                counted = Some([(r1 - r0, c1 - c0), (r2 - r1, c2 - c1), (r3 - r2, c3 - c2)]);
            }
        }
        measured.push((
            rtt_ms,
            median(&mut noop),
            median(&mut bare),
            median(&mut ops),
        ));
        eprintln!("{:?}", measured.last().unwrap());
    }
    let n = databases.len() as f64;
    let [(fleet_trips, fleet_conns), (bare_trips, bare_conns), (ops_trips, ops_conns)] =
        counted.expect("counted behind the proxy");
    assert_eq!(fleet_conns, bare_conns, "the same connections");
    let per_connection = bare_trips as f64 / bare_conns as f64;
    let ops_after = ops_trips.saturating_sub((per_connection * ops_conns as f64).round() as usize);
    let rt = |a: Duration, b: Duration, rtt_ms: u64| {
        (b.as_secs_f64() - a.as_secs_f64()) / (rtt_ms as f64 / 1000.0)
    };
    let (_, noop0, bare0, ops0) = measured[0];
    let (_, noop20, bare20, ops20) = measured[2];
    let (_, noop5, bare5, ops5) = measured[1];
    let fleet_rt = rt(noop0, noop20, 20);
    let bare_rt = rt(bare0, bare20, 20);
    let ops_rt = rt(ops0, ops20, 20);
    let table: Vec<String> = measured
        .iter()
        .map(|(rtt, noop, bare, ops)| {
            format!(
                "| {rtt} ms | {} | {} | {} |",
                ms(*noop),
                ms(*bare),
                ms(*ops)
            )
        })
        .collect();
    let body = format!(
        "`cargo bench -p rds-pg-benches --bench fleet` on PostgreSQL {} (sandbox, TLS {tls}), \
         median of {} runs per row, measured {}.\n\n\
         An instance with {} projects (each: a database with {}, its owner, a reader and its \
         grant) already in line with the inventory, so nothing changes. `fleet apply` connects to \
         {} databases ({}) and sends {queries} inspection queries in all: one in the maintenance \
         database for the server facts and every role and database of the instance, one in each \
         project database for its owner and all its readers{}. \"connections only\" opens and \
         closes the same {} connections (TLS and SCRAM included) and sends nothing; \"4 `ensure_*` \
         per project\" is `ensure_user(owner)`, `ensure_database`, `ensure_user(reader)` and \
         `grant_read_only` on one master connection, each operation planning on its own.\n\n\
         | round trip | fleet apply, no change | connections only | 4 `ensure_*` per project, no change |\n\
         |---|---|---|---|\n{}\n\n\
         Round trips counted at the proxy (each time a client speaks again after the server \
         answered): `fleet apply` **{fleet_trips}** over {fleet_conns} connections, the \
         connections alone {bare_trips}: **{:.1} round trip per database after connecting**. \
         The four `ensure_*` calls per project: {ops_trips} over {ops_conns} connections, \
         {} after connecting (at {:.0} per connection), **{:.1} per project**.\n\n\
         The same derived from the seconds, (t₂₀ − t₀) / 20 ms, on a machine shared with other \
         work (so within a few round trips; from 5 ms: {:.1}, {:.1} and {:.1}): `fleet apply` \
         {fleet_rt:.1}, the connections alone {bare_rt:.1}, so {:.1} per database after \
         connecting; the four `ensure_*` per project {ops_rt:.1}, {:.1} per project.\n",
        sandbox.version(),
        runs.max(3),
        date(),
        projects.len(),
        extensions
            .iter()
            .map(|e| e.name().to_owned())
            .collect::<Vec<_>>()
            .join(" + "),
        databases.len(),
        databases.join(", "),
        if sandbox.major_version() < 15 {
            ", and one in template1 (new databases are copied from it before 15)"
        } else {
            ""
        },
        databases.len(),
        table.join("\n"),
        (fleet_trips - bare_trips) as f64 / n,
        ops_after,
        per_connection,
        ops_after as f64 / projects.len() as f64,
        rt(noop0, noop5, 5),
        rt(bare0, bare5, 5),
        rt(ops0, ops5, 5),
        (fleet_rt - bare_rt) / n,
        ops_rt / projects.len() as f64,
    );
    write_section("No-op fleet apply: round trips per database", &body);
    println!("{body}");
}
