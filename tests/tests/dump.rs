//! Dump and restore as the project user (issue 5): the seed's "Dump the database" and "Restore a
//! dump to a new database", done so that the restore runs in one transaction and fails loudly.
//!
//! Round trips run on every version: Debian's 15 client tools serve 13–15 (the nearest newer
//! client), the TLS-capable 18 tools `make setup` installs (RDS_PG_TOOLS_DIRS, set for cargo in
//! `.cargo/config.toml`) serve 16–18; 16 has no pg_restore that connects to it itself, so its
//! restores go through pg_restore 18's script and psql 18. Everything is checked the way a user
//! would: the restored rows, geometries and sequence values are compared with the source's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres_protocol::escape::escape_identifier;
use rds_pg_core::dump::{
    dump_with, plan_restore, read_toc, restore_with, tools, verify_backup_with, ClientProgram,
    DumpFormat, Progress, RestoreRoute, SkipReason, Toc, ToolWorkDir,
};
use rds_pg_core::{
    dump, restore, verify_backup, ConnectOptions, DatabaseSpec, DumpOptions, Error, ErrorKind,
    Extension, Password, Provisioner, RestoreOptions, SqlState, UserSpec, VerifyOptions,
};
use rds_pg_tests::{
    changes_since, connect_error, err, log_mark, login_as_application, ok, per_version,
    provisioner, refused_login, run_on, statements_since, Sandbox,
};

/// The client tools Debian installs for PostgreSQL 15 (`make setup`).
const CLIENT_15: &str = "/usr/lib/postgresql/15/bin";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The directory of the client tools 18 `make setup` installs (first entry of RDS_PG_TOOLS_DIRS).
fn client_18() -> PathBuf {
    let dirs = std::env::var_os(tools::TOOLS_DIRS_ENV).unwrap_or_default();
    let dir = std::env::split_paths(&dirs)
        .find(|d| d.join("pg_dump").is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} names no directory with pg_dump: run `make setup` (scripts/setup-postgres.sh \
                 installs .cache/postgresql/client-18) and run the tests through cargo, which sets \
                 it (.cargo/config.toml)",
                tools::TOOLS_DIRS_ENV
            )
        });
    let tool = ok(
        tools::probe(ClientProgram::PgDump, &dir.join("pg_dump")),
        "probe pg_dump 18",
    );
    assert_eq!(tool.major, 18, "{tool}");
    dir
}

/// Fails with the setup command unless both client tool sets are installed: every version's
/// round trip needs one of them.
fn require_clients() {
    for tool in ["pg_dump", "pg_restore", "psql"] {
        assert!(
            Path::new(CLIENT_15).join(tool).is_file(),
            "{CLIENT_15}/{tool} is missing: run `make setup` (apt-get install postgresql-client-15)"
        );
        assert!(
            client_18().join(tool).is_file(),
            "{tool} 18 is missing: run `make setup`"
        );
    }
}

/// The client major rds-pg must pick for `server_major` here: 15 (Debian's) for 13–15, 18 (the
/// installed wheels) for 16–18.
fn expected_client_major(server_major: u32) -> u32 {
    if server_major <= 15 {
        15
    } else {
        18
    }
}

/// Creates a project user through rds-pg and returns its login options (to `postgres`).
fn project_user(sandbox: &Sandbox, master: &mut Provisioner, name: &str) -> ConnectOptions {
    let password = Password::new(format!("pw-{name}-Secr3t:\\x"));
    ok(
        master.ensure_user(&UserSpec::new(name).unwrap().password(password.clone())),
        "ensure_user",
    );
    sandbox.options_for(name).password(password)
}

/// The extensions the test data needs on this server.
fn extensions(sandbox: &Sandbox) -> Vec<Extension> {
    let mut e = vec![Extension::Hstore, Extension::Citext];
    if sandbox.has_postgis() {
        e.insert(0, Extension::Postgis);
    }
    e
}

fn create_database(master: &mut Provisioner, name: &str, owner: &str, exts: &[Extension]) {
    ok(
        master.ensure_database(
            &DatabaseSpec::new(name, owner)
                .unwrap()
                .extensions(exts.iter().cloned()),
        ),
        &format!("ensure_database {name}"),
    );
}

fn login(options: &ConnectOptions, db: &str) -> Client {
    ok(
        login_as_application(&options.for_database(db)),
        &format!("login to {db}"),
    )
}

/// Fills `db` as its owner: hstore and citext columns (and geometry with PostGIS), a sequence
/// that has been used, a view, a function, comments, and `rows` extra rows in table `big`.
fn fill_source(owner: &ConnectOptions, db: &str, postgis: bool, rows: i32) {
    let mut c = login(owner, db);
    let geom = if postgis {
        ", geom geometry(Point, 4326)"
    } else {
        ""
    };
    c.batch_execute(&format!(
        "CREATE TABLE places (id serial PRIMARY KEY, name citext NOT NULL, tags hstore{geom});
         CREATE SEQUENCE counter START 7;
         SELECT nextval('counter'), nextval('counter');
         CREATE VIEW early_places AS SELECT id, name FROM places WHERE id < 10;
         CREATE FUNCTION double_it(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
         COMMENT ON TABLE places IS 'places, with tags';
         CREATE TABLE big (n int PRIMARY KEY, payload text);"
    ))
    .unwrap();
    let insert = if postgis {
        "INSERT INTO places (name, tags, geom)
         SELECT 'Place ' || g, hstore(ARRAY['k', 'half'], ARRAY[g::text, (g / 2.0)::text]),
                ST_SetSRID(ST_MakePoint(g * 0.37, g / 3.0), 4326)
           FROM generate_series(1, 200) g;
         INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
         VALUES (990001, 'TEST', 990001, '', '+proj=longlat +datum=WGS84 +no_defs');"
    } else {
        "INSERT INTO places (name, tags)
         SELECT 'Place ' || g, hstore(ARRAY['k', 'half'], ARRAY[g::text, (g / 2.0)::text])
           FROM generate_series(1, 200) g;"
    };
    c.batch_execute(insert).unwrap();
    c.execute(
        "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, $1) g",
        &[&rows],
    )
    .unwrap();
}

/// Every ordinary table of `db`'s public schema with its row count and a checksum of its rows,
/// read as the superuser (test assertion only).
fn table_checksums(sandbox: &Sandbox, db: &str) -> BTreeMap<String, (i64, String)> {
    let mut admin = sandbox.connect_rdsadmin(db).unwrap();
    let tables: Vec<String> = admin
        .query(
            "SELECT relname::text FROM pg_class
              WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let sql = format!(
                "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '')
                   FROM public.{} x",
                escape_identifier(&t)
            );
            let row = admin.query_one(&sql, &[]).unwrap();
            (t, (row.get(0), row.get(1)))
        })
        .collect()
}

/// Sequence values, the view, the function and the comment, as the owner sees them.
fn object_facts(options: &ConnectOptions, db: &str, postgis: bool) -> Vec<String> {
    let mut c = login(options, db);
    let mut facts = Vec::new();
    for seq in ["counter", "places_id_seq"] {
        let row = c
            .query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[])
            .unwrap();
        facts.push(format!(
            "{seq}={}/{}",
            row.get::<_, i64>(0),
            row.get::<_, bool>(1)
        ));
    }
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM early_places), double_it(21),
                    obj_description('places'::regclass, 'pg_class'),
                    (SELECT name::text FROM places WHERE name = 'PLACE 7'),
                    (SELECT tags -> 'half' FROM places WHERE id = 3)",
            &[],
        )
        .unwrap();
    facts.push(format!(
        "view={} f={} comment={:?} citext={:?} hstore={:?}",
        row.get::<_, i64>(0),
        row.get::<_, i32>(1),
        row.get::<_, Option<String>>(2),
        row.get::<_, Option<String>>(3),
        row.get::<_, Option<String>>(4)
    ));
    if postgis {
        let rows = c
            .query(
                "SELECT id, ST_AsEWKT(geom), ST_SRID(geom) FROM places ORDER BY id",
                &[],
            )
            .unwrap();
        for r in rows {
            facts.push(format!(
                "geom {} {} {}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, i32>(2)
            ));
        }
    }
    facts
}

