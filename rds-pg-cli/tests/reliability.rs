//! The `rds-pg` binary and issue 13, on every version: a password change and its delivery are
//! one unit (a failing `--credentials-cmd` leaves the old password working, or creates no role,
//! exits 1 and says nothing changed), and no password reaches the argv or environment of any
//! process rds-pg starts (credential commands, pg_dump, pg_restore — each a recording wrapper),
//! nor the server's statement log, nor what rds-pg prints besides the one password it prints on
//! purpose.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rds_pg_core::{connect, Password};
use rds_pg_tests::reliability::leftover_memberships;
use rds_pg_tests::reliability::{assert_no_leftover_membership, assert_no_secret};
use rds_pg_tests::{changes_since, log_mark, per_version, Sandbox};

mod common;
use common::{write_private, Run};

/// `rds-pg` connected as master through a password file, with nothing of the test's own
/// environment that starts with PG.
struct Cli {
    env: Vec<(String, String)>,
    /// Every run's stdout and stderr, looked at for secrets at the end.
    printed: std::cell::RefCell<String>,
}

impl Cli {
    fn master(sandbox: &Sandbox, dir: &Path) -> Cli {
        let passfile = dir.join("master.pgpass");
        let line = rds_pg_core::pgpass::format_line(
            "127.0.0.1",
            sandbox.port(),
            "*",
            sandbox.master_user(),
            sandbox.master_password(),
        )
        .unwrap();
        write_private(&passfile, &format!("{}\n", line.expose()));
        let mut env: Vec<(String, String)> = vec![
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
        Cli {
            env,
            printed: Default::default(),
        }
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
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") || k == "RDS_PG_SANDBOX_DIR" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("rds-pg runs");
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
        self.printed
            .borrow_mut()
            .push_str(&format!("{}\n{}\n", run.stdout, run.stderr));
        run
    }
}

fn role_exists(sandbox: &Sandbox, name: &str) -> bool {
    sandbox
        .connect_rdsadmin("postgres")
        .unwrap()
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)",
            &[&name],
        )
        .unwrap()
        .get(0)
}

fn logs_in(sandbox: &Sandbox, user: &str, password: &Password) -> bool {
    connect(&sandbox.options_for(user).password(password.clone())).is_ok()
}

per_version!(
    fn a_failing_credentials_command_changes_nothing_and_exits_1(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = Cli::master(sandbox, tmp.path());
        let old = Password::new("Shop-old-pw'$$\\x");

        // user create with a sink that fails: no role, exit 1, says nothing changed, and the
        // generated password is not printed either (it was never set).
        let mark = log_mark(sandbox);
        let run = cli
            .run(&["user", "create", "shop", "--credentials-cmd", "cat > /dev/null; exit 1"], None)
            .expect(1, "user create with a failing --credentials-cmd");
        assert!(run.stderr.contains("nothing was changed"), "{run:#?}");
        assert_eq!(run.stdout, "", "no password is printed for a role that was not created");
        assert!(!role_exists(sandbox, "shop"), "the role was rolled back");
        assert!(
            !changes_since(sandbox, mark).iter().any(|s| s.contains("COMMIT")),
            "nothing was committed"
        );

        cli.run(&["user", "create", "shop", "--password-stdin"], Some(&format!("{}\n", old.expose())))
            .expect(0, "user create shop");
        assert!(logs_in(sandbox, "shop", &old));

        // user password with a sink that fails: the old password keeps working.
        for sink in ["exit 1", "cat > /dev/null; exit 3", "/nonexistent/vault-client"] {
            let run = cli
                .run(&["user", "password", "shop", "--credentials-cmd", sink], None)
                .expect(1, "user password with a failing --credentials-cmd");
            assert!(
                run.stderr.contains("nothing was changed") && run.stderr.contains("rolled back"),
                "the error says nothing changed: {run:#?}"
            );
            assert_eq!(run.stdout, "", "{run:#?}");
            assert!(logs_in(sandbox, "shop", &old), "the old password works after {sink:?}");
        }
        // With --password-stdin too: the given password was not set.
        let new = Password::new("Shop-new-pw-1");
        cli.run(
            &["user", "password", "shop", "--password-stdin", "--credentials-cmd", "exit 1"],
            Some(&format!("{}\n", new.expose())),
        )
        .expect(1, "user password --password-stdin with a failing sink");
        assert!(logs_in(sandbox, "shop", &old));
        assert!(!logs_in(sandbox, "shop", &new));

        // A sink that cannot be written is refused before anything changes (exit 2).
        let mark = log_mark(sandbox);
        cli.run(
            &["user", "password", "shop", "--credentials-env", "/nonexistent/dir/shop.env"],
            None,
        )
        .expect(2, "a sink in a missing directory");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
        assert!(logs_in(sandbox, "shop", &old));

        // A sink that works: the new password is set and delivered, and the old one is gone.
        let received = tmp.path().join("received.json");
        cli.run(
            &["user", "password", "shop", "--credentials-cmd", &format!("cat > '{}'", received.display())],
            None,
        )
        .expect(0, "user password with a working sink");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&received).unwrap()).unwrap();
        let delivered = Password::new(doc["password"].as_str().unwrap());
        assert!(logs_in(sandbox, "shop", &delivered));
        assert!(!logs_in(sandbox, "shop", &old));
        let printed = cli.printed.borrow().clone();
        assert_no_secret(
            &printed,
            &[&old, &new, &delivered, sandbox.master_password()],
            true,
            "what rds-pg printed",
        );
    }
);

