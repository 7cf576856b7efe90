//! Hostile projects through the `rds-pg` command (issue 11): the library suite's attack, run the
//! way an operator runs it. The census reads what the commands themselves send as master; a
//! project role `hostile` plants shadowing objects for it in its own database (public first on
//! that database's search path) and, on PostgreSQL 14 and older, in `public` of `postgres` and
//! `template1` (opened to PUBLIC again after the census, which runs `rds-pg instance secure`, as
//! RDS delivers a 13 or 14 instance); then every command runs as master (`--json`, and
//! `--dry-run` where it exists) and each is checked: no planted object ran as anyone but
//! `hostile`, `hostile` gained nothing, other projects' new databases hold nothing of it, every
//! refusal is a typed error (a JSON `kind` other than `server`) and nothing crashed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rds_pg_core::Password;
use rds_pg_tests::hostile::census::{self, Census};
use rds_pg_tests::hostile::plant::PlantSet;
use rds_pg_tests::hostile::{self, admin, log, Attack, Expect, Outcome, Planter};
use rds_pg_tests::{per_version, Sandbox};
use serde_json::Value;

const POLICY: Expect = Expect::Refused("policy_violation");

/// The `rds-pg` binary with a libpq environment of its own: master's (and the project users')
/// passwords in a password file, nothing inherited.
struct RdsPg {
    env: Vec<(String, String)>,
    passfile: PathBuf,
}

impl RdsPg {
    fn new(sandbox: &Sandbox, dir: &Path) -> RdsPg {
        let passfile = dir.join("pgpass");
        let mut env = vec![
            ("PGHOST".to_owned(), "127.0.0.1".to_owned()),
            ("PGPORT".to_owned(), sandbox.port().to_string()),
            ("PGUSER".to_owned(), sandbox.master_user().to_owned()),
            ("PGPASSFILE".to_owned(), passfile.display().to_string()),
        ];
        match sandbox.ca_cert_path() {
            Some(ca) => {
                env.push(("PGSSLMODE".into(), "verify-full".into()));
                env.push(("PGSSLROOTCERT".into(), ca.display().to_string()));
            }
            None => env.push(("PGSSLMODE".into(), "disable".into())),
        }
        let cli = RdsPg { env, passfile };
        cli.password_line(sandbox, sandbox.master_user(), sandbox.master_password());
        cli
    }