/// Runs the seed's restore: `pg_restore --no-owner --no-acl --dbname=… file.dump` as `user`,
/// with the password in a private password file.
fn seed_restore(options: &ConnectOptions, db: &str, archive: &Path) -> (bool, String) {
    let tool = ok(
        tools::probe(
            ClientProgram::PgRestore,
            &Path::new(CLIENT_15).join("pg_restore"),
        ),
        "probe pg_restore",
    );
    let conn = options.for_database(db);
    let work = ok(ToolWorkDir::create(&conn), "work dir");
    let out = tools::connection_command(&tool, &conn, work.passfile())
        .arg("--no-owner")
        .arg("--no-acl")
        .arg(archive)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn skipped_reasons(report: &rds_pg_core::RestoreReport) -> Vec<String> {
    report
        .skipped
        .iter()
        .map(|s| format!("{} | {}", s.entry, s.reason))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Round trip as another project user
// ---------------------------------------------------------------------------------------------

per_version!(
    /// Dumped as its owner, restored as another project user into a fresh database: clean, in
    /// one transaction, identical data. On 15 with PostGIS, the seed's plain `pg_restore
    /// --no-owner --no-acl` of the same archive shows the errors the filter removes.
    fn round_trip_as_another_project_user(sandbox) {
        require_clients();
        let postgis = sandbox.has_postgis();
        let exts = extensions(sandbox);
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        let bob = project_user(sandbox, &mut master, "bob");
        create_database(&mut master, "shop", "alice", &exts);
        fill_source(&alice, "shop", postgis, 1000);

        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        let mut dump_progress: Vec<Progress> = Vec::new();
        let dumped = ok(
            dump_with(&DumpOptions::new(alice.for_database("shop"), &archive), &mut |p| {
                dump_progress.push(p.clone())
            }),
            "dump",
        );
        assert_dump_progress(&dump_progress, &["public.places", "public.big"], dumped.bytes);
        assert_eq!(dumped.format, DumpFormat::Custom);
        assert!(dumped.bytes > 0 && dumped.bytes == std::fs::metadata(&archive).unwrap().len());
        assert_eq!(mode(&archive), 0o600, "the archive is private whatever the umask");
        assert_eq!(
            dumped.tool.major,
            expected_client_major(sandbox.major_version()),
            "the server's major, else the nearest newer one: {}",
            dumped.tool
        );
        // The pg_dump that ran is one of those installed, new enough for the server, and the
        // archive itself says that this pg_dump wrote it, from this server.
        assert!(dumped.tool.major >= sandbox.major_version(), "{}", dumped.tool);
        let installed = tools::find_all(ClientProgram::PgDump, None);
        assert!(installed.contains(&dumped.tool), "{} not in {installed:?}", dumped.tool);
        let pg_restore = ok(
            tools::probe(ClientProgram::PgRestore, &dumped.tool.path.with_file_name("pg_restore")),
            "the pg_restore next to the pg_dump that ran",
        );
        let header = ok(read_toc(&pg_restore, &archive), "read the archive's header").header;
        let dumped_by = header.dumped_by.unwrap_or_default();
        assert!(
            dumped_by.split_whitespace().next() == Some(dumped.tool.version.as_str()),
            "the archive was written by {dumped_by:?}, the report says {}",
            dumped.tool
        );
        assert_eq!(header.dumped_from.as_deref().and_then(|v| v.split_whitespace().next()), Some(sandbox.version()));
        assert!(dumped.server_version.starts_with(&sandbox.major_version().to_string()));

        // A fresh database owned by bob, extensions made by master, as rds-pg provisions it.
        create_database(&mut master, "shop_copy", "bob", &exts);
        let mut seen: Vec<Progress> = Vec::new();
        let options = RestoreOptions::new(bob.for_database("shop_copy"), &archive);
        let report = ok(
            restore_with(&options, None, &mut |p| seen.push(p.clone())),
            "restore as bob",
        );
        assert!(report.single_transaction && report.jobs == 1);
        assert!(report.warnings.is_empty(), "no error output: {:?}", report.warnings);
        assert_eq!(
            report.entries_restored + report.skipped.len(),
            report.entries_total
        );
        let reasons = skipped_reasons(&report);
        for ext in &exts {
            let name = ext.name();
            assert!(
                report.skipped.iter().any(|s| s.reason
                    == SkipReason::ExtensionExists { extension: name.into() }),
                "EXTENSION {name} left out: {reasons:#?}"
            );
            assert!(
                report.skipped.iter().any(|s| s.reason
                    == SkipReason::ExtensionComment { extension: name.into() }),
                "COMMENT ON EXTENSION {name} left out: {reasons:#?}"
            );
        }
        // Progress went up one entry at a time to the total; a restore writes no archive.
        assert!(seen.iter().all(|p| p.bytes.is_none()), "{seen:?}");
        let last = seen.last().expect("progress was reported");
        assert_eq!((last.done, last.total), (report.entries_restored, report.entries_restored));
        assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
        assert!(
            seen.iter().any(|p| p.message.contains("places")),
            "pg_restore's lines are passed on: {seen:?}"
        );

        // Identical data: every table's rows, the geometries, the sequences, the objects.
        let source = table_checksums(sandbox, "shop");
        assert!(source.contains_key("places") && source.contains_key("big"));
        assert_eq!(table_checksums(sandbox, "shop_copy"), source);
        assert_eq!(
            object_facts(&bob, "shop_copy", postgis),
            object_facts(&alice, "shop", postgis)
        );
        // bob owns what was restored and can write to it; alice cannot even connect.
        let mut c = login(&bob, "shop_copy");
        c.batch_execute("INSERT INTO places (name) VALUES ('new'); DROP VIEW early_places;")
            .unwrap();
        let refused = refused_login(
            &connect_error(&alice.for_database("shop_copy")),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
        assert_eq!(refused.message(), "permission denied for database \"shop_copy\"");
        assert_eq!(refused.detail(), Some("User does not have CONNECT privilege."));

        missing_extensions_are_listed_or_created_by_master(sandbox, &mut master, &bob, &archive);

        if postgis {
            assert!(
                source["spatial_ref_sys"].0 > 8000,
                "spatial_ref_sys compared in full, the hand-added row included"
            );
            seed_way_shows_the_errors_the_filter_removes(sandbox, &mut master, &bob, &archive);
        }
    }
);

/// The extensions installed in `db`, read as the superuser (test assertion only).
fn installed_extensions(sandbox: &Sandbox, db: &str) -> Vec<String> {
    sandbox
        .connect_rdsadmin(db)
        .unwrap()
        .query(
            "SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A target without the archive's extensions: a typed error naming them, before anything
/// changes, also with master passed (nothing is taken from the archive unasked) and when only
/// some are named; with all of them named, master creates them first and the restore succeeds.
fn missing_extensions_are_listed_or_created_by_master(
    sandbox: &Sandbox,
    master: &mut Provisioner,
    bob: &ConnectOptions,
    archive: &Path,
) {
    create_database(master, "bare", "bob", &[]);
    let options = RestoreOptions::new(bob.for_database("bare"), archive);
    let e = err(
        restore(&options),
        "restore into a database without the extensions",
    );
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let Error::MissingExtensions {
        database,
        extensions: listed,
    } = &e
    else {
        panic!("a typed error listing the missing extensions, got {e:?}");
    };
    assert_eq!(database, "bare");
    let plan = ok(plan_restore(&options), "plan_restore");
    let mut expected: Vec<String> = extensions(sandbox)
        .iter()
        .map(|x| x.name().to_owned())
        .collect();
    let mut missing = plan.missing_extensions.clone();
    expected.sort();
    missing.sort();
    assert_eq!(missing, expected);
    let mut listed = listed.clone();
    listed.sort();
    assert_eq!(listed, expected, "the error lists them");
    for name in &expected {
        assert!(e.to_string().contains(name.as_str()), "{e}");
    }
    let tables: i64 = login(bob, "bare")
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was restored");

    // Master passed but no extension named: still refused, nothing created.
    let mark = log_mark(sandbox);
    let e = err(
        restore_with(&options, Some(master), &mut |_| {}),
        "restore with master and no extension named",
    );
    assert!(matches!(&e, Error::MissingExtensions { .. }), "{e:?}");
    // Only some named: refused before any change, naming the others.
    let hstore_only = options.clone().create_extensions([Extension::Hstore]);
    let plan = ok(plan_restore(&hstore_only), "plan with hstore named");
    assert_eq!(plan.create_extensions, ["hstore"]);
    assert!(!plan.missing_extensions.contains(&"hstore".to_owned()));
    assert!(plan.skipped.iter().any(|s| s.reason
        == SkipReason::ExtensionCreatedFirst {
            extension: "hstore".into()
        }));
    let e = err(
        restore_with(&hstore_only, Some(master), &mut |_| {}),
        "restore with only hstore named",
    );
    let Error::MissingExtensions {
        extensions: listed, ..
    } = &e
    else {
        panic!("expected MissingExtensions, got {e:?}");
    };
    assert!(!listed.contains(&"hstore".to_owned()) && listed.contains(&"citext".to_owned()));
    assert!(
        changes_since(sandbox, mark).is_empty(),
        "{:#?}",
        changes_since(sandbox, mark)
    );
    assert!(
        installed_extensions(sandbox, "bare").is_empty(),
        "nothing was created"
    );
    // Naming extensions without a master connection to create them is bad input.
    let e = err(restore(&hstore_only), "extensions named without master");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    let all = options.clone().create_extensions(extensions(sandbox));
    let report = ok(
        restore_with(&all, Some(master), &mut |_| {}),
        "restore with master creating the named extensions",
    );
    let mut created = report.created_extensions.clone();
    created.sort();
    assert_eq!(created, expected);
    assert_eq!(installed_extensions(sandbox, "bare"), expected);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Master re-owned PostGIS's spatial_ref_sys to bob, so even its hand-added row arrived.
    assert_eq!(
        table_checksums(sandbox, "bare"),
        table_checksums(sandbox, "shop")
    );
}

/// A target as master leaves it when it only runs `CREATE EXTENSION postgis` (RDS keeps
/// `spatial_ref_sys` with the extension's owner): the seed's restore fails on the extension
/// comment and on `spatial_ref_sys`'s rows; rds-pg's restore leaves exactly those out and
/// succeeds in one transaction.
fn seed_way_shows_the_errors_the_filter_removes(
    sandbox: &Sandbox,
    master: &mut Provisioner,
    bob: &ConnectOptions,
    archive: &Path,
) {
    let exts = extensions(sandbox);
    for db in ["seed_way", "filtered_way"] {
        create_database(master, db, "bob", &exts);
        sandbox
            .connect_rdsadmin(db)
            .unwrap()
            .batch_execute("ALTER TABLE public.spatial_ref_sys OWNER TO rds_superuser")
            .unwrap();
    }
    let (success, stderr) = seed_restore(bob, "seed_way", archive);
    assert!(!success, "the seed's restore reports errors: {stderr}");
    assert!(
        stderr.contains("must be owner of extension postgis"),
        "COMMENT ON EXTENSION fails for a non-owner: {stderr}"
    );
    assert!(
        stderr.contains("permission denied for table spatial_ref_sys"),
        "spatial_ref_sys's rows cannot be written: {stderr}"
    );
    assert!(stderr.contains("errors ignored on restore: 2"), "{stderr}");

    let report = ok(
        restore(&RestoreOptions::new(
            bob.for_database("filtered_way"),
            archive,
        )),
        "rds-pg restore where spatial_ref_sys belongs to rds_superuser",
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let skipped_data: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::ExtensionConfigData { .. }))
        .collect();
    assert_eq!(skipped_data.len(), 1, "{:#?}", skipped_reasons(&report));
    assert_eq!(skipped_data[0].entry.name, "spatial_ref_sys");
    assert!(skipped_data[0].reason.to_string().contains("rds_superuser"));
    // Everything but the hand-added spatial_ref_sys row arrived.
    let mut source = table_checksums(sandbox, "shop");
    let mut copy = table_checksums(sandbox, "filtered_way");
    assert_eq!(
        source.remove("spatial_ref_sys").unwrap().0,
        copy["spatial_ref_sys"].0 + 1
    );
    copy.remove("spatial_ref_sys");
    assert_eq!(copy, source);
}

// ---------------------------------------------------------------------------------------------
// A truncated archive
// ---------------------------------------------------------------------------------------------

/// Everything in `db` a restore could change, read as the superuser.
fn database_state(sandbox: &Sandbox, db: &str) -> String {
    let mut admin = sandbox.connect_rdsadmin(db).unwrap();
    let row = admin
        .query_one(
            "SELECT (SELECT string_agg(format('%s.%s:%s:%s', n.nspname, c.relname, c.relkind,
                                              pg_get_userbyid(c.relowner)), ',' ORDER BY 1)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
                    (SELECT string_agg(proname, ',' ORDER BY 1) FROM pg_proc
                      WHERE pronamespace = 'public'::regnamespace AND proname NOT LIKE 'st\\_%'
                        AND proname NOT LIKE '\\_st\\_%'),
                    (SELECT string_agg(extname, ',' ORDER BY 1) FROM pg_extension),
                    (SELECT count(*)::text || md5(string_agg(k::text, ',' ORDER BY k))
                       FROM public.kept k)",
            &[],
        )
        .unwrap();
    let parts: Vec<Option<String>> = (0..4).map(|i| row.get(i)).collect();
    format!("{parts:?}")
}

per_version!(
    /// A truncated archive: its table of contents still reads, the restore fails with pg_restore's
    /// error, and the target is exactly as it was (one transaction).
    fn truncated_archive_fails_and_changes_nothing(sandbox) {
        require_clients();
        let exts = extensions(sandbox);
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        let bob = project_user(sandbox, &mut master, "bob");
        create_database(&mut master, "shop", "alice", &exts);
        fill_source(&alice, "shop", sandbox.has_postgis(), 20_000);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        ok(dump(&DumpOptions::new(alice.for_database("shop"), &archive)), "dump");
        let bytes = std::fs::read(&archive).unwrap();
        let truncated = dir.path().join("truncated.dump");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

        create_database(&mut master, "target", "bob", &exts);
        login(&bob, "target")
            .batch_execute(
                "CREATE TABLE kept (k int PRIMARY KEY);
                 INSERT INTO kept SELECT generate_series(1, 50);",
            )
            .unwrap();
        let before = database_state(sandbox, "target");

        let options = RestoreOptions::new(bob.for_database("target"), &truncated);
        let plan = ok(plan_restore(&options), "the table of contents is intact");
        assert!(plan.kept.len() > 5, "{:?}", plan.kept);
        let mut progressed = 0;
        let e = err(
            restore_with(&options, None, &mut |p| progressed = p.done),
            "restore of a truncated archive",
        );
        assert_eq!(e.kind(), ErrorKind::Tool, "{e}");
        let Error::Tool { tool, stderr, .. } = &e else {
            panic!("expected Error::Tool, got {e:?}");
        };
        assert!(tool.starts_with("pg_restore"), "{tool}");
        assert!(
            stderr.contains("could not read from input file")
                || stderr.contains("unexpected end of file"),
            "pg_restore's own error is carried: {stderr}"
        );
        assert!(progressed > 0, "entries were restored before the failure");
        assert_eq!(
            database_state(sandbox, "target"),
            before,
            "everything rolled back"
        );
    }
);

// ---------------------------------------------------------------------------------------------
// Who may restore: the target's owner, holding no privilege beyond it
// ---------------------------------------------------------------------------------------------

/// Statements pg_restore sent after `mark`: it starts every restore by emptying the search path
/// (rds-pg's own connections never send this statement).
fn pg_restore_statements_since(sandbox: &Sandbox, mark: usize) -> Vec<String> {
    statements_since(sandbox, mark)
        .into_iter()
        .filter(|s| s.contains("set_config('search_path', '', false)"))
        .collect()
}

/// Asserts that `result` is the restore refusal for `role`, naming `why`, and that neither
/// pg_restore nor any change reached the server after `mark`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    sandbox: &Sandbox,
    mark: usize,
    result: rds_pg_core::Result<T>,
    role: &str,
    why: &str,
) {
    let e = err(result, &format!("restore as {role}"));
    assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
    let Error::RestoreRole { role: refused, .. } = &e else {
        panic!("expected Error::RestoreRole, got {e:?}");
    };
    assert_eq!(refused, role);
    let text = e.to_string();
    assert!(text.contains(why), "{why:?} in {text}");
    assert!(e.hint().is_some_and(|h| h.contains("PGUSER=")), "{text}");
    assert!(
        !text.contains("SET ROLE") && !text.contains("--role"),
        "not offered: {text}"
    );
    assert!(
        pg_restore_statements_since(sandbox, mark).is_empty(),
        "pg_restore never ran"
    );
    assert!(
        changes_since(sandbox, mark).is_empty(),
        "{:#?}",
        changes_since(sandbox, mark)
    );
}

per_version!(
    /// Restoring as master into a project's database is refused before pg_restore starts (the
    /// archive's content would run with master's privileges); so is restoring as a role that
    /// does not own the target, or that owns it but holds a privileged attribute or membership
    /// (directly or through a chain). As the unprivileged owner the same restore works.
    fn restore_only_as_the_unprivileged_owner(sandbox) {
        require_clients();
        let exts = extensions(sandbox);
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        let bob = project_user(sandbox, &mut master, "bob");
        create_database(&mut master, "shop", "alice", &exts);
        fill_source(&alice, "shop", sandbox.has_postgis(), 10);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        ok(dump(&DumpOptions::new(alice.for_database("shop"), &archive)), "dump");
        create_database(&mut master, "target", "bob", &exts);
        let before = database_state_without_kept(sandbox, "target");

        // Master: refused by plan_restore, restore and restore_with (with extensions named).
        let as_master = RestoreOptions::new(sandbox.master_options().dbname("target"), &archive);
        let mark = log_mark(sandbox);
        assert_refused(sandbox, mark, plan_restore(&as_master), "master", "privileged");
        assert_refused(sandbox, mark, restore(&as_master), "master", "member of rds_superuser");
        let named = as_master.clone().create_extensions(exts.clone());
        assert_refused(
            sandbox,
            mark,
            restore_with(&named, Some(&mut master), &mut |_| {}),
            "master",
            "CREATEROLE",
        );
        // Another project's user, not the owner (allowed to connect).
        login(&bob, "target")
            .batch_execute("GRANT CONNECT ON DATABASE target TO alice")
            .unwrap();
        let mark = log_mark(sandbox);
        let as_alice = RestoreOptions::new(alice.for_database("target"), &archive);
        assert_refused(sandbox, mark, restore(&as_alice), "alice", "not the database's owner (\"bob\")");
        assert_eq!(database_state_without_kept(sandbox, "target"), before, "nothing changed");

        // The owner, once privileged: a member of pg_monitor through another role, then CREATEDB.
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        admin
            .batch_execute("CREATE ROLE monitoring NOLOGIN; GRANT pg_monitor TO monitoring; GRANT monitoring TO bob")
            .unwrap();
        let as_bob = RestoreOptions::new(bob.for_database("target"), &archive);
        let mark = log_mark(sandbox);
        assert_refused(sandbox, mark, restore(&as_bob), "bob", "member of pg_monitor");
        admin.batch_execute("REVOKE monitoring FROM bob; ALTER ROLE bob CREATEDB").unwrap();
        let mark = log_mark(sandbox);
        assert_refused(sandbox, mark, restore(&as_bob), "bob", "privileged (CREATEDB)");
        admin.batch_execute("ALTER ROLE bob NOCREATEDB").unwrap();
        assert_eq!(database_state_without_kept(sandbox, "target"), before, "nothing changed");

        // The unprivileged owner restores as before.
        let report = ok(restore(&as_bob), "restore as the owner");
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(table_checksums(sandbox, "target"), table_checksums(sandbox, "shop"));

        // verify_backup with master's connection as the "project user": refused before the
        // scratch database is created.
        let mark = log_mark(sandbox);
        let e = err(
            verify_backup(
                &mut master,
                &VerifyOptions::new(sandbox.master_options().dbname("shop"), &archive),
            ),
            "verify_backup as master",
        );
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        assert!(matches!(&e, Error::RestoreRole { role, .. } if role == "master"), "{e:?}");
        assert!(changes_since(sandbox, mark).is_empty(), "{:#?}", changes_since(sandbox, mark));
    }
);

/// What [`database_state`] reads, for a database without the `kept` table.
fn database_state_without_kept(sandbox: &Sandbox, db: &str) -> String {
    let mut admin = sandbox.connect_rdsadmin(db).unwrap();
    let row = admin
        .query_one(
            "SELECT (SELECT string_agg(format('%s.%s:%s:%s', n.nspname, c.relname, c.relkind,
                                              pg_get_userbyid(c.relowner)), ',' ORDER BY 1)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
                    (SELECT string_agg(extname, ',' ORDER BY 1) FROM pg_extension)",
            &[],
        )
        .unwrap();
    let parts: Vec<Option<String>> = (0..2).map(|i| row.get(i)).collect();
    format!("{parts:?}")
}

