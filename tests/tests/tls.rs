//! TLS (issue 13): `verify-full` refuses a server whose certificate a wrong CA did not sign, and
//! one reached under a name its certificate does not hold; `require` refuses a server that
//! offers no TLS (the 13/14 sandboxes, which accept plaintext as RDS instances without
//! `rds.force_ssl` do, and a listener that answers PostgreSQL's SSLRequest with `N`) instead of
//! falling back to plaintext, and encrypts without checking the certificate where TLS is
//! offered. Each failure is a typed error, raised before any password is sent.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rds_pg_core::{connect, ConnectOptions, Error, ErrorKind, Password, Provisioner, SslMode};
use rds_pg_tests::{per_version, Sandbox};

/// A CA unrelated to the server's, as a PEM file.
fn unrelated_ca_file() -> tempfile::NamedTempFile {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "not the sandbox CA");
    let pem = params.self_signed(&key).unwrap().pem();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pem.as_bytes()).unwrap();
    file
}

#[track_caller]
fn refused(options: &ConnectOptions, what: &str) -> Error {
    let e = match connect(options) {
        Ok(_) => panic!("{what}: connected"),
        Err(e) => e,
    };
    // The Provisioner refuses the same way.
    let p = Provisioner::connect(options).expect_err(what);
    assert_eq!(p.kind(), e.kind(), "{what}: {p}");
    let text = format!("{e}\n{e:?}\n{p}\n{p:?}");
    if let Some(pw) = options.get_password() {
        assert!(
            !text.contains(pw.expose()),
            "{what}: the error shows the password"
        );
    }
    e
}

/// Forwards every TCP connection made to a new address on another loopback IP (127.0.0.2) to
/// `target`, so the server is reached under a name (an IP address) its certificate does not
/// hold.
fn forwarder(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .expect("binding 127.0.0.2 (any 127/8 address is loopback on Linux)");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    addr
}

