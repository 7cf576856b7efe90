//! Backups of a fleet (issue 16): `backup run` as each project's own role, `verify` as a
//! throw-away role, damaged archives, encryption, missing credentials, upload.
//!
//! Every test runs on every version; a dump needs pg_dump and pg_restore at least as new as the
//! server, found as rds-pg finds them, and a version without them fails saying what to install.

use std::path::Path;

use rds_pg_core::backup::{
    self, Archive, BackupRunOptions, BackupVerifyOptions, Identities, Recipient, Selection,
    UploadCommand, VerificationState, SCRATCH_PREFIX,
};
use rds_pg_core::dump::{tools, ClientProgram};
use rds_pg_core::{
    CredentialDelivery, CredentialSink, DatabaseSpec, Error, ErrorKind, Extension, Inventory,
    Provisioner, ServerVersion, UserSpec,
};
use rds_pg_tests::{log_mark, login_as_application, ok, per_version, provisioner, Sandbox};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Fails the test, saying what to install, when no pg_dump/pg_restore can dump this server.
fn require_client(sandbox: &Sandbox) {
    let major = sandbox.major_version();
    let server = ServerVersion(major * 10000);
    for program in [ClientProgram::PgDump, ClientProgram::PgRestore] {
        if let Err(e) = tools::find(program, server, None) {
            panic!(
                "backups of PostgreSQL {major} need {program} {major} or newer, found as rds-pg \
                 finds it (RDS_PG_TOOLS_DIRS, PATH, /usr/lib/postgresql/*/bin): {e}"
            );
        }
    }
}

/// A project of the test inventory: its database, owner, extensions and credential sink.
struct TestProject {
    name: &'static str,
    extensions: Vec<Extension>,
    sink: String,
}

/// The inventory for `sandbox`: one client, one instance (the sandbox, master's password in its
/// password file), the projects; `extra_policy` goes into `[policy]`.
fn inventory_text(sandbox: &Sandbox, root: &Path, projects: &[TestProject], extra: &str) -> String {
    let master_pgpass = root.join("master.pgpass");
    let line = rds_pg_core::pgpass::format_line(
        "127.0.0.1",
        sandbox.port(),
        "*",
        sandbox.master_user(),
        sandbox.master_password(),
    )
    .unwrap();
    std::fs::write(&master_pgpass, format!("{}\n", line.expose())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&master_pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut text = format!(
        "[policy]\nbackup_dir = {:?}\n{extra}\n\n\
         [[client]]\nname = \"acme\"\naccount_id = \"111122223333\"\n\n\
         [[instance]]\nname = \"sandbox\"\nclient = \"acme\"\nenvironment = \"production\"\n\
         region = \"eu-west-1\"\npostgres_major = {}\nendpoint = \"127.0.0.1\"\nport = {}\n\
         master_user = {:?}\nmaster_password = {{ pgpass = {:?} }}\n",
        root.join("backups").display().to_string(),
        sandbox.major_version(),
        sandbox.port(),
        sandbox.master_user(),
        master_pgpass.display().to_string(),
    );
    for p in projects {
        let extensions: Vec<String> = p
            .extensions
            .iter()
            .map(|e| format!("{:?}", e.name()))
            .collect();
        text.push_str(&format!(
            "\n[[project]]\nname = \"{n}\"\nclient = \"acme\"\nenvironment = \"production\"\n\
             region = \"eu-west-1\"\ninstance = \"sandbox\"\n\n\
             [[project.database]]\nname = \"{n}\"\nowner = \"{n}\"\nextensions = [{}]\n\n\
             [project.credentials]\n{n} = {}\n",
            extensions.join(", "),
            p.sink,
            n = p.name,
        ));
    }
    text
}

fn load(text: &str) -> Inventory {
    ok(
        Inventory::from_str(text, "test.toml"),
        "the test inventory loads",
    )
}

/// Creates the project's role (its credentials delivered to `sink`) and database as master.
fn provision(master: &mut Provisioner, name: &str, extensions: &[Extension], sink: CredentialSink) {
    let db = rds_pg_core::DatabaseName::new(name).unwrap();
    ok(
        master.ensure_user_delivering(
            &UserSpec::new(name).unwrap(),
            &CredentialDelivery::new(sink).database(db),
        ),
        "ensure_user_delivering",
    );
    ok(
        master.ensure_database(
            &DatabaseSpec::new(name, name)
                .unwrap()
                .extensions(extensions.iter().cloned()),
        ),
        "ensure_database",
    );
}

/// Fills a project database as its owner, logged in with the credentials the sink received.
fn fill(inventory: &Inventory, sandbox: &Sandbox, project: &str, rows: i32, marker: &str) {
    let p = inventory.project(project).unwrap();
    let source = backup::credential_source(p, project).unwrap();
    let options = backup::project_options(
        &sandbox.client_options(),
        inventory.instance("sandbox").unwrap(),
        project,
        project,
        &source,
    )
    .unwrap();
    let mut c = ok(login_as_application(&options), "login as the project user");
    c.batch_execute(&format!(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL, tags hstore);
         COMMENT ON TABLE notes IS 'comment {marker}';
         CREATE TABLE empty_one (x int);
         CREATE INDEX notes_body ON notes (body);"
    ))
    .unwrap();
    c.execute(
        "INSERT INTO notes (body, tags)
         SELECT CASE WHEN g = 1 THEN $2 ELSE md5(g::text) END, hstore('k', g::text)
           FROM generate_series(1, $1) g",
        &[&rows, &marker],
    )
    .unwrap();
    if p.databases[0].extensions.contains(&Extension::Postgis) {
        c.batch_execute(
            "CREATE TABLE places (id int PRIMARY KEY, geom geometry(Point, 4326));
             INSERT INTO places SELECT g, ST_SetSRID(ST_MakePoint(g, g), 4326)
               FROM generate_series(1, 50) g;
             ANALYZE places;",
        )
        .unwrap();
    }
    c.batch_execute("ANALYZE notes").unwrap();
}