per_version!(
    /// `verify_backup` gives the scratch database the extensions installed in the source (or
    /// those named), not the archive's list, and counts rows as the project user: a table whose
    /// row-level security policy calls the project's code is counted without master ever
    /// running it.
    fn verify_takes_extensions_from_the_source_and_counts_as_the_project_user(sandbox) {
        require_clients();
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        create_database(&mut master, "shop", "alice", &[Extension::Hstore]);
        login(&alice, "shop")
            .batch_execute(
                "CREATE TABLE tagged (id int PRIMARY KEY, tags hstore);
                 INSERT INTO tagged SELECT g, hstore('n', g::text) FROM generate_series(1, 30) g;
                 CREATE FUNCTION public.spy() RETURNS boolean LANGUAGE plpgsql VOLATILE AS
                   $$BEGIN RAISE LOG 'rds-pg-spy ran as %', current_user; RETURN true; END$$;
                 ALTER TABLE tagged ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY everyone ON tagged USING (public.spy());",
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        ok(dump(&DumpOptions::new(alice.for_database("shop"), &archive)), "dump");

        let mark = log_mark(sandbox);
        let verified = ok(
            verify_backup(&mut master, &VerifyOptions::new(alice.for_database("shop"), &archive)),
            "verify_backup",
        );
        assert!(verified.is_verified(), "{:#?}", verified.tables);
        let tagged = verified.tables.iter().find(|t| t.table == "tagged").unwrap();
        assert_eq!((tagged.source, tagged.restored), (Some(30), Some(30)));
        let log = sandbox.log_text().unwrap();
        // RAISE LOG lines (the function's source, logged with pg_restore's statements, is not).
        for line in log[mark..].lines().filter(|l| l.contains("LOG:  rds-pg-spy ran as")) {
            assert!(
                line.contains("LOG:  rds-pg-spy ran as alice"),
                "the project's code ran as another role: {line}"
            );
        }
        // The scratch database got hstore, from the source.
        let created: Vec<String> = statements_since(sandbox, mark)
            .into_iter()
            .filter(|s| s.contains("CREATE EXTENSION"))
            .collect();
        assert!(
            !created.is_empty() && created.iter().all(|s| s.contains("\"hstore\"")),
            "{created:#?}"
        );
        // The detector works: a role the policy applies to is recorded.
        let carol = project_user(sandbox, &mut master, "carol");
        login(&alice, "shop")
            .batch_execute("GRANT CONNECT ON DATABASE shop TO carol; GRANT SELECT ON tagged TO carol")
            .unwrap();
        let mark = log_mark(sandbox);
        let seen: i64 = login(&carol, "shop")
            .query_one("SELECT count(*) FROM tagged", &[])
            .unwrap()
            .get(0);
        assert_eq!(seen, 30);
        assert!(sandbox.log_text().unwrap()[mark..].contains("LOG:  rds-pg-spy ran as carol"));

        // Named explicitly: exactly those. None: the archive's hstore is missing, and the
        // verification fails with the typed error, the scratch database dropped.
        let e = err(
            verify_backup(
                &mut master,
                &VerifyOptions::new(alice.for_database("shop"), &archive).extensions([]),
            ),
            "verify_backup without extensions",
        );
        assert!(
            matches!(&e, Error::MissingExtensions { extensions, .. } if extensions == &["hstore"]),
            "{e:?}"
        );
        let left: i64 = sandbox
            .connect_master()
            .unwrap()
            .query_one("SELECT count(*) FROM pg_database WHERE datname LIKE 'shop\\_verify\\_%'", &[])
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "no scratch database left behind");
    }
);

