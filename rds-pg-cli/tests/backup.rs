//! `rds-pg backup …` end to end: retention on archives at fabricated timestamps (prune's dry
//! run lists exactly the policy's victims, prune removes them and nothing else, the newest
//! verified archive survives any policy), and run → list → verify → prune on a sandbox, with
//! exit statuses and `--json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rds_pg_core::backup::UtcTime;
use rds_pg_tests::{run_on, Sandbox};
use serde_json::{json, Value};

mod common;
use common::{has_client_tools_for, Run};

/// Runs `rds-pg` with `env` as its only `PG*` variables.
fn rds_pg(env: &[(&str, String)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") || k == "RDS_PG_SANDBOX_DIR" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the rds-pg binary runs");
    let run = Run::from_output(out);
    eprintln!("$ rds-pg {}\n{}", args.join(" "), run.stderr);
    run
}

/// Writes an archive (a few bytes) and its manifest at `time` for `database`, verified or not.
fn fabricate(root: &Path, database: &str, time: &str, state: &str) -> PathBuf {
    let time: UtcTime = time.parse().unwrap();
    let dir = root.join("acme").join("prod").join(database);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{}.dump", time.compact());
    std::fs::write(dir.join(&name), b"PGDMP fabricated").unwrap();
    let manifest = json!({
        "manifest_version": 1,
        "client": "acme", "instance": "prod", "project": database, "database": database,
        "role": database, "archive": name, "format": "custom", "encryption": null,
        "sha256": "00", "bytes": 16, "server_version": "15.18",
        "pg_dump": {"path": "/usr/lib/postgresql/15/bin/pg_dump", "version": "15.18"},
        "rds_pg_version": "0.1.0", "started_at": time.rfc3339(), "finished_at": time.rfc3339(),
        "toc": {"TABLE": 1}, "extensions": [], "tables": [],
        "verification": {"state": state, "at": null, "server_version": null, "pg_restore": null,
                         "duration_ms": null, "tables_checked": 0, "rows_restored": 0,
                         "problems": []},
        "upload": null,
    });
    let path = dir.join(format!("{}.json", time.compact()));
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    path
}

/// The archives left under `root`, as `database/timestamp`.
fn remaining(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for db in ["shop", "blog"] {
        let dir = root.join("acme/prod").join(db);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stamp) = name.strip_suffix(".dump") {
                assert!(
                    dir.join(format!("{stamp}.json")).is_file(),
                    "manifest of {name}"
                );
                out.insert(format!("{db}/{stamp}"));
            }
        }
    }
    out
}

fn stamps(db: &str, times: &[&str]) -> BTreeSet<String> {
    times
        .iter()
        .map(|t| format!("{db}/{}", t.parse::<UtcTime>().unwrap().compact()))
        .collect()
}

