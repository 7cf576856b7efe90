//! End-to-end tests of the `rds-pg` binary on the RDS-like sandbox, on PostgreSQL 15 and the
//! newest supported version (`RDS_PG_TEST_VERSIONS` selects): the README demo's sequence step by
//! step, `--dry-run`, `--json`, exit statuses and messages, and a generated password that logs in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use postgres::Client;
use rds_pg_core::sandbox::DetachedSandbox;
use rds_pg_core::{ConnectOptions, Password};
use rds_pg_tests::{
    assert_password_refused, changes_since, connect_error, log_mark, run_on, selected_versions,
    statements_since, Sandbox,
};
use serde_json::Value;

mod common;
use common::{has_client_tools_for, newest, write_private, Run};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One test per chosen version: `pg15` and `newest`.
macro_rules! on_15_and_newest {
    ($(#[$meta:meta])* fn $name:ident($sb:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($sb: &Sandbox) $body
            #[test] fn pg15() { run_on(15, body) }
            #[test] fn newest() { run_on(super::newest(), body) }
        }
    };
}

/// `rds-pg` with a libpq environment of its own (nothing inherited from the test's).
struct RdsPg {
    env: Vec<(String, String)>,
}

impl RdsPg {
    /// No server: for usage errors.
    fn bare() -> RdsPg {
        RdsPg { env: Vec::new() }
    }

    /// Connected to `sandbox` as master through a password file in `dir`, as an operator would
    /// be (no password on the command line or in PGPASSWORD).
    fn master(sandbox: &Sandbox, dir: &Path) -> RdsPg {
        let passfile = dir.join("pgpass");
        let line = rds_pg_core::pgpass::format_line(
            "127.0.0.1",
            sandbox.port(),
            "*",
            sandbox.master_user(),
            sandbox.master_password(),
        )
        .unwrap();
        write_private(&passfile, &format!("{}\n", line.expose()));
        let mut env = vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), sandbox.port().to_string()),
            ("PGUSER".into(), sandbox.master_user().into()),
            ("PGPASSFILE".into(), passfile.display().to_string()),
        ];
        match sandbox.ca_cert_path() {
            Some(ca) => {
                env.push(("PGSSLMODE".into(), "verify-full".into()));
                env.push(("PGSSLROOTCERT".into(), ca.display().to_string()));
            }
            None => env.push(("PGSSLMODE".into(), "disable".into())),
        }
        RdsPg { env }
    }

    /// As [`RdsPg::master`], under the endpoint name the sandbox's certificate carries
    /// (`PGHOST`, which never resolves: give `--hostaddr` or `PGHOSTADDR`), with master's line
    /// of a password file in `dir` for that name.
    fn master_by_name(sandbox: &Sandbox, dir: &Path) -> RdsPg {
        let passfile = dir.join("endpoint-pgpass");
        let line = rds_pg_core::pgpass::format_line(
            rds_pg_core::sandbox::ENDPOINT_NAME,
            sandbox.port(),
            "*",
            sandbox.master_user(),
            sandbox.master_password(),
        )
        .unwrap();
        write_private(&passfile, &format!("{}\n", line.expose()));
        RdsPg::master(sandbox, dir)
            .with_env("PGHOST", rds_pg_core::sandbox::ENDPOINT_NAME)
            .with_env("PGPASSFILE", &passfile.display().to_string())
    }

    fn with_env(mut self, key: &str, value: &str) -> RdsPg {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") || k == "RDS_PG_SANDBOX_DIR" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs the binary through `sh -c 'umask 000; exec rds-pg …'`: the umask is the child's own
    /// (it is process-wide, and tests run in parallel).
    fn run_with_umask_000(&self, args: &[&str]) -> Run {
        let cmd = self.command(args);
        let binary = cmd.get_program().to_owned();
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("umask 000; exec \"$0\" \"$@\"")
            .arg(binary)
            .args(args);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        let out = sh.stdin(Stdio::null()).output().expect("sh runs");
        let run = Run::from_output(out);
        eprintln!("$ (umask 000) rds-pg {}\n{}", args.join(" "), run.stderr);
        run
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("the rds-pg binary runs");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let run = Run::from_output(out);
        eprintln!("$ rds-pg {}\n{}", args.join(" "), run.stderr);
        run
    }
}

fn login(options: ConnectOptions) -> Client {
    let target = options.target();
    rds_pg_tests::login_as_application(&options)
        .unwrap_or_else(|e| panic!("cannot log in as {target}: {e}"))
}

fn exists(sandbox: &Sandbox, catalog: &str, name: &str) -> bool {
    let column = if catalog == "pg_roles" {
        "rolname"
    } else {
        "datname"
    };
    let mut c = sandbox.connect_rdsadmin("postgres").unwrap();
    let sql = format!("SELECT count(*) FROM {catalog} WHERE {column} = $1");
    c.query_one(sql.as_str(), &[&name])
        .unwrap()
        .get::<_, i64>(0)
        == 1
}

/// The one line a `user create`/`user password` printed on stdout: the generated password.
fn printed_password(run: &Run) -> Password {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold the password alone: {run:#?}"
    );
    assert_eq!(lines[0].len(), 40, "a generated password: {run:#?}");
    assert!(
        !run.stderr.contains(lines[0]),
        "the password must not be on stderr"
    );
    Password::new(lines[0])
}

// ---------------------------------------------------------------------------------------------
// The demo's sequence
// ---------------------------------------------------------------------------------------------

