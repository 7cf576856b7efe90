//! The parts of issue 11's hostile-project contract around the API the fix added:
//!
//! - `Provisioner::plan_secure_instance()` / `Provisioner::secure_instance()`: revoke CREATE on
//!   schema `public` from PUBLIC in `postgres` and `template1` where granted, dropping nothing;
//! - a dirty `template1` (14 and older) refused with the SQL that cleans it;
//! - extensions into a schema holding objects that shadow `pg_catalog`: an untrusted one
//!   (PostGIS) refused unless the spec allows it ([`allowing_shadowing`], the one place that
//!   names the option), a trusted one created with a note, or refused in strict mode.

use rds_pg_core::{
    DatabaseName, DatabaseSpec, ErrorKind, Extension, Password, Provisioner, UserSpec,
};
use rds_pg_tests::hostile::census::Census;
use rds_pg_tests::hostile::plant::PlantSet;
use rds_pg_tests::hostile::{self, admin, Planter};
use rds_pg_tests::{err, ok, per_version, provisioner, unsecured_provisioner, Sandbox};

/// CONTRACT NAME: the spec option that allows an untrusted extension into a schema holding
/// shadowing objects. Rename here if the fix calls it differently.
fn allowing_shadowing(spec: DatabaseSpec) -> DatabaseSpec {
    spec.allow_shadowing(true)
}

/// A small planted set (the attacks of the issue's text), enough to make a schema "written
/// into" without the full census.
fn issue_plants(sandbox: &Sandbox) -> PlantSet {
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    let census = Census {
        functions: names(&["format", "hashtextextended", "unnest", "pg_has_role"]),
        aggregates: names(&["array_agg", "count"]),
        operators: names(&["=", "->>"]),
        ..Census::default()
    };
    PlantSet::generate(&mut admin(sandbox, "postgres"), &census, &|_| false)
}

fn project(sandbox: &Sandbox, rds: &mut Provisioner, name: &str) -> Planter {
    let password = Password::new(format!("{name}-contract-pw"));
    ok(
        rds.ensure_user(&UserSpec::new(name).unwrap().password(password.clone())),
        "ensure_user",
    );
    Planter {
        role: name.to_owned(),
        options: sandbox.options_for(name).password(password),
    }
}

per_version!(
    fn secure_instance_closes_public_of_postgres_and_template1_and_drops_nothing(sandbox) {
        let v = sandbox.major_version();
        // The instance as RDS delivers it: on 14 and older PUBLIC may create in public of
        // postgres and template1, and the squatter plants there.
        let mut rds = unsecured_provisioner(sandbox);
        let squatter = project(sandbox, &mut rds, "squatter");
        let set = issue_plants(sandbox);
        if v <= 14 {
            for d in ["postgres", "template1"] {
                hostile::plant(&squatter, &set, d, false).unwrap();
            }
        }
        let before: Vec<Vec<String>> = ["postgres", "template1"]
            .iter()
            .map(|d| hostile::objects_owned_by(sandbox, d, &["squatter"]))
            .collect();

        let plan = ok(rds.plan_secure_instance(), "plan_secure_instance");
        let sql = plan.sql().join(";\n");
        if v <= 14 {
            assert!(hostile::closes_public_create(&sql), "{sql}");
            let places: Vec<&str> = plan.steps.iter().map(|s| s.database_label()).collect();
            assert!(places.contains(&"template1"), "{places:?}");
            assert!(!sql.to_uppercase().contains("DROP"), "secure_instance drops nothing: {sql}");
        } else {
            assert!(plan.is_empty(), "15+: PUBLIC has no CREATE to revoke: {sql}");
        }
        let report = ok(rds.secure_instance(), "secure_instance");
        assert_eq!(report.changed, v <= 14);
        for d in ["postgres", "template1"] {
            assert!(!hostile::may_create_in_public(sandbox, d, "squatter"), "{d}");
            let e = hostile::try_create_in_public(&squatter, d).expect_err(d);
            assert_eq!(e.code(), Some(&rds_pg_core::SqlState::INSUFFICIENT_PRIVILEGE));
        }
        let after: Vec<Vec<String>> = ["postgres", "template1"]
            .iter()
            .map(|d| hostile::objects_owned_by(sandbox, d, &["squatter"]))
            .collect();
        assert_eq!(before, after, "secure_instance dropped something");
        assert!(ok(rds.plan_secure_instance(), "again").is_empty(), "idempotent");
        assert!(!ok(rds.secure_instance(), "again").changed);
    }
);

