//! [`RestoreRoute::ScriptThroughPsql`]: pg_restore writes the SQL script, rds-pg leaves out the
//! one preamble setting the server lacks, psql runs the rest in one transaction.
//!
//! [`RestoreRoute::ScriptThroughPsql`]: super::RestoreRoute::ScriptThroughPsql

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};

use super::restore::{Line, Progress, RestoreOptions, StderrLines};
use super::tools::{self, ClientTool};
use crate::error::{Error, Result};

/// The preamble line servers before 17 reject (`unrecognized configuration parameter`).
const TRANSACTION_TIMEOUT: &[u8] = b"SET transaction_timeout = 0;\n";

/// The preamble ends within this many lines (it is about 20).
const PREAMBLE_LINES: usize = 64;

/// A random `\restrict` key: letters and digits, as pg_restore's own.
fn restrict_key() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Reads the script's preamble (its lines up to the blank line that ends the block of `SET`
/// statements) from `script`, and returns it without the `SET transaction_timeout` line.
///
/// # Errors
/// When the preamble does not lock psql's meta-commands with `\restrict <key>` before anything
/// else runs, or does not end within [`PREAMBLE_LINES`] lines: the script is then not what
/// pg_restore writes, and none of it is run.
pub(crate) fn filtered_preamble(script: &mut impl BufRead, key: &str) -> Result<Vec<u8>> {
    let restrict = format!("\\restrict {key}\n");
    let mut out = Vec::new();
    let mut restricted = false;
    let mut in_settings = false;
    for _ in 0..PREAMBLE_LINES {
        let mut line = Vec::new();
        let n = script
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("reading pg_restore's script", e))?;
        if n == 0 {
            break;
        }
        let text = line.as_slice();
        if text == restrict.as_bytes() {
            restricted = true;
        } else if !(restricted || text.starts_with(b"--") || text == b"\n") {
            break;
        }
        if text.starts_with(b"SET ") || text.starts_with(b"SELECT pg_catalog.set_config(") {
            in_settings = true;
        }
        if text == TRANSACTION_TIMEOUT {
            continue;
        }
        let end = in_settings && text == b"\n";
        out.extend_from_slice(text);
        if end {
            return Ok(out);
        }
    }
    Err(Error::Tool {
        tool: "pg_restore --file=-".into(),
        status: "unexpected output".into(),
        stderr: format!(
            "the script does not start with pg_restore's preamble (\\restrict, then its settings); \
             nothing was run: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(400)])
        ),
    })
}

