//! Running a connection's password command ([`crate::ConnectOptions::password_command`]): its
//! standard output, without the final line break, is the password for one connection.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::secret::Password;

/// How much of a failed command's standard error a message carries.
const STDERR_SHOWN: usize = 2000;

/// Runs `argv` (no shell; standard input closed; the environment without credential variables)
/// and returns its output as the password.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty `argv`, or an output that is empty, not UTF-8 or more
/// than one line; [`Error::NotFound`] when the program does not exist; [`Error::Io`] when it
/// cannot be run; [`Error::Tool`] when it exits unsuccessfully, with its standard error (its
/// output is never shown).
pub(crate) fn run(argv: &[OsString]) -> Result<Password> {
    run_with_env(argv, std::env::vars_os())
}

fn run_with_env(
    argv: &[OsString],
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Password> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidInput(
            "the password command is empty: give a program and its arguments".into(),
        ));
    };
    let shown = format!("password command {:?}", program.to_string_lossy());
    let mut command = Command::new(program);
    crate::credentials::environment_without_credentials(&mut command, environment);
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                message: format!("{shown} (is it installed and on PATH?)"),
                source: None,
            },
            _ => Error::io(format!("cannot run the {shown}"), e),
        })?;
    let mut stderr_pipe = child.stderr.take().expect("piped");
    // Read standard error on the side, so that a command writing a lot there cannot block.
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let mut stdout = zeroize::Zeroizing::new(Vec::new());
    let read = child.stdout.take().expect("piped").read_to_end(&mut stdout);
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for the {shown}"), e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    read.map_err(|e| Error::io(format!("reading the output of the {shown}"), e))?;
    if !status.success() {
        let mut text = String::from_utf8_lossy(&stderr).trim().to_owned();
        if let Ok(out) = std::str::from_utf8(&stdout) {
            let out = out.trim();
            if !out.is_empty() && text.contains(out) {
                text = text.replace(out, "[redacted]");
            }
        }
        if text.len() > STDERR_SHOWN {
            let mut cut = STDERR_SHOWN;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        return Err(Error::Tool {
            tool: shown,
            status: status.to_string(),
            stderr: text,
        });
    }
    let text = std::str::from_utf8(&stdout).map_err(|_| {
        Error::InvalidInput(format!("the {shown} printed something that is not UTF-8"))
    })?;
    let line = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    if line.is_empty() {
        return Err(Error::InvalidInput(format!(
            "the {shown} printed no password"
        )));
    }
    if line.contains(['\n', '\r', '\0']) {
        return Err(Error::InvalidInput(format!(
            "the {shown} printed more than one line: the password is its one line of output"
        )));
    }
    Ok(Password::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn env() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin:/bin"),
            ("AWS_REGION", "eu-west-1"),
            ("PGPASSWORD", "master-secret"),
            ("RDS_PG_SANDBOX_DIR", "/tmp/x"),
            ("DATABASE_URL", "postgresql://master:master-secret@h/db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    #[test]
    fn the_output_without_its_final_line_break_is_the_password() {
        for (script, want) in [
            ("printf 'tok en\\n'", "tok en"),
            ("printf 'crlf\\r\\n'", "crlf"),
            ("printf 'no-newline'", "no-newline"),
            ("printf ' spaces kept \\n'", " spaces kept "),
        ] {
            let pw = run_with_env(&argv(&["sh", "-c", script]), env()).unwrap();
            assert_eq!(pw.expose(), want, "{script}");
        }
    }

    #[test]
    fn the_command_sees_aws_variables_but_no_credential_variable() {
        let pw = run_with_env(
            &argv(&[
                "sh",
                "-c",
                "echo \"${AWS_REGION}:${PGPASSWORD:-none}:${RDS_PG_SANDBOX_DIR:-none}:${DATABASE_URL:-none}\"",
            ]),
            env(),
        )
        .unwrap();
        assert_eq!(pw.expose(), "eu-west-1:none:none:none");
    }

    #[test]
    fn failures_are_typed_and_never_show_the_output() {
        let e = run_with_env(
            &argv(&[
                "sh",
                "-c",
                "echo leaked-token; echo 'no credentials' >&2; exit 3",
            ]),
            env(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tool);
        let msg = e.to_string();
        assert!(msg.contains("no credentials"), "{msg}");
        assert!(!msg.contains("leaked-token"), "{msg}");
        let e = run_with_env(
            &argv(&["sh", "-c", "echo tok-secret >&2; echo tok-secret; exit 1"]),
            env(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("tok-secret"), "{e}");

        let e = run_with_env(&argv(&["/nonexistent/aws"]), env()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        for script in ["true", "printf '\\n'", "printf 'a\\nb\\n'"] {
            let e = run_with_env(&argv(&["sh", "-c", script]), env()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{script}: {e}");
        }
        let e = run_with_env(&[], env()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    }

    #[test]
    fn each_call_runs_the_command_again() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("runs");
        let script = format!(
            "echo x >> '{}'; wc -l < '{}' | tr -d ' '",
            counter.display(),
            counter.display()
        );
        let options = crate::ConnectOptions::new().password_command(["sh", "-c", &script]);
        assert_eq!(options.resolve_password().unwrap().unwrap().expose(), "1");
        assert_eq!(options.resolve_password().unwrap().unwrap().expose(), "2");
    }
}