/// A wrapper that records its argv (one argument a line) and environment, then runs `real`
/// with the same arguments (or, without `real`, saves its standard input).
fn recording_wrapper(dir: &Path, name: &str, real: Option<&Path>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let tail = match real {
        Some(real) => format!("exec '{}' \"$@\"\n", real.display()),
        None => format!("cat > '{}/{name}.'$$'.stdin'\n", dir.display()),
    };
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > '{d}/{name}.'$$'.argv'\nenv > '{d}/{name}.'$$'.env'\n{tail}",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Everything the wrappers in `dir` recorded (`.argv` and `.env` files), per file.
fn recorded(dir: &Path, suffix: &str) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    // In the order the wrappers wrote them (their names hold a pid, which does not sort).
    out.sort_by_key(|(p, _)| {
        (
            std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            p.clone(),
        )
    });
    out
}

fn client_tools_for(major: u32) -> Option<PathBuf> {
    (major..=99)
        .map(|m| PathBuf::from(format!("/usr/lib/postgresql/{m}/bin")))
        .find(|d| d.join("pg_dump").is_file() && d.join("pg_restore").is_file())
}

per_version!(
    /// The whole flow through the CLI, every child process a recording wrapper.
    fn no_password_reaches_a_child_process_the_log_or_the_output(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let rec = tmp.path().join("rec");
        std::fs::create_dir(&rec).unwrap();
        let cli = Cli::master(sandbox, tmp.path());
        let sink = recording_wrapper(&rec, "vault", None);
        let sink_cmd = sink.to_str().unwrap();
        let given = Password::new("Given-reader-pw'\"$$\\ü");

        cli.run(&["instance", "secure"], None).expect(0, "instance secure");
        cli.run(&["user", "create", "shop", "--credentials-cmd", sink_cmd], None)
            .expect(0, "user create with a sink");
        cli.run(&["user", "password", "shop", "--credentials-cmd", sink_cmd], None)
            .expect(0, "user password with a sink");
        cli.run(&["user", "create", "shop_ro", "--password-stdin"], Some(&format!("{}\n", given.expose())))
            .expect(0, "user create with a given password");
        let printed_once = cli
            .run(&["user", "password", "shop_ro"], None)
            .expect(0, "user password printed once");
        let printed_pw = Password::new(printed_once.stdout.trim());
        cli.run(&["db", "create", "shop", "--owner", "shop", "--extension", "hstore"], None)
            .expect(0, "db create");
        cli.run(&["grant", "readonly", "shop", "shop_ro"], None).expect(0, "grant readonly");

        // The credentials the sink received (on stdin, nowhere else).
        let deliveries = recorded(&rec, ".stdin");
        assert_eq!(deliveries.len(), 2, "two deliveries");
        let mut shop_passwords = Vec::new();
        for (_, text) in &deliveries {
            let doc: serde_json::Value = serde_json::from_str(text).unwrap();
            shop_passwords.push(Password::new(doc["password"].as_str().unwrap()));
        }
        let current_shop = shop_passwords.last().unwrap().clone();
        assert!(logs_in(sandbox, "shop", &current_shop));

        // pg_dump and pg_restore through wrappers, as the project user.
        if let Some(real) = client_tools_for(sandbox.major_version()) {
            let tools = tmp.path().join("tools");
            std::fs::create_dir(&tools).unwrap();
            recording_wrapper(&rec, "pg_dump", Some(&real.join("pg_dump")));
            recording_wrapper(&rec, "pg_restore", Some(&real.join("pg_restore")));
            for tool in ["pg_dump", "pg_restore"] {
                std::os::unix::fs::symlink(rec.join(tool), tools.join(tool)).unwrap();
            }
            let shop_pass = tmp.path().join("shop.pgpass");
            let line = rds_pg_core::pgpass::format_line("127.0.0.1", sandbox.port(), "*", "shop", &current_shop).unwrap();
            write_private(&shop_pass, &format!("{}\n", line.expose()));
            let as_shop = Cli {
                env: cli
                    .env
                    .iter()
                    .map(|(k, v)| match k.as_str() {
                        "PGUSER" => (k.clone(), "shop".to_owned()),
                        "PGPASSFILE" => (k.clone(), shop_pass.display().to_string()),
                        _ => (k.clone(), v.clone()),
                    })
                    .collect(),
                printed: Default::default(),
            };
            let file = tmp.path().join("shop.dump");
            let tools_arg = tools.to_str().unwrap();
            as_shop
                .run(&["dump", "shop", "--file", file.to_str().unwrap(), "--tools-dir", tools_arg], None)
                .expect(0, "dump");
            cli.run(&["db", "create", "shop_copy", "--owner", "shop", "--extension", "hstore"], None)
                .expect(0, "db create shop_copy");
            as_shop
                .run(&["restore", "shop_copy", "--file", file.to_str().unwrap(), "--tools-dir", tools_arg], None)
                .expect(0, "restore");
            for tool in ["pg_dump", "pg_restore"] {
                assert!(
                    recorded(&rec, ".argv").iter().any(|(p, _)| {
                        p.file_name().unwrap().to_string_lossy().starts_with(&format!("{tool}."))
                    }),
                    "{tool} ran through the wrapper"
                );
            }
            cli.printed.borrow_mut().push_str(&as_shop.printed.borrow());
        } else {
            eprintln!("no pg_dump for PostgreSQL {}: dump and restore left out", sandbox.major_version());
        }
        cli.run(&["grant", "revoke-readonly", "shop", "shop_ro"], None).expect(0, "revoke");
        cli.run(&["user", "drop", "shop_ro"], None).expect(0, "user drop");
        assert_no_leftover_membership(sandbox, "after the flow");

        let mut secrets: Vec<&Password> = shop_passwords.iter().collect();
        secrets.extend([&given, &printed_pw, sandbox.master_password()]);
        // Child processes: no password in any argument or environment variable.
        for suffix in [".argv", ".env"] {
            for (path, text) in recorded(&rec, suffix) {
                assert_no_secret(&text, &secrets, true, &path.display().to_string());
            }
        }
        assert!(!recorded(&rec, ".argv").is_empty());
        // The server log: no cleartext password.
        assert_no_secret(&sandbox.log_text().unwrap(), &secrets, false, "the server log");
        // What rds-pg printed: only the password printed on purpose, once, on stdout.
        let printed = cli.printed.borrow().clone();
        assert_eq!(printed.matches(printed_pw.expose()).count(), 1, "printed once");
        let without = printed.replace(printed_pw.expose(), "");
        assert_no_secret(&without, &secrets, true, "what rds-pg printed");
    }
);

