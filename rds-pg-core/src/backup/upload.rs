//! Uploading an archive to a command sink (`aws s3 cp - s3://bucket/{client}/{file}`): the file
//! on the command's standard input, with the rules of the credential sinks — no shell, and an
//! environment without any variable that may carry master's credentials.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The placeholders an upload command's arguments may hold, replaced for each file.
pub const UPLOAD_PLACEHOLDERS: &[&str] = &["{client}", "{instance}", "{database}", "{file}"];

/// A program and its arguments that store one file read from standard input, run once for the
/// archive and once for its manifest. In the arguments, `{client}`, `{instance}` and
/// `{database}` are replaced by the archive's (the database name percent-encoded as in the
/// backup directory) and `{file}` by the file's name (`20261201T103000Z.dump`, then
/// `20261201T103000Z.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCommand {
    argv: Vec<OsString>,
}

impl UploadCommand {
    /// The command `argv` (program first).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty command.
    pub fn new<I, S>(argv: I) -> Result<UploadCommand>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(Error::InvalidInput(
                "the upload command is empty: give a program and its arguments, e.g. \
                 aws s3 cp - s3://BUCKET/{client}/{instance}/{database}/{file}"
                    .into(),
            ));
        }
        Ok(UploadCommand { argv })
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.argv[0]
    }

    /// The arguments with the placeholders replaced.
    pub fn arguments(&self, values: &UploadNames<'_>) -> Vec<OsString> {
        self.argv[1..]
            .iter()
            .map(|arg| match arg.to_str() {
                Some(text) => OsString::from(
                    text.replace("{client}", values.client)
                        .replace("{instance}", values.instance)
                        .replace("{database}", values.database)
                        .replace("{file}", values.file),
                ),
                None => arg.clone(),
            })
            .collect()
    }

    /// The command for one file: arguments filled in, the environment of this process less the
    /// credential variables ([`crate::credentials::is_credential_variable`]).
    pub fn command(&self, values: &UploadNames<'_>) -> Command {
        self.command_with_env(values, std::env::vars_os())
    }

    fn command_with_env(
        &self,
        values: &UploadNames<'_>,
        environment: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Command {
        let mut cmd = Command::new(self.program());
        crate::credentials::environment_without_credentials(&mut cmd, environment);
        cmd.args(self.arguments(values));
        cmd
    }

    /// Streams `file` into the command for it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the program does not exist; [`Error::Io`] when the file cannot
    /// be read or the command started; [`Error::Tool`] with its standard error (or output) when
    /// it exits unsuccessfully or stops reading early.
    pub fn upload(&self, file: &Path, values: &UploadNames<'_>) -> Result<()> {
        let tool = self.program().to_string_lossy().into_owned();
        let mut source = std::fs::File::open(file)
            .map_err(|e| Error::io(format!("opening {}", file.display()), e))?;
        let mut child = self
            .command(values)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound {
                    message: format!("upload command {tool:?} (is it installed and on PATH?)"),
                    source: None,
                },
                _ => Error::io(format!("cannot run upload command {tool:?}"), e),
            })?;
        let stdin = child.stdin.take();
        let (copied, output) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> io::Result<u64> {
                let Some(mut stdin) = stdin else {
                    return Ok(0);
                };
                let copied = io::copy(&mut source, &mut stdin)?;
                stdin.flush()?;
                Ok(copied)
            });
            let output = child.wait_with_output();
            (writer.join(), output)
        });
        let output =
            output.map_err(|e| Error::io(format!("waiting for upload command {tool:?}"), e))?;
        let shown = || {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let text = if stderr.trim().is_empty() {
                String::from_utf8_lossy(&output.stdout).into_owned()
            } else {
                stderr.into_owned()
            };
            text.trim().to_owned()
        };
        if !output.status.success() {
            return Err(Error::Tool {
                tool,
                status: output.status.to_string(),
                stderr: shown(),
            });
        }
        match copied {
            Ok(Ok(_)) => Ok(()),
            // A command that succeeds without reading all of the file did not store it.
            Ok(Err(e)) => Err(Error::Tool {
                tool,
                status: format!("{} but stopped reading the file ({e})", output.status),
                stderr: shown(),
            }),
            Err(_) => Err(Error::io(
                format!("writing to upload command {tool:?}"),
                io::Error::other("the writing thread panicked"),
            )),
        }
    }
}

/// The values of an upload command's placeholders.
#[derive(Debug, Clone, Copy)]
pub struct UploadNames<'a> {
    /// `{client}`.
    pub client: &'a str,
    /// `{instance}`.
    pub instance: &'a str,
    /// `{database}` (percent-encoded as in the backup directory).
    pub database: &'a str,
    /// `{file}`.
    pub file: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> UploadNames<'static> {
        UploadNames {
            client: "acme",
            instance: "acme-prod",
            database: "shop",
            file: "20261201T103000Z.dump",
        }
    }

    #[test]
    fn placeholders_are_filled_and_credentials_stay_out() {
        let upload = UploadCommand::new([
            "aws",
            "s3",
            "cp",
            "-",
            "s3://bucket/{client}/{instance}/{database}/{file}",
        ])
        .unwrap();
        let env: Vec<(OsString, OsString)> = [
            ("PATH", "/usr/bin"),
            ("AWS_PROFILE", "backup"),
            ("PGPASSWORD", "master-secret"),
            ("PGPASSFILE", "/root/.pgpass"),
            (
                "DATABASE_URL",
                "postgresql://master:master-secret@db/postgres",
            ),
            ("RDS_PG_SANDBOX_DIR", "/tmp/x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let cmd = upload.command_with_env(&names(), env);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "s3",
                "cp",
                "-",
                "s3://bucket/acme/acme-prod/shop/20261201T103000Z.dump"
            ]
        );
        let mut envs: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        envs.sort();
        assert_eq!(envs, ["AWS_PROFILE", "PATH"]);
        assert!(UploadCommand::new(Vec::<String>::new()).is_err());
        assert!(UploadCommand::new([""]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_file_goes_to_standard_input_and_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.dump");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 256) as u8).collect();
        std::fs::write(&file, &body).unwrap();
        let target = dir.path().join("uploaded");
        let store = UploadCommand::new([
            "sh".into(),
            "-c".into(),
            format!("cat > {}/$0", target.display()),
            "{file}".into(),
        ])
        .unwrap();
        std::fs::create_dir(&target).unwrap();
        store.upload(&file, &names()).unwrap();
        assert_eq!(
            std::fs::read(target.join("20261201T103000Z.dump")).unwrap(),
            body
        );
        let failing = UploadCommand::new([
            "sh",
            "-c",
            "cat >/dev/null; echo 'bucket not found' >&2; exit 3",
        ])
        .unwrap();
        let e = failing.upload(&file, &names()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tool);
        assert!(e.to_string().contains("bucket not found"), "{e}");
        let early = UploadCommand::new(["sh", "-c", "head -c 10 >/dev/null"]).unwrap();
        let e = early.upload(&file, &names()).unwrap_err();
        assert!(e.to_string().contains("stopped reading"), "{e}");
        let missing = UploadCommand::new(["rds-pg-no-such-uploader"]).unwrap();
        assert_eq!(
            missing.upload(&file, &names()).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }
}
