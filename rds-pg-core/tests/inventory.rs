//! The inventory and `fleet check`, without a server: each policy rule and each AWS rule has a
//! fixture (under `tests/fixtures/inventory/` of the workspace) that yields exactly its finding,
//! the annotated example is clean, and a broken inventory reports every problem at its line.

use std::path::PathBuf;

use rds_pg_core::inventory::{
    AwsSnapshot, CheckReport, Environment, MasterPassword, ObjectKind, Rule, Severity,
};
use rds_pg_core::{CredentialSink, Error, ErrorKind, Extension, Inventory};

fn workspace(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn fixture(name: &str) -> PathBuf {
    workspace("tests/fixtures/inventory").join(name)
}

fn load(path: &PathBuf) -> Inventory {
    Inventory::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts that `report` has exactly one finding, of `rule`, naming `objects` (kind, name,
/// line; None for a JSON value), and returns it for further checks.
#[track_caller]
fn only_finding(
    report: &CheckReport,
    rule: &str,
    objects: &[(ObjectKind, &str, Option<u32>)],
) -> rds_pg_core::inventory::Finding {
    let ids: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        report.findings.len(),
        1,
        "expected one {rule} finding: {ids:#?}"
    );
    let finding = report.findings[0].clone();
    assert_eq!(finding.rule.id(), rule, "{finding}");
    assert_eq!(Rule::from_id(rule), Some(finding.rule));
    assert_eq!(finding.severity, finding.rule.severity());
    let got: Vec<(ObjectKind, &str, Option<u32>)> = finding
        .objects
        .iter()
        .map(|o| (o.kind, o.name.as_str(), o.location.line))
        .collect();
    assert_eq!(got, objects, "{finding}");
    assert!(!finding.fix.is_empty() && !finding.message.is_empty());
    assert!(!report.is_clean());
    finding
}

fn check_fixture(name: &str) -> CheckReport {
    load(&fixture(name)).check(None)
}

// ---------------------------------------------------------------------------------------------
// The example
// ---------------------------------------------------------------------------------------------

#[test]
fn the_annotated_example_loads_and_checks_clean() {
    let inventory = load(&workspace("examples/inventory.toml"));
    assert_eq!(inventory.clients.len(), 2);
    assert_eq!(inventory.instances.len(), 3);
    assert_eq!(inventory.projects.len(), 4);
    assert_eq!(inventory.policy.backup_retention_days, 14);
    let environments: Vec<Environment> =
        inventory.instances.iter().map(|i| i.environment).collect();
    assert!(environments.contains(&Environment::Staging));
    assert!(environments.contains(&Environment::Production));

    let staging = inventory.instance("acme-staging").unwrap();
    assert_eq!(staging.region, "eu-west-1", "read from the endpoint");
    assert_eq!(staging.explicit_region, None);
    assert_eq!(staging.port, 5432);
    assert_eq!(
        staging.master_password,
        MasterPassword::Env("ACME_STAGING_MASTER_PASSWORD".into())
    );
    let prod = inventory.instance("acme-prod").unwrap();
    assert!(matches!(&prod.master_password, MasterPassword::Command(argv) if argv[0] == "lpass"));

    let shop = inventory.project("shop").unwrap();
    let db = &shop.databases[0];
    assert_eq!(db.extensions, [Extension::Postgis, Extension::Hstore]);
    assert_eq!(db.readers[0].as_str(), "shop_ro");
    let spec = db.spec().unwrap();
    assert_eq!(spec.owner.as_str(), "shop");
    assert_eq!(db.read_only_grants().unwrap()[0].role.as_str(), "shop_ro");
    let roles: Vec<&str> = shop.roles().iter().map(|r| r.as_str()).collect();
    assert_eq!(roles, ["shop", "shop_ro"]);
    assert!(matches!(
        shop.credentials_for(&db.readers[0]),
        Some(CredentialSink::EnvFile(p)) if p.ends_with("shop-ro.env")
    ));
    assert_eq!(inventory.projects_on("acme-prod").count(), 2);
    let maps = inventory.project("maps").unwrap();
    let tiles = rds_pg_core::RoleName::new("maps_tiles").unwrap();
    assert_eq!(maps.settings_for(&tiles).unwrap().iam, Some(true));
    assert!(
        maps.credentials_for(&tiles).is_none(),
        "an IAM role needs no sink"
    );

    let report = inventory.check(None);
    assert!(report.is_clean(), "{:#?}", report.findings);
    let aws = AwsSnapshot::load_all([
        workspace("examples/aws/db-instances.json"),
        workspace("examples/aws/security-groups.json"),
    ])
    .unwrap();
    let report = inventory.check(Some(&aws));
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.aws_db_instances, Some(3));
}

// ---------------------------------------------------------------------------------------------
// Policy rules: one fixture each, exactly one finding
// ---------------------------------------------------------------------------------------------

use ObjectKind::{Database, DbInstance, Instance, Policy, Project, Role, SecurityGroup};

#[test]
fn one_client_per_instance() {
    let f = only_finding(
        &check_fixture("one-client-per-instance.toml"),
        "one-client-per-instance",
        &[
            (Project, "portal", Some(31)),
            (Instance, "acme-prod", Some(12)),
        ],
    );
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("\"globex\""), "{f}");
}

