//! An archive's table of contents as `pg_restore -l` lists it, parsed by fields.
//!
//! Each entry line is `<dump id>; <catalog table oid> <oid> <desc> <schema> <name> <owner>`
//! (`PrintTOCSummary` in `pg_backup_archiver.c`). `desc` may contain spaces (`TABLE DATA`), so it
//! is matched against the descriptions pg_dump writes; the schema is `-` when the object has none,
//! the owner is the last field and empty for objects without one (extensions), and the name is
//! everything in between (`TABLE places` for a comment, `f(integer, text)` for a function).
//! Header lines start with `;`.

use std::fmt;

/// The kind of an archive entry: its `desc` field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// `ACL`: a GRANT/REVOKE set.
    Acl,
    /// `COMMENT`: a comment; the entry's name says on what (`EXTENSION postgis`, `TABLE t`).
    Comment,
    /// `CONSTRAINT`.
    Constraint,
    /// `DEFAULT`: a column default.
    Default,
    /// `DEFAULT ACL`: `ALTER DEFAULT PRIVILEGES`.
    DefaultAcl,
    /// `EXTENSION`.
    Extension,
    /// `FK CONSTRAINT`.
    FkConstraint,
    /// `FUNCTION`.
    Function,
    /// `INDEX`.
    Index,
    /// `MATERIALIZED VIEW`.
    MaterializedView,
    /// `MATERIALIZED VIEW DATA`.
    MaterializedViewData,
    /// `SCHEMA`.
    Schema,
    /// `SEQUENCE`.
    Sequence,
    /// `SEQUENCE OWNED BY`.
    SequenceOwnedBy,
    /// `SEQUENCE SET`: a sequence's current value.
    SequenceSet,
    /// `TABLE`.
    Table,
    /// `TABLE DATA`: a table's rows.
    TableData,
    /// `TRIGGER`.
    Trigger,
    /// `TYPE`.
    Type,
    /// `VIEW`.
    View,
    /// Any other description pg_dump writes (`AGGREGATE`, `LARGE OBJECT`, `POLICY`, …), verbatim.
    Other(String),
}

/// Every `desc` pg_dump 13–18 writes, longest first within shared prefixes (so `TABLE DATA` is
/// tried before `TABLE`).
const KNOWN_DESCS: &[&str] = &[
    "ACCESS METHOD",
    "AGGREGATE",
    "BLOB METADATA",
    "BLOBS",
    "BLOB",
    "CAST",
    "CHECK CONSTRAINT",
    "COLLATION",
    "COMMENT",
    "CONSTRAINT",
    "CONVERSION",
    "DATABASE PROPERTIES",
    "DATABASE",
    "DEFAULT ACL",
    "DEFAULT",
    "DOMAIN",
    "ENCODING",
    "EVENT TRIGGER",
    "EXTENSION",
    "FK CONSTRAINT",
    "FOREIGN DATA WRAPPER",
    "FOREIGN SERVER",
    "FOREIGN TABLE",
    "FUNCTION",
    "INDEX ATTACH",
    "INDEX",
    "LARGE OBJECT",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "OPERATOR",
    "POLICY",
    "PROCEDURAL LANGUAGE",
    "PROCEDURE",
    "PUBLICATION TABLES IN SCHEMA",
    "PUBLICATION TABLE",
    "PUBLICATION",
    "ROW SECURITY",
    "RULE",
    "SCHEMA",
    "SEARCHPATH",
    "SECURITY LABEL",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "SEQUENCE",
    "SERVER",
    "SHELL TYPE",
    "STATISTICS DATA",
    "STATISTICS",
    "STDSTRINGS",
    "SUBSCRIPTION TABLE",
    "SUBSCRIPTION",
    "TABLE ATTACH",
    "TABLE DATA",
    "TABLE",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "TRANSFORM",
    "TRIGGER",
    "TYPE",
    "USER MAPPING",
    "VIEW",
    "ACL",
];

