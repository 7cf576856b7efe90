//! Reading an archive's table of contents from the archive itself, exactly.
//!
//! `pg_restore --list` prints each entry as `<dump id>; <catalog oid> <oid> <desc> <schema> <name>
//! <owner>` without quoting anything, so a schema, name or owner with a space in it cannot be told
//! apart from the next field (and line breaks in names are printed as spaces). The archive itself
//! stores every field as a length-prefixed string (`WriteToc` in `pg_backup_archiver.c`): reading
//! that is unambiguous, needs no client program, and tells the archive format's version, which
//! decides which `pg_restore` can read the archive at all.
//!
//! Custom-format files (`PGDMP` header, then the table of contents), directory-format archives
//! (`toc.dat`) and tar-format archives (`toc.dat`, the first member) are read; archive format
//! versions 1.10 (PostgreSQL 8.4) to 1.16 (PostgreSQL 17 and 18).

use std::fmt;
use std::io::Read;
use std::path::Path;

use super::toc::{EntryKind, Toc, TocEntry, TocHeader};
use crate::error::{Error, Result};

/// The version of an archive's format (`1.16-0`): what pg_dump wrote and pg_restore must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchiveVersion {
    /// Major (1).
    pub major: u8,
    /// Minor (14 for pg_dump 12–15, 15 for 16, 16 for 17 and 18).
    pub minor: u8,
    /// Revision.
    pub rev: u8,
}

impl ArchiveVersion {
    /// The newest archive format that pg_restore of major version `pg_restore_major` reads
    /// (`K_VERS_MAX` of its sources): 1.14 up to 15, 1.15 for 16, 1.16 for 17 and 18. Unknown
    /// newer majors are assumed to read at least what 18 reads.
    pub fn newest_readable_by(pg_restore_major: u32) -> ArchiveVersion {
        let minor = match pg_restore_major {
            0..=11 => 13,
            12..=15 => 14,
            16 => 15,
            _ => 16,
        };
        ArchiveVersion {
            major: 1,
            minor,
            rev: 255,
        }
    }

    /// Whether pg_restore of major version `pg_restore_major` can read an archive of this format.
    pub fn readable_by(self, pg_restore_major: u32) -> bool {
        self <= ArchiveVersion::newest_readable_by(pg_restore_major)
    }

    fn at_least(self, major: u8, minor: u8) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Reads `1.16-0` (as `pg_restore --list` prints it).
    pub fn parse(text: &str) -> Option<ArchiveVersion> {
        let (major, rest) = text.trim().split_once('.')?;
        let (minor, rev) = rest.split_once('-').unwrap_or((rest, "0"));
        Some(ArchiveVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            rev: rev.parse().ok()?,
        })
    }
}

impl fmt::Display for ArchiveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}-{}", self.major, self.minor, self.rev)
    }
}

/// The major version in a version string (`18.6` → 18, `15.18 (Debian 15.18-0+deb12u1)` → 15,
/// `18beta1` → 18, `9.6.24` → 9).
pub fn major_of(version: &str) -> Option<u32> {
    let digits: String = version
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

const MAGIC: &[u8; 5] = b"PGDMP";

impl Toc {
    /// Reads the table of contents of the archive at `path` (a custom-format file, a
    /// directory-format directory or a tar-format file) from the archive itself, field by field:
    /// names with spaces, quotes or line breaks come out exactly as they are in the database.
    /// Only the table of contents is read (it comes first), so a truncated archive still lists
    /// its entries.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `path` does not exist; [`Error::Io`] when it cannot be read;
    /// [`Error::InvalidInput`] when it is not an archive pg_dump wrote, or one whose format
    /// version is unknown.
    pub fn read_archive(path: &Path) -> Result<Toc> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    message: format!("archive {} does not exist", path.display()),
                    source: None,
                }
            } else {
                Error::io(format!("reading {}", path.display()), e)
            }
        })?;
        let (bytes, shown) = if meta.is_dir() {
            let toc = path.join("toc.dat");
            let bytes = std::fs::read(&toc).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::InvalidInput(format!(
                        "{} is not a directory-format archive: it has no toc.dat",
                        path.display()
                    ))
                } else {
                    Error::io(format!("reading {}", toc.display()), e)
                }
            })?;
            (bytes, toc.display().to_string())
        } else {
            (read_head_of_file(path)?, path.display().to_string())
        };
        let body = if bytes.starts_with(MAGIC) {
            &bytes[..]
        } else if let Some(member) = tar_toc(&bytes) {
            member
        } else {
            return Err(Error::InvalidInput(format!(
                "{shown} is not a pg_dump archive (custom, directory or tar format): no PGDMP \
                 header"
            )));
        };
        parse_archive(body).map_err(|e| {
            Error::InvalidInput(format!("cannot read the table of contents of {shown}: {e}"))
        })
    }
}