/// Kills a child we started and reaps it (an error: it already exited).
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Restores `options.archive` through pg_restore's script and psql; returns pg_restore's
/// warning lines.
///
/// psql's standard input is closed (which makes it commit) only after pg_restore has exited
/// successfully and the whole script was passed on; when pg_restore fails, psql is killed first,
/// so its transaction rolls back.
///
/// # Errors
/// [`Error::Tool`] with the failing program's standard error; [`Error::Io`] when a program cannot
/// be started or read.
pub(crate) fn run(
    options: &RestoreOptions,
    pg_restore: &ClientTool,
    psql: &ClientTool,
    list: &Path,
    passfile: &Path,
    total: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<String>> {
    let key = restrict_key()?;
    let mut restore_cmd = tools::tool_command(&pg_restore.path);
    restore_cmd
        .arg("--file=-")
        .arg("--no-owner")
        .arg("--no-acl")
        .arg("--verbose")
        .arg(format!("--restrict-key={key}"))
        .arg(tools::path_arg("use-list", list))
        .arg(super::restore::positional(&options.archive))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut restorer = restore_cmd
        .spawn()
        .map_err(|e| Error::io(format!("running {}", pg_restore.path.display()), e))?;
    let mut script = BufReader::new(restorer.stdout.take().expect("stdout is piped"));
    let preamble = match filtered_preamble(&mut script, &key) {
        Ok(p) => p,
        Err(e) => {
            kill(&mut restorer);
            return Err(e);
        }
    };

    let mut psql_cmd = tools::connection_command(psql, &options.connection, passfile);
    psql_cmd
        .arg("--no-psqlrc")
        .arg("--quiet")
        .arg("--set=ON_ERROR_STOP=1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut runner = match psql_cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            kill(&mut restorer);
            return Err(Error::io(format!("running {}", psql.path.display()), e));
        }
    };
    let mut stdin = runner.stdin.take().expect("stdin is piped");
    let psql_stderr = runner.stderr.take().expect("stderr is piped");
    let psql_errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(psql_stderr).read_to_string(&mut text);
        text
    });
    // The script goes on to psql from a thread, which hands psql's standard input back open.
    // One explicit transaction whose COMMIT is sent only once pg_restore succeeded and every
    // byte was passed on: psql reaching the end of its input any other way (rds-pg killed, a
    // pipe broken) ends the session with the transaction open, which rolls it back. psql's own
    // --single-transaction would COMMIT at end of input, whatever cut it short.
    let copier = std::thread::spawn(move || -> (ChildStdin, std::io::Result<()>) {
        let result = stdin
            .write_all(&preamble)
            .and_then(|()| stdin.write_all(b"BEGIN;\n"))
            .and_then(|()| std::io::copy(&mut script, &mut stdin).map(|_| ()));
        (stdin, result)
    });

    let mut warnings = Vec::new();
    let mut done = 0;
    let mut lines = StderrLines::new(false);
    let mut reader = BufReader::new(restorer.stderr.take().expect("stderr is piped"));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end();
        match lines.classify(line) {
            Line::EntryDone(message) => {
                done = (done + 1).min(total);
                progress(&Progress {
                    done,
                    total,
                    message: message.to_owned(),
                    bytes: None,
                });
            }
            Line::Info => {}
            Line::Diagnostic => warnings.push(line.to_owned()),
        }
    }
    let restored = restorer
        .wait()
        .map_err(|e| Error::io(format!("waiting for {}", pg_restore.path.display()), e))?;
    let (mut stdin, copied) = copier.join().expect("the copying thread does not panic");
    if !restored.success() || copied.is_err() {
        // Never let psql commit part of a script: no COMMIT is sent, and psql is stopped.
        kill(&mut runner);
        drop(stdin);
        let errors = psql_errors.join().unwrap_or_default();
        if !restored.success() {
            let mut stderr = warnings.join("\n");
            if !errors.trim().is_empty() {
                stderr.push_str(&format!("\npsql: {}", errors.trim()));
            }
            return Err(tools::tool_failed(pg_restore, restored, stderr));
        }
        return Err(Error::Tool {
            tool: format!("{} ({})", psql.program, psql.path.display()),
            status: "stopped at an error".into(),
            stderr: errors,
        });
    }
    let committed = stdin.write_all(b"COMMIT;\n");
    drop(stdin);
    let status = runner
        .wait()
        .map_err(|e| Error::io(format!("waiting for {}", psql.path.display()), e))?;
    let errors = psql_errors.join().unwrap_or_default();
    if !status.success() || committed.is_err() {
        return Err(tools::tool_failed(psql, status, errors));
    }
    progress(&Progress {
        done: total,
        total,
        message: "done".into(),
        bytes: None,
    });
    warnings.extend(
        errors
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned),
    );
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREAMBLE: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict KEY1\n\n\
        -- Dumped from database version 15.18\n-- Dumped by pg_dump version 18.6\n\n\
        SET statement_timeout = 0;\nSET lock_timeout = 0;\n\
        SET idle_in_transaction_session_timeout = 0;\nSET transaction_timeout = 0;\n\
        SET client_encoding = 'UTF8';\n\
        SELECT pg_catalog.set_config('search_path', '', false);\nSET row_security = off;\n\n";

    #[test]
    fn the_preamble_loses_transaction_timeout_only() {
        let script =
            format!("{PREAMBLE}--\n-- Name: t\nCREATE TABLE t ();\nSET transaction_timeout = 0;\n");
        let mut reader = std::io::Cursor::new(script.as_bytes());
        let preamble = filtered_preamble(&mut reader, "KEY1").unwrap();
        let expected = PREAMBLE.replace("SET transaction_timeout = 0;\n", "");
        assert_eq!(String::from_utf8(preamble).unwrap(), expected);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert!(
            rest.contains("CREATE TABLE t ();\nSET transaction_timeout = 0;\n"),
            "the rest is untouched"
        );
    }

    #[test]
    fn a_script_without_the_restrict_key_runs_nothing() {
        for script in [
            PREAMBLE.replace("\\restrict KEY1", "\\restrict OTHER"),
            PREAMBLE.replace("\\restrict KEY1\n", ""),
            "\\! echo hi\n".to_owned() + PREAMBLE,
            "SELECT 1;\n".to_owned(),
            String::new(),
            "--\n".repeat(100),
        ] {
            let mut reader = std::io::Cursor::new(script.as_bytes());
            assert!(
                filtered_preamble(&mut reader, "KEY1").is_err(),
                "{script:?}"
            );
        }
    }

    #[test]
    fn restrict_keys_are_random_letters_and_digits() {
        let (a, b) = (restrict_key().unwrap(), restrict_key().unwrap());
        assert_ne!(a, b);
        assert!(a.len() == 40 && a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