#[test]
fn same_region() {
    only_finding(
        &check_fixture("same-region.toml"),
        "same-region",
        &[
            (Project, "shop", Some(19)),
            (Instance, "acme-prod", Some(12)),
        ],
    );
}

#[test]
fn endpoint_region() {
    let f = only_finding(
        &check_fixture("endpoint-region.toml"),
        "endpoint-region",
        &[
            (Instance, "acme-prod", Some(10)),
            (Instance, "acme-prod", Some(12)),
        ],
    );
    assert!(f.message.contains("eu-west-1") && f.message.contains("eu-central-1"));
}

#[test]
fn separate_staging_production() {
    only_finding(
        &check_fixture("separate-staging-production.toml"),
        "separate-staging-production",
        &[
            (Project, "shop-staging", Some(28)),
            (Instance, "acme-prod", Some(9)),
        ],
    );
}

#[test]
fn one_major_per_instance() {
    only_finding(
        &check_fixture("one-major-per-instance.toml"),
        "one-major-per-instance",
        &[
            (Project, "legacy", Some(32)),
            (Instance, "acme-prod", Some(10)),
        ],
    );
}

#[test]
fn unique_database_name() {
    only_finding(
        &check_fixture("unique-database-name.toml"),
        "unique-database-name",
        &[(Database, "app", Some(22)), (Database, "app", Some(33))],
    );
}

#[test]
fn unique_role_name() {
    let f = only_finding(
        &check_fixture("unique-role-name.toml"),
        "unique-role-name",
        &[(Database, "shop", Some(22)), (Role, "shop_ro", Some(25))],
    );
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn role_per_project() {
    only_finding(
        &check_fixture("role-per-project.toml"),
        "role-per-project",
        &[(Role, "reporting", Some(24)), (Role, "reporting", Some(35))],
    );
}

#[test]
fn reserved_role_name() {
    only_finding(
        &check_fixture("reserved-role-name.toml"),
        "reserved-role-name",
        &[
            (Role, "Acme_Admin", Some(24)),
            (Instance, "acme-prod", Some(12)),
        ],
    );
}

#[test]
fn verified_tls() {
    let f = only_finding(
        &check_fixture("verified-tls.toml"),
        "verified-tls",
        &[(Instance, "acme-prod", Some(13))],
    );
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("sslmode require"), "{f}");
}

#[test]
fn iam_role_credentials() {
    let f = only_finding(
        &check_fixture("iam-role-credentials.toml"),
        "iam-role-credentials",
        &[(Role, "shop", Some(32)), (Role, "shop", Some(28))],
    );
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("env file \"/etc/shop/db.env\""), "{f}");
    assert!(f.fix.contains("iam = false"), "{f}");
}