/// The file's bytes: the table of contents comes first, so a custom archive is read in chunks
/// only until its table of contents parses (a large archive is not read whole).
fn read_head_of_file(path: &Path) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut bytes = Vec::new();
    let mut chunk = 1 << 20;
    loop {
        let read = (&mut file)
            .take(chunk)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let complete = read < chunk as usize;
        let custom = bytes.starts_with(MAGIC);
        let tar = !custom && bytes.len() >= 512 && &bytes[257..262] == b"ustar";
        // Not an archive (nothing more to read for the error), or a complete table of contents.
        if complete || (!custom && !tar) {
            return Ok(bytes);
        }
        if (custom && parse_archive(&bytes).is_ok()) || (tar && tar_toc(&bytes).is_some()) {
            return Ok(bytes);
        }
        chunk *= 2;
    }
}

/// The contents of `toc.dat`, the first member of a pg_dump tar archive.
fn tar_toc(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..512)?;
    if &header[257..262] != b"ustar" {
        return None;
    }
    let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
    if &header[..name_end] != b"toc.dat" {
        return None;
    }
    let size_field = std::str::from_utf8(&header[124..136]).ok()?;
    let size =
        usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()?;
    let body = bytes.get(512..512 + size)?;
    body.starts_with(MAGIC).then_some(body)
}

