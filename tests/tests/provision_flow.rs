//! The seed's provisioning flow through the library, proven by logging in as the users.

use rds_pg_core::{
    connect, DatabaseSpec, ErrorKind, Extension, Password, Provisioner, ReadOnlyGrant, UserSpec,
};
use rds_pg_tests::{connect_error, expect_db_error, per_version, Sandbox};

/// Roles and databases as rdsadmin sees them (a dry run must leave these unchanged).
fn catalog(sandbox: &Sandbox) -> String {
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    let row = admin
        .query_one(
            "SELECT (SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles),
                    (SELECT string_agg(m.roleid::regrole || '>' || m.member::regrole, ',' ORDER BY 1) FROM pg_auth_members m),
                    (SELECT string_agg(datname || ':' || datdba::regrole || ':' || coalesce(datacl::text, ''), ',' ORDER BY datname)
                       FROM pg_database)",
            &[],
        )
        .unwrap();
    format!(
        "{:?}|{:?}|{:?}",
        row.get::<_, Option<String>>(0),
        row.get::<_, Option<String>>(1),
        row.get::<_, Option<String>>(2)
    )
}

/// Statements other than SELECT the server logged, after `from` bytes of the log.
fn changing_statements(sandbox: &Sandbox, from: usize) -> Vec<String> {
    let log = sandbox.log_text().unwrap();
    log[from..]
        .lines()
        .filter_map(|l| {
            l.split_once("statement: ")
                .map(|(_, s)| s.trim().to_owned())
        })
        .filter(|s| !s.to_ascii_uppercase().starts_with("SELECT"))
        .collect()
}

