//! End-to-end tests of `rds-pg fleet plan` and `rds-pg fleet apply` on the sandbox (PostgreSQL 15
//! and the newest supported version): exit statuses (0 in sync, 2 differs with --exit-code, 1
//! errors — never 2), the listing and the `--json` document, credentials delivered and working,
//! `--credentials-format secretsmanager` of `user create`, and `db create --owner OTHER` on an
//! existing database refused unless `--take-over` is given.

use std::path::Path;
use std::process::Command;

use rds_pg_tests::fleet::FleetFixture;
use rds_pg_tests::{hostile, login_as_application, run_on, Sandbox};
use serde_json::Value;

mod common;
use common::{newest, Run};

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

/// Runs `rds-pg ARGS` with no libpq variable in its environment: everything comes from the
/// inventory.
fn rds_pg(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    run(cmd.current_dir(dir).args(args))
}

/// Runs `cmd` and keeps what it printed.
fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("rds-pg runs");
    Run::from_output(out)
}

/// `rds-pg` connecting as the sandbox's master through the libpq variables (its password in a
/// password file under `dir`), as an operator runs it.
fn as_master(sandbox: &Sandbox, dir: &Path) -> Command {
    let master = sandbox.master_options();
    let pgpass = dir.join("master.pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "*:*:*:{}:{}\n",
            sandbox.master_user(),
            master
                .get_password()
                .unwrap()
                .expose()
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", sandbox.port().to_string())
        .env("PGUSER", sandbox.master_user())
        .env("PGPASSFILE", &pgpass)
        .env_remove("PGPASSWORD");
    match sandbox.ca_cert_path() {
        Some(ca) => cmd.env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", ca),
        None => cmd.env("PGSSLMODE", "disable").env_remove("PGSSLROOTCERT"),
    };
    cmd
}

fn inventory(f: &mut FleetFixture, sandbox: &Sandbox) -> String {
    let dir = f.dir().display().to_string();
    format!(
        "{}{}{}[[project.database]]\nname = \"shop\"\nowner = \"shop\"\nextensions = [\"hstore\"]\n\
         readers = [\"shop_ro\"]\n\n[project.credentials]\nshop = {{ env_file = \"{dir}/shop.env\" }}\n\
         shop_ro = {{ env_file = \"{dir}/shop_ro.env\" }}\n",
        FleetFixture::client("acme", "111122223333"),
        f.instance("acme-db", "acme", sandbox),
        FleetFixture::project("shop", "acme", "acme-db"),
    )
}

on_15_and_newest!(
    fn plan_exit_codes_apply_and_drift(sandbox) {
        let mut f = FleetFixture::new();
        let text = inventory(&mut f, sandbox);
        f.write_inventory(&text);
        let dir = f.dir();

        let run = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--exit-code"])
            .expect(2, "an empty instance differs");
        assert!(run.stdout.is_empty(), "{run:#?}");
        assert!(run.stderr.contains("== acme-db (127.0.0.1:"), "{}", run.stderr);
        assert!(
            run.stderr.contains("would run  postgres     CREATE ROLE \"shop\" LOGIN"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("PASSWORD '[redacted]'"));
        assert!(
            run.stderr.contains("instance  client  version"),
            "the summary table: {}",
            run.stderr
        );
        assert!(!f.path("shop.env").exists(), "a plan delivers nothing");
        rds_pg(dir, &["fleet", "plan", "fleet.toml"]).expect(0, "without --exit-code");

        let plan = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--json"])
            .expect(0, "plan --json")
            .json();
        assert_eq!(plan["command"], "fleet plan");
        assert_eq!(plan["differs"], true);
        assert_eq!(plan["has_errors"], false);
        let instance = &plan["instances"][0];
        assert_eq!(instance["name"], "acme-db");
        let items = instance["items"].as_array().unwrap();
        let database = items
            .iter()
            .find(|i| i["kind"] == "database")
            .expect("a database item");
        assert_eq!(database["state"], "planned");
        assert!(database["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sql"]
                .as_str()
                .unwrap()
                .starts_with("CREATE DATABASE \"shop\" OWNER \"shop\"")));
        let grant = items.iter().find(|i| i["kind"] == "read_only_grant").unwrap();
        assert_eq!(grant["state"], "pending");
        assert!(grant["reason"].as_str().is_some());

        let run = rds_pg(dir, &["fleet", "apply", "fleet.toml", "--jobs", "2"])
            .expect(0, "fleet apply");
        assert!(run.stderr.contains("changed    postgres     CREATE ROLE \"shop\""), "{}", run.stderr);
        let shop = f.env_file_login("shop.env");
        let password = shop.get_password().unwrap().expose().to_owned();
        assert!(
            !run.stderr.contains(&password) && !run.stdout.contains(&password),
            "the generated password is never printed"
        );
        login_as_application(&shop)
            .expect("shop logs in with the env file")
            .batch_execute("CREATE TABLE t (id int)")
            .unwrap();
        login_as_application(&f.env_file_login("shop_ro.env"))
            .expect("shop_ro logs in")
            .batch_execute("SELECT * FROM t")
            .expect("and reads");

        let run = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--exit-code"])
            .expect(0, "in sync");
        assert!(run.stderr.contains("acme-db (127.0.0.1:"), "{}", run.stderr);
        assert!(run.stderr.contains("in sync"), "{}", run.stderr);
        rds_pg(dir, &["fleet", "apply", "fleet.toml", "--exit-code"]).expect(0, "nothing changes");

        // Drift: PUBLIC may connect again.
        hostile::admin(sandbox, "postgres")
            .batch_execute("GRANT CONNECT ON DATABASE shop TO PUBLIC")
            .unwrap();
        let run = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--exit-code"])
            .expect(2, "drift");
        assert!(
            run.stderr.contains("REVOKE ALL ON DATABASE \"shop\" FROM PUBLIC"),
            "{}",
            run.stderr
        );
        let run = rds_pg(dir, &["fleet", "apply", "fleet.toml", "--exit-code", "--json"])
            .expect(2, "apply --exit-code: something changed");
        assert_eq!(run.json()["has_errors"], false);
        rds_pg(dir, &["fleet", "plan", "fleet.toml", "--exit-code"]).expect(0, "repaired");
    }
);

on_15_and_newest!(
    fn errors_exit_1_never_2(sandbox) {
        let mut f = FleetFixture::new();
        let text = inventory(&mut f, sandbox);
        let dir = f.dir();
        // An instance whose master password variable is unset.
        let broken = text.replace(
            &format!("master_password = {{ pgpass = \"{}\" }}", f.master_pgpass().display()),
            "master_password = { env = \"RDS_PG_TEST_UNSET_PASSWORD\" }",
        );
        assert_ne!(broken, text);
        f.write_inventory(&broken);
        let run = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--exit-code"])
            .expect(1, "an instance that cannot be reached is an error");
        assert!(run.stderr.contains("RDS_PG_TEST_UNSET_PASSWORD"), "{}", run.stderr);
        let doc = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--json", "--exit-code"])
            .expect(1, "the same with --json")
            .json();
        assert_eq!(doc["instances"][0]["error"]["kind"], "invalid_input");
        f.write_inventory(&text);
        let run = rds_pg(dir, &["fleet", "plan", "fleet.toml", "--instance", "nope", "--exit-code"])
            .expect(1, "an unknown instance");
        assert!(run.stderr.contains("no instance \"nope\""), "{}", run.stderr);
        std::fs::write(f.path("bad.toml"), "[[instance]]\nname = 3\n").unwrap();
        rds_pg(dir, &["fleet", "apply", "bad.toml", "--exit-code"]).expect(1, "an invalid inventory");
        rds_pg(dir, &["fleet", "plan", "missing.toml"]).expect(1, "a missing inventory");
    }
);

on_15_and_newest!(
    fn user_create_delivers_the_secrets_manager_shape(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("secret.json");
        let mut cmd = as_master(sandbox, dir.path());
        let run = cmd
            .args([
                "user",
                "create",
                "vaulted",
                "--credentials-format",
                "secretsmanager",
                "--credentials-cmd",
                &format!("cat > '{}'", out.display()),
            ])
            .output()
            .unwrap();
        assert!(run.status.success(), "{run:?}");
        assert!(String::from_utf8_lossy(&run.stderr)
            .contains("credentials written to command \"sh\""));
        let secret: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(secret["engine"], "postgres");
        assert_eq!(secret["username"], "vaulted");
        assert_eq!(secret["port"], sandbox.port());
        assert!(secret.get("database_url").is_none());
        let login = sandbox
            .options_for("vaulted")
            .password(rds_pg_core::Password::new(secret["password"].as_str().unwrap()));
        rds_pg_core::connect(&login).expect("vaulted logs in with the secret");
        // The format is for a command only.
        let run = Command::new(env!("CARGO_BIN_EXE_rds-pg"))
            .args([
                "user",
                "create",
                "other",
                "--credentials-format",
                "secretsmanager",
                "--credentials-env",
                "/tmp/x.env",
            ])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "a usage error");
    }
);

