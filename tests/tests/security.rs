//! Master never runs a project's code: templates that would copy a project's objects into other
//! projects' databases are refused, `secure_instance` closes schema `public` to PUBLIC, extension
//! scripts never run next to names a project planted, privileged roles are never project roles,
//! and every rds-pg session keeps its pinned `search_path` whatever a database's owner sets.

use rds_pg_core::{
    connect, DatabaseName, DatabaseSpec, ErrorKind, Extension, Password, ReadOnlyGrant, UserSpec,
};
use rds_pg_tests::{
    changes_since, err, log_mark, login_as_application, ok, per_version, provisioner,
    unsecured_provisioner, Sandbox,
};

fn user(sandbox: &Sandbox, p: &mut rds_pg_core::Provisioner, name: &str) -> Password {
    let password = Password::new(format!("{name}-Secret-pw-1"));
    ok(
        p.ensure_user(&UserSpec::new(name).unwrap().password(password.clone())),
        &format!("ensure_user({name})"),
    );
    let _ = sandbox;
    password
}

fn as_user(sandbox: &Sandbox, name: &str, password: &Password, db: &str) -> postgres::Client {
    ok(
        login_as_application(
            &sandbox
                .options_for(name)
                .password(password.clone())
                .dbname(db),
        ),
        &format!("log in as {name} to {db}"),
    )
}

/// How many objects `role` owns in database `db` (read from the shared catalog).
fn objects_owned_in(sandbox: &Sandbox, role: &str, db: &str) -> i64 {
    sandbox
        .connect_rdsadmin("postgres")
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_shdepend s
              WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = $2)
                AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)
                AND s.deptype = 'o'",
            &[&role, &db],
        )
        .unwrap()
        .get(0)
}

per_version!(
    fn a_template_that_would_copy_a_projects_objects_is_refused(sandbox) {
        let major = sandbox.major_version();
        let mut p = unsecured_provisioner(sandbox);
        user(sandbox, &mut p, "victim_owner");
        let squatter_pw = user(sandbox, &mut p, "squatter");
        let spec = DatabaseSpec::new("victim", "victim_owner").unwrap().template("template1").unwrap();

        if major <= 14 {
            // As RDS leaves it: PUBLIC may create in template1.public, so anything could be
            // planted between the check and CREATE DATABASE.
            let mark = log_mark(sandbox);
            let e = err(p.ensure_database(&spec), "ensure_database from an open template1");
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
            assert!(e.to_string().contains("PUBLIC may create objects in schema \"public\""), "{e}");
            assert!(e.hint().unwrap().contains("REVOKE CREATE ON SCHEMA \"public\" FROM PUBLIC"), "{e}");
            assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
        } else {
            // 15+: nobody but master may create there; an operator's grant opens it.
            let e = as_user(sandbox, "squatter", &squatter_pw, "template1")
                .batch_execute("CREATE TABLE public.loot (x int)")
                .unwrap_err();
            assert!(db_message(&e).contains("permission denied"), "{e:?}");
            sandbox
                .connect_rdsadmin("template1")
                .unwrap()
                .batch_execute("GRANT CREATE ON SCHEMA public TO squatter")
                .unwrap();
        }

        // The squatter plants a shadowing function and a table in template1.
        as_user(sandbox, "squatter", &squatter_pw, "template1")
            .batch_execute(
                "CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE sql AS 'SELECT $1';
                 CREATE TABLE public.loot (x int)",
            )
            .unwrap();
        let mark = log_mark(sandbox);
        let e = err(p.ensure_database(&spec), "ensure_database from a planted template1");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let message = e.to_string();
        assert!(message.contains("function public.format(text,name,name) (owner \"squatter\")"), "{message}");
        assert!(message.contains("table public.loot (owner \"squatter\")"), "{message}");
        let fix = e.hint().unwrap().to_owned();
        assert!(fix.contains("DROP FUNCTION IF EXISTS public.format(pg_catalog.text,pg_catalog.name,pg_catalog.name) CASCADE"), "{fix}");
        assert!(fix.contains("DROP TABLE IF EXISTS public.loot CASCADE"), "{fix}");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new(), "refused before any change");
        assert!(!database_exists(sandbox, "victim"));

        // The operator runs the fix as master in template1; then the database is created clean.
        ok(
            login_as_application(&sandbox.master_options().dbname("template1"))
                .and_then(|mut c| c.batch_execute(&fix).map_err(rds_pg_core::Error::from)),
            "the fix, as master in template1",
        );
        ok(p.ensure_database(&spec), "ensure_database after the fix");
        assert_eq!(objects_owned_in(sandbox, "squatter", "victim"), 0);
        // And template1 stays closed: the squatter cannot plant again (on ≤14 the fix revoked
        // PUBLIC's CREATE, on 15+ its own grant).
        if major > 14 {
            sandbox
                .connect_rdsadmin("template1")
                .unwrap()
                .batch_execute("REVOKE CREATE ON SCHEMA public FROM squatter")
                .unwrap();
        }
        let e = as_user(sandbox, "squatter", &squatter_pw, "template1")
            .batch_execute("CREATE TABLE public.loot2 (x int)")
            .unwrap_err();
        assert!(db_message(&e).contains("permission denied"), "{e:?}");
    }
);

fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

fn database_exists(sandbox: &Sandbox, name: &str) -> bool {
    sandbox
        .connect_master()
        .unwrap()
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .unwrap()
        .is_some()
}

per_version!(
    fn secure_instance_closes_schema_public_to_public(sandbox) {
        let major = sandbox.major_version();
        let mut p = unsecured_provisioner(sandbox);
        let pw = user(sandbox, &mut p, "plain");
        let plan = ok(p.plan_secure_instance(), "plan_secure_instance");
        if major >= 15 {
            assert!(plan.is_empty(), "{plan}");
            return;
        }
        let places: Vec<&str> = plan.steps.iter().map(|s| s.database_label()).collect();
        assert_eq!(places, ["(maintenance)", "template1"], "{plan}");
        assert!(plan.sql().iter().all(|s| *s == "REVOKE CREATE ON SCHEMA public FROM PUBLIC"));
        // Before: any login role may create in postgres.public.
        as_user(sandbox, "plain", &pw, "postgres")
            .batch_execute("CREATE TABLE public.mine (x int); DROP TABLE public.mine")
            .unwrap();
        let report = ok(p.secure_instance(), "secure_instance");
        assert!(report.changed);
        for db in ["postgres", "template1"] {
            let e = as_user(sandbox, "plain", &pw, db)
                .batch_execute("CREATE TABLE public.mine (x int)")
                .unwrap_err();
            assert!(db_message(&e).contains("permission denied"), "{db}: {e:?}");
        }
        let mark = log_mark(sandbox);
        let again = ok(p.secure_instance(), "secure_instance again");
        assert!(!again.changed);
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
        // A new database from template1 can be created straight away.
        let owner_pw = user(sandbox, &mut p, "after_owner");
        ok(
            p.ensure_database(&DatabaseSpec::new("after_db", "after_owner").unwrap()),
            "ensure_database after securing",
        );
        as_user(sandbox, "after_owner", &owner_pw, "after_db")
            .batch_execute("CREATE TABLE t (x int)")
            .unwrap();
    }
);

per_version!(
    fn extension_scripts_never_run_next_to_names_the_owner_planted(sandbox) {
        let mut p = provisioner(sandbox);
        let owner_pw = user(sandbox, &mut p, "planter");
        ok(
            p.ensure_database(&DatabaseSpec::new("planted", "planter").unwrap()),
            "ensure_database",
        );
        as_user(sandbox, "planter", &owner_pw, "planted")
            .batch_execute(
                "CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE sql AS 'SELECT $1';
                 CREATE FUNCTION public.eq(name, name) RETURNS bool LANGUAGE sql AS 'SELECT true';
                 CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.eq)",
            )
            .unwrap();
        let db = DatabaseName::new("planted").unwrap();

        // Strict: even a trusted extension (its script runs as the bootstrap superuser) is refused.
        let strict = DatabaseSpec::new("planted", "planter").unwrap().extension(Extension::Citext).strict(true);
        let mark = log_mark(sandbox);
        let e = err(p.ensure_database(&strict), "strict ensure_database");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        assert!(e.to_string().contains("function public.format(text,name,name)"), "{e}");
        assert!(e.to_string().contains("operator public.=(name,name)"), "{e}");
        assert!(e.hint().unwrap().contains("DROP FUNCTION IF EXISTS public.format(pg_catalog.text,pg_catalog.name,pg_catalog.name) CASCADE"), "{e}");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());

        // Not strict: a trusted extension is created as the owner, and the plan says what it saw.
        let report = ok(p.ensure_extensions(&db, &[Extension::Hstore]), "ensure_extensions(hstore)");
        assert!(report.changed);
        assert!(
            report.notes.iter().any(|n| n.contains("function public.format(text,name,name)")),
            "{:?}",
            report.notes
        );
        let owner: String = as_user(sandbox, "planter", &owner_pw, "planted")
            .query_one(
                "SELECT r.rolname::text FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner
                  WHERE e.extname = 'hstore'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(owner, "planter");

        if !sandbox.has_postgis() {
            eprintln!("no PostGIS on PostgreSQL {}: the untrusted case skipped", sandbox.major_version());
            return;
        }
        // Untrusted: PostGIS's script would run as master (the superuser, through the
        // whitelist): refused, whatever strict says.
        let mark = log_mark(sandbox);
        let e = err(p.ensure_extensions(&db, &[Extension::Postgis]), "ensure_extensions(postgis)");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        assert!(e.to_string().contains("untrusted extension postgis"), "{e}");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
        // Once the owner removed them, PostGIS goes in.
        as_user(sandbox, "planter", &owner_pw, "planted")
            .batch_execute(e.hint().unwrap())
            .unwrap();
        ok(p.ensure_extensions(&db, &[Extension::Postgis]), "ensure_extensions(postgis) once clean");
    }
);

