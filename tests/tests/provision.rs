//! Provisioning (issue 3): the seed's "Create user", "Create database", "PostGIS", "Hstore" and
//! "Grant read-only access" sections done by [`Provisioner`] on every version, proven by logging in
//! as the users it made — not only by reading the catalog.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres_protocol::escape::escape_literal;
use rds_pg_core::{
    DatabaseName, DatabaseSpec, Error, ErrorKind, Extension, Password, Plan, Provisioner,
    ReadOnlyGrant, Report, SqlState, UserSpec,
};
use rds_pg_tests::{
    assert_password_refused, changes_since, connect_error, err, expect_db_error, log_mark,
    login_as_application, ok, per_version, provisioner, refused_login, Sandbox,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn db_name(name: &str) -> DatabaseName {
    DatabaseName::new(name).unwrap()
}

/// Logs in as `user` to `db` with `password`.
fn login(sandbox: &Sandbox, user: &str, db: &str, password: &Password) -> Client {
    login_as_application(
        &sandbox
            .options_for(user)
            .dbname(db)
            .password(password.clone()),
    )
    .unwrap_or_else(|e| panic!("{user:?} cannot log in to {db:?}: {e}"))
}

/// Asserts that `user` cannot connect to `db` because it lacks CONNECT.
fn assert_cannot_connect(sandbox: &Sandbox, user: &str, db: &str, password: &Password) {
    let e = connect_error(
        &sandbox
            .options_for(user)
            .dbname(db)
            .password(password.clone()),
    );
    let refused = refused_login(&e, &SqlState::INSUFFICIENT_PRIVILEGE);
    assert_eq!(
        (refused.message(), refused.detail()),
        (
            format!("permission denied for database {db:?}").as_str(),
            Some("User does not have CONNECT privilege.")
        ),
        "{user:?} → {db:?} must fail for lack of CONNECT: {e}"
    );
}

/// Creates a login role with SQL as master (not through rds-pg).
fn create_login_role_by_hand(sandbox: &Sandbox, name: &str, password: &Password) {
    let mut master = sandbox.connect_master().unwrap();
    master
        .batch_execute(&format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            postgres_protocol::escape::escape_identifier(name),
            escape_literal(password.scram_verifier().expose())
        ))
        .unwrap();
}

/// Runs `sql` as the superuser `rdsadmin` in `db` (test set-up and assertions only).
fn as_rdsadmin(sandbox: &Sandbox, db: &str, sql: &str) {
    let mut admin = sandbox.connect_rdsadmin(db).unwrap();
    admin.batch_execute(sql).unwrap();
}

/// Roles (attributes, password hashes, memberships) and databases (owner, ACL, limits), read as
/// rdsadmin: what any provisioning step could change cluster-wide.
fn cluster_snapshot(sandbox: &Sandbox) -> String {
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    let row = admin
        .query_one(
            "SELECT
               (SELECT string_agg(format('%s:%s%s%s%s%s%s:%s:%s:%s', rolname, rolsuper, rolinherit,
                                         rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls,
                                         rolconnlimit, rolvaliduntil, md5(coalesce(rolpassword, ''))),
                                  ',' ORDER BY rolname)
                  FROM pg_authid),
               (SELECT string_agg(x, ',' ORDER BY x) FROM (
                  SELECT r.rolname || '>' || m.rolname || to_jsonb(a)::text AS x
                    FROM pg_auth_members a
                    JOIN pg_roles r ON r.oid = a.roleid
                    JOIN pg_roles m ON m.oid = a.member) s),
               (SELECT string_agg(format('%s:%s:%s:%s', datname, pg_get_userbyid(datdba),
                                         coalesce(datacl::text, ''), datconnlimit),
                                  ',' ORDER BY datname)
                  FROM pg_database),
               (SELECT string_agg(format('%s:%s:%s:%s', dbid, classid, refobjid, deptype), ','
                                  ORDER BY dbid, classid, objid, refobjid, deptype)
                  FROM pg_shdepend)",
            &[],
        )
        .unwrap();
    let parts: Vec<Option<String>> = (0..4).map(|i| row.get(i)).collect();
    format!("{parts:#?}")
}

