//! Hostile projects (issue 11): a project's role is in an attacker's hands. It plants objects that
//! shadow every `pg_catalog` function, aggregate, operator, relation and type that rds-pg's own
//! SQL uses (the census reads them from the statement log), wherever a master session could
//! resolve a name: `public` of its own database (with `public` first on the database's search
//! path) and, on PostgreSQL 14 and older, `public` of `postgres` and `template1`. A second role,
//! the squatter, has no database at all and plants in `postgres` and `template1` only. The census
//! and the set-up of the hostile project run on a secured instance (`secure_instance`: rds-pg
//! refuses to copy an open `template1`); before planting, `postgres` and `template1` are opened
//! to PUBLIC again, as RDS delivers a 13 or 14 instance, and `secure_instance` is one of the
//! steps attacked.
//!
//! Then every operation of the library runs as master, on the hostile project and on clean ones,
//! and each step is checked: no planted object ran as anyone but its planter (the server log
//! keeps the recorder's warning even when a transaction rolled back), the planters' attributes
//! and memberships are unchanged, databases created for other projects hold nothing of theirs,
//! and every refusal is a typed error. Findings are collected and asserted at the end, so a run
//! lists every attack that worked.

use std::path::Path;
use std::time::Instant;

use rds_pg_core::connect::ServerVersion;
use rds_pg_core::dump::{restore_with, tools, ClientProgram};
use rds_pg_core::{
    dump, restore, verify_backup, DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions,
    DumpOptions, ErrorKind, Extension, Password, Provisioner, ReadOnlyGrant, RestoreOptions,
    RoleName, UserSpec, VerifyOptions,
};
use rds_pg_tests::hostile::census::{self, Census};
use rds_pg_tests::hostile::plant::{PlantKind, PlantSet};
use rds_pg_tests::hostile::{self, admin, log, Attack, Expect, Planter};
use rds_pg_tests::{ok, per_version, provisioner, unsecured_provisioner, Sandbox};

/// Fewer names than this means the extractor is broken, not that rds-pg uses so few.
const CENSUS_MINIMUM: usize = 10;