impl EntryKind {
    /// The kind for a `desc` field.
    pub fn from_desc(desc: &str) -> EntryKind {
        match desc {
            "ACL" => EntryKind::Acl,
            "COMMENT" => EntryKind::Comment,
            "CONSTRAINT" => EntryKind::Constraint,
            "DEFAULT" => EntryKind::Default,
            "DEFAULT ACL" => EntryKind::DefaultAcl,
            "EXTENSION" => EntryKind::Extension,
            "FK CONSTRAINT" => EntryKind::FkConstraint,
            "FUNCTION" => EntryKind::Function,
            "INDEX" => EntryKind::Index,
            "MATERIALIZED VIEW" => EntryKind::MaterializedView,
            "MATERIALIZED VIEW DATA" => EntryKind::MaterializedViewData,
            "SCHEMA" => EntryKind::Schema,
            "SEQUENCE" => EntryKind::Sequence,
            "SEQUENCE OWNED BY" => EntryKind::SequenceOwnedBy,
            "SEQUENCE SET" => EntryKind::SequenceSet,
            "TABLE" => EntryKind::Table,
            "TABLE DATA" => EntryKind::TableData,
            "TRIGGER" => EntryKind::Trigger,
            "TYPE" => EntryKind::Type,
            "VIEW" => EntryKind::View,
            other => EntryKind::Other(other.to_owned()),
        }
    }

    /// The `desc` field as pg_dump writes it.
    pub fn as_str(&self) -> &str {
        match self {
            EntryKind::Acl => "ACL",
            EntryKind::Comment => "COMMENT",
            EntryKind::Constraint => "CONSTRAINT",
            EntryKind::Default => "DEFAULT",
            EntryKind::DefaultAcl => "DEFAULT ACL",
            EntryKind::Extension => "EXTENSION",
            EntryKind::FkConstraint => "FK CONSTRAINT",
            EntryKind::Function => "FUNCTION",
            EntryKind::Index => "INDEX",
            EntryKind::MaterializedView => "MATERIALIZED VIEW",
            EntryKind::MaterializedViewData => "MATERIALIZED VIEW DATA",
            EntryKind::Schema => "SCHEMA",
            EntryKind::Sequence => "SEQUENCE",
            EntryKind::SequenceOwnedBy => "SEQUENCE OWNED BY",
            EntryKind::SequenceSet => "SEQUENCE SET",
            EntryKind::Table => "TABLE",
            EntryKind::TableData => "TABLE DATA",
            EntryKind::Trigger => "TRIGGER",
            EntryKind::Type => "TYPE",
            EntryKind::View => "VIEW",
            EntryKind::Other(desc) => desc,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TocEntry {
    /// The dump id: what `pg_restore -L` selects entries by.
    pub dump_id: u32,
    /// The OID of the catalog holding the object in the source (`pg_class`: 1259), 0 for none.
    pub catalog_oid: u32,
    /// The object's OID in the source, 0 for none.
    pub oid: u32,
    /// What the entry is.
    pub kind: EntryKind,
    /// The schema, or `None` (written `-`).
    pub schema: Option<String>,
    /// The object's name (a comment's or ACL's name says on what: `EXTENSION postgis`).
    pub name: String,
    /// The owner in the source, or `None` (extensions have none).
    pub owner: Option<String>,
}

impl TocEntry {
    /// `schema.name`, or the name alone.
    pub fn qualified_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// For a `COMMENT`, `ACL` or `SECURITY LABEL` entry: the kind and name of the object it is
    /// about (`("EXTENSION", "postgis")`).
    pub fn target(&self) -> Option<(&str, &str)> {
        let about = matches!(self.kind, EntryKind::Comment | EntryKind::Acl)
            || self.kind == EntryKind::Other("SECURITY LABEL".into());
        if !about {
            return None;
        }
        KNOWN_DESCS.iter().find_map(|desc| {
            let rest = self.name.strip_prefix(desc)?.strip_prefix(' ')?;
            Some((*desc, rest))
        })
    }
}

impl TocEntry {
    /// The entry as `pg_restore -l` lists it (`223; 1259 18950 TABLE public places alice`), the
    /// line a `--use-list` file holds: always one line, whatever a name holds (line breaks and
    /// other control characters become spaces; pg_restore reads each line's dump id only).
    pub fn list_line(&self) -> String {
        let one_line = |text: &str| -> String {
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        };
        format!(
            "{}; {} {} {} {} {} {}",
            self.dump_id,
            self.catalog_oid,
            self.oid,
            one_line(self.kind.as_str()),
            one_line(self.schema.as_deref().unwrap_or("-")),
            one_line(&self.name),
            one_line(self.owner.as_deref().unwrap_or(""))
        )
    }
}

impl fmt::Display for TocEntry {
    /// What the entry is, for people: the kind and the qualified name (`TABLE public.places`,
    /// `TABLE DATA public.spatial_ref_sys`), for a comment or ACL the object it is about
    /// (`COMMENT EXTENSION postgis`, `ACL TABLE public.spatial_ref_sys`), for default
    /// privileges their schema (`DEFAULT PRIVILEGES FOR TABLES IN SCHEMA public`). See
    /// [`TocEntry::list_line`] for the listing's line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.target(), &self.schema) {
            (Some((desc, name)), Some(schema)) => write!(f, "{} {desc} {schema}.{name}", self.kind),
            (Some((desc, name)), None) => write!(f, "{} {desc} {name}", self.kind),
            (None, Some(schema)) if self.name.starts_with("DEFAULT PRIVILEGES") => {
                write!(f, "{} IN SCHEMA {schema}", self.name)
            }
            (None, _) => write!(f, "{} {}", self.kind, self.qualified_name()),
        }
    }
}

/// What the header of a listing says about the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TocHeader {
    /// The database that was dumped.
    pub database: Option<String>,
    /// `CUSTOM`, `DIRECTORY` or `TAR`.
    pub format: Option<String>,
    /// The server version it was dumped from.
    pub dumped_from: Option<String>,
    /// The pg_dump version that wrote it.
    pub dumped_by: Option<String>,
    /// The archive format's version (`1.16-0`): which pg_restore can read the archive.
    pub archive_version: Option<super::ArchiveVersion>,
}