/// Extensions, schemas, relations (owner and ACL) and default privileges of database `db`, read as
/// rdsadmin.
fn database_snapshot(sandbox: &Sandbox, db: &str) -> String {
    let mut admin = sandbox.connect_rdsadmin(db).unwrap();
    let row = admin
        .query_one(
            "SELECT
               (SELECT string_agg(format('%s:%s:%s', extname, pg_get_userbyid(extowner), extversion),
                                  ',' ORDER BY extname)
                  FROM pg_extension),
               (SELECT string_agg(format('%s:%s:%s', nspname, pg_get_userbyid(nspowner),
                                         coalesce(nspacl::text, '')), ',' ORDER BY nspname)
                  FROM pg_namespace),
               (SELECT string_agg(format('%s:%s:%s', c.oid::regclass, pg_get_userbyid(c.relowner),
                                         coalesce(c.relacl::text, '')), ',' ORDER BY c.oid)
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
               (SELECT string_agg(format('%s:%s:%s:%s', pg_get_userbyid(defaclrole), defaclnamespace,
                                         defaclobjtype, defaclacl), ','
                                  ORDER BY defaclrole, defaclnamespace, defaclobjtype)
                  FROM pg_default_acl)",
            &[],
        )
        .unwrap();
    let parts: Vec<Option<String>> = (0..4).map(|i| row.get(i)).collect();
    format!("{parts:#?}")
}

/// Asserts that master holds no membership of `role` giving its privileges or SET ROLE (16+ keeps
/// the automatic ADMIN-only membership of roles master created, which gives neither).
fn assert_no_temporary_membership(sandbox: &Sandbox, role: &str) {
    let mut master = sandbox.connect_master().unwrap();
    let set = if sandbox.major_version() >= 16 {
        "SET"
    } else {
        "MEMBER"
    };
    let row = master
        .query_one(
            &format!(
                "SELECT pg_has_role(current_user, r.oid, 'USAGE'), pg_has_role(current_user, r.oid, '{set}')
                   FROM pg_roles r WHERE r.rolname = $1"
            ),
            &[&role],
        )
        .unwrap();
    let (usage, can_set): (bool, bool) = (row.get(0), row.get(1));
    assert!(
        !usage && !can_set,
        "master kept a membership of {role:?} (usage {usage}, set {can_set}) after provisioning"
    );
}

/// Asserts that `report` changed nothing and ran nothing.
fn assert_unchanged(report: &Report, what: &str) {
    assert!(
        !report.changed,
        "{what}: second run reports a change: {report:#?}"
    );
    assert!(
        report.steps.is_empty(),
        "{what}: second run ran steps: {report:#?}"
    );
    assert!(
        report.temporary_grants.is_empty(),
        "{what}: second run made temporary grants: {report:#?}"
    );
    assert!(
        report.generated_password.is_none(),
        "{what}: second run generated a password"
    );
}

/// Asserts that `report` changed something and ran steps.
fn assert_changed(report: &Report, what: &str) {
    assert!(report.changed, "{what}: expected a change: {report:#?}");
    assert!(
        !report.steps.is_empty(),
        "{what}: a change without steps: {report:#?}"
    );
}

/// Asserts that a plan's SQL (and its display) never shows `password` or a verifier.
fn assert_plan_redacted(plan: &Plan, password: &Password, what: &str) {
    let shown = format!("{plan}\n{:?}\n{}", plan, plan.sql().join("\n"));
    assert!(
        !shown.contains(password.expose()),
        "{what}: plan shows the password"
    );
    assert!(
        !shown.contains("SCRAM-SHA-256$"),
        "{what}: plan shows a verifier: {shown}"
    );
    assert!(
        !shown.contains(escape_literal(password.expose()).trim()),
        "{what}: plan shows the escaped password"
    );
}

/// Asserts that the server log holds none of `passwords` in cleartext (raw or as a literal).
fn assert_log_has_no_password(sandbox: &Sandbox, passwords: &[&Password]) {
    let log = sandbox.log_text().unwrap();
    assert!(log.contains("statement: "), "the sandbox logs statements");
    for p in passwords.iter().copied().chain([sandbox.master_password()]) {
        assert!(
            !log.contains(p.expose()),
            "the server log holds a cleartext password"
        );
        let literal = escape_literal(p.expose());
        assert!(
            !log.contains(literal.trim()),
            "the server log holds a password as an SQL literal"
        );
    }
}

/// The owner of table `table` (schema-qualified or in the search path) in `client`'s database.
fn table_owner(client: &mut Client, table: &str) -> String {
    client
        .query_one(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .unwrap()
        .get(0)
}

/// The owner of extension `ext`, or `None` when it is not installed, in `client`'s database.
fn extension_owner(client: &mut Client, ext: &str) -> Option<String> {
    client
        .query_opt(
            "SELECT pg_get_userbyid(extowner)::text FROM pg_extension WHERE extname = $1",
            &[&ext],
        )
        .unwrap()
        .map(|r| r.get(0))
}

/// Creates project user `user` (generated password) and its database `db` with `extensions`,
/// checking the reports; returns the generated password.
fn provision_owner_and_database(
    sandbox: &Sandbox,
    p: &mut Provisioner,
    user: &str,
    db: &str,
    extensions: &[Extension],
) -> Password {
    let report = ok(
        p.ensure_user(&UserSpec::new(user).unwrap()),
        "ensure_user(owner)",
    );
    assert_changed(&report, "ensure_user(owner)");
    let password = report
        .generated_password
        .clone()
        .expect("a role created without a password gets a generated one in the report");
    assert!(password.expose().len() >= 16, "a strong generated password");
    for step in &report.steps {
        assert!(
            !step.sql().contains(password.expose()),
            "a step shows the password"
        );
        assert!(
            !step.sql().contains("SCRAM-SHA-256$"),
            "a step shows the verifier: {}",
            step.sql()
        );
    }
    assert!(
        report.steps.iter().any(|s| s.sql().contains("[redacted]")),
        "the password is set, redacted in the report: {report:#?}"
    );

    let spec = DatabaseSpec::new(db, user)
        .unwrap()
        .extensions(extensions.iter().cloned());
    let report = ok(p.ensure_database(&spec), "ensure_database");
    assert_changed(&report, "ensure_database");
    assert!(
        report.temporary_grants.iter().any(|r| r.as_str() == user),
        "master could not act as {user:?}, so the report lists the temporary grant: {report:#?}"
    );
    assert_no_temporary_membership(sandbox, user);
    password
}

fn seed_extensions(sandbox: &Sandbox) -> Vec<Extension> {
    let mut extensions = vec![Extension::Hstore];
    if sandbox.has_postgis() {
        extensions.push(Extension::Postgis);
    }
    extensions
}

// ---------------------------------------------------------------------------------------------
// The seed's full flow
// ---------------------------------------------------------------------------------------------

per_version!(
    fn the_seeds_full_flow_works_when_proven_by_logging_in(sandbox) {
        let mut p = provisioner(sandbox);
        assert_eq!(p.facts().major, sandbox.major_version());
        assert_eq!(p.facts().current_user, sandbox.master_user());
        assert!(!p.facts().is_superuser);
        let postgis = sandbox.has_postgis();
        if sandbox.major_version() == 15 {
            assert!(postgis, "PostgreSQL 15 sandbox without PostGIS: run `make setup`");
        }

        // Project alpha: owner with a generated password, database with hstore (+ PostGIS).
        let owner_pw = provision_owner_and_database(
            sandbox, &mut p, "alpha_owner", "alpha_db", &seed_extensions(sandbox),
        );

        // The catalog: owned by the project user, PUBLIC has nothing on the database.
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        let row = admin
            .query_one(
                "SELECT pg_get_userbyid(datdba)::text, has_database_privilege('public', 'alpha_db', 'CONNECT'),
                        has_database_privilege('public', 'alpha_db', 'TEMPORARY'),
                        pg_encoding_to_char(encoding)
                   FROM pg_database WHERE datname = 'alpha_db'",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "alpha_owner");
        assert!(!row.get::<_, bool>(1), "PUBLIC has no CONNECT on alpha_db");
        assert!(!row.get::<_, bool>(2), "PUBLIC has no TEMPORARY on alpha_db");
        assert_eq!(row.get::<_, String>(3), "UTF8");

        // The project user logs in with the generated password and works in its database.
        let mut owner = login(sandbox, "alpha_owner", "alpha_db", &owner_pw);
        assert_eq!(
            extension_owner(&mut owner, "hstore").as_deref(),
            Some("alpha_owner"),
            "hstore is trusted: created as the owner, so the owner owns it"
        );
        owner
            .batch_execute(
                "CREATE TABLE before_grant (id serial PRIMARY KEY, tags hstore, note text);
                 INSERT INTO before_grant (tags, note) VALUES ('a=>1', 'first');",
            )
            .expect("the project user creates a table (with a sequence) and inserts");
        let a: String = owner
            .query_one("SELECT tags -> 'a' FROM before_grant", &[])
            .unwrap()
            .get(0);
        assert_eq!(a, "1");

        // The project user cannot create a database or a role.
        let denied = expect_db_error(owner.batch_execute("CREATE DATABASE alpha_other"), "owner creates a database");
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{}", denied.message());
        assert_eq!(denied.message(), "permission denied to create database");
        let denied = expect_db_error(owner.batch_execute("CREATE ROLE alpha_sneaky"), "owner creates a role");
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{}", denied.message());
        assert_eq!(denied.message(), "permission denied to create role");
        let attrs = owner
            .query_one(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin
                   FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .unwrap();
        let attrs: (bool, bool, bool, bool, bool, bool) =
            (attrs.get(0), attrs.get(1), attrs.get(2), attrs.get(3), attrs.get(4), attrs.get(5));
        assert_eq!(attrs, (false, false, false, false, false, true));

        if postgis {
            assert_eq!(
                table_owner(&mut owner, "public.spatial_ref_sys"),
                "alpha_owner",
                "PostGIS's spatial_ref_sys is handed to the project user"
            );
            owner
                .batch_execute(
                    "CREATE TABLE places (id serial PRIMARY KEY, geom geometry(Point, 4326));
                     INSERT INTO places (geom) VALUES (ST_SetSRID(ST_MakePoint(1, 2), 4326));
                     INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
                          VALUES (990001, 'rds-pg', 990001, '', '');
                     ALTER TABLE spatial_ref_sys ADD COLUMN rds_pg_note text;
                     ALTER TABLE spatial_ref_sys DROP COLUMN rds_pg_note;",
                )
                .expect("the project user uses PostGIS and alters spatial_ref_sys");
        }

        // The read-only user: given password; no access before the grant.
        let reader_pw = Password::new("Reader-given-pw-4d1f");
        let report = ok(
            p.ensure_user(&UserSpec::new("alpha_reader").unwrap().password(reader_pw.clone())),
            "ensure_user(reader)",
        );
        assert_changed(&report, "ensure_user(reader)");
        assert!(report.generated_password.is_none(), "a given password is not generated");
        assert_cannot_connect(sandbox, "alpha_reader", "alpha_db", &reader_pw);

        let report = ok(
            p.grant_read_only(&ReadOnlyGrant::new("alpha_db", "alpha_reader").unwrap()),
            "grant_read_only",
        );
        assert_changed(&report, "grant_read_only");
        assert_no_temporary_membership(sandbox, "alpha_owner");

        // A table (and sequence) the owner creates after the grant.
        owner
            .batch_execute(
                "CREATE TABLE after_grant (id bigserial PRIMARY KEY, v text);
                 INSERT INTO after_grant (v) VALUES ('x'), ('y');",
            )
            .unwrap();

        let mut reader = login(sandbox, "alpha_reader", "alpha_db", &reader_pw);
        let n: i64 = reader.query_one("SELECT count(*) FROM before_grant", &[]).unwrap().get(0);
        assert_eq!(n, 1, "the reader reads a table that existed before the grant");
        let a: String = reader.query_one("SELECT tags -> 'a' FROM before_grant", &[]).unwrap().get(0);
        assert_eq!(a, "1");
        let n: i64 = reader
            .query_one("SELECT count(*) FROM after_grant", &[])
            .expect("the reader reads a table the owner created after the grant (default privileges)")
            .get(0);
        assert_eq!(n, 2);
        let last: i64 = reader
            .query_one("SELECT last_value FROM before_grant_id_seq", &[])
            .expect("the reader reads a sequence")
            .get(0);
        assert_eq!(last, 1);
        let last: i64 = reader
            .query_one("SELECT last_value FROM after_grant_id_seq", &[])
            .expect("the reader reads a sequence created after the grant")
            .get(0);
        assert_eq!(last, 2);
        let denied = expect_db_error(
            reader.batch_execute("INSERT INTO before_grant (note) VALUES ('no')"),
            "the reader inserts",
        );
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
        assert_eq!(denied.message(), "permission denied for table before_grant");
        let denied = expect_db_error(reader.batch_execute("INSERT INTO after_grant (v) VALUES ('no')"), "insert");
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
        let denied = expect_db_error(reader.batch_execute("UPDATE before_grant SET note = 'no'"), "update");
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
        let denied = expect_db_error(
            reader.query_one("SELECT nextval('before_grant_id_seq')", &[]),
            "the reader advances a sequence",
        );
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
        if postgis {
            let n: i64 = reader.query_one("SELECT count(*) FROM spatial_ref_sys", &[]).unwrap().get(0);
            assert!(n > 1000, "the reader reads spatial_ref_sys");
            let x: f64 = reader.query_one("SELECT ST_X(geom) FROM places", &[]).unwrap().get(0);
            assert_eq!(x, 1.0);
        }

        // PUBLIC has no CONNECT: an unrelated login role cannot connect (but can elsewhere).
        let outsider_pw = Password::new("Outsider-pw-93kd");
        create_login_role_by_hand(sandbox, "outsider", &outsider_pw);
        login(sandbox, "outsider", "postgres", &outsider_pw);
        assert_cannot_connect(sandbox, "outsider", "alpha_db", &outsider_pw);

        // Project beta: its users and alpha's cannot cross over.
        let beta_pw = provision_owner_and_database(sandbox, &mut p, "beta_owner", "beta_db", &[Extension::Hstore]);
        let beta_reader_pw = Password::new("Beta-reader-pw-77aa");
        ok(
            p.ensure_user(&UserSpec::new("beta_reader").unwrap().password(beta_reader_pw.clone())),
            "ensure_user(beta_reader)",
        );
        ok(
            p.grant_read_only(&ReadOnlyGrant::new("beta_db", "beta_reader").unwrap()),
            "grant_read_only(beta)",
        );
        login(sandbox, "beta_owner", "beta_db", &beta_pw);
        login(sandbox, "beta_reader", "beta_db", &beta_reader_pw);
        assert_cannot_connect(sandbox, "alpha_owner", "beta_db", &owner_pw);
        assert_cannot_connect(sandbox, "alpha_reader", "beta_db", &reader_pw);
        assert_cannot_connect(sandbox, "beta_owner", "alpha_db", &beta_pw);
        assert_cannot_connect(sandbox, "beta_reader", "alpha_db", &beta_reader_pw);
        assert_no_temporary_membership(sandbox, "alpha_owner");
        assert_no_temporary_membership(sandbox, "beta_owner");

        // After the whole flow the statement log holds no cleartext password.
        assert_log_has_no_password(
            sandbox,
            &[&owner_pw, &reader_pw, &beta_pw, &beta_reader_pw, &outsider_pw],
        );
    }
);

per_version!(
    /// The recipe's `ALTER SCHEMA public OWNER TO proj` where public is not owned by
    /// pg_database_owner: otherwise, before 15, PUBLIC keeps CREATE on it and the "read-only"
    /// user can create tables.
    fn schema_public_is_the_owners_and_the_reader_cannot_create_in_it(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = provision_owner_and_database(sandbox, &mut p, "pub_owner", "pub_db", &[]);
        let reader_pw = Password::new("Pub-reader-pw");
        ok(p.ensure_user(&UserSpec::new("pub_reader").unwrap().password(reader_pw.clone())), "ensure_user");
        ok(p.grant_read_only(&ReadOnlyGrant::new("pub_db", "pub_reader").unwrap()), "grant_read_only");

        let mut reader = login(sandbox, "pub_reader", "pub_db", &reader_pw);
        let denied = expect_db_error(
            reader.batch_execute("CREATE TABLE public.sneaky (id int)"),
            "the read-only user creates a table in public",
        );
        assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{}", denied.message());
        assert_eq!(denied.message(), "permission denied for schema public");

        let mut owner = login(sandbox, "pub_owner", "pub_db", &pw);
        let schema_owner: String = owner
            .query_one("SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'public'", &[])
            .unwrap()
            .get(0);
        assert!(
            schema_owner == "pg_database_owner" || schema_owner == "pub_owner",
            "schema public of a project database is controlled by its owner, not {schema_owner:?}"
        );
        // Only the schema's owner may do these.
        owner
            .batch_execute(
                "COMMENT ON SCHEMA public IS 'pub_owner''s schema';
                 REVOKE CREATE ON SCHEMA public FROM PUBLIC;
                 CREATE TABLE public.t (id int);",
            )
            .expect("the project user controls schema public");
    }
);

per_version!(
    /// Before 15 the sandbox's template1 (as RDS's) has schema public owned by master: the
    /// recipe's `ALTER SCHEMA public OWNER TO proj` applies and the owner controls the schema.
    fn a_database_from_template1_gets_schema_public_handed_to_the_owner(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = ok(
            p.ensure_user(&UserSpec::new("t1_owner").unwrap()),
            "ensure_user",
        )
        .generated_password
        .expect("generated password");
        let spec = DatabaseSpec::new("t1_db", "t1_owner").unwrap().template("template1").unwrap();
        assert_changed(&ok(p.ensure_database(&spec), "ensure_database(template1)"), "ensure_database");
        assert_no_temporary_membership(sandbox, "t1_owner");
        let mut owner = login(sandbox, "t1_owner", "t1_db", &pw);
        let schema_owner: String = owner
            .query_one("SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'public'", &[])
            .unwrap()
            .get(0);
        assert!(
            schema_owner == "pg_database_owner" || schema_owner == "t1_owner",
            "schema public is the owner's, not {schema_owner:?}"
        );
        owner
            .batch_execute("COMMENT ON SCHEMA public IS 'mine'; REVOKE CREATE ON SCHEMA public FROM PUBLIC;")
            .expect("the project user controls schema public");
        let mark = log_mark(sandbox);
        assert_unchanged(&ok(p.ensure_database(&spec), "again"), "ensure_database(template1) again");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
    }
);

// ---------------------------------------------------------------------------------------------
// Idempotence and dry runs
// ---------------------------------------------------------------------------------------------

per_version!(
    fn second_runs_report_no_change_and_run_no_statement(sandbox) {
        let mut p = provisioner(sandbox);
        let owner_pw =
            provision_owner_and_database(sandbox, &mut p, "idem_owner", "idem_db", &seed_extensions(sandbox));
        let db = db_name("idem_db");
        let report = ok(p.ensure_extensions(&db, &[Extension::Citext]), "ensure_extensions");
        assert_changed(&report, "ensure_extensions(citext)");
        let mut owner = login(sandbox, "idem_owner", "idem_db", &owner_pw);
        assert_eq!(extension_owner(&mut owner, "citext").as_deref(), Some("idem_owner"));
        owner.batch_execute("CREATE TABLE t1 (id serial PRIMARY KEY, name citext)").unwrap();

        let reader_pw = Password::new("Idem-reader-pw-1");
        let reader_spec = UserSpec::new("idem_reader").unwrap().password(reader_pw.clone());
        assert_changed(&ok(p.ensure_user(&reader_spec), "ensure_user(reader)"), "ensure_user(reader)");
        let grant = ReadOnlyGrant::new("idem_db", "idem_reader").unwrap();
        assert_changed(&ok(p.grant_read_only(&grant), "grant_read_only"), "grant_read_only");
        owner.batch_execute("CREATE TABLE t2 (id bigserial PRIMARY KEY)").unwrap();

        let user_spec = UserSpec::new("idem_owner").unwrap();
        let db_spec = DatabaseSpec::new("idem_db", "idem_owner")
            .unwrap()
            .extensions(seed_extensions(sandbox));
        let all_extensions = {
            let mut e = seed_extensions(sandbox);
            e.push(Extension::Citext);
            e
        };

        // The log parser sees the first run's changes (so an empty result below means something).
        let first_run = changes_since(sandbox, 0);
        for expected in ["CREATE ROLE \"idem_owner\"", "CREATE DATABASE \"idem_db\"", "GRANT", "REVOKE"] {
            assert!(
                first_run.iter().any(|s| s.contains(expected)),
                "the log parser finds {expected:?} among the first run's changes: {first_run:#?}"
            );
        }

        let cluster_before = cluster_snapshot(sandbox);
        let db_before = database_snapshot(sandbox, "idem_db");
        let mark = log_mark(sandbox);

        // Second runs on the same provisioner, then on a fresh one (no state cached in between).
        for round in ["same provisioner", "fresh provisioner"] {
            if round == "fresh provisioner" {
                p = provisioner(sandbox);
            }
            assert_unchanged(&ok(p.ensure_user(&user_spec), "ensure_user again"), &format!("ensure_user(owner), {round}"));
            assert_unchanged(&ok(p.ensure_user(&reader_spec), "ensure_user again"), &format!("ensure_user(reader), {round}"));
            assert_unchanged(&ok(p.ensure_database(&db_spec), "ensure_database again"), &format!("ensure_database, {round}"));
            assert_unchanged(
                &ok(p.ensure_extensions(&db, &all_extensions), "ensure_extensions again"),
                &format!("ensure_extensions, {round}"),
            );
            assert_unchanged(&ok(p.grant_read_only(&grant), "grant_read_only again"), &format!("grant_read_only, {round}"));
            for (what, plan) in [
                ("plan_ensure_user", ok(p.plan_ensure_user(&user_spec), "plan_ensure_user")),
                ("plan_ensure_database", ok(p.plan_ensure_database(&db_spec), "plan_ensure_database")),
                ("plan_ensure_extensions", ok(p.plan_ensure_extensions(&db, &all_extensions), "plan")),
                ("plan_grant_read_only", ok(p.plan_grant_read_only(&grant), "plan_grant_read_only")),
            ] {
                assert!(plan.is_empty(), "{what} after provisioning must be empty:\n{plan}");
            }
        }

        let changes = changes_since(sandbox, mark);
        assert!(changes.is_empty(), "second runs sent changing statements: {changes:#?}");
        assert_eq!(cluster_snapshot(sandbox), cluster_before, "second runs changed roles or databases");
        assert_eq!(database_snapshot(sandbox, "idem_db"), db_before, "second runs changed the database");
        // The generated password still works: a second run does not rotate it.
        login(sandbox, "idem_owner", "idem_db", &owner_pw);
        let mut reader = login(sandbox, "idem_reader", "idem_db", &reader_pw);
        reader.query_one("SELECT count(*) FROM t1", &[]).unwrap();
        reader.query_one("SELECT count(*) FROM t2", &[]).unwrap();
        assert_log_has_no_password(sandbox, &[&owner_pw, &reader_pw]);
    }
);

per_version!(
    fn dry_runs_change_nothing(sandbox) {
        let mut p = provisioner(sandbox);
        let owner_pw = Password::new("Dry-run-owner-pw-'$$\\-x");
        let owner_spec = UserSpec::new("dry_owner").unwrap().password(owner_pw.clone());

        // 1. Nothing exists: the user's plan.
        let before = cluster_snapshot(sandbox);
        let mark = log_mark(sandbox);
        let plan = ok(p.plan_ensure_user(&owner_spec), "plan_ensure_user");
        assert!(!plan.is_empty(), "a missing role needs steps");
        assert!(plan.sql().iter().any(|s| s.contains("dry_owner")), "{plan}");
        assert!(plan.sql().iter().any(|s| s.contains("[redacted]")), "the password is redacted:\n{plan}");
        assert_plan_redacted(&plan, &owner_pw, "plan_ensure_user");
        let generated = ok(p.plan_ensure_user(&UserSpec::new("dry_owner").unwrap()), "plan_ensure_user(generated)");
        assert!(!generated.is_empty());
        assert!(!generated.sql().iter().any(|s| s.contains("SCRAM-SHA-256$")), "{generated}");
        assert_eq!(cluster_snapshot(sandbox), before, "plan_ensure_user changed the catalog");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new(), "plan_ensure_user sent changes");
        // The role was not created: the server refuses it as a wrong password (28P01).
        let e = connect_error(&sandbox.options_for("dry_owner").password(owner_pw.clone()));
        assert_password_refused(&e, "dry_owner");

        // 2. The owner exists, the database does not.
        ok(p.ensure_user(&owner_spec), "ensure_user");
        let db_spec = DatabaseSpec::new("dry_db", "dry_owner")
            .unwrap()
            .extensions(seed_extensions(sandbox));
        let before = cluster_snapshot(sandbox);
        let mark = log_mark(sandbox);
        let plan = ok(p.plan_ensure_database(&db_spec), "plan_ensure_database");
        assert!(!plan.is_empty());
        assert!(plan.sql().iter().any(|s| s.contains("CREATE DATABASE")), "{plan}");
        assert!(plan.sql().iter().any(|s| s.contains("hstore")), "{plan}");
        assert_eq!(cluster_snapshot(sandbox), before, "plan_ensure_database changed the catalog");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new(), "plan_ensure_database sent changes");
        let e = connect_error(&sandbox.options_for("dry_owner").dbname("dry_db").password(owner_pw.clone()));
        let refused = refused_login(&e, &SqlState::INVALID_CATALOG_NAME);
        assert_eq!(refused.message(), "database \"dry_db\" does not exist", "the plan created nothing");

        // 3. Database and reader exist: extensions, grant.
        ok(p.ensure_database(&db_spec), "ensure_database");
        let reader_pw = Password::new("Dry-reader-pw");
        ok(p.ensure_user(&UserSpec::new("dry_reader").unwrap().password(reader_pw.clone())), "ensure_user(reader)");
        login(sandbox, "dry_owner", "dry_db", &owner_pw)
            .batch_execute("CREATE TABLE t (id serial PRIMARY KEY)")
            .unwrap();
        let grant = ReadOnlyGrant::new("dry_db", "dry_reader").unwrap();
        let db = db_name("dry_db");
        let before = (cluster_snapshot(sandbox), database_snapshot(sandbox, "dry_db"));
        let mark = log_mark(sandbox);
        let plan = ok(p.plan_ensure_extensions(&db, &[Extension::Citext, Extension::PgTrgm]), "plan_ensure_extensions");
        assert!(!plan.is_empty());
        assert!(plan.sql().iter().any(|s| s.contains("citext")), "{plan}");
        let plan = ok(p.plan_grant_read_only(&grant), "plan_grant_read_only");
        assert!(!plan.is_empty());
        assert!(plan.sql().iter().any(|s| s.contains("CONNECT")), "{plan}");
        assert_eq!(
            (cluster_snapshot(sandbox), database_snapshot(sandbox, "dry_db")),
            before,
            "plan_ensure_extensions / plan_grant_read_only changed the catalog"
        );
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new(), "dry runs sent changes");
        assert_cannot_connect(sandbox, "dry_reader", "dry_db", &reader_pw);

        // 4. Granted: the revocation's plan.
        ok(p.grant_read_only(&grant), "grant_read_only");
        let before = (cluster_snapshot(sandbox), database_snapshot(sandbox, "dry_db"));
        let mark = log_mark(sandbox);
        let plan = ok(p.plan_revoke_read_only(&grant), "plan_revoke_read_only");
        assert!(!plan.is_empty());
        assert!(plan.sql().iter().any(|s| s.contains("REVOKE")), "{plan}");
        assert_eq!(
            (cluster_snapshot(sandbox), database_snapshot(sandbox, "dry_db")),
            before,
            "plan_revoke_read_only changed the catalog"
        );
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new(), "plan_revoke_read_only sent changes");
        login(sandbox, "dry_reader", "dry_db", &reader_pw)
            .query_one("SELECT count(*) FROM t", &[])
            .unwrap();

        // 5. An existing role that needs converging: the plan says so and changes nothing.
        create_login_role_by_hand(sandbox, "dry_legacy", &Password::new("legacy"));
        as_rdsadmin(sandbox, "postgres", "ALTER ROLE dry_legacy NOLOGIN CONNECTION LIMIT 2");
        let before = cluster_snapshot(sandbox);
        let mark = log_mark(sandbox);
        let plan = ok(
            p.plan_ensure_user(&UserSpec::new("dry_legacy").unwrap().connection_limit(4)),
            "plan_ensure_user(legacy)",
        );
        assert_eq!(plan.sql(), ["ALTER ROLE \"dry_legacy\" LOGIN CONNECTION LIMIT 4"]);
        assert_eq!(cluster_snapshot(sandbox), before);
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());

        assert_log_has_no_password(sandbox, &[&owner_pw, &reader_pw]);
    }
);

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