on_15_and_newest!(
    fn db_create_hands_a_database_to_another_owner_only_with_take_over(sandbox) {
        let f = FleetFixture::new();
        let dir = f.dir();
        let master = |args: &[&str]| run(as_master(sandbox, dir).args(args));
        for user in ["old", "shop"] {
            let env = f.path(&format!("{user}.env")).display().to_string();
            master(&["user", "create", user, "--credentials-env", &env, "--credentials-database", "legacy"])
                .expect(0, "user create");
        }
        master(&["db", "create", "legacy", "--owner", "old"]).expect(0, "db create");
        let old = f.env_file_login("old.env");
        login_as_application(&old)
            .expect("old reaches its database")
            .batch_execute("CREATE TABLE kept (id int)")
            .unwrap();
        let owner_of = || -> String {
            hostile::admin(sandbox, "postgres")
                .query_one(
                    "SELECT pg_catalog.pg_get_userbyid(datdba)::text FROM pg_catalog.pg_database WHERE datname = 'legacy'",
                    &[],
                )
                .unwrap()
                .get(0)
        };

        // Another owner for an existing database: refused, with the flag that would do it.
        let refused = master(&["db", "create", "legacy", "--owner", "shop"])
            .expect(1, "another owner without --take-over");
        assert!(refused.stderr.contains("--take-over"), "{refused:#?}");
        assert!(!refused.stderr.contains("GRANT"), "no fix that hands it over: {refused:#?}");
        assert_eq!(owner_of(), "old", "nothing moved");
        let shop = f.env_file_login("shop.env");
        assert!(login_as_application(&shop).is_err(), "shop cannot reach legacy");
        login_as_application(&old).expect("old still does");

        // A dry run lists the move and changes nothing; --take-over moves it.
        let dry = master(&["db", "create", "legacy", "--owner", "shop", "--take-over", "--dry-run"])
            .expect(0, "dry run");
        assert!(dry.stderr.contains("would run  postgres     ALTER DATABASE \"legacy\" OWNER TO \"shop\""), "{dry:#?}");
        assert_eq!(owner_of(), "old");
        master(&["db", "create", "legacy", "--owner", "shop", "--take-over"]).expect(0, "take-over");
        assert_eq!(owner_of(), "shop");
        login_as_application(&shop)
            .expect("shop reaches the database it took over")
            .batch_execute("CREATE TABLE mine (id int)")
            .unwrap();
        assert!(login_as_application(&old).is_err(), "old no longer does");
        master(&["db", "create", "legacy", "--owner", "shop"]).expect(0, "in line: no --take-over needed");
    }
);