/// A parsed `pg_restore -l` listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toc {
    /// What the header says.
    pub header: TocHeader,
    /// The entries, in the archive's order.
    pub entries: Vec<TocEntry>,
}

/// A line of a listing that is neither a comment nor an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocParseError {
    /// The line number (1-based).
    pub line: usize,
    /// The line.
    pub text: String,
}

impl fmt::Display for TocParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} of the archive listing is not a table-of-contents entry: {:?}",
            self.line, self.text
        )
    }
}

impl std::error::Error for TocParseError {}

impl Toc {
    /// Parses the output of `pg_restore -l`.
    ///
    /// # Errors
    /// The first line that is neither blank, a `;` comment nor an entry.
    pub fn parse(listing: &str) -> Result<Toc, TocParseError> {
        let mut toc = Toc::default();
        for (i, line) in listing.lines().enumerate() {
            if let Some(comment) = line.strip_prefix(';') {
                toc.read_header_line(comment.trim());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let entry = parse_entry(line).ok_or_else(|| TocParseError {
                line: i + 1,
                text: line.to_owned(),
            })?;
            toc.entries.push(entry);
        }
        Ok(toc)
    }

    fn read_header_line(&mut self, line: &str) {
        let Some((key, value)) = line.split_once(": ") else {
            return;
        };
        let value = Some(value.trim().to_owned());
        match key {
            "dbname" => self.header.database = value,
            "Format" => self.header.format = value,
            "Dumped from database version" => self.header.dumped_from = value,
            "Dumped by pg_dump version" => self.header.dumped_by = value,
            "Dump Version" => {
                self.header.archive_version =
                    value.as_deref().and_then(super::ArchiveVersion::parse)
            }
            _ => {}
        }
    }

    /// The extensions the archive creates.
    pub fn extensions(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::Extension)
            .map(|e| e.name.as_str())
            .collect()
    }

    /// The `(schema, table)` pairs whose rows the archive holds.
    pub fn tables_with_data(&self) -> Vec<(&str, &str)> {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::TableData)
            .filter_map(|e| Some((e.schema.as_deref()?, e.name.as_str())))
            .collect()
    }
}

