//! `rds-pg instance secure [--dry-run] [--json]` (issue 11): on an instance as RDS delivers it,
//! it revokes CREATE on schema `public` from PUBLIC in `postgres` and `template1` where granted
//! (14 and older), drops nothing, and changes nothing the second time.

use std::process::{Command, Stdio};

use rds_pg_core::{Password, Provisioner, UserSpec};
use rds_pg_tests::hostile::{self, Planter};
use rds_pg_tests::{per_version, Sandbox};
use serde_json::Value;

/// `rds-pg ARGS --json` as master (the sandbox's libpq environment and password file).
fn json(sandbox: &Sandbox, args: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    let line = rds_pg_core::pgpass::format_line(
        "127.0.0.1",
        sandbox.port(),
        "*",
        sandbox.master_user(),
        sandbox.master_password(),
    )
    .unwrap();
    std::fs::write(&passfile, format!("{}\n", line.expose())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", sandbox.port().to_string())
        .env("PGUSER", sandbox.master_user());
    match sandbox.ca_cert_path() {
        Some(ca) => cmd.env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", ca),
        None => cmd.env("PGSSLMODE", "disable"),
    };
    cmd.env("PGPASSFILE", &passfile)
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("rds-pg {args:?}: not JSON ({e}): {stdout}"));
    (out.status.code().unwrap_or(-1), doc)
}

per_version!(
    fn instance_secure_closes_public_create(sandbox) {
        let v = sandbox.major_version();
        let mut rds = Provisioner::connect(&sandbox.master_options()).unwrap();
        let password = Password::new("squatter-cli-contract");
        rds.ensure_user(&UserSpec::new("squatter").unwrap().password(password.clone()))
            .unwrap();
        let squatter = Planter {
            role: "squatter".into(),
            options: sandbox.options_for("squatter").password(password),
        };
        let mark = rds_pg_tests::log_mark(sandbox);
        let (status, doc) = json(sandbox, &["instance", "secure", "--dry-run"]);
        assert_eq!(status, 0, "{doc:#}");
        assert_eq!(doc["dry_run"], true, "{doc:#}");
        assert!(
            rds_pg_tests::changes_since(sandbox, mark).is_empty(),
            "a dry run changes nothing"
        );
        let (status, doc) = json(sandbox, &["instance", "secure"]);
        assert_eq!(status, 0, "{doc:#}");
        assert_eq!(doc["changed"], v <= 14, "{doc:#}");
        if v <= 14 {
            let sql = doc["steps"].to_string();
            assert!(hostile::closes_public_create(&sql.replace("\\\"", "")), "{doc:#}");
            assert!(!sql.to_uppercase().contains("DROP"), "drops nothing: {doc:#}");
        }
        for d in ["postgres", "template1"] {
            assert!(hostile::try_create_in_public(&squatter, d).is_err(), "{d}");
        }
        let (status, doc) = json(sandbox, &["instance", "secure"]);
        assert_eq!((status, &doc["changed"]), (0, &Value::Bool(false)), "{doc:#}");
    }
);