per_version!(
    /// The headline: `rds-pg grant readonly` killed with SIGKILL right after its
    /// `GRANT owner TO master` committed (its next batch waits on a row another session is
    /// changing). Master is left a member of the owner; the next run of the same command removes
    /// that membership, says so, and finishes the job.
    fn a_run_killed_after_its_temporary_grant_is_cleaned_up_by_the_next(sandbox) {
        let tmp = tempfile::tempdir().unwrap();
        let cli = Cli::master(sandbox, tmp.path());
        let owner_pw = Password::new("Killed-owner-pw-1");
        let reader_pw = Password::new("Killed-reader-pw-1");
        cli.run(&["instance", "secure"], None).expect(0, "instance secure");
        cli.run(&["user", "create", "shop", "--password-stdin"], Some(&format!("{}\n", owner_pw.expose())))
            .expect(0, "user create shop");
        cli.run(&["db", "create", "shop", "--owner", "shop"], None).expect(0, "db create");
        cli.run(&["user", "create", "shop_ro", "--password-stdin"], Some(&format!("{}\n", reader_pw.expose())))
            .expect(0, "user create shop_ro");
        let owner = sandbox.options_for("shop").dbname("shop").password(owner_pw.clone());
        rds_pg_tests::login_as_application(&owner)
            .unwrap()
            .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
            .unwrap();

        // Another session is changing t's privileges and has not committed.
        let mut holder = sandbox.connect_rdsadmin("shop").unwrap();
        holder.batch_execute("BEGIN; GRANT INSERT ON TABLE t TO PUBLIC").unwrap();
        let mut child = cli.command(&["grant", "readonly", "shop", "shop_ro"]).spawn().unwrap();
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
        loop {
            let waiting: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE usename = $1 AND datname = 'shop' AND wait_event_type = 'Lock'",
                    &[&sandbox.master_user()],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "rds-pg never waited on the row");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = leftover_memberships(sandbox);
        assert!(
            left.iter().any(|m| m.starts_with("shop ")),
            "the temporary grant is committed when the process dies: {left:?}"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        holder.batch_execute("ROLLBACK").unwrap();
        // The killed process's sessions go away (its blocked backend may finish its batch first).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&sandbox.master_user()],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
        {
            assert!(std::time::Instant::now() < deadline, "the killed run's sessions stay");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = leftover_memberships(sandbox);
        assert!(left.iter().any(|m| m.starts_with("shop ")), "{left:?}");

        // The next run: removes the membership, says so, and finishes.
        let run = cli.run(&["grant", "readonly", "shop", "shop_ro"], None).expect(0, "the next run");
        assert!(
            run.stderr.contains("removed") && run.stderr.contains("\"shop\""),
            "the removal is reported: {run:#?}"
        );
        assert_no_leftover_membership(sandbox, "after the next run");
        let mut r = rds_pg_tests::login_as_application(
            &sandbox.options_for("shop_ro").dbname("shop").password(reader_pw.clone()),
        )
        .unwrap();
        let n: i64 = r.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        assert!(r.batch_execute("INSERT INTO t VALUES (2)").is_err(), "the reader writes");
        cli.run(&["grant", "readonly", "shop", "shop_ro"], None).expect(0, "a third run");
    }
);