#[test]
fn prune_removes_exactly_the_policys_victims_and_keeps_the_newest_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    // shop: every day at 03:00 from 2026-11-01 to 2026-12-01, and an extra run at 15:00 on the
    // last day; the newest verified archive is 2026-11-10's (the later ones failed or were not
    // verified).
    let mut shop = Vec::new();
    for day in 1..=30 {
        shop.push(format!("2026-11-{day:02}T03:00:00Z"));
    }
    shop.push("2026-12-01T03:00:00Z".into());
    shop.push("2026-12-01T15:00:00Z".into());
    for t in &shop {
        let state = match t.as_str() {
            "2026-11-10T03:00:00Z" | "2026-11-02T03:00:00Z" => "verified",
            "2026-12-01T15:00:00Z" => "failed",
            _ => "unverified",
        };
        fabricate(&root, "shop", t, state);
    }
    // blog: two archives.
    for t in ["2026-11-30T03:00:00Z", "2026-12-01T03:00:00Z"] {
        fabricate(&root, "blog", t, "verified");
    }
    let all = remaining(&root);
    assert_eq!(all.len(), 34);

    // keep 2 last, 3 daily, 2 weekly. Weeks (ISO): 12-01 is a Tuesday of week 49 (with 11-30),
    // 11-29 ends week 48.
    let kept: BTreeSet<String> = stamps(
        "shop",
        &[
            "2026-12-01T15:00:00Z", // last, daily, weekly (week 49)
            "2026-12-01T03:00:00Z", // last
            "2026-11-30T03:00:00Z", // daily
            "2026-11-29T03:00:00Z", // daily, weekly (week 48)
            "2026-11-10T03:00:00Z", // the newest verified
        ],
    )
    .into_iter()
    .chain(stamps(
        "blog",
        &["2026-11-30T03:00:00Z", "2026-12-01T03:00:00Z"],
    ))
    .collect();
    let victims: BTreeSet<String> = all.difference(&kept).cloned().collect();
    assert_eq!(victims.len(), 27);
    let dir = root.to_str().unwrap();
    let policy = [
        "--keep-last",
        "2",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
    ];

    let mut args = vec!["backup", "prune", dir, "--dry-run", "--json"];
    args.extend(policy);
    let dry = rds_pg(&[], &args);
    assert_eq!(dry.status, 0, "{dry:#?}");
    let doc = dry.json();
    assert_eq!(doc["dry_run"], json!(true));
    let listed: BTreeSet<String> = doc["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["keep"] == json!(false))
        .map(|a| {
            let path = a["archive"].as_str().unwrap();
            let stamp = Path::new(path)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            format!("{}/{stamp}", a["database"].as_str().unwrap())
        })
        .collect();
    assert_eq!(listed, victims, "the dry run lists exactly the victims");
    assert_eq!(remaining(&root), all, "a dry run removes nothing");
    let newest_verified = doc["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["started_at"] == json!("2026-11-10T03:00:00Z"))
        .unwrap();
    assert_eq!(newest_verified["reasons"], json!(["newest verified"]));
    // People read the same in lines.
    let mut args = vec!["backup", "prune", dir, "--dry-run"];
    args.extend(policy);
    let human = rds_pg(&[], &args);
    assert_eq!(human.status, 0);
    assert_eq!(
        human
            .stderr
            .lines()
            .filter(|l| l.starts_with("would go"))
            .count(),
        27
    );
    assert!(human.stderr.contains("keep 2 last, 3 daily, 2 weekly: 27 archives would go (dry run: nothing removed), 7 kept"), "{}", human.stderr);

    let mut args = vec!["backup", "prune", dir, "--json"];
    args.extend(policy);
    let done = rds_pg(&[], &args);
    assert_eq!(done.status, 0, "{done:#?}");
    assert_eq!(
        remaining(&root),
        kept,
        "prune removes the victims and nothing else"
    );
    let removed = done.json()["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["removed"] == json!(true))
        .count();
    assert_eq!(removed, 27);

    // Whatever the policy: the newest verified archive stays.
    let strict = rds_pg(&[], &["backup", "prune", dir, "--keep-last", "1", "--json"]);
    assert_eq!(strict.status, 0);
    let left = remaining(&root);
    assert!(
        left.contains(&format!(
            "shop/{}",
            "2026-11-10T03:00:00Z".parse::<UtcTime>().unwrap().compact()
        )),
        "{left:?}"
    );
    assert!(left.contains(&format!(
        "shop/{}",
        "2026-12-01T15:00:00Z".parse::<UtcTime>().unwrap().compact()
    )));
    assert_eq!(left.len(), 3, "{left:?}");

    // No rule at all removes nothing.
    let none = rds_pg(&[], &["backup", "prune", dir]);
    assert_eq!(none.status, 0);
    assert!(none.stderr.contains("keep everything"), "{}", none.stderr);
    assert_eq!(remaining(&root), left);
}

#[test]
fn prune_takes_its_policy_from_the_inventory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    for day in 1..=5 {
        fabricate(
            &root,
            "shop",
            &format!("2026-11-{day:02}T03:00:00Z"),
            "unverified",
        );
    }
    let inventory = tmp.path().join("fleet.toml");
    std::fs::write(
        &inventory,
        format!(
            "[policy]\nbackup_dir = {:?}\nbackup_keep_last = 2\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    let inv = inventory.to_str().unwrap();
    let dry = rds_pg(&[], &["backup", "prune", inv, "--dry-run", "--json"]);
    assert_eq!(dry.status, 0, "{dry:#?}");
    assert_eq!(dry.json()["policy"], json!("keep 2 last"));
    // A flag replaces the inventory's key.
    let dry = rds_pg(
        &[],
        &[
            "backup",
            "prune",
            inv,
            "--keep-last",
            "4",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry.json()["policy"], json!("keep 4 last"));
    let gone = dry.json()["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["keep"] == json!(false))
        .count();
    assert_eq!(gone, 1);
    // Listing from the inventory.
    let list = rds_pg(&[], &["backup", "list", inv, "--json"]);
    assert_eq!(list.status, 0);
    assert_eq!(list.json()["archives"].as_array().unwrap().len(), 5);
    // Bad input: exit 2.
    let bad = rds_pg(
        &[],
        &[
            "backup",
            "prune",
            tmp.path().join("missing.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(bad.status, 2, "{bad:#?}");
    std::fs::write(&inventory, "[policy]\nbackup_keep_last = -1\n").unwrap();
    let bad = rds_pg(&[], &["backup", "prune", inv]);
    assert_eq!(bad.status, 2, "{bad:#?}");
    assert!(
        bad.stderr.contains("backup_keep_last = -1 must be a count"),
        "{}",
        bad.stderr
    );
}

fn end_to_end(sandbox: &Sandbox) {
    assert!(
        has_client_tools_for(sandbox.major_version()),
        "backups of PostgreSQL {} need its client tools",
        sandbox.major_version()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let master_pgpass = dir.join("master.pgpass");
    let line = rds_pg_core::pgpass::format_line(
        "127.0.0.1",
        sandbox.port(),
        "*",
        sandbox.master_user(),
        sandbox.master_password(),
    )
    .unwrap();
    std::fs::write(&master_pgpass, format!("{}\n", line.expose())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&master_pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut env = vec![
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", sandbox.port().to_string()),
        ("PGUSER", sandbox.master_user().to_owned()),
        ("PGPASSFILE", master_pgpass.display().to_string()),
    ];
    if let Some(ca) = sandbox.ca_cert_path() {
        env.push(("PGSSLMODE", "verify-full".into()));
        env.push(("PGSSLROOTCERT", ca.display().to_string()));
    }
    let shop_pgpass = dir.join("shop.pgpass");
    let pgpass = shop_pgpass.to_str().unwrap();
    let created = rds_pg(
        &env,
        &["user", "create", "shop", "--credentials-pgpass", pgpass],
    );
    assert_eq!(created.status, 0, "{created:#?}");
    let created = rds_pg(&env, &["db", "create", "shop", "--owner", "shop"]);
    assert_eq!(created.status, 0, "{created:#?}");
    let created = rds_pg(
        &env,
        &[
            "user",
            "create",
            "lost",
            "--credentials-pgpass",
            dir.join("lost.pgpass").to_str().unwrap(),
        ],
    );
    assert_eq!(created.status, 0, "{created:#?}");
    let created = rds_pg(&env, &["db", "create", "lost", "--owner", "lost"]);
    assert_eq!(created.status, 0, "{created:#?}");
    let inventory = dir.join("fleet.toml");
    let project = |name: &str, pgpass: &str| {
        format!(
            "\n[[project]]\nname = \"{name}\"\nclient = \"acme\"\nenvironment = \"staging\"\n\
             region = \"eu-west-1\"\ninstance = \"practice\"\n[[project.database]]\n\
             name = \"{name}\"\nowner = \"{name}\"\n[project.credentials]\n{name} = {{ pgpass = {pgpass:?} }}\n"
        )
    };
    let text = format!(
        "[policy]\nbackup_dir = {:?}\n\n[[client]]\nname = \"acme\"\naccount_id = \"111122223333\"\n\n\
         [[instance]]\nname = \"practice\"\nclient = \"acme\"\nenvironment = \"staging\"\n\
         region = \"eu-west-1\"\npostgres_major = {}\nendpoint = \"127.0.0.1\"\nport = {}\n\
         master_user = {:?}\nmaster_password = {{ pgpass = {:?} }}\n{}{}{}",
        dir.join("backups").display().to_string(),
        sandbox.major_version(),
        sandbox.port(),
        sandbox.master_user(),
        master_pgpass.display().to_string(),
        rds_pg_tests::fleet::instance_tls(sandbox),
        project("shop", pgpass),
        project("lost", dir.join("nowhere.pgpass").to_str().unwrap()),
    );
    std::fs::write(&inventory, text).unwrap();
    let inv = inventory.to_str().unwrap();

    // One database fails (its credentials are not where the inventory says): exit 1, the other
    // is backed up.
    let run = rds_pg(&env, &["backup", "run", inv, "--json"]);
    assert_eq!(run.status, 1, "{run:#?}");
    let doc = run.json();
    assert_eq!(doc["succeeded"], json!(false));
    let dbs = doc["databases"].as_array().unwrap();
    let shop = dbs.iter().find(|d| d["database"] == "shop").unwrap();
    let lost = dbs.iter().find(|d| d["database"] == "lost").unwrap();
    assert_eq!(shop["succeeded"], json!(true), "{shop:#}");
    assert_eq!(lost["error"]["kind"], json!("not_found"), "{lost:#}");
    assert!(
        lost["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nowhere.pgpass"),
        "{lost:#}"
    );
    let human = rds_pg(&env, &["backup", "run", inv, "--project", "shop"]);
    assert_eq!(human.status, 0, "{human:#?}");
    assert!(
        human.stderr.contains("1 of 1 database backed up"),
        "{}",
        human.stderr
    );

    let list = rds_pg(&env, &["backup", "list", inv, "--json"]);
    assert_eq!(list.status, 0);
    let archives = list.json()["archives"].as_array().unwrap().clone();
    assert_eq!(archives.len(), 2);
    assert!(archives
        .iter()
        .all(|a| a["verification"] == json!("unverified")));

    let verify = rds_pg(
        &env,
        &["backup", "verify", inv, "--project", "shop", "--json"],
    );
    assert_eq!(verify.status, 0, "{verify:#?}");
    let doc = verify.json();
    assert_eq!(doc["archives"][0]["verified"], json!(true), "{doc:#}");
    assert_eq!(
        doc["archives"][0]["scratch"]["database_dropped"],
        json!(true)
    );
    let list = rds_pg(&env, &["backup", "list", inv]);
    assert_eq!(
        list.stderr
            .lines()
            .filter(|l| l.contains(" verified "))
            .count(),
        1,
        "{}",
        list.stderr
    );

    // The database without an archive fails verify with exit 1.
    let verify = rds_pg(&env, &["backup", "verify", inv]);
    assert_eq!(verify.status, 1, "{verify:#?}");
    assert!(
        verify.stderr.contains("no archive of database \"lost\""),
        "{}",
        verify.stderr
    );

    // A newer, unverified archive; prune keeps the newest verified one even with keep-last 1.
    let again = rds_pg(&env, &["backup", "run", inv, "--project", "shop"]);
    assert_eq!(again.status, 0, "{again:#?}");
    let prune = rds_pg(
        &env,
        &["backup", "prune", inv, "--keep-last", "1", "--json"],
    );
    assert_eq!(prune.status, 0, "{prune:#?}");
    let kept: Vec<Value> = prune.json()["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["keep"] == json!(true))
        .cloned()
        .collect();
    assert_eq!(
        kept.len(),
        2,
        "the newest and the newest verified: {kept:#?}"
    );
    assert_eq!(prune.json()["archives"].as_array().unwrap().len(), 3);
}

#[test]
fn backup_run_list_verify_prune_on_15() {
    run_on(15, end_to_end);
}