fn parse_entry(line: &str) -> Option<TocEntry> {
    let (id, rest) = line.split_once("; ")?;
    let dump_id = id.parse().ok()?;
    let (catalog_oid, rest) = rest.split_once(' ')?;
    let (oid, rest) = rest.split_once(' ')?;
    let desc = KNOWN_DESCS
        .iter()
        .find(|d| {
            rest.strip_prefix(**d)
                .is_some_and(|after| after.starts_with(' '))
        })
        .map(|d| d.to_string())
        // An unknown description: assume one word (never filtered, so a wrong guess is harmless).
        .unwrap_or_else(|| rest.split(' ').next().unwrap_or_default().to_owned());
    let rest = rest[desc.len()..].strip_prefix(' ')?;
    let (schema, rest) = rest.split_once(' ')?;
    let (name, owner) = rest.rsplit_once(' ')?;
    Some(TocEntry {
        dump_id,
        catalog_oid: catalog_oid.parse().ok()?,
        oid: oid.parse().ok()?,
        kind: EntryKind::from_desc(&desc),
        schema: (schema != "-").then(|| schema.to_owned()),
        name: name.to_owned(),
        owner: (!owner.is_empty()).then(|| owner.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore -l` of a PostGIS/hstore/citext database dumped by pg_dump 15.18 as its owner.
    const LISTING: &str = ";
; Archive created at 2026-11-26 01:19:59 UTC
;     dbname: src
;     TOC Entries: 25
;     Compression: -1
;     Dump Version: 1.14-0
;     Format: CUSTOM
;     Integer: 4 bytes
;     Offset: 8 bytes
;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)
;
;
; Selected TOC Entries:
;
4; 3079 17566 EXTENSION - citext 
4448; 0 0 COMMENT - EXTENSION citext 
2; 3079 16394 EXTENSION - postgis 
4450; 0 0 COMMENT - EXTENSION postgis 
1065; 1255 18963 FUNCTION public f(integer, text) alice
223; 1259 18950 TABLE public places alice
4451; 0 0 COMMENT public TABLE places alice
4452; 0 0 SEQUENCE OWNED BY public places_id_seq alice
4453; 0 0 ACL public TABLE spatial_ref_sys alice
4284; 2604 18953 DEFAULT public places id alice
4439; 0 18950 TABLE DATA public places alice
4283; 0 16707 TABLE DATA public spatial_ref_sys alice
4454; 0 0 SEQUENCE SET public counter alice
4289; 2606 18957 CONSTRAINT public places places_pkey alice
9; 0 0 DEFAULT ACL - DEFAULT PRIVILEGES FOR TABLES alice
10; 1 2 FROBNICATE public thing alice
";

    #[test]
    fn parses_header_and_fields() {
        let toc = Toc::parse(LISTING).unwrap();
        assert_eq!(toc.header.database.as_deref(), Some("src"));
        assert_eq!(toc.header.format.as_deref(), Some("CUSTOM"));
        assert_eq!(
            toc.header.dumped_by.as_deref(),
            Some("15.18 (Debian 15.18-0+deb12u1)")
        );
        assert_eq!(toc.entries.len(), 16);
        let e = &toc.entries[0];
        assert_eq!(
            (e.dump_id, e.catalog_oid, e.oid, &e.kind),
            (4, 3079, 17566, &EntryKind::Extension)
        );
        assert_eq!(
            (e.schema.as_deref(), e.name.as_str(), e.owner.as_deref()),
            (None, "citext", None)
        );
        let comment = &toc.entries[1];
        assert_eq!(comment.kind, EntryKind::Comment);
        assert_eq!(comment.target(), Some(("EXTENSION", "citext")));
        let f = &toc.entries[4];
        assert_eq!(
            (f.kind.as_str(), f.name.as_str()),
            ("FUNCTION", "f(integer, text)")
        );
        let table_comment = &toc.entries[6];
        assert_eq!(table_comment.target(), Some(("TABLE", "places")));
        assert_eq!(table_comment.schema.as_deref(), Some("public"));
        assert_eq!(toc.entries[7].kind, EntryKind::SequenceOwnedBy);
        assert_eq!(toc.entries[8].kind, EntryKind::Acl);
        assert_eq!(toc.entries[8].target(), Some(("TABLE", "spatial_ref_sys")));
        assert_eq!(toc.entries[9].name, "places id");
        assert_eq!(toc.entries[10].kind, EntryKind::TableData);
        assert_eq!(toc.entries[12].kind, EntryKind::SequenceSet);
        assert_eq!(toc.entries[13].name, "places places_pkey");
        let default_acl = &toc.entries[14];
        assert_eq!(default_acl.kind, EntryKind::DefaultAcl);
        assert_eq!(default_acl.name, "DEFAULT PRIVILEGES FOR TABLES");
        assert_eq!(default_acl.owner.as_deref(), Some("alice"));
        let unknown = &toc.entries[15];
        assert_eq!(unknown.kind, EntryKind::Other("FROBNICATE".into()));
        assert_eq!(unknown.qualified_name(), "public.thing");
        assert_eq!(toc.extensions(), ["citext", "postgis"]);
        assert_eq!(
            toc.tables_with_data(),
            [("public", "places"), ("public", "spatial_ref_sys")]
        );
    }

    #[test]
    fn list_line_reproduces_the_listing_line() {
        let toc = Toc::parse(LISTING).unwrap();
        let lines: Vec<&str> = LISTING.lines().filter(|l| !l.starts_with(';')).collect();
        for (entry, line) in toc.entries.iter().zip(lines) {
            assert_eq!(entry.list_line(), line);
        }
    }

    #[test]
    fn display_says_what_the_entry_is() {
        let toc = Toc::parse(LISTING).unwrap();
        let labels: Vec<String> = toc.entries.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            labels,
            [
                "EXTENSION citext",
                "COMMENT EXTENSION citext",
                "EXTENSION postgis",
                "COMMENT EXTENSION postgis",
                "FUNCTION public.f(integer, text)",
                "TABLE public.places",
                "COMMENT TABLE public.places",
                "SEQUENCE OWNED BY public.places_id_seq",
                "ACL TABLE public.spatial_ref_sys",
                "DEFAULT public.places id",
                "TABLE DATA public.places",
                "TABLE DATA public.spatial_ref_sys",
                "SEQUENCE SET public.counter",
                "CONSTRAINT public.places places_pkey",
                "DEFAULT ACL DEFAULT PRIVILEGES FOR TABLES",
                "FROBNICATE public.thing",
            ]
        );
        let in_schema =
            Toc::parse("9; 0 0 DEFAULT ACL app DEFAULT PRIVILEGES FOR TABLES alice\n").unwrap();
        assert_eq!(
            in_schema.entries[0].to_string(),
            "DEFAULT PRIVILEGES FOR TABLES IN SCHEMA app"
        );
    }

    #[test]
    fn schema_and_names_that_look_like_descs() {
        // The desc is matched first (longest known one followed by a space); the schema is the
        // next field, whatever it looks like.
        let toc = Toc::parse("5; 1259 1 TABLE TABLE DATA x bob\n").unwrap();
        let e = &toc.entries[0];
        assert_eq!(e.kind, EntryKind::Table);
        assert_eq!(
            (e.schema.as_deref(), e.name.as_str()),
            (Some("TABLE"), "DATA x")
        );
        let toc = Toc::parse("6; 0 1 TABLE DATA TABLE x bob\n").unwrap();
        let e = &toc.entries[0];
        assert_eq!(e.kind, EntryKind::TableData);
        assert_eq!((e.schema.as_deref(), e.name.as_str()), (Some("TABLE"), "x"));
        let toc = Toc::parse("7; 1259 1 TABLE sales my table bob\n").unwrap();
        assert_eq!(
            toc.entries[0].name, "my table",
            "spaces inside a name are kept"
        );
    }

    #[test]
    fn garbage_is_refused_with_its_line_number() {
        let err = Toc::parse(";\n4; 3079 x EXTENSION - citext \n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = Toc::parse("hello\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.to_string().contains("hello"));
    }
}
