//! The sandbox behaves like an RDS instance for a non-superuser master, on every version.

use postgres_protocol::escape::escape_literal;
use rds_pg_core::{connect, Error, ErrorKind, Password, SqlState, SslMode};
use rds_pg_tests::{
    assert_password_refused, connect_error, expect_db_error, login_as_application, per_version,
    refused_login,
};

per_version!(
    fn master_is_not_a_superuser(sandbox) {
        let mut master = sandbox.connect_master().unwrap();
        let row = master
            .query_one(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,
                        pg_has_role(current_user, 'rds_superuser', 'MEMBER')
                   FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .unwrap();
        let flags: (bool, bool, bool, bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        assert_eq!(flags, (false, true, true, false, false, true));

        // pg_authid is not readable: the typed error is a permission error.
        let err = Error::from(master.query("SELECT rolpassword FROM pg_authid", &[]).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert_eq!(err.sqlstate(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));

        let err = Error::from(master.batch_execute("CREATE ROLE would_be_super SUPERUSER").unwrap_err());
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let expected = if sandbox.major_version() >= 16 {
            "Only roles with the SUPERUSER attribute may create roles with the SUPERUSER attribute"
        } else {
            "must be superuser to create superusers"
        };
        assert!(err.to_string().contains(expected), "{err}");

        // The postgres and template1 databases belong to master; rdsadmin is off limits.
        let owned: i64 = master
            .query_one(
                "SELECT count(*) FROM pg_database
                  WHERE datname IN ('postgres', 'template1') AND datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(owned, 2);
        let err = connect_error(&sandbox.master_options().dbname("rdsadmin"));
        let refused = refused_login(&err, &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
        assert!(
            refused.message().starts_with("pg_hba.conf rejects connection")
                && refused.message().contains("database \"rdsadmin\""),
            "as on RDS, pg_hba.conf keeps master out of rdsadmin: {err}"
        );
    }
);

per_version!(
    fn the_seeds_alter_database_owner_fails_as_on_rds(sandbox) {
        let mut master = sandbox.connect_master().unwrap();
        master
            .batch_execute("CREATE ROLE project_user LOGIN")
            .unwrap();
        master.batch_execute("CREATE DATABASE project_db TEMPLATE template0").unwrap();
        let db = expect_db_error(
            master.batch_execute("ALTER DATABASE project_db OWNER TO project_user"),
            "alter database owner without membership",
        );
        let expected = if sandbox.major_version() >= 16 {
            "must be able to SET ROLE \"project_user\""
        } else {
            "must be member of role \"project_user\""
        };
        assert_eq!(db.message(), expected);
        // The portable fix works: gain membership first.
        master
            .batch_execute("GRANT project_user TO CURRENT_USER; ALTER DATABASE project_db OWNER TO project_user;")
            .unwrap();
    }
);

per_version!(
    fn roles_master_did_not_create_cannot_be_granted_to_it_on_16_and_later(sandbox) {
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        admin.batch_execute("CREATE ROLE made_by_admin NOLOGIN").unwrap();
        let mut master = sandbox.connect_master().unwrap();
        let result = master.batch_execute("GRANT made_by_admin TO CURRENT_USER");
        if sandbox.major_version() >= 16 {
            let db = expect_db_error(result, "grant of a role master did not create");
            assert_eq!(db.message(), "permission denied to grant role \"made_by_admin\"");
            // A role master created itself can be granted.
            master.batch_execute("CREATE ROLE made_by_master; GRANT made_by_master TO CURRENT_USER").unwrap();
        } else {
            result.expect("CREATEROLE may grant any non-superuser role before 16");
        }
    }
);

per_version!(
    fn extensions_follow_the_whitelist(sandbox) {
        let mut master = sandbox.connect_master().unwrap();
        // The portable recipe: master gains membership of p, then creates p's database.
        master.batch_execute("CREATE ROLE p LOGIN; GRANT p TO CURRENT_USER").unwrap();
        master.batch_execute("CREATE DATABASE extdb OWNER p TEMPLATE template0").unwrap();
        let mut db = login_as_application(&sandbox.master_options().dbname("extdb")).unwrap();
        // A trusted extension works for master everywhere, as on RDS 13+.
        db.batch_execute("CREATE EXTENSION hstore").unwrap();

        if sandbox.major_version() != 15 {
            // pgextwlist is packaged for 15 only; elsewhere untrusted extensions are unavailable.
            let err = Error::from(db.batch_execute("CREATE EXTENSION pg_stat_statements").unwrap_err());
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
            return;
        }
        assert!(
            sandbox.has_postgis(),
            "PostgreSQL 15 sandbox without PostGIS/pgextwlist: run `make setup` \
             (apt-get install postgresql-15-postgis-3 postgresql-15-pgextwlist)"
        );
        db.batch_execute("CREATE EXTENSION postgis").unwrap();
        let owner: String = db
            .query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'spatial_ref_sys'", &[])
            .unwrap()
            .get(0);
        assert_eq!(owner, "rds_superuser", "the after-create hook re-owns PostGIS's table as RDS does");
        db.batch_execute("ALTER TABLE spatial_ref_sys OWNER TO p").unwrap();
        let owner: String = db
            .query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'spatial_ref_sys'", &[])
            .unwrap()
            .get(0);
        assert_eq!(owner, "p");

        // pgextwlist 1.17+ hands extensions off its list back to PostgreSQL, whose rule for an
        // untrusted extension and a non-superuser applies (rds-semantics.md quotes an older
        // "is not whitelisted" message).
        let not_listed = expect_db_error(db.batch_execute("CREATE EXTENSION file_fdw"), "file_fdw");
        assert_eq!(not_listed.message(), "permission denied to create extension \"file_fdw\"");
        assert_eq!(not_listed.hint(), Some("Must be superuser to create this extension."));

        // The project user cannot create PostGIS (not whitelisted for it), even with CREATE.
        let p_pw = Password::generate().unwrap();
        master
            .batch_execute(&format!(
                "ALTER ROLE p PASSWORD {}",
                escape_literal(p_pw.scram_verifier().expose())
            ))
            .unwrap();
        let mut as_p = login_as_application(&sandbox.options_for("p").dbname("extdb").password(p_pw.clone())).unwrap();
        let denied = expect_db_error(as_p.batch_execute("CREATE EXTENSION postgis_topology"), "p creates postgis");
        assert_eq!(denied.message(), "permission denied to create extension \"postgis_topology\"");
    }
);

per_version!(
    fn logins_use_scram_and_tls_where_rds_requires_it(sandbox) {
        // The generated master password works (SCRAM verifier stored; md5 hba on 13 still does SCRAM).
        let mut master = sandbox.connect_master().unwrap();
        let method: String = master
            .query_one("SELECT left(current_setting('password_encryption'), 3)", &[])
            .unwrap()
            .get(0);
        assert_eq!(method, if sandbox.major_version() >= 14 { "scr" } else { "md5" });

        let wrong = sandbox.master_options().password("not-the-password");
        let err = connect_error(&wrong);
        assert_password_refused(&err, sandbox.master_user());
        assert!(!err.to_string().contains("not-the-password"));

        if sandbox.major_version() >= 15 {
            let plain = sandbox.master_options().sslmode(SslMode::Disable);
            let err = connect_error(&plain);
            let refused = refused_login(&err, &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
            assert!(
                refused.message().starts_with("no pg_hba.conf entry")
                    && refused.message().contains("no encryption"),
                "TLS is required: {err}"
            );
            let ssl: bool = master
                .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                .unwrap()
                .get(0);
            assert!(ssl, "verify-full against the sandbox CA is in use");
            // A CA that did not sign the server certificate is refused.
            let other_ca = unrelated_ca_file();
            let err = connect_error(&sandbox.master_options().sslrootcert(other_ca.path()));
            assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
            // verify-full checks the host name; "localhost" is in the certificate too.
            connect(&sandbox.master_options().host("localhost")).unwrap();
        } else {
            assert!(sandbox.ca_cert_path().is_none());
        }

        // A password set through scram_verifier() never reaches the log in cleartext.
        let secret = Password::new("Cl34rtext-must-not-leak");
        master
            .batch_execute(&format!(
                "CREATE ROLE logged LOGIN PASSWORD {}",
                escape_literal(secret.scram_verifier().expose())
            ))
            .unwrap();
        connect(&sandbox.options_for("logged").password(secret.clone())).unwrap();
        let log = sandbox.log_text().unwrap();
        assert!(log.contains("CREATE ROLE logged LOGIN PASSWORD 'SCRAM-SHA-256$"), "statements are logged");
        assert!(!log.contains(secret.expose()));
        assert!(!log.contains(sandbox.master_password().expose()));
    }
);

/// A CA unrelated to the server's, as a PEM file.
fn unrelated_ca_file() -> tempfile::NamedTempFile {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, pem.as_bytes()).unwrap();
    file
}

per_version!(
    /// The test-only server control the fault-injection suite uses: a restart ends every session
    /// and keeps the port and the data; a stopped server refuses connections at once until it is
    /// started again.
    fn the_server_restarts_stops_and_starts_on_its_port(sandbox) {
        let mut before = sandbox.connect_master().unwrap();
        before.batch_execute("CREATE ROLE kept_across_restarts").unwrap();
        let port = sandbox.port();
        sandbox.restart().unwrap();
        assert!(before.batch_execute("SELECT 1").is_err(), "a restart ends the sessions");
        let mut after = sandbox.connect_master().unwrap();
        let n: i64 = after
            .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'kept_across_restarts'", &[])
            .unwrap()
            .get(0);
        assert_eq!((n, sandbox.port()), (1, port), "same data, same port");

        let control = sandbox.control();
        control.stop().unwrap();
        assert!(!control.is_running().unwrap());
        let started = std::time::Instant::now();
        let err = connect_error(&sandbox.master_options());
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "refused at once");
        control.start().unwrap();
        assert!(control.is_running().unwrap());
        sandbox.connect_master().unwrap().batch_execute("SELECT 1").unwrap();
    }
);
