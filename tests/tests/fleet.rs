//! `fleet apply` (issue 14) against real sandboxes: two clients' instances provisioned from an
//! inventory in one run, the projects' users logging in with the credentials delivered where the
//! inventory says and reaching only their own databases, with progress per instance and at most
//! `jobs` instances at once; a second run that changes nothing and costs one inspection query per
//! database (counted in the server log); `prune` and `take_over` doing only what the plan lists;
//! an instance whose inventory breaks a hosting policy left untouched.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rds_pg_core::fleet::{self, FleetOptions, FleetReport, ItemKind, ItemState, Progress};
use rds_pg_core::{
    connect, ConnectOptions, DatabaseSpec, ErrorKind, Inventory, Password, SqlState, UserSpec,
};
use rds_pg_tests::fleet::FleetFixture;
use rds_pg_tests::hostile::{self, log};
use rds_pg_tests::{
    assert_password_refused, changes_since, connect_error, login_as_application, per_version,
    refused_login, Sandbox,
};
use rds_pg_tests::{ok, SandboxOptions};

/// The extensions a project database gets on this sandbox (PostGIS where it is installed).
fn extensions(sandbox: &Sandbox) -> &'static str {
    if sandbox.has_postgis() {
        "[\"postgis\", \"hstore\"]"
    } else {
        "[\"hstore\", \"citext\"]"
    }
}

/// Two clients: acme with projects shop and blog on `a`, globex with project maps on `b`.
fn two_clients(f: &mut FleetFixture, a: &Sandbox, b: &Sandbox) -> String {
    let mut text = String::new();
    text.push_str(&FleetFixture::client("acme", "111122223333"));
    text.push_str(&FleetFixture::client("globex", "444455556666"));
    text.push_str(&f.instance("acme-db", "acme", a));
    text.push_str(&f.instance("globex-db", "globex", b));
    let dir = f.dir().display().to_string();
    text.push_str(&FleetFixture::project("shop", "acme", "acme-db"));
    text.push_str(&format!(
        "[[project.database]]\nname = \"shop\"\nowner = \"shop\"\nextensions = {}\n\
         readers = [\"shop_ro\"]\n\n\
         [project.credentials]\nshop = {{ env_file = \"{dir}/shop.env\" }}\n\
         shop_ro = {{ pgpass = \"{dir}/readers.pgpass\" }}\n\n",
        extensions(a)
    ));
    text.push_str(&FleetFixture::project("blog", "acme", "acme-db"));
    text.push_str(&format!(
        "[[project.database]]\nname = \"blog\"\nowner = \"blog\"\nextensions = [\"hstore\"]\n\n\
         [[project.database]]\nname = \"blog_archive\"\nowner = \"blog\"\nreaders = [\"blog_ro\"]\n\n\
         [project.credentials]\nblog = {{ env_file = \"{dir}/blog.env\" }}\n\
         blog_ro = {{ pgpass = \"{dir}/readers.pgpass\" }}\n\n"
    ));
    text.push_str(&FleetFixture::project("maps", "globex", "globex-db"));
    text.push_str(&format!(
        "[[project.database]]\nname = \"maps\"\nowner = \"maps\"\nextensions = {}\n\
         readers = [\"maps_ro\"]\n\n\
         [project.credentials]\n\
         maps = {{ command = [\"sh\", \"-c\", \"cat > {dir}/maps.secret.json\"], format = \"secretsmanager\" }}\n\
         maps_ro = {{ env_file = \"{dir}/maps_ro.env\" }}\n\n",
        extensions(b)
    ));
    text
}

type ProgressLog = Arc<Mutex<Vec<Progress>>>;

/// A progress callback that keeps every event, and the events it kept.
fn progress_log() -> (ProgressLog, fleet::ProgressFn) {
    let events: ProgressLog = Arc::default();
    let kept = events.clone();
    (
        events,
        Arc::new(move |p: &Progress| kept.lock().unwrap().push(p.clone())),
    )
}

/// The instance a progress event is about.
fn instance_of(event: &Progress) -> &str {
    match event {
        Progress::Started { instance }
        | Progress::Planned { instance, .. }
        | Progress::Applying { instance, .. }
        | Progress::Finished { instance, .. } => instance,
        _ => "",
    }
}