per_version!(
    fn roles_with_more_than_a_projects_privileges_are_never_project_roles(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = user(sandbox, &mut p, "climber");
        user(sandbox, &mut p, "owner_ok");
        ok(p.ensure_database(&DatabaseSpec::new("climb_db", "owner_ok").unwrap()), "ensure_database");
        let master = sandbox.master_user().to_owned();
        let cases = [
            // Through a chain: climber → middle → pg_monitor.
            (
                "CREATE ROLE middle NOLOGIN; GRANT pg_monitor TO middle; GRANT middle TO climber".to_owned(),
                "member of pg_monitor",
                "REVOKE middle FROM climber; DROP ROLE middle".to_owned(),
            ),
            (format!("GRANT {master} TO climber"), "member of master", format!("REVOKE {master} FROM climber")),
            ("ALTER ROLE climber CREATEDB".to_owned(), "CREATEDB", "ALTER ROLE climber NOCREATEDB".to_owned()),
        ];
        for (grant, what, undo) in cases {
            if what == "member of master" && sandbox.major_version() >= 16 {
                // 16+: master is a member of every role it created, so PostgreSQL refuses the
                // circular grant itself.
                continue;
            }
            sandbox.connect_rdsadmin("postgres").unwrap().batch_execute(&grant).unwrap();
            let mark = log_mark(sandbox);
            let refusals = [
                err(p.ensure_user(&UserSpec::new("climber").unwrap()), "ensure_user"),
                err(
                    p.ensure_database(&DatabaseSpec::new("climb_own", "climber").unwrap()),
                    "ensure_database owned by it",
                ),
                err(p.grant_read_only(&ReadOnlyGrant::new("climb_db", "climber").unwrap()), "grant_read_only to it"),
                err(p.rotate_password(&rds_pg_core::RoleName::new("climber").unwrap(), None), "rotate_password"),
            ];
            for e in refusals {
                assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{what}: {e}");
                assert!(e.to_string().contains(what), "{what}: {e}");
            }
            assert_eq!(changes_since(sandbox, mark), Vec::<String>::new(), "{what}");
            sandbox.connect_rdsadmin("postgres").unwrap().batch_execute(&undo).unwrap();
        }
        // A plain project role again: everything works, and it still logs in with its password.
        ok(p.ensure_user(&UserSpec::new("climber").unwrap()), "ensure_user once plain");
        ok(p.grant_read_only(&ReadOnlyGrant::new("climb_db", "climber").unwrap()), "grant_read_only once plain");
        as_user(sandbox, "climber", &pw, "climb_db");
    }
);

per_version!(
    fn rds_pg_sessions_keep_their_search_path_whatever_the_owner_sets(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = user(sandbox, &mut p, "pathsetter");
        ok(p.ensure_database(&DatabaseSpec::new("path_db", "pathsetter").unwrap()), "ensure_database");
        as_user(sandbox, "pathsetter", &pw, "path_db")
            .batch_execute(
                "ALTER DATABASE path_db SET search_path = public, pg_catalog;
                 ALTER ROLE pathsetter SET search_path = public, pg_catalog",
            )
            .unwrap();
        for options in [
            sandbox.master_options().dbname("path_db"),
            sandbox.options_for("pathsetter").password(pw.clone()).dbname("path_db"),
        ] {
            let path: String = connect(&options).unwrap().query_one("SHOW search_path", &[]).unwrap().get(0);
            assert_eq!(path, "pg_catalog,pg_temp", "{}", options.target());
        }
        // An application's own session gets what the owner set.
        let path: String = postgres_session_path(sandbox, &pw);
        assert_eq!(path, "public, pg_catalog");
    }
);

/// The search_path of a plain session (no startup options), as an application's driver opens it.
fn postgres_session_path(sandbox: &Sandbox, password: &Password) -> String {
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(sandbox.port())
        .user("pathsetter")
        .password(password.expose())
        .dbname("path_db");
    let options = sandbox.options_for("pathsetter").password(password.clone());
    let connector =
        rds_pg_core::tls::make_connector(options.get_sslmode(), options.get_sslrootcert()).unwrap();
    config.ssl_mode(if sandbox.major_version() >= 15 {
        postgres::config::SslMode::Require
    } else {
        postgres::config::SslMode::Prefer
    });
    config
        .connect(connector)
        .unwrap()
        .query_one("SHOW search_path", &[])
        .unwrap()
        .get(0)
}