fn extensions_for(sandbox: &Sandbox) -> Vec<Extension> {
    if sandbox.has_postgis() {
        vec![Extension::Postgis, Extension::Hstore]
    } else {
        vec![Extension::Hstore]
    }
}

/// Scratch databases and roles left on the server.
fn leftovers(sandbox: &Sandbox) -> Vec<String> {
    let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
    let pattern = format!("{SCRATCH_PREFIX}%");
    admin
        .query(
            "SELECT 'database ' || datname FROM pg_database WHERE datname LIKE $1
             UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE $1",
            &[&pattern],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `user@database` of every `COPY … TO stdout` (a dump reading a table) and every
/// `COPY … FROM stdin` (a restore writing one) logged after `mark`.
fn copies_since(sandbox: &Sandbox, mark: usize) -> Vec<(String, String)> {
    let log = sandbox.log_text().unwrap();
    let mut out = Vec::new();
    for line in log[mark..].lines() {
        let Some(i) = line.find("LOG:  statement: COPY ") else {
            continue;
        };
        let kind = if line.contains(" TO stdout") {
            "dump"
        } else if line.contains(" FROM stdin") {
            "restore"
        } else {
            continue;
        };
        // `%m [%p] %q%u@%d `: the token before "LOG:".
        let who = line[..i].split_whitespace().last().unwrap_or("").to_owned();
        out.push((kind.to_owned(), who));
    }
    out
}

fn only_archive(run: &backup::BackupRunReport, database: &str) -> Archive {
    let db = run
        .databases
        .iter()
        .find(|d| d.target.database == database)
        .unwrap_or_else(|| panic!("no entry for {database}"));
    match &db.result {
        Ok(done) => done.archive.clone(),
        Err(e) => panic!("backup of {database}: {:?}: {e}", e.kind()),
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn problems(error: &Error) -> Vec<String> {
    match error {
        Error::BackupVerification { problems, .. } => problems.clone(),
        other => panic!(
            "expected a failed verification, got {:?}: {other}",
            other.kind()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

per_version!(
    /// Two projects (PostGIS on 15): one archive each, made as each project's role (the server
    /// log shows every table read by its owner, none by master); verify restores each as a
    /// throw-away role and records success; truncated and byte-flipped archives fail with the
    /// checks that caught them, and leave no scratch database or role behind.
    fn two_projects_back_up_as_their_own_roles_and_verify(sandbox) {
        require_client(sandbox);
        let dir = tempfile::tempdir().unwrap();
        let mut master = provisioner(sandbox);
        let shop_pgpass = dir.path().join("shop.pgpass");
        let blog_env = dir.path().join("blog.env");
        provision(&mut master, "shop", &extensions_for(sandbox), CredentialSink::Pgpass(shop_pgpass.clone()));
        provision(&mut master, "blog", &[Extension::Hstore], CredentialSink::EnvFile(blog_env.clone()));
        let text = inventory_text(
            sandbox,
            dir.path(),
            &[
                TestProject { name: "shop", extensions: extensions_for(sandbox), sink: format!("{{ pgpass = {:?} }}", shop_pgpass.display().to_string()) },
                TestProject { name: "blog", extensions: vec![Extension::Hstore], sink: format!("{{ env_file = {:?} }}", blog_env.display().to_string()) },
            ],
            "",
        );
        let inventory = load(&text);
        fill(&inventory, sandbox, "shop", 1000, "shop-marker");
        fill(&inventory, sandbox, "blog", 321, "blog-marker");

        let mark = log_mark(sandbox);
        let options = BackupRunOptions::new(sandbox.client_options());
        let mut events = Vec::new();
        let run = ok(
            backup::run_with(&inventory, &options, &mut |e| events.push(format!("{e:?}").chars().take(20).collect::<String>())),
            "backup run",
        );
        assert!(run.succeeded(), "{:?}", run.databases);
        assert_eq!(run.databases.len(), 2);
        assert!(events.iter().any(|e| e.starts_with("Dumping")), "{events:?}");
        let copies = copies_since(sandbox, mark);
        for (table_owner, expected) in [("shop", "shop@shop"), ("blog", "blog@blog")] {
            let reads: Vec<_> = copies.iter().filter(|(_, who)| who.ends_with(&format!("@{table_owner}"))).collect();
            assert!(!reads.is_empty(), "no dump of {table_owner} in the log: {copies:?}");
            assert!(reads.iter().all(|(kind, who)| kind == "dump" && who == expected), "{reads:?}");
        }
        let master_user = sandbox.master_user();
        let log = sandbox.log_text().unwrap();
        assert!(
            !log[mark..].lines().any(|l| l.contains(&format!("{master_user}@shop")) || l.contains(&format!("{master_user}@blog"))),
            "master connected to a project database during the backup"
        );

        for (db, rows) in [("shop", 1000i64), ("blog", 321)] {
            let archive = only_archive(&run, db);
            let m = &archive.manifest;
            assert_eq!((m.client.as_str(), m.instance.as_str(), m.database.as_str(), m.role.as_str()), ("acme", "sandbox", db, db));
            assert_eq!(archive.path.parent().unwrap(), dir.path().join("backups/acme/sandbox").join(db));
            assert!(archive.path.file_name().unwrap().to_string_lossy().ends_with(".dump"));
            #[cfg(unix)]
            {
                assert_eq!(mode(&archive.path), 0o600);
                assert_eq!(mode(&archive.manifest_path), 0o600);
                assert_eq!(mode(archive.path.parent().unwrap()), 0o700);
            }
            assert_eq!(backup::archive_digest(&archive.path).unwrap(), (m.sha256.clone(), m.bytes));
            assert_eq!(m.server_version, rds_pg_core::connect(&sandbox.master_options()).map(|mut c| ServerVersion::query(&mut c).unwrap().to_string()).unwrap());
            assert!(m.toc["TABLE"] >= 2 && m.toc["TABLE DATA"] >= 2 && m.toc["INDEX"] >= 1, "{:?}", m.toc);
            let notes = m.tables.iter().find(|t| t.table == "notes").expect("notes in the manifest");
            assert_eq!(notes.rows, Some(rows));
            assert_eq!(notes.estimated_rows, Some(rows), "reltuples after ANALYZE");
            assert!(m.extensions.contains(&"hstore".to_owned()), "{:?}", m.extensions);
            assert_eq!(m.verification.state, VerificationState::Unverified);
            assert!(m.finished_at >= m.started_at);
        }
        if sandbox.has_postgis() {
            let shop = only_archive(&run, "shop");
            assert!(shop.manifest.extensions.contains(&"postgis".to_owned()));
            assert_eq!(shop.manifest.tables.iter().find(|t| t.table == "places").unwrap().rows, Some(50));
        }

        // Verify: each newest archive, restored as a throw-away role.
        let mark = log_mark(sandbox);
        let verified = ok(backup::verify(&inventory, &BackupVerifyOptions::new(sandbox.client_options())), "verify");
        for v in &verified.archives {
            assert!(v.succeeded(), "{}: {:?}", v.label, v.result);
            assert!(v.recorded);
            let m = &v.archive.as_ref().unwrap().manifest;
            assert_eq!(m.verification.state, VerificationState::Verified);
            assert!(m.verification.problems.is_empty());
            assert_eq!(Archive::read(&v.archive.as_ref().unwrap().manifest_path).unwrap().manifest.verification.state, VerificationState::Verified);
            assert!(v.tables.iter().all(|t| t.matches()), "{:?}", v.tables);
            assert!(v.cleanup.as_ref().unwrap().succeeded());
        }
        assert_eq!(verified.archives.len(), 2);
        let restores: Vec<_> = copies_since(sandbox, mark).into_iter().filter(|(k, _)| k == "restore").collect();
        assert!(!restores.is_empty());
        for (_, who) in &restores {
            let (user, db) = who.split_once('@').unwrap();
            assert!(user.starts_with(SCRATCH_PREFIX) && user == db, "restored as {who}, not a throw-away role");
        }
        assert_eq!(leftovers(sandbox), Vec::<String>::new());

        // Damage: a truncated archive, then one with flipped bytes.
        let shop = only_archive(&run, "shop");
        let bytes = std::fs::read(&shop.path).unwrap();
        std::fs::write(&shop.path, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let blog = only_archive(&run, "blog");
        let mut flipped = std::fs::read(&blog.path).unwrap();
        let at = flipped.len() * 3 / 4;
        for b in &mut flipped[at..at + 16] {
            *b ^= 0x5a;
        }
        std::fs::write(&blog.path, &flipped).unwrap();
        for archive in [&shop, &blog] {
            let options = BackupVerifyOptions::new(sandbox.client_options()).archive(&archive.path);
            let report = ok(backup::verify(&inventory, &options), "verify a damaged archive");
            assert!(!report.succeeded());
            let v = &report.archives[0];
            let found = problems(v.result.as_ref().unwrap_err());
            assert!(found[0].contains("changed since it was written"), "{found:?}");
            assert!(found.iter().any(|p| p.contains("does not restore") || p.contains("table of contents cannot be read")), "{found:?}");
            assert!(v.recorded);
            let recorded = Archive::read(&archive.manifest_path).unwrap().manifest.verification;
            assert_eq!(recorded.state, VerificationState::Failed);
            assert_eq!(recorded.problems, found);
            assert!(v.result.as_ref().unwrap_err().to_string().contains("failed verification"));
            assert_eq!(leftovers(sandbox), Vec::<String>::new(), "a failed verification leaves nothing behind");
        }
    }
);

per_version!(
    /// A project whose credentials are missing fails alone, with a typed error naming where
    /// they were expected; a command sink without read_command says it cannot be read back; one
    /// with read_command is read through it.
    fn missing_credentials_fail_alone(sandbox) {
        require_client(sandbox);
        let dir = tempfile::tempdir().unwrap();
        let mut master = provisioner(sandbox);
        let good = dir.path().join("good.pgpass");
        let vault = dir.path().join("vault.json");
        provision(&mut master, "good", &[], CredentialSink::Pgpass(good.clone()));
        provision(&mut master, "gone", &[], CredentialSink::Pgpass(dir.path().join("gone.pgpass")));
        // A command sink that stores the JSON it receives; read back with `cat`.
        let store = ["sh".to_owned(), "-c".to_owned(), format!("cat > {}", vault.display())];
        provision(&mut master, "vaulted", &[], CredentialSink::command(store.clone()));
        let unread_store = ["sh".to_owned(), "-c".to_owned(), format!("cat > {}/unread.json", dir.path().display())];
        provision(&mut master, "unread", &[], CredentialSink::command(unread_store.clone()));
        let missing = dir.path().join("elsewhere.pgpass");
        let text = inventory_text(
            sandbox,
            dir.path(),
            &[
                TestProject { name: "good", extensions: vec![], sink: format!("{{ pgpass = {:?} }}", good.display().to_string()) },
                TestProject { name: "gone", extensions: vec![], sink: format!("{{ pgpass = {:?} }}", missing.display().to_string()) },
                TestProject { name: "vaulted", extensions: vec![], sink: format!("{{ command = {store:?}, read_command = [\"cat\", {:?}] }}", vault.display().to_string()) },
                TestProject { name: "unread", extensions: vec![], sink: format!("{{ command = {unread_store:?} }}") },
            ],
            "",
        );
        let inventory = load(&text);
        let run = ok(backup::run(&inventory, &BackupRunOptions::new(sandbox.client_options())), "backup run");
        assert!(!run.succeeded());
        let by_name = |n: &str| run.databases.iter().find(|d| d.target.database == n).unwrap();
        assert!(by_name("good").result.is_ok(), "{:?}", by_name("good").result);
        assert!(by_name("vaulted").result.is_ok(), "{:?}", by_name("vaulted").result);
        let e = by_name("gone").result.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        match e {
            Error::MissingCredentials { role, expected, reason } => {
                assert_eq!(role, "gone");
                assert_eq!(expected, &format!("password file \"{}\"", missing.display()));
                assert!(reason.contains("does not exist"), "{reason}");
            }
            other => panic!("expected MissingCredentials, got {other:?}"),
        }
        assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
        let e = by_name("unread").result.as_ref().unwrap_err();
        assert!(matches!(e, Error::MissingCredentials { .. }), "{e:?}");
        assert!(e.to_string().contains("read_command"), "{e}");
        // The failures left no archive.
        for db in ["gone", "unread"] {
            assert!(!dir.path().join("backups/acme/sandbox").join(db).exists() || std::fs::read_dir(dir.path().join("backups/acme/sandbox").join(db)).unwrap().next().is_none());
        }
        // A pgpass file without the role's line names the line it looked for.
        std::fs::write(&missing, "127.0.0.1:1:gone:gone:nope\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let only = BackupRunOptions::new(sandbox.client_options()).selection(Selection { project: Some("gone".into()), ..Selection::all() });
        let run = ok(backup::run(&inventory, &only), "backup run gone");
        let e = run.databases[0].result.as_ref().unwrap_err();
        assert!(e.to_string().contains(&format!("no line matches 127.0.0.1:{}:gone:gone", sandbox.port())), "{e}");
    }
);

per_version!(
    /// An archive encrypted to an age key: the file holds neither a row value nor the names and
    /// comments its plaintext would show; it verifies (and restores) with the identity, and not
    /// without it.
    fn encrypted_archive_restores_and_holds_no_plaintext(sandbox) {
        require_client(sandbox);
        let dir = tempfile::tempdir().unwrap();
        let mut master = provisioner(sandbox);
        let pgpass = dir.path().join("shop.pgpass");
        provision(&mut master, "shop", &[Extension::Hstore], CredentialSink::Pgpass(pgpass.clone()));
        let identity = dir.path().join("backup-key.txt");
        let key = age_keygen(&identity);
        let uploads = dir.path().join("bucket");
        std::fs::create_dir(&uploads).unwrap();
        let extra = format!(
            "backup_encrypt_to = [{key:?}]\nbackup_upload = [\"sh\", \"-c\", \"cat > {}/$0\", \"{{client}}-{{database}}-{{file}}\"]",
            uploads.display()
        );
        let sink = format!("{{ pgpass = {:?} }}", pgpass.display().to_string());
        let text = inventory_text(sandbox, dir.path(), &[TestProject { name: "shop", extensions: vec![Extension::Hstore], sink }], &extra);
        let inventory = load(&text);
        let marker = "Zanzibar-4711-unique-row-value";
        fill(&inventory, sandbox, "shop", 5000, marker);

        let run = ok(backup::run(&inventory, &BackupRunOptions::new(sandbox.client_options())), "encrypted backup");
        assert!(run.succeeded(), "{:?}", run.databases);
        let archive = only_archive(&run, "shop");
        assert!(archive.path.to_string_lossy().ends_with(".dump.age"), "{}", archive.path.display());
        let stored = std::fs::read(&archive.path).unwrap();
        assert!(stored.starts_with(b"age-encryption.org/v1\n"));
        for plain in [marker, "comment Zanzibar", "notes", "empty_one", "PGDMP"] {
            assert!(!contains(&stored, plain.as_bytes()), "the encrypted archive shows {plain:?}");
        }
        let m = &archive.manifest;
        assert_eq!(m.encryption.as_ref().unwrap().recipients, vec![key.clone()]);
        assert!(m.toc["TABLE DATA"] >= 2, "{:?}", m.toc);
        assert_eq!(m.tables.iter().find(|t| t.table == "notes").unwrap().rows, Some(5000));
        assert_eq!(backup::archive_digest(&archive.path).unwrap(), (m.sha256.clone(), m.bytes));
        // Uploaded: the archive as stored, then its manifest.
        let name = archive.path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(std::fs::read(uploads.join(format!("acme-shop-{name}"))).unwrap(), stored);
        let manifest_name = archive.manifest_path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(uploads.join(format!("acme-shop-{manifest_name}")).is_file());
        let recorded = Archive::read(&archive.manifest_path).unwrap().manifest;
        assert!(recorded.upload.as_ref().unwrap().uploaded, "{:?}", recorded.upload);

        // The same database unencrypted shows the comment in its table of contents: the
        // absence above is the encryption's doing.
        let plain = ok(backup::run(&inventory, &BackupRunOptions::new(sandbox.client_options())
            .root(dir.path().join("plain")).encrypt_to(Vec::new()).skip_upload(true)), "plain backup");
        let plain = only_archive(&plain, "shop");
        assert!(contains(&std::fs::read(&plain.path).unwrap(), b"comment Zanzibar"));

        // Without the identity: refused before anything is created; with it: verified.
        let base = BackupVerifyOptions::new(sandbox.client_options());
        let report = ok(backup::verify(&inventory, &base), "verify without identity");
        let e = report.archives[0].result.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("--identity"), "{e}");
        assert!(!report.archives[0].recorded);
        let identities = Identities::from_file(&identity).unwrap();
        let report = ok(backup::verify(&inventory, &base.clone().identities(identities.clone())), "verify with identity");
        let v = &report.archives[0];
        assert!(v.succeeded(), "{:?}", v.result);
        assert_eq!(v.tables.iter().find(|t| t.table == "notes").unwrap().restored, Some(5000));
        assert_eq!(leftovers(sandbox), Vec::<String>::new());

        // A restore of the encrypted archive into another project's database, decrypted on the
        // way: the marker row is there.
        provision(&mut master, "copy", &[Extension::Hstore], CredentialSink::Pgpass(pgpass.clone()));
        let copy = sandbox.options_for("copy").passfile(&pgpass).dbname("copy");
        let restored = ok(backup::with_decrypted(&archive.path, &identities, |path| {
            rds_pg_core::restore(&rds_pg_core::RestoreOptions::new(copy.clone(), path))
        }), "restore through the decrypting pipe");
        assert!(restored.entries_restored > 0);
        let mut c = ok(login_as_application(&copy), "login as copy");
        let n: i64 = c.query_one("SELECT count(*) FROM notes WHERE body = $1", &[&marker]).unwrap().get(0);
        assert_eq!(n, 1);

        // A failing upload is reported for its database; the archive and manifest stay.
        let failing = UploadCommand::new(["sh", "-c", "cat >/dev/null; echo 'AccessDenied: bucket' >&2; exit 1"]).unwrap();
        let run = ok(backup::run(&inventory, &BackupRunOptions::new(sandbox.client_options())
            .root(dir.path().join("failing")).upload(failing)), "backup with a failing upload");
        assert!(!run.succeeded());
        let db = &run.databases[0];
        let done = db.result.as_ref().expect("the archive is made");
        let e = db.upload.as_ref().unwrap().as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Tool);
        assert!(e.to_string().contains("AccessDenied"), "{e}");
        let recorded = Archive::read(&done.archive.manifest_path).unwrap().manifest.upload.unwrap();
        assert!(!recorded.uploaded && recorded.error.unwrap().contains("AccessDenied"));
        assert!(done.archive.path.is_file());

        // Another key cannot open it.
        let other = dir.path().join("other-key.txt");
        age_keygen(&other);
        let e = backup::with_decrypted(&archive.path, &Identities::from_file(&other).unwrap(), |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("no identity in"), "{e}");
    }
);

/// Writes a new age identity to `path` (as `age-keygen -o` does) and returns its recipient.
fn age_keygen(path: &Path) -> String {
    use secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    std::fs::write(
        path,
        format!(
            "# public key: {public}\n{}\n",
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    Recipient::parse(&public).unwrap();
    public
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
