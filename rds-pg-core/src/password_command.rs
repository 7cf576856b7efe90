//! Running a connection's password command ([`crate::ConnectOptions::password_command`]): its
//! standard output, without the final line break, is the password for one connection.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::secret::Password;

/// How much of a failed command's standard error a message carries.
const STDERR_SHOWN: usize = 2000;

/// The most a command that prints a password or credentials may print.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs `argv` (no shell; standard input closed; the environment without credential variables)
/// and returns the password it printed: a JSON object with `password` (such as the secret AWS
/// Secrets Manager keeps for an RDS master) or a `postgresql://` URI is read as
/// [`crate::inventory`]'s commands are; anything else is the password itself, its one line of
/// output without the final line break (an IAM token from `aws rds generate-db-auth-token`, a
/// password manager's output).
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
    let shown = match argv.first() {
        Some(program) => format!("password command {:?}", program.to_string_lossy()),
        None => "password command".to_owned(),
    };
    let printed = run_printing_with_env("password command", argv, environment)?;
    let text = printed.expose();
    let trimmed = text.trim();
    if trimmed.starts_with('{')
        || trimmed.starts_with("postgresql://")
        || trimmed.starts_with("postgres://")
    {
        return crate::inventory::parse_printed(&printed)
            .map(|(_, password)| password)
            .map_err(|reason| Error::InvalidInput(format!("the {shown}: {reason}")));
    }
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

/// Runs a command that prints a password or credentials (`label` names it in errors, as in
/// `credential read command "vault"`): no shell, standard input closed, this process's
/// environment without the variables that may carry master's credentials (every `PG*` and
/// `RDS_PG_*` variable and `DATABASE_URL`); its standard output (at most 64 KiB) is returned.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty `argv` or output that is not UTF-8; [`Error::NotFound`]
/// for a program that does not exist; [`Error::Io`] when it cannot be run; [`Error::Tool`] when
/// it fails, with (at most 2000 bytes of) its standard error, in which what it printed is
/// replaced by `[redacted]`.
pub(crate) fn run_printing_command(label: &str, argv: &[OsString]) -> Result<Password> {
    run_printing_with_env(label, argv, std::env::vars_os())
}

fn run_printing_with_env(
    label: &str,
    argv: &[OsString],
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Password> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidInput(format!(
            "the {label} is empty: give a program and its arguments"
        )));
    };
    let shown = format!("{label} {:?}", program.to_string_lossy());
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
    // Standard error is read on a thread while standard output is read, so that a command
    // writing a lot to either cannot dead-lock with us.
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let mut stdout = zeroize::Zeroizing::new(Vec::new());
    let mut out_pipe = child.stdout.take().expect("piped");
    let read = (&mut out_pipe).take(MAX_OUTPUT).read_to_end(&mut stdout);
    drop(out_pipe);
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for the {shown}"), e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    read.map_err(|e| Error::io(format!("reading the output of the {shown}"), e))?;
    if !status.success() {
        let mut text = String::from_utf8_lossy(&stderr).trim().to_owned();
        let out = zeroize::Zeroizing::new(String::from_utf8_lossy(&stdout).trim().to_owned());
        if !out.is_empty() && text.contains(out.as_str()) {
            text = text.replace(out.as_str(), "[redacted]");
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
    String::from_utf8(stdout.to_vec())
        .map(Password::new)
        .map_err(|_| Error::InvalidInput(format!("the {shown} printed no UTF-8 text")))
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
