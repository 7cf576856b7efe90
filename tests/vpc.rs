//! A network of the tests' own, so that the sandbox can be reachable *only* through an SSH
//! forward, as an RDS instance is reachable only from its application servers (issue 15).
//!
//! [`Vpc::create`] makes a network namespace (the application server's host) joined to this
//! machine by a veth pair: this machine's end ([`Vpc::instance_address`]) is where the sandbox
//! listens, the namespace's end ([`Vpc::app_address`]) is the one source address the sandbox's
//! `pg_hba.conf` admits ([`rds_pg_core::sandbox::SandboxOptions::security_group`]). The test,
//! like an operator, connects from this machine: from 127.0.0.1 or from the instance address
//! itself, never from the application server's, so its direct connections find no
//! `pg_hba.conf` entry, while an sshd started in the namespace ([`crate::sshd::Sshd::start_in`])
//! reaches the instance from the admitted address.
//!
//! Root is needed (`ip netns add`), and iproute2 (`make setup` installs it).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace joined to this machine by a veth pair; deleted on drop.
pub struct Vpc {
    name: String,
    instance: Ipv4Addr,
    app: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2; `make setup` installs it): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

const PREFIX: &str = "rds-pg-vpc-";

/// Deletes the namespaces an earlier, killed test process left behind (their veth pairs go
/// with them).
fn delete_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl Vpc {
    /// Creates the namespace and the veth pair, in a /30 of 10.213.0.0/16 no interface of this
    /// machine has yet.
    ///
    /// # Panics
    /// When not run as root or iproute2 is missing, with what to do.
    pub fn create() -> Vpc {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(
            is_root(),
            "the SSH-forward tests make a network namespace (`ip netns add`): run them as root"
        );
        delete_stale();
        let pid = std::process::id();
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            // 16384 subnets of 4 addresses; the pid spreads concurrent test processes.
            let subnet = (pid.wrapping_mul(64).wrapping_add(n)) % 16384;
            let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + subnet * 4;
            let instance = Ipv4Addr::from(base + 1);
            let app = Ipv4Addr::from(base + 2);
            let taken = Command::new("ip")
                .args(["-o", "-4", "addr", "show"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{instance}/")))
                .unwrap_or(false);
            if taken {
                continue;
            }
            let name = format!("{PREFIX}{pid}-{n}");
            // Interface names have at most 15 bytes.
            let (outer, inner) = (format!("rpv{pid}x{n}"), format!("rpv{pid}y{n}"));
            let vpc = Vpc {
                name: name.clone(),
                instance,
                app,
            };
            let made = (|| {
                ip(&["netns", "add", &name])?;
                ip(&[
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner,
                ])?;
                ip(&["link", "set", &inner, "netns", &name])?;
                ip(&["addr", "add", &format!("{instance}/30"), "dev", &outer])?;
                ip(&["link", "set", &outer, "up"])?;
                ip(&[
                    "-n",
                    &name,
                    "addr",
                    "add",
                    &format!("{app}/30"),
                    "dev",
                    &inner,
                ])?;
                ip(&["-n", &name, "link", "set", &inner, "up"])?;
                ip(&["-n", &name, "link", "set", "lo", "up"])
            })();
            match made {
                Ok(()) => return vpc,
                Err(e) => {
                    drop(vpc);
                    let _ = ip(&["link", "del", &outer]);
                    panic!("cannot make the test network: {e}");
                }
            }
        }
        panic!("no free /30 in 10.213.0.0/16 for the test network");
    }

    /// This machine's end of the veth pair: where the sandbox listens for the application
    /// server.
    pub fn instance_address(&self) -> Ipv4Addr {
        self.instance
    }

    /// The namespace's end: the application server's address, the only one the sandbox admits.
    pub fn app_address(&self) -> Ipv4Addr {
        self.app
    }

    /// `program` run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Vpc {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and so the pair.
        let _ = ip(&["netns", "del", &self.name]);
    }
}