/// Why the bytes are not a table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The archive formats pg_dump writes (`ArchiveFormat` in `pg_backup.h`).
fn format_name(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("CUSTOM"),
        3 => Some("TAR"),
        5 => Some("DIRECTORY"),
        _ => None,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    version: ArchiveVersion,
    int_size: usize,
    off_size: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> std::result::Result<u8, FormatError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| FormatError("the archive ends inside its table of contents".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| FormatError("the archive ends inside its table of contents".into()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// `ReadInt`: a sign byte (after 1.0), then `int_size` bytes, least significant first.
    fn int(&mut self) -> std::result::Result<i64, FormatError> {
        let negative = if self.version.at_least(1, 1) {
            self.byte()? != 0
        } else {
            false
        };
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            let b = i64::from(self.byte()?);
            if i < 8 {
                value |= b << (8 * i);
            }
        }
        Ok(if negative { -value } else { value })
    }

    /// `ReadStr`: a length (`-1` for NULL), then that many bytes.
    fn string(&mut self) -> std::result::Result<Option<String>, FormatError> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| FormatError(format!("string length {len} is out of range")))?;
        Ok(Some(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }

    fn skip_string(&mut self) -> std::result::Result<(), FormatError> {
        let len = self.int()?;
        if len > 0 {
            let len = usize::try_from(len)
                .map_err(|_| FormatError(format!("string length {len} is out of range")))?;
            self.take(len)?;
        }
        Ok(())
    }

    fn number(&mut self, what: &str) -> std::result::Result<u32, FormatError> {
        let text = self.string()?.unwrap_or_default();
        text.trim()
            .parse()
            .map_err(|_| FormatError(format!("{what} {text:?} is not a number")))
    }
}

/// Parses a header and table of contents (`ReadHead` then `ReadToc`).
pub(crate) fn parse_archive(bytes: &[u8]) -> std::result::Result<Toc, FormatError> {
    if !bytes.starts_with(MAGIC) {
        return Err(FormatError("no PGDMP header".into()));
    }
    let mut r = Reader {
        bytes,
        pos: MAGIC.len(),
        version: ArchiveVersion {
            major: 1,
            minor: 0,
            rev: 0,
        },
        int_size: 4,
        off_size: 8,
    };
    let major = r.byte()?;
    let minor = r.byte()?;
    let rev = if (major, minor) > (1, 0) {
        r.byte()?
    } else {
        0
    };
    r.version = ArchiveVersion { major, minor, rev };
    if !r.version.at_least(1, 10) || r.version > ArchiveVersion::newest_readable_by(u32::MAX) {
        return Err(FormatError(format!(
            "archive format {} is not one rds-pg reads (1.10 to 1.16)",
            r.version
        )));
    }
    r.int_size = usize::from(r.byte()?);
    if r.int_size == 0 || r.int_size > 32 {
        return Err(FormatError(format!("bad integer size {}", r.int_size)));
    }
    r.off_size = usize::from(r.byte()?);
    let format = r.byte()?;
    let format = format_name(format)
        .ok_or_else(|| FormatError(format!("unknown archive format code {format}")))?;
    if r.version.at_least(1, 15) {
        r.byte()?; // compression algorithm
    } else {
        r.int()?; // compression level
    }
    for _ in 0..7 {
        r.int()?; // creation time: sec, min, hour, mday, mon, year, isdst
    }
    let database = r.string()?;
    let dumped_from = r.string()?;
    let dumped_by = r.string()?;
    let header = TocHeader {
        database,
        format: Some(format.to_owned()),
        dumped_from,
        dumped_by,
        archive_version: Some(r.version),
    };

    let count = r.int()?;
    if count < 0 {
        return Err(FormatError(format!("bad entry count {count}")));
    }
    let mut entries = Vec::new();
    for _ in 0..count {
        let dump_id = r.int()?;
        let dump_id = u32::try_from(dump_id)
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| FormatError(format!("entry id {dump_id} out of range")))?;
        let had_dumper = r.int()? != 0;
        let catalog_oid = r.number("catalog OID")?;
        let oid = r.number("OID")?;
        let tag = r.string()?.unwrap_or_default();
        let desc = r.string()?.unwrap_or_default();
        if r.version.at_least(1, 11) {
            r.int()?; // section
        }
        let definition = r.string()?.unwrap_or_default();
        r.skip_string()?; // drop statement
        r.skip_string()?; // copy statement
        let namespace = r.string()?;
        r.skip_string()?; // tablespace
        if r.version.at_least(1, 14) {
            r.skip_string()?; // table access method
        }
        if r.version.at_least(1, 16) {
            r.int()?; // relkind
        }
        let owner = r.string()?;
        r.skip_string()?; // "false": WITH OIDS
        loop {
            // Dependencies, ended by a NULL string.
            let len = r.int()?;
            if len < 0 {
                break;
            }
            r.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        }
        match format {
            "CUSTOM" => {
                r.byte()?; // data offset flag
                r.take(r.off_size)?;
            }
            _ => r.skip_string()?, // the data file's name
        }
        if !listed(&desc, &tag, had_dumper, &definition) {
            continue;
        }
        entries.push(TocEntry {
            dump_id,
            catalog_oid,
            oid,
            kind: EntryKind::from_desc(&desc),
            schema: namespace.filter(|s| !s.is_empty()),
            name: tag,
            owner: owner.filter(|s| !s.is_empty()),
        });
    }
    Ok(Toc { header, entries })
}