    /// Adds (or replaces) `user`'s line in the password file.
    fn password_line(&self, sandbox: &Sandbox, user: &str, password: &Password) {
        let line =
            rds_pg_core::pgpass::format_line("127.0.0.1", sandbox.port(), "*", user, password)
                .unwrap();
        let old = std::fs::read_to_string(&self.passfile).unwrap_or_default();
        let prefix = format!("127.0.0.1:{}:*:{user}:", sandbox.port());
        let mut text: String = old
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(line.expose());
        text.push('\n');
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.passfile)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Runs `rds-pg ARGS` (as `user` when given) with `stdin`; returns status, stdout, stderr.
    fn run(&self, user: Option<&str>, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rds-pg"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") || k == "RDS_PG_SANDBOX_DIR" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(u) = user {
            cmd.env("PGUSER", u);
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A run that must succeed (set-up and census).
    fn must(&self, user: Option<&str>, args: &[&str], stdin: Option<&str>) -> String {
        let (status, stdout, stderr) = self.run(user, args, stdin);
        assert_eq!(status, 0, "rds-pg {}: {stdout}{stderr}", args.join(" "));
        stdout
    }

    /// A run with `--json`, as a step's outcome: exit 0 is success; exit 1 or 2 must print one
    /// JSON document whose first error has a kind; anything else (a panic's 101, a signal, no
    /// JSON) is a crash. The document is returned too.
    fn outcome(
        &self,
        user: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (Outcome, Option<Value>) {
        let mut args = args.to_vec();
        args.push("--json");
        let (status, stdout, stderr) = self.run(user, &args, stdin);
        let doc: Option<Value> = serde_json::from_str(&stdout).ok();
        let outcome = match (status, &doc) {
            (0, _) => Outcome::Ok,
            (1 | 2, Some(d)) => match d["errors"].get(0) {
                Some(e) => Outcome::Failed {
                    kind: e["kind"].as_str().unwrap_or("other").to_owned(),
                    message: e["message"].as_str().unwrap_or("").to_owned(),
                },
                None => Outcome::Crashed(format!("exit {status} without an error: {stdout}")),
            },
            _ => Outcome::Crashed(
                format!(
                    "exit {status}; stdout: {stdout}; stderr: {}",
                    stderr.trim().chars().take(600).collect::<String>()
                )
                .replace('\n', " | "),
            ),
        };
        (outcome, doc)
    }
}

fn has_dump_tools(major: u32) -> bool {
    (major..=99).any(|m| Path::new(&format!("/usr/lib/postgresql/{m}/bin/pg_dump")).is_file())
}

fn ext_args(sandbox: &Sandbox) -> Vec<&'static str> {
    let mut a = vec!["--extension", "hstore"];
    if sandbox.has_postgis() {
        a.extend(["--extension", "postgis"]);
    }
    a
}

/// Every command once as master for a clean project; the census of what they sent.
fn cli_census(sandbox: &Sandbox, cli: &RdsPg, dir: &Path) -> Census {
    let mark = log::mark(sandbox);
    let pw = Password::new("census-cli-pw");
    let stdin = format!("{}\n", pw.expose());
    // Securing the instance first: before 15, db create refuses an open template1.
    cli.must(None, &["instance", "secure", "--dry-run"], None);
    cli.must(None, &["instance", "secure"], None);
    cli.must(None, &["user", "create", "census", "--dry-run"], None);
    cli.must(
        None,
        &["user", "create", "census", "--password-stdin"],
        Some(&stdin),
    );
    cli.password_line(sandbox, "census", &pw);
    cli.must(None, &["user", "create", "census_ro"], None);
    let mut create = vec!["db", "create", "census", "--owner", "census"];
    create.extend(ext_args(sandbox));
    let mut dry = create.clone();
    dry.push("--dry-run");
    cli.must(None, &dry, None);
    cli.must(None, &create, None);
    hostile::pinned(
        &sandbox
            .options_for("census")
            .password(pw.clone())
            .dbname("census"),
    )
    .batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
             INSERT INTO public.t SELECT g, g::text FROM generate_series(1, 10) g;",
    )
    .unwrap();
    cli.must(
        None,
        &["ext", "enable", "census", "hstore", "citext", "--dry-run"],
        None,
    );
    cli.must(None, &["ext", "enable", "census", "hstore", "citext"], None);
    for sub in ["readonly", "revoke-readonly"] {
        cli.must(
            None,
            &["grant", sub, "census", "census_ro", "--dry-run"],
            None,
        );
        cli.must(None, &["grant", sub, "census", "census_ro"], None);
    }
    cli.must(None, &["grant", "readonly", "census", "census_ro"], None);
    cli.must(None, &["user", "password", "census", "--dry-run"], None);
    cli.must(
        None,
        &["user", "password", "census", "--password-stdin"],
        Some(&stdin),
    );
    let mut copies = Vec::new();
    if has_dump_tools(sandbox.major_version()) {
        let archive = dir.join("census.dump");
        let a = archive.to_str().unwrap();
        cli.must(Some("census"), &["dump", "census", "--file", a], None);
        let mut create = vec!["db", "create", "census_copy", "--owner", "census"];
        create.extend(ext_args(sandbox));
        create.extend(["--extension", "citext"]);
        cli.must(None, &create, None);
        cli.must(
            Some("census"),
            &["restore", "census_copy", "--file", a, "--dry-run"],
            None,
        );
        cli.must(
            Some("census"),
            &["restore", "census_copy", "--file", a],
            None,
        );
        // Into a database without the extensions: master creates the ones named.
        cli.must(
            None,
            &["db", "create", "census_bare", "--owner", "census"],
            None,
        );
        let mut restore = vec!["restore", "census_bare", "--file", a];
        restore.extend(ext_args(sandbox));
        restore.extend([
            "--extension",
            "citext",
            "--master-user",
            sandbox.master_user(),
        ]);
        let mut dry = restore.clone();
        dry.push("--dry-run");
        cli.must(Some("census"), &dry, None);
        cli.must(Some("census"), &restore, None);
        copies.extend(["census_copy", "census_bare"]);
    }
    cli.must(None, &["user", "drop", "census_ro", "--dry-run"], None);
    cli.must(None, &["user", "drop", "census_ro"], None);
    cli.must(
        None,
        &["db", "drop", "census", "--force", "--dry-run"],
        None,
    );
    for d in std::iter::once("census").chain(copies) {
        cli.must(None, &["db", "drop", d, "--force"], None);
    }
    cli.must(None, &["user", "drop", "census"], None);
    let census = census::census(
        &mut admin(sandbox, "postgres"),
        &log::entries_since(sandbox, mark),
        sandbox.master_user(),
    );
    eprintln!("census of the commands: {census}");
    assert!(
        census.routine_count() >= 10,
        "the census found only {} functions, aggregates and operators: the extractor is broken\n\
         {census}",
        census.routine_count()
    );
    census
}