fn load(f: &FleetFixture, text: &str) -> Inventory {
    let path = f.write_inventory(text);
    Inventory::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Panics with every error and finding of the report unless it has none.
#[track_caller]
fn expect_clean(report: &FleetReport, what: &str) {
    let mut problems = Vec::new();
    for i in &report.instances {
        if let Some(e) = &i.error {
            problems.push(format!("{}: {e}", i.name));
        }
        for item in &i.items {
            if let Some(e) = item.state.error() {
                problems.push(format!("{}: {item}: {e}", i.name));
            }
            if let ItemState::Skipped(why) = &item.state {
                problems.push(format!("{}: {item}: skipped: {why}", i.name));
            }
        }
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

/// A reader's login from a password file rds-pg wrote.
fn pgpass_login(sandbox: &Sandbox, f: &FleetFixture, user: &str, database: &str) -> ConnectOptions {
    sandbox
        .options_for(user)
        .dbname(database)
        .passfile(f.path("readers.pgpass"))
}

/// The statements master's sessions sent after `mark`, per database.
fn master_statements(sandbox: &Sandbox, mark: usize) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in log::entries_since(sandbox, mark) {
        if e.user != sandbox.master_user() {
            continue;
        }
        if let Some(sql) = e.statement() {
            out.entry(e.database.clone())
                .or_default()
                .push(sql.to_owned());
        }
    }
    out
}

per_version!(
    fn fleet_apply_provisions_two_clients_and_then_costs_one_query_per_database(a) {
        let b = Sandbox::start(SandboxOptions::new().version(a.major_version()))
            .expect("a second sandbox");
        let mut f = FleetFixture::new();
        let text = two_clients(&mut f, a, &b);
        let inventory = load(&f, &text);

        // The plan of empty instances lists everything and changes nothing.
        let plan = ok(fleet::plan(&inventory, &FleetOptions::new()), "fleet plan");
        expect_clean(&plan, "fleet plan of empty instances");
        assert!(plan.differs());
        let acme = &plan.instances[0];
        assert_eq!(acme.name, "acme-db");
        let users: Vec<&str> = acme
            .items
            .iter()
            .filter(|i| i.kind == ItemKind::User)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(users, ["shop", "shop_ro", "blog", "blog_ro"]);
        assert!(!f.path("shop.env").exists(), "a plan delivers nothing");

        let (events, progress) = progress_log();
        let report = ok(
            fleet::apply(&inventory, &FleetOptions::new().jobs(2).on_progress(progress)),
            "fleet apply",
        );
        expect_clean(&report, "fleet apply");
        assert!(report.instances.iter().all(|i| i.changes() > 0));
        // Each instance reports its start, its plan, each operation in turn and its end.
        let events = events.lock().unwrap().clone();
        for i in &report.instances {
            let mine: Vec<&Progress> = events.iter().filter(|e| instance_of(e) == i.name).collect();
            assert!(matches!(mine.first(), Some(Progress::Started { .. })), "{mine:?}");
            assert!(matches!(mine.get(1), Some(Progress::Planned { changes, .. }) if *changes > 0), "{mine:?}");
            let steps: Vec<(usize, usize)> = mine
                .iter()
                .filter_map(|e| match e {
                    Progress::Applying { done, total, .. } => Some((*done, *total)),
                    _ => None,
                })
                .collect();
            let total = steps.len();
            assert!(total > 0);
            assert_eq!(steps, (0..total).map(|d| (d, total)).collect::<Vec<_>>(), "{mine:?}");
            assert!(matches!(mine.last(), Some(Progress::Finished { ok: true, .. })), "{mine:?}");
        }

        // Each project's owner logs in with what was delivered and creates a table.
        let shop = f.env_file_login("shop.env");
        assert_eq!(shop.get_user(), "shop");
        let mut c = login_as_application(&shop).expect("shop logs in with its env file");
        c.batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
            .expect("shop owns its database");
        let blog = f.env_file_login("blog.env");
        login_as_application(&blog.clone().dbname("blog_archive"))
            .expect("blog reaches its second database")
            .batch_execute("CREATE TABLE posts (id int); INSERT INTO posts VALUES (7)")
            .unwrap();
        // maps' credentials went to the command in Secrets Manager's shape.
        let secret: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(f.path("maps.secret.json")).expect("the command ran"),
        )
        .unwrap();
        assert_eq!(secret["engine"], "postgres");
        assert_eq!(secret["username"], "maps");
        assert_eq!(secret["dbname"], "maps");
        assert_eq!(secret["port"], b.port());
        assert_eq!(secret["ssl"].as_bool(), Some(b.ca_cert_path().is_some()));
        let maps = b
            .options_for(secret["username"].as_str().unwrap())
            .dbname(secret["dbname"].as_str().unwrap())
            .password(Password::new(secret["password"].as_str().unwrap()));
        login_as_application(&maps)
            .expect("maps logs in with the secret")
            .batch_execute("CREATE TABLE tiles (z int)")
            .unwrap();

        // Readers read (tables created later included) and write nothing.
        let mut ro = login_as_application(&pgpass_login(a, &f, "shop_ro", "shop"))
            .expect("shop_ro logs in from the password file");
        let n: i64 = ro.query_one("SELECT count(*) FROM orders", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        assert!(ro.batch_execute("INSERT INTO orders VALUES (2)").is_err());
        let mut ro = login_as_application(&pgpass_login(a, &f, "blog_ro", "blog_archive"))
            .expect("blog_ro logs in from the same password file");
        let n: i64 = ro.query_one("SELECT count(*) FROM posts", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        let maps_ro = f.env_file_login("maps_ro.env");
        login_as_application(&maps_ro).expect("maps_ro logs in with its env file");

        // Nobody reaches another project's database.
        for (options, database) in [
            (&shop, "blog"),
            (&shop, "blog_archive"),
            (&blog, "shop"),
            (&maps_ro, "shop"),
        ] {
            let e = connect_error(&options.clone().dbname(database));
            assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        }
        let e = connect_error(&pgpass_login(a, &f, "shop_ro", "blog_archive").password(
            // The password file has no line for blog_archive: give shop_ro's own.
            rds_pg_core::pgpass::lookup(&f.path("readers.pgpass"), "127.0.0.1", a.port(), "shop", "shop_ro")
                .unwrap()
                .password
                .unwrap(),
        ));
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        // Another client's instance does not know acme's users.
        assert!(connect(&b.options_for("shop").password(shop.get_password().unwrap().clone())).is_err());

        // A second run changes nothing, rewrites no credentials, and each database costs one
        // query of master's.
        let env_before = std::fs::read(f.path("shop.env")).unwrap();
        let marks = (log::mark(a), log::mark(&b));
        let (events, progress) = progress_log();
        let again = ok(
            fleet::apply(&inventory, &FleetOptions::new().jobs(1).on_progress(progress)),
            "fleet apply again",
        );
        // --jobs 1: one instance at a time, the second started after the first finished.
        let order: Vec<(String, bool)> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Progress::Started { instance } => Some((instance.clone(), true)),
                Progress::Finished { instance, .. } => Some((instance.clone(), false)),
                _ => None,
            })
            .collect();
        assert_eq!(order.len(), 4, "{order:?}");
        assert!(order[0].1 && !order[1].1 && order[0].0 == order[1].0, "{order:?}");
        assert!(order[2].1 && !order[3].1 && order[2].0 == order[3].0, "{order:?}");
        expect_clean(&again, "second fleet apply");
        assert!(again.is_in_sync(), "{again}");
        for i in &again.instances {
            assert_eq!(i.changes(), 0, "{i}");
            assert_eq!(i.summary(fleet::Mode::Apply), "in sync");
        }
        assert_eq!(std::fs::read(f.path("shop.env")).unwrap(), env_before);
        for (sandbox, mark, databases) in [
            (a, marks.0, vec!["blog", "blog_archive", "postgres", "shop"]),
            (&b, marks.1, vec!["maps", "postgres"]),
        ] {
            let mut expected: Vec<String> = databases.iter().map(|d| d.to_string()).collect();
            if sandbox.major_version() < 15 {
                // New databases are copied from template1 before 15: it is looked at too.
                expected.push("template1".into());
                expected.sort();
            }
            let statements = master_statements(sandbox, mark);
            assert_eq!(
                statements.keys().cloned().collect::<Vec<_>>(),
                expected,
                "master's sessions: {statements:#?}"
            );
            for (database, sql) in &statements {
                let heads: Vec<String> = sql.iter().map(|s| s.chars().take(100).collect()).collect();
                assert_eq!(sql.len(), 1, "one inspection query in {database}: {heads:#?}");
            }
            assert!(changes_since(sandbox, mark).is_empty());
        }
        let reported: usize = again.instances.iter().map(|i| i.inspection_queries).sum();
        let a_dbs = if a.major_version() < 15 { 5 } else { 4 };
        let b_dbs = if a.major_version() < 15 { 3 } else { 2 };
        assert_eq!(reported, a_dbs + b_dbs);
        b.stop().unwrap();
    }
);

per_version!(
    fn prune_and_take_over_do_only_what_the_plan_lists(sandbox) {
        let mut f = FleetFixture::new();
        let dir = f.dir().display().to_string();
        let head = format!(
            "{}{}",
            FleetFixture::client("acme", "111122223333"),
            f.instance("acme-db", "acme", sandbox)
        );
        let shop = format!(
            "{}[[project.database]]\nname = \"shop\"\nowner = \"shop\"\n\n",
            FleetFixture::project("shop", "acme", "acme-db")
        );
        let blog = format!(
            "{}[[project.database]]\nname = \"blog\"\nowner = \"blog\"\n\n\
             [[project.database]]\nname = \"blog_archive\"\nowner = \"blog\"\n\n\
             [project.credentials]\nblog = {{ env_file = \"{dir}/blog.env\" }}\n\n",
            FleetFixture::project("blog", "acme", "acme-db")
        );
        let shop_credentials =
            format!("[project.credentials]\nshop = {{ env_file = \"{dir}/shop.env\" }}\n\n");
        let inventory = load(&f, &format!("{head}{shop}{shop_credentials}{blog}"));
        expect_clean(
            &ok(fleet::apply(&inventory, &FleetOptions::new()), "apply"),
            "first apply",
        );

        // What no project claims: a project left out of the inventory (its role and database,
        // created by master), an administrator and a role with a reserved name.
        let mut rds = rds_pg_tests::provisioner(sandbox);
        ok(rds.ensure_user(&UserSpec::new("stray").unwrap()), "ensure_user stray");
        ok(
            rds.ensure_database(&DatabaseSpec::new("stray_db", "stray").unwrap()),
            "ensure_database stray_db",
        );
        drop(rds);
        let mut admin = hostile::admin(sandbox, "postgres");
        for sql in [
            "CREATE ROLE ops LOGIN CREATEROLE PASSWORD 'ops-pw'",
            "CREATE ROLE rds_custom LOGIN",
        ] {
            admin.batch_execute(sql).unwrap();
        }
        let plan = ok(fleet::plan(&inventory, &FleetOptions::new()), "plan");
        let acme = &plan.instances[0];
        assert!(acme.error.is_none(), "{acme}");
        assert!(!acme.items.iter().any(|i| matches!(i.kind, ItemKind::DropDatabase | ItemKind::DropUser)));
        assert!(acme.notes.iter().any(|n| n.contains("\"stray_db\"")), "{:?}", acme.notes);
        assert!(acme.notes.iter().any(|n| n.contains("\"stray\"")), "{:?}", acme.notes);
        assert!(!plan.differs(), "unclaimed objects are notes, not drift, without --prune");

        let pruning = FleetOptions::new().prune(true);
        let plan = ok(fleet::plan(&inventory, &pruning), "plan --prune");
        let acme = &plan.instances[0];
        let drops: Vec<(String, &str)> = acme
            .items
            .iter()
            .filter(|i| matches!(i.kind, ItemKind::DropDatabase | ItemKind::DropUser))
            .map(|i| (i.to_string(), i.state.as_str()))
            .collect();
        assert_eq!(
            drops,
            [
                ("drop database \"stray_db\"".to_owned(), "planned"),
                ("drop user \"stray\"".to_owned(), "pending"),
            ],
            "never master, ops (CREATEROLE), rds_custom (reserved), postgres, templates, rdsadmin"
        );
        assert!(plan.differs());
        assert!(acme.notes.iter().any(|n| n.contains("\"ops\"") && n.contains("CREATEROLE")));
        let report = ok(fleet::apply(&inventory, &pruning), "apply --prune");
        expect_clean(&report, "apply --prune");
        let exists = |catalog: &str, column: &str, name: &str| -> bool {
            hostile::admin(sandbox, "postgres")
                .query_one(
                    &format!("SELECT count(*) FROM pg_catalog.{catalog} WHERE {column} = $1"),
                    &[&name],
                )
                .unwrap()
                .get::<_, i64>(0)
                == 1
        };
        assert!(!exists("pg_database", "datname", "stray_db"));
        assert!(!exists("pg_roles", "rolname", "stray"));
        for kept in ["ops", "rds_custom", sandbox.master_user(), "shop", "blog"] {
            assert!(exists("pg_roles", "rolname", kept), "{kept} is kept");
        }
        for kept in ["postgres", "template1", "rdsadmin", "shop", "blog", "blog_archive"] {
            assert!(exists("pg_database", "datname", kept), "{kept} is kept");
        }
        // A pruned role that owns tables in a claimed database is a finding, not a DROP OWNED.
        let mut rds = rds_pg_tests::provisioner(sandbox);
        ok(rds.ensure_user(&UserSpec::new("squatter").unwrap()), "ensure_user squatter");
        drop(rds);
        hostile::admin(sandbox, "shop")
            .batch_execute("CREATE TABLE public.kept (id int); ALTER TABLE public.kept OWNER TO squatter")
            .unwrap();
        let report = ok(fleet::apply(&inventory, &pruning), "apply --prune with a squatter");
        let item = report.instances[0]
            .items
            .iter()
            .find(|i| i.name == "squatter")
            .expect("the squatter is listed");
        let ItemState::Blocked(e) = &item.state else {
            panic!("{:?}", item.state)
        };
        assert!(e.to_string().contains("owns objects in database \"shop\""), "{e}");
        assert!(report.has_errors());
        assert!(exists("pg_roles", "rolname", "squatter"));

        // blog_archive named under shop: a finding without --take-over, moved with it.
        let blog_without_archive = format!(
            "{}[[project.database]]\nname = \"blog\"\nowner = \"blog\"\n\n\
             [project.credentials]\nblog = {{ env_file = \"{dir}/blog.env\" }}\n\n",
            FleetFixture::project("blog", "acme", "acme-db")
        );
        let shop_with_archive = format!(
            "{}[[project.database]]\nname = \"shop\"\nowner = \"shop\"\n\n\
             [[project.database]]\nname = \"blog_archive\"\nowner = \"shop\"\n\n",
            FleetFixture::project("shop", "acme", "acme-db")
        );
        let moved = load(
            &f,
            &format!("{head}{shop_with_archive}{shop_credentials}{blog_without_archive}"),
        );
        let owner_of = |db: &str| -> String {
            hostile::admin(sandbox, "postgres")
                .query_one(
                    "SELECT pg_catalog.pg_get_userbyid(datdba)::text FROM pg_catalog.pg_database WHERE datname = $1",
                    &[&db],
                )
                .unwrap()
                .get(0)
        };
        let report = ok(fleet::apply(&moved, &FleetOptions::new()), "apply without --take-over");
        let item = report.instances[0]
            .items
            .iter()
            .find(|i| i.kind == ItemKind::Database && i.name == "blog_archive")
            .unwrap();
        let ItemState::Blocked(e) = &item.state else {
            panic!("{:?}", item.state)
        };
        assert_eq!(e.kind(), ErrorKind::PolicyViolation);
        assert!(e.hint().unwrap().contains("--take-over"), "{e}");
        assert!(report.has_errors());
        assert_eq!(owner_of("blog_archive"), "blog", "nothing moved");
        let blog = f.env_file_login("blog.env");
        login_as_application(&blog.clone().dbname("blog_archive")).expect("blog still reaches it");

        let report = ok(
            fleet::apply(&moved, &FleetOptions::new().take_over(true)),
            "apply --take-over",
        );
        let item = report.instances[0]
            .items
            .iter()
            .find(|i| i.kind == ItemKind::Database && i.name == "blog_archive")
            .unwrap();
        let ItemState::Applied(r) = &item.state else {
            panic!("{:?}", item.state)
        };
        assert!(
            r.steps.iter().any(|s| s.sql() == "ALTER DATABASE \"blog_archive\" OWNER TO \"shop\""),
            "{r}"
        );
        assert_eq!(owner_of("blog_archive"), "shop");
        let shop_login = f.env_file_login("shop.env");
        login_as_application(&shop_login.clone().dbname("blog_archive"))
            .expect("shop reaches the database it took over");
        let e = connect_error(&blog.clone().dbname("blog_archive"));
        assert_eq!(e.kind(), ErrorKind::Connection, "blog no longer does: {e}");
        // Master holds no membership left over from the move.
        let leftover: i64 = hostile::admin(sandbox, "postgres")
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_auth_members m
                   JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
                   JOIN pg_catalog.pg_roles u ON u.oid = m.member
                  WHERE u.rolname = $1 AND r.rolname IN ('shop', 'blog') AND NOT m.admin_option",
                &[&sandbox.master_user()],
            )
            .unwrap()
            .get(0);
        assert_eq!(leftover, 0);
        let again = ok(fleet::plan(&moved, &FleetOptions::new()), "plan after the move");
        expect_clean(&again, "plan after the move");
        assert!(again.is_in_sync(), "{again}");
    }
);

