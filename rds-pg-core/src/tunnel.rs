//! SSH local forwards: reaching a server that only accepts connections from inside its network
//! (an RDS instance behind its security group) through an application server, with the system
//! `ssh`, so that nothing of master's ever lands on that server.

use std::ffi::OsString;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::ConnectOptions;
use crate::error::{Error, Result};

/// The environment variable naming the ssh configuration file forwards use when none is set
/// ([`SshForward::config_file`]); the command's `--ssh-config` sets it, so that the forwards of
/// an inventory's `via` use the same file.
pub const SSH_CONFIG_ENV: &str = "RDS_PG_SSH_CONFIG";

/// How long [`SshForward::open`] waits for the forward by default.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How to open an SSH forward to a server: the SSH destination (`user@host`, a host alias of
/// `~/.ssh/config`, or `ssh://user@host:port`), and optionally an ssh configuration file and
/// the ssh program.
///
/// The forward is `ssh -N -L 127.0.0.1:PORT:SERVER:SERVER_PORT DESTINATION` with
/// `ExitOnForwardFailure=yes` and `BatchMode=yes`: no remote command, nothing written on the
/// remote side, no prompt (keys come from the agent or `~/.ssh/config`, which the system ssh
/// honours, ProxyJump included). The server's TLS runs end to end through it, verified for the
/// server's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshForward {
    destination: String,
    config_file: Option<PathBuf>,
    program: PathBuf,
    open_timeout: Duration,
}

impl SshForward {
    /// A forward through `destination`, with the ssh configuration file of [`SSH_CONFIG_ENV`]
    /// when that is set, else ssh's own (`~/.ssh/config`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty destination, one starting with `-` (ssh would read
    /// an option) or one with whitespace or control characters.
    pub fn new(destination: impl Into<String>) -> Result<Self> {
        let destination = destination.into();
        check_destination(&destination)?;
        Ok(SshForward {
            destination,
            config_file: std::env::var_os(SSH_CONFIG_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            program: PathBuf::from("ssh"),
            open_timeout: DEFAULT_OPEN_TIMEOUT,
        })
    }

    crate::builder::setters! {
        /// Sets an ssh configuration file to use instead of `~/.ssh/config` (`ssh -F`).
        config_file = some_into PathBuf;
        /// Sets the ssh program (default `ssh`, found on `PATH`).
        program = into PathBuf;
        /// Sets how long to wait for the forward to listen (default 30 s).
        open_timeout = Duration;
    }

    /// The SSH destination.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Opens the forward to `options`' server: its hostaddr when set, else its host, and its
    /// port, as the SSH server resolves and reaches them. Returns once the local end listens.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the ssh program does not exist; [`Error::Tool`] with ssh's own
    /// message when it exits (authentication refused, host unreachable, forward refused) or
    /// does not listen within the open timeout; [`Error::InvalidInput`] for a Unix-socket host.
    pub fn open(&self, options: &ConnectOptions) -> Result<SshTunnel> {
        let target_host = match options.get_hostaddr() {
            Some(addr) => addr.to_string(),
            None => options.get_host().to_owned(),
        };
        if target_host.starts_with('/') {
            return Err(Error::InvalidInput(format!(
                "cannot forward to the Unix socket {target_host:?} through ssh: give the \
                 server's host name"
            )));
        }
        self.open_to(&target_host, options.get_port())
    }

    /// Opens the forward to `host:port` (as the SSH server resolves it).
    ///
    /// # Errors
    /// As [`SshForward::open`].
    pub fn open_to(&self, host: &str, port: u16) -> Result<SshTunnel> {
        if host.is_empty()
            || host.starts_with('-')
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::InvalidInput(format!(
                "{host:?} is not a host name or address to forward to"
            )));
        }
        let mut last = None;
        // A port found free may be taken before ssh listens on it: try another one.
        for _ in 0..3 {
            match self.try_open(host, port) {
                Err(Error::Tool { stderr, .. }) if port_taken(&stderr) => {
                    last = Some(stderr);
                }
                other => return other,
            }
        }
        Err(self.failure("could not listen locally", last.unwrap_or_default()))
    }

    fn try_open(&self, host: &str, port: u16) -> Result<SshTunnel> {
        let local = free_local_port()?;
        let mut command = self.command(local, host, port);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                message: format!(
                    "ssh program {:?} (install OpenSSH's client, or give its path)",
                    self.program.display().to_string()
                ),
                source: None,
            },
            _ => Error::io(format!("running {}", self.program.display()), e),
        })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        let mut tunnel = SshTunnel {
            child: Some(child),
            local,
            destination: self.destination.clone(),
            target: format!("{host}:{port}"),
            stderr,
        };
        let deadline = Instant::now() + self.open_timeout;
        loop {
            if let Some(status) = tunnel.exit_status()? {
                // Let the reader thread take what ssh wrote last.
                std::thread::sleep(Duration::from_millis(50));
                let text = tunnel.stderr_text();
                tunnel.child = None;
                return Err(Error::Tool {
                    tool: format!("ssh to {} (forward to {host}:{port})", self.destination),
                    status: status.to_string(),
                    stderr: text,
                });
            }
            if TcpStream::connect_timeout(&local, Duration::from_millis(200)).is_ok() {
                return Ok(tunnel);
            }
            if Instant::now() >= deadline {
                let text = tunnel.stderr_text();
                drop(tunnel);
                return Err(self.failure(
                    &format!("did not listen within {:?}", self.open_timeout),
                    text,
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn failure(&self, what: &str, stderr: String) -> Error {
        Error::Tool {
            tool: format!("ssh to {}", self.destination),
            status: what.to_owned(),
            stderr,
        }
    }

    /// The ssh command for a forward from `local` to `host:port`.
    fn command(&self, local: SocketAddr, host: &str, port: u16) -> Command {
        let mut command = Command::new(&self.program);
        if let Some(config) = &self.config_file {
            command.arg("-F").arg(config);
        }
        let forward = if host.contains(':') {
            format!("{}:{}:[{host}]:{port}", local.ip(), local.port())
        } else {
            format!("{}:{}:{host}:{port}", local.ip(), local.port())
        };
        command
            .args(ssh_args())
            .arg("-L")
            .arg(forward)
            .arg("--")
            .arg(&self.destination);
        // ssh needs nothing of master's: no PG* variable, no DATABASE_URL (its environment is
        // otherwise the operator's, for the agent socket and HOME).
        crate::credentials::environment_without_credentials(&mut command, std::env::vars_os());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal reaches rds-pg, whose exit then
            // ends ssh (below), never ssh alone half-way through an operation.
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
        unsafe {
            command.pre_exec(move || {
                // ssh ends with the thread that started it, however that ends (SIGKILL included).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("rds-pg exited before ssh started"));
                }
                Ok(())
            });
        }
        command
    }
}

/// The options every forward runs with: no remote command, no terminal, no prompt, nothing but
/// this forward, and ssh exits when the forward cannot be set up or the server stops answering.
fn ssh_args() -> Vec<OsString> {
    [
        "-N",
        "-T",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "PermitLocalCommand=no",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "RequestTTY=no",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

fn port_taken(stderr: &str) -> bool {
    stderr.contains("Address already in use") || stderr.contains("cannot listen to port")
}

fn check_destination(destination: &str) -> Result<()> {
    if destination.is_empty() {
        return Err(Error::InvalidInput(
            "the ssh destination is empty: give user@host".into(),
        ));
    }
    if destination.starts_with('-') {
        return Err(Error::InvalidInput(format!(
            "ssh destination {destination:?} starts with \"-\": give user@host"
        )));
    }
    if destination
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::InvalidInput(format!(
            "ssh destination {destination:?} contains whitespace or a control character"
        )));
    }
    Ok(())
}

/// A loopback port free at this moment.
fn free_local_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("finding a free local port for the ssh forward", e))?;
    listener
        .local_addr()
        .map_err(|e| Error::io("finding a free local port for the ssh forward", e))
}