fn plant_set(sandbox: &Sandbox, census: &Census, planter: &str) -> PlantSet {
    let mut check = admin(sandbox, "postgres");
    let readable: std::collections::BTreeSet<String> = census
        .relations
        .iter()
        .filter(|rel| {
            check
                .query_one(
                    "SELECT has_table_privilege($1, 'pg_catalog.' || quote_ident($2), 'SELECT')",
                    &[&planter, rel],
                )
                .unwrap()
                .get(0)
        })
        .cloned()
        .collect();
    PlantSet::generate(&mut admin(sandbox, "postgres"), census, &|rel| {
        readable.contains(rel)
    })
}

per_version!(
    fn a_hostile_project_gains_nothing_through_the_command(sandbox) {
        let v = sandbox.major_version();
        let tmp = tempfile::tempdir().unwrap();
        let cli = RdsPg::new(sandbox, tmp.path());
        // The census secures the instance (rds-pg instance secure); set-up runs on it.
        let census = cli_census(sandbox, &cli, tmp.path());

        let pw = Password::new("hostile-cli-pw");
        cli.must(
            None,
            &["user", "create", "hostile", "--password-stdin"],
            Some(&format!("{}\n", pw.expose())),
        );
        cli.password_line(sandbox, "hostile", &pw);
        cli.must(None, &["db", "create", "hostile", "--owner", "hostile"], None);
        cli.must(None, &["user", "create", "hostile_ro"], None);
        // From here on, the instance as RDS delivers it: PUBLIC may create in public of
        // postgres and template1 on 14 and older.
        hostile::shared_public_schemas_open(sandbox, true);
        let planter = Planter {
            role: "hostile".into(),
            options: sandbox.options_for("hostile").password(pw),
        };
        let set = plant_set(sandbox, &census, "hostile");
        let shared: &[&str] = if v <= 14 { &["postgres", "template1"] } else { &[] };
        for (database, own) in std::iter::once(("hostile", true))
            .chain(shared.iter().map(|d| (*d, false)))
        {
            hostile::plant(&planter, &set, database, own)
                .unwrap_or_else(|e| panic!("planting in {database}: {e}"));
            let probe = hostile::probe(sandbox, &set, database, "hostile", own);
            eprintln!("{probe}");
            assert!(probe.captured > 0 && probe.missed.is_empty(), "{probe}: {:?}", probe.missed);
        }
        if v >= 15 {
            for database in ["postgres", "template1"] {
                assert!(hostile::try_create_in_public(&planter, database).is_err());
            }
        }

        let mut attack = Attack::new(sandbox, &["hostile"]);
        let step = |attack: &mut Attack, what: &str, expect: Expect, args: &[&str], stdin: Option<&str>| {
            let mut doc = None;
            attack.run(&format!("rds-pg {what}"), expect, || {
                let (o, d) = cli.outcome(None, args, stdin);
                doc = d;
                o
            });
            doc
        };
        step(&mut attack, "user create hostile --dry-run", Expect::Ok, &["user", "create", "hostile", "--dry-run"], None);
        step(&mut attack, "user create hostile", Expect::Ok, &["user", "create", "hostile"], None);
        step(&mut attack, "db create hostile --dry-run", Expect::Ok, &["db", "create", "hostile", "--owner", "hostile", "--dry-run"], None);
        step(&mut attack, "db create hostile", Expect::Ok, &["db", "create", "hostile", "--owner", "hostile"], None);
        let doc = step(&mut attack, "ext enable hostile hstore --dry-run", Expect::Ok, &["ext", "enable", "hostile", "hstore", "--dry-run"], None);
        if let Some(doc) = doc {
            let notes = doc["notes"].to_string();
            if !hostile::names_a_plant(&notes, &set) {
                attack.finding(format!(
                    "rds-pg ext enable hostile hstore --dry-run: the notes do not list the \
                     objects shadowing pg_catalog: {notes}"
                ));
            }
        }
        step(&mut attack, "ext enable hostile hstore", Expect::Ok, &["ext", "enable", "hostile", "hstore"], None);
        if sandbox.has_postgis() {
            step(&mut attack, "ext enable hostile postgis", POLICY, &["ext", "enable", "hostile", "postgis"], None);
        }
        for sub in ["readonly", "revoke-readonly"] {
            step(&mut attack, &format!("grant {sub} hostile hostile_ro --dry-run"), Expect::Ok, &["grant", sub, "hostile", "hostile_ro", "--dry-run"], None);
            step(&mut attack, &format!("grant {sub} hostile hostile_ro"), Expect::Ok, &["grant", sub, "hostile", "hostile_ro"], None);
        }
        step(&mut attack, "user password hostile --dry-run", Expect::Ok, &["user", "password", "hostile", "--dry-run"], None);
        let rotated = Password::new("hostile-cli-rotated");
        let rotated_stdin = format!("{}\n", rotated.expose());
        let outcome = attack.run("rds-pg user password hostile", Expect::Ok, || {
            cli.outcome(None, &["user", "password", "hostile", "--password-stdin"], Some(&rotated_stdin)).0
        });
        if outcome == Outcome::Ok {
            cli.password_line(sandbox, "hostile", &rotated);
        }

        // A clean project.
        step(&mut attack, "user create victim", Expect::Ok, &["user", "create", "victim"], None);
        step(&mut attack, "user create victim_ro", Expect::Ok, &["user", "create", "victim_ro"], None);
        let mut create = vec!["db", "create", "victim", "--owner", "victim"];
        create.extend(ext_args(sandbox));
        if v <= 14 {
            let doc = step(&mut attack, "db create victim (template1 holds hostile's objects)", POLICY, &create, None);
            let error = doc.as_ref().and_then(|d| d["errors"].get(0).cloned());
            if let Some(e) = error.filter(|e| e["kind"] == "policy_violation") {
                let message = e["message"].as_str().unwrap_or("");
                if !(message.contains("hostile") && hostile::names_a_plant(message, &set)) {
                    attack.finding(format!("db create victim: the refusal does not list hostile's objects: {message}"));
                }
                match e["fix"].as_str() {
                    Some(sql) if hostile::closes_public_create(sql) => {
                        let mut t1 = hostile::pinned(&sandbox.master_options().dbname("template1"));
                        let ran = hostile::run_fix(&mut t1, sql);
                        drop(t1);
                        if let Err(failures) = &ran {
                            attack.finding(format!(
                                "the printed fix fails as master in template1: {failures}"
                            ));
                        }
                        let left = hostile::objects_owned_by(sandbox, "template1", &["hostile"]);
                        if !left.is_empty() {
                            attack.finding(format!(
                                "the printed fix left {} objects of hostile in template1: {:?}",
                                left.len(),
                                &left[..left.len().min(5)]
                            ));
                        }
                        if ran.is_err() || !left.is_empty() {
                            // Found already; clean it so that the steps after it still run.
                            hostile::clean_template1_as_superuser(sandbox, &["hostile"]);
                        }
                        step(&mut attack, "db create victim (after the fix)", Expect::Ok, &create, None);
                    }
                    other => attack.finding(format!(
                        "db create victim: the JSON error's fix does not clean template1 and close \
                         CREATE on its public: {other:?}"
                    )),
                }
            }
        } else {
            step(&mut attack, "db create victim", Expect::Ok, &create, None);
        }
        let owned = if hostile::database_exists(sandbox, "victim") {
            hostile::objects_owned_by(sandbox, "victim", &["hostile"])
        } else {
            attack.finding("rds-pg db create victim: no database victim was created");
            Vec::new()
        };
        if !owned.is_empty() {
            attack.finding(format!(
                "the database created for victim holds {} objects of hostile: {:?}…",
                owned.len(),
                &owned[..owned.len().min(5)]
            ));
        }
        // Securing the instance while hostile's objects are still in postgres.
        step(&mut attack, "instance secure --dry-run", Expect::Ok, &["instance", "secure", "--dry-run"], None);
        step(&mut attack, "instance secure", Expect::Ok, &["instance", "secure"], None);
        for database in ["postgres", "template1"] {
            if hostile::may_create_in_public(sandbox, database, "hostile") {
                attack.finding(format!("after instance secure hostile may still create in {database}.public"));
            }
        }
        step(&mut attack, "ext enable victim citext", Expect::Ok, &["ext", "enable", "victim", "citext"], None);
        step(&mut attack, "grant readonly victim victim_ro", Expect::Ok, &["grant", "readonly", "victim", "victim_ro"], None);
        step(&mut attack, "grant revoke-readonly victim victim_ro", Expect::Ok, &["grant", "revoke-readonly", "victim", "victim_ro"], None);
        step(&mut attack, "user password victim", Expect::Ok, &["user", "password", "victim"], None);

        // A privileged role is never a project role.
        attack.admin().batch_execute("ALTER ROLE hostile CREATEDB").unwrap();
        attack.rebaseline("hostile");
        step(&mut attack, "user create hostile (with CREATEDB)", POLICY, &["user", "create", "hostile"], None);
        step(&mut attack, "db create hostile --owner hostile (with CREATEDB)", POLICY, &["db", "create", "hostile", "--owner", "hostile"], None);
        step(&mut attack, "grant readonly victim hostile (with CREATEDB)", POLICY, &["grant", "readonly", "victim", "hostile"], None);
        attack.admin().batch_execute("ALTER ROLE hostile NOCREATEDB").unwrap();
        attack.rebaseline("hostile");

        if has_dump_tools(v) {
            let archive = tmp.path().join("hostile.dump");
            let a = archive.to_str().unwrap();
            attack.run("rds-pg -U hostile dump hostile", Expect::Ok, || {
                cli.outcome(Some("hostile"), &["dump", "hostile", "--file", a], None).0
            });
            if archive.exists() {
                let mark = log::mark(sandbox);
                step(&mut attack, "restore hostile as master", POLICY, &["restore", "hostile", "--file", a], None);
                if log::entries_since(sandbox, mark)
                    .iter()
                    .any(|e| e.message.contains("application_name=pg_restore"))
                {
                    attack.finding("rds-pg restore hostile as master: pg_restore ran");
                }
                let has = hostile::installed_extensions(sandbox, "hostile");
                let mut create = vec!["db", "create", "hostile_copy", "--owner", "hostile"];
                for e in &has {
                    create.extend(["--extension", e.as_str()]);
                }
                step(&mut attack, "db create hostile_copy", Expect::Ok, &create, None);
                attack.run("rds-pg -U hostile restore hostile_copy", Expect::Ok, || {
                    cli.outcome(Some("hostile"), &["restore", "hostile_copy", "--file", a], None).0
                });
                step(&mut attack, "db drop hostile_copy", Expect::Ok, &["db", "drop", "hostile_copy", "--force"], None);
                // Into a database without them: only the extensions named are created.
                step(&mut attack, "db create hostile_bare", Expect::Ok, &["db", "create", "hostile_bare", "--owner", "hostile"], None);
                if !has.is_empty() {
                    attack.run("rds-pg -U hostile restore hostile_bare (extensions not named)", Expect::Refused("not_found"), || {
                        cli.outcome(Some("hostile"), &["restore", "hostile_bare", "--file", a], None).0
                    });
                    let created = hostile::installed_extensions(sandbox, "hostile_bare");
                    if !created.is_empty() {
                        attack.finding(format!("a restore naming no extension created {created:?}"));
                    }
                }
                let mut restore = vec!["restore", "hostile_bare", "--file", a];
                for e in &has {
                    restore.extend(["--extension", e.as_str()]);
                }
                restore.extend(["--master-user", sandbox.master_user()]);
                let mut dry = restore.clone();
                dry.push("--dry-run");
                attack.run("rds-pg -U hostile restore hostile_bare --extension … --dry-run", Expect::Ok, || {
                    cli.outcome(Some("hostile"), &dry, None).0
                });
                attack.run("rds-pg -U hostile restore hostile_bare --extension … --master-user", Expect::Ok, || {
                    cli.outcome(Some("hostile"), &restore, None).0
                });
                step(&mut attack, "db drop hostile_bare", Expect::Ok, &["db", "drop", "hostile_bare", "--force"], None);
            }
        }
        for database in std::iter::once("hostile").chain(shared.iter().copied()) {
            for row in hostile::recorded_rows(sandbox, database, "hostile") {
                attack.finding(format!("hostile_log in {database}: {row}"));
            }
        }
        step(&mut attack, "db drop hostile --dry-run", Expect::Ok, &["db", "drop", "hostile", "--force", "--dry-run"], None);
        for d in ["hostile", "victim"] {
            step(&mut attack, &format!("db drop {d}"), Expect::Ok, &["db", "drop", d, "--force"], None);
        }
        step(&mut attack, "user drop hostile --dry-run", Expect::Ok, &["user", "drop", "hostile", "--dry-run"], None);
        for u in ["hostile_ro", "victim_ro", "victim"] {
            step(&mut attack, &format!("user drop {u}"), Expect::Ok, &["user", "drop", u], None);
        }
        attack.forget("hostile");
        step(&mut attack, "user drop hostile", Expect::Ok, &["user", "drop", "hostile"], None);
        attack.assert_clean();
    }
);