on_15_and_newest!(
    fn the_demo_sequence_step_by_step(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());
        let passfile = tmp.path().join("pgpass");
        let postgis = sandbox.has_postgis();
        let mut exts = vec!["--extension", "hstore"];
        if postgis {
            exts.extend(["--extension", "postgis"]);
        }

        // 1. The project user, its password into the password file (nothing on stdout).
        let run = cli
            .run(&["user", "create", "shop", "--credentials-pgpass", passfile.to_str().unwrap()])
            .expect(0, "user create shop");
        assert_eq!(run.stdout, "", "a sink was given: no password on stdout");
        assert!(run.stderr.contains("changed"), "{run:#?}");
        assert!(run.stderr.contains("CREATE ROLE \"shop\""), "{run:#?}");
        assert!(run.stderr.contains("PASSWORD '[redacted]'"), "{run:#?}");
        let shop = || sandbox.options_for("shop").passfile(&passfile);

        // Running it again changes nothing.
        let again = cli.run(&["user", "create", "shop"]).expect(0, "user create again");
        assert_eq!(again.stdout, "");
        assert!(again.stderr.contains("user create \"shop\": unchanged"), "{again:#?}");

        // 2. Its database, with hstore (and PostGIS where the sandbox has it).
        let mut args = vec!["db", "create", "shop", "--owner", "shop"];
        args.extend(&exts);
        let run = cli.run(&args).expect(0, "db create shop");
        assert!(run.stderr.contains("CREATE DATABASE \"shop\" OWNER \"shop\""), "{run:#?}");
        assert!(run.stderr.contains("temporary"), "master's temporary membership: {run:#?}");
        let run = cli.run(&args).expect(0, "db create again");
        assert!(run.stderr.contains("db create \"shop\": unchanged"), "{run:#?}");

        // 3. A read-only user, with a password from stdin, and its grant.
        let ro_password = "read only, with spaces and 'quotes'";
        let run = cli
            .run_with_stdin(
                &["user", "create", "shop_ro", "--password-stdin"],
                Some(&format!("{ro_password}\n")),
            )
            .expect(0, "user create shop_ro");
        assert_eq!(run.stdout, "", "a given password is not printed");
        cli.run(&["grant", "readonly", "shop", "shop_ro"])
            .expect(0, "grant readonly");

        // 4. A few rows, as the project user (tables created after the grant).
        let mut as_shop = login(shop().dbname("shop"));
        as_shop
            .batch_execute(
                "CREATE TABLE visits (id serial PRIMARY KEY, tags hstore);
                 INSERT INTO visits (tags) VALUES ('page=>home'), ('page=>cart'), ('page=>pay')",
            )
            .unwrap();
        if postgis {
            as_shop
                .batch_execute(
                    "CREATE TABLE shops (name text, location geometry(Point, 4326));
                     INSERT INTO shops VALUES ('main', ST_SetSRID(ST_MakePoint(4.35, 50.85), 4326))",
                )
                .unwrap();
        }
        drop(as_shop);
        let mut as_ro = login(
            sandbox
                .options_for("shop_ro")
                .dbname("shop")
                .password(ro_password),
        );
        let n: i64 = as_ro
            .query_one("SELECT count(*) FROM visits", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 3, "the read-only user reads rows added after the grant");
        let denied = as_ro
            .batch_execute("INSERT INTO visits (tags) VALUES (NULL)")
            .unwrap_err();
        let denied = rds_pg_core::Error::from(denied);
        assert_eq!(denied.kind(), rds_pg_core::ErrorKind::PermissionDenied, "{denied}");
        drop(as_ro);

        // 5. Dump as the project user; restore into a second project's database.
        cli.run(&["user", "create", "shop2", "--credentials-pgpass", passfile.to_str().unwrap()])
            .expect(0, "user create shop2");
        let mut args = vec!["db", "create", "shop2", "--owner", "shop2"];
        args.extend(&exts);
        cli.run(&args).expect(0, "db create shop2");
        let dump = tmp.path().join("shop.dump");
        let dump_arg = dump.to_str().unwrap();
        let as_shop_cli = RdsPg { env: cli.env.clone() }.with_env("PGUSER", "shop");
        let run = as_shop_cli.run(&["dump", "shop", "--file", dump_arg, "--json"]);
        if has_client_tools_for(sandbox.major_version()) {
            let doc = run.expect(0, "dump as the project user").json();
            assert!(dump.is_file());
            assert_eq!(doc["bytes"], std::fs::metadata(&dump).unwrap().len());
            assert_eq!(doc["format"], "custom");
            assert_eq!(doc["errors"], Value::Array(vec![]));
            let as_shop2_cli = RdsPg { env: cli.env.clone() }.with_env("PGUSER", "shop2");
            let mark = log_mark(sandbox);
            let run = as_shop2_cli
                .run(&["restore", "shop2", "--file", dump_arg, "--dry-run"])
                .expect(0, "restore --dry-run");
            assert!(run.stderr.contains("would run"), "{run:#?}");
            assert!(changes_since(sandbox, mark).is_empty(), "a dry run restores nothing");
            let doc = as_shop2_cli
                .run(&["restore", "shop2", "--file", dump_arg, "--json"])
                .expect(0, "restore as the second project's user")
                .json();
            assert_eq!(doc["changed"], true, "{doc:#}");
            assert_eq!(doc["single_transaction"], true, "{doc:#}");
            assert!(doc["entries_restored"].as_u64().unwrap() > 0, "{doc:#}");
            assert!(doc["skipped"].as_array().unwrap().iter().any(|s| s["entry"]
                .as_str()
                .unwrap()
                .starts_with("EXTENSION hstore")), "{doc:#}");
            assert_eq!(doc["warnings"], Value::Array(vec![]), "a clean restore: {doc:#}");
            let mut as_shop2 = login(
                sandbox.options_for("shop2").passfile(&passfile).dbname("shop2"),
            );
            let rows: Vec<String> = as_shop2
                .query("SELECT tags -> 'page' FROM visits ORDER BY id", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(rows, ["home", "cart", "pay"]);
            let owner: String = as_shop2
                .query_one(
                    "SELECT tableowner::text FROM pg_tables WHERE tablename = 'visits'",
                    &[],
                )
                .unwrap()
                .get(0);
            assert_eq!(owner, "shop2", "restored objects belong to the second project");
            if postgis {
                let x: f64 = as_shop2
                    .query_one("SELECT ST_X(location) FROM shops", &[])
                    .unwrap()
                    .get(0);
                assert_eq!(x, 4.35);
            }
        } else {
            // No pg_dump for this server's version on this machine: the failure says so.
            let run = run.expect(1, "dump without a recent enough pg_dump");
            assert!(
                run.stderr.contains("pg_dump") && run.stderr.contains(&sandbox.major_version().to_string()),
                "{run:#?}"
            );
        }

        // 6. Teardown: both databases, then the users.
        for db in ["shop", "shop2"] {
            let run = cli.run(&["db", "drop", db]).expect(0, "db drop");
            assert!(run.stderr.contains(&format!("DROP DATABASE IF EXISTS \"{db}\"")), "{run:#?}");
            assert!(!exists(sandbox, "pg_database", db), "{db} is gone");
        }
        for user in ["shop_ro", "shop", "shop2"] {
            cli.run(&["user", "drop", user]).expect(0, "user drop");
            assert!(!exists(sandbox, "pg_roles", user), "{user} is gone");
        }
        let run = cli.run(&["db", "drop", "shop"]).expect(0, "db drop again");
        assert!(run.stderr.contains("db drop \"shop\": unchanged"), "{run:#?}");
    }
);

// ---------------------------------------------------------------------------------------------
// --dry-run, --json, passwords
// ---------------------------------------------------------------------------------------------