per_version!(
    fn bad_input_fails_with_a_typed_error_before_any_sql(sandbox) {
        // Names refused at spec construction.
        let too_long = "a".repeat(64);
        let too_long_bytes = "é".repeat(32); // 32 characters, 64 bytes
        let bad_names: Vec<&str> = vec![
            &too_long, &too_long_bytes, "", "nul\0inside", "pg_project", "pg_", "postgres", "rdsadmin",
            "rds_x", "rds_superuser", "public", "template0", "template1",
        ];
        for bad in &bad_names {
            let checks: Vec<(&str, rds_pg_core::Result<()>)> = vec![
                ("UserSpec::new", UserSpec::new(*bad).map(drop)),
                ("DatabaseSpec::new(name)", DatabaseSpec::new(*bad, "ok_owner").map(drop)),
                ("DatabaseSpec::new(owner)", DatabaseSpec::new("ok_db", *bad).map(drop)),
                ("ReadOnlyGrant::new(database)", ReadOnlyGrant::new(*bad, "ok_reader").map(drop)),
                ("ReadOnlyGrant::new(role)", ReadOnlyGrant::new("ok_db", *bad).map(drop)),
            ];
            for (what, result) in checks {
                let e = err(result, &format!("{what}({bad:?})"));
                assert_eq!(e.kind(), ErrorKind::InvalidName, "{what}({bad:?}): {e}");
                assert!(matches!(e, Error::InvalidName { .. }), "{what}({bad:?}): {e:?}");
            }
        }
        // The longest legal name (63 bytes) is fine.
        UserSpec::new("é".repeat(31) + "x").unwrap();

        // Set-up as rdsadmin: a superuser, a second admin (member of rds_superuser) and a role
        // that is one only indirectly.
        as_rdsadmin(
            sandbox,
            "postgres",
            "CREATE ROLE su_role SUPERUSER LOGIN;
             CREATE ROLE second_admin LOGIN; GRANT rds_superuser TO second_admin;
             CREATE ROLE nested_admin LOGIN; GRANT second_admin TO nested_admin;",
        );
        let mut p = provisioner(sandbox);
        let good_pw = provision_owner_and_database(sandbox, &mut p, "good_owner", "good_db", &[]);

        let cluster_before = cluster_snapshot(sandbox);
        let db_before = database_snapshot(sandbox, "good_db");
        let mark = log_mark(sandbox);

        // Roles rds-pg must not touch.
        let master = UserSpec::new(sandbox.master_user()).expect("master's name is a legal name");
        let e = err(p.ensure_user(&master), "ensure_user(master)");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let e = err(p.plan_ensure_user(&master), "plan_ensure_user(master)");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        for role in ["su_role", "second_admin", "nested_admin"] {
            let e = err(p.ensure_user(&UserSpec::new(role).unwrap()), &format!("ensure_user({role})"));
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "ensure_user({role}): {e}");
            let e = err(
                p.ensure_user(&UserSpec::new(role).unwrap().password("x-pw-x")),
                &format!("ensure_user({role}, password)"),
            );
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "ensure_user({role}): {e}");
        }

        // Owners that are a superuser or master.
        let e = err(p.ensure_database(&DatabaseSpec::new("su_db", "su_role").unwrap()), "owner su_role");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let e = err(
            p.plan_ensure_database(&DatabaseSpec::new("su_db", "su_role").unwrap()),
            "plan with owner su_role",
        );
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let e = err(
            p.ensure_database(&DatabaseSpec::new("master_db", sandbox.master_user()).unwrap()),
            "owner master",
        );
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");

        // Extensions the server does not have.
        let missing = Extension::Other("no_such_ext".into());
        let e = err(
            p.ensure_database(
                &DatabaseSpec::new("ext_db", "good_owner").unwrap().extension(Extension::Hstore).extension(missing.clone()),
            ),
            "ensure_database with a missing extension",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("no_such_ext"), "the error names the extension: {e}");
        let e = err(
            p.ensure_extensions(&db_name("good_db"), &[Extension::Citext, missing.clone()]),
            "ensure_extensions with a missing extension",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = err(
            p.plan_ensure_extensions(&db_name("good_db"), &[missing]),
            "plan_ensure_extensions with a missing extension",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        if !sandbox.has_postgis() {
            // Not installed (NotFound) or not creatable by master (PermissionDenied): either way
            // refused before any change.
            let e = err(p.ensure_extensions(&db_name("good_db"), &[Extension::Postgis]), "postgis without postgis");
            assert!(
                matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied),
                "{:?}: {e}",
                e.kind()
            );
        }

        let changes = changes_since(sandbox, mark);
        assert!(changes.is_empty(), "refused requests sent changing statements: {changes:#?}");
        assert_eq!(cluster_snapshot(sandbox), cluster_before, "refused requests changed roles or databases");
        assert_eq!(database_snapshot(sandbox, "good_db"), db_before, "refused requests changed good_db");
        login(sandbox, "good_owner", "good_db", &good_pw);
    }
);