/// Whether `pg_restore --list` (without selection options) lists an entry, and so whether a
/// restore can act on it (`_tocEntryRequired` in `pg_backup_archiver.c`): not the special
/// entries it applies itself (`ENCODING`, `STDSTRINGS`, `SEARCHPATH`), not the database's own
/// entries (restored only with `--create`), not an entry with neither a definition nor data.
fn listed(desc: &str, tag: &str, had_dumper: bool, definition: &str) -> bool {
    if matches!(
        desc,
        "ENCODING" | "STDSTRINGS" | "SEARCHPATH" | "DATABASE" | "DATABASE PROPERTIES"
    ) {
        return false;
    }
    if matches!(
        desc,
        "ACL" | "COMMENT" | "SECURITY LABEL" | "STATISTICS DATA"
    ) && tag.starts_with("DATABASE ")
    {
        return false;
    }
    let large_object =
        tag.starts_with("LARGE OBJECT") && matches!(desc, "ACL" | "COMMENT" | "SECURITY LABEL");
    let data =
        had_dumper || matches!(desc, "SEQUENCE SET" | "BLOB" | "BLOB METADATA") || large_object;
    let schema = !definition.is_empty() && !definition.starts_with("-- load via partition root ");
    data || schema
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes `toc` the way pg_dump's `WriteHead`/`WriteToc` do, in archive format `version`
    /// (`format`: 1 custom, 3 tar, 5 directory).
    pub(crate) fn encode(toc: &Toc, version: ArchiveVersion, format: u8) -> Vec<u8> {
        fn int(out: &mut Vec<u8>, v: i64) {
            out.push(u8::from(v < 0));
            out.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        }
        fn string(out: &mut Vec<u8>, s: Option<&str>) {
            match s {
                None => int(out, -1),
                Some(s) => {
                    int(out, s.len() as i64);
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        let mut out = b"PGDMP".to_vec();
        out.extend_from_slice(&[version.major, version.minor, version.rev, 4, 8, format]);
        if version.at_least(1, 15) {
            out.push(1);
        } else {
            int(&mut out, -1);
        }
        for v in [1, 2, 3, 4, 5, 126, 0] {
            int(&mut out, v);
        }
        string(&mut out, toc.header.database.as_deref());
        string(&mut out, toc.header.dumped_from.as_deref());
        string(&mut out, toc.header.dumped_by.as_deref());
        int(&mut out, toc.entries.len() as i64);
        for e in &toc.entries {
            int(&mut out, i64::from(e.dump_id));
            int(&mut out, 1);
            string(&mut out, Some(&e.catalog_oid.to_string()));
            string(&mut out, Some(&e.oid.to_string()));
            string(&mut out, Some(&e.name));
            string(&mut out, Some(e.kind.as_str()));
            int(&mut out, 2);
            string(&mut out, Some("CREATE TABLE x (\"a b\" int);\n"));
            string(&mut out, Some("DROP TABLE x;\n"));
            string(&mut out, None);
            string(&mut out, e.schema.as_deref());
            string(&mut out, Some(""));
            if version.at_least(1, 14) {
                string(&mut out, Some("heap"));
            }
            if version.at_least(1, 16) {
                int(&mut out, i64::from(b'r'));
            }
            string(&mut out, e.owner.as_deref());
            string(&mut out, Some("false"));
            for dep in ["3", "17"] {
                string(&mut out, Some(dep));
            }
            string(&mut out, None);
            if format == 1 {
                out.push(2);
                out.extend_from_slice(&1234u64.to_le_bytes());
            } else {
                string(&mut out, Some("4439.dat"));
            }
        }
        out
    }

    fn sample() -> Toc {
        Toc {
            header: TocHeader {
                database: Some("my db".into()),
                format: Some("CUSTOM".into()),
                dumped_from: Some("15.18 (Debian 15.18-0+deb12u1)".into()),
                dumped_by: Some("18.6".into()),
                archive_version: Some(ArchiveVersion {
                    major: 1,
                    minor: 16,
                    rev: 0,
                }),
            },
            entries: vec![
                TocEntry {
                    dump_id: 4,
                    catalog_oid: 3079,
                    oid: 17566,
                    kind: EntryKind::Extension,
                    schema: None,
                    name: "citext".into(),
                    owner: None,
                },
                TocEntry {
                    dump_id: 223,
                    catalog_oid: 1259,
                    oid: 18950,
                    kind: EntryKind::TableData,
                    schema: Some("my s".into()),
                    name: "a b\nTABLE DATA x".into(),
                    owner: Some("the \"owner\"".into()),
                },
            ],
        }
    }

    #[test]
    fn reads_what_pg_dump_writes() {
        let toc = sample();
        for minor in [14, 15, 16] {
            let version = ArchiveVersion {
                major: 1,
                minor,
                rev: 0,
            };
            for (format, name) in [(1, "CUSTOM"), (5, "DIRECTORY"), (3, "TAR")] {
                let mut expected = toc.clone();
                expected.header.archive_version = Some(version);
                expected.header.format = Some(name.into());
                let bytes = encode(&expected, version, format);
                assert_eq!(parse_archive(&bytes).unwrap(), expected, "1.{minor} {name}");
            }
        }
    }

    #[test]
    fn truncated_or_foreign_bytes_are_refused() {
        let bytes = encode(&sample(), ArchiveVersion::parse("1.16-0").unwrap(), 1);
        for cut in [3, 9, 40, bytes.len() - 1] {
            assert!(parse_archive(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_archive(b"-- PostgreSQL database dump").is_err());
        let mut future = bytes.clone();
        future[6] = 17;
        let e = parse_archive(&future).unwrap_err();
        assert!(e.0.contains("1.17-0"), "{e}");
    }

    #[test]
    fn archive_versions_and_the_pg_restore_that_reads_them() {
        let v = |s| ArchiveVersion::parse(s).unwrap();
        assert_eq!(v("1.16-0").to_string(), "1.16-0");
        assert!(v("1.14-0").readable_by(13) && v("1.14-0").readable_by(15));
        assert!(!v("1.15-0").readable_by(15) && v("1.15-0").readable_by(16));
        assert!(!v("1.16-0").readable_by(16) && v("1.16-0").readable_by(17));
        assert!(v("1.16-0").readable_by(18));
        assert_eq!(ArchiveVersion::parse("x"), None);
        assert_eq!(major_of("15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(major_of("18beta1"), Some(18));
        assert_eq!(major_of(""), None);
    }

    #[test]
    fn entries_pg_restore_does_not_list_are_left_out() {
        assert!(!listed(
            "ENCODING",
            "ENCODING",
            false,
            "SET client_encoding = 'UTF8';"
        ));
        assert!(!listed("DATABASE", "shop", false, "CREATE DATABASE shop;"));
        assert!(!listed(
            "ACL",
            "DATABASE shop",
            false,
            "REVOKE ALL ON DATABASE shop;"
        ));
        assert!(!listed("COMMENT", "TABLE t", false, ""));
        assert!(listed("ACL", "TABLE t", false, "GRANT SELECT ON t TO x;"));
        assert!(listed("TABLE DATA", "t", true, ""));
        assert!(listed("SEQUENCE SET", "s", false, "SELECT setval('s', 1);"));
        assert!(listed("COMMENT", "DATABASES x", false, "COMMENT ON …"));
    }

    #[test]
    fn tar_archives_start_with_toc_dat() {
        let toc = sample();
        let body = encode(&toc, ArchiveVersion::parse("1.16-0").unwrap(), 3);
        let mut tar = vec![0u8; 512];
        tar[..7].copy_from_slice(b"toc.dat");
        let size = format!("{:011o}\0", body.len());
        tar[124..136].copy_from_slice(size.as_bytes());
        tar[257..262].copy_from_slice(b"ustar");
        tar.extend_from_slice(&body);
        tar.extend_from_slice(&[0u8; 1024]);
        assert_eq!(tar_toc(&tar), Some(&body[..]));
    }

    /// Any name a PostgreSQL identifier may be (no NUL; up to 63 bytes), unicode included.
    pub(crate) fn any_name() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(' '),
                Just('"'),
                Just('\''),
                Just('\\'),
                Just('$'),
                Just('\n'),
                Just(';'),
                Just('-'),
                proptest::char::range('a', 'z'),
                proptest::char::any().prop_filter("no NUL", |c| *c != '\0'),
            ],
            1..20,
        )
        .prop_map(|chars| {
            let mut s: String = chars.into_iter().collect();
            while s.len() > 63 {
                s.pop();
            }
            s
        })
        .prop_filter("not empty", |s| !s.is_empty())
    }

    fn any_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            Just(EntryKind::Table),
            Just(EntryKind::TableData),
            Just(EntryKind::Comment),
            Just(EntryKind::Extension),
            Just(EntryKind::Schema),
            Just(EntryKind::SequenceSet),
            Just(EntryKind::DefaultAcl),
            any_name().prop_map(|n| EntryKind::from_desc(&n)),
        ]
    }

    fn any_entry() -> impl Strategy<Value = TocEntry> {
        (
            1u32..100_000,
            any::<u32>(),
            any::<u32>(),
            any_kind(),
            proptest::option::of(any_name()),
            any_name(),
            proptest::option::of(any_name()),
        )
            .prop_map(
                |(dump_id, catalog_oid, oid, kind, schema, name, owner)| TocEntry {
                    dump_id,
                    catalog_oid,
                    oid,
                    kind,
                    schema,
                    name,
                    owner,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every field comes back exactly, whatever the names hold, in every archive format.
        #[test]
        fn any_table_of_contents_round_trips(
            entries in proptest::collection::vec(any_entry(), 0..8),
            minor in 14u8..=16,
            format in prop_oneof![Just(1u8), Just(3u8), Just(5u8)],
            database in proptest::option::of(any_name()),
        ) {
            let version = ArchiveVersion { major: 1, minor, rev: 0 };
            let toc = Toc {
                header: TocHeader {
                    database,
                    format: format_name(format).map(str::to_owned),
                    dumped_from: Some("16.14".into()),
                    dumped_by: Some("18.6".into()),
                    archive_version: Some(version),
                },
                entries,
            };
            let bytes = encode(&toc, version, format);
            prop_assert_eq!(parse_archive(&bytes).unwrap(), toc);
        }

        /// `pg_restore --list` lines parse back into their fields wherever the line structure
        /// decides them: the description is one pg_dump writes, the schema and owner one word
        /// each (a schema or owner with a space cannot be told from the name: that is why rds-pg
        /// reads the archive itself), the name anything on one line, spaces and quotes included.
        #[test]
        fn listing_lines_parse_back_by_fields(
            dump_id in 1u32..1_000_000,
            catalog_oid in any::<u32>(),
            oid in any::<u32>(),
            kind in prop_oneof![
                Just(EntryKind::Table), Just(EntryKind::TableData), Just(EntryKind::Comment),
                Just(EntryKind::Extension), Just(EntryKind::SequenceSet),
                Just(EntryKind::DefaultAcl), Just(EntryKind::FkConstraint),
                Just(EntryKind::MaterializedViewData), Just(EntryKind::Other("POLICY".into())),
            ],
            schema in proptest::option::of("[a-z_][a-z0-9_$\"'\\\\]{0,20}"),
            name in any_name().prop_map(|n| n.replace(['\n', '\r'], " ")),
            owner in proptest::option::of("[a-z_][a-z0-9_$\"'\\\\]{0,20}"),
        ) {
            let line = format!(
                "{dump_id}; {catalog_oid} {oid} {kind} {} {name} {}",
                schema.as_deref().unwrap_or("-"),
                owner.as_deref().unwrap_or("")
            );
            let toc = Toc::parse(&format!(";\n{line}\n")).unwrap();
            let expected = TocEntry { dump_id, catalog_oid, oid, kind, schema, name, owner };
            prop_assert_eq!(&toc.entries, &vec![expected]);
        }

        /// Garbage never panics: it is an archive or a clear error.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut with_magic = b"PGDMP".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse_archive(&with_magic);
            let _ = parse_archive(&bytes);
            let _ = tar_toc(&bytes);
        }
    }
}
