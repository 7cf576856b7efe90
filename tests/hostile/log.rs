//! The sandbox's server log, entry by entry, with the session user and database of each (its
//! `log_line_prefix` is `%m [%p] %q%u@%d `).

use crate::Sandbox;

/// One log entry: its first line's prefix, level and message, continuation lines included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The session user (empty for lines of a process without a session).
    pub user: String,
    /// The database (empty without a session).
    pub database: String,
    /// The backend's process id.
    pub pid: u32,
    /// `LOG`, `WARNING`, `ERROR`, `DETAIL`, …
    pub level: String,
    /// The message, continuation lines joined with `\n`.
    pub message: String,
}

impl LogEntry {
    /// The SQL of a logged statement (`statement: …` or `execute <name>: …`), if it is one.
    pub fn statement(&self) -> Option<&str> {
        if self.level != "LOG" {
            return None;
        }
        if let Some(s) = self.message.strip_prefix("statement: ") {
            return Some(s);
        }
        let rest = self.message.strip_prefix("execute ")?;
        rest.find(": ").map(|i| &rest[i + 2..])
    }
}

/// The log's length now: entries after this mark are "new".
pub fn mark(sandbox: &Sandbox) -> usize {
    sandbox.log_text().expect("the sandbox log").len()
}

/// Every entry logged after `mark`.
pub fn entries_since(sandbox: &Sandbox, mark: usize) -> Vec<LogEntry> {
    let log = sandbox.log_text().expect("the sandbox log");
    parse(log.get(mark..).unwrap_or(""))
}

/// Parses log text into entries.
pub fn parse(text: &str) -> Vec<LogEntry> {
    let mut entries: Vec<LogEntry> = Vec::new();
    for line in text.lines() {
        match parse_first_line(line) {
            Some(e) => entries.push(e),
            None => {
                if let Some(last) = entries.last_mut() {
                    last.message.push('\n');
                    last.message.push_str(line);
                }
            }
        }
    }
    entries
}

/// `2026-12-01 10:00:00.123 UTC [1234] master@postgres LOG:  statement: SELECT 1`.
fn parse_first_line(line: &str) -> Option<LogEntry> {
    let b = line.as_bytes();
    if !(b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-') {
        return None;
    }
    let open = line.find(" [")?;
    let close = open + line[open..].find("] ")?;
    let pid: u32 = line[open + 2..close].parse().ok()?;
    let rest = &line[close + 2..];
    let (user, database, rest) = match rest.split_once(' ') {
        Some((who, after)) if who.contains('@') && !who.ends_with(':') => {
            let (u, d) = who.split_once('@').unwrap();
            (u.to_owned(), d.to_owned(), after)
        }
        _ => (String::new(), String::new(), rest),
    };
    let (level, message) = rest.split_once(":  ")?;
    if level.is_empty()
        || !level
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return None;
    }
    Some(LogEntry {
        user,
        database,
        pid,
        level: level.to_owned(),
        message: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_level_message_and_continuations() {
        let text = "2026-12-01 10:00:00.123 UTC [42] master@postgres LOG:  statement: SELECT 1,\n\
                    \t2\n\
                    2026-12-01 10:00:00.124 UTC [42] master@postgres LOG:  execute <unnamed>: SELECT $1\n\
                    2026-12-01 10:00:00.125 UTC [42] master@postgres DETAIL:  parameters: $1 = 'x'\n\
                    2026-12-01 10:00:00.126 UTC [7] LOG:  checkpoint starting: time\n\
                    2026-12-01 10:00:00.127 UTC [43] hostile@hostile WARNING:  rds-pg-hostile-hit: x";
        let e = parse(text);
        assert_eq!(e.len(), 5);
        assert_eq!(e[0].statement(), Some("SELECT 1,\n\t2"));
        assert_eq!(e[1].statement(), Some("SELECT $1"));
        assert_eq!(e[2].statement(), None);
        assert_eq!((e[3].user.as_str(), e[3].pid), ("", 7));
        assert_eq!(
            (
                e[4].user.as_str(),
                e[4].database.as_str(),
                e[4].level.as_str()
            ),
            ("hostile", "hostile", "WARNING")
        );
    }
}