on_15_and_newest!(
    /// An instance with `via` is reached through an SSH forward via that destination by
    /// `fleet apply`, `backup run` (as the project's role) and `backup verify` (as master and
    /// the throw-away role): each opens its forward (sshd accepts a login), works, and leaves no
    /// ssh running; `--ssh` given to a fleet command is a usage error (exit 2), never ignored.
    fn fleet_and_backups_go_through_the_instances_via(sandbox) {
        use rds_pg_tests::sshd::{processes_with, Sshd, HOST_ALIAS};
        let sshd = Sshd::start();
        let config = sshd.client_config().display().to_string();
        let logins = |sshd: &Sshd| sshd.log().matches("Accepted publickey").count();
        let mut f = FleetFixture::new();
        let text = inventory(&mut f, sandbox).replacen(
            "[[project]]",
            &format!("via = \"{HOST_ALIAS}\"\n\n[[project]]"),
            1,
        );
        assert!(text.contains("via = "), "{text}");
        f.write_inventory(&text);
        let dir = f.dir();
        let with_config = |args: &[&str]| {
            let mut all = vec!["--ssh-config", config.as_str()];
            all.extend_from_slice(args);
            rds_pg(dir, &all)
        };

        let before = logins(&sshd);
        let run = with_config(&["fleet", "apply", "fleet.toml"]);
        let run = run.expect(0, "fleet apply through via");
        assert!(run.stderr.contains("CREATE ROLE \"shop\""), "{}", run.stderr);
        assert!(logins(&sshd) > before, "fleet apply logged in to sshd: {}", sshd.log());
        assert!(processes_with(&config).is_empty(), "no ssh left after fleet apply");
        login_as_application(&f.env_file_login("shop.env"))
            .expect("shop logs in")
            .batch_execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 50) g")
            .unwrap();

        let backups = dir.join("backups");
        let backups = backups.display().to_string();
        let mut tls = Vec::new();
        let ca = sandbox.ca_cert_path().map(|p| p.display().to_string());
        match &ca {
            Some(ca) => tls.extend(["--sslmode", "verify-full", "--sslrootcert", ca.as_str()]),
            None => tls.extend(["--sslmode", "disable"]),
        }
        let before = logins(&sshd);
        let mut args = tls.clone();
        args.extend(["backup", "run", "fleet.toml", "--to", backups.as_str()]);
        let run = with_config(&args).expect(0, "backup run through via");
        assert!(run.stderr.contains("written"), "{}", run.stderr);
        assert!(logins(&sshd) > before, "backup run logged in to sshd");
        assert!(processes_with(&config).is_empty(), "no ssh left after backup run");

        let before = logins(&sshd);
        let run = with_config(&["backup", "verify", "fleet.toml", "--to", backups.as_str()])
            .expect(0, "backup verify through via");
        assert!(run.stderr.contains("verified"), "{}", run.stderr);
        assert!(logins(&sshd) > before, "backup verify logged in to sshd");
        assert!(processes_with(&config).is_empty(), "no ssh left after backup verify");

        let run = rds_pg(dir, &["--ssh", HOST_ALIAS, "fleet", "plan", "fleet.toml"])
            .expect(2, "--ssh with fleet");
        assert!(run.stderr.contains("via"), "{}", run.stderr);
    }
);