per_version!(
    fn the_bulk_inspection_plans_exactly_what_each_operation_would(sandbox) {
        let mut f = FleetFixture::new();
        let dir = f.dir().display().to_string();
        let text = format!(
            "{}{}{}[[project.database]]\nname = \"shop\"\nowner = \"shop\"\nextensions = {}\n\
             readers = [\"shop_ro\", \"shop_ro2\"]\n\n\
             [[project.database]]\nname = \"shop_logs\"\nowner = \"shop\"\nreaders = [\"shop_ro\"]\n\n\
             [project.credentials]\nshop = {{ env_file = \"{dir}/shop.env\" }}\n\
             shop_ro = {{ env_file = \"{dir}/shop_ro.env\" }}\n\
             shop_ro2 = {{ env_file = \"{dir}/shop_ro2.env\" }}\n",
            FleetFixture::client("acme", "111122223333"),
            f.instance("acme-db", "acme", sandbox),
            FleetFixture::project("shop", "acme", "acme-db"),
            extensions(sandbox),
        );
        let inventory = load(&f, &text);
        expect_clean(&ok(fleet::apply(&inventory, &FleetOptions::new()), "apply"), "apply");

        // Drift of every kind the planners look at.
        let mut admin = hostile::admin(sandbox, "postgres");
        admin
            .batch_execute(&format!(
                "GRANT CONNECT ON DATABASE shop TO PUBLIC;
                 REVOKE CONNECT ON DATABASE shop_logs FROM shop_ro;
                 ALTER ROLE shop_ro2 NOLOGIN;
                 GRANT shop TO {}",
                postgres_protocol::escape::escape_identifier(sandbox.master_user())
            ))
            .unwrap();
        let owner = f.env_file_login("shop.env");
        login_as_application(&owner)
            .unwrap()
            .batch_execute(
                "CREATE TABLE t (id serial); REVOKE SELECT ON t FROM shop_ro;
                 REVOKE SELECT ON SEQUENCE t_id_seq FROM shop_ro2",
            )
            .unwrap();

        let plan = ok(fleet::plan(&inventory, &FleetOptions::new()), "fleet plan");
        expect_clean(&plan, "fleet plan after drift");
        let mut rds = rds_pg_tests::unsecured_provisioner(sandbox);
        let project = &inventory.projects[0];
        let mut compared = 0;
        for item in &plan.instances[0].items {
            let (fleet_sql, fleet_notes) = match &item.state {
                ItemState::Planned(p) => (p.sql(), item.notes.clone()),
                ItemState::InSync => (Vec::new(), item.notes.clone()),
                other => panic!("{item}: {other:?}"),
            };
            let own = match item.kind {
                ItemKind::User => rds.plan_ensure_user(&UserSpec::new(&item.name).unwrap()),
                ItemKind::Database => {
                    let db = project
                        .databases
                        .iter()
                        .find(|d| d.name.as_str() == item.name)
                        .unwrap();
                    rds.plan_ensure_database(&db.spec().unwrap())
                }
                ItemKind::ReadOnlyGrant => rds.plan_grant_read_only(
                    &rds_pg_core::ReadOnlyGrant::new(item.database.as_deref().unwrap(), &item.name)
                        .unwrap(),
                ),
                _ => continue,
            };
            let own = ok(own, &format!("the operation's own plan of {item}"));
            assert_eq!(fleet_sql, own.sql(), "{item}");
            // The fleet adds where a new role's credentials go; the planners' notes are the same.
            let fleet_notes: Vec<String> = fleet_notes
                .into_iter()
                .filter(|n| !n.starts_with("its credentials"))
                .collect();
            assert_eq!(fleet_notes, own.notes, "{item}");
            compared += 1;
        }
        assert_eq!(compared, 3 + 2 + 3, "3 users, 2 databases, 3 grants");
        let drifted: Vec<String> = plan.instances[0]
            .items
            .iter()
            .filter(|i| i.state.differs())
            .map(|i| i.to_string())
            .collect();
        // (Master's membership of shop is a leftover before 16; on 16+ it was there already, with
        // ADMIN, and the GRANT changed nothing.)
        for expected in [
            "user \"shop_ro2\"",
            "database \"shop\"",
            "read-only grant of \"shop_ro\" on \"shop\"",
            "read-only grant of \"shop_ro2\" on \"shop\"",
            "read-only grant of \"shop_ro\" on \"shop_logs\"",
        ] {
            assert!(drifted.contains(&expected.to_owned()), "{expected}: {drifted:#?}");
        }
        drop(rds);
        expect_clean(&ok(fleet::apply(&inventory, &FleetOptions::new()), "repair"), "repair");
        let again = ok(fleet::plan(&inventory, &FleetOptions::new()), "plan after repair");
        assert!(again.is_in_sync(), "{again}");
        let mut ro = login_as_application(&f.env_file_login("shop_ro.env")).unwrap();
        ro.batch_execute("SELECT * FROM t").expect("shop_ro reads t again");
        login_as_application(&f.env_file_login("shop_ro2.env")).expect("shop_ro2 logs in again");
    }
);

