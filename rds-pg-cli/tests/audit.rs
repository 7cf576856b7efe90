//! End-to-end tests of `rds-pg audit` on the RDS-like sandbox, on PostgreSQL 15 and the newest
//! supported version (`RDS_PG_TEST_VERSIONS` selects): exit statuses 0, 1 and 2, the human
//! listing, the `--json` document, `--fix` and `--inventory`.

use std::path::Path;
use std::process::{Command, Stdio};

use rds_pg_core::{DatabaseSpec, Password, ReadOnlyGrant, UserSpec};
use rds_pg_tests::{connect_error, login_as_application, ok, provisioner, run_on, Sandbox};
use serde_json::json;

mod common;
use common::{newest, Run};

macro_rules! on_15_and_newest {
    (fn $name:ident($sb:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($sb: &Sandbox) $body
            #[test] fn pg15() { run_on(15, body) }
            #[test] fn newest() { run_on(super::newest(), body) }
        }
    };
}

/// `rds-pg audit ARGS` as master, through a password file in `dir` and the libpq environment
/// (nothing inherited from the test's).
fn audit(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Run {
    let passfile = dir.join("pgpass");
    let line = rds_pg_core::pgpass::format_line(
        "127.0.0.1",
        sandbox.port(),
        "*",
        sandbox.master_user(),
        sandbox.master_password(),
    )
    .unwrap();
    std::fs::write(&passfile, format!("{}\n", line.expose())).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", sandbox.port().to_string())
        .env("PGUSER", sandbox.master_user())
        .env("PGPASSFILE", &passfile);
    match sandbox.ca_cert_path() {
        Some(ca) => cmd.env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", ca),
        None => cmd.env("PGSSLMODE", "disable"),
    };
    let out = cmd
        .arg("audit")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("rds-pg runs");
    Run::from_output(out)
}

fn password(role: &str) -> Password {
    Password::new(format!("{role}-Cli-audit-1"))
}

/// Two projects provisioned by rds-pg on a secured instance.
fn provision(sandbox: &Sandbox) {
    let mut p = provisioner(sandbox);
    for project in ["alpha", "beta"] {
        let reader = format!("{project}_ro");
        for role in [project, reader.as_str()] {
            ok(
                p.ensure_user(&UserSpec::new(role).unwrap().password(password(role))),
                role,
            );
        }
        ok(
            p.ensure_database(&DatabaseSpec::new(project, project).unwrap()),
            project,
        );
        ok(
            p.grant_read_only(&ReadOnlyGrant::new(project, &reader).unwrap()),
            &reader,
        );
    }
}

fn inventory(sandbox: &Sandbox) -> String {
    let mut text = format!(
        "[[client]]\nname = \"acme\"\naccount_id = \"111122223333\"\n\n\
         [[instance]]\nname = \"sandbox\"\nclient = \"acme\"\nenvironment = \"staging\"\n\
         region = \"eu-west-1\"\npostgres_major = {}\nendpoint = \"127.0.0.1\"\nport = {}\n\
         master_user = \"{}\"\n",
        sandbox.major_version(),
        sandbox.port(),
        sandbox.master_user()
    );
    for project in ["alpha", "beta"] {
        text.push_str(&format!(
            "\n[[project]]\nname = \"{project}-site\"\nclient = \"acme\"\nenvironment = \"staging\"\n\
             region = \"eu-west-1\"\ninstance = \"sandbox\"\n\n[[project.database]]\n\
             name = \"{project}\"\nowner = \"{project}\"\nreaders = [\"{project}_ro\"]\n"
        ));
    }
    text
}

on_15_and_newest!(
    fn clean_findings_fix_and_inventory_end_to_end(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        provision(sandbox);

        // Clean: exit 0, the summary on standard error, nothing on standard output.
        let run = audit(sandbox, dir.path(), &[]);
        assert_eq!(run.status, 0, "{run:#?}");
        assert!(run.stdout.is_empty(), "{run:#?}");
        assert!(
            run.stderr.contains("/postgres: clean; PostgreSQL ")
                && run.stderr.contains("4 databases and 4 login roles audited"),
            "{run:#?}"
        );
        let doc = audit(sandbox, dir.path(), &["--json"]).json();
        assert_eq!(doc["command"], "audit");
        assert_eq!(doc["clean"], true);
        assert_eq!(doc["findings"], json!([]));
        assert_eq!(doc["errors"], json!([]));
        assert_eq!(doc["databases"], json!(["alpha", "beta", "postgres", "template1"]));
        assert_eq!(
            doc["connect_matrix"][0],
            json!({"database": "alpha", "owner": "alpha", "project": "alpha", "roles": ["alpha", "alpha_ro"]})
        );

        // A break: exit 1, the finding with its objects and fix.
        let mut alpha = login_as_application(
            &sandbox.options_for("alpha").password(password("alpha")).dbname("alpha"),
        )
        .unwrap();
        alpha
            .batch_execute("GRANT CONNECT ON DATABASE alpha TO PUBLIC")
            .unwrap();
        let run = audit(sandbox, dir.path(), &["--jobs", "1"]);
        assert_eq!(run.status, 1, "{run:#?}");
        assert!(
            run.stderr.contains(
                "error   public-database-access: every role may use database \"alpha\" through PUBLIC (CONNECT)\n\
                 \x20       database \"alpha\"\n\
                 \x20       role \"PUBLIC\"\n\
                 \x20       fix (--fix applies it): revoke PUBLIC's access\n\
                 \x20         REVOKE CONNECT ON DATABASE \"alpha\" FROM PUBLIC  -- as \"alpha\""
            ),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("1 finding (1 error, 0 warnings, 0 infos; 1 fixable with --fix)"), "{}", run.stderr);
        let run = audit(sandbox, dir.path(), &["--json"]);
        assert_eq!(run.status, 1);
        let doc = run.json();
        assert_eq!(doc["clean"], false);
        assert_eq!(doc["counts"], json!({"error": 1, "warning": 0, "info": 0}));
        let f = &doc["findings"][0];
        assert_eq!(f["rule"], "public-database-access");
        assert_eq!(f["severity"], "error");
        assert_eq!(
            f["objects"],
            json!([{"kind": "database", "name": "alpha", "database": null},
                   {"kind": "role", "name": "PUBLIC", "database": null}])
        );
        assert_eq!(f["fix_sql"], json!(["REVOKE CONNECT ON DATABASE \"alpha\" FROM PUBLIC"]));
        assert_eq!(f["fix"]["automatic"], true);
        assert_eq!(f["fix"]["statements"][0]["run_as"], "alpha");

        // --fix: what it ran, then the audit after it; exit 0 once clean.
        let run = audit(sandbox, dir.path(), &["--fix"]);
        assert_eq!(run.status, 0, "{run:#?}");
        assert!(
            run.stderr.starts_with(
                "fixed   public-database-access: REVOKE CONNECT ON DATABASE \"alpha\" FROM PUBLIC  -- as \"alpha\"\n"
            ),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("clean; ") && run.stderr.contains("--fix ran 1 fix (1 without error)"), "{}", run.stderr);
        let e = connect_error(&sandbox.options_for("beta").password(password("beta")).dbname("alpha"));
        assert!(e.to_string().contains("permission denied for database"), "{e}");
        let doc = audit(sandbox, dir.path(), &["--fix", "--json"]).json();
        assert_eq!(doc["fixed"], json!([]), "nothing left to fix");

        // With the inventory: the same grant to one project's reader on the other's database.
        let inventory_path = dir.path().join("fleet.toml");
        std::fs::write(&inventory_path, inventory(sandbox)).unwrap();
        let inv = inventory_path.to_str().unwrap();
        let run = audit(sandbox, dir.path(), &["--inventory", inv, "--json"]);
        assert_eq!(run.status, 0, "{run:#?}");
        assert_eq!(run.json()["instance"], "sandbox");
        alpha
            .batch_execute("GRANT CONNECT ON DATABASE alpha TO beta_ro")
            .unwrap();
        let run = audit(sandbox, dir.path(), &["--inventory", inv, "--instance", "sandbox", "--fix", "--json"]);
        assert_eq!(run.status, 0, "{run:#?}");
        let doc = run.json();
        assert_eq!(doc["fixed"][0]["rule"], "connect-outside-project");
        assert_eq!(doc["fixed"][0]["succeeded"], true);
        assert_eq!(
            doc["fixed"][0]["statements"][0],
            json!({"database": null, "run_as": "alpha", "sql": "REVOKE CONNECT ON DATABASE \"alpha\" FROM \"beta_ro\"", "error": null})
        );
        assert_eq!(doc["clean"], true);

        // Usage errors: exit 2, before connecting.
        let run = audit(sandbox, dir.path(), &["--jobs", "0"]);
        assert_eq!(run.status, 2, "{run:#?}");
        let run = audit(sandbox, dir.path(), &["--instance", "sandbox"]);
        assert_eq!(run.status, 2, "{run:#?}");
        assert!(run.stderr.contains("--inventory"), "{}", run.stderr);
        let missing = dir.path().join("missing.toml");
        let run = audit(sandbox, dir.path(), &["--inventory", missing.to_str().unwrap(), "--json"]);
        assert_eq!(run.status, 2, "{run:#?}");
        assert_eq!(run.json()["errors"][0]["kind"], "io");
        let run = audit(sandbox, dir.path(), &["--inventory", inv, "--instance", "nope"]);
        assert_eq!(run.status, 2, "{run:#?}");
        assert!(run.stderr.contains("has no instance \"nope\""), "{}", run.stderr);
    }
);
