//! The seed's procedure on a sandbox through the library: a project user, its database with
//! hstore (and PostGIS where the sandbox has it), a read-only user and its grant — then the same
//! again, which changes nothing.
//!
//! `cargo run -p rds-pg-examples --example provision [MAJOR]`

use rds_pg_core::sandbox::{Sandbox, SandboxOptions};
use rds_pg_core::{DatabaseSpec, Extension, Provisioner, ReadOnlyGrant, Report, UserSpec};

fn show(what: &str, report: &Report) {
    println!(
        "{what}: {}",
        if report.changed {
            "changed"
        } else {
            "no change"
        }
    );
    for step in &report.steps {
        println!("    [{}] {}", step.database_label(), step.sql());
    }
    for note in &report.notes {
        println!("    note: {note}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = SandboxOptions::new();
    if let Some(major) = std::env::args().nth(1) {
        options = options.version(major.parse()?);
    }
    let sandbox = Sandbox::start(options)?;
    println!(
        "PostgreSQL {} sandbox, master {:?}",
        sandbox.version(),
        sandbox.master_user()
    );
    let mut extensions = vec![Extension::Hstore];
    if sandbox.has_postgis() {
        extensions.push(Extension::Postgis);
    }
    let user = UserSpec::new("project_user")?;
    let database = DatabaseSpec::new("project_db", "project_user")?.extensions(extensions);
    let readonly = UserSpec::new("project_readonly")?;
    let grant = ReadOnlyGrant::new("project_db", "project_readonly")?;

    let mut provisioner = Provisioner::connect(&sandbox.master_options())?;
    // Once per instance: before 15, RDS lets every login role create in template1 and postgres.
    show("secure_instance", &provisioner.secure_instance()?);
    let mut passwords = Vec::new();
    for round in ["first run", "second run"] {
        println!("== {round}");
        let started = std::time::Instant::now();
        let report = provisioner.ensure_user(&user)?;
        show("ensure_user project_user", &report);
        passwords.extend(report.generated_password);
        show(
            "ensure_database project_db",
            &provisioner.ensure_database(&database)?,
        );
        let report = provisioner.ensure_user(&readonly)?;
        show("ensure_user project_readonly", &report);
        passwords.extend(report.generated_password);
        show("grant_read_only", &provisioner.grant_read_only(&grant)?);
        println!("({round} took {:.1?})", started.elapsed());
    }

    println!("== logging in with the generated passwords");
    let [project_pw, readonly_pw] =
        <[_; 2]>::try_from(passwords).map_err(|_| "expected two generated passwords")?;
    let project = sandbox
        .options_for("project_user")
        .dbname("project_db")
        .password(project_pw);
    let mut as_project = rds_pg_core::connect(&project)?;
    as_project.batch_execute(
        "CREATE TABLE visits (id serial PRIMARY KEY, tags hstore);
         INSERT INTO visits (tags) VALUES ('page=>home')",
    )?;
    println!("project_user created table visits and inserted a row");
    let readonly = sandbox
        .options_for("project_readonly")
        .dbname("project_db")
        .password(readonly_pw);
    let mut as_readonly = rds_pg_core::connect(&readonly)?;
    let n: i64 = as_readonly
        .query_one("SELECT count(*) FROM visits", &[])?
        .get(0);
    println!("project_readonly reads visits (created after the grant): {n} row(s)");
    match as_readonly.batch_execute("INSERT INTO visits (tags) VALUES (NULL)") {
        Ok(()) => return Err("project_readonly could insert".into()),
        Err(e) => println!(
            "project_readonly cannot insert: {}",
            rds_pg_core::Error::from(e)
        ),
    }
    match as_project.batch_execute("CREATE DATABASE sneaky") {
        Ok(()) => return Err("project_user could create a database".into()),
        Err(e) => println!(
            "project_user cannot create databases: {}",
            rds_pg_core::Error::from(e)
        ),
    }
    Ok(())
}
