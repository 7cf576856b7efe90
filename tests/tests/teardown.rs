//! Teardown (issue 4): the seed's "Drop database", "Drop user" and password rotation done by
//! [`Provisioner`] on every version — proven by what users notice (sessions refused or ended,
//! logins failing or working) and by the catalog being clean (`pg_shdepend`) in every database.

use postgres::Client;
use rds_pg_core::{
    DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions, ErrorKind, Password,
    Provisioner, ReadOnlyGrant, Report, RoleName, SqlState, StepKind, UserSpec,
};
use rds_pg_tests::{
    assert_password_refused, changes_since, connect_error, err, expect_db_error, log_mark,
    login_as_application, ok, per_version, provisioner, Sandbox,
};

fn db(name: &str) -> DatabaseName {
    DatabaseName::new(name).unwrap()
}

fn role(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

/// Creates project user `name` with a known password.
fn user(p: &mut Provisioner, name: &str) -> Password {
    let password = Password::generate().unwrap();
    ok(
        p.ensure_user(&UserSpec::new(name).unwrap().password(password.clone())),
        "ensure_user",
    );
    password
}

/// Creates database `name` owned by `owner`.
fn database(p: &mut Provisioner, name: &str, owner: &str) {
    ok(
        p.ensure_database(&DatabaseSpec::new(name, owner).unwrap()),
        "ensure_database",
    );
}

fn login(sandbox: &Sandbox, user: &str, dbname: &str, password: &Password) -> Client {
    login_as_application(
        &sandbox
            .options_for(user)
            .dbname(dbname)
            .password(password.clone()),
    )
    .unwrap_or_else(|e| panic!("{user:?} cannot log in to {dbname:?}: {e}"))
}

fn database_exists(sandbox: &Sandbox, name: &str) -> bool {
    let mut master = sandbox.connect_master().unwrap();
    master
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .unwrap()
        .get(0)
}

fn role_oid(sandbox: &Sandbox, name: &str) -> Option<u32> {
    let mut master = sandbox.connect_master().unwrap();
    master
        .query_opt("SELECT oid FROM pg_roles WHERE rolname = $1", &[&name])
        .unwrap()
        .map(|r| r.get(0))
}

/// Rows of `pg_shdepend` (shared, so any database shows them) and `pg_auth_members` that still
/// mention role `oid`, read as rdsadmin.
fn leftovers(sandbox: &Sandbox, oid: u32) -> Vec<String> {
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    admin
        .query(
            "SELECT format('shdepend db=%s class=%s obj=%s type=%s', dbid, classid::regclass, objid, deptype)
               FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass AND refobjid = $1
             UNION ALL
             SELECT format('membership %s/%s', roleid, member) FROM pg_auth_members
              WHERE roleid = $1 OR member = $1",
            &[&oid],
        )
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

/// ACL entries naming role `oid` as grantee in database `dbname` (relations, schemas, default
/// privileges), read as rdsadmin.
fn acl_mentions(sandbox: &Sandbox, dbname: &str, oid: u32) -> i64 {
    let mut admin = sandbox.connect_rdsadmin(dbname).unwrap();
    admin
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class, aclexplode(relacl) a WHERE a.grantee = $1)
                  + (SELECT count(*) FROM pg_namespace, aclexplode(nspacl) a WHERE a.grantee = $1)
                  + (SELECT count(*) FROM pg_default_acl, aclexplode(defaclacl) a WHERE a.grantee = $1)
                  + (SELECT count(*) FROM pg_database, aclexplode(datacl) a WHERE a.grantee = $1)",
            &[&oid],
        )
        .unwrap()
        .get(0)
}

fn assert_unchanged(report: &Report, what: &str) {
    assert!(!report.changed, "{what}: reports a change: {report:#?}");
    assert!(report.steps.is_empty(), "{what}: ran steps: {report:#?}");
}