const POLICY: Expect = Expect::Refused("policy_violation");

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn role(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

fn db(name: &str) -> DatabaseName {
    DatabaseName::new(name).unwrap()
}

/// Whether pg_dump and pg_restore for this server exist here (as `dump.rs` decides: a client at
/// least as new as the server).
fn has_dump_tools(sandbox: &Sandbox) -> bool {
    let server = ServerVersion(sandbox.major_version() * 10000);
    tools::find(ClientProgram::PgDump, server, None).is_ok()
        && tools::find(ClientProgram::PgRestore, server, None).is_ok()
}

fn extensions(sandbox: &Sandbox) -> Vec<Extension> {
    let mut e = vec![Extension::Hstore];
    if sandbox.has_postgis() {
        e.push(Extension::Postgis);
    }
    e
}

/// Creates a login role through rds-pg and returns its login options.
fn project_user(
    sandbox: &Sandbox,
    rds: &mut Provisioner,
    name: &str,
) -> rds_pg_core::ConnectOptions {
    let password = Password::new(format!("{name}-Secr3t-pw"));
    ok(
        rds.ensure_user(&UserSpec::new(name).unwrap().password(password.clone())),
        &format!("ensure_user {name}"),
    );
    sandbox.options_for(name).password(password)
}

/// Runs every operation of the library once as master for a clean project and returns the
/// census of the names master's statements resolved.
fn library_census(sandbox: &Sandbox) -> Census {
    let tmp = tempfile::tempdir().unwrap();
    let mark = log::mark(sandbox);
    // Securing the instance is part of the census (provisioner runs secure_instance).
    let mut rds = provisioner(sandbox);
    ok(rds.plan_secure_instance(), "plan_secure_instance");
    let spec = UserSpec::new("census").unwrap();
    ok(rds.plan_ensure_user(&spec), "plan_ensure_user");
    let owner = project_user(sandbox, &mut rds, "census");
    project_user(sandbox, &mut rds, "census_ro");
    let dbspec = DatabaseSpec::new("census", "census")
        .unwrap()
        .extensions(extensions(sandbox));
    ok(rds.plan_ensure_database(&dbspec), "plan_ensure_database");
    ok(rds.ensure_database(&dbspec), "ensure_database");
    hostile::pinned(&owner.for_database("census"))
        .batch_execute(
            "CREATE TABLE public.t (id int PRIMARY KEY, v text);
             INSERT INTO public.t SELECT g, g::text FROM generate_series(1, 10) g;
             CREATE SEQUENCE public.s;",
        )
        .unwrap();
    let exts = [Extension::Hstore, Extension::Citext];
    ok(
        rds.plan_ensure_extensions(&db("census"), &exts),
        "plan_ensure_extensions",
    );
    ok(
        rds.ensure_extensions(&db("census"), &exts),
        "ensure_extensions",
    );
    let grant = ReadOnlyGrant::new("census", "census_ro").unwrap();
    ok(rds.plan_grant_read_only(&grant), "plan_grant_read_only");
    ok(rds.grant_read_only(&grant), "grant_read_only");
    ok(rds.plan_revoke_read_only(&grant), "plan_revoke_read_only");
    ok(rds.revoke_read_only(&grant), "revoke_read_only");
    ok(rds.grant_read_only(&grant), "grant_read_only again");
    ok(
        rds.plan_rotate_password(&role("census"), None),
        "plan_rotate_password",
    );
    let new_password = Password::new("census-rotated-pw");
    ok(
        rds.rotate_password(&role("census"), Some(new_password.clone())),
        "rotate_password",
    );
    let owner = owner.password(new_password);
    let mut copies = Vec::new();
    if has_dump_tools(sandbox) {
        let archive = tmp.path().join("census.dump");
        ok(
            dump(&DumpOptions::new(owner.for_database("census"), &archive)),
            "dump",
        );
        ok(
            rds.ensure_database(
                &DatabaseSpec::new("census_copy", "census")
                    .unwrap()
                    .extensions(extensions(sandbox))
                    .extension(Extension::Citext),
            ),
            "ensure_database census_copy",
        );
        ok(
            restore(&RestoreOptions::new(
                owner.for_database("census_copy"),
                &archive,
            )),
            "restore",
        );
        ok(
            rds.ensure_database(&DatabaseSpec::new("census_bare", "census").unwrap()),
            "ensure_database census_bare",
        );
        ok(
            restore_with(
                &RestoreOptions::new(owner.for_database("census_bare"), &archive)
                    .create_extensions(extensions(sandbox))
                    .create_extensions([Extension::Citext]),
                Some(&mut rds),
                &mut |_| {},
            ),
            "restore_with master (creates the extensions named)",
        );
        ok(
            verify_backup(
                &mut rds,
                &VerifyOptions::new(owner.for_database("census"), &archive),
            ),
            "verify_backup",
        );
        copies = vec!["census_copy", "census_bare"];
    }
    // census_ro still holds privileges in census: drop_user cleans them there.
    let no = DropUserOptions::new();
    ok(
        rds.plan_drop_user(&role("census_ro"), &no),
        "plan_drop_user",
    );
    ok(
        rds.drop_user(&role("census_ro"), &no),
        "drop_user census_ro",
    );
    // A session still connected: drop_database with force ends it.
    let _session = hostile::pinned(&owner.for_database("census"));
    let force = DropDatabaseOptions::new().force(true);
    ok(
        rds.plan_drop_database(&db("census"), &force),
        "plan_drop_database",
    );
    for d in std::iter::once("census").chain(copies) {
        ok(rds.drop_database(&db(d), &force), "drop_database");
    }
    let heir = project_user(sandbox, &mut rds, "census_heir");
    drop(heir);
    let reassign = DropUserOptions::new().reassign_to("census_heir").unwrap();
    ok(
        rds.plan_drop_user(&role("census"), &reassign),
        "plan_drop_user reassign",
    );
    ok(
        rds.drop_user(&role("census"), &reassign),
        "drop_user census",
    );
    ok(
        rds.drop_user(&role("census_heir"), &no),
        "drop_user census_heir",
    );
    drop(rds);

    let entries = log::entries_since(sandbox, mark);
    let census = census::census(
        &mut admin(sandbox, "postgres"),
        &entries,
        sandbox.master_user(),
    );
    eprintln!("census: {census}");
    assert!(
        census.routine_count() >= CENSUS_MINIMUM,
        "the census found only {} functions, aggregates and operators in {} statements: the \
         extractor is broken\n{census}",
        census.routine_count(),
        census.statements
    );
    census
}

/// Generates the planted set for `planter` (views only for relations it can read).
fn plant_set(sandbox: &Sandbox, census: &Census, planter: &str) -> PlantSet {
    let mut check = admin(sandbox, "postgres");
    let readable: std::collections::BTreeSet<String> = census
        .relations
        .iter()
        .filter(|rel| {
            check
                .query_one(
                    "SELECT has_table_privilege($1, 'pg_catalog.' || quote_ident($2), 'SELECT')",
                    &[&planter, rel],
                )
                .unwrap()
                .get(0)
        })
        .cloned()
        .collect();
    let set = PlantSet::generate(&mut admin(sandbox, "postgres"), census, &|rel| {
        readable.contains(rel)
    });
    eprintln!("planted set for {planter}: {:?}", set.counts());
    set
}

/// Plants the set as `planter` in `databases` (`own` is its own), asserts that the objects exist
/// and that unpinned master sessions there are captured by every plant that can capture them.
fn plant_and_prove(
    sandbox: &Sandbox,
    planter: &Planter,
    set: &PlantSet,
    own: Option<&str>,
    shared: &[&str],
) {
    for (database, is_own) in own
        .iter()
        .map(|d| (*d, true))
        .chain(shared.iter().map(|d| (*d, false)))
    {
        hostile::plant(planter, set, database, is_own)
            .unwrap_or_else(|e| panic!("{} planting in {database}: {e}", planter.role));
        let (functions, operators, relations) =
            hostile::planted_counts(sandbox, database, &planter.role);
        eprintln!(
            "{} planted in {database}: {functions} functions, {operators} operators, \
             {relations} relations",
            planter.role
        );
        let counts = set.counts();
        let expected = |k| *counts.get(&k).unwrap_or(&0) as i64;
        assert!(
            functions >= expected(PlantKind::Function) + 3 * expected(PlantKind::Aggregate)
                && operators >= expected(PlantKind::Operator)
                && relations > expected(PlantKind::Relation)
                && !set.plants.is_empty(),
            "the plants of {} in {database} are missing: {functions} functions, {operators} \
             operators, {relations} relations for {counts:?}",
            planter.role
        );
        if is_own {
            assert_eq!(
                hostile::database_search_path(sandbox, database).as_deref(),
                Some("search_path=public, pg_catalog"),
                "the owner put public first on its database's search path"
            );
        }
        let probe = hostile::probe(sandbox, set, database, &planter.role, is_own);
        eprintln!("{probe}");
        assert!(
            probe.captured > 0 && probe.missed.is_empty(),
            "{probe}; these plants did not capture: {:?}",
            probe.missed
        );
    }
}

/// On 15+ nobody but master may create in `public` of `postgres` and `template1`: the planter
/// tries and is refused.
fn assert_shared_schemas_closed(sandbox: &Sandbox, planter: &Planter) {
    for database in ["postgres", "template1"] {
        let e = hostile::try_create_in_public(planter, database)
            .expect_err("PostgreSQL 15+ lets no other role create in public");
        assert_eq!(
            e.code(),
            Some(&rds_pg_core::SqlState::INSUFFICIENT_PRIVILEGE),
            "{database}: {e}"
        );
        assert!(!hostile::may_create_in_public(
            sandbox,
            database,
            &planter.role
        ));
    }
}

/// Whether `text` names one of the planted objects and their owner.
fn names_plants_and_owner(text: &str, set: &PlantSet, planter: &str) -> bool {
    text.contains(planter) && hostile::names_a_plant(text, set)
}

/// A clean project created while planters are around: `victim` (with `victim_ro`), its database
/// from the default template, extensions, read-only access, a new password. On 14 and older the
/// default template is `template1`: when planters put objects there, `ensure_database` must
/// refuse with the SQL that cleans it; the test runs that SQL as master and tries again.
fn clean_project(
    sandbox: &Sandbox,
    attack: &mut Attack,
    rds: &mut Provisioner,
    set: &PlantSet,
    planters: &[&str],
    template1_planted: bool,
) {
    attack.lib("ensure_user(victim)", Expect::Ok, || {
        rds.ensure_user(
            &UserSpec::new("victim")
                .unwrap()
                .password(Password::new("victim-pw-1")),
        )
    });
    attack.lib("ensure_user(victim_ro)", Expect::Ok, || {
        rds.ensure_user(&UserSpec::new("victim_ro").unwrap())
    });
    let spec = DatabaseSpec::new("victim", "victim")
        .unwrap()
        .extensions(extensions(sandbox));
    if template1_planted {
        let plan = attack.lib(
            "plan_ensure_database(victim) from a template1 holding planted objects",
            POLICY,
            || rds.plan_ensure_database(&spec),
        );
        drop(plan);
        let refused = attack.lib(
            "ensure_database(victim) from a template1 holding planted objects",
            POLICY,
            || rds.ensure_database(&spec),
        );
        if let Some(Err(e)) = refused {
            if e.kind() == ErrorKind::PolicyViolation {
                let message = e.to_string();
                for p in planters {
                    if !names_plants_and_owner(&message, set, p) {
                        attack.finding(format!(
                            "ensure_database(victim): the refusal does not list {p}'s objects: \
                             {message}"
                        ));
                    }
                }
                match e.hint() {
                    None => attack.finding(format!(
                        "ensure_database(victim): the refusal carries no cleaning SQL: {message}"
                    )),
                    Some(sql) => {
                        if !hostile::closes_public_create(sql) {
                            attack.finding(format!(
                                "ensure_database(victim): the cleaning SQL does not close \
                                 CREATE on template1.public: {sql}"
                            ));
                        }
                        // The operator runs the printed SQL as master in template1.
                        let mut t1 = hostile::pinned(&sandbox.master_options().dbname("template1"));
                        let ran = hostile::run_fix(&mut t1, sql);
                        drop(t1);
                        if let Err(failures) = &ran {
                            attack.finding(format!(
                                "the cleaning SQL fails as master in template1: {failures}"
                            ));
                        }
                        let left = hostile::objects_owned_by(sandbox, "template1", planters);
                        if !left.is_empty() {
                            attack.finding(format!(
                                "the cleaning SQL left {} objects in template1: {:?}",
                                left.len(),
                                &left[..left.len().min(5)]
                            ));
                        }
                        if ran.is_err() || !left.is_empty() {
                            // Found already; clean it so that the steps after it still run.
                            hostile::clean_template1_as_superuser(sandbox, planters);
                        }
                        for p in planters {
                            if hostile::may_create_in_public(sandbox, "template1", p) {
                                attack.finding(format!(
                                    "after the cleaning SQL {p} may still create in \
                                     template1.public"
                                ));
                            }
                        }
                        attack.lib(
                            "ensure_database(victim) after cleaning template1",
                            Expect::Ok,
                            || rds.ensure_database(&spec),
                        );
                    }
                }
            }
        }
    } else {
        attack.lib("plan_ensure_database(victim)", Expect::Ok, || {
            rds.plan_ensure_database(&spec)
        });
        attack.lib("ensure_database(victim)", Expect::Ok, || {
            rds.ensure_database(&spec)
        });
    }
    if hostile::database_exists(sandbox, "victim") {
        let owned = hostile::objects_owned_by(sandbox, "victim", planters);
        if !owned.is_empty() {
            attack.finding(format!(
                "the database created for victim holds {} objects of {}: {:?}…",
                owned.len(),
                planters.join("/"),
                &owned[..owned.len().min(5)]
            ));
        }
        attack.lib("ensure_extensions(victim, citext)", Expect::Ok, || {
            rds.ensure_extensions(&db("victim"), &[Extension::Citext])
        });
        let grant = ReadOnlyGrant::new("victim", "victim_ro").unwrap();
        attack.lib(
            "plan_grant_read_only(victim → victim_ro)",
            Expect::Ok,
            || rds.plan_grant_read_only(&grant),
        );
        attack.lib("grant_read_only(victim → victim_ro)", Expect::Ok, || {
            rds.grant_read_only(&grant)
        });
        attack.lib("revoke_read_only(victim → victim_ro)", Expect::Ok, || {
            rds.revoke_read_only(&grant)
        });
    }
    attack.lib("rotate_password(victim)", Expect::Ok, || {
        rds.rotate_password(&role("victim"), None)
    });
}

/// `plan_secure_instance` and `secure_instance` while the planters' objects are still in
/// `postgres` (and wherever else they planted): they run, and afterwards no planter may create in
/// `public` of `postgres` or `template1`.
fn secure_instance(
    sandbox: &Sandbox,
    attack: &mut Attack,
    rds: &mut Provisioner,
    planters: &[&str],
) {
    attack.lib("plan_secure_instance", Expect::Ok, || {
        rds.plan_secure_instance()
    });
    attack.lib("secure_instance", Expect::Ok, || rds.secure_instance());
    for database in ["postgres", "template1"] {
        for p in planters {
            if hostile::may_create_in_public(sandbox, database, p) {
                attack.finding(format!(
                    "after secure_instance {p} may still create in {database}.public"
                ));
            }
        }
    }
}

/// Dump, restore and verification around a project `owner` owning `database`: the dump and
/// the owner's restore work; a restore as master is refused before pg_restore starts, also
/// when master is a member of the owner.
fn archives(
    sandbox: &Sandbox,
    attack: &mut Attack,
    rds: &mut Provisioner,
    owner: &Planter,
    database: &str,
) {
    if !has_dump_tools(sandbox) {
        eprintln!(
            "no pg_dump for PostgreSQL {}: archives skipped",
            sandbox.major_version()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join(format!("{database}.dump"));
    let dumped = attack.lib(
        &format!("dump({database}) as {}", owner.role),
        Expect::Ok,
        || {
            dump(&DumpOptions::new(
                owner.options.for_database(database),
                &archive,
            ))
        },
    );
    if !matches!(dumped, Some(Ok(_))) {
        return;
    }
    restore_as_master(
        sandbox,
        attack,
        &archive,
        database,
        "into the project's own database",
    );
    // The same extensions as the source, so that only the role can make it refuse.
    let extensions: Vec<Extension> = hostile::installed_extensions(sandbox, database)
        .iter()
        .map(|e| Extension::from_name(e).unwrap())
        .collect();
    let copy_m = format!("{database}_copy_m");
    attack.lib(&format!("ensure_database({copy_m})"), Expect::Ok, || {
        rds.ensure_database(
            &DatabaseSpec::new(copy_m.as_str(), owner.role.as_str())
                .unwrap()
                .extensions(extensions.clone()),
        )
    });
    // As many RDS set-ups have it: master a member of the project role.
    hostile::grant_as_admin(attack.admin(), &owner.role, sandbox.master_user());
    restore_as_master(
        sandbox,
        attack,
        &archive,
        &copy_m,
        &format!("while master is a member of {}", owner.role),
    );
    hostile::revoke_as_admin(attack.admin(), &owner.role, sandbox.master_user());
    let copy = format!("{database}_copy");
    attack.lib(&format!("ensure_database({copy})"), Expect::Ok, || {
        rds.ensure_database(&DatabaseSpec::new(copy.as_str(), owner.role.as_str()).unwrap())
    });
    // Extensions are created on the restore's behalf only when named, never from the archive.
    if !extensions.is_empty() {
        attack.lib(
            &format!("restore into {copy} as its owner, its extensions not named"),
            Expect::Refused("not_found"),
            || {
                restore_with(
                    &RestoreOptions::new(owner.options.for_database(&copy), &archive),
                    Some(&mut *rds),
                    &mut |_| {},
                )
            },
        );
        let created = hostile::installed_extensions(sandbox, &copy);
        if !created.is_empty() {
            attack.finding(format!(
                "restore into {copy} with no extension named created {created:?}"
            ));
        }
    }
    attack.lib(
        &format!("restore into {copy} as its owner (master creates the extensions named)"),
        Expect::Ok,
        || {
            restore_with(
                &RestoreOptions::new(owner.options.for_database(&copy), &archive)
                    .create_extensions(extensions.clone()),
                Some(&mut *rds),
                &mut |_| {},
            )
        },
    );
    attack.lib(&format!("verify_backup({database})"), Expect::Ok, || {
        verify_backup(
            rds,
            &VerifyOptions::new(owner.options.for_database(database), &archive),
        )
    });
    let force = DropDatabaseOptions::new().force(true);
    for d in [copy_m, copy] {
        attack.lib(&format!("drop_database({d})"), Expect::Ok, || {
            rds.drop_database(&db(&d), &force)
        });
    }
}

fn restore_as_master(
    sandbox: &Sandbox,
    attack: &mut Attack,
    archive: &Path,
    database: &str,
    when: &str,
) {
    let mark = log::mark(sandbox);
    attack.lib(
        &format!("restore as master into {database} ({when})"),
        POLICY,
        || {
            restore(&RestoreOptions::new(
                sandbox.master_options().dbname(database),
                archive,
            ))
        },
    );
    let started = log::entries_since(sandbox, mark)
        .iter()
        .any(|e| e.message.contains("application_name=pg_restore"));
    if started {
        attack.finding(format!(
            "restore as master into {database} ({when}): pg_restore ran"
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// The hostile project
// ---------------------------------------------------------------------------------------------

per_version!(
    fn a_hostile_project_gains_nothing_through_rds_pg(sandbox) {
        let v = sandbox.major_version();
        let started = Instant::now();
        // The census and the set-up run on a secured instance (provisioner secures it).
        let census = library_census(sandbox);
        eprintln!("census took {:?}", started.elapsed());
        let mut rds = provisioner(sandbox);
        let options = project_user(sandbox, &mut rds, "hostile");
        ok(
            rds.ensure_database(&DatabaseSpec::new("hostile", "hostile").unwrap()),
            "ensure_database hostile",
        );
        project_user(sandbox, &mut rds, "hostile_ro");
        drop(rds);
        // From here on, the instance as RDS delivers it: PUBLIC may create in public of
        // postgres and template1 on 14 and older.
        hostile::shared_public_schemas_open(sandbox, true);
        let mut planter = Planter { role: "hostile".into(), options };
        let set = plant_set(sandbox, &census, "hostile");
        let shared: &[&str] = if v <= 14 { &["postgres", "template1"] } else { &[] };
        plant_and_prove(sandbox, &planter, &set, Some("hostile"), shared);
        eprintln!("census, plants and probes took {:?}", started.elapsed());
        if v >= 15 {
            assert_shared_schemas_closed(sandbox, &planter);
        }

        let mut attack = Attack::new(sandbox, &["hostile"]);
        let Some(Ok(mut rds)) = attack.lib("Provisioner::connect", Expect::Ok, || {
            Provisioner::connect(&sandbox.master_options())
        }) else {
            attack.assert_clean();
            unreachable!("master could not connect, and that is a finding");
        };
        let hostile_spec = DatabaseSpec::new("hostile", "hostile").unwrap();
        let user_spec = UserSpec::new("hostile").unwrap();
        attack.lib("plan_ensure_user(hostile)", Expect::Ok, || rds.plan_ensure_user(&user_spec));
        attack.lib("ensure_user(hostile)", Expect::Ok, || rds.ensure_user(&user_spec));
        attack.lib("plan_ensure_database(hostile)", Expect::Ok, || {
            rds.plan_ensure_database(&hostile_spec)
        });
        attack.lib("ensure_database(hostile)", Expect::Ok, || rds.ensure_database(&hostile_spec));

        // Extensions into a schema the owner has written into.
        let hstore = [Extension::Hstore];
        let plan = attack.lib("plan_ensure_extensions(hostile, hstore)", Expect::Ok, || {
            rds.plan_ensure_extensions(&db("hostile"), &hstore)
        });
        if let Some(Ok(plan)) = plan {
            let notes = plan.notes.join("\n");
            if !hostile::names_a_plant(&notes, &set) {
                attack.finding(format!(
                    "plan_ensure_extensions(hostile, hstore): the plan's notes do not list the \
                     objects shadowing pg_catalog in public: {:?}",
                    plan.notes
                ));
            }
        }
        attack.lib("ensure_extensions(hostile, hstore) (trusted: as the owner)", Expect::Ok, || {
            rds.ensure_extensions(&db("hostile"), &hstore)
        });
        if sandbox.has_postgis() {
            let refused = attack.lib(
                "ensure_extensions(hostile, postgis) (untrusted: as master) into a public \
                 holding shadowing objects",
                POLICY,
                || rds.ensure_extensions(&db("hostile"), &[Extension::Postgis]),
            );
            if let Some(Err(e)) = refused {
                if e.kind() == ErrorKind::PolicyViolation
                    && !hostile::names_a_plant(&e.to_string(), &set)
                {
                    attack.finding(format!(
                        "ensure_extensions(hostile, postgis): the refusal does not list the \
                         shadowing objects: {e}"
                    ));
                }
            }
        }

        // Read-only access into the hostile database, a new password.
        let grant = ReadOnlyGrant::new("hostile", "hostile_ro").unwrap();
        attack.lib("plan_grant_read_only(hostile → hostile_ro)", Expect::Ok, || {
            rds.plan_grant_read_only(&grant)
        });
        attack.lib("grant_read_only(hostile → hostile_ro)", Expect::Ok, || {
            rds.grant_read_only(&grant)
        });
        attack.lib("plan_revoke_read_only(hostile → hostile_ro)", Expect::Ok, || {
            rds.plan_revoke_read_only(&grant)
        });
        attack.lib("revoke_read_only(hostile → hostile_ro)", Expect::Ok, || {
            rds.revoke_read_only(&grant)
        });
        attack.lib("plan_rotate_password(hostile)", Expect::Ok, || {
            rds.plan_rotate_password(&role("hostile"), None)
        });
        let rotated = Password::new("hostile-rotated-pw");
        if let Some(Ok(_)) = attack.lib("rotate_password(hostile)", Expect::Ok, || {
            rds.rotate_password(&role("hostile"), Some(rotated.clone()))
        }) {
            planter.options = planter.options.clone().password(rotated);
        }

        // Clean projects: their databases hold nothing of hostile.
        clean_project(sandbox, &mut attack, &mut rds, &set, &["hostile"], v <= 14);
        secure_instance(sandbox, &mut attack, &mut rds, &["hostile"]);

        // A privileged role is never a project role: user, owner or reader.
        privileged_roles_refused(&mut attack, &mut rds);

        archives(sandbox, &mut attack, &mut rds, &planter, "hostile");

        for database in std::iter::once("hostile").chain(shared.iter().copied()) {
            for row in hostile::recorded_rows(sandbox, database, "hostile") {
                attack.finding(format!("hostile_log in {database}: {row}"));
            }
        }

        // Teardown of everything.
        let force = DropDatabaseOptions::new().force(true);
        let no = DropUserOptions::new();
        attack.lib("plan_drop_database(hostile)", Expect::Ok, || {
            rds.plan_drop_database(&db("hostile"), &force)
        });
        for d in ["hostile", "victim"] {
            attack.lib(&format!("drop_database({d})"), Expect::Ok, || {
                rds.drop_database(&db(d), &force)
            });
        }
        attack.lib("plan_drop_user(hostile)", Expect::Ok, || {
            rds.plan_drop_user(&role("hostile"), &no)
        });
        for u in ["hostile_ro", "victim_ro", "victim"] {
            attack.lib(&format!("drop_user({u})"), Expect::Ok, || rds.drop_user(&role(u), &no));
        }
        attack.forget("hostile");
        attack.lib("drop_user(hostile) (owns objects wherever it planted)", Expect::Ok, || {
            rds.drop_user(&role("hostile"), &no)
        });
        attack.assert_clean();
    }
);

/// `hostile` with CREATEDB (given by the superuser), then through a chain to `pg_monitor`:
/// `ensure_user`, `ensure_database` and `grant_read_only` refuse it as user, owner and reader.
fn privileged_roles_refused(attack: &mut Attack, rds: &mut Provisioner) {
    let user_spec = UserSpec::new("hostile").unwrap();
    let owner_spec = DatabaseSpec::new("hostile", "hostile").unwrap();
    let reader = ReadOnlyGrant::new("victim", "hostile").unwrap();
    let cases = [
        (
            "with CREATEDB",
            "ALTER ROLE hostile CREATEDB",
            "ALTER ROLE hostile NOCREATEDB",
        ),
        (
            "a member of pg_monitor through hostile_chain",
            "CREATE ROLE hostile_chain NOLOGIN; GRANT pg_monitor TO hostile_chain; \
             GRANT hostile_chain TO hostile",
            "DROP ROLE hostile_chain",
        ),
    ];
    for (how, give, take) in cases {
        attack.admin().batch_execute(give).unwrap();
        attack.rebaseline("hostile");
        attack.lib(&format!("ensure_user(hostile {how})"), POLICY, || {
            rds.ensure_user(&user_spec)
        });
        attack.lib(
            &format!("ensure_database(hostile) owned by hostile {how}"),
            POLICY,
            || rds.ensure_database(&owner_spec),
        );
        attack.lib(
            &format!("grant_read_only(victim → hostile {how})"),
            POLICY,
            || rds.grant_read_only(&reader),
        );
        attack.admin().batch_execute(take).unwrap();
        attack.rebaseline("hostile");
    }
    // Whatever a wrongly accepted grant left (a step too: it runs master's SQL).
    attack.lib("revoke_read_only(victim → hostile)", Expect::Ok, || {
        rds.revoke_read_only(&reader)
    });
}

// ---------------------------------------------------------------------------------------------
// The squatter: a project role without a database
// ---------------------------------------------------------------------------------------------

per_version!(
    fn a_role_without_a_database_gains_nothing_through_rds_pg(sandbox) {
        let v = sandbox.major_version();
        // The instance as RDS delivers it.
        let mut rds = unsecured_provisioner(sandbox);
        let options = project_user(sandbox, &mut rds, "squatter");
        drop(rds);
        let mut planter = Planter { role: "squatter".into(), options };
        if v >= 15 {
            // Nowhere to plant: PUBLIC may not create in public of postgres or template1.
            assert_shared_schemas_closed(sandbox, &planter);
            return;
        }
        // The census secures the instance; open it again as RDS delivers it.
        let census = library_census(sandbox);
        hostile::shared_public_schemas_open(sandbox, true);
        let set = plant_set(sandbox, &census, "squatter");
        plant_and_prove(sandbox, &planter, &set, None, &["postgres", "template1"]);

        let mut attack = Attack::new(sandbox, &["squatter"]);
        let Some(Ok(mut rds)) = attack.lib("Provisioner::connect", Expect::Ok, || {
            Provisioner::connect(&sandbox.master_options())
        }) else {
            attack.assert_clean();
            unreachable!("master could not connect, and that is a finding");
        };
        clean_project(sandbox, &mut attack, &mut rds, &set, &["squatter"], true);
        secure_instance(sandbox, &mut attack, &mut rds, &["squatter"]);
        let victim = Planter {
            role: "victim".into(),
            options: sandbox.options_for("victim"),
        };
        // rotate_password(victim) set a generated one: give it a known one for the archives.
        let known = Password::new("victim-pw-2");
        let rotated = attack.lib("rotate_password(victim) to a known one", Expect::Ok, || {
            rds.rotate_password(&role("victim"), Some(known.clone()))
        });
        let victim = Planter {
            options: victim.options.password(known),
            ..victim
        };
        if matches!(rotated, Some(Ok(_))) && hostile::database_exists(sandbox, "victim") {
            archives(sandbox, &mut attack, &mut rds, &victim, "victim");
        }
        // The squatter's own user operations.
        let spec = UserSpec::new("squatter").unwrap();
        attack.lib("ensure_user(squatter)", Expect::Ok, || rds.ensure_user(&spec));
        let rotated = Password::new("squatter-rotated");
        if let Some(Ok(_)) = attack.lib("rotate_password(squatter)", Expect::Ok, || {
            rds.rotate_password(&role("squatter"), Some(rotated.clone()))
        }) {
            planter.options = planter.options.clone().password(rotated);
        }
        for database in ["postgres", "template1"] {
            for row in hostile::recorded_rows(sandbox, database, "squatter") {
                attack.finding(format!("hostile_log in {database}: {row}"));
            }
        }
        let force = DropDatabaseOptions::new().force(true);
        let no = DropUserOptions::new();
        attack.lib("drop_database(victim)", Expect::Ok, || rds.drop_database(&db("victim"), &force));
        for u in ["victim_ro", "victim"] {
            attack.lib(&format!("drop_user({u})"), Expect::Ok, || rds.drop_user(&role(u), &no));
        }
        attack.lib("plan_drop_user(squatter)", Expect::Ok, || {
            rds.plan_drop_user(&role("squatter"), &no)
        });
        attack.forget("squatter");
        attack.lib("drop_user(squatter) (owns objects in postgres and template1)", Expect::Ok, || {
            rds.drop_user(&role("squatter"), &no)
        });
        drop(planter);
        attack.assert_clean();
    }
);

// ---------------------------------------------------------------------------------------------
// An open template1, before anyone planted
// ---------------------------------------------------------------------------------------------

per_version!(
    fn an_open_template1_is_refused_before_anyone_planted(sandbox) {
        // The instance as RDS delivers it.
        let mut rds = unsecured_provisioner(sandbox);
        project_user(sandbox, &mut rds, "early");
        let spec = DatabaseSpec::new("early", "early").unwrap();
        if sandbox.major_version() >= 15 {
            // PUBLIC may not create in template1, and the default template is template0.
            assert!(!hostile::may_create_in_public(sandbox, "template1", "early"));
            ok(rds.ensure_database(&spec), "ensure_database");
            return;
        }
        let e = rds
            .ensure_database(&spec)
            .expect_err("PUBLIC may create in template1.public (RDS's default): refused");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        let hint = e.hint().unwrap_or_else(|| panic!("no cleaning SQL in {e}"));
        assert!(hostile::closes_public_create(hint), "{hint}");
        let mut t1 = hostile::pinned(&sandbox.master_options().dbname("template1"));
        if let Err(failures) = hostile::run_fix(&mut t1, hint) {
            panic!("the printed SQL fails as master in template1: {failures}");
        }
        drop(t1);
        ok(rds.ensure_database(&spec), "ensure_database after closing template1");
    }
);