per_version!(
    fn the_seeds_flow_works_for_the_users_and_a_second_run_changes_nothing(sandbox) {
        let mut extensions = vec![Extension::Hstore, Extension::Citext];
        if sandbox.has_postgis() {
            extensions.push(Extension::Postgis);
        }
        let project = UserSpec::new("project_a").unwrap();
        let readonly = UserSpec::new("project_a_ro").unwrap();
        let database = DatabaseSpec::new("project_a_db", "project_a").unwrap().extensions(extensions.clone());
        let grant = ReadOnlyGrant::new("project_a_db", "project_a_ro").unwrap();

        let mut p = Provisioner::connect(&sandbox.master_options()).unwrap();
        // A dry run of everything changes nothing and shows no secret.
        let before = catalog(sandbox);
        let plan = p.plan_ensure_user(&project).unwrap();
        assert!(!plan.is_empty());
        assert!(plan.sql().iter().all(|s| !s.contains("SCRAM")), "{plan}");
        assert_eq!(catalog(sandbox), before, "plan_ensure_user changed the catalog");

        let report = p.ensure_user(&project).unwrap();
        assert!(report.changed);
        let project_pw = report.generated_password.expect("a generated password, returned once");
        let plan = p.plan_ensure_database(&database).unwrap();
        assert!(!plan.is_empty());
        assert_eq!(plan.temporary_grants().len(), 1, "{plan}");
        let before = catalog(sandbox);
        let _ = p.plan_ensure_database(&database).unwrap();
        assert_eq!(catalog(sandbox), before, "plan_ensure_database changed the catalog");

        let report = p.ensure_database(&database).unwrap();
        assert!(report.changed);
        assert_eq!(report.temporary_grants.len(), 1);
        let ro_pw = p.ensure_user(&readonly).unwrap().generated_password.unwrap();

        // The project user works in its database: tables, a sequence, its extensions.
        let as_project_opts = sandbox.options_for("project_a").dbname("project_a_db").password(project_pw.clone());
        let mut as_project = connect(&as_project_opts).unwrap();
        as_project
            .batch_execute(
                "CREATE TABLE before_grant (id serial PRIMARY KEY, tags hstore, email citext);
                 INSERT INTO before_grant (tags, email) VALUES ('a=>1', 'A@Example.com');",
            )
            .unwrap();
        let owner: String = as_project
            .query_one("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'hstore'", &[])
            .unwrap()
            .get(0);
        assert_eq!(owner, "project_a", "a trusted extension is owned by the database owner");
        if sandbox.has_postgis() {
            as_project
                .batch_execute(
                    "ALTER TABLE spatial_ref_sys ADD COLUMN note text;
                     CREATE TABLE places (id serial, geom geometry(Point, 4326));
                     INSERT INTO places (geom) VALUES (ST_SetSRID(ST_MakePoint(1, 2), 4326));",
                )
                .unwrap();
        }
        // It cannot create databases or roles.
        let e = expect_db_error(as_project.batch_execute("CREATE DATABASE other"), "createdb");
        assert_eq!(e.message(), "permission denied to create database");
        let e = expect_db_error(as_project.batch_execute("CREATE ROLE other"), "createrole");
        assert_eq!(e.message(), "permission denied to create role");

        let log_mark = sandbox.log_text().unwrap().len();
        p.grant_read_only(&grant).unwrap();
        let after_grant = sandbox.log_text().unwrap();
        assert!(
            !after_grant[log_mark..].contains("no privileges were granted"),
            "grants are made as the owner, without warnings"
        );
        as_project
            .batch_execute("CREATE TABLE after_grant (n int); INSERT INTO after_grant VALUES (7); CREATE SEQUENCE counter; SELECT nextval('counter');")
            .unwrap();

        // The read-only user reads old and new tables and a sequence, and cannot write.
        let ro_opts = sandbox.options_for("project_a_ro").dbname("project_a_db").password(ro_pw.clone());
        let mut as_ro = connect(&ro_opts).unwrap();
        let n: i64 = as_ro.query_one("SELECT count(*) FROM before_grant", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        let n: i32 = as_ro.query_one("SELECT n FROM after_grant", &[]).unwrap().get(0);
        assert_eq!(n, 7);
        let v: i64 = as_ro.query_one("SELECT last_value FROM counter", &[]).unwrap().get(0);
        assert_eq!(v, 1);
        let v: i64 = as_ro.query_one("SELECT last_value FROM before_grant_id_seq", &[]).unwrap().get(0);
        assert_eq!(v, 1);
        let e = expect_db_error(as_ro.batch_execute("INSERT INTO before_grant (tags) VALUES (NULL)"), "ro insert");
        assert_eq!(e.message(), "permission denied for table before_grant");

        // Every operation again, from a new connection as a later deploy would: no change, and
        // no statement but the inspections.
        let mut p = Provisioner::connect(&sandbox.master_options()).unwrap();
        let log_mark = sandbox.log_text().unwrap().len();
        for report in [
            p.ensure_user(&project).unwrap(),
            p.ensure_database(&database).unwrap(),
            p.ensure_extensions(&database.name, &extensions).unwrap(),
            p.ensure_user(&readonly).unwrap(),
            p.grant_read_only(&grant).unwrap(),
        ] {
            assert!(!report.changed && report.steps.is_empty(), "{report:?}");
            assert!(report.generated_password.is_none());
        }
        assert_eq!(changing_statements(sandbox, log_mark), Vec::<String>::new());

        // Master holds no leftover membership of the project user.
        let mut master = sandbox.connect_master().unwrap();
        let usage: bool = master.query_one("SELECT pg_has_role(current_user, 'project_a', 'USAGE')", &[]).unwrap().get(0);
        assert!(!usage, "the temporary membership was revoked");

        // Another project's users cannot get into this database; nor can an unrelated role.
        let b = p.ensure_user(&UserSpec::new("project_b").unwrap()).unwrap().generated_password.unwrap();
        p.ensure_database(&DatabaseSpec::new("project_b_db", "project_b").unwrap()).unwrap();
        let err = connect_error(&sandbox.options_for("project_b").dbname("project_a_db").password(b.clone()));
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.to_string().contains("permission denied for database"), "{err}");
        let err = connect_error(&as_project_opts.clone().dbname("project_b_db"));
        assert!(err.to_string().contains("permission denied for database"), "{err}");
        connect(&sandbox.options_for("project_b").dbname("project_b_db").password(b)).unwrap();

        // revoke_read_only takes it all back.
        let report = p.revoke_read_only(&grant).unwrap();
        assert!(report.changed);
        let err = connect_error(&ro_opts);
        assert!(err.to_string().contains("permission denied for database"), "{err}");
        assert!(!p.revoke_read_only(&grant).unwrap().changed);

        // No cleartext password ever reached the server's log.
        let log = sandbox.log_text().unwrap();
        for pw in [&project_pw, &ro_pw] {
            assert!(!log.contains(pw.expose()));
        }
    }
);