on_15_and_newest!(
    fn dry_run_changes_nothing_and_shows_no_secret(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());
        // Something to drop, grant and rotate.
        cli.run(&["user", "create", "app"]).expect(0, "user create app");
        cli.run(&["user", "create", "app_ro"]).expect(0, "user create app_ro");
        cli.run(&["db", "create", "app", "--owner", "app"]).expect(0, "db create app");

        let mark = log_mark(sandbox);
        let env_file = tmp.path().join("app.env");
        let env_arg = env_file.to_str().unwrap();
        let commands: Vec<Vec<&str>> = vec![
            vec!["user", "create", "new_user", "--credentials-env", env_arg],
            vec!["user", "create", "new_user"],
            vec!["user", "password", "app", "--credentials-env", env_arg],
            vec!["user", "password", "app"],
            vec!["user", "drop", "app_ro"],
            vec!["db", "create", "new_db", "--owner", "app", "--extension", "hstore"],
            vec!["db", "drop", "app"],
            vec!["ext", "enable", "app", "hstore", "citext"],
            vec!["grant", "readonly", "app", "app_ro"],
            vec!["grant", "revoke-readonly", "app", "app_ro"],
        ];
        for args in &commands {
            let mut args = args.clone();
            args.push("--dry-run");
            let run = cli.run(&args).expect(0, &args.join(" "));
            assert_eq!(run.stdout, "", "a dry run prints no password: {run:#?}");
            assert!(run.stderr.contains("dry run"), "{run:#?}");
            assert!(!run.stderr.contains("SCRAM-SHA-256$"), "no verifier: {run:#?}");
        }
        let planned = cli
            .run(&["user", "password", "app", "--dry-run"])
            .expect(0, "rotate dry run");
        assert!(planned.stderr.contains("would run"), "{planned:#?}");
        assert!(planned.stderr.contains("PASSWORD '[redacted]'"), "{planned:#?}");

        let changes = changes_since(sandbox, mark);
        assert!(changes.is_empty(), "dry runs sent changes: {changes:#?}");
        assert!(!env_file.exists(), "no credentials written in a dry run");
        assert!(!exists(sandbox, "pg_roles", "new_user"));
        assert!(!exists(sandbox, "pg_database", "new_db"));
        assert!(exists(sandbox, "pg_database", "app"));
        assert!(exists(sandbox, "pg_roles", "app_ro"));
    }
);

on_15_and_newest!(
    fn json_output_parses_and_carries_the_documented_fields(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());

        let run = cli.run(&["user", "create", "app", "--json"]).expect(0, "user create --json");
        let doc = run.json();
        assert_eq!(doc["command"], "user create \"app\"");
        assert_eq!(doc["changed"], true);
        assert_eq!(doc["dry_run"], false);
        assert_eq!(doc["errors"], Value::Array(vec![]));
        assert!(doc["temporary_grants"].is_array());
        assert!(doc["notes"].is_array());
        let steps = doc["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0]["kind"], "change");
        assert_eq!(steps[0]["database"], "postgres");
        assert!(steps[0]["sql"].as_str().unwrap().contains("PASSWORD '[redacted]'"));
        assert!(steps[0]["reason"].is_string());
        // No sink: the generated password is in the document, and it logs in.
        let password = doc["generated_password"].as_str().unwrap();
        login(sandbox.options_for("app").password(password));

        let run = cli
            .run(&["db", "create", "app", "--owner", "app", "--json", "--dry-run"])
            .expect(0, "db create --json --dry-run");
        let doc = run.json();
        assert_eq!(doc["dry_run"], true);
        assert_eq!(doc["changed"], false);
        let kinds: Vec<&str> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"temporary_grant"), "{doc:#}");
        assert_eq!(kinds.last(), Some(&"temporary_revoke"), "{doc:#}");
        assert_eq!(doc["temporary_grants"], serde_json::json!(["app"]), "{doc:#}");

        let run = cli.run(&["db", "create", "app", "--owner", "app", "--json"]).expect(0, "db create");
        let doc = run.json();
        assert_eq!(doc["changed"], true);
        assert_eq!(doc["temporary_grants"], serde_json::json!(["app"]), "{doc:#}");
        let run = cli.run(&["db", "create", "app", "--owner", "app", "--json"]).expect(0, "again");
        let doc = run.json();
        assert_eq!(doc["changed"], false);
        assert_eq!(doc["steps"], Value::Array(vec![]));

        // A failure is a document too, with the error's kind and message.
        let run = cli
            .run(&["db", "create", "other", "--owner", "nobody_here", "--json"])
            .expect(1, "db create with a missing owner");
        let doc = run.json();
        assert_eq!(doc["changed"], Value::Null, "unknown after a failure");
        let errors = doc["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["kind"], "not_found", "{doc:#}");
        assert!(errors[0]["message"].as_str().unwrap().contains("nobody_here"), "{doc:#}");
    }
);

on_15_and_newest!(
    fn a_generated_password_is_printed_once_and_logs_in(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());
        let mark = log_mark(sandbox);
        let run = cli.run(&["user", "create", "app"]).expect(0, "user create app");
        let password = printed_password(&run);
        assert!(run.stderr.contains("shown once"), "{run:#?}");
        let mut c = login(sandbox.options_for("app").password(password.clone()));
        c.batch_execute("SELECT 1").unwrap();
        let log = sandbox.log_text().unwrap();
        assert!(!log[mark..].contains(password.expose()), "the server log never sees it");

        // Rotated: the new one works, the old one no longer does.
        let run = cli.run(&["user", "password", "app"]).expect(0, "user password app");
        let rotated = printed_password(&run);
        assert_ne!(rotated, password);
        login(sandbox.options_for("app").password(rotated));
        let old = connect_error(&sandbox.options_for("app").password(password));
        assert_password_refused(&old, "app");

        // Piped to a credentials command instead: nothing on stdout, the command got it.
        let received = tmp.path().join("received.json");
        let sink = format!("cat > {}", received.display());
        let run = cli
            .run(&["user", "password", "app", "--credentials-cmd", &sink])
            .expect(0, "user password with --credentials-cmd");
        assert_eq!(run.stdout, "");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&received).unwrap()).unwrap();
        let from_cmd = doc["password"].as_str().expect("the JSON has the password");
        login(sandbox.options_for("app").password(from_cmd));
    }
);

