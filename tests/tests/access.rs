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

// ---------------------------------------------------------------------------------------------
// password_command
// ---------------------------------------------------------------------------------------------

/// A password command that prints `password` (kept in a private file in `dir`) and counts its
/// runs in `dir/runs`.
fn printing_command(dir: &std::path::Path, password: &Password) -> Vec<String> {
    let file = dir.join("secret");
    std::fs::write(&file, format!("{}\n", password.expose())).unwrap();
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&file, perms).unwrap();
    let script = format!(
        "echo run >> '{runs}'; cat '{file}'",
        runs = dir.join("runs").display(),
        file = file.display()
    );
    vec!["sh".into(), "-c".into(), script]
}

fn runs(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

per_version!(
    /// The command's output is the password of each connection: it runs once per connection
    /// (never cached), for rds-pg's own connections and for pg_dump/pg_restore (which get it
    /// through their private password file); a failing command is a typed error with its
    /// standard error and nothing is sent to the server; the password is never logged.
    fn password_command_runs_once_per_connection(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let master = sandbox
            .options_for(sandbox.master_user())
            .password_command(printing_command(dir.path(), sandbox.master_password()));
        let mark = rds_pg_tests::log_mark(sandbox);
        ok(connect(&master), "connect with the command's password");
        assert_eq!(runs(dir.path()), 1);
        ok(connect(&master), "connect again");
        assert_eq!(runs(dir.path()), 2, "run again for the second connection, not cached");

        let mut provisioner = ok(rds_pg_core::Provisioner::connect(&master), "Provisioner");
        ok(provisioner.secure_instance(), "secure_instance");
        let shop_dir = tempfile::tempdir().unwrap();
        let shop_password = Password::new("shop-T0ken-like-pw");
        ok(
            provisioner.ensure_user(&UserSpec::new("shop").unwrap().password(shop_password.clone())),
            "ensure_user",
        );
        for db in ["shop", "shop_copy"] {
            ok(
                provisioner.ensure_database(&DatabaseSpec::new(db, "shop").unwrap()),
                "ensure_database",
            );
        }
        let shop = sandbox
            .options_for("shop")
            .password_command(printing_command(shop_dir.path(), &shop_password));
        let mut c = ok(login_as_application(&shop.for_database("shop")), "login as shop");
        c.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let before = runs(shop_dir.path());
        let archive = dir.path().join("shop.dump");
        ok(dump(&DumpOptions::new(shop.for_database("shop"), &archive)), "dump");
        ok(
            restore(&RestoreOptions::new(shop.for_database("shop_copy"), &archive)),
            "restore",
        );
        assert!(runs(shop_dir.path()) >= before + 2, "dump and restore ran the command");
        let mut copy = ok(login_as_application(&shop.for_database("shop_copy")), "login");
        let n: i64 = copy.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
        assert_eq!(n, 2);

        // A failing command: its standard error, never its output; no login attempt at all.
        let connections_before = rds_pg_tests::log_mark(sandbox);
        let failing = sandbox.options_for(sandbox.master_user()).password_command([
            "sh",
            "-c",
            "echo leaked-output; echo 'Unable to locate credentials' >&2; exit 255",
        ]);
        let err = connect_error(&failing);
        assert_eq!(err.kind(), ErrorKind::Tool, "{err}");
        assert!(err.to_string().contains("Unable to locate credentials"), "{err}");
        assert!(!err.to_string().contains("leaked-output"), "{err}");
        let missing = sandbox
            .options_for(sandbox.master_user())
            .password_command(["/nonexistent/aws", "rds", "generate-db-auth-token"]);
        assert_eq!(connect_error(&missing).kind(), ErrorKind::NotFound);
        let after = sandbox.log_text().unwrap();
        assert!(
            !after[connections_before..].contains("connection authorized"),
            "no connection was made with a failing command"
        );
        // A wrong password from the command is refused like any wrong password.
        let wrong = sandbox
            .options_for(sandbox.master_user())
            .password_command(["echo", "not-the-password"]);
        rds_pg_tests::assert_password_refused(&connect_error(&wrong), sandbox.master_user());

        let log = sandbox.log_text().unwrap();
        assert!(!log[mark..].contains(sandbox.master_password().expose()));
        assert!(!log[mark..].contains(shop_password.expose()));
    }
);

per_version!(
    /// An inventory instance whose master password is a command (`master_password = { command
    /// = […] }`, the instance's password command) connects with it, once per connection, through
    /// the SSH forward its `via` names; a `via` ssh would read as an option is refused.
    fn inventory_password_command_and_via_log_master_in(sandbox) {
        let sshd = Sshd::start();
        let dir = tempfile::tempdir().unwrap();
        let argv = printing_command(dir.path(), sandbox.master_password());
        let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
        let text = format!(
            r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "sandbox"
client = "acme"
environment = "staging"
region = "eu-west-1"
postgres_major = {major}
endpoint = "127.0.0.1"
port = {port}
master_user = "{user}"
master_password = {{ command = [{argv}] }}
via = "{HOST_ALIAS}"
{tls}"#,
            major = sandbox.major_version(),
            port = sandbox.port(),
            user = sandbox.master_user(),
            argv = quoted.join(", "),
            tls = rds_pg_tests::fleet::instance_tls(sandbox),
        );
        let inventory = ok(
            rds_pg_core::inventory::Inventory::from_str(&text, "fleet.toml"),
            "load the inventory",
        );
        let instance = inventory.instance("sandbox").unwrap();
        let master = ok(instance.connect_options(), "connect_options");
        assert_eq!(master.get_user(), sandbox.master_user());
        assert!(master.get_password().is_none());
        let forward = instance.forward().expect("via").config_file(sshd.client_config());
        assert_eq!(forward.destination(), HOST_ALIAS);
        let tunnel = ok(forward.open(&master), "open the forward of via");
        let master = tunnel.apply(master);
        let mut provisioner = ok(rds_pg_core::Provisioner::connect(&master), "connect");
        ok(provisioner.secure_instance(), "secure_instance");
        assert!(runs(dir.path()) >= 1);
        let before = runs(dir.path());
        ok(connect(&master), "connect again");
        assert_eq!(runs(dir.path()), before + 1);
        drop((provisioner, tunnel));

        let bad = text.replace(&format!("via = \"{HOST_ALIAS}\""), "via = \"-oProxyCommand=sh\"");
        let err = rds_pg_core::inventory::Inventory::from_str(&bad, "fleet.toml").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("via"), "{err}");
    }
);

