//! Encryption of archives to age recipients, streamed: pg_dump writes into a named pipe whose
//! reader encrypts into the archive file, and pg_restore reads a named pipe that a thread fills
//! with the decrypted archive. The plaintext is never written to disk.
//!
//! age (<https://age-encryption.org/v1>) through the `age` crate: X25519 recipients (`age1…`)
//! only; the crate is built without plugins and SSH keys.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::manifest::hex;
use crate::dump::ClientTool;
use crate::error::{Error, Result};

/// Suffix of an encrypted archive's file name (`20261201T103000Z.dump.age`).
pub const ENCRYPTED_SUFFIX: &str = ".age";

/// A public key archives are encrypted to: an age X25519 recipient (`age1…`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    key: age::x25519::Recipient,
}

impl Recipient {
    /// Reads an age X25519 recipient (`age1` and 58 more characters, as `age-keygen` prints).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else (SSH keys and plugin recipients included).
    pub fn parse(text: &str) -> Result<Recipient> {
        text.trim()
            .parse::<age::x25519::Recipient>()
            .map(|key| Recipient { key })
            .map_err(|why| {
                Error::InvalidInput(format!(
                    "{text:?} is not an age recipient (age1…, as age-keygen prints): {why}"
                ))
            })
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.key)
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.key)
    }
}

/// The private keys that decrypt archives: an age identity file (`AGE-SECRET-KEY-1…` lines, as
/// `age-keygen` writes). `Debug` shows nothing of them.
#[derive(Clone)]
pub struct Identities {
    file: PathBuf,
    keys: Arc<Vec<Box<dyn age::Identity + Send + Sync>>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identities({} from {})",
            self.keys.len(),
            self.file.display()
        )
    }
}

impl Identities {
    /// Reads an age identity file.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; [`Error::InvalidInput`] when it holds no identity
    /// rds-pg can use.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Identities> {
        let path = path.as_ref();
        let text = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading identity file {}", path.display()), e))?;
        let bad = |why: String| {
            Error::InvalidInput(format!(
                "identity file {} holds no age identity rds-pg can use: {why}",
                path.display()
            ))
        };
        let file = age::IdentityFile::from_buffer(&text[..]).map_err(|e| bad(e.to_string()))?;
        let keys = file.into_identities().map_err(|e| bad(e.to_string()))?;
        if keys.is_empty() {
            return Err(bad("it is empty".into()));
        }
        Ok(Identities {
            file: path.to_owned(),
            keys: Arc::new(keys),
        })
    }

    /// Checks that these identities open the age file at `path` (its header only).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when none does or the file is not an age file; [`Error::Io`].
    pub fn check(&self, path: &Path) -> Result<()> {
        self.open(path).map(drop)
    }

    fn open(&self, path: &Path) -> Result<age::stream::StreamReader<BufReader<File>>> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(256 * 1024, file))
            .map_err(|e| decrypt_error(path, &self.file, e))?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(|e| decrypt_error(path, &self.file, e))
    }
}

fn decrypt_error(archive: &Path, identities: &Path, e: age::DecryptError) -> Error {
    let why = match e {
        age::DecryptError::NoMatchingKeys => format!(
            "no identity in {} can decrypt it (it was encrypted to other recipients)",
            identities.display()
        ),
        other => other.to_string(),
    };
    Error::InvalidInput(format!("cannot decrypt {}: {why}", archive.display()))
}

/// Runs `f` with a path from which `archive`, decrypted with `identities`, can be read from the
/// beginning each time it is opened (a named pipe: the plaintext is never written to disk), for
/// example [`crate::dump::restore_with`] on it. The pipe cannot be read in parallel: restore with
/// one job.
///
/// # Errors
/// [`Error::InvalidInput`] when the identities cannot decrypt the archive (before `f` runs), or
/// when decryption failed on the way (a damaged archive: the message says so, and what `f` then
/// reported); otherwise `f`'s error.
pub fn with_decrypted<T>(
    archive: &Path,
    identities: &Identities,
    f: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let pipe = DecryptingPipe::start(archive, identities)?;
    let result = f(pipe.path());
    let damaged = pipe.error();
    drop(pipe);
    match (result, damaged) {
        (Err(e), Some(d)) => Err(Error::InvalidInput(format!("{d}; so: {e}"))),
        (Ok(_), Some(d)) => Err(Error::InvalidInput(d)),
        (result, None) => result,
    }
}