on_15_and_newest!(
    /// `--hostaddr` (or `PGHOSTADDR`) connects to the address while TLS and the password file
    /// use the host: here the sandbox's certificate name, which never resolves.
    fn hostaddr_reaches_the_server_under_its_endpoint_name(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let by_name = || RdsPg::master_by_name(sandbox, tmp.path());
        let cli = by_name();
        let run = cli.run(&["user", "create", "by_name"]);
        assert_eq!(run.status, 1, "the name alone does not resolve: {run:#?}");
        let run = cli
            .run(&["--hostaddr", "127.0.0.1", "user", "create", "by_name"])
            .expect(0, "user create with --hostaddr");
        login(sandbox.options_for("by_name").password(printed_password(&run)));
        let run = by_name()
            .with_env("PGHOSTADDR", "127.0.0.1")
            .run(&["user", "create", "by_env"])
            .expect(0, "user create with PGHOSTADDR");
        login(sandbox.options_for("by_env").password(printed_password(&run)));
        let run = cli
            .run(&["--hostaddr", "127.0.0.1", "-h", "wrong.rds-pg.invalid", "user", "create", "x"])
            .expect(1, "a name the certificate does not carry");
        assert!(run.stderr.contains("wrong.rds-pg.invalid"), "{run:#?}");
        let run = cli
            .run(&["--hostaddr", "db.example.com", "user", "create", "x"])
            .expect(2, "a hostaddr that is not an address");
        assert!(run.stderr.contains("numeric"), "{run:#?}");
        assert!(!exists(sandbox, "pg_roles", "x"));
    }
);

on_15_and_newest!(
    /// `--password-command` replaces the password file: its output logs master in (the command
    /// is split into words and run without a shell); a failing command exits 1 with its
    /// standard error and not its output; a malformed one exits 2.
    fn password_command_gives_the_password(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("master secret");
        write_private(&secret, &format!("{}\n", sandbox.master_password().expose()));
        let cli = RdsPg::master(sandbox, tmp.path())
            .with_env("PGPASSFILE", &tmp.path().join("none").display().to_string());
        let run = cli.run(&["user", "create", "no_password"]);
        assert_eq!(run.status, 1, "no password without the command: {run:#?}");
        let command = format!("cat '{}'", secret.display());
        let run = cli
            .run(&["--password-command", &command, "user", "create", "by_command"])
            .expect(0, "user create with --password-command");
        login(sandbox.options_for("by_command").password(printed_password(&run)));
        assert!(!run.stderr.contains(sandbox.master_password().expose()), "{run:#?}");

        let failing = "sh -c 'echo token-output; echo \"Unable to locate credentials\" >&2; exit 3'";
        let run = cli
            .run(&["--password-command", failing, "user", "create", "x"])
            .expect(1, "a failing password command");
        assert!(run.stderr.contains("Unable to locate credentials"), "{run:#?}");
        assert!(!run.stderr.contains("token-output") && !run.stdout.contains("token-output"), "{run:#?}");
        let run = cli
            .run(&["--password-command", "cat 'unterminated", "user", "create", "x"])
            .expect(2, "a malformed password command");
        assert!(run.stderr.contains("quote"), "{run:#?}");
        assert!(!exists(sandbox, "pg_roles", "x"));
        assert!(!exists(sandbox, "pg_roles", "no_password"));
    }
);

on_15_and_newest!(
    /// `user create --iam` makes an IAM user (no password printed, a member of rds_iam); an
    /// operation that makes master its member shows the `iam` steps around the membership and
    /// master keeps logging in; the user logs in with a token through `--password-command`, not
    /// with a password; `--no-iam` switches it back with a new, printed password.
    fn iam_users_from_the_command_line(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());
        let run = cli.run(&["user", "create", "iam_cli", "--iam"]).expect(0, "user create --iam");
        assert!(run.stderr.contains("PASSWORD NULL") && run.stderr.contains("GRANT rds_iam TO \"iam_cli\""), "{run:#?}");
        assert!(run.stdout.trim().is_empty(), "no password is printed: {run:#?}");
        let run = cli
            .run(&["db", "create", "iam_cli", "--owner", "iam_cli"])
            .expect(0, "db create owned by an IAM user");
        let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.starts_with("db create")).collect();
        assert!(lines.first().is_some_and(|l| l.starts_with("iam") && l.ends_with("REVOKE rds_iam FROM \"iam_cli\"")), "{run:#?}");
        assert!(lines.last().is_some_and(|l| l.starts_with("iam") && l.ends_with("GRANT rds_iam TO \"iam_cli\"")), "{run:#?}");
        login(sandbox.master_options());
        let as_iam = RdsPg::master(sandbox, tmp.path())
            .with_env("PGUSER", "iam_cli")
            .with_env("PGPASSFILE", &tmp.path().join("none").display().to_string());
        let run = as_iam
            .run(&["--password-command", "echo not-a-token", "db", "create", "x", "--owner", "iam_cli", "--dry-run"])
            .expect(1, "a password is refused");
        assert!(run.stderr.contains("pg_hba.conf rejects connection"), "{run:#?}");
        let token = sandbox.iam_token("iam_cli").unwrap();
        let file = tmp.path().join("token");
        write_private(&file, token.expose());
        let command = format!("cat '{}'", file.display());
        let run = as_iam
            .run(&["--password-command", &command, "db", "create", "iam_cli", "--owner", "iam_cli", "--dry-run"])
            .expect(1, "the IAM user connects with its token (and is refused as an owner by itself)");
        assert!(
            run.stderr.contains("\"iam_cli\" is the connected master user"),
            "logged in: {run:#?}"
        );
        let run = cli
            .run(&["user", "create", "iam_cli", "--no-iam"])
            .expect(0, "back to a password");
        assert!(run.stderr.contains("REVOKE rds_iam FROM \"iam_cli\""), "{run:#?}");
        login(sandbox.options_for("iam_cli").password(printed_password(&run)));
    }
);