// ---------------------------------------------------------------------------------------------
// SSH forward
// ---------------------------------------------------------------------------------------------

use rds_pg_core::tunnel::SshForward;
use rds_pg_tests::sshd::{
    account as sshd_account, files_holding, processes_with, Account, Sshd, HOST_ALIAS,
    REFUSED_ALIAS,
};
use rds_pg_tests::vpc::Vpc;
use rds_pg_tests::{start_sandbox, SandboxOptions};
use std::path::Path;

fn forward(sshd: &Sshd) -> SshForward {
    ok(SshForward::new(HOST_ALIAS), "SshForward::new").config_file(sshd.client_config())
}

fn assert_gone(pid: u32, local: std::net::SocketAddr) {
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "ssh {pid} is still running"
    );
    assert!(
        std::net::TcpStream::connect(local).is_err(),
        "the forward {local} still listens"
    );
}

/// `options` aimed at the sandbox under its endpoint name, at `address`.
fn at(options: ConnectOptions, address: Ipv4Addr) -> ConnectOptions {
    options.host(ENDPOINT_NAME).hostaddr(IpAddr::V4(address))
}

/// The files in the application server account's home, and those it owns in the temporary
/// directories, that hold `secret`.
fn files_with_secret(account: &Account, secret: &str) -> Vec<std::path::PathBuf> {
    let mut found = files_holding(&account.home, None, secret.as_bytes());
    for tmp in ["/tmp", "/var/tmp", "/dev/shm"] {
        found.extend(files_holding(
            Path::new(tmp),
            Some(account.uid),
            secret.as_bytes(),
        ));
    }
    found
}