// ---------------------------------------------------------------------------------------------
// Awkward names and passwords
// ---------------------------------------------------------------------------------------------

per_version!(
    fn awkward_names_and_passwords_are_provisioned_and_log_in(sandbox) {
        let mut p = provisioner(sandbox);
        let owner = "Weird \"Name\"";
        let reader = "ünïcødé_用户";
        let long_reader = "é".repeat(31) + "x"; // 63 bytes, the longest legal name
        let db = "My Project DB";
        let owner_pw = Password::new("it's a \\ back\\slash $$ dollar $q$ ñ 🔑 '; DROP ROLE x; --");
        let reader_pw = Password::new("p'a\\ss$$wörd-用户-\"q\"");

        let owner_spec = UserSpec::new(owner).unwrap().password(owner_pw.clone());
        let report = ok(p.ensure_user(&owner_spec), "ensure_user(Weird \"Name\")");
        assert_changed(&report, "ensure_user(Weird \"Name\")");
        assert!(
            report.steps.iter().any(|s| s.sql().contains("\"Weird \"\"Name\"\"\"")),
            "the name is quoted as an identifier: {report:#?}"
        );
        let db_spec = DatabaseSpec::new(db, owner).unwrap().extension(Extension::Hstore);
        assert_changed(&ok(p.ensure_database(&db_spec), "ensure_database(My Project DB)"), "ensure_database");
        let reader_spec = UserSpec::new(reader).unwrap().password(reader_pw.clone());
        assert_changed(&ok(p.ensure_user(&reader_spec), "ensure_user(unicode)"), "ensure_user(unicode)");
        let report = ok(p.ensure_user(&UserSpec::new(long_reader.as_str()).unwrap()), "ensure_user(63 bytes)");
        let long_pw = report.generated_password.clone().expect("generated password");
        let grant = ReadOnlyGrant::new(db, reader).unwrap();
        let long_grant = ReadOnlyGrant::new(db, long_reader.as_str()).unwrap();
        assert_changed(&ok(p.grant_read_only(&grant), "grant_read_only(unicode)"), "grant_read_only");
        assert_changed(&ok(p.grant_read_only(&long_grant), "grant_read_only(63 bytes)"), "grant_read_only");

        // Stored exactly as given.
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2, $3)",
                &[&owner, &reader, &long_reader],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
        let db_owner: String = admin
            .query_one("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1", &[&db])
            .unwrap()
            .get(0);
        assert_eq!(db_owner, owner);

        // Each logs in with its password.
        let mut o = login(sandbox, owner, db, &owner_pw);
        let me: String = o.query_one("SELECT current_user::text", &[]).unwrap().get(0);
        assert_eq!(me, owner);
        o.batch_execute(
            "CREATE TABLE \"Tabelle ü\" (id serial PRIMARY KEY, h hstore);
             INSERT INTO \"Tabelle ü\" (h) VALUES ('k=>v');",
        )
        .expect("the awkwardly named owner creates a table");
        for (user, pw) in [(reader, &reader_pw), (long_reader.as_str(), &long_pw)] {
            let mut r = login(sandbox, user, db, pw);
            let v: String = r.query_one("SELECT h -> 'k' FROM \"Tabelle ü\"", &[]).unwrap().get(0);
            assert_eq!(v, "v");
            let denied = expect_db_error(r.batch_execute("INSERT INTO \"Tabelle ü\" (h) VALUES ('')"), "insert");
            assert_eq!(denied.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
        }
        let e = connect_error(&sandbox.options_for(owner).dbname(db).password("wrong"));
        assert_password_refused(&e, owner);
        assert_no_temporary_membership(sandbox, owner);

        // Quoting is stable: second runs find nothing to do.
        let mark = log_mark(sandbox);
        assert_unchanged(&ok(p.ensure_user(&owner_spec), "again"), "ensure_user(Weird \"Name\") again");
        assert_unchanged(&ok(p.ensure_user(&reader_spec), "again"), "ensure_user(unicode) again");
        assert_unchanged(&ok(p.ensure_database(&db_spec), "again"), "ensure_database(My Project DB) again");
        assert_unchanged(&ok(p.grant_read_only(&grant), "again"), "grant_read_only(unicode) again");
        assert_unchanged(&ok(p.grant_read_only(&long_grant), "again"), "grant_read_only(63 bytes) again");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());

        assert_log_has_no_password(sandbox, &[&owner_pw, &reader_pw, &long_pw]);
    }
);

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