per_version!(
    fn a_dirty_template1_is_refused_then_cleaned_with_the_printed_sql_and_secured(sandbox) {
        if sandbox.major_version() >= 15 {
            return; // template0 is the default template: nothing to clean.
        }
        // The instance as RDS delivers it, the squatter's objects in postgres and template1.
        let mut rds = unsecured_provisioner(sandbox);
        let squatter = project(sandbox, &mut rds, "squatter");
        let set = issue_plants(sandbox);
        for d in ["postgres", "template1"] {
            hostile::plant(&squatter, &set, d, false).unwrap();
        }
        project(sandbox, &mut rds, "victim");
        let spec = DatabaseSpec::new("victim", "victim").unwrap();
        let e = err(rds.ensure_database(&spec), "ensure_database from a dirty template1");
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        assert!(e.to_string().contains("squatter"), "the owner is named: {e}");
        assert!(hostile::names_a_plant(&e.to_string(), &set), "objects are listed: {e}");
        let hint = e.hint().expect("the refusal carries the SQL that cleans template1");
        assert!(hostile::closes_public_create(hint), "{hint}");
        let mut t1 = hostile::pinned(&sandbox.master_options().dbname("template1"));
        if let Err(failures) = hostile::run_fix(&mut t1, hint) {
            panic!("the printed SQL fails as master in template1: {failures}");
        }
        drop(t1);
        assert!(hostile::objects_owned_by(sandbox, "template1", &["squatter"]).is_empty());
        ok(rds.secure_instance(), "secure_instance");
        ok(rds.ensure_database(&spec), "ensure_database after cleaning");
        assert!(hostile::objects_owned_by(sandbox, "victim", &["squatter"]).is_empty());
        for d in ["postgres", "template1"] {
            assert!(hostile::try_create_in_public(&squatter, d).is_err(), "{d}");
        }
    }
);

per_version!(
    fn postgis_into_a_schema_with_shadowing_objects_needs_the_explicit_option(sandbox) {
        if !sandbox.has_postgis() {
            return;
        }
        let mut rds = provisioner(sandbox);
        let owner = project(sandbox, &mut rds, "hostile");
        ok(
            rds.ensure_database(&DatabaseSpec::new("hostile", "hostile").unwrap()),
            "ensure_database",
        );
        let set = issue_plants(sandbox);
        hostile::plant(&owner, &set, "hostile", true).unwrap();
        let database = DatabaseName::new("hostile").unwrap();
        let e = err(
            rds.ensure_extensions(&database, &[Extension::Postgis]),
            "postgis into a written-into public",
        );
        assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{e}");
        assert!(hostile::names_a_plant(&e.to_string(), &set), "{e}");
        let mark = hostile::log::mark(sandbox);
        let spec = allowing_shadowing(
            DatabaseSpec::new("hostile", "hostile")
                .unwrap()
                .extension(Extension::Postgis),
        );
        let refused = err(
            rds.ensure_database(
                &DatabaseSpec::new("hostile", "hostile")
                    .unwrap()
                    .extension(Extension::Postgis),
            ),
            "ensure_database with postgis into a written-into public",
        );
        assert_eq!(refused.kind(), ErrorKind::PolicyViolation, "{refused}");
        assert!(hostile::names_a_plant(&refused.to_string(), &set), "{refused}");
        ok(rds.ensure_database(&spec), "postgis, explicitly allowed");
        let hits = hostile::hits_since(sandbox, mark);
        assert!(hits.is_empty(), "planted code ran: {hits:?}");
        let has: bool = admin(sandbox, "hostile")
            .query_one("SELECT count(*) = 1 FROM pg_extension WHERE extname = 'postgis'", &[])
            .unwrap()
            .get(0);
        assert!(has);
    }
);

per_version!(
    fn a_trusted_extension_next_to_shadowing_objects_is_noted_or_refused_in_strict_mode(sandbox) {
        let mut rds = provisioner(sandbox);
        let owner = project(sandbox, &mut rds, "hostile");
        ok(
            rds.ensure_database(&DatabaseSpec::new("hostile", "hostile").unwrap()),
            "ensure_database",
        );
        let set = issue_plants(sandbox);
        hostile::plant(&owner, &set, "hostile", true).unwrap();
        let mark = hostile::log::mark(sandbox);
        let spec = DatabaseSpec::new("hostile", "hostile")
            .unwrap()
            .extension(Extension::Hstore);
        let strict = spec.clone().strict(true);
        for (what, e) in [
            ("plan_ensure_database, strict", err(rds.plan_ensure_database(&strict), "plan")),
            ("ensure_database, strict", err(rds.ensure_database(&strict), "ensure")),
        ] {
            assert_eq!(e.kind(), ErrorKind::PolicyViolation, "{what}: {e}");
            assert!(hostile::names_a_plant(&e.to_string(), &set), "{what}: {e}");
        }
        assert!(
            hostile::installed_extensions(sandbox, "hostile").is_empty(),
            "strict mode created nothing"
        );
        let plan = ok(rds.plan_ensure_database(&spec), "plan_ensure_database");
        let notes = plan.notes.join("\n");
        assert!(hostile::names_a_plant(&notes, &set), "the plan notes the shadows: {notes}");
        ok(rds.ensure_database(&spec), "hstore (trusted), not strict");
        assert_eq!(hostile::installed_extensions(sandbox, "hostile"), ["hstore"]);
        let hits = hostile::hits_since(sandbox, mark);
        assert!(hits.is_empty(), "planted code ran: {hits:?}");
        assert!(hostile::recorded_rows(sandbox, "hostile", "hostile").is_empty());
    }
);