/// Asserts that master keeps no membership of `name` giving its privileges or SET ROLE.
fn assert_no_membership(sandbox: &Sandbox, name: &str) {
    let set = if sandbox.major_version() >= 16 {
        "SET"
    } else {
        "MEMBER"
    };
    let mut master = sandbox.connect_master().unwrap();
    let row = master
        .query_opt(
            &format!(
                "SELECT pg_has_role(current_user, oid, 'USAGE'), pg_has_role(current_user, oid, '{set}')
                   FROM pg_roles WHERE rolname = $1"
            ),
            &[&name],
        )
        .unwrap();
    if let Some(row) = row {
        let (usage, can_set): (bool, bool) = (row.get(0), row.get(1));
        assert!(
            !usage && !can_set,
            "master kept a membership of {name:?} (usage {usage}, set {can_set})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// drop_database
// ---------------------------------------------------------------------------------------------

per_version!(
    fn a_database_with_a_session_is_refused_without_force_and_dropped_with_it(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = user(&mut p, "shop");
        database(&mut p, "shop_db", "shop");
        let mut session = login(sandbox, "shop", "shop_db", &pw);
        session
            .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
            .unwrap();

        // The seed's way: master alters the owner to itself, which RDS refuses.
        let mut master = sandbox.connect_master().unwrap();
        let denied = expect_db_error(
            master.batch_execute("ALTER DATABASE shop_db OWNER TO CURRENT_USER"),
            "the seed's ALTER DATABASE … OWNER TO master",
        );
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{}", denied.message());

        // Refused while shop is connected: a typed error naming the session, nothing changed.
        let mark = log_mark(sandbox);
        let e = err(
            p.drop_database(&db("shop_db"), &DropDatabaseOptions::new()),
            "drop_database with a session connected",
        );
        assert_eq!(e.kind(), ErrorKind::StillInUse, "{e}");
        assert!(e.to_string().contains("shop (pid"), "names who is connected: {e}");
        assert!(e.to_string().contains("force"), "says how to proceed: {e}");
        assert!(changes_since(sandbox, mark).is_empty(), "refused before any change");
        assert!(database_exists(sandbox, "shop_db"));
        let one: i32 = session.query_one("SELECT id FROM t", &[]).unwrap().get(0);
        assert_eq!(one, 1, "the session keeps working");

        // The dry run with force names the session it would end and changes nothing.
        let plan = ok(
            p.plan_drop_database(&db("shop_db"), &DropDatabaseOptions::new().force(true)),
            "plan_drop_database(force)",
        );
        assert!(plan.sql().iter().any(|s| s.contains("WITH (FORCE)")), "{plan}");
        assert!(plan.to_string().contains("terminates 1 session"), "{plan}");
        assert!(database_exists(sandbox, "shop_db"), "a plan changes nothing");

        // With force: the session is ended and the database is gone.
        let report = ok(
            p.drop_database(&db("shop_db"), &DropDatabaseOptions::new().force(true)),
            "drop_database(force)",
        );
        assert!(report.changed);
        assert!(!database_exists(sandbox, "shop_db"));
        let ended = session
            .query_one("SELECT 1", &[])
            .expect_err("the forced drop terminated the user's session");
        assert!(
            ended.is_closed() || ended.code() == Some(&SqlState::ADMIN_SHUTDOWN),
            "the session was ended by the server (57P01), not refused otherwise: {ended}"
        );
        assert_no_membership(sandbox, "shop");
        if report.steps.iter().any(|s| s.kind() == StepKind::TemporaryGrant) {
            assert_eq!(report.temporary_grants, vec![role("shop")], "{report:#?}");
        }

        // Second run: no change, from this or a new provisioner.
        assert_unchanged(
            &ok(p.drop_database(&db("shop_db"), &DropDatabaseOptions::new()), "again"),
            "drop_database again",
        );
        let mut fresh = provisioner(sandbox);
        let mark = log_mark(sandbox);
        assert_unchanged(
            &ok(fresh.drop_database(&db("shop_db"), &DropDatabaseOptions::new()), "fresh"),
            "drop_database from a new provisioner",
        );
        assert!(changes_since(sandbox, mark).is_empty());
    }
);

per_version!(
    fn a_database_without_sessions_is_dropped_and_the_provisioner_closes_its_own_connection(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = user(&mut p, "blog");
        // ensure_database leaves the provisioner connected to blog_db (it looked inside).
        database(&mut p, "blog_db", "blog");
        ok(
            p.grant_read_only(&ReadOnlyGrant::new("blog_db", "blog").unwrap()),
            "a second operation inside blog_db",
        );
        // A client that has just disconnected (a deploy step that finished) does not make the
        // database busy, although its backend may still be exiting.
        let mut client = login(sandbox, "blog", "blog_db", &pw);
        client.batch_execute("CREATE TABLE posts (id int)").unwrap();
        drop(client);
        let report = ok(
            p.drop_database(&db("blog_db"), &DropDatabaseOptions::new()),
            "drop_database while the provisioner itself had a connection there",
        );
        assert!(report.changed);
        assert!(!database_exists(sandbox, "blog_db"));
        assert!(
            report.steps.iter().all(|s| !s.sql().contains("FORCE")),
            "no force needed: {report:#?}"
        );
        // Recreating it afterwards works (the provisioner reconnects on demand).
        database(&mut p, "blog_db", "blog");
        assert!(database_exists(sandbox, "blog_db"));
    }
);

per_version!(
    fn protected_databases_are_refused_before_any_sql(sandbox) {
        let mut p = provisioner(sandbox);
        let mark = log_mark(sandbox);
        for name in ["postgres", "template0", "template1", "rdsadmin"] {
            let e = err(
                p.drop_database(&db(name), &DropDatabaseOptions::new().force(true)),
                name,
            );
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{name}: {e}");
            let e = err(p.plan_drop_database(&db(name), &DropDatabaseOptions::new()), name);
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{name}: {e}");
        }
        let e = err(
            p.drop_database(&db("rds_things"), &DropDatabaseOptions::new()),
            "rds_ prefix",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidName, "{e}");
        assert!(changes_since(sandbox, mark).is_empty(), "nothing sent");
        let e = DatabaseName::new("").expect_err("an empty name");
        assert_eq!(e.kind(), ErrorKind::InvalidName, "empty names never reach the server: {e}");
        for name in ["postgres", "template0", "template1", "rdsadmin"] {
            assert!(database_exists(sandbox, name), "{name} is still there");
        }
    }
);

// ---------------------------------------------------------------------------------------------
// drop_user
// ---------------------------------------------------------------------------------------------

/// The set-up: `app` owns tables in three databases owned by `host` (which granted it
/// CONNECT and CREATE on schema public there) and holds read-only grants in a fourth owned by
/// `other`. Returns `app`'s password.
fn app_spread_over_four_databases(sandbox: &Sandbox, p: &mut Provisioner) -> Password {
    let app_pw = user(p, "app");
    let host_pw = user(p, "host");
    user(p, "other");
    for d in ["host_a", "host_b", "host_c"] {
        database(p, d, "host");
        let mut host = login(sandbox, "host", d, &host_pw);
        host.batch_execute(
            "GRANT CONNECT ON DATABASE CURRENT_DATABASE_PLACEHOLDER TO app;
             GRANT USAGE, CREATE ON SCHEMA public TO app;
             CREATE TABLE host_data (id int); INSERT INTO host_data VALUES (7);"
                .replace(
                    "CURRENT_DATABASE_PLACEHOLDER",
                    &postgres_protocol::escape::escape_identifier(d),
                )
                .as_str(),
        )
        .unwrap();
        let mut app = login(sandbox, "app", d, &app_pw);
        app.batch_execute(
            "CREATE TABLE app_data (id serial PRIMARY KEY, v text);
             INSERT INTO app_data (v) VALUES ('x'), ('y');
             CREATE VIEW app_view AS SELECT * FROM app_data;",
        )
        .unwrap();
    }
    database(p, "other_d", "other");
    ok(
        p.grant_read_only(&ReadOnlyGrant::new("other_d", "app").unwrap()),
        "grant_read_only(other_d, app)",
    );
    // Proof the fourth database's grant works: app reads other's table.
    let other_pw = ok(
        p.rotate_password(&role("other"), None),
        "rotate other's password to log in as it",
    )
    .generated_password
    .unwrap();
    let mut other = login(sandbox, "other", "other_d", &other_pw);
    other
        .batch_execute("CREATE TABLE other_data (id int); INSERT INTO other_data VALUES (1)")
        .unwrap();
    let mut app = login(sandbox, "app", "other_d", &app_pw);
    let n: i64 = app
        .query_one("SELECT count(*) FROM other_data", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "app reads other_d through its read-only grant");
    app_pw
}

per_version!(
    fn a_user_spread_over_four_databases_is_dropped_without_leftovers(sandbox) {
        let mut p = provisioner(sandbox);
        let app_pw = app_spread_over_four_databases(sandbox, &mut p);
        let oid = role_oid(sandbox, "app").unwrap();

        // The seed's plain `dropuser` fails in this set-up.
        let mut master = sandbox.connect_master().unwrap();
        let denied = expect_db_error(master.batch_execute("DROP ROLE app"), "the seed's dropuser");
        assert_eq!(
            denied.code(),
            &SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
            "{}",
            denied.message()
        );

        // The dry run lists the work per database and changes nothing.
        let mark = log_mark(sandbox);
        let plan = ok(p.plan_drop_user(&role("app"), &DropUserOptions::new()), "plan_drop_user");
        let shown = plan.to_string();
        for d in ["host_a", "host_b", "host_c", "other_d"] {
            assert!(
                shown.contains(&format!("[{d}] DROP OWNED BY \"app\"")),
                "plan cleans {d}: {shown}"
            );
        }
        assert!(shown.contains("drops "), "says what it drops: {shown}");
        assert!(shown.contains("DROP ROLE \"app\""), "{shown}");
        assert!(changes_since(sandbox, mark).is_empty(), "a plan changes nothing");

        let report = ok(p.drop_user(&role("app"), &DropUserOptions::new()), "drop_user");
        assert!(report.changed);
        assert!(role_oid(sandbox, "app").is_none(), "app is gone");
        assert_eq!(leftovers(sandbox, oid), Vec::<String>::new(), "pg_shdepend is clean");
        for d in ["postgres", "host_a", "host_b", "host_c", "other_d"] {
            assert_eq!(acl_mentions(sandbox, d, oid), 0, "no ACL names app's oid in {d}");
        }
        // app's tables are gone; host's are untouched; app cannot log in.
        let mut admin = sandbox.connect_rdsadmin("host_a").unwrap();
        let row = admin
            .query_one(
                "SELECT to_regclass('public.app_data') IS NULL, to_regclass('public.app_view') IS NULL,
                        (SELECT count(*) FROM host_data)",
                &[],
            )
            .unwrap();
        assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1), "app's objects dropped");
        assert_eq!(row.get::<_, i64>(2), 1, "host's table untouched");
        // The server refuses a dropped role as it refuses a wrong password (28P01).
        let e = connect_error(&sandbox.options_for("app").dbname("host_a").password(app_pw));
        assert_password_refused(&e, "app");
        for r in ["host", "other"] {
            assert_no_membership(sandbox, r);
        }

        // Second run: no change.
        let mark = log_mark(sandbox);
        assert_unchanged(
            &ok(p.drop_user(&role("app"), &DropUserOptions::new()), "again"),
            "drop_user again",
        );
        assert!(changes_since(sandbox, mark).is_empty());
    }
);

per_version!(
    fn a_user_dropped_with_reassign_to_leaves_its_data_to_the_heir(sandbox) {
        let mut p = provisioner(sandbox);
        app_spread_over_four_databases(sandbox, &mut p);
        let oid = role_oid(sandbox, "app").unwrap();
        let report = ok(
            p.drop_user(&role("app"), &DropUserOptions::new().reassign_to("host").unwrap()),
            "drop_user(reassign_to host)",
        );
        assert!(report.changed);
        assert!(
            report
                .steps
                .iter()
                .any(|s| s.sql() == "REASSIGN OWNED BY \"app\" TO \"host\""),
            "{report:#?}"
        );
        assert!(role_oid(sandbox, "app").is_none());
        assert_eq!(leftovers(sandbox, oid), Vec::<String>::new(), "pg_shdepend is clean");
        for d in ["host_a", "host_b", "host_c"] {
            let mut admin = sandbox.connect_rdsadmin(d).unwrap();
            let row = admin
                .query_one(
                    "SELECT pg_get_userbyid(relowner)::text, (SELECT count(*) FROM app_data)
                       FROM pg_class WHERE oid = 'public.app_data'::regclass",
                    &[],
                )
                .unwrap();
            assert_eq!(row.get::<_, String>(0), "host", "{d}: the heir owns the table");
            assert_eq!(row.get::<_, i64>(1), 2, "{d}: the rows survived");
        }
        for r in ["host", "other"] {
            assert_no_membership(sandbox, r);
        }
    }
);

per_version!(
    fn a_user_owning_a_database_is_refused_unless_reassigned(sandbox) {
        let mut p = provisioner(sandbox);
        user(&mut p, "proj");
        user(&mut p, "heir");
        database(&mut p, "proj_db", "proj");
        let mark = log_mark(sandbox);
        let e = err(p.drop_user(&role("proj"), &DropUserOptions::new()), "drop owner");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        assert!(e.to_string().contains("proj_db"), "names the database: {e}");
        assert!(changes_since(sandbox, mark).is_empty(), "refused before any SQL");

        let e = err(
            p.drop_user(&role("proj"), &DropUserOptions::new().reassign_to("nobody_here").unwrap()),
            "missing heir",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = err(
            p.drop_user(&role("proj"), &DropUserOptions::new().reassign_to("proj").unwrap()),
            "heir is itself",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(changes_since(sandbox, mark).is_empty(), "refused before any SQL");

        ok(
            p.drop_user(&role("proj"), &DropUserOptions::new().reassign_to("heir").unwrap()),
            "drop_user(reassign_to heir)",
        );
        let mut master = sandbox.connect_master().unwrap();
        let owner: String = master
            .query_one(
                "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'proj_db'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(owner, "heir", "the database went to the heir");
        assert!(role_oid(sandbox, "proj").is_none());
        // The heir's database can still be dropped through rds-pg.
        ok(p.drop_database(&db("proj_db"), &DropDatabaseOptions::new()), "drop proj_db");
        ok(p.drop_user(&role("heir"), &DropUserOptions::new()), "drop heir");
        assert!(role_oid(sandbox, "heir").is_none());
    }
);

per_version!(
    fn privileged_and_reserved_roles_are_refused_before_any_sql(sandbox) {
        let mut p = provisioner(sandbox);
        let mark = log_mark(sandbox);
        let master = RoleName::new(sandbox.master_user()).unwrap();
        let e = err(p.drop_user(&master, &DropUserOptions::new()), "drop master");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let e = err(p.rotate_password(&master, None), "rotate master");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        for name in ["rdsadmin", "rds_superuser", "rds_password"] {
            let e = err(p.drop_user(&role(name), &DropUserOptions::new()), name);
            assert_eq!(e.kind(), ErrorKind::InvalidName, "{name}: {e}");
        }
        let e = RoleName::new("pg_monitor").expect_err("a pg_ name");
        assert_eq!(e.kind(), ErrorKind::InvalidName, "pg_ names never reach the server: {e}");
        let e = err(p.rotate_password(&role("ghost"), None), "rotate a missing role");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert_unchanged(
            &ok(p.drop_user(&role("ghost"), &DropUserOptions::new()), "drop missing"),
            "drop a missing role",
        );
        assert!(changes_since(sandbox, mark).is_empty(), "nothing sent");
    }
);

// ---------------------------------------------------------------------------------------------
// rotate_password
// ---------------------------------------------------------------------------------------------

per_version!(
    fn a_rotated_password_replaces_the_old_one(sandbox) {
        let mut p = provisioner(sandbox);
        let old = user(&mut p, "rot");
        database(&mut p, "rot_db", "rot");
        drop(login(sandbox, "rot", "rot_db", &old));

        let plan = ok(p.plan_rotate_password(&role("rot"), None), "plan_rotate_password");
        assert!(!plan.to_string().contains("SCRAM-SHA-256$"), "plan is redacted: {plan}");
        drop(login(sandbox, "rot", "rot_db", &old));

        let report = ok(p.rotate_password(&role("rot"), None), "rotate_password(generate)");
        let new = report.generated_password.clone().expect("the new password, once");
        assert_ne!(new.expose(), old.expose());
        assert!(!format!("{report:?}").contains(new.expose()), "Debug redacts it");
        let e = connect_error(&sandbox.options_for("rot").dbname("rot_db").password(old.clone()));
        assert_password_refused(&e, "rot");
        drop(login(sandbox, "rot", "rot_db", &new));

        // A chosen (awkward) password: not echoed back, works.
        let chosen = Password::from("n€w 'pass' \"with\" \\ and : @ / ?");
        let report = ok(p.rotate_password(&role("rot"), Some(chosen.clone())), "rotate(chosen)");
        assert!(report.generated_password.is_none(), "a chosen password is not returned");
        drop(login(sandbox, "rot", "rot_db", &chosen));
        let e = connect_error(&sandbox.options_for("rot").dbname("rot_db").password(new));
        assert_password_refused(&e, "rot");
        let log = sandbox.log_text().unwrap();
        assert!(!log.contains(chosen.expose()), "the log never shows the password");
    }
);

// ---------------------------------------------------------------------------------------------
// Runs killed before giving up their memberships (issue 13)
// ---------------------------------------------------------------------------------------------

/// A provisioner whose next operation stops, as a killed process would (nothing more sent, no
/// cleanup, no unlock), right before the batch that gives up its temporary memberships.
fn killed_before_cleanup(sandbox: &Sandbox) -> Provisioner {
    use rds_pg_core::provision::fault::{Fault, FaultPoint};
    let mut p = provisioner(sandbox);
    p.set_fault_hook(Some(Box::new(|point: &FaultPoint<'_>| {
        if point.cleanup {
            Fault::Abandon
        } else {
            Fault::Continue
        }
    })));
    p
}

/// Whether master may `SET ROLE` to `name` (what a leftover membership lets it do).
fn master_can_set_role(sandbox: &Sandbox, name: &str) -> bool {
    let mut master = sandbox.connect_master().unwrap();
    master
        .batch_execute(&format!(
            "SET ROLE {}; RESET ROLE",
            postgres_protocol::escape::escape_identifier(name)
        ))
        .is_ok()
}

/// Asserts that `report` removed master's membership of `name` and said so.
fn assert_removed_leftover(report: &Report, name: &str) {
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("removed") && n.contains(&format!("{name:?}"))),
        "the re-run says it removed master's membership of {name:?}: {:?}",
        report.notes
    );
}

per_version!(
    fn a_drop_killed_after_drop_database_is_finished_by_the_next_run(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = user(&mut p, "kshop");
        database(&mut p, "kshop_db", "kshop");
        drop(p); // its session in kshop_db would keep the database busy

        let mut killed = killed_before_cleanup(sandbox);
        let e = err(
            killed.drop_database(&db("kshop_db"), &DropDatabaseOptions::new()),
            "drop_database killed after DROP DATABASE",
        );
        assert!(matches!(e, rds_pg_core::Error::Abandoned), "{e:?}");
        drop(killed);
        assert!(!database_exists(sandbox, "kshop_db"));
        assert!(
            master_can_set_role(sandbox, "kshop"),
            "the killed run left master a member of the owner"
        );

        // The database is gone, yet the next run sees the leftover, lists it and removes it.
        let mut next = provisioner(sandbox);
        let plan = ok(
            next.plan_drop_database(&db("kshop_db"), &DropDatabaseOptions::new()),
            "plan_drop_database",
        );
        assert_eq!(plan.sql(), ["REVOKE \"kshop\" FROM \"master\""], "{plan}");
        let report = ok(
            next.drop_database(&db("kshop_db"), &DropDatabaseOptions::new()),
            "the re-run",
        );
        assert!(report.changed, "{report:#?}");
        assert_removed_leftover(&report, "kshop");
        assert!(!master_can_set_role(sandbox, "kshop"), "master is no longer a member");
        assert_no_membership(sandbox, "kshop");
        // The project's role is untouched: it still logs in.
        login(sandbox, "kshop", "postgres", &pw);

        let mark = log_mark(sandbox);
        assert_unchanged(
            &ok(
                provisioner(sandbox).drop_database(&db("kshop_db"), &DropDatabaseOptions::new()),
                "third run",
            ),
            "the third run",
        );
        assert!(changes_since(sandbox, mark).is_empty());
    }
);

per_version!(
    fn a_drop_user_killed_after_drop_role_is_finished_by_the_next_run(sandbox) {
        let mut p = provisioner(sandbox);
        user(&mut p, "kgone");
        let heir_pw = user(&mut p, "kheir");
        database(&mut p, "kgone_db", "kgone");
        drop(p);
        let options = DropUserOptions::new().reassign_to("kheir").unwrap();

        let mut killed = killed_before_cleanup(sandbox);
        let e = err(
            killed.drop_user(&role("kgone"), &options),
            "drop_user killed after DROP ROLE",
        );
        assert!(matches!(e, rds_pg_core::Error::Abandoned), "{e:?}");
        drop(killed);
        assert!(role_oid(sandbox, "kgone").is_none(), "the role was dropped");
        assert!(
            master_can_set_role(sandbox, "kheir"),
            "the killed run left master a member of the heir"
        );

        // The role is gone, yet the next run removes the heir's membership and says so.
        let report = ok(provisioner(sandbox).drop_user(&role("kgone"), &options), "the re-run");
        assert!(report.changed, "{report:#?}");
        assert_removed_leftover(&report, "kheir");
        assert!(!master_can_set_role(sandbox, "kheir"), "master is no longer a member");
        assert_no_membership(sandbox, "kheir");
        // The heir owns what the dropped role owned, and uses it.
        let mut heir = login(sandbox, "kheir", "kgone_db", &heir_pw);
        let owner: String = heir
            .query_one(
                "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'kgone_db'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(owner, "kheir");
        heir.batch_execute("CREATE TABLE t (id int)").unwrap();

        let mark = log_mark(sandbox);
        assert_unchanged(
            &ok(provisioner(sandbox).drop_user(&role("kgone"), &options), "third run"),
            "the third run",
        );
        assert!(changes_since(sandbox, mark).is_empty());
    }
);