per_version!(
    fn two_provisioners_at_once_agree_on_one_result(sandbox) {
        let options = sandbox.master_options();
        provisioner(sandbox); // secures the instance once
        let owner_pw = Password::new("Concurrent-owner-pw");
        let reader_pw = Password::new("Concurrent-reader-pw");
        for round in 0..3 {
            let owner = format!("conc{round}_owner");
            let reader = format!("conc{round}_reader");
            let db = format!("conc{round}_db");
            let barrier = Barrier::new(2);
            let results: Vec<rds_pg_core::Result<[Report; 4]>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| -> rds_pg_core::Result<[Report; 4]> {
                            let mut p = Provisioner::connect(&options)?;
                            barrier.wait();
                            let u = p.ensure_user(&UserSpec::new(&owner)?.password(owner_pw.clone()))?;
                            let d = p.ensure_database(
                                &DatabaseSpec::new(&db, &owner)?.extension(Extension::Hstore),
                            )?;
                            let r = p.ensure_user(&UserSpec::new(&reader)?.password(reader_pw.clone()))?;
                            let g = p.grant_read_only(&ReadOnlyGrant::new(&db, &reader)?)?;
                            Ok([u, d, r, g])
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("thread panicked")).collect()
            });
            let reports: Vec<[Report; 4]> = results
                .into_iter()
                .enumerate()
                .map(|(i, r)| ok(r, &format!("round {round}, thread {i}")))
                .collect();
            for (i, what) in ["ensure_user(owner)", "ensure_database", "ensure_user(reader)", "grant_read_only"]
                .iter()
                .enumerate()
            {
                let changed = reports.iter().filter(|r| r[i].changed).count();
                assert_eq!(changed, 1, "round {round}: exactly one thread's {what} made the change");
            }

            let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
            let row = admin
                .query_one(
                    "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1),
                            (SELECT count(*) FROM pg_database WHERE datname = $2),
                            (SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $2)",
                    &[&owner, &db],
                )
                .unwrap();
            assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 1));
            assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some(owner.as_str()));

            let mut o = login(sandbox, &owner, &db, &owner_pw);
            assert_eq!(extension_owner(&mut o, "hstore").as_deref(), Some(owner.as_str()));
            o.batch_execute("CREATE TABLE t (id serial PRIMARY KEY, h hstore); INSERT INTO t (h) VALUES ('a=>b')")
                .unwrap();
            let mut r = login(sandbox, &reader, &db, &reader_pw);
            let n: i64 = r.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
            assert_eq!(n, 1);
            assert_no_temporary_membership(sandbox, &owner);
        }
        assert_log_has_no_password(sandbox, &[&owner_pw, &reader_pw]);
    }
);

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