/// Creates a named pipe `name` in a new private directory (`0700`).
fn private_fifo(name: &str) -> Result<(tempfile::TempDir, PathBuf)> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("rds-pg-backup-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder
        .tempdir()
        .map_err(|e| Error::io("creating a temporary directory", e))?;
    let path = dir.path().join(name);
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidInput("a temporary path holds NUL".into()))?;
    // SAFETY: `c` is a NUL-terminated path that lives for the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(Error::io(
            format!("creating the pipe {}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok((dir, path))
}

/// Opens the pipe's writing end without waiting: `Ok(None)` when nobody reads it.
fn open_writer_now(fifo: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Wakes a thread blocked opening the pipe's reading end, until `done` says it finished.
fn wake_reader(fifo: &Path, done: &dyn Fn() -> bool) {
    while !done() {
        let _ = open_writer_now(fifo);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wakes a thread blocked opening the pipe's writing end, until `done` says it finished.
fn wake_writer(fifo: &Path, done: &dyn Fn() -> bool) {
    use std::os::unix::fs::OpenOptionsExt;
    while !done() {
        let _ = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What the encrypting reader of a dump's pipe produced.
#[derive(Debug)]
pub(crate) struct Encrypted {
    /// SHA-256 of the encrypted file.
    pub sha256: String,
    /// Size of the encrypted file.
    pub bytes: u64,
    /// `pg_restore --list` of the plaintext, read as it went by.
    pub listing: String,
}

/// The pipe pg_dump writes a custom-format archive into, and the thread that encrypts it into
/// `<output>.partial` (renamed to the output by [`EncryptingPipe::finish`]) while handing the
/// plaintext's beginning to `pg_restore --list` for the table of contents.
pub(crate) struct EncryptingPipe {
    _dir: tempfile::TempDir,
    fifo: PathBuf,
    output: PathBuf,
    partial: PathBuf,
    stop: Arc<AtomicBool>,
    plain_bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<Encrypted>>>,
}

impl EncryptingPipe {
    /// Starts the reader: the archive goes to `output`, encrypted to `recipients`, its table of
    /// contents through `pg_restore` (`pg_restore --list` on standard input).
    pub(crate) fn start(
        output: &Path,
        recipients: &[Recipient],
        pg_restore: &ClientTool,
    ) -> Result<EncryptingPipe> {
        if recipients.is_empty() {
            return Err(Error::InvalidInput("encryption needs a recipient".into()));
        }
        let (dir, fifo) = private_fifo("archive.dump")?;
        let mut partial = output.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let mut open = OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let file = open
            .open(&partial)
            .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
        let keys: Vec<age::x25519::Recipient> = recipients.iter().map(|r| r.key.clone()).collect();
        let encryptor =
            age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient))
                .map_err(|e| Error::InvalidInput(format!("age: {e}")))?;
        let mut lister = crate::dump::tools::tool_command(&pg_restore.path);
        lister
            .arg("--list")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let lister = lister
            .spawn()
            .map_err(|e| Error::io(format!("running {}", pg_restore.path.display()), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let plain_bytes = Arc::new(AtomicU64::new(0));
        let thread = {
            let (fifo, stop, plain_bytes, tool) = (
                fifo.clone(),
                stop.clone(),
                plain_bytes.clone(),
                pg_restore.clone(),
            );
            std::thread::spawn(move || {
                encrypt_stream(&fifo, file, encryptor, lister, &tool, &stop, &plain_bytes)
            })
        };
        Ok(EncryptingPipe {
            _dir: dir,
            fifo,
            output: output.to_owned(),
            partial,
            stop,
            plain_bytes,
            thread: Some(thread),
        })
    }

    /// The pipe to hand pg_dump as its output file.
    pub(crate) fn path(&self) -> &Path {
        &self.fifo
    }

    /// Plaintext bytes encrypted so far (pg_dump's archive size).
    pub(crate) fn plain_bytes(&self) -> u64 {
        self.plain_bytes.load(Ordering::Relaxed)
    }

    /// Stops the reader. When `keep` (pg_dump succeeded) the encrypted file replaces the output;
    /// otherwise it is removed.
    pub(crate) fn finish(mut self, keep: bool) -> Result<Encrypted> {
        let result = self.join();
        match result {
            Ok(done) if keep => {
                std::fs::rename(&self.partial, &self.output)
                    .map_err(|e| Error::io(format!("renaming to {}", self.output.display()), e))?;
                Ok(done)
            }
            other => {
                let _ = std::fs::remove_file(&self.partial);
                other.and(Err(Error::InvalidInput("the dump failed".into())))
            }
        }
    }

    fn join(&mut self) -> Result<Encrypted> {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return Err(Error::InvalidInput(
                "the encryption already finished".into(),
            ));
        };
        wake_reader(&self.fifo, &|| thread.is_finished());
        thread.join().unwrap_or_else(|_| {
            Err(Error::io(
                "encrypting the archive",
                io::Error::other("the encrypting thread panicked"),
            ))
        })
    }
}

impl Drop for EncryptingPipe {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// The reader's loop: open the pipe (each opening by a writer is a round); a round that brought
/// no bytes (rds-pg making the output private before pg_dump starts) is followed by another; the
/// first round with bytes is the archive.
fn encrypt_stream(
    fifo: &Path,
    file: File,
    encryptor: age::Encryptor,
    mut lister: Child,
    tool: &ClientTool,
    stop: &AtomicBool,
    plain_bytes: &AtomicU64,
) -> Result<Encrypted> {
    let context = "encrypting the archive";
    let hashing = Hashing {
        inner: io::BufWriter::with_capacity(256 * 1024, file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut writer = encryptor
        .wrap_output(hashing)
        .map_err(|e| Error::io(context, e))?;
    let mut list_input = lister.stdin.take();
    let mut list_output = lister.stdout.take();
    let mut list_errors = lister.stderr.take();
    let collected = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(o) = list_output.as_mut() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(e) = list_errors.as_mut() {
            let _ = e.read_to_string(&mut err);
        }
        (out, err)
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        // Blocks until a writer opens the pipe: rds-pg making the output private (no bytes),
        // pg_dump, or `finish` waking it after a pg_dump that never opened it.
        let mut pipe = File::open(fifo).map_err(|e| Error::io(context, e))?;
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(context, e)),
            };
            writer
                .write_all(&buf[..n])
                .map_err(|e| Error::io(context, e))?;
            if let Some(input) = list_input.as_mut() {
                if input.write_all(&buf[..n]).is_err() {
                    // pg_restore has read the table of contents and left.
                    list_input = None;
                }
            }
            total += n as u64;
            plain_bytes.store(total, Ordering::Relaxed);
        }
        if total > 0 || stop.load(Ordering::SeqCst) {
            break;
        }
    }
    drop(list_input);
    let mut hashing = writer.finish().map_err(|e| Error::io(context, e))?;
    hashing.flush().map_err(|e| Error::io(context, e))?;
    let Hashing {
        inner,
        hasher,
        bytes,
    } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| Error::io(context, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(context, e))?;
    let status = lister.wait().map_err(|e| Error::io(context, e))?;
    let (listing, errors) = collected.join().unwrap_or_default();
    if total > 0 && !status.success() {
        return Err(Error::Tool {
            tool: format!("{} --list ({})", tool.program, tool.path.display()),
            status: status.to_string(),
            stderr: errors,
        });
    }
    Ok(Encrypted {
        sha256: hex(&hasher.finalize()),
        bytes,
        listing,
    })
}

/// A path that serves the decrypted archive to every process that opens it, each time from the
/// beginning (pg_restore reads the table of contents, then the archive), until dropped.
///
/// The path is a symbolic link to a named pipe; each pipe serves one reader. As soon as a reader
/// has opened the pipe, and before a byte is written to it, the link is pointed at a new pipe for
/// the next reader: a reader that opens the path after the previous one has read from it always
/// gets a stream of its own.
pub(crate) struct DecryptingPipe {
    _dir: tempfile::TempDir,
    link: PathBuf,
    stop: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl DecryptingPipe {
    /// Starts serving `archive` decrypted with `identities`.
    pub(crate) fn start(archive: &Path, identities: &Identities) -> Result<DecryptingPipe> {
        identities.check(archive)?;
        let (dir, first) = private_fifo("round-0")?;
        let link = dir.path().join("archive.dump");
        point(&link, &first)?;
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let thread = {
            let (dir, link, stop, error, archive, identities) = (
                dir.path().to_owned(),
                link.clone(),
                stop.clone(),
                error.clone(),
                archive.to_owned(),
                identities.clone(),
            );
            std::thread::spawn(move || {
                serve(&dir, &link, first, &archive, &identities, &stop, &error)
            })
        };
        Ok(DecryptingPipe {
            _dir: dir,
            link,
            stop,
            error,
            thread: Some(thread),
        })
    }

    /// The path to hand pg_restore as the archive.
    pub(crate) fn path(&self) -> &Path {
        &self.link
    }

    /// The first decryption error, if one happened (a damaged archive).
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for DecryptingPipe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            wake_writer(&self.link, &|| thread.is_finished());
            let _ = thread.join();
        }
    }
}

/// Points the symbolic link `link` at `target`, atomically (a new link renamed over it).
fn point(link: &Path, target: &Path) -> Result<()> {
    let staged = link.with_extension("next");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(target, &staged)
        .and_then(|()| std::fs::rename(&staged, link))
        .map_err(|e| Error::io(format!("pointing {} at a new pipe", link.display()), e))
}

fn serve(
    dir: &Path,
    link: &Path,
    first: PathBuf,
    archive: &Path,
    identities: &Identities,
    stop: &AtomicBool,
    error: &Mutex<Option<String>>,
) {
    let record = |message: String| {
        if let Ok(mut e) = error.lock() {
            e.get_or_insert(message);
        }
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut current = first;
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        // Blocks until a reader opens the pipe (or drop wakes it).
        let Ok(mut pipe) = OpenOptions::new().write(true).open(&current) else {
            return;
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // The next reader gets a pipe of its own.
        round += 1;
        let next = dir.join(format!("round-{round}"));
        let made = CString::new(next.as_os_str().as_encoded_bytes())
            .ok()
            // SAFETY: a NUL-terminated path that lives for the call.
            .filter(|c| unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0);
        if made.is_none() || point(link, &next).is_err() {
            record(format!(
                "cannot create a pipe in {}: {}",
                dir.display(),
                io::Error::last_os_error()
            ));
            return;
        }
        match identities.open(archive) {
            Ok(mut plain) => loop {
                let n = match plain.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        record(format!("cannot decrypt {}: {e}", archive.display()));
                        break;
                    }
                };
                // A reader that leaves early (pg_restore --list) ends the round.
                if pipe.write_all(&buf[..n]).is_err() {
                    break;
                }
            },
            Err(e) => record(e.to_string()),
        }
        drop(pipe);
        let _ = std::fs::remove_file(&current);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_checked() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        let r = Recipient::parse(&public).unwrap();
        assert_eq!(r.to_string(), public);
        for bad in [
            "",
            "age1",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq7 user@host",
            &public[..public.len() - 1],
        ] {
            let e = Recipient::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn a_pipe_serves_the_decrypted_archive_to_each_reader() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let keys = dir.path().join("key.txt");
        std::fs::write(
            &keys,
            format!("# test\n{}\n", identity.to_string().expose_secret()),
        )
        .unwrap();
        let identities = Identities::from_file(&keys).unwrap();
        assert!(!format!("{identities:?}").contains("AGE-SECRET"));
        let plain: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let archive = dir.path().join("a.dump.age");
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&identity.to_public() as _)).unwrap();
        let mut w = encryptor
            .wrap_output(File::create(&archive).unwrap())
            .unwrap();
        w.write_all(&plain).unwrap();
        w.finish().unwrap();

        let pipe = DecryptingPipe::start(&archive, &identities).unwrap();
        // One reader leaves after a few bytes, the next reads everything, twice in a row.
        let mut head = [0u8; 100];
        File::open(pipe.path())
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert_eq!(&head[..], &plain[..100]);
        for _ in 0..2 {
            let mut all = Vec::new();
            File::open(pipe.path())
                .unwrap()
                .read_to_end(&mut all)
                .unwrap();
            assert!(all == plain, "the reader gets the whole archive once");
        }
        assert_eq!(pipe.error(), None);
        drop(pipe);

        // Another key cannot open it; a damaged archive is reported.
        let other = dir.path().join("other.txt");
        std::fs::write(
            &other,
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        )
        .unwrap();
        let e = Identities::from_file(&other)
            .unwrap()
            .check(&archive)
            .unwrap_err();
        assert!(e.to_string().contains("no identity in"), "{e}");
        let mut bytes = std::fs::read(&archive).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&archive, &bytes).unwrap();
        let pipe = DecryptingPipe::start(&archive, &identities).unwrap();
        let mut all = Vec::new();
        File::open(pipe.path())
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert!(all.len() < plain.len());
        assert!(
            pipe.error().unwrap().contains("cannot decrypt"),
            "{:?}",
            pipe.error()
        );
        std::fs::write(&other, "not a key").unwrap();
        assert!(Identities::from_file(&other).is_err());
    }
}