on_15_and_newest!(
    /// `--ssh` reaches the server through a forward via a throw-away sshd (the endpoint's name
    /// checked by verify-full, the address reached from the ssh server); the forward ends with
    /// the command, after a failed one, and when rds-pg is interrupted; a refused ssh login
    /// exits 1 with ssh's message.
    fn ssh_forward_lives_as_long_as_the_command(sandbox) {
        use rds_pg_tests::sshd::{processes_with, Sshd, HOST_ALIAS, REFUSED_ALIAS};
        let sshd = Sshd::start();
        let config = sshd.client_config().display().to_string();
        let tmp = tempfile::tempdir().unwrap();
        let cli = || RdsPg::master_by_name(sandbox, tmp.path()).with_env("PGHOSTADDR", "127.0.0.1");
        let ssh = ["--ssh", HOST_ALIAS, "--ssh-config", config.as_str()];
        let args = |rest: &[&'static str]| -> Vec<&str> {
            ssh.iter().copied().chain(rest.iter().copied()).collect()
        };
        let run = cli()
            .run(&args(&["user", "create", "via_ssh"]))
            .expect(0, "user create through ssh");
        login(sandbox.options_for("via_ssh").password(printed_password(&run)));
        assert!(processes_with(&config).is_empty(), "the forward ended with the command");

        let run = cli()
            .run(&args(&["db", "create", "orphan", "--owner", "nobody_here"]))
            .expect(1, "a failed command through ssh");
        assert!(run.stderr.contains("nobody_here"), "{run:#?}");
        assert!(processes_with(&config).is_empty(), "the forward ended after the failure");

        let run = cli()
            .run(&["--ssh", REFUSED_ALIAS, "--ssh-config", &config, "user", "create", "x"])
            .expect(1, "a refused ssh login");
        assert!(run.stderr.contains("Permission denied"), "{run:#?}");

        // Interrupted while connecting (the password command hangs): ssh goes with rds-pg.
        let mut child = cli()
            .command(&args(&["--password-command", "sleep 60", "user", "create", "x"]))
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while processes_with(&config).is_empty() {
            assert!(std::time::Instant::now() < deadline, "ssh never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let ssh_pids = processes_with(&config);
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !processes_with(&config).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh {ssh_pids:?} outlived the interrupted rds-pg"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(!exists(sandbox, "pg_roles", "x"));
    }
);

// ---------------------------------------------------------------------------------------------
// Exit statuses and messages
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_names_and_missing_options_exit_2_with_a_clear_message() {
    let cli = RdsPg::bare();
    for (args, says) in [
        (
            vec!["user", "create", "pg_monitor"],
            "reserved by PostgreSQL",
        ),
        (
            vec!["user", "create", "rds_admin"],
            "reserved by Amazon RDS",
        ),
        (vec!["user", "create", &"x".repeat(64)], "truncate"),
        (vec!["user", "create", ""], "must not be empty"),
        (
            vec!["db", "create", "template1", "--owner", "app"],
            "reserved on RDS",
        ),
        (vec!["db", "create", "app"], "--owner"),
        (vec!["user", "create"], "<NAME>"),
        (vec!["ext", "enable", "app"], "<EXT>"),
        (
            vec!["grant", "readonly", "app", "postgres"],
            "reserved on RDS",
        ),
        (
            vec!["user", "drop", "app", "--reassign-to", "pg_x"],
            "reserved by PostgreSQL",
        ),
        (vec!["dump", "app"], "--file"),
        (
            vec!["dump", "app", "--file", "x", "--format", "tar"],
            "custom",
        ),
        (
            vec!["dump", "app", "--file", "x", "--jobs", "2"],
            "directory",
        ),
        (vec!["restore", "app", "--file", "x", "--jobs", "0"], "0"),
        (vec!["sandbox", "start", "--pg-version", "12"], "13..=18"),
        (
            vec![
                "user",
                "create",
                "a",
                "--credentials-env",
                "x",
                "--credentials-pgpass",
                "y",
            ],
            "cannot be used with",
        ),
        (
            vec!["user", "create", "a", "--credentials-database", "d"],
            "--credentials-",
        ),
        (
            vec!["--sslmode", "sometimes", "user", "create", "a"],
            "sslmode",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.status, 2, "{args:?}: {run:#?}");
        assert!(
            run.stderr.contains(says),
            "{args:?} should say {says:?}: {run:#?}"
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
    // Help is not an error, and every command's help shows an example.
    let run = cli.run(&["user", "create", "--help"]).expect(0, "help");
    assert!(run.stdout.contains("Example"), "{run:#?}");
}

on_15_and_newest!(
    fn input_refused_by_the_core_exits_2_before_any_change(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());
        let mark = log_mark(sandbox);
        for (args, stdin, says) in [
            (vec!["user", "create", "app", "--connection-limit", "-5"], None, "connection limit"),
            (vec!["user", "create", "app", "--password-stdin"], Some(""), "no password"),
            (vec!["user", "create", "app", "--password-stdin"], Some("a\nb\n"), "one line"),
            (
                vec!["user", "create", "app", "--credentials-pgpass", "/nonexistent/dir/pgpass"],
                None,
                "not a directory",
            ),
        ] {
            let run = cli.run_with_stdin(&args, stdin);
            assert_eq!(run.status, 2, "{args:?}: {run:#?}");
            assert!(run.stderr.contains(says), "{args:?} should say {says:?}: {run:#?}");
        }
        assert!(changes_since(sandbox, mark).is_empty());
        assert!(!exists(sandbox, "pg_roles", "app"));

        // PGPASSWORD works, with a warning recommending a password file.
        let run = RdsPg::master(sandbox, tmp.path())
            .with_env("PGPASSFILE", "/nonexistent")
            .with_env("PGPASSWORD", sandbox.master_password().expose())
            .run(&["user", "create", "app", "--dry-run"])
            .expect(0, "with PGPASSWORD");
        assert!(run.stderr.contains("warning: PGPASSWORD"), "{run:#?}");
        assert!(run.stderr.contains("password file"), "{run:#?}");

        // A wrong password is a failed operation (1), saying what failed.
        let run = RdsPg::master(sandbox, tmp.path())
            .with_env("PGPASSFILE", "/nonexistent")
            .with_env("PGPASSWORD", "wrong")
            .run(&["user", "create", "app"])
            .expect(1, "wrong master password");
        assert!(run.stderr.contains("cannot connect"), "{run:#?}");
    }
);

on_15_and_newest!(
    fn a_permission_problem_exits_1_with_the_fix(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::master(sandbox, tmp.path());
        cli.run(&["user", "create", "app"]).expect(0, "user create");
        cli.run(&["db", "create", "app", "--owner", "app"]).expect(0, "db create");

        // An untrusted extension RDS does not allow: refused before any change, with the fix.
        let mark = log_mark(sandbox);
        let run = cli
            .run(&["ext", "enable", "app", "pageinspect"])
            .expect(1, "ext enable pageinspect");
        assert!(run.stderr.contains("permission denied"), "{run:#?}");
        assert!(run.stderr.contains("fix: "), "{run:#?}");
        assert!(changes_since(sandbox, mark).is_empty());

        // On 16+, a role master did not create (so master lacks ADMIN on it) cannot own a
        // database: the fix is the GRANT … WITH ADMIN OPTION an admin must run.
        if sandbox.major_version() >= 16 {
            sandbox
                .connect_rdsadmin("postgres")
                .unwrap()
                .batch_execute("CREATE ROLE other_team LOGIN")
                .unwrap();
            let run = cli
                .run(&["db", "create", "other", "--owner", "other_team"])
                .expect(1, "db create owned by a role master cannot act as");
            assert!(
                run.stderr.contains("fix: ")
                    && run.stderr.contains("GRANT \"other_team\" TO \"master\" WITH ADMIN OPTION"),
                "{run:#?}"
            );
            let doc = cli
                .run(&["db", "create", "other", "--owner", "other_team", "--json"])
                .expect(1, "the same with --json")
                .json();
            assert_eq!(doc["errors"][0]["kind"], "permission_denied");
            assert!(doc["errors"][0]["fix"]
                .as_str()
                .unwrap()
                .contains("WITH ADMIN OPTION"));
            assert!(!exists(sandbox, "pg_database", "other"));
        }
    }
);

// ---------------------------------------------------------------------------------------------
// Archives, restores and what child processes receive
// ---------------------------------------------------------------------------------------------

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Master's CLI, and a project user `shop` (its password in the CLI's password file) owning
/// database `shop` with hstore and a table of three rows.
fn shop_with_rows(sandbox: &Sandbox, dir: &Path) -> RdsPg {
    let cli = RdsPg::master(sandbox, dir);
    let passfile = dir.join("pgpass");
    cli.run(&[
        "user",
        "create",
        "shop",
        "--credentials-pgpass",
        passfile.to_str().unwrap(),
    ])
    .expect(0, "user create shop");
    cli.run(&[
        "db",
        "create",
        "shop",
        "--owner",
        "shop",
        "--extension",
        "hstore",
    ])
    .expect(0, "db create shop");
    login(
        sandbox
            .options_for("shop")
            .passfile(&passfile)
            .dbname("shop"),
    )
    .batch_execute(
        "CREATE TABLE visits (id serial PRIMARY KEY, tags hstore);
             INSERT INTO visits (tags) VALUES ('page=>home'), ('page=>cart'), ('page=>pay')",
    )
    .unwrap();
    cli
}

/// The same CLI environment, logged in as `user` (its password in the same password file).
fn as_user(cli: &RdsPg, user: &str) -> RdsPg {
    RdsPg {
        env: cli.env.clone(),
    }
    .with_env("PGUSER", user)
}

on_15_and_newest!(
    /// With a umask of 000, a dump file is still 0600 and a directory archive 0700 with 0600
    /// files.
    fn archives_are_private_whatever_the_umask(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = shop_with_rows(sandbox, tmp.path());
        let as_shop = as_user(&cli, "shop");
        let file = tmp.path().join("shop.dump");
        let run = as_shop.run_with_umask_000(&["dump", "shop", "--file", file.to_str().unwrap()]);
        if !has_client_tools_for(sandbox.major_version()) {
            run.expect(1, "dump without a recent enough pg_dump");
            assert!(!file.exists(), "nothing is created when no pg_dump can run");
            return;
        }
        run.expect(0, "dump with umask 000");
        assert_eq!(mode(&file), 0o600);
        // Control: the umask really was 000 in that process.
        let probe = tmp.path().join("probe");
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("umask 000; : > '{}'", probe.display()))
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(mode(&probe), 0o666, "a file created with umask 000 is world-writable");

        let dir = tmp.path().join("shop.dir");
        as_shop
            .run_with_umask_000(&[
                "dump", "shop", "--file", dir.to_str().unwrap(), "--format", "directory",
                "--jobs", "2",
            ])
            .expect(0, "directory dump with umask 000");
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<PathBuf> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(files.len() >= 2, "{files:?}");
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
);

on_15_and_newest!(
    /// `rds-pg restore` as master into a project's database is refused before pg_restore runs,
    /// with how to restore as the owner; as the owner it works, and master creates only the
    /// extensions named with `--extension`.
    fn restore_runs_as_the_owner_and_creates_only_named_extensions(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = shop_with_rows(sandbox, tmp.path());
        if !has_client_tools_for(sandbox.major_version()) {
            return; // No pg_dump for this server here: the demo test checks the version error.
        }
        let file = tmp.path().join("shop.dump");
        let file_arg = file.to_str().unwrap();
        as_user(&cli, "shop").run(&["dump", "shop", "--file", file_arg]).expect(0, "dump");
        // shop2's password printed, then given in PGPASSWORD (it restores into two databases).
        let shop2_password =
            printed_password(&cli.run(&["user", "create", "shop2"]).expect(0, "user create shop2"));
        let shop2 = |db: &str| {
            sandbox.options_for("shop2").password(shop2_password.clone()).dbname(db)
        };
        cli.run(&["db", "create", "shop2", "--owner", "shop2", "--extension", "hstore"])
            .expect(0, "db create shop2");

        // As master (the environment's PGUSER): refused, nothing reaches the server.
        let mark = log_mark(sandbox);
        let run = cli
            .run(&["restore", "shop2", "--file", file_arg])
            .expect(1, "restore as master");
        assert!(run.stderr.contains("refused"), "{run:#?}");
        assert!(run.stderr.contains("PGUSER=shop2"), "the fix names the owner: {run:#?}");
        let doc = cli
            .run(&["restore", "shop2", "--file", file_arg, "--json"])
            .expect(1, "restore as master, --json")
            .json();
        assert_eq!(doc["errors"][0]["kind"], "policy_violation", "{doc:#}");
        assert!(doc["errors"][0]["fix"].as_str().unwrap().contains("PGUSER=shop2"), "{doc:#}");
        let statements = statements_since(sandbox, mark);
        assert!(
            !statements.iter().any(|s| s.contains("set_config('search_path', '', false)")),
            "pg_restore never ran: {statements:#?}"
        );
        assert!(changes_since(sandbox, mark).is_empty());

        // As the owner: restored.
        let as_shop2 = as_user(&cli, "shop2").with_env("PGPASSWORD", shop2_password.expose());
        let doc = as_shop2
            .run(&["restore", "shop2", "--file", file_arg, "--json"])
            .expect(0, "restore as the owner")
            .json();
        assert_eq!(doc["created_extensions"], serde_json::json!([]), "{doc:#}");
        let rows: i64 = login(shop2("shop2"))
            .query_one("SELECT count(*) FROM visits", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 3);

        // Into a database without hstore: refused unless named; named, master creates it.
        cli.run(&["db", "create", "shop3", "--owner", "shop2"]).expect(0, "db create shop3");
        let mark = log_mark(sandbox);
        let run = as_shop2
            .run(&["restore", "shop3", "--file", file_arg])
            .expect(1, "restore without the extension");
        assert!(run.stderr.contains("--extension hstore --master-user"), "{run:#?}");
        assert!(changes_since(sandbox, mark).is_empty());
        let run = as_shop2
            .run(&[
                "restore", "shop3", "--file", file_arg, "--extension", "hstore", "--master-user",
                sandbox.master_user(), "--dry-run",
            ])
            .expect(0, "dry run naming hstore");
        assert!(run.stderr.contains("master creates extension hstore first"), "{run:#?}");
        assert!(changes_since(sandbox, mark).is_empty());
        let run = as_shop2.run(&["restore", "shop3", "--file", file_arg, "--extension", "hstore"]);
        assert_eq!(run.status, 2, "--extension needs --master-user: {run:#?}");
        assert!(run.stderr.contains("--master-user"), "{run:#?}");
        let doc = as_shop2
            .run(&[
                "restore", "shop3", "--file", file_arg, "--extension", "hstore", "--master-user",
                sandbox.master_user(), "--json",
            ])
            .expect(0, "restore with master creating hstore")
            .json();
        assert_eq!(doc["created_extensions"], serde_json::json!(["hstore"]), "{doc:#}");
        let rows: Vec<String> = login(shop2("shop3"))
                .query("SELECT tags -> 'page' FROM visits ORDER BY id", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
        assert_eq!(rows, ["home", "cart", "pay"]);
    }
);

/// Writes `pg_dump` and `pg_restore` wrappers into `dir` that save the environment they were
/// started with to `<dir>/<tool>.<pid>.env`, then run the real tool from `real`.
fn recording_tools(dir: &Path, real: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for tool in ["pg_dump", "pg_restore"] {
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nenv > '{}/{tool}.'$$'.env'\nexec '{}/{tool}' \"$@\"\n",
                dir.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The environments the wrappers of [`recording_tools`] saved, as (variable, value) lists.
fn recorded_environments(dir: &Path, tool: &str) -> Vec<Vec<(String, String)>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{tool}.")) && name.ends_with(".env")
        })
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect()
        })
        .collect()
}

