//! Files only their owner may read, written atomically: the one writer of every file rds-pg
//! creates with a secret in it (credentials, password files, a tool's work files, a sandbox's
//! state).
//!
//! The contents go to a new file under a temporary name in the target's directory, created with
//! mode `0600` (so no other user can open it, even for a moment), flushed to disk, then renamed
//! over the target: a reader sees the old file or the new one, never half of one.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Replaces the file at `path` with `contents`, atomically, mode `0600` from creation (see the
/// module documentation). A symbolic link at `path` is followed: the link stays, its target is
/// replaced (and created when it does not exist yet). An existing file's owner and group are
/// kept when the process may set them. The directory must exist.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written or moved into place (nothing is left behind);
/// [`Error::InvalidInput`] when `path` names no file.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> Result<()> {
    replace_checked(path, contents, |_| Ok(()))
}

/// As [`replace`]; `check` inspects the written temporary file before it replaces the target,
/// and an error from it leaves the target as it was.
///
/// # Errors
/// As [`replace`], and whatever `check` returns.
pub(crate) fn replace_checked(
    path: &Path,
    contents: &[u8],
    check: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let target = resolve_symlink(path)?;
    let dir = directory_of(&target);
    let name = target.file_name().ok_or_else(|| {
        Error::InvalidInput(format!("\"{}\" does not name a file", path.display()))
    })?;
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".rds-pg.tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut temp = builder
        .tempfile_in(&dir)
        .map_err(|e| Error::io(format!("cannot create a file in \"{}\"", dir.display()), e))?;
    let context = || format!("cannot write \"{}\"", temp_display(&dir, &prefix));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let file = temp.as_file();
        // The umask may have taken away the owner's bits: state the mode exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(context(), e))?;
        if let (Ok(old), Ok(new)) = (std::fs::metadata(&target), file.metadata()) {
            if (old.uid(), old.gid()) != (new.uid(), new.gid()) {
                // Best effort: only root (or the owner, for the group) may do this.
                let _ = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()));
            }
        }
    }
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| Error::io(context(), e))?;
    // On any error from here on, dropping `temp` deletes it.
    check(temp.path())?;
    temp.persist(&target).map_err(|e| {
        Error::io(
            format!(
                "cannot move the new file into place at \"{}\"",
                target.display()
            ),
            e.error,
        )
    })?;
    sync_dir(&dir);
    Ok(())
}

/// The directory a file at `path` lives in (`.` for a bare file name).
pub(crate) fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// For messages: where the temporary files go.
fn temp_display(dir: &Path, prefix: &OsString) -> String {
    format!("{}/{}…", dir.display(), prefix.to_string_lossy())
}

/// The file a write to `path` should replace: the final target of a chain of symbolic links
/// (which need not exist yet), `path` otherwise.
pub(crate) fn resolve_symlink(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    // Linux's limit on symbolic links followed in one lookup.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current).map_err(|e| {
                    Error::io(
                        format!("cannot read the symbolic link \"{}\"", current.display()),
                        e,
                    )
                })?;
                // A relative target is relative to the link's directory; an absolute one
                // replaces the path.
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::io(
        format!("cannot follow the symbolic links at \"{}\"", path.display()),
        io::Error::other("too many levels of symbolic links"),
    ))
}

/// Flushes a directory entry change (a rename) to disk; best effort, Unix only.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_private_and_an_old_one_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        replace(&path, b"first").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        replace(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(
            mode(&path),
            0o600,
            "a file readable by others is replaced by a private one"
        );
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            before.ino(),
            std::fs::metadata(&path).unwrap().ino(),
            "a new file, renamed into place: nobody ever read it half-written"
        );
        assert_eq!(names(dir.path()), ["secret"], "no temporary file is left");
    }

    #[test]
    fn a_failed_check_leaves_the_target_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "old").unwrap();
        let mut seen = Vec::new();
        let err = replace_checked(&path, b"new", |written| {
            seen = std::fs::read(written).unwrap();
            Err(Error::InvalidInput("refused".into()))
        })
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert_eq!(seen, b"new", "the check reads what was written");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(names(dir.path()), ["pgpass"]);
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = replace(&dir.path().join("nope").join("f"), b"x").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Io);
        assert_eq!(directory_of(Path::new("bare")), PathBuf::from("."));
        assert_eq!(directory_of(Path::new("/a/b")), PathBuf::from("/a"));
    }
}