per_version!(
    fn bad_input_is_refused_before_any_sql(sandbox) {
        for bad in ["", "a\0b", "pg_app", "postgres", "rdsadmin", "rds_app", "public", "template1"] {
            let err = UserSpec::new(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
            let err = DatabaseSpec::new(bad, "owner").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
        }
        assert_eq!(UserSpec::new("x".repeat(64)).unwrap_err().kind(), ErrorKind::InvalidName);

        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        admin.batch_execute("CREATE ROLE su SUPERUSER LOGIN").unwrap();
        let before = catalog(sandbox);
        let log_mark = sandbox.log_text().unwrap().len();
        let mut p = Provisioner::connect(&sandbox.master_options()).unwrap();
        let err = p.ensure_user(&UserSpec::new(sandbox.master_user()).unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PolicyViolation, "{err}");
        let err = p.ensure_user(&UserSpec::new("su").unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PolicyViolation, "{err}");
        let err = p.ensure_database(&DatabaseSpec::new("sudb", "su").unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PolicyViolation, "{err}");
        let err = p.ensure_database(&DatabaseSpec::new("nodb", "nobody_here").unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        // An extension the server does not have.
        p.ensure_user(&UserSpec::new("app").unwrap().password("pw")).unwrap();
        let before_ext = catalog(sandbox);
        let spec = DatabaseSpec::new("appdb", "app").unwrap().extension(Extension::Other("no_such_ext".into()));
        let err = p.ensure_database(&spec).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert_eq!(catalog(sandbox), before_ext);
        let changes = changing_statements(sandbox, log_mark);
        assert_eq!(changes.len(), 1, "only the CREATE ROLE of app: {changes:?}");
        assert!(before != catalog(sandbox));
    }
);

per_version!(
    fn awkward_names_and_passwords_work(sandbox) {
        let mut p = Provisioner::connect(&sandbox.master_options()).unwrap();
        for (user, db, password) in [
            ("Weird \"Name\"", "My Project DB", "it's a \\ back$$slash"),
            ("ünïcødé_用户", "база_данных", "pässwörd-密码-$$'\\"),
        ] {
            let pw = Password::new(password);
            p.ensure_user(&UserSpec::new(user).unwrap().password(pw.clone())).unwrap();
            p.ensure_database(&DatabaseSpec::new(db, user).unwrap().extension(Extension::Hstore)).unwrap();
            let mut c = connect(&sandbox.options_for(user).dbname(db).password(pw.clone())).unwrap();
            c.batch_execute("CREATE TABLE t (h hstore); INSERT INTO t VALUES ('k=>v')").unwrap();
            let who: String = c.query_one("SELECT current_user::text", &[]).unwrap().get(0);
            assert_eq!(who, user);
            assert!(!sandbox.log_text().unwrap().contains(password));
            assert!(!p.ensure_database(&DatabaseSpec::new(db, user).unwrap()).unwrap().changed);
        }
    }
);

per_version!(
    fn two_threads_provisioning_one_project_agree(sandbox) {
        let pw = Password::new("same-password-for-both");
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let pw = pw.clone();
                    s.spawn(move || {
                        let mut p = Provisioner::connect(&sandbox.master_options())?;
                        p.ensure_user(&UserSpec::new("twin").unwrap().password(pw))?;
                        p.ensure_database(&DatabaseSpec::new("twin_db", "twin").unwrap().extension(Extension::Hstore))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let changed = results.iter().filter(|r| matches!(r, Ok(r) if r.changed)).count();
        for r in &results {
            assert!(r.is_ok(), "{r:?}");
        }
        assert!(changed >= 1);
        let mut c = connect(&sandbox.options_for("twin").dbname("twin_db").password(pw)).unwrap();
        let owner: String = c
            .query_one("SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()", &[])
            .unwrap()
            .get(0);
        assert_eq!(owner, "twin");
        c.batch_execute("CREATE TABLE t (h hstore)").unwrap();
    }
);