per_version!(
    fn revoke_read_only_takes_the_access_away(sandbox) {
        let mut p = provisioner(sandbox);
        let owner_pw = provision_owner_and_database(sandbox, &mut p, "rev_owner", "rev_db", &[]);
        let mut owner = login(sandbox, "rev_owner", "rev_db", &owner_pw);
        owner.batch_execute("CREATE TABLE t (id serial PRIMARY KEY)").unwrap();
        let reader_pw = Password::new("Revoked-reader-pw");
        ok(p.ensure_user(&UserSpec::new("rev_reader").unwrap().password(reader_pw.clone())), "ensure_user");
        let grant = ReadOnlyGrant::new("rev_db", "rev_reader").unwrap();
        ok(p.grant_read_only(&grant), "grant_read_only");
        owner.batch_execute("CREATE TABLE t_later (id serial PRIMARY KEY)").unwrap();
        {
            let mut r = login(sandbox, "rev_reader", "rev_db", &reader_pw);
            r.query_one("SELECT count(*) FROM t", &[]).unwrap();
            r.query_one("SELECT count(*) FROM t_later", &[]).unwrap();
        }

        let report = ok(p.revoke_read_only(&grant), "revoke_read_only");
        assert_changed(&report, "revoke_read_only");
        assert_no_temporary_membership(sandbox, "rev_owner");
        assert_cannot_connect(sandbox, "rev_reader", "rev_db", &reader_pw);

        // Nothing of the grant is left: no privilege and no default privilege on any object.
        owner.batch_execute("CREATE TABLE t_after_revoke (id int)").unwrap();
        let mut admin = sandbox.connect_rdsadmin("rev_db").unwrap();
        let row = admin
            .query_one(
                "SELECT has_table_privilege('rev_reader', 't', 'SELECT'),
                        has_table_privilege('rev_reader', 't_later', 'SELECT'),
                        has_table_privilege('rev_reader', 't_after_revoke', 'SELECT'),
                        has_sequence_privilege('rev_reader', 't_id_seq', 'SELECT'),
                        (SELECT count(*) FROM pg_shdepend
                          WHERE refobjid = (SELECT oid FROM pg_roles WHERE rolname = 'rev_reader')
                            AND deptype IN ('a', 'o', 'i'))",
                &[],
            )
            .unwrap();
        let left: (bool, bool, bool, bool, i64) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(left, (false, false, false, false, 0), "privileges left after the revocation");

        // A second revocation has nothing to do and sends nothing.
        let mark = log_mark(sandbox);
        assert_unchanged(&ok(p.revoke_read_only(&grant), "revoke again"), "revoke_read_only again");
        assert!(ok(p.plan_revoke_read_only(&grant), "plan").is_empty());
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());

        // And the grant can be made again.
        assert_changed(&ok(p.grant_read_only(&grant), "grant again"), "grant_read_only again");
        let mut r = login(sandbox, "rev_reader", "rev_db", &reader_pw);
        r.query_one("SELECT count(*) FROM t_after_revoke", &[]).unwrap();
    }
);

// ---------------------------------------------------------------------------------------------
// Existing roles and memberships
// ---------------------------------------------------------------------------------------------

per_version!(
    fn an_existing_role_is_converged_and_keeps_its_password(sandbox) {
        let old_pw = Password::new("Legacy-old-pw");
        create_login_role_by_hand(sandbox, "legacy", &old_pw);
        sandbox
            .connect_master()
            .unwrap()
            .batch_execute("ALTER ROLE legacy NOLOGIN CREATEDB CREATEROLE CONNECTION LIMIT 3")
            .unwrap();
        let mut p = provisioner(sandbox);
        let spec = UserSpec::new("legacy")
            .unwrap()
            .password("Legacy-other-pw")
            .connection_limit(5)
            .valid_until("2100-01-01");
        // CREATEDB and CREATEROLE are more than a project role may hold: refused, with the SQL
        // that removes them, and nothing changed (whatever the role did with them needs a look).
        let mark = log_mark(sandbox);
        let e = err(p.ensure_user(&spec), "ensure_user(legacy) with CREATEDB CREATEROLE");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let fix = e.hint().expect("the fix").to_owned();
        assert!(fix.contains("ALTER ROLE \"legacy\" NOCREATEROLE NOCREATEDB"), "{fix}");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());

        // The operator removes them; then the role is converged.
        sandbox
            .connect_master()
            .unwrap()
            .batch_execute("ALTER ROLE \"legacy\" NOCREATEROLE NOCREATEDB")
            .unwrap();
        let report = ok(p.ensure_user(&spec), "ensure_user(legacy)");
        assert_changed(&report, "ensure_user(legacy)");
        assert!(report.generated_password.is_none());
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        let row = admin
            .query_one(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,
                        rolconnlimit, extract(year FROM rolvaliduntil)::int
                   FROM pg_roles WHERE rolname = 'legacy'",
                &[],
            )
            .unwrap();
        let got: (bool, bool, bool, bool, bool, bool, i32, Option<i32>) = (
            row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5), row.get(6), row.get(7),
        );
        assert_eq!(got, (true, false, false, false, false, false, 5, Some(2100)));
        // The password of an existing role is left alone.
        login(sandbox, "legacy", "postgres", &old_pw);
        let e = connect_error(&sandbox.options_for("legacy").password("Legacy-other-pw"));
        assert_password_refused(&e, "legacy");

        let mark = log_mark(sandbox);
        assert_unchanged(&ok(p.ensure_user(&spec), "again"), "ensure_user(legacy) again");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
    }
);

