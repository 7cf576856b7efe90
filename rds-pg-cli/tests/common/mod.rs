//! What the `rds-pg` test binaries share: one run of the binary, and the helpers every suite
//! wrote for itself before. Each test binary compiles this module on its own and uses part of
//! it.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

/// What one run of the binary printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The exit status (-1 when a signal ended it).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The run an `Output` records (its streams must be UTF-8).
    pub fn from_output(out: Output) -> Run {
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Standard output as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }

    /// The run, once it ended with `status`.
    #[track_caller]
    pub fn expect(self, status: i32, what: &str) -> Run {
        assert_eq!(
            self.status, status,
            "{what}: unexpected exit status: {self:#?}"
        );
        self
    }
}

/// The newest supported major version.
pub fn newest() -> u32 {
    *rds_pg_core::sandbox::SUPPORTED_VERSIONS.last().unwrap()
}

/// Writes `text` to `path` with mode 0600 (a password file).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Whether a pg_dump new enough for a `major` server is found where rds-pg looks for one
/// (`RDS_PG_TOOLS_DIRS`, `PATH`, `/usr/lib/postgresql/*/bin`).
pub fn has_client_tools_for(major: u32) -> bool {
    let found = rds_pg_core::dump::tools::find_all(rds_pg_core::dump::ClientProgram::PgDump, None);
    rds_pg_core::dump::tools::choose(&found, major).is_some()
}
