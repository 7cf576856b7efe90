//! Finding PostgreSQL server binaries for a major version, and the unprivileged account that runs
//! them when this process is root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The major versions rds-pg supports.
pub const SUPPORTED_VERSIONS: [u32; 6] = [13, 14, 15, 16, 17, 18];

/// Environment variable naming the folder that holds one `<major>/bin` per version (the setup
/// script's cache). Default: the workspace's ignored `.cache/postgresql`.
pub const INSTALL_ROOT_ENV: &str = "RDS_PG_POSTGRES_ROOT";

/// A PostgreSQL server installation: `initdb`, `pg_ctl` and `postgres` in one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The folder holding the binaries.
    pub bin_dir: PathBuf,
    /// The major version (13, 14, …).
    pub major: u32,
    /// The full version as `postgres --version` prints it (`16.14`).
    pub version: String,
}

impl Installation {
    /// Reads the version of the server binaries in `bin_dir`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `bin_dir` has no usable `postgres`, `initdb` and `pg_ctl`.
    pub fn from_bin_dir(bin_dir: &Path) -> Result<Self> {
        for tool in ["postgres", "initdb", "pg_ctl"] {
            if !bin_dir.join(tool).is_file() {
                return Err(Error::NotFound {
                    message: format!("{} has no {tool}", bin_dir.display()),
                    source: None,
                });
            }
        }
        let out = Command::new(bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .map_err(|e| {
                Error::io(
                    format!("running {}/postgres --version", bin_dir.display()),
                    e,
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 16.14" or "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let version = text
            .split_whitespace()
            .nth(2)
            .filter(|_| out.status.success())
            .ok_or_else(|| Error::Tool {
                tool: format!("{}/postgres --version", bin_dir.display()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })?
            .to_owned();
        let major = version
            .split(['.', 'b', 'r'])
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| Error::InvalidInput(format!("cannot read a version from {text:?}")))?;
        Ok(Installation {
            bin_dir: bin_dir.to_owned(),
            major,
            version,
        })
    }

    /// The path of one of the binaries.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Whether the pgextwlist module is installed for this server (Debian packages it for 15).
    pub fn has_pgextwlist(&self) -> bool {
        self.pkglibdir().join("plugins/pgextwlist.so").is_file()
    }

    fn pkglibdir(&self) -> PathBuf {
        let base = self.bin_dir.parent().unwrap_or(Path::new("/"));
        // Debian: /usr/lib/postgresql/15/{bin,lib}; relocatable builds: <prefix>/lib/postgresql.
        if base.join("lib/plugins").is_dir() || !base.join("lib/postgresql").is_dir() {
            base.join("lib")
        } else {
            base.join("lib/postgresql")
        }
    }
}

/// The folder searched for `<major>/bin` after Debian's `/usr/lib/postgresql`.
pub fn install_root() -> PathBuf {
    match std::env::var_os(INSTALL_ROOT_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/postgresql"),
    }
}

fn candidate_dirs(major: u32) -> Vec<PathBuf> {
    vec![
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
        install_root().join(major.to_string()).join("bin"),
    ]
}

/// Finds server binaries for `major`: Debian's `/usr/lib/postgresql/<major>/bin` first (it has
/// PostGIS and pgextwlist), then `$RDS_PG_POSTGRES_ROOT/<major>/bin`.
///
/// # Errors
/// [`Error::NotFound`] naming the places searched and the setup command to run.
pub fn find_installation(major: u32) -> Result<Installation> {
    let dirs = candidate_dirs(major);
    for dir in &dirs {
        if let Ok(inst) = Installation::from_bin_dir(dir) {
            if inst.major == major {
                return Ok(inst);
            }
        }
    }
    Err(Error::NotFound {
        message: format!(
            "no PostgreSQL {major} server binaries in {}; install them with `make setup` \
             (scripts/setup-postgres.sh) or set {INSTALL_ROOT_ENV}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        source: None,
    })
}

/// The supported major versions whose server binaries are installed, oldest first.
pub fn available_versions() -> Vec<u32> {
    SUPPORTED_VERSIONS
        .into_iter()
        .filter(|v| find_installation(*v).is_ok())
        .collect()
}

/// The account a sandbox server runs as when this process is root (initdb and postgres refuse
/// to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// `None` when this process is not root; otherwise the `nobody` account from `/etc/passwd`
/// (65534 when it is missing).
pub fn unprivileged_account() -> Option<RunAs> {
    if effective_uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let found = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == "nobody").then(|| (f[2].parse().ok(), f[3].parse().ok()))
    });
    let (uid, gid) = match found {
        Some((Some(u), Some(g))) => (u, g),
        _ => (65534, 65534),
    };
    Some(RunAs { uid, gid })
}

/// The effective user id of this process, read from `/proc` (no libc dependency).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// Whether `path` and every folder above it can be entered by a user that is neither owner nor
/// in the group (the "other" execute bit).
pub(crate) fn traversable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mut cur = Some(path);
    while let Some(p) = cur {
        match std::fs::metadata(p) {
            Ok(m) if m.permissions().mode() & 0o001 != 0 => {}
            _ => return false,
        }
        cur = p.parent().filter(|p| !p.as_os_str().is_empty());
    }
    true
}

/// When running as root and `inst` lives where the unprivileged account cannot reach (a clone
/// under `/root`), copies it once to a world-readable folder in the temp directory and returns
/// that copy.
pub(crate) fn reachable_by(inst: &Installation, run_as: Option<RunAs>) -> Result<Installation> {
    if run_as.is_none() || traversable_by_others(&inst.bin_dir) {
        return Ok(inst.clone());
    }
    let prefix = inst.bin_dir.parent().unwrap_or(Path::new("/"));
    let dest = std::env::temp_dir().join(format!("rds-pg-postgresql-{}", inst.version));
    let stamp = dest.join(".complete");
    if !stamp.is_file() {
        let staging = std::env::temp_dir().join(format!(
            "rds-pg-postgresql-{}.{}",
            inst.version,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        let status = Command::new("cp")
            .arg("-a")
            .arg(prefix)
            .arg(&staging)
            .status()
            .map_err(|e| Error::io("copying PostgreSQL binaries", e))?;
        if !status.success() {
            return Err(Error::Tool {
                tool: "cp -a".into(),
                status: status.to_string(),
                stderr: String::new(),
            });
        }
        set_world_readable(&staging)?;
        std::fs::write(staging.join(".complete"), b"")
            .map_err(|e| Error::io("marking the binary copy complete", e))?;
        // Another process may have won the race; either copy is fine.
        if std::fs::rename(&staging, &dest).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    Installation::from_bin_dir(&dest.join("bin"))
}

fn set_world_readable(dir: &Path) -> Result<()> {
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .map_err(|e| Error::io("chmod", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Tool {
            tool: "chmod -R a+rX".into(),
            status: status.to_string(),
            stderr: String::new(),
        })
    }
}