on_15_and_newest!(
    /// A `--credentials-cmd` started from an operator's shell that holds master's password in
    /// `PGPASSWORD` (and `PGPASSFILE`, `DATABASE_URL`, …) receives none of it: no `PG*`
    /// variable, no master password; `PATH`, `HOME` and `AWS_*` are kept. pg_dump and
    /// pg_restore get only the `PG*` variables rds-pg sets.
    fn child_processes_get_no_credential_variable(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = shop_with_rows(sandbox, tmp.path());
        let master_password = sandbox.master_password().expose().to_owned();
        let master_url = format!(
            "postgresql://{}:{master_password}@127.0.0.1:{}/postgres",
            sandbox.master_user(),
            sandbox.port()
        );
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let operator = |cli: &RdsPg| {
            RdsPg { env: cli.env.clone() }
                .with_env("PGOPTIONS", "-c search_path=leaked")
                .with_env("PGSERVICE", "rds-pg-no-such-service")
                .with_env("PGSERVICEFILE", "/nonexistent/pg_service.conf")
                .with_env("DATABASE_URL", &master_url)
                .with_env("RDS_PG_SANDBOX_DIR", tmp.path().to_str().unwrap())
                .with_env("AWS_REGION", "eu-west-1")
                .with_env("HOME", home.to_str().unwrap())
        };

        // The credential command, run by master's CLI with PGPASSWORD = master's password.
        let seen = tmp.path().join("sink.env");
        let sink = format!("env > '{}'; cat > '{}.json'", seen.display(), seen.display());
        operator(&cli)
            .with_env("PGPASSWORD", &master_password)
            .run(&["user", "password", "shop", "--credentials-cmd", &sink])
            .expect(0, "user password with --credentials-cmd");
        let env = std::fs::read_to_string(&seen).unwrap();
        let names: Vec<&str> =
            env.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
        for name in &names {
            assert!(
                !name.starts_with("PG") && !name.starts_with("RDS_PG_") && *name != "DATABASE_URL",
                "{name} reached the credential command: {env}"
            );
        }
        assert!(!env.contains(&master_password), "master's password reached it: {env}");
        for kept in ["PATH", "HOME", "AWS_REGION"] {
            assert!(names.contains(&kept), "{kept} is kept: {env}");
        }
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{}.json", seen.display())).unwrap())
                .unwrap();
        let shop_password = doc["password"].as_str().unwrap().to_owned();
        assert!(!env.contains(&shop_password), "the credentials arrive on stdin only");
        // pg_dump and pg_restore, run by the project user's CLI with its password in
        // PGPASSWORD and the rest of the operator's environment.
        if !has_client_tools_for(sandbox.major_version()) {
            return;
        }
        let tools = tmp.path().join("tools");
        std::fs::create_dir(&tools).unwrap();
        let found =
            rds_pg_core::dump::tools::find_all(rds_pg_core::dump::ClientProgram::PgDump, None);
        let real = rds_pg_core::dump::tools::choose(&found, sandbox.major_version())
            .expect("checked above")
            .path
            .clone();
        recording_tools(&tools, real.parent().unwrap());
        let tools_arg = tools.to_str().unwrap();
        let as_shop = operator(&as_user(&cli, "shop")).with_env("PGPASSWORD", &shop_password);
        let file = tmp.path().join("shop.dump");
        let file_arg = file.to_str().unwrap();
        as_shop
            .run(&["dump", "shop", "--file", file_arg, "--tools-dir", tools_arg])
            .expect(0, "dump with the operator's environment");
        cli.run(&["db", "create", "shop_copy", "--owner", "shop", "--extension", "hstore"])
            .expect(0, "db create shop_copy");
        as_shop
            .run(&["restore", "shop_copy", "--file", file_arg, "--tools-dir", tools_arg])
            .expect(0, "restore with the operator's environment");
        for tool in ["pg_dump", "pg_restore"] {
            let runs = recorded_environments(&tools, tool);
            assert!(!runs.is_empty(), "{tool} ran");
            for env in runs {
                let pg: Vec<&str> = env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .filter(|k| k.starts_with("PG"))
                    .collect();
                for name in &pg {
                    assert!(
                        ["PGPASSFILE", "PGSSLMODE", "PGSSLROOTCERT", "PGAPPNAME", "PGCONNECT_TIMEOUT"]
                            .contains(name),
                        "{tool} inherited {name}: {env:?}"
                    );
                }
                for (k, v) in &env {
                    assert!(
                        !v.contains(&master_password) && !v.contains(&shop_password),
                        "{tool} got a password in {k}"
                    );
                    assert!(k != "DATABASE_URL" && !k.starts_with("RDS_PG_"), "{tool}: {k}");
                    if k == "PGPASSFILE" {
                        let operators = tmp.path().join("pgpass");
                        assert_ne!(v, operators.to_str().unwrap(), "a private passfile");
                    }
                }
                assert!(env.iter().any(|(k, _)| k == "AWS_REGION"), "{tool}: {env:?}");
            }
        }
    }
);