#[test]
fn credentials_name_a_format_for_commands_only() {
    let text = |sink: &str| {
        format!(
            r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "acme-prod"
client = "acme"
environment = "production"
postgres_major = 16
endpoint = "acme-prod.c8h2kx0ttz1q.eu-west-1.rds.amazonaws.com"
master_user = "acme_admin"

[[project]]
name = "shop"
client = "acme"
environment = "production"
region = "eu-west-1"
instance = "acme-prod"

[[project.database]]
name = "shop"
owner = "shop"

[project.credentials]
shop = {sink}
"#
        )
    };
    let inventory = Inventory::from_str(
        &text(r#"{ command = ["aws", "secretsmanager", "put-secret-value", "--secret-id", "shop", "--secret-string", "file:///dev/stdin"], format = "secretsmanager" }"#),
        "f.toml",
    )
    .unwrap();
    let entry = &inventory.projects[0].credentials[0];
    assert_eq!(entry.format, rds_pg_core::CredentialFormat::SecretsManager);
    assert!(matches!(&entry.sink, CredentialSink::Command(argv) if argv[0] == "aws"));
    let default =
        Inventory::from_str(&text(r#"{ env_file = "/etc/shop.env" }"#), "f.toml").unwrap();
    assert_eq!(
        default.projects[0].credentials[0].format,
        rds_pg_core::CredentialFormat::RdsPg
    );
    for (sink, message) in [
        (
            r#"{ env_file = "/etc/shop.env", format = "secretsmanager" }"#,
            "f.toml:26:",
        ),
        (r#"{ command = ["vault"], format = "yaml" }"#, "f.toml:26:"),
    ] {
        let e = Inventory::from_str(&text(sink), "f.toml").unwrap_err();
        let Error::Inventory(inv) = &e else {
            panic!("{e}")
        };
        assert_eq!(inv.problems.len(), 1, "{e}");
        assert!(inv.problems[0].to_string().starts_with(message), "{e}");
        assert!(inv.problems[0].message.contains("format"), "{e}");
    }
}

/// The same base as the fixtures, with the roles given.
fn with_roles(owner: &str, readers: &str) -> String {
    format!(
        r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "acme-prod"
client = "acme"
environment = "production"
postgres_major = 16
endpoint = "acme-prod.c8h2kx0ttz1q.eu-west-1.rds.amazonaws.com"
master_user = "acme_admin"

[[project]]
name = "shop"
client = "acme"
environment = "production"
region = "eu-west-1"
instance = "acme-prod"

[[project.database]]
name = "shop"
owner = "{owner}"
readers = [{readers}]
"#
    )
}

#[test]
fn reserved_role_names_in_any_letter_case_and_the_exact_master_name_are_findings() {
    for (owner, readers, role) in [
        ("acme_admin", "", "acme_admin"),
        ("shop", "\"Postgres\"", "Postgres"),
        ("RDSADMIN", "", "RDSADMIN"),
        ("shop", "\"RDS_reader\"", "RDS_reader"),
        ("PG_shop", "", "PG_shop"),
        ("Public", "", "Public"),
    ] {
        let inventory = Inventory::from_str(&with_roles(owner, readers), "roles.toml").unwrap();
        let report = inventory.check(None);
        assert_eq!(report.findings.len(), 1, "{role}: {:#?}", report.findings);
        assert_eq!(report.findings[0].rule, Rule::ReservedRoleName, "{role}");
        assert_eq!(report.findings[0].objects[0].name, role);
    }
    // Exactly reserved names never load (the same rules as the specs).
    for reserved in [
        "postgres",
        "rdsadmin",
        "rds_superuser",
        "pg_monitor",
        "public",
    ] {
        let err = Inventory::from_str(&with_roles(reserved, ""), "roles.toml").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{reserved}: {err}");
        assert!(err.to_string().contains("reserved"), "{reserved}: {err}");
    }
    // The owner listed as its own reader is a unique-role-name finding.
    let inventory = Inventory::from_str(&with_roles("shop", "\"shop\""), "roles.toml").unwrap();
    let report = inventory.check(None);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(report.findings[0].rule, Rule::UniqueRoleName);
}

#[test]
fn every_rule_has_a_distinct_stable_id() {
    let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    for rule in Rule::ALL {
        assert_eq!(Rule::from_id(rule.id()), Some(*rule));
        assert!(rule
            .id()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-'));
    }
}

// ---------------------------------------------------------------------------------------------
// AWS rules: one JSON fixture each, in the shape the AWS CLI prints, exactly one finding
// ---------------------------------------------------------------------------------------------

fn check_aws(db_instances: &str, security_groups: &str) -> CheckReport {
    let inventory = load(&fixture("aws/inventory.toml"));
    let aws = AwsSnapshot::load_all([
        fixture(&format!("aws/{db_instances}")),
        fixture(&format!("aws/{security_groups}")),
    ])
    .unwrap();
    inventory.check(Some(&aws))
}

/// A DB instance variant with the clean security groups.
fn db_variant(rule: &str) -> CheckReport {
    check_aws(&format!("db-instances-{rule}.json"), "security-groups.json")
}

#[test]
fn aws_clean_fixtures_are_clean() {
    let report = check_aws("db-instances.json", "security-groups.json");
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.aws_db_instances, Some(1));
}

#[test]
fn aws_instance_described() {
    only_finding(
        &db_variant("aws-instance-described"),
        "aws-instance-described",
        &[(Instance, "acme-prod", Some(17))],
    );
}

#[test]
fn aws_instance_in_inventory() {
    let f = only_finding(
        &db_variant("aws-instance-in-inventory"),
        "aws-instance-in-inventory",
        &[(DbInstance, "acme-legacy", None)],
    );
    assert_eq!(
        f.objects[0].location.pointer.as_deref(),
        Some("/DBInstances/1/Endpoint/Address")
    );
}

/// The inventory instance at `line` and the DB instance's field `field`.
fn instance_and(line: u32, field: &str, f: &rds_pg_core::inventory::Finding) {
    assert_eq!(f.objects[0].location.line, Some(line), "{f}");
    assert_eq!(
        f.objects[1].location.pointer.as_deref(),
        Some(format!("/DBInstances/0/{field}").as_str()),
        "{f}"
    );
}

#[test]
fn aws_account() {
    let f = only_finding(
        &db_variant("aws-account"),
        "aws-account",
        &[
            (Instance, "acme-prod", Some(14)),
            (DbInstance, "acme-prod", None),
        ],
    );
    instance_and(14, "DBInstanceArn", &f);
    assert!(f.message.contains("999988887777"), "{f}");
}

#[test]
fn aws_region() {
    // Matched by identifier: the endpoint address is another region's.
    let f = only_finding(
        &db_variant("aws-region"),
        "aws-region",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
        ],
    );
    instance_and(17, "DBInstanceArn", &f);
}

#[test]
fn aws_engine() {
    only_finding(
        &db_variant("aws-engine"),
        "aws-engine",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
        ],
    );
}

#[test]
fn aws_engine_major() {
    let f = only_finding(
        &db_variant("aws-engine-major"),
        "aws-engine-major",
        &[
            (Instance, "acme-prod", Some(16)),
            (DbInstance, "acme-prod", None),
        ],
    );
    instance_and(16, "EngineVersion", &f);
}

#[test]
fn aws_port() {
    let f = only_finding(
        &db_variant("aws-port"),
        "aws-port",
        &[
            (Instance, "acme-prod", Some(12)),
            (DbInstance, "acme-prod", None),
        ],
    );
    instance_and(12, "Endpoint/Port", &f);
}

#[test]
fn aws_not_public() {
    let f = only_finding(
        &db_variant("aws-not-public"),
        "aws-not-public",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
        ],
    );
    instance_and(17, "PubliclyAccessible", &f);
}

#[test]
fn aws_storage_encrypted() {
    only_finding(
        &db_variant("aws-storage-encrypted"),
        "aws-storage-encrypted",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
        ],
    );
}

