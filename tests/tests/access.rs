//! Reaching RDS from outside its network (issue 15): `hostaddr` connects to an address while
//! `verify-full`, the password file and the client tools keep the endpoint's name.
//!
//! The sandbox's certificate carries [`ENDPOINT_NAME`], a name that never resolves: a connection
//! to it reaches the sandbox only through the hostaddr, so every success below shows that the
//! address was used, and (15+, where the sandbox requires TLS) that the certificate was checked
//! for the name.

use std::net::{IpAddr, Ipv4Addr};

use rds_pg_core::sandbox::ENDPOINT_NAME;
use rds_pg_core::{
    connect, dump, restore, ConnectOptions, DatabaseSpec, DumpOptions, ErrorKind, Password,
    RestoreOptions, UserSpec,
};
use rds_pg_tests::{connect_error, login_as_application, ok, per_version, provisioner, Sandbox};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `options` aimed at the sandbox under its endpoint name, through the loopback address.
fn through_hostaddr(options: ConnectOptions) -> ConnectOptions {
    options.host(ENDPOINT_NAME).hostaddr(LOOPBACK)
}

/// Whether this sandbox requires TLS (verify-full against its CA), as RDS does on 15+.
fn has_tls(sandbox: &Sandbox) -> bool {
    sandbox.ca_cert_path().is_some()
}

per_version!(
    /// Master connects by the endpoint name at the loopback address; without the address the
    /// name does not resolve; on 15+ a name the certificate does not carry is refused by
    /// verify-full even at the right address.
    fn hostaddr_connects_to_the_address_and_verifies_the_name(sandbox) {
        let master = through_hostaddr(sandbox.master_options());
        let mut client = ok(connect(&master), "connect by name at 127.0.0.1");
        let row = client
            .query_one(
                "SELECT current_user::text, host(inet_client_addr())",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), sandbox.master_user());
        assert_eq!(row.get::<_, String>(1), "127.0.0.1");
        if has_tls(sandbox) {
            let ssl: bool = client
                .query_one(
                    "SELECT ssl FROM pg_catalog.pg_stat_ssl \
                     WHERE pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0);
            assert!(ssl, "verify-full over TLS");
        }

        let unresolved = connect_error(&sandbox.master_options().host(ENDPOINT_NAME));
        assert_eq!(unresolved.kind(), ErrorKind::Connection, "{unresolved}");

        if has_tls(sandbox) {
            let wrong = connect_error(&master.clone().host("other.rds-pg.invalid"));
            assert_eq!(wrong.kind(), ErrorKind::Tls, "{wrong}");
            assert!(wrong.to_string().contains("other.rds-pg.invalid"), "{wrong}");
            // verify-ca checks the CA only, as libpq's does: the wrong name is then accepted.
            ok(
                connect(
                    &master
                        .clone()
                        .host("other.rds-pg.invalid")
                        .sslmode(rds_pg_core::SslMode::VerifyCa),
                ),
                "verify-ca ignores the name",
            );
        }

        // From a connection string, as PGHOSTADDR or `hostaddr=` would give it.
        let mut from_string = sandbox.master_options();
        ok(
            from_string
                .apply_str(&format!("host={ENDPOINT_NAME} hostaddr=127.0.0.1"))
                .map(|_| ()),
            "apply hostaddr",
        );
        ok(connect(&from_string), "connect with hostaddr from a string");
    }
);

per_version!(
    /// The password file is searched for the host, not the address, as libpq does.
    fn pgpass_is_matched_by_host_name(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let passfile = dir.path().join("pgpass");
        let write = |host: &str| {
            let line = rds_pg_core::pgpass::format_line(
                host,
                sandbox.port(),
                "*",
                sandbox.master_user(),
                sandbox.master_password(),
            )
            .unwrap();
            std::fs::write(&passfile, format!("{}\n", line.expose())).unwrap();
            let mut perms = std::fs::metadata(&passfile).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            std::fs::set_permissions(&passfile, perms).unwrap();
        };
        let master = through_hostaddr(sandbox.options_for(sandbox.master_user())).passfile(&passfile);
        write(ENDPOINT_NAME);
        ok(connect(&master), "password from the line for the endpoint name");
        write("127.0.0.1");
        let err = connect_error(&master);
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(
            err.to_string().contains("password"),
            "no password found for the name: {err}"
        );
    }
);

per_version!(
    /// pg_dump and pg_restore (and psql where the restore goes through it) reach the server by
    /// the endpoint name at the address: the name alone does not resolve, so a working round trip
    /// shows that they were given the address, and on 15+ that verify-full accepted the name.
    fn dump_and_restore_go_to_the_hostaddr(sandbox) {
        let mut master = provisioner(sandbox);
        let password = Password::new("shop-Secr3t-pw");
        ok(
            master.ensure_user(&UserSpec::new("shop").unwrap().password(password.clone())),
            "ensure_user",
        );
        for db in ["shop", "shop_copy"] {
            ok(
                master.ensure_database(&DatabaseSpec::new(db, "shop").unwrap()),
                "ensure_database",
            );
        }
        let shop = through_hostaddr(sandbox.options_for("shop").password(password));
        let mut c = ok(login_as_application(&shop.for_database("shop")), "login");
        c.batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, item text);
             INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 50) g;",
        )
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        ok(dump(&DumpOptions::new(shop.for_database("shop"), &archive)), "dump through hostaddr");
        ok(
            restore(&RestoreOptions::new(shop.for_database("shop_copy"), &archive)),
            "restore through hostaddr",
        );
        let mut copy = ok(login_as_application(&shop.for_database("shop_copy")), "login");
        let row = copy
            .query_one("SELECT count(*), max(item) FROM orders", &[])
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 50);
        assert_eq!(row.get::<_, String>(1), "item 9");
    }
);