per_version!(
    /// The sandbox behind a security group that admits only an application server (a network
    /// namespace of the test's own with a throw-away sshd in it, tests/vpc.rs): a direct
    /// connection finds no `pg_hba.conf` entry, from loopback or from the instance's own
    /// network. Through an SSH forward via that server master provisions and the project user
    /// dumps and restores; verify-full checks the endpoint's name (a wrong name is refused);
    /// the forward ends when dropped and after a failed operation, leaving no session of the
    /// server's account running and no file with master's password in its home or the
    /// temporary directories; a refused ssh login is a typed error with ssh's own message.
    fn provisioning_dump_and_restore_only_through_an_ssh_forward(major: u32) {
        let vpc = Vpc::create();
        let sandbox = &start_sandbox(
            major,
            SandboxOptions::new().security_group(vpc.instance_address(), vpc.app_address()),
        );
        let sshd = Sshd::start_in(&vpc);
        let account = sshd_account();
        let secret = sandbox.master_password().expose().to_owned();
        // The search finds a file the account wrote, in its home and in /tmp.
        let planted: Vec<_> = [account.home.clone(), std::env::temp_dir()]
            .iter()
            .map(|dir| dir.join(format!("planted-{}-{major}", std::process::id())))
            .collect();
        for file in &planted {
            std::fs::write(file, format!("password={secret}\n")).unwrap();
            std::os::unix::fs::chown(file, Some(account.uid), None).unwrap();
        }
        assert_eq!(files_with_secret(&account, &secret), planted);
        for file in &planted {
            std::fs::remove_file(file).unwrap();
        }

        // Directly, from this machine: refused by pg_hba.conf, whichever address is used.
        for address in [Ipv4Addr::LOCALHOST, vpc.instance_address()] {
            let direct = connect_error(&at(sandbox.master_options(), address));
            assert_eq!(direct.kind(), ErrorKind::Connection, "{direct}");
            assert!(
                direct
                    .to_string()
                    .contains(&format!("no pg_hba.conf entry for host \"{address}\"")),
                "{direct}"
            );
        }

        // Through the application server: the endpoint's address as that server reaches it.
        let master = at(sandbox.master_options(), vpc.instance_address());
        let tunnel = ok(forward(&sshd).open(&master), "open the forward");
        let pid = tunnel.pid().unwrap();
        let local = tunnel.local_addr();
        assert!(local.ip().is_loopback());
        let via = tunnel.apply(master.clone());
        let mut c = ok(connect(&via), "connect through the forward");
        let row = c
            .query_one("SELECT current_user::text, host(inet_client_addr())", &[])
            .unwrap();
        assert_eq!(row.get::<_, String>(0), sandbox.master_user());
        assert_eq!(
            row.get::<_, String>(1),
            vpc.app_address().to_string(),
            "the application server's connection"
        );
        drop(c);
        if has_tls(sandbox) {
            let wrong = connect_error(&via.clone().host("other.rds-pg.invalid"));
            assert_eq!(wrong.kind(), ErrorKind::Tls, "{wrong}");
        }

        let mut provisioner = ok(rds_pg_core::Provisioner::connect(&via), "Provisioner");
        ok(provisioner.secure_instance(), "secure_instance");
        let password = Password::new("shop-Secr3t-through-ssh");
        ok(
            provisioner.ensure_user(&UserSpec::new("shop").unwrap().password(password.clone())),
            "ensure_user through ssh",
        );
        for db in ["shop", "shop_copy", "shop_ssh_copy"] {
            ok(
                provisioner.ensure_database(&DatabaseSpec::new(db, "shop").unwrap()),
                "ensure_database through ssh",
            );
        }
        // The user's options as its own server has them: the endpoint's name at its address.
        let shop_direct = at(
            sandbox.options_for("shop").password(password),
            vpc.instance_address(),
        );
        let shop = tunnel.apply(shop_direct.clone());
        let mut c = ok(
            login_as_application(&shop.for_database("shop")),
            "login as shop",
        );
        c.batch_execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20) g")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        ok(
            dump(&DumpOptions::new(shop.for_database("shop"), &archive)),
            "dump through ssh",
        );
        ok(
            restore(&RestoreOptions::new(
                shop.for_database("shop_copy"),
                &archive,
            )),
            "restore through ssh",
        );
        // DumpOptions/RestoreOptions::ssh: without it the user is refused; with it each call
        // opens its own forward and closes it when done.
        let own = dir.path().join("shop-own-forward.dump");
        let refused = rds_pg_tests::err(
            dump(&DumpOptions::new(shop_direct.for_database("shop"), &own)),
            "dump directly",
        );
        assert!(
            refused.to_string().contains("no pg_hba.conf entry"),
            "{refused}"
        );
        let config = sshd.client_config().display().to_string();
        let mut forward_seen = Vec::new();
        ok(
            rds_pg_core::dump::dump_with(
                &DumpOptions::new(shop_direct.for_database("shop"), &own).ssh(forward(&sshd)),
                &mut |_| forward_seen.push(processes_with(&config).len()),
            ),
            "dump with DumpOptions::ssh",
        );
        ok(
            restore(
                &RestoreOptions::new(shop_direct.for_database("shop_ssh_copy"), &own)
                    .ssh(forward(&sshd)),
            ),
            "restore with RestoreOptions::ssh",
        );
        // The test's forward and the dump's own share the client configuration: two ssh while
        // the dump runs, the test's alone after.
        assert!(
            !forward_seen.is_empty() && forward_seen.iter().all(|n| *n == 2),
            "the dump's own ssh ran beside the test's forward: {forward_seen:?}"
        );
        assert_eq!(
            processes_with(&config).len(),
            1,
            "only the test's forward is left"
        );
        let mut own_copy = ok(
            login_as_application(&shop.for_database("shop_ssh_copy")),
            "login",
        );
        let n: i64 = own_copy
            .query_one("SELECT count(*) FROM t", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 20);
        drop(own_copy);
        let mut copy = ok(
            login_as_application(&shop.for_database("shop_copy")),
            "login",
        );
        let n: i64 = copy
            .query_one("SELECT count(*) FROM t", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 20);
        drop((c, copy, provisioner));

        // A failed operation through the forward (a user that does not exist), then the
        // forward is dropped: ssh is gone, the port no longer listens.
        let err = connect_error(&tunnel.apply(at(
            sandbox.options_for("nobody_here").password("x"),
            vpc.instance_address(),
        )));
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        drop(tunnel);
        assert_gone(pid, local);
        assert!(processes_with(&sshd.client_config().display().to_string()).is_empty());
        // The server side: its session processes end with the connection, and nothing of
        // master's was left on it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !sshd.sessions().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "sshd sessions still running: {:?}",
                sshd.sessions()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(
            files_with_secret(&account, &secret),
            Vec::<std::path::PathBuf>::new()
        );

        // A refused login: ssh's own message, and nothing left running.
        let refused = SshForward::new(REFUSED_ALIAS)
            .unwrap()
            .config_file(sshd.client_config())
            .open(&master)
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Tool, "{refused}");
        assert!(
            refused
                .to_string()
                .contains("Permission denied (publickey)"),
            "{refused}"
        );
        assert!(processes_with(&sshd.client_config().display().to_string()).is_empty());
    }
);