/// A listener that speaks just enough PostgreSQL to answer the SSLRequest with `N` (no TLS
/// here), and records whether the client then went on in plaintext (sent a startup message).
fn server_without_tls() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let continued = Arc::new(AtomicBool::new(false));
    let flag = continued.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let flag = flag.clone();
            std::thread::spawn(move || {
                let mut request = [0u8; 8];
                if s.read_exact(&mut request).is_err() {
                    return;
                }
                // Int32 length 8, Int32 80877103: the SSLRequest.
                if request == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                    let _ = s.write_all(b"N");
                }
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut more = [0u8; 64];
                if let Ok(n) = s.read(&mut more) {
                    if n > 0 {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (port, continued)
}

fn master_with(sandbox: &Sandbox, mode: SslMode) -> ConnectOptions {
    sandbox.master_options().sslmode(mode)
}

per_version!(
    fn verify_full_refuses_a_wrong_ca_and_a_wrong_name(sandbox) {
        if sandbox.ca_cert_path().is_none() {
            // 13/14: the sandbox offers no TLS at all; verify-full (like require) refuses it.
            let e = refused(
                &master_with(sandbox, SslMode::VerifyFull)
                    .sslrootcert(unrelated_ca_file().path()),
                "verify-full against a server without TLS",
            );
            assert!(matches!(e.kind(), ErrorKind::Tls | ErrorKind::Connection), "{e:?}");
            assert!(e.to_string().contains("TLS"), "{e}");
            return;
        }
        // The right CA and name: connected, encrypted.
        let mut c = connect(&sandbox.master_options()).unwrap();
        let ssl: bool = c
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        assert!(ssl);

        // A CA that did not sign the server's certificate.
        let other = unrelated_ca_file();
        for mode in [SslMode::VerifyFull, SslMode::VerifyCa] {
            let e = refused(
                &sandbox.master_options().sslmode(mode).sslrootcert(other.path()),
                &format!("{mode} with a wrong CA"),
            );
            assert_eq!(e.kind(), ErrorKind::Tls, "{e:?}");
            assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        }

        // The right CA, a name the certificate does not hold (it holds localhost, 127.0.0.1
        // and ::1): verify-full refuses, verify-ca (chain only) connects through the same path.
        let forward = forwarder(SocketAddr::from(([127, 0, 0, 1], sandbox.port())));
        let elsewhere = sandbox
            .master_options()
            .host(forward.ip().to_string())
            .port(forward.port());
        let e = refused(&elsewhere, "verify-full under another name");
        assert_eq!(e.kind(), ErrorKind::Tls, "{e:?}");
        assert!(e.to_string().to_lowercase().contains("not valid for name"), "{e}");
        connect(&elsewhere.clone().sslmode(SslMode::VerifyCa))
            .expect("verify-ca accepts the right chain under any name");

        // Without a root certificate, verify-full cannot verify: refused before connecting.
        let e = refused(
            &ConnectOptions::new()
                .host("127.0.0.1")
                .port(sandbox.port())
                .user(sandbox.master_user())
                .password(sandbox.master_password().clone())
                .sslmode(SslMode::VerifyFull),
            "verify-full without sslrootcert",
        );
        assert_eq!(e.kind(), ErrorKind::Tls, "{e:?}");
        assert!(e.to_string().contains("sslrootcert"), "{e}");
    }
);

per_version!(
    fn require_refuses_a_server_without_tls_and_encrypts_where_it_is_offered(sandbox) {
        // A listener that offers no TLS: refused at once, and nothing is sent in plaintext.
        let (port, continued) = server_without_tls();
        let options = ConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .user("shop")
            .password(Password::new("Never-sent-pw"))
            .connect_timeout(Duration::from_secs(5))
            .sslmode(SslMode::Require);
        let started = std::time::Instant::now();
        let e = refused(&options, "require against a server without TLS");
        assert!(started.elapsed() < Duration::from_secs(5), "refused at once");
        assert!(matches!(e.kind(), ErrorKind::Tls | ErrorKind::Connection), "{e:?}");
        assert!(e.to_string().contains("does not support TLS"), "{e}");
        eprintln!("require against a server without TLS: {:?}: {e}", e.kind());
        std::thread::sleep(Duration::from_millis(200));
        assert!(!continued.load(Ordering::SeqCst), "the client went on in plaintext");
        // prefer falls back to plaintext there (and so sends its startup message).
        let _ = connect(&options.clone().sslmode(SslMode::Prefer));
        std::thread::sleep(Duration::from_millis(200));
        assert!(continued.load(Ordering::SeqCst), "prefer goes on in plaintext");

        if sandbox.ca_cert_path().is_none() {
            // The 13/14 sandboxes accept plaintext only: require refuses them, prefer and
            // disable connect unencrypted.
            let e = refused(&master_with(sandbox, SslMode::Require), "require against the sandbox");
            assert!(e.to_string().contains("does not support TLS"), "{e}");
            for mode in [SslMode::Prefer, SslMode::Disable] {
                let mut c = connect(&master_with(sandbox, mode)).unwrap();
                let ssl: bool = c
                    .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                    .unwrap()
                    .get(0);
                assert!(!ssl, "{mode}: plaintext");
            }
        } else {
            // 15+: require encrypts without checking the certificate (libpq's meaning when no
            // root file applies), so even a wrong CA file connects — encrypted.
            let other = unrelated_ca_file();
            let mut c = connect(&master_with(sandbox, SslMode::Require).sslrootcert(other.path()))
                .expect("require does not verify the certificate");
            let ssl: bool = c
                .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                .unwrap()
                .get(0);
            assert!(ssl, "require encrypts");
            // And disable is refused by the server (hostssl only, like rds.force_ssl = 1).
            let e = refused(&master_with(sandbox, SslMode::Disable), "disable on a TLS-only server");
            assert_eq!(e.kind(), ErrorKind::Connection, "{e:?}");
        }
    }
);