#[test]
fn aws_deletion_protection() {
    only_finding(
        &db_variant("aws-deletion-protection"),
        "aws-deletion-protection",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
        ],
    );
}

#[test]
fn aws_backup_retention() {
    let f = only_finding(
        &db_variant("aws-backup-retention"),
        "aws-backup-retention",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
            (Policy, "backup_retention_days", Some(6)),
        ],
    );
    assert!(
        f.message.contains("7 days") && f.message.contains("14"),
        "{f}"
    );
}

#[test]
fn aws_ingress_from_security_groups() {
    for (variant, source) in [
        ("cidr", "203.0.113.0/24"),
        ("ipv6", "2001:db8::/32"),
        ("prefix-list", "pl-0a1b2c3d4e5f67890"),
        ("all-traffic", "0.0.0.0/0"),
    ] {
        let report = check_aws(
            "db-instances.json",
            &format!("security-groups-aws-ingress-{variant}.json"),
        );
        let f = only_finding(
            &report,
            "aws-ingress-from-security-groups",
            &[
                (Instance, "acme-prod", Some(17)),
                (DbInstance, "acme-prod", None),
                (SecurityGroup, "sg-0c1d2e3f4a5b6c7d8", None),
            ],
        );
        assert!(f.message.contains(source), "{variant}: {f}");
        assert_eq!(
            f.objects[2].location.pointer.as_deref(),
            Some("/SecurityGroups/0/IpPermissions/1"),
            "{variant}"
        );
    }
}