// ---------------------------------------------------------------------------------------------
// sandbox start / status / stop
// ---------------------------------------------------------------------------------------------

/// Parses `export NAME=value` lines (values as `shell_quote` writes them).
fn parse_exports(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix("export ")
                .unwrap_or_else(|| panic!("not an export: {l}"));
            let (k, v) = rest.split_once('=').unwrap();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace(r"'\''", "'"))
                .unwrap_or_else(|| v.to_owned());
            (k.to_owned(), v)
        })
        .collect()
}

/// Stops the detached sandbox in its directory when dropped, also while a test panics.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(s) = DetachedSandbox::open(&self.0) {
            let _ = s.stop();
        }
    }
}

fn sandbox_cli_round_trip(major: u32) {
    if !selected_versions().contains(&major) {
        eprintln!("PostgreSQL {major} not in RDS_PG_TEST_VERSIONS: skipped");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("practice");
    let dir_arg = dir.to_str().unwrap();
    let bare = RdsPg::bare();
    let run = bare
        .run(&[
            "sandbox",
            "start",
            "--pg-version",
            &major.to_string(),
            "--dir",
            dir_arg,
        ])
        .expect(0, "sandbox start");
    let exports = parse_exports(&run.stdout);
    let names: Vec<&str> = exports.iter().map(|(k, _)| k.as_str()).collect();
    for name in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSFILE",
        "PGSSLMODE",
        "RDS_PG_SANDBOX_DIR",
    ] {
        assert!(names.contains(&name), "{name} exported: {run:#?}");
    }
    assert!(
        !run.stdout.contains("PGPASSWORD"),
        "the password stays in a file"
    );
    // Stop it whatever happens below.
    let _guard = StopOnDrop(dir.clone());

    // The process that started it is gone; the server still answers, as master, from the
    // exported environment alone.
    let mut cli = RdsPg::bare();
    for (k, v) in &exports {
        cli = cli.with_env(k, v);
    }
    let run = cli
        .run(&["sandbox", "status"])
        .expect(0, "sandbox status (dir from the environment)");
    assert!(run.stdout.contains("running"), "{run:#?}");
    let doc = cli
        .run(&["sandbox", "status", "--json"])
        .expect(0, "status --json")
        .json();
    assert_eq!(doc["running"], true);
    assert_eq!(doc["major"], major);
    let run = cli
        .run(&["user", "create", "practice"])
        .expect(0, "user create on the sandbox");
    let password = printed_password(&run);
    let detached = DetachedSandbox::open(&dir).unwrap();
    assert_eq!(detached.major_version(), major);
    let mut master = login(detached.master_options());
    let superuser: bool = master
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!superuser, "master is not a superuser, as on RDS");
    drop(master);
    login(detached.options_for("practice").password(password));

    cli.run(&["sandbox", "stop"]).expect(0, "sandbox stop");
    assert!(!dir.exists(), "the directory is removed");
    let run = bare
        .run(&["sandbox", "status", "--dir", dir_arg])
        .expect(1, "status after stop");
    assert!(run.stderr.contains("no sandbox"), "{run:#?}");
    // stop refuses a directory that holds no sandbox, and leaves it alone.
    let run = bare
        .run(&["sandbox", "stop", "--dir", parent.path().to_str().unwrap()])
        .expect(1, "stop elsewhere");
    assert!(run.stderr.contains("no sandbox"), "{run:#?}");
    assert!(parent.path().is_dir());
}

