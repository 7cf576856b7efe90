//! A throw-away OpenSSH server that plays the application server of issue 15: its own host key
//! and port, public-key authentication only, for an unprivileged account of its own
//! ([`ACCOUNT`], with a home directory), port forwarding its only use
//! (`restrict,port-forwarding`). [`Sshd::start`] listens on loopback; [`Sshd::start_in`] inside
//! a [`Vpc`], where it is the one host the sandbox admits.

use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::vpc::Vpc;

/// The account the server lets in: the application server's deploy account.
pub const ACCOUNT: &str = "rds-pg-app";

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

/// [`ACCOUNT`]: its user id and home directory.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user id.
    pub uid: u32,
    /// The home directory (made by `useradd --create-home`).
    pub home: PathBuf,
}

/// [`ACCOUNT`], created (with a home directory, no password, no login shell) when it does not
/// exist yet.
pub fn account() -> Account {
    static CREATED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    let find = || {
        std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() > 5 && f[0] == ACCOUNT).then(|| Account {
                    uid: f[2].parse().unwrap(),
                    home: PathBuf::from(f[5]),
                })
            })
    };
    if let Some(found) = find() {
        return found;
    }
    // `*`, not useradd's locked `!`: without PAM, sshd refuses a locked account even for keys.
    run(
        Command::new("useradd").args([
            "--system",
            "--create-home",
            "--home-dir",
            &format!("/home/{ACCOUNT}"),
            "--shell",
            "/usr/sbin/nologin",
            "--password",
            "*",
            ACCOUNT,
        ]),
        &format!("useradd {ACCOUNT}"),
    );
    find().expect("the account useradd made")
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
    /// Starts the server on loopback (root is needed: sshd switches to the account).
    ///
    /// # Panics
    /// When OpenSSH's server is not installed (`apt-get install openssh-server`, as `make setup`
    /// does) or it does not start.
    pub fn start() -> Sshd {
        Sshd::start_at(None)
    }

    /// Starts the server inside `vpc`, listening on its application server's address: the
    /// forwards it opens come from the one address the sandbox's security group admits.
    ///
    /// # Panics
    /// As [`Sshd::start`].
    pub fn start_in(vpc: &Vpc) -> Sshd {
        Sshd::start_at(Some(vpc))
    }

    fn start_at(vpc: Option<&Vpc>) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").is_file() && Path::new("/usr/bin/ssh").is_file(),
            "OpenSSH is missing: run `make setup` (apt-get install openssh-server openssh-client)"
        );
        account();
        // sshd's privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("rds-pg-sshd-")
            .tempdir()
            .unwrap();
        // The account reads its authorized_keys under its own uid: the directory is
        // traversable, the client's private key lives in a 0700 subdirectory.
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
        let address = vpc.map_or(Ipv4Addr::LOCALHOST, Vpc::app_address);
        // Inside a namespace of its own every port is free; on loopback, ask for one.
        let port = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {address}:{port}\n\
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
                 AllowUsers {ACCOUNT}\n\
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
        let mut command = match vpc {
            Some(vpc) => vpc.command("/usr/sbin/sshd"),
            None => Command::new("/usr/sbin/sshd"),
        };
        // `ip netns exec` execs sshd in place: the child's pid is sshd's.
        let child = command
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
            format!("[{address}]:{port} {host_public}"),
        )
        .unwrap();
        let host = |alias: &str, user: &str| {
            format!(
                "Host {alias}\n  HostName {address}\n  Port {port}\n  User {user}\n  \
                 IdentityFile {id}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
                 UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                id = id.display(),
                known = client.join("known_hosts").display(),
            )
        };
        std::fs::write(
            client.join("config"),
            host(HOST_ALIAS, ACCOUNT) + &host(REFUSED_ALIAS, "root"),
        )
        .unwrap();
        let sshd = Sshd {
            dir,
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((IpAddr::V4(address), port)).is_err() {
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

    /// The processes the server forked and that still run (one pair per open connection).
    pub fn sessions(&self) -> Vec<u32> {
        let pid = self.child.as_ref().expect("running").id();
        descendants(pid)
    }
}

/// The parent process id of `pid`, if it runs.
fn parent(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// The running processes below `root` in the process tree.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut at = pid;
        while let Some(p) = parent(at) {
            if p == root {
                found.push(pid);
                break;
            }
            if p <= 1 {
                break;
            }
            at = p;
        }
    }
    found
}

/// The files under `root` (recursively, symbolic links not followed) owned by `owner` when
/// given, whose contents hold `needle`.
pub fn files_holding(root: &Path, owner: Option<u32>, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && owner.is_none_or(|uid| meta.uid() == uid) {
                if let Ok(bytes) = std::fs::read(&path) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(path);
                    }
                }
            }
        }
    }
    found
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
