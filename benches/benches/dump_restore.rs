//! Dump and restore of a pgbench scale-10 database (1 million accounts) through rds-pg, side by
//! side with the raw `pg_dump`/`pg_restore` doing the same work, in the same run.
//!
//! `cargo bench -p rds-pg-benches --bench dump_restore` (or `make bench`); writes the section
//! "Dump and restore" of docs/BENCHMARKS.md. `RDS_PG_BENCH_VERSION` picks the server (default 15:
//! the client tools here are 15), `RDS_PG_BENCH_RUNS` the runs per row (default 5),
//! `RDS_PG_BENCH_SCALE` the pgbench scale (default 10).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rds_pg_benches::{median, write_section};
use rds_pg_core::dump::{tools, ClientProgram, ClientTool, ToolWorkDir};
use rds_pg_core::sandbox::{Sandbox, SandboxOptions};
use rds_pg_core::{
    dump, restore, ConnectOptions, DatabaseName, DatabaseSpec, DropDatabaseOptions, DumpFormat,
    DumpOptions, Password, Provisioner, RestoreOptions, UserSpec,
};

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
        })
        .unwrap_or(default)
}

/// Runs `cmd` and panics with its standard error when it fails.
fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The raw tool with the same connection as rds-pg uses (password in a private PGPASSFILE),
/// plus `args`.
fn raw(tool: &ClientTool, conn: &ConnectOptions, work: &ToolWorkDir, args: &[String]) -> Command {
    let mut cmd = tools::connection_command(tool, conn, work.passfile());
    cmd.args(args);
    cmd
}

fn pgbench_init(conn: &ConnectOptions, work: &ToolWorkDir, scale: u32) {
    let pgbench = Path::new("/usr/lib/postgresql/15/bin/pgbench");
    assert!(
        pgbench.is_file(),
        "{} is missing: run `make setup` (apt-get install postgresql-client-15)",
        pgbench.display()
    );
    let mut cmd = Command::new(pgbench);
    cmd.env("PGPASSFILE", work.passfile())
        .env("PGSSLMODE", conn.get_sslmode().as_str())
        .env_remove("PGPASSWORD")
        .arg(format!("--host={}", conn.get_host()))
        .arg(format!("--port={}", conn.get_port()))
        .arg(format!("--username={}", conn.get_user()))
        .arg("--initialize")
        .arg("--quiet")
        .arg(format!("--scale={scale}"))
        .arg(conn.get_dbname());
    if let Some(ca) = conn.get_sslrootcert() {
        cmd.env("PGSSLROOTCERT", ca);
    }
    run(cmd, "pgbench --initialize");
}