per_version!(
    fn an_instance_whose_inventory_breaks_a_hosting_policy_is_not_touched(sandbox) {
        let mut f = FleetFixture::new();
        let dir = f.dir().display().to_string();
        // A staging project on a production instance.
        let staging = FleetFixture::project("shop", "acme", "acme-db")
            .replace("environment = \"production\"", "environment = \"staging\"");
        let text = format!(
            "{}{}{staging}[[project.database]]\nname = \"shop\"\nowner = \"shop\"\n\n\
             [project.credentials]\nshop = {{ env_file = \"{dir}/shop.env\" }}\n",
            FleetFixture::client("acme", "111122223333"),
            f.instance("acme-db", "acme", sandbox),
        );
        let inventory = load(&f, &text);
        let mark = log::mark(sandbox);
        for (what, report) in [
            ("fleet plan", fleet::plan(&inventory, &FleetOptions::new())),
            ("fleet apply", fleet::apply(&inventory, &FleetOptions::new())),
        ] {
            let report = ok(report, what);
            assert!(report.has_errors(), "{what}: {report}");
            let instance = &report.instances[0];
            let e = instance.error.as_ref().unwrap_or_else(|| panic!("{what}: {instance}"));
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{what}: {e}");
            assert!(e.to_string().contains("separate-staging-production"), "{what}: {e}");
            assert!(instance.items.is_empty(), "{what}: nothing planned: {instance}");
        }
        let statements = master_statements(sandbox, mark);
        assert!(statements.is_empty(), "master sent nothing: {statements:#?}");
        assert!(!f.path("shop.env").exists(), "no credentials delivered");
        let roles: i64 = hostile::admin(sandbox, "postgres")
            .query_one(
                "SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles WHERE rolname = 'shop'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(roles, 0, "no role created");
    }
);

/// Whether `role` is directly a member of `rds_iam` (read as the bootstrap superuser).
fn in_rds_iam(sandbox: &Sandbox, role: &str) -> bool {
    hostile::admin(sandbox, "postgres")
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                              JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                              JOIN pg_catalog.pg_roles r ON r.oid = m.member
                             WHERE g.rolname = 'rds_iam' AND r.rolname = $1)",
            &[&role],
        )
        .unwrap()
        .get(0)
}