per_version!(
    fn leftover_memberships_are_removed_and_missing_admin_fails_with_the_fix(sandbox) {
        let mut p = provisioner(sandbox);
        // Master is a member of the owner (an operation that was killed, or a manual grant):
        // the next operation touching the owner uses the membership and removes it, saying so.
        let kept_pw = Password::new("Kept-owner-pw");
        ok(p.ensure_user(&UserSpec::new("kept_owner").unwrap().password(kept_pw.clone())), "ensure_user");
        sandbox.connect_master().unwrap().batch_execute("GRANT kept_owner TO CURRENT_USER").unwrap();
        let mut p = provisioner(sandbox);
        let report = ok(
            p.ensure_database(&DatabaseSpec::new("kept_db", "kept_owner").unwrap().extension(Extension::Hstore)),
            "ensure_database(kept_db)",
        );
        assert_changed(&report, "ensure_database(kept_db)");
        assert!(report.temporary_grants.is_empty(), "no new grant was needed: {report:#?}");
        assert!(
            report.notes.iter().any(|n| n.contains("membership of \"kept_owner\"")),
            "the removal is reported: {:?}",
            report.notes
        );
        assert_no_temporary_membership(sandbox, "kept_owner");
        login(sandbox, "kept_owner", "kept_db", &kept_pw)
            .batch_execute("CREATE TABLE t (h hstore)")
            .unwrap();
        // With nothing else to do, a leftover is still removed by any operation on the role.
        sandbox.connect_master().unwrap().batch_execute("GRANT kept_owner TO CURRENT_USER").unwrap();
        let report = ok(p.ensure_user(&UserSpec::new("kept_owner").unwrap()), "ensure_user again");
        assert_eq!(report.steps.iter().map(|s| s.sql()).collect::<Vec<_>>(), [format!("REVOKE \"kept_owner\" FROM \"{}\"", sandbox.master_user())]);
        assert_no_temporary_membership(sandbox, "kept_owner");
        let mark = log_mark(sandbox);
        assert_unchanged(&ok(p.ensure_user(&UserSpec::new("kept_owner").unwrap()), "and again"), "ensure_user");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
        // The same when the operation delivers credentials: the revoke commits, nothing is
        // delivered for a role that keeps its password.
        sandbox.connect_master().unwrap().batch_execute("GRANT kept_owner TO CURRENT_USER").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("kept.env");
        let delivery = rds_pg_core::CredentialDelivery::new(rds_pg_core::CredentialSink::EnvFile(env_file.clone()));
        let report = ok(
            p.ensure_user_delivering(&UserSpec::new("kept_owner").unwrap(), &delivery),
            "ensure_user_delivering with a leftover membership",
        );
        assert_eq!(report.steps.len(), 1, "{report:?}");
        assert!(report.notes.iter().any(|n| n.contains("nothing was written")), "{:?}", report.notes);
        assert!(!env_file.exists());
        assert_no_temporary_membership(sandbox, "kept_owner");

        // An owner master did not create: on 16+ master lacks ADMIN and must be told the fix.
        let foreign_pw = Password::new("Foreign-owner-pw");
        as_rdsadmin(
            sandbox,
            "postgres",
            &format!(
                "CREATE ROLE foreign_owner LOGIN PASSWORD {}",
                escape_literal(foreign_pw.scram_verifier().expose())
            ),
        );
        let spec = DatabaseSpec::new("foreign_db", "foreign_owner").unwrap();
        let mut p = provisioner(sandbox);
        if sandbox.major_version() >= 16 {
            let before = cluster_snapshot(sandbox);
            let mark = log_mark(sandbox);
            let e = err(p.ensure_database(&spec), "ensure_database with an owner master has no ADMIN on");
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
            let text = format!("{e} {}", e.hint().unwrap_or_default());
            assert!(
                text.contains("WITH ADMIN OPTION") && text.contains("foreign_owner"),
                "the error tells the fix (GRANT foreign_owner TO master WITH ADMIN OPTION): {text}"
            );
            assert_eq!(cluster_snapshot(sandbox), before, "nothing changed before the refusal");
            assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
            // The fix works.
            as_rdsadmin(
                sandbox,
                "postgres",
                &format!("GRANT foreign_owner TO {} WITH ADMIN OPTION", sandbox.master_user()),
            );
            let mut p = provisioner(sandbox);
            ok(p.ensure_database(&spec), "ensure_database after the fix");
        } else {
            ok(p.ensure_database(&spec), "ensure_database(foreign_owner) before 16");
            assert_no_temporary_membership(sandbox, "foreign_owner");
        }
        login(sandbox, "foreign_owner", "foreign_db", &foreign_pw)
            .batch_execute("CREATE TABLE t (id int)")
            .unwrap();
    }
);

// ---------------------------------------------------------------------------------------------
// postgis_topology (where the whitelist has it: PostgreSQL 15)
// ---------------------------------------------------------------------------------------------

per_version!(
    fn postgis_topology_is_handed_to_the_owner(sandbox) {
        if !sandbox.whitelisted_extensions().iter().any(|e| e == "postgis_topology") {
            eprintln!("postgis_topology not available on PostgreSQL {}: skipped", sandbox.major_version());
            return;
        }
        let mut p = provisioner(sandbox);
        let pw = provision_owner_and_database(
            sandbox,
            &mut p,
            "topo_owner",
            "topo_db",
            &[Extension::Postgis, Extension::PostgisTopology],
        );
        let mut owner = login(sandbox, "topo_owner", "topo_db", &pw);
        for table in ["public.spatial_ref_sys", "topology.topology", "topology.layer"] {
            assert_eq!(table_owner(&mut owner, table), "topo_owner", "{table}");
        }
        owner
            .query_one("SELECT topology.CreateTopology('topo1', 4326)", &[])
            .expect("the owner creates a topology");

        let reader_pw = Password::new("Topo-reader-pw");
        ok(p.ensure_user(&UserSpec::new("topo_reader").unwrap().password(reader_pw.clone())), "ensure_user");
        let grant = ReadOnlyGrant::new("topo_db", "topo_reader")
            .unwrap()
            .schemas(["public", "topology"])
            .unwrap();
        ok(p.grant_read_only(&grant), "grant_read_only(public, topology)");
        let mut r = login(sandbox, "topo_reader", "topo_db", &reader_pw);
        let n: i64 = r.query_one("SELECT count(*) FROM topology.topology", &[]).unwrap().get(0);
        assert_eq!(n, 1);

        let mark = log_mark(sandbox);
        let spec = DatabaseSpec::new("topo_db", "topo_owner")
            .unwrap()
            .extensions([Extension::Postgis, Extension::PostgisTopology]);
        assert_unchanged(&ok(p.ensure_database(&spec), "again"), "ensure_database(topology) again");
        assert_unchanged(&ok(p.grant_read_only(&grant), "again"), "grant_read_only(topology) again");
        assert_eq!(changes_since(sandbox, mark), Vec::<String>::new());
    }
);

// ---------------------------------------------------------------------------------------------
// Lock timeout
// ---------------------------------------------------------------------------------------------

/// `Provisioner::with_lock_timeout` as a plain builder or a fallible one.
trait IntoProvisioner {
    fn into_provisioner(self) -> Provisioner;
}

impl IntoProvisioner for Provisioner {
    fn into_provisioner(self) -> Provisioner {
        self
    }
}