fn fresh_database(master: &mut Provisioner, name: &str, owner: &str) {
    let db = DatabaseName::new(name).unwrap();
    master
        .drop_database(&db, &DropDatabaseOptions::new().force(true))
        .expect("drop");
    master
        .ensure_database(&DatabaseSpec::new(name, owner).unwrap())
        .expect("create");
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

/// `min–max` of sorted samples.
fn range(sorted: &[Duration]) -> String {
    format!(
        "{}–{}",
        sorted[0].as_millis(),
        sorted[sorted.len() - 1].as_millis()
    )
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

struct Row {
    what: &'static str,
    raw: Vec<Duration>,
    /// The whole rds-pg call.
    rds: Vec<Duration>,
    /// The pg_dump/pg_restore run inside it (the report's duration).
    rds_tool: Vec<Duration>,
}

impl Row {
    fn new(what: &'static str) -> Row {
        Row {
            what,
            raw: Vec::new(),
            rds: Vec::new(),
            rds_tool: Vec::new(),
        }
    }
}

/// Writes dirty buffers out so that one side does not pay for the other's writes.
fn checkpoint(sandbox: &Sandbox) {
    sandbox
        .connect_rdsadmin("postgres")
        .unwrap()
        .batch_execute("CHECKPOINT")
        .unwrap();
}

fn main() {
    let version = env_number("RDS_PG_BENCH_VERSION", 15);
    let runs = env_number("RDS_PG_BENCH_RUNS", 5).max(1);
    let scale = env_number("RDS_PG_BENCH_SCALE", 10);
    let sandbox = Sandbox::start(SandboxOptions::new().version(version))
        .unwrap_or_else(|e| panic!("cannot start a PostgreSQL {version} sandbox: {e}"));
    let mut master = Provisioner::connect(&sandbox.master_options()).expect("connect as master");
    master.secure_instance().expect("secure_instance");
    let password = Password::generate().unwrap();
    master
        .ensure_user(&UserSpec::new("bench").unwrap().password(password.clone()))
        .expect("user");
    master
        .ensure_database(&DatabaseSpec::new("pgbench", "bench").unwrap())
        .expect("database");
    let user = sandbox.options_for("bench").password(password);
    let source = user.for_database("pgbench");
    let work = ToolWorkDir::create(&user).unwrap();
    eprintln!(
        "pgbench --initialize --scale={scale} on PostgreSQL {}…",
        sandbox.version()
    );
    let init = timed(|| pgbench_init(&source, &work, scale));

    let server = {
        let mut c = rds_pg_core::connect(&source).unwrap();
        rds_pg_core::ServerVersion::query(&mut c).unwrap()
    };
    let pg_dump = tools::find(ClientProgram::PgDump, server, None).expect("pg_dump");
    let pg_restore = tools::find(ClientProgram::PgRestore, server, None).expect("pg_restore");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    let mut rows = [
        Row::new("dump, custom format"),
        Row::new("restore, one transaction"),
        Row::new("dump, directory format, 2 jobs"),
        Row::new("restore, 2 jobs"),
    ];
    let mut archive_bytes = 0;
    for run_no in 1..=runs {
        eprintln!("run {run_no}/{runs}");
        for p in ["raw.dump", "rds.dump", "raw.dir", "rds.dir"] {
            let p = path(p);
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_dir_all(&p);
        }
        fresh_database(&mut master, "copy_raw", "bench");
        fresh_database(&mut master, "copy_rds", "bench");
        // Odd runs time the raw tool first, even runs rds-pg first.
        let raw_first = run_no % 2 == 1;
        for (i, row) in rows.iter_mut().enumerate() {
            if i == 3 {
                // Fresh targets for the second pair of restores.
                fresh_database(&mut master, "copy_raw", "bench");
                fresh_database(&mut master, "copy_rds", "bench");
            }
            for side_is_raw in [raw_first, !raw_first] {
                checkpoint(&sandbox);
                if side_is_raw {
                    let cmd = match i {
                        0 => raw(
                            &pg_dump,
                            &source,
                            &work,
                            &[
                                "--format=custom".into(),
                                format!("--file={}", s(&path("raw.dump"))),
                            ],
                        ),
                        1 => raw(
                            &pg_restore,
                            &user.for_database("copy_raw"),
                            &work,
                            &[
                                "--no-owner".into(),
                                "--no-acl".into(),
                                "--single-transaction".into(),
                                s(&path("raw.dump")),
                            ],
                        ),
                        2 => raw(
                            &pg_dump,
                            &source,
                            &work,
                            &[
                                "--format=directory".into(),
                                "--jobs=2".into(),
                                format!("--file={}", s(&path("raw.dir"))),
                            ],
                        ),
                        _ => raw(
                            &pg_restore,
                            &user.for_database("copy_raw"),
                            &work,
                            &[
                                "--no-owner".into(),
                                "--no-acl".into(),
                                "--jobs=2".into(),
                                "--exit-on-error".into(),
                                s(&path("raw.dir")),
                            ],
                        ),
                    };
                    row.raw.push(timed(|| run(cmd, row.what)));
                } else {
                    let started = Instant::now();
                    let tool_time = match i {
                        0 => {
                            let report = dump(&DumpOptions::new(source.clone(), path("rds.dump")))
                                .expect("dump");
                            archive_bytes = report.bytes;
                            report.duration
                        }
                        1 => {
                            let options = RestoreOptions::new(
                                user.for_database("copy_rds"),
                                path("rds.dump"),
                            );
                            let report = restore(&options).expect("restore");
                            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
                            report.duration
                        }
                        2 => {
                            let options = DumpOptions::new(source.clone(), path("rds.dir"))
                                .format(DumpFormat::Directory)
                                .jobs(2);
                            dump(&options).expect("dump -j2").duration
                        }
                        _ => {
                            let options =
                                RestoreOptions::new(user.for_database("copy_rds"), path("rds.dir"))
                                    .jobs(2);
                            restore(&options).expect("restore -j2").duration
                        }
                    };
                    row.rds.push(started.elapsed());
                    row.rds_tool.push(tool_time);
                }
            }
        }
    }
    // The copies hold what the source holds.
    for db in ["copy_raw", "copy_rds"] {
        let mut c = rds_pg_core::connect(&user.for_database(db)).unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM pgbench_accounts", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, i64::from(scale) * 100_000, "{db}");
    }

    let mut table = String::from(
        "| operation | raw pg_dump/pg_restore (range) | rds-pg, whole call (range) | difference | \
         of which the tool | rds-pg's own work |\n|---|---|---|---|---|---|\n",
    );
    for row in &mut rows {
        // Per-run differences first: median() sorts in place.
        let mut own: Vec<Duration> = row
            .rds
            .iter()
            .zip(&row.rds_tool)
            .map(|(whole, tool)| whole.saturating_sub(*tool))
            .collect();
        let (r, d) = (median(&mut row.raw), median(&mut row.rds));
        table.push_str(&format!(
            "| {} | {} ({}) | {} ({}) | {:+.1} % | {} | {} |\n",
            row.what,
            ms(r),
            range(&row.raw),
            ms(d),
            range(&row.rds),
            100.0 * (d.as_secs_f64() - r.as_secs_f64()) / r.as_secs_f64(),
            ms(median(&mut row.rds_tool)),
            ms(median(&mut own)),
        ));
    }
    let body = format!(
        "`cargo bench -p rds-pg-benches --bench dump_restore` on PostgreSQL {version} ({server}, \
         sandbox, TLS on), pgbench scale {scale} ({accounts} accounts; `pgbench --initialize` took \
         {init}), custom archive {mib:.1} MiB, median of {runs} runs per row, client tools \
         {tool}, 2 cores shared with other work.\n\n\
         Both sides run as the project user with the password in a private `PGPASSFILE` and write \
         the same archives. \"raw\" is the tool alone with the flags rds-pg passes \
         (`pg_restore --no-owner --no-acl --single-transaction`, or `--jobs=2 --exit-on-error`), \
         into a fresh database owned by the user; rds-pg's time is the whole call: a connection \
         for the server version, tool discovery (`--version` of each candidate up to the first of the server's major, once per process), and \
         for a restore also `pg_restore --list`, the target inspection and the filtered list; \
         \"own work\" is that call minus the tool's run (median of the per-run differences). \
         The two sides alternate which goes first; a `CHECKPOINT` precedes each timing.\n\n{table}",
        server = sandbox.version(),
        accounts = u64::from(scale) * 100_000,
        init = ms(init),
        mib = archive_bytes as f64 / (1024.0 * 1024.0),
        tool = pg_dump,
    );
    println!("{body}");
    write_section("Dump and restore", &body);
}