/// The one user item of `report` named `name`.
fn user_item<'r>(report: &'r FleetReport, name: &str) -> &'r fleet::Item {
    report.instances[0]
        .items
        .iter()
        .find(|i| i.kind == ItemKind::User && i.name == name)
        .unwrap_or_else(|| panic!("no user {name:?}: {report}"))
}

/// Asserts that `fleet check` finds nothing (but the sandbox's TLS before 15: verified-tls).
#[track_caller]
fn assert_checks_clean(inventory: &Inventory) {
    let findings: Vec<String> = inventory
        .check(None)
        .findings
        .iter()
        .filter(|f| f.rule.id() != "verified-tls")
        .map(|f| f.to_string())
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");
}

/// Asserts that a second run changes nothing and costs one inspection query per database.
#[track_caller]
fn assert_apply_is_a_no_op(sandbox: &Sandbox, inventory: &Inventory, what: &str) {
    let mark = log::mark(sandbox);
    let again = ok(fleet::apply(inventory, &FleetOptions::new()), what);
    expect_clean(&again, what);
    assert!(again.is_in_sync(), "{what}: {again}");
    assert_eq!(again.instances[0].changes(), 0, "{what}: {again}");
    assert!(changes_since(sandbox, mark).is_empty(), "{what}");
    let statements = master_statements(sandbox, mark);
    for (database, sql) in &statements {
        assert_eq!(
            sql.len(),
            1,
            "{what}: one inspection query in {database}: {sql:#?}"
        );
    }
    let databases = if sandbox.major_version() < 15 { 3 } else { 2 };
    assert_eq!(statements.len(), databases, "{what}: {statements:#?}");
    assert_eq!(again.instances[0].inspection_queries, databases, "{what}");
}

