//! A throw-away OpenSSH server on loopback that plays the application server of issue 15: its
//! own host key and port, public-key authentication only, for the unprivileged `nobody`
//! account, port forwarding its only use (`restrict,port-forwarding`).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ssh host alias the client configuration gives the server.
pub const HOST_ALIAS: &str = "rds-pg-test-app";
/// The same server as an account it refuses (`root`, not in `AllowUsers`).
pub const REFUSED_ALIAS: &str = "rds-pg-test-refused";

/// A running sshd and a client configuration ([`Sshd::client_config`]) that reaches it as
/// [`HOST_ALIAS`] with its own key and known-hosts file.
pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Sshd {
    /// Starts the server (root is needed: sshd switches to the account).
    ///
    /// # Panics
    /// When OpenSSH's server is not installed (`apt-get install openssh-server`, as `make setup`
    /// does) or it does not start.
    pub fn start() -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").is_file() && Path::new("/usr/bin/ssh").is_file(),
            "OpenSSH is missing: run `make setup` (apt-get install openssh-server openssh-client)"
        );
        // sshd's privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("rds-pg-sshd-")
            .tempdir()
            .unwrap();
        // nobody reads its authorized_keys under its own uid: the directory is traversable, the
        // client's private key lives in a 0700 subdirectory.
        set_mode(dir.path(), 0o755);
        let client = dir.path().join("client");
        std::fs::create_dir(&client).unwrap();
        set_mode(&client, 0o700);
        let host_key = dir.path().join("host_key");
        let id = client.join("id_ed25519");
        for (key, what) in [(&host_key, "host key"), (&id, "client key")] {
            run(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "rds-pg-test", "-f"])
                    .arg(key),
                &format!("ssh-keygen {what}"),
            );
        }
        let public = std::fs::read_to_string(id.with_extension("pub")).unwrap();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("restrict,port-forwarding {public}")).unwrap();
        set_mode(&authorized, 0o644);
        let port = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host_key}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {authorized}\n\
                 AuthenticationMethods publickey\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin no\n\
                 AllowUsers nobody\n\
                 AllowTcpForwarding local\n\
                 AllowAgentForwarding no\n\
                 X11Forwarding no\n\
                 PermitTTY no\n\
                 LogLevel VERBOSE\n",
                host_key = host_key.display(),
                authorized = authorized.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start sshd");
        let host_public = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        std::fs::write(
            client.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_public}"),
        )
        .unwrap();
        let host = |alias: &str, user: &str| {
            format!(
                "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
                 IdentityFile {id}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
                 UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                id = id.display(),
                known = client.join("known_hosts").display(),
            )
        };
        std::fs::write(
            client.join("config"),
            host(HOST_ALIAS, "nobody") + &host(REFUSED_ALIAS, "root"),
        )
        .unwrap();
        let sshd = Sshd {
            dir,
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    /// The client configuration file (`ssh -F`, `--ssh-config`) that defines [`HOST_ALIAS`].
    pub fn client_config(&self) -> PathBuf {
        self.dir.path().join("client").join("config")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The listener and the per-connection processes it forked share its group.
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

/// The ids of the running processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
        {
            continue;
        }
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
        {
            found.push(pid);
        }
    }
    found
}