mod sandbox_start_status_stop {
    #[test]
    fn pg15() {
        super::sandbox_cli_round_trip(15)
    }
    #[test]
    fn newest() {
        super::sandbox_cli_round_trip(super::newest())
    }
}

/// `rds-pg sandbox start --listen-on --admit` makes an instance that admits logins only from an
/// application server (a network namespace of the test's own, tests/vpc.rs, with a throw-away
/// sshd): the printed environment alone is refused by `pg_hba.conf`, from loopback and from the
/// instance's own address; with `--ssh` via that server master provisions and the new user
/// dumps. On the newest selected version (the library's test covers them all).
#[test]
fn sandbox_behind_a_security_group_is_reached_only_through_ssh() {
    use rds_pg_tests::sshd::{processes_with, Sshd, HOST_ALIAS};
    use rds_pg_tests::vpc::Vpc;
    let Some(&major) = selected_versions().last() else {
        return;
    };
    let vpc = Vpc::create();
    let (listen, admit) = (
        vpc.instance_address().to_string(),
        vpc.app_address().to_string(),
    );
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("behind-sg");
    let run = RdsPg::bare()
        .run(&[
            "sandbox",
            "start",
            "--pg-version",
            &major.to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--listen-on",
            &listen,
            "--admit",
            &admit,
        ])
        .expect(0, "sandbox start behind a security group");
    assert!(
        run.stderr
            .contains(&format!("logins admitted only from {admit}")),
        "{run:#?}"
    );
    let _stop = StopOnDrop(dir.clone());
    let sshd = Sshd::start_in(&vpc);
    let config = sshd.client_config().display().to_string();
    let mut cli = RdsPg::bare();
    for (k, v) in parse_exports(&run.stdout) {
        cli = cli.with_env(&k, &v);
    }

    for address in ["127.0.0.1", listen.as_str()] {
        let run = cli
            .run(&["--hostaddr", address, "user", "create", "shop"])
            .expect(1, "a direct connection");
        assert!(
            run.stderr
                .contains(&format!("no pg_hba.conf entry for host \"{address}\"")),
            "{run:#?}"
        );
    }
    let ssh = [
        "--ssh",
        HOST_ALIAS,
        "--ssh-config",
        &config,
        "--hostaddr",
        &listen,
    ];
    let args =
        |rest: &[&str]| -> Vec<String> { ssh.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run_args = |cli: &RdsPg, rest: &[&str], status: i32, what: &str| {
        let args = args(rest);
        cli.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .expect(status, what)
    };
    let pgpass = parent.path().join("shop.pgpass");
    let pgpass_arg = pgpass.display().to_string();
    run_args(
        &cli,
        &[
            "user",
            "create",
            "shop",
            "--credentials-pgpass",
            &pgpass_arg,
        ],
        0,
        "user create through ssh",
    );
    run_args(
        &cli,
        &["db", "create", "shop", "--owner", "shop"],
        0,
        "db create through ssh",
    );
    assert!(
        processes_with(&config).is_empty(),
        "the forward ended with the command"
    );
    // The user, with its delivered password file: refused directly, dumps through the forward.
    let shop = cli
        .with_env("PGUSER", "shop")
        .with_env("PGPASSFILE", &pgpass_arg);
    let run = shop
        .run(&["dump", "shop", "--file", "/dev/null"])
        .expect(1, "the user directly");
    assert!(run.stderr.contains("no pg_hba.conf entry"), "{run:#?}");
    let archive = parent.path().join("shop.dump");
    let run = run_args(
        &shop,
        &["dump", "shop", "--file", &archive.display().to_string()],
        0,
        "dump through ssh",
    );
    assert!(run.stderr.contains("dump \"shop\": done"), "{run:#?}");
    assert!(archive.is_file());
    assert!(
        processes_with(&config).is_empty(),
        "the forward ended with the dump"
    );
}