#[test]
fn aws_security_group_described() {
    only_finding(
        &check_aws(
            "db-instances.json",
            "security-groups-aws-security-group-described.json",
        ),
        "aws-security-group-described",
        &[
            (Instance, "acme-prod", Some(17)),
            (DbInstance, "acme-prod", None),
        ],
    );
}

#[test]
fn aws_json_that_is_not_a_describe_output_is_refused_with_its_place() {
    let err = AwsSnapshot::from_str("{\"Reservations\": []}", "ec2.json").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("DBInstances"), "{err}");
    let err =
        AwsSnapshot::from_str("{\n  \"DBInstances\": [\n    {,\n", "broken.json").unwrap_err();
    assert!(err.to_string().contains("broken.json:3:"), "{err}");
    let err = AwsSnapshot::from_str(
        r#"{"DBInstances": [{"DBInstanceIdentifier": "a"}, {"DBInstanceIdentifier": 7}]}"#,
        "shape.json",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("shape.json#/DBInstances/1"),
        "{err}"
    );
    let err = AwsSnapshot::load(fixture("aws/missing.json")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

// ---------------------------------------------------------------------------------------------
// Load errors: every problem, each at its line
// ---------------------------------------------------------------------------------------------

/// Problems as (line, column, text the message contains).
fn problems(text: &str) -> Vec<(u32, u32, String)> {
    match Inventory::from_str(text, "broken.toml") {
        Ok(_) => panic!("loaded"),
        Err(Error::Inventory(e)) => {
            assert_eq!(e.file, "broken.toml");
            e.problems
                .iter()
                .map(|p| {
                    assert_eq!(p.location.file, "broken.toml");
                    (
                        p.location.line.unwrap(),
                        p.location.column.unwrap(),
                        p.message.clone(),
                    )
                })
                .collect()
        }
        Err(other) => panic!("not an inventory error: {other}"),
    }
}

#[test]
fn every_load_problem_is_reported_with_its_line_and_column() {
    let text = r#"[policy]
backup_retention_days = 40

[[client]]
name = "acme"
account_id = "1234"
bogus = 1
other = "x"

[[instance]]
name = "acme-prod"
client = "nobody"
environment = "prod"
postgres_major = 12
endpoint = "db.example.com"
port = "5432"
master_user = "acme_admin"
master_password = { env = "1BAD", extra = true }

[[project]]
name = "shop"
client = "acme"
environment = "production"
region = "eu-west1"
instance = "acme-prod"

[[project.database]]
name = "pg_shop"
owner = "rds_shop"
extensions = ["postgis", ""]
readers = ["ok_ro", "postgres"]

[project.credentials]
nobody = { env_file = "/x" }
ok_ro = { env_file = "/x", pgpass = "/y" }

[[project]]
client = "acme"
"#;
    let got = problems(text);
    let expected: &[(u32, u32, &str)] = &[
        (
            2,
            25,
            "backup_retention_days = 40 is out of range: RDS keeps automated backups 0 to 35 days",
        ),
        (
            6,
            14,
            "account_id \"1234\" is not a 12-digit AWS account id",
        ),
        (7, 1, "unknown key `bogus`"),
        (8, 1, "unknown key `other`"),
        (10, 1, "missing key `region`"),
        (
            12,
            10,
            "names client \"nobody\", which the inventory does not have (it has: acme)",
        ),
        (
            13,
            15,
            "environment \"prod\" is neither \"staging\" nor \"production\"",
        ),
        (14, 18, "postgres_major = 12 is not supported"),
        (16, 8, "invalid type: string \"5432\", expected an integer"),
        (18, 27, "\"1BAD\" is not an environment variable name"),
        (18, 35, "unknown key `extra`"),
        (24, 10, "region \"eu-west1\" is not an AWS region name"),
        (28, 8, "invalid database name \"pg_shop\""),
        (29, 9, "invalid role name \"rds_shop\""),
        (30, 26, "\"\" is not an extension name"),
        (31, 21, "invalid role name \"postgres\""),
        (35, 9, "give only one of `env_file`, `pgpass`, `command`"),
        (37, 1, "[[project]]: missing key `name`"),
        (37, 1, "[[project]]: missing key `environment`"),
        (37, 1, "[[project]]: missing key `region`"),
        (37, 1, "[[project]]: missing key `instance`"),
        (37, 1, "[[project]]: no database"),
    ];
    let summary: Vec<String> = got
        .iter()
        .map(|(l, c, m)| format!("{l}:{c}: {m}"))
        .collect();
    assert_eq!(got.len(), expected.len(), "{summary:#?}");
    for ((line, column, message), (el, ec, contains)) in got.iter().zip(expected) {
        assert_eq!((line, column), (el, ec), "{message} / {summary:#?}");
        assert!(
            message.contains(contains),
            "{line}:{column}: {message:?} lacks {contains:?}"
        );
    }
    // The error's text lists them all, each as FILE:LINE:COLUMN.
    let err = Inventory::from_str(text, "broken.toml").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let shown = err.to_string();
    assert!(
        shown.starts_with("inventory broken.toml: 22 problems"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  broken.toml:16:8: instance \"acme-prod\": invalid type"),
        "{shown}"
    );
}

#[test]
fn syntax_errors_are_all_reported_with_their_lines() {
    let got = problems("a = 1\nb = = 2\n[x\n");
    let lines: Vec<u32> = got.iter().map(|p| p.0).collect();
    assert!(got.len() >= 2, "{got:#?}");
    assert!(lines.contains(&2) && lines.contains(&3), "{got:#?}");
}

#[test]
fn structure_mistakes_are_named() {
    let got = problems("[client]\nname = \"acme\"\n\n[clients]\n");
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!((got[0].0, got[0].1), (1, 1));
    assert!(got[0].2.contains("write [[client]]"), "{got:#?}");
    assert_eq!(got[1].0, 4);
    assert!(got[1].2.contains("unknown key `clients`"), "{got:#?}");
}

#[test]
fn an_unknown_key_lists_every_key_the_entry_takes() {
    let text = "[[project]]\nname = \"shop\"\ndatabases = []\n";
    let got = problems(text);
    let unknown = got
        .iter()
        .find(|p| p.2.contains("unknown key `databases`"))
        .unwrap();
    assert_eq!((unknown.0, unknown.1), (3, 1));
    assert!(
        unknown
            .2
            .ends_with("`secrets`, or `database`, `credentials`, `roles`"),
        "{got:#?}"
    );
}

#[test]
fn duplicates_and_references_are_load_errors() {
    let text = r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[client]]
name = "acme"
account_id = "111122223334"

[[instance]]
name = "a"
client = "acme"
environment = "staging"
postgres_major = 16
endpoint = "a.c8h2kx0ttz1q.eu-west-1.rds.amazonaws.com"
master_user = "acme_admin"

[[instance]]
name = "b"
client = "acme"
environment = "staging"
postgres_major = 16
endpoint = "A.c8h2kx0ttz1q.eu-west-1.rds.amazonaws.com"
master_user = "acme_admin"
master_password = { pgpass = "/p", env = "X" }

[[project]]
name = "shop"
client = "acme"
environment = "staging"
region = "eu-west-1"
instance = "c"
database = { name = "shop", owner = "shop" }
"#;
    let got = problems(text);
    let expected: &[(u32, u32, &str)] = &[
        (
            7,
            8,
            "a second client is named \"acme\" (the first is at line 3)",
        ),
        (
            23,
            12,
            "instance \"b\": instance \"a\" has the same endpoint and port",
        ),
        (
            25,
            19,
            "give only one of `pgpass`, `env`, `command` (found `pgpass` and `env`)",
        ),
        (
            32,
            12,
            "`instance` names instance \"c\", which the inventory does not have (it has: a, b)",
        ),
        (
            33,
            12,
            "`database` must be an array of tables; write [[project.database]] for each",
        ),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((line, column, message), (el, ec, contains)) in got.iter().zip(expected) {
        assert_eq!((line, column), (el, ec), "{message}");
        assert!(message.contains(contains), "{message:?} lacks {contains:?}");
    }
}

#[test]
fn an_unreadable_file_is_an_io_error() {
    let err = Inventory::load(fixture("no-such-inventory.toml")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("no-such-inventory.toml"), "{err}");
}

#[test]
fn role_settings_are_read_and_checked() {
    let base = r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "acme-prod"
client = "acme"
environment = "production"
region = "eu-west-1"
postgres_major = 16
endpoint = "db.example.com"
master_user = "acme_admin"

[[project]]
name = "shop"
client = "acme"
environment = "production"
region = "eu-west-1"
instance = "acme-prod"

[[project.database]]
name = "shop"
owner = "shop"
readers = ["shop_ro"]
"#;
    let good = format!(
        "{base}\n[project.roles]\nshop = {{ connection_limit = 20, valid_until = \"2027-06-30\" }}\nshop_ro = {{ valid_until = \"2027-06-30 12:00:00+00\", iam = true }}\n"
    );
    let inventory = Inventory::from_str(&good, "fleet.toml").unwrap();
    let project = inventory.project("shop").unwrap();
    let shop = project
        .settings_for(&rds_pg_core::RoleName::new("shop").unwrap())
        .unwrap();
    assert_eq!(shop.connection_limit, Some(20));
    assert_eq!(shop.valid_until.as_deref(), Some("2027-06-30"));
    assert_eq!(
        (shop.location.line, shop.location.column),
        (Some(28), Some(1))
    );
    assert_eq!(shop.iam, None);
    let ro = &project.role_settings[1];
    assert_eq!(ro.role.as_str(), "shop_ro");
    assert_eq!(ro.connection_limit, None);
    assert_eq!(ro.valid_until.as_deref(), Some("2027-06-30 12:00:00+00"));
    assert_eq!(ro.iam, Some(true));
    let password_user = format!("{base}\n[project.roles]\nshop = {{ iam = false }}\n");
    let inventory = Inventory::from_str(&password_user, "fleet.toml").unwrap();
    assert_eq!(inventory.projects[0].role_settings[0].iam, Some(false));
    // An IAM role needs no credentials entry, and its entry is checked like any other.
    assert!(inventory.check(None).is_clean());

    // iam takes a boolean, reported at its value with the entry's other problems.
    let not_a_boolean = format!(
        "{base}\n[project.roles]\nshop = {{ iam = \"yes\", connection_limit = -2 }}\nshop_ro = {{ iam = 1 }}\n"
    );
    let got = problems(&not_a_boolean);
    let iam: Vec<&(u32, u32, String)> = got
        .iter()
        .filter(|p| p.2.contains("expected a boolean"))
        .collect();
    assert_eq!(iam.len(), 2, "{got:#?}");
    assert_eq!((iam[0].0, iam[0].1), (28, 16), "{got:#?}");
    assert!(iam[0].2.contains("roles: \"shop\""), "{got:#?}");
    assert!(
        iam[0].2.contains("invalid type: string \"yes\""),
        "{got:#?}"
    );
    assert_eq!((iam[1].0, iam[1].1), (29, 19), "{got:#?}");
    assert!(
        got.iter()
            .any(|p| p.2.contains("connection_limit = -2 is out of range")),
        "the entry's other keys are still read: {got:#?}"
    );

    let bad = format!(
        "{base}\n[project.roles]\nshop = {{ connection_limit = -1, valid_until = \"soon\", colour = 1 }}\nstranger = {{ connection_limit = 1 }}\n"
    );
    let got = problems(&bad);
    let messages: Vec<&str> = got.iter().map(|p| p.2.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("connection_limit = -1 is out of range")),
        "{got:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("valid_until = \"soon\" is not a date")),
        "{got:#?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("unknown key `colour`")),
        "{got:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("\"stranger\": no database of the project is owned or read by it")),
        "{got:#?}"
    );
}