/// Asserts that a dump's progress counted up to its total and named each of `tables`.
/// Asserts what a dump's progress said: tables counted up to the total, each table named, and
/// the archive's size growing to its final `bytes`.
fn assert_dump_progress(seen: &[Progress], tables: &[&str], bytes: u64) {
    let last = seen.last().expect("dump reports progress");
    assert_eq!(last.done, last.total, "{seen:#?}");
    assert_eq!(
        last.bytes,
        Some(bytes),
        "the last report has the archive's size"
    );
    let sizes: Vec<u64> = seen
        .iter()
        .map(|p| p.bytes.expect("a dump's progress has its size so far"))
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "the archive only grows: {sizes:?}"
    );
    assert!(last.total >= tables.len(), "{seen:#?}");
    assert!(
        seen.windows(2).all(|w| w[0].done <= w[1].done),
        "progress only moves forward: {seen:#?}"
    );
    for table in tables {
        assert!(
            seen.iter().any(|p| p.message.contains(table)),
            "progress names {table}: {seen:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Directory format, parallel jobs, verify_backup
// ---------------------------------------------------------------------------------------------

per_version!(
    /// Directory format with 2 jobs, restored with 2 jobs; `verify_backup` restores it into a
    /// scratch database, reports equal counts and drops the scratch database.
    fn directory_format_with_two_jobs_and_verify_backup(sandbox) {
        require_clients();
        let exts = extensions(sandbox);
        let postgis = sandbox.has_postgis();
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        create_database(&mut master, "shop", "alice", &exts);
        fill_source(&alice, "shop", postgis, 5000);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dir");
        let mut dump_progress: Vec<Progress> = Vec::new();
        let dumped = ok(
            dump_with(
                &DumpOptions::new(alice.for_database("shop"), &archive)
                    .format(DumpFormat::Directory)
                    .jobs(2),
                &mut |p| dump_progress.push(p.clone()),
            ),
            "directory dump with 2 jobs",
        );
        // The size of a directory archive is the sum of its files'.
        assert_dump_progress(&dump_progress, &["public.big"], dumped.bytes);
        let files: u64 = std::fs::read_dir(&archive)
            .unwrap()
            .map(|f| f.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(dumped.bytes, files);
        assert!(archive.join("toc.dat").is_file());
        assert!(dumped.bytes > std::fs::metadata(archive.join("toc.dat")).unwrap().len());
        assert_eq!(mode(&archive), 0o700, "the directory archive is private");
        for file in std::fs::read_dir(&archive).unwrap() {
            let file = file.unwrap().path();
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }

        create_database(&mut master, "shop_copy", "alice", &exts);
        let report = ok(
            restore(&RestoreOptions::new(alice.for_database("shop_copy"), &archive).jobs(2)),
            "parallel restore",
        );
        if sandbox.major_version() == 16 {
            // pg_restore 18's script through psql: one transaction, no parallel jobs.
            assert!(matches!(report.route, RestoreRoute::ScriptThroughPsql { .. }), "{report:?}");
            assert!(report.single_transaction && report.jobs == 1);
        } else {
            assert!(!report.single_transaction && report.jobs == 2);
        }
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(table_checksums(sandbox, "shop_copy"), table_checksums(sandbox, "shop"));
        assert_eq!(
            object_facts(&alice, "shop_copy", postgis),
            object_facts(&alice, "shop", postgis)
        );

        // alice's password comes from a pgpass line naming the source database only, as a
        // deploy's does: the scratch database must be reached with it too.
        let passfile = archive.parent().unwrap().join("alice.pgpass");
        rds_pg_core::Credentials::from_options(
            &alice,
            "alice",
            "shop",
            alice.get_password().unwrap().clone(),
        )
        .unwrap()
        .write_pgpass(&passfile)
        .unwrap();
        let from_pgpass = sandbox.options_for("alice").passfile(&passfile).dbname("shop");
        assert!(from_pgpass.get_password().is_none());
        let mut verify_progress: Vec<Progress> = Vec::new();
        let verified = ok(
            verify_backup_with(&mut master, &VerifyOptions::new(from_pgpass, &archive), &mut |p| {
                verify_progress.push(p.clone())
            }),
            "verify_backup (password from a pgpass file)",
        );
        assert!(verified.is_verified(), "{:#?}", verified.tables);
        let last = verify_progress.last().expect("verify_backup reports the restore's progress");
        assert_eq!(last.done, last.total, "{verify_progress:#?}");
        assert_eq!(last.total, verified.restore.entries_restored, "{verify_progress:#?}");
        assert!(verified.scratch_dropped);
        let names: Vec<&str> = verified.tables.iter().map(|t| t.table.as_str()).collect();
        assert!(names.contains(&"places") && names.contains(&"big"), "{names:?}");
        let big = verified.tables.iter().find(|t| t.table == "big").unwrap();
        assert_eq!((big.source, big.restored), (Some(5000), Some(5000)));
        let left: i64 = sandbox
            .connect_master()
            .unwrap()
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1 OR datname LIKE 'shop\\_verify\\_%'",
                &[&verified.scratch_database],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "no scratch database left behind");

        // A copy that lost rows is reported, not hidden.
        login(&alice, "shop").batch_execute("DELETE FROM big WHERE n <= 10").unwrap();
        let verified = ok(
            verify_backup(&mut master, &VerifyOptions::new(alice.for_database("shop"), &archive)),
            "verify_backup after the source changed",
        );
        assert!(!verified.is_verified());
        let mismatches = verified.mismatches();
        assert_eq!(mismatches.len(), 1, "{mismatches:?}");
        assert_eq!((mismatches[0].source, mismatches[0].restored), (Some(4990), Some(5000)));
    }
);

// ---------------------------------------------------------------------------------------------
// The password never shows
// ---------------------------------------------------------------------------------------------

/// Processes whose parent is this test process and whose name is `name`.
fn children_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok());
        if comm == name && ppid == Some(me) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn password_is_never_on_argv_or_in_the_environment() {
    run_on(15, |sandbox| {
        require_clients();
        let mut master = provisioner(sandbox);
        let user = project_user(sandbox, &mut master, "carol");
        let password = user.get_password().unwrap().expose().to_owned();
        create_database(&mut master, "carol_db", "carol", &[]);
        let mut holder = login(&user, "carol_db");
        holder
            .batch_execute(
                "CREATE TABLE t AS SELECT 1 AS x; BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;",
            )
            .unwrap();

        // pg_dump waits for the lock: it is running while we look at it.
        let dir = tempfile::tempdir().unwrap();
        let options = DumpOptions::new(user.for_database("carol_db"), dir.path().join("c.dump"));
        let dumping = std::thread::spawn(move || dump(&options));
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            let pids: Vec<u32> = children_named("pg_dump")
                .into_iter()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains("carol_db"))
                        .unwrap_or(false)
                })
                .collect();
            if let Some(pid) = pids.first() {
                break *pid;
            }
            assert!(Instant::now() < deadline, "pg_dump did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let env: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert!(args.iter().any(|a| a == "--username=carol"), "{args:?}");
        for text in args.iter().chain(env.iter()) {
            assert!(
                !text.contains(&password),
                "password visible in /proc/{pid}: {text}"
            );
        }
        assert!(!env.iter().any(|e| e.starts_with("PGPASSWORD=")), "{env:?}");
        assert!(
            env.iter().any(|e| e == "PGSSLMODE=verify-full"),
            "TLS settings pass: {env:?}"
        );
        assert!(
            env.iter().any(|e| e.starts_with("PGSSLROOTCERT=")),
            "{env:?}"
        );
        let passfile = PathBuf::from(
            env.iter()
                .find_map(|e| e.strip_prefix("PGPASSFILE="))
                .expect("PGPASSFILE is set"),
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&passfile).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", passfile.display());
            let dir_mode = std::fs::metadata(passfile.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        assert!(std::fs::read_to_string(&passfile)
            .unwrap()
            .contains("carol"));

        holder.batch_execute("COMMIT").unwrap();
        let report = ok(dumping.join().unwrap(), "dump after the lock is released");
        assert!(report.bytes > 0);
        assert!(
            !passfile.parent().unwrap().exists(),
            "the password file's directory is removed afterwards"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Servers newer than the client tools
// ---------------------------------------------------------------------------------------------

/// A server newer than every client found (a tools directory holding only Debian's 15 client,
/// against an 18 server): dump, restore and verify give the version error before anything runs.
#[test]
fn newer_server_than_every_client_gives_the_version_error() {
    run_on(18, |sandbox| {
        require_clients();
        let major = sandbox.major_version();
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        create_database(&mut master, "shop", "alice", &[Extension::Hstore]);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");

        // The tools directory is the only place searched.
        let options = DumpOptions::new(alice.for_database("shop"), &archive).tools_dir(CLIENT_15);
        let e = err(dump(&options), "dump with a 15 client");
        assert_eq!(e.kind(), ErrorKind::Tool);
        let Error::ToolVersion {
            tool,
            server_version,
            server_major,
            found,
            fix,
        } = &e
        else {
            panic!("expected the version error, got {e:?}");
        };
        assert_eq!((tool.as_str(), *server_major), ("pg_dump", major));
        assert_eq!(server_version, sandbox.version());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("15/bin/pg_dump") && found[0].contains("15."),
            "{found:?}"
        );
        assert!(fix.contains(&format!("postgresql-client-{major}")), "{fix}");
        assert!(fix.contains(tools::TOOLS_DIRS_ENV), "{fix}");
        let text = e.to_string();
        assert!(
            text.contains(sandbox.version()) && text.contains("15/bin/pg_dump"),
            "{text}"
        );
        assert!(!archive.exists(), "nothing was written");

        // What the version check prevents: pg_dump 15 itself refuses the server.
        let tool = ok(
            tools::probe(ClientProgram::PgDump, &Path::new(CLIENT_15).join("pg_dump")),
            "probe",
        );
        let conn = alice.for_database("shop");
        let work = ok(ToolWorkDir::create(&conn), "work dir");
        let out = tools::connection_command(&tool, &conn, work.passfile())
            .arg("--format=custom")
            .arg(tools_file_arg(&dir.path().join("raw.dump")))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("server version mismatch"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Restore and verify need a pg_restore as new as the server as well (checked before the
        // archive is even looked at, and before anything changes).
        ok(
            dump(&DumpOptions::new(alice.for_database("shop"), &archive)),
            "dump with 18",
        );
        let mark = log_mark(sandbox);
        let e = err(
            plan_restore(
                &RestoreOptions::new(alice.for_database("shop"), &archive).tools_dir(CLIENT_15),
            ),
            "restore with a 15 client",
        );
        assert!(
            matches!(&e, Error::ToolVersion { tool, .. } if tool == "pg_restore"),
            "{e:?}"
        );
        let e = err(
            verify_backup(
                &mut master,
                &VerifyOptions::new(alice.for_database("shop"), &archive).tools_dir(CLIENT_15),
            ),
            "verify_backup with a 15 client",
        );
        assert!(matches!(&e, Error::ToolVersion { .. }), "{e:?}");
        assert!(
            changes_since(sandbox, mark).is_empty(),
            "{:#?}",
            changes_since(sandbox, mark)
        );
    });
}

fn tools_file_arg(path: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from("--file=");
    arg.push(path);
    arg
}

/// A directory holding `tool` of `from` under `name`/ (a symbolic link): a tools layout as PGDG
/// installs it, several majors side by side.
fn tools_layout(root: &Path, dirs: &[(&str, &Path)]) -> Vec<PathBuf> {
    dirs.iter()
        .map(|(name, from)| {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for tool in ["pg_dump", "pg_restore", "psql"] {
                let target = std::fs::canonicalize(from.join(tool)).unwrap();
                let link = dir.join(tool);
                if !link.exists() {
                    std::os::unix::fs::symlink(target, link).unwrap();
                }
            }
            dir
        })
        .collect()
}

/// With several majors side by side, the one whose major equals the server's wins whatever the
/// search order, else the nearest newer one; never an older one.
#[test]
fn client_choice_prefers_the_servers_major_then_the_nearest_newer() {
    require_clients();
    let root = tempfile::tempdir().unwrap();
    let c18 = client_18();
    let c15 = PathBuf::from(CLIENT_15);
    for order in [
        vec![("a18", c18.as_path()), ("b15", c15.as_path())],
        vec![("b15", c15.as_path()), ("a18", c18.as_path())],
    ] {
        let dirs = tools_layout(root.path(), &order);
        for program in [ClientProgram::PgDump, ClientProgram::PgRestore] {
            let found = tools::find_all_in(program, &dirs);
            assert_eq!(found.len(), 2, "{found:?}");
            for (server, expected) in [
                (13, Some(15)),
                (15, Some(15)),
                (16, Some(18)),
                (18, Some(18)),
                (19, None),
            ] {
                let chosen = tools::choose(&found, server).map(|t| t.major);
                assert_eq!(chosen, expected, "{program} for {server} among {found:?}");
            }
        }
    }
}

per_version!(
    /// The report says which client ran (path and version), and it is the one the choice rule
    /// names; on 16 the restore goes through pg_restore 18's script and psql 18 (pg_restore 18
    /// cannot connect to 16 itself), in one transaction, with identical data.
    fn the_report_names_the_client_chosen_for_the_server(sandbox) {
        require_clients();
        let major = sandbox.major_version();
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        create_database(&mut master, "shop", "alice", &[Extension::Hstore]);
        login(&alice, "shop")
            .batch_execute("CREATE TABLE t AS SELECT g AS n, hstore('k', g::text) AS h FROM generate_series(1, 300) g")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        let dumped = ok(dump(&DumpOptions::new(alice.for_database("shop"), &archive)), "dump");
        assert_eq!(dumped.tool.major, expected_client_major(major), "{}", dumped.tool);
        assert!(dumped.tool.to_string().contains(&dumped.tool.version));
        let toc = ok(Toc::read_archive(&archive), "read the archive");
        assert_eq!(
            toc.header.dumped_by.as_deref().and_then(rds_pg_core::dump::major_of),
            Some(dumped.tool.major),
            "{:?}",
            toc.header
        );
        create_database(&mut master, "copy", "alice", &[Extension::Hstore]);
        let options = RestoreOptions::new(alice.for_database("copy"), &archive);
        let plan = ok(plan_restore(&options), "plan");
        // With plain names, the archive read field by field and pg_restore --list agree.
        let listed = ok(rds_pg_core::dump::read_toc(&plan.tool, &archive), "pg_restore --list");
        assert_eq!(listed.entries, toc.entries);
        assert_eq!(listed.header, toc.header);
        let report = ok(restore(&options), "restore");
        assert_eq!(report.tool, plan.tool);
        assert_eq!(report.tool.major, expected_client_major(major), "{}", report.tool);
        match (&plan.route, major) {
            (RestoreRoute::ScriptThroughPsql { psql }, 16) => assert_eq!(psql.major, 18),
            (RestoreRoute::Direct, m) if m != 16 => {}
            (route, m) => panic!("route {route:?} on {m}"),
        }
        assert!(report.single_transaction && report.warnings.is_empty(), "{report:?}");
        assert_eq!(table_checksums(sandbox, "copy"), table_checksums(sandbox, "shop"));
    }
);

/// An archive made by a newer pg_dump (18, of a 15 server): pg_restore 15 cannot read it, so
/// with only the 15 client the restore fails with the typed error before any change; found
/// with the 18 tools, it is restored through pg_restore 18's script and psql (pg_restore 18
/// itself would fail on `transaction_timeout`), in one transaction: a failing entry rolls back.
#[test]
fn archive_from_a_newer_pg_dump_restores_into_an_older_server() {
    run_on(15, |sandbox| {
        require_clients();
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        create_database(
            &mut master,
            "shop",
            "alice",
            &[Extension::Hstore, Extension::Citext],
        );
        fill_source(&alice, "shop", false, 20_000);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop18.dump");
        let dumped = ok(
            dump(&DumpOptions::new(alice.for_database("shop"), &archive).tools_dir(client_18())),
            "dump with pg_dump 18",
        );
        assert_eq!(dumped.tool.major, 18);
        let toc = ok(Toc::read_archive(&archive), "read");
        assert_eq!(
            toc.header.archive_version.map(|v| v.to_string()).as_deref(),
            Some("1.16-0")
        );

        create_database(
            &mut master,
            "copy",
            "alice",
            &[Extension::Hstore, Extension::Citext],
        );
        let mark = log_mark(sandbox);
        let only_15 =
            RestoreOptions::new(alice.for_database("copy"), &archive).tools_dir(CLIENT_15);
        let e = err(restore(&only_15), "restore with only pg_restore 15");
        assert_eq!(e.kind(), ErrorKind::Tool, "{e}");
        let Error::ArchiveVersion {
            archive: written_by,
            found,
            fix,
            ..
        } = &e
        else {
            panic!("expected the archive version error, got {e:?}");
        };
        assert!(
            written_by.contains("pg_dump 18.") && written_by.contains("1.16-0"),
            "{e}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("reads archive formats up to 1.14")),
            "{e}"
        );
        assert!(fix.contains("pg_dump 15"), "{e}");
        assert!(
            pg_restore_statements_since(sandbox, mark).is_empty(),
            "pg_restore never ran"
        );
        assert!(
            changes_since(sandbox, mark).is_empty(),
            "{:#?}",
            changes_since(sandbox, mark)
        );

        // What the script route avoids: pg_restore 18 connected to 15 itself fails.
        let conn = alice.for_database("copy");
        let work = ok(ToolWorkDir::create(&conn), "work dir");
        let pg_restore_18 = ok(
            tools::probe(ClientProgram::PgRestore, &client_18().join("pg_restore")),
            "probe",
        );
        let out = tools::connection_command(&pg_restore_18, &conn, work.passfile())
            .args(["--no-owner", "--no-acl", "--single-transaction"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("transaction_timeout"),
            "{out:?}"
        );
        drop(work);

        // The default search finds both: the script route, one transaction, identical data.
        let options = RestoreOptions::new(alice.for_database("copy"), &archive);
        let plan = ok(plan_restore(&options), "plan");
        assert_eq!(plan.tool.major, 18);
        assert!(
            matches!(&plan.route, RestoreRoute::ScriptThroughPsql { psql } if psql.major == 18),
            "{:?}",
            plan.route
        );
        let mut seen = Vec::new();
        let report = ok(
            restore_with(&options, None, &mut |p| seen.push(p.clone())),
            "restore",
        );
        assert!(
            report.single_transaction && report.warnings.is_empty(),
            "{report:?}"
        );
        assert_eq!(
            seen.last().map(|p| (p.done, p.total)),
            Some((report.entries_restored, report.entries_restored))
        );
        assert_eq!(
            table_checksums(sandbox, "copy"),
            table_checksums(sandbox, "shop")
        );
        assert_eq!(
            object_facts(&alice, "copy", false),
            object_facts(&alice, "shop", false)
        );

        // A failing entry (the table exists already) rolls everything back, psql never commits.
        create_database(
            &mut master,
            "target",
            "alice",
            &[Extension::Hstore, Extension::Citext],
        );
        login(&alice, "target")
            .batch_execute("CREATE TABLE kept (k int PRIMARY KEY); INSERT INTO kept VALUES (1); CREATE TABLE big (other text)")
            .unwrap();
        let before = database_state(sandbox, "target");
        let e = err(
            restore(&RestoreOptions::new(alice.for_database("target"), &archive)),
            "restore over an existing table",
        );
        assert_eq!(e.kind(), ErrorKind::Tool, "{e}");
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(
            database_state(sandbox, "target"),
            before,
            "everything rolled back"
        );
        // And a truncated archive: pg_restore fails mid-script, psql is killed, nothing stays.
        let bytes = std::fs::read(&archive).unwrap();
        let truncated = dir.path().join("truncated.dump");
        std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
        login(&alice, "target")
            .batch_execute("DROP TABLE big")
            .unwrap();
        let before = database_state(sandbox, "target");
        let e = err(
            restore(&RestoreOptions::new(
                alice.for_database("target"),
                &truncated,
            )),
            "truncated",
        );
        assert_eq!(e.kind(), ErrorKind::Tool, "{e}");
        assert_eq!(
            database_state(sandbox, "target"),
            before,
            "everything rolled back"
        );
    });
}

/// Bad options fail before anything connects.
#[test]
fn bad_options_fail_before_connecting() {
    let nowhere = ConnectOptions::new()
        .host("192.0.2.1")
        .port(1)
        .user("u")
        .dbname("d");
    let e = err(
        dump(&DumpOptions::new(nowhere.clone(), "x.dump").jobs(2)),
        "2 jobs, custom format",
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = err(
        restore(&RestoreOptions::new(
            nowhere.clone(),
            "/nonexistent/archive.dump",
        )),
        "missing archive",
    );
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = err(
        restore(&RestoreOptions::new(nowhere, "/").jobs(0)),
        "zero jobs",
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

// ---------------------------------------------------------------------------------------------
// verify_backup leaves nothing behind, whatever fails
// ---------------------------------------------------------------------------------------------

/// Databases named like a scratch database of `source`, and memberships of `owner` that master
/// holds beyond the one PostgreSQL 16+ gives a role's creator (ADMIN only: no INHERIT, no SET).
fn leftovers(sandbox: &Sandbox, source: &str, owner: &str) -> (Vec<String>, i64) {
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    let pattern = format!("{}\\_verify\\_%", source.replace('_', "\\_"));
    let scratch: Vec<String> = admin
        .query("SELECT datname::text FROM pg_database WHERE datname LIKE $1 OR datname = 'scratch' ORDER BY 1", &[&pattern])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let options = if sandbox.major_version() >= 16 {
        "AND (m.inherit_option OR m.set_option)"
    } else {
        ""
    };
    let memberships: i64 = admin
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_auth_members m
                  WHERE m.member = 'master'::regrole AND m.roleid = $1::text::regrole {options}"
            ),
            &[&owner],
        )
        .unwrap()
        .get(0);
    (scratch, memberships)
}

/// Kills, as soon as it appears, the first pg_restore (or, on the script route, psql) of this
/// process that restores into `database` on the
/// server at `port` (the tests of all versions run in this one process, each with its own
/// sandbox: the port tells them apart).
fn kill_pg_restore_when_it_starts(
    database: &'static str,
    port: u16,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            for pid in children_named("pg_restore")
                .into_iter()
                .chain(children_named("psql"))
            {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                if args.iter().any(|a| a.contains(database))
                    && args.iter().any(|a| a == &format!("--port={port}"))
                {
                    let _ = std::process::Command::new("kill")
                        .arg("-9")
                        .arg(pid.to_string())
                        .status();
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    })
}

per_version!(
    /// Every way verify_backup can fail once its scratch database may exist — an extension that
    /// cannot be created after CREATE DATABASE, a truncated archive, a pg_restore killed
    /// mid-restore — ends in a typed error with the scratch database dropped and no membership of
    /// the project user left to master; a garbage archive fails before anything is created.
    fn verify_backup_drops_its_scratch_database_on_every_failure(sandbox) {
        require_clients();
        let mut master = provisioner(sandbox);
        let alice = project_user(sandbox, &mut master, "alice");
        create_database(&mut master, "shop", "alice", &[Extension::Hstore, Extension::Citext]);
        fill_source(&alice, "shop", false, 30_000);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("shop.dump");
        ok(dump(&DumpOptions::new(alice.for_database("shop"), &archive)), "dump");
        let source = alice.for_database("shop");
        let clean = (Vec::<String>::new(), 0);
        assert_eq!(leftovers(sandbox, "shop", "alice"), clean);
        let mut failures = 0;

        // 1. The extensions fail after CREATE DATABASE: master's new sessions are read-only.
        sandbox
            .connect_rdsadmin("postgres")
            .unwrap()
            .batch_execute("ALTER ROLE master SET default_transaction_read_only = on")
            .unwrap();
        let mark = log_mark(sandbox);
        let e = err(
            verify_backup(&mut master, &VerifyOptions::new(source.clone(), &archive).scratch_database("scratch").unwrap()),
            "verify with extensions that cannot be created",
        );
        assert!(e.to_string().contains("read-only"), "{e}");
        assert!(
            statements_since(sandbox, mark).iter().any(|s| s.contains("CREATE DATABASE \"scratch\"")),
            "the failure came after CREATE DATABASE"
        );
        sandbox
            .connect_rdsadmin("postgres")
            .unwrap()
            .batch_execute("ALTER ROLE master RESET default_transaction_read_only")
            .unwrap();
        assert_eq!(leftovers(sandbox, "shop", "alice"), clean, "after: {e}");
        failures += 1;

        // 2. A truncated archive: its table of contents reads, the restore fails.
        let bytes = std::fs::read(&archive).unwrap();
        let truncated = dir.path().join("truncated.dump");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let e = err(verify_backup(&mut master, &VerifyOptions::new(source.clone(), &truncated)), "truncated");
        assert_eq!(e.kind(), ErrorKind::Tool, "{e}");
        assert_eq!(leftovers(sandbox, "shop", "alice"), clean, "after: {e}");
        failures += 1;

        // 3. The restoring program killed while it restores into the scratch database. Its
        // archive has 400 rows whose CHECK sleeps 10 ms each: the restore is surely still
        // running when the killer, polling every 5 ms, finds it, however loaded the machine,
        // and the server notices the lost client at the next row.
        let mut owner = login(&alice, "shop");
        owner
            .batch_execute(
                "CREATE TABLE slow (n int CHECK ((pg_catalog.pg_sleep(0.01))::text = ''));
                 INSERT INTO slow SELECT g FROM generate_series(1, 400) g;",
            )
            .unwrap();
        let slow = dir.path().join("slow.dump");
        ok(dump(&DumpOptions::new(alice.for_database("shop"), &slow)), "dump with a slow row");
        let killer = kill_pg_restore_when_it_starts("scratch", sandbox.port());
        let e = err(
            verify_backup(&mut master, &VerifyOptions::new(source.clone(), &slow).scratch_database("scratch").unwrap()),
            "killed pg_restore",
        );
        owner.batch_execute("DROP TABLE slow").unwrap();
        drop(owner);
        assert!(killer.join().unwrap(), "pg_restore was seen and killed");
        assert_eq!(e.kind(), ErrorKind::Tool, "{e}");
        assert_eq!(leftovers(sandbox, "shop", "alice"), clean, "after: {e}");
        failures += 1;

        // 4. Not an archive: refused before anything is created.
        let garbage = dir.path().join("garbage.dump");
        std::fs::write(&garbage, b"PGDMP\x01\x0e\x00garbage").unwrap();
        let mark = log_mark(sandbox);
        let e = err(verify_backup(&mut master, &VerifyOptions::new(source.clone(), &garbage)), "garbage");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(changes_since(sandbox, mark).is_empty(), "{:#?}", changes_since(sandbox, mark));
        failures += 1;

        // And the same verification then succeeds.
        let verified = ok(verify_backup(&mut master, &VerifyOptions::new(source, &archive)), "verify");
        assert!(verified.is_verified() && verified.scratch_dropped, "{verified:#?}");
        assert_eq!(leftovers(sandbox, "shop", "alice"), clean);
        eprintln!("verify_backup: {failures} injected failures, scratch database dropped each time");
    }
);

// ---------------------------------------------------------------------------------------------
// Any name survives dump → table of contents → filter → restore → verify
// ---------------------------------------------------------------------------------------------

/// Names rds-pg's `ident` accepts: 1–63 bytes, no NUL, no `pg_` prefix; spaces, quotes,
/// backslashes, `$$`, semicolons, line breaks and any unicode.
fn any_ident() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::char::range('a', 'z'),
            1 => Just(' '),
            1 => Just('"'),
            1 => Just('\''),
            1 => Just('\\'),
            1 => Just('$'),
            1 => Just(';'),
            1 => Just('\n'),
            1 => Just('-'),
            2 => proptest::char::any(),
        ],
        1..24,
    )
    .prop_map(|chars| {
        let mut s: String = chars.into_iter().collect();
        while s.len() > 63 {
            s.pop();
        }
        s
    })
    .prop_filter("a name ident accepts", |s| {
        rds_pg_core::SchemaName::new(s.clone()).is_ok()
    })
}

/// The number of generated cases (each a real dump, restore and verification): CI time.
const NAME_CASES: u32 = 24;

/// A schema, a table and a column with generated names (and a comment on the schema) survive
/// the round trip: the archive's table of contents names them exactly, the restore as another
/// project user creates them with their rows, and verify_backup counts the same rows on both
/// sides. Runs on the newest selected version.
#[test]
fn any_name_survives_dump_restore_and_verify() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let version = *rds_pg_tests::selected_versions().iter().max().unwrap();
    run_on(version, |sandbox| {
        require_clients();
        let master = std::cell::RefCell::new(provisioner(sandbox));
        let alice = project_user(sandbox, &mut master.borrow_mut(), "alice");
        let bob = project_user(sandbox, &mut master.borrow_mut(), "bob");
        let dir = tempfile::tempdir().unwrap();
        let mut runner = TestRunner::new(Config {
            cases: NAME_CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let cases = std::cell::Cell::new(0);
        let strategy = (any_ident(), any_ident(), any_ident(), 0i32..40);
        runner
            .run(&strategy, |(schema, table, column, rows)| {
                let case = cases.get() + 1;
                cases.set(case);
                let db = format!("src{case}");
                create_database(&mut master.borrow_mut(), &db, "alice", &[]);
                let mut c = login(&alice, &db);
                let (s, t, col) = (
                    escape_identifier(&schema),
                    escape_identifier(&table),
                    escape_identifier(&column),
                );
                c.batch_execute(&format!(
                    "CREATE SCHEMA {s}; COMMENT ON SCHEMA {s} IS 'odd';
                     CREATE TABLE {s}.{t} ({col} int PRIMARY KEY);
                     INSERT INTO {s}.{t} SELECT generate_series(1, {rows});
                     CREATE TABLE public.plain AS SELECT 1 AS x"
                ))
                .map_err(|e| TestCaseError::fail(format!("creating {schema:?}.{table:?}: {e}")))?;
                drop(c);
                let archive = dir.path().join(format!("{case}.dump"));
                ok(
                    dump(&DumpOptions::new(alice.for_database(&db), &archive)),
                    "dump",
                );

                let toc = ok(Toc::read_archive(&archive), "read the archive");
                let data: Vec<(&str, &str)> = toc.tables_with_data();
                proptest::prop_assert!(
                    data.contains(&(schema.as_str(), table.as_str())),
                    "the table of contents names {schema:?}.{table:?} exactly: {data:?}"
                );
                proptest::prop_assert!(toc
                    .entries
                    .iter()
                    .any(|e| e.kind == rds_pg_core::dump::EntryKind::Schema && e.name == schema));

                let copy = format!("copy{case}");
                create_database(&mut master.borrow_mut(), &copy, "bob", &[]);
                let report = ok(
                    restore(&RestoreOptions::new(bob.for_database(&copy), &archive)),
                    "restore",
                );
                proptest::prop_assert!(report.warnings.is_empty(), "{:?}", report.warnings);
                let restored: i64 = login(&bob, &copy)
                    .query_one(&format!("SELECT count(*) FROM {s}.{t}"), &[])
                    .unwrap()
                    .get(0);
                proptest::prop_assert_eq!(restored, i64::from(rows));

                let verified = ok(
                    verify_backup(
                        &mut master.borrow_mut(),
                        &VerifyOptions::new(alice.for_database(&db), &archive),
                    ),
                    "verify",
                );
                proptest::prop_assert!(verified.is_verified(), "{:#?}", verified.tables);
                let counted = verified
                    .tables
                    .iter()
                    .find(|r| r.schema == schema && r.table == table);
                proptest::prop_assert_eq!(
                    counted.map(|r| (r.source, r.restored)),
                    Some((Some(i64::from(rows)), Some(i64::from(rows))))
                );
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "names: {} generated cases, each dumped, restored and verified",
            cases.get()
        );
    });
}