impl IntoProvisioner for rds_pg_core::Result<Provisioner> {
    fn into_provisioner(self) -> Provisioner {
        ok(self, "with_lock_timeout")
    }
}

per_version!(
    fn a_busy_table_fails_clearly_within_the_lock_timeout(sandbox) {
        if !sandbox.has_postgis() {
            eprintln!("no PostGIS on PostgreSQL {}: skipped", sandbox.major_version());
            return;
        }
        let mut p = provisioner(sandbox);
        let pw = provision_owner_and_database(sandbox, &mut p, "busy_owner", "busy_db", &[]);
        // PostGIS created by hand: spatial_ref_sys still needs re-owning (ALTER TABLE … OWNER
        // takes an ACCESS EXCLUSIVE lock).
        login_as_application(&sandbox.master_options().dbname("busy_db"))
            .unwrap()
            .batch_execute("CREATE EXTENSION postgis")
            .unwrap();
        let mut holder = sandbox.connect_rdsadmin("busy_db").unwrap();
        holder
            .batch_execute("BEGIN; LOCK TABLE spatial_ref_sys IN ACCESS SHARE MODE")
            .unwrap();

        let mut p = provisioner(sandbox).with_lock_timeout(Duration::from_secs(1)).into_provisioner();
        let spec = DatabaseSpec::new("busy_db", "busy_owner").unwrap().extension(Extension::Postgis);
        let started = Instant::now();
        let e = err(p.ensure_database(&spec), "ensure_database while spatial_ref_sys is locked");
        let waited = started.elapsed();
        assert_eq!(e.kind(), ErrorKind::StillInUse, "{e}");
        assert!(waited < Duration::from_secs(8), "the 1 s lock timeout applies (waited {waited:?})");
        assert_no_temporary_membership(sandbox, "busy_owner");

        // Once the lock is gone the same provisioner finishes the job.
        holder.batch_execute("ROLLBACK").unwrap();
        assert_changed(&ok(p.ensure_database(&spec), "ensure_database after the lock"), "ensure_database");
        let mut owner = login(sandbox, "busy_owner", "busy_db", &pw);
        assert_eq!(table_owner(&mut owner, "public.spatial_ref_sys"), "busy_owner");
        assert_no_temporary_membership(sandbox, "busy_owner");
    }
);

per_version!(
    fn a_busy_catalog_row_fails_clearly_and_leaves_no_membership_behind(sandbox) {
        let mut p = provisioner(sandbox);
        let pw = provision_owner_and_database(sandbox, &mut p, "lock_owner", "lock_db", &[]);
        login(sandbox, "lock_owner", "lock_db", &pw)
            .batch_execute("CREATE TABLE t1 (id serial PRIMARY KEY)")
            .unwrap();
        let reader_pw = Password::new("Lock-reader-pw");
        ok(p.ensure_user(&UserSpec::new("lock_reader").unwrap().password(reader_pw.clone())), "ensure_user");

        // Another session changed t1's privileges and has not committed: GRANT … ON t1 must wait.
        let mut holder = sandbox.connect_rdsadmin("lock_db").unwrap();
        holder.batch_execute("BEGIN; GRANT INSERT ON TABLE t1 TO PUBLIC").unwrap();

        let mut p = provisioner(sandbox).with_lock_timeout(Duration::from_secs(1)).into_provisioner();
        let grant = ReadOnlyGrant::new("lock_db", "lock_reader").unwrap();
        let started = Instant::now();
        let e = err(p.grant_read_only(&grant), "grant_read_only while t1's row is being changed");
        let waited = started.elapsed();
        assert_eq!(e.kind(), ErrorKind::StillInUse, "{e}");
        assert!(e.to_string().contains("lock"), "the error says a lock was not obtained: {e}");
        assert!(waited < Duration::from_secs(8), "the 1 s lock timeout applies (waited {waited:?})");
        // A failure half-way still revokes the temporary membership.
        assert_no_temporary_membership(sandbox, "lock_owner");

        // Once the other session is done the same provisioner completes the grant.
        holder.batch_execute("ROLLBACK").unwrap();
        assert_changed(&ok(p.grant_read_only(&grant), "grant_read_only after the lock"), "grant_read_only");
        let mut r = login(sandbox, "lock_reader", "lock_db", &reader_pw);
        r.query_one("SELECT count(*) FROM t1", &[]).unwrap();
        // The session is master again, not stuck as the owner (who may not create roles).
        assert_changed(&ok(p.ensure_user(&UserSpec::new("lock_after").unwrap()), "ensure_user after"), "ensure_user");
        assert_no_temporary_membership(sandbox, "lock_owner");
    }
);

// ---------------------------------------------------------------------------------------------
// A database made without rds-pg's ACL (issue 13)
// ---------------------------------------------------------------------------------------------

/// Master's own entries in the ACL of database `db` (`master=c/owner`), read as rdsadmin.
fn master_acl_entries(sandbox: &Sandbox, db: &str) -> Vec<String> {
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    admin
        .query(
            "SELECT a.privilege_type || '/' || g.rolname
               FROM pg_database d,
                    aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a,
                    pg_roles m, pg_roles g
              WHERE d.datname = $1 AND m.oid = a.grantee AND m.rolname = $2
                AND g.oid = a.grantor
              ORDER BY 1",
            &[&db, &sandbox.master_user()],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

per_version!(
    fn a_database_created_by_hand_or_by_a_killed_run_gets_master_s_connect(sandbox) {
        use rds_pg_core::provision::fault::{Fault, FaultPoint};
        let mut p = provisioner(sandbox);
        let shop_pw = Password::generate().unwrap();
        ok(
            p.ensure_user(&UserSpec::new("hshop").unwrap().password(shop_pw.clone())),
            "ensure_user",
        );
        let outsider_pw = Password::generate().unwrap();
        create_login_role_by_hand(sandbox, "houtsider", &outsider_pw);

        // By hand: `CREATE DATABASE d OWNER o` leaves the default ACL (PUBLIC may connect).
        as_rdsadmin(sandbox, "postgres", "CREATE DATABASE hshop_db OWNER hshop");
        // And a run killed right after its CREATE DATABASE, before the ACL statements.
        let mut killed = provisioner(sandbox);
        killed.set_fault_hook(Some(Box::new(|point: &FaultPoint<'_>| {
            if point.steps.iter().any(|s| s.sql().ends_with("FROM PUBLIC")) {
                Fault::Abandon
            } else {
                Fault::Continue
            }
        })));
        let e = err(
            killed.ensure_database(&DatabaseSpec::new("hshop_killed", "hshop").unwrap()),
            "ensure_database killed after CREATE DATABASE",
        );
        assert!(matches!(e, Error::Abandoned), "{e:?}");
        drop(killed);

        for db in ["hshop_db", "hshop_killed"] {
            assert!(master_acl_entries(sandbox, db).is_empty(), "{db}: no master entry yet");
            let spec = DatabaseSpec::new(db, "hshop").unwrap();
            // The dry run lists what the run does.
            let plan = ok(p.plan_ensure_database(&spec), "plan_ensure_database");
            let grant = format!("GRANT CONNECT ON DATABASE \"{db}\" TO \"master\"");
            assert!(plan.sql().contains(&grant), "{db}: {plan}");
            let mut fresh = provisioner(sandbox);
            let report = ok(fresh.ensure_database(&spec), "ensure_database");
            assert_changed(&report, db);
            assert!(report.steps.iter().any(|s| s.sql() == grant), "{report:#?}");
            assert_eq!(
                master_acl_entries(sandbox, db),
                ["CONNECT/hshop"],
                "{db}: master holds its own CONNECT, granted by the owner"
            );
            // Users notice: master connects, the owner connects and creates, a login role that
            // is not the project's is refused; the next run changes nothing.
            login_as_application(&sandbox.master_options().dbname(db))
                .unwrap_or_else(|e| panic!("master connects to {db}: {e}"));
            login(sandbox, "hshop", db, &shop_pw)
                .batch_execute("CREATE TABLE t (id int)")
                .unwrap();
            assert_cannot_connect(sandbox, "houtsider", db, &outsider_pw);
            let mark = log_mark(sandbox);
            assert_unchanged(
                &ok(provisioner(sandbox).ensure_database(&spec), "third run"),
                db,
            );
            assert!(changes_since(sandbox, mark).is_empty(), "{db}: the third run sends no change");
            assert_no_temporary_membership(sandbox, "hshop");
        }
    }
);