/// A running SSH forward: connections to [`SshTunnel::local_addr`] reach the server. It is
/// closed (ssh stopped and waited for) when dropped, and ssh also ends when the thread that
/// opened it ends, however it ends (a signal included), so that no forward outlives the
/// operation.
///
/// The local end is a loopback TCP port (pg_dump and pg_restore need TCP: libpq uses no TLS over
/// Unix sockets). Other accounts of the operator's machine could connect to it while it lives;
/// they reach only the server's port, and still face its TLS and its password checks.
pub struct SshTunnel {
    child: Option<Child>,
    local: SocketAddr,
    destination: String,
    target: String,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl SshTunnel {
    /// The local address that leads to the server.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The process id of ssh.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `options` connecting through this forward ([`ConnectOptions::forward`]): the host, port
    /// and TLS settings are unchanged, so verify-full checks the server's name.
    pub fn apply(&self, options: ConnectOptions) -> ConnectOptions {
        options.forward(self.local)
    }

    /// Whether ssh is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.exit_status(), Ok(None))
    }

    /// What ssh wrote on its standard error so far.
    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }

    fn exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match &mut self.child {
            Some(child) => child
                .try_wait()
                .map_err(|e| Error::io("waiting for ssh", e)),
            None => Ok(None),
        }
    }

    /// Stops ssh and waits for it.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for SshTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTunnel")
            .field("destination", &self.destination)
            .field("target", &self.target)
            .field("local", &self.local)
            .field("pid", &self.pid())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_that_ssh_would_misread_are_refused() {
        for bad in ["", "-oProxyCommand=sh", "user@host extra", "a\nb"] {
            let e = SshForward::new(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        for good in [
            "app1",
            "deploy@app1.example.com",
            "ssh://deploy@10.0.0.5:2222",
        ] {
            SshForward::new(good).unwrap();
        }
    }

    #[test]
    fn the_command_forwards_one_loopback_port_and_runs_nothing_remotely() {
        let forward = SshForward::new("deploy@app1")
            .unwrap()
            .config_file("/home/op/.ssh/rds-config");
        let local: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let cmd = forward.command(local, "db.example", 5432);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[..2], ["-F", "/home/op/.ssh/rds-config"]);
        assert!(args.contains(&"-N".to_owned()));
        assert!(args.contains(&"ExitOnForwardFailure=yes".to_owned()));
        assert!(args.contains(&"BatchMode=yes".to_owned()));
        let l = args.iter().position(|a| a == "-L").unwrap();
        assert_eq!(args[l + 1], "127.0.0.1:40001:db.example:5432");
        assert_eq!(args[args.len() - 2..], ["--", "deploy@app1"]);
        let v6 = forward.command(local, "fd00::5", 5432);
        assert!(v6.get_args().any(|a| a == "127.0.0.1:40001:[fd00::5]:5432"));
    }

    #[test]
    fn a_missing_ssh_is_not_found() {
        let e = SshForward::new("app1")
            .unwrap()
            .program("/nonexistent/ssh")
            .open_to("db.example", 5432)
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn an_ssh_that_exits_gives_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ssh");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'Permission denied (publickey).' >&2\nexit 255\n",
        )
        .unwrap();
        let mut perms = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&fake, perms).unwrap();
        let e = SshForward::new("app1")
            .unwrap()
            .program(&fake)
            .open_to("db.example", 5432)
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tool, "{e}");
        assert!(
            e.to_string().contains("Permission denied (publickey)."),
            "{e}"
        );
    }
}