per_version!(
    /// `[project.roles] shop = { iam = true }`: `fleet apply` creates the owner as an IAM user
    /// without a credentials entry (there is no password to lose), it logs in only with a token
    /// and owns its database, master keeps logging in; `iam = false` switches it back with a
    /// new password delivered to the sink the inventory then names.
    fn an_iam_owner_is_created_without_credentials_and_switched_back_with_them(sandbox) {
        let mut f = FleetFixture::new();
        let dir = f.dir().display().to_string();
        let head = format!(
            "{}{}{}[[project.database]]\nname = \"shop\"\nowner = \"shop\"\n\
             extensions = [\"hstore\"]\nreaders = [\"shop_ro\"]\n\n",
            FleetFixture::client("acme", "111122223333"),
            f.instance("acme-db", "acme", sandbox),
            FleetFixture::project("shop", "acme", "acme-db"),
        );
        let text = format!(
            "{head}[project.credentials]\nshop_ro = {{ env_file = \"{dir}/shop_ro.env\" }}\n\n\
             [project.roles]\nshop = {{ iam = true }}\n"
        );
        let inventory = load(&f, &text);
        assert_checks_clean(&inventory);

        // The plan creates it with no password, and is not blocked for want of a sink.
        let plan = ok(fleet::plan(&inventory, &FleetOptions::new()), "fleet plan");
        expect_clean(&plan, "fleet plan");
        let shop = user_item(&plan, "shop");
        let ItemState::Planned(p) = &shop.state else { panic!("{shop}") };
        assert_eq!(
            p.sql(),
            [
                "CREATE ROLE \"shop\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL",
                "GRANT rds_iam TO \"shop\"",
            ],
            "{p}"
        );
        assert!(shop.notes.iter().any(|n| n.contains("no password to deliver")), "{shop}");

        let report = ok(fleet::apply(&inventory, &FleetOptions::new()), "fleet apply");
        expect_clean(&report, "fleet apply");
        let ItemState::Applied(r) = &user_item(&report, "shop").state else {
            panic!("{report}")
        };
        assert!(r.credentials_delivered_to.is_none());
        assert!(in_rds_iam(sandbox, "shop"), "shop is an IAM user");
        let mut files: Vec<String> = std::fs::read_dir(f.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["fleet.toml", "master.pgpass", "shop_ro.env"], "nothing for shop");

        // Any password is refused: RDS accepts only IAM tokens for a member of rds_iam.
        let e = connect_error(
            &sandbox.options_for("shop").dbname("shop").password(Password::generate().unwrap()),
        );
        refused_login(&e, &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
        assert!(e.to_string().contains("pg_hba.conf rejects connection"), "{e}");
        // A token logs it in, and it owns its database (hstore made by the run).
        let token = ok(sandbox.iam_token("shop"), "iam_token");
        let mut c = ok(
            login_as_application(&sandbox.options_for("shop").dbname("shop").password(token.clone())),
            "token login",
        );
        c.batch_execute("CREATE TABLE t (h hstore); INSERT INTO t VALUES ('a=>1')")
            .expect("shop owns its database");
        drop(c);
        // Its reader logs in with what was delivered and reads.
        let mut ro = ok(login_as_application(&f.env_file_login("shop_ro.env")), "reader login");
        let n: i64 = ro.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        drop(ro);
        ok(connect(&sandbox.master_options()), "master logs in");
        assert!(in_rds_iam(sandbox, "shop"), "rds_iam restored after the database's operation");

        assert_apply_is_a_no_op(sandbox, &inventory, "second fleet apply");

        // Without a sink, iam = false is refused: its new password would be lost.
        let back = text.replace("shop = { iam = true }", "shop = { iam = false }");
        let refused = ok(fleet::plan(&load(&f, &back), &FleetOptions::new()), "plan back");
        let e = user_item(&refused, "shop").state.error().unwrap_or_else(|| panic!("{refused}"));
        assert!(e.to_string().contains("switches back to a password"), "{e}");
        assert!(in_rds_iam(sandbox, "shop"));

        // With one: REVOKE rds_iam and a new password, delivered there.
        let back = back.replace(
            "[project.credentials]\n",
            &format!("[project.credentials]\nshop = {{ env_file = \"{dir}/shop.env\" }}\n"),
        );
        let inventory = load(&f, &back);
        assert_checks_clean(&inventory);
        let plan = ok(fleet::plan(&inventory, &FleetOptions::new()), "plan back");
        expect_clean(&plan, "plan back");
        let ItemState::Planned(p) = &user_item(&plan, "shop").state else { panic!("{plan}") };
        assert_eq!(
            p.sql(),
            ["REVOKE rds_iam FROM \"shop\"", "ALTER ROLE \"shop\" PASSWORD '[redacted]'"],
            "{p}"
        );
        assert!(!f.path("shop.env").exists(), "a plan delivers nothing");
        let report = ok(fleet::apply(&inventory, &FleetOptions::new()), "fleet apply back");
        expect_clean(&report, "fleet apply back");
        let ItemState::Applied(r) = &user_item(&report, "shop").state else {
            panic!("{report}")
        };
        assert!(
            r.credentials_delivered_to.as_deref().is_some_and(|s| s.contains("shop.env")),
            "{r:?}"
        );
        assert!(!in_rds_iam(sandbox, "shop"));
        let shop = f.env_file_login("shop.env");
        let mut c = ok(login_as_application(&shop), "shop logs in with its new password");
        let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        drop(c);
        let e = connect_error(&sandbox.options_for("shop").dbname("shop").password(token));
        assert_password_refused(&e, "shop");
        ok(connect(&sandbox.master_options()), "master logs in");

        assert_apply_is_a_no_op(sandbox, &inventory, "fleet apply after the switch");
    }
);
