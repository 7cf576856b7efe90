//! The rules over hand-made catalogs: what each version's memberships mean, who may revoke what,
//! how projects are inferred without an inventory, and how the inventory instance is chosen.

use super::*;
use crate::audit::inspect::{DatabaseCatalog, ObjectRow};

/// A catalog with the RDS roles, master (oid 100) and no databases but `postgres`.
struct World {
    c: ClusterCatalog,
    next: u32,
}

impl World {
    fn new(major: u32) -> World {
        let mut w = World {
            c: ClusterCatalog {
                version_num: major * 10000 + 1,
                current_user: "master".into(),
                current_database: "postgres".into(),
                search_path: "pg_catalog, pg_temp".into(),
                rds_force_ssl: Some("1".into()),
                ssl: "on".into(),
                password_encryption: "scram-sha-256".into(),
                roles: Vec::new(),
                memberships: Vec::new(),
                databases: Vec::new(),
                connect: Vec::new(),
                dependencies: Vec::new(),
            },
            next: 200,
        };
        w.role_with(10, "rdsadmin", true, true);
        w.role_with(20, "rds_superuser", false, false);
        w.role_with(21, "pg_monitor", false, false);
        w.role_with(100, "master", true, false);
        w.c.roles
            .iter_mut()
            .find(|r| r.oid == 100)
            .unwrap()
            .createrole = true;
        w.c.roles
            .iter_mut()
            .find(|r| r.oid == 100)
            .unwrap()
            .createdb = true;
        w.grant(20, 100, 10, false, true, true);
        w.grant(21, 20, 10, true, true, true);
        w.database("postgres", 100);
        w
    }

    fn role_with(&mut self, oid: u32, name: &str, login: bool, superuser: bool) -> u32 {
        self.c.roles.push(RoleRow {
            oid,
            name: name.into(),
            login,
            superuser,
            createdb: false,
            createrole: false,
            replication: false,
            bypassrls: false,
            connection_limit: -1,
            valid_until: None,
            expires_after: None,
        });
        oid
    }

    /// A project login role created by master: on 16+ master holds the creator's ADMIN-only
    /// membership.
    fn role(&mut self, name: &str) -> u32 {
        self.next += 1;
        let oid = self.next;
        self.role_with(oid, name, true, false);
        if self.c.version_num >= 160000 {
            self.grant(oid, 100, 10, true, false, false);
        }
        oid
    }

    fn grant(
        &mut self,
        role: u32,
        member: u32,
        grantor: u32,
        admin: bool,
        inherit: bool,
        set: bool,
    ) {
        self.c.memberships.push(MembershipRow {
            role,
            member,
            grantor,
            admin,
            inherit,
            set,
        });
    }

    /// A database owned by `owner` with PUBLIC revoked and CONNECT for master, as rds-pg leaves
    /// it.
    fn database(&mut self, name: &str, owner: u32) -> u32 {
        self.next += 1;
        let oid = self.next;
        let mut acl = vec![
            AclRow {
                grantor: owner,
                grantee: owner,
                privilege: "CONNECT".into(),
                grantable: true,
            },
            AclRow {
                grantor: owner,
                grantee: 100,
                privilege: "CONNECT".into(),
                grantable: false,
            },
        ];
        if name == "postgres" {
            acl.push(AclRow {
                grantor: owner,
                grantee: 0,
                privilege: "CONNECT".into(),
                grantable: false,
            });
        }
        self.c.databases.push(DatabaseRow {
            oid,
            name: name.into(),
            owner,
            allow_connections: true,
            is_template: false,
            master_can_connect: true,
            acl,
        });
        oid
    }

    fn acl(&mut self, db: u32, grantor: u32, grantee: u32, privilege: &str) {
        let d = self.c.databases.iter_mut().find(|d| d.oid == db).unwrap();
        d.acl.push(AclRow {
            grantor,
            grantee,
            privilege: privilege.into(),
            grantable: false,
        });
    }

    fn can_connect(&mut self, role: u32, db: u32) {
        self.c.connect.push((role, db));
    }

    fn audit(&self, databases: Vec<DatabaseCatalog>, scope: &Scope) -> AuditReport {
        let snapshot = Snapshot {
            cluster: self.c.clone(),
            databases,
            not_audited: Vec::new(),
            tls: TlsState::Required,
        };
        evaluate(&snapshot, scope, "test".into())
    }

    fn findings(&self) -> Vec<Finding> {
        self.audit(Vec::new(), &Scope::default()).findings
    }
}

/// Two projects as rds-pg provisions them: owners with their databases, readers with CONNECT.
fn two_projects(major: u32) -> (World, [u32; 4], [u32; 2]) {
    let mut w = World::new(major);
    let a = w.role("a");
    let a_ro = w.role("a_ro");
    let b = w.role("b");
    let b_ro = w.role("b_ro");
    let da = w.database("a", a);
    let db = w.database("b", b);
    w.acl(da, a, a_ro, "CONNECT");
    w.acl(db, b, b_ro, "CONNECT");
    for (r, d) in [(a, da), (a_ro, da), (b, db), (b_ro, db)] {
        w.can_connect(r, d);
    }
    (w, [a, a_ro, b, b_ro], [da, db])
}

fn rules(findings: &[Finding]) -> Vec<Rule> {
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn provisioned_projects_are_clean_on_every_version() {
    for major in 13..=18 {
        let (w, _, _) = two_projects(major);
        let report = w.audit(Vec::new(), &Scope::default());
        assert_eq!(report.findings, [], "PostgreSQL {major}");
        assert!(report.is_clean());
        assert_eq!(report.login_roles, 4);
        assert_eq!(
            report
                .connect_matrix
                .iter()
                .map(|c| (c.database.as_str(), c.project.as_deref(), c.roles.clone()))
                .collect::<Vec<_>>(),
            [
                ("a", Some("a"), vec!["a".to_owned(), "a_ro".to_owned()]),
                ("b", Some("b"), vec!["b".to_owned(), "b_ro".to_owned()]),
            ]
        );
    }
}

#[test]
fn masters_membership_is_a_finding_unless_it_is_the_creators_admin_only_one() {
    // 16+: the creator's ADMIN-only membership is fine; one with SET is left over.
    let (mut w, [a, ..], _) = two_projects(16);
    assert_eq!(w.findings(), []);
    w.grant(a, 100, 100, false, false, true);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::MasterMembership]);
    assert!(
        f[0].message.contains("with SET (granted by \"master\")"),
        "{}",
        f[0]
    );
    assert_eq!(f[0].fix_sql(), ["REVOKE \"a\" FROM \"master\""]);
    assert!(f[0].fix.automatic);

    // The creator's own membership made to inherit (createrole_self_grant): only the options go,
    // and only a superuser can take them.
    let (mut w, [a, ..], _) = two_projects(17);
    w.c.memberships
        .iter_mut()
        .filter(|m| m.role == a && m.member == 100)
        .for_each(|m| m.inherit = true);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::MasterMembership]);
    assert_eq!(
        f[0].fix_sql(),
        ["REVOKE INHERIT OPTION FOR \"a\" FROM \"master\" GRANTED BY \"rdsadmin\""]
    );
    assert!(!f[0].fix.automatic);

    // 13–15: any membership of master in a project role.
    let (mut w, [a, ..], _) = two_projects(15);
    w.grant(a, 100, 100, false, true, true);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::MasterMembership]);
    assert!(f[0].fix.automatic);
}

#[test]
fn a_privileged_membership_is_reported_at_the_first_privileged_role_of_each_chain() {
    for major in [15, 16] {
        let (mut w, [a, ..], _) = two_projects(major);
        let group = w.role_with(300, "ops", false, false);
        if major >= 16 {
            w.grant(group, 100, 10, true, false, false);
        }
        w.grant(group, a, 100, false, true, true);
        w.grant(20, group, 10, false, true, true); // ops ∈ rds_superuser (∋ pg_monitor)
        let f = w.findings();
        assert_eq!(rules(&f), [Rule::PrivilegedMembership], "{major}");
        assert_eq!(
            f[0].message,
            "login role \"a\" is a member of \"rds_superuser\" through \"ops\""
        );
        assert_eq!(
            f[0].objects,
            [
                AuditObject::new(ObjectKind::Role, "a"),
                AuditObject::new(ObjectKind::Role, "rds_superuser"),
                AuditObject::new(ObjectKind::Role, "ops"),
            ]
        );
        // The membership that starts the chain is revoked, as master granted it.
        assert_eq!(f[0].fix_sql(), ["REVOKE \"ops\" FROM \"a\""]);
        assert!(f[0].fix.automatic, "{major}: {}", f[0]);
    }
}

#[test]
fn who_may_revoke_a_membership_depends_on_the_version_and_the_grantor() {
    // Granted by the superuser: before 16 master's CREATEROLE revokes it; on 16+ nobody but a
    // superuser can.
    for (major, automatic, sql) in [
        (15, true, "REVOKE \"rds_superuser\" FROM \"a\""),
        (
            16,
            false,
            "REVOKE \"rds_superuser\" FROM \"a\" GRANTED BY \"rdsadmin\"",
        ),
    ] {
        let (mut w, [a, ..], _) = two_projects(major);
        w.grant(20, a, 10, false, true, true);
        let f = w.findings();
        assert_eq!(rules(&f), [Rule::PrivilegedMembership]);
        assert_eq!(f[0].fix_sql(), [sql]);
        assert_eq!(f[0].fix.automatic, automatic, "{major}: {}", f[0]);
    }
    // 16+: granted by another project role, which master can act as (it created it).
    let (mut w, [a, _, b, _], _) = two_projects(16);
    w.grant(b, a, b, false, true, true);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::CrossProjectMembership]);
    assert_eq!(f[0].fix_sql(), ["REVOKE \"b\" FROM \"a\""]);
    assert_eq!(f[0].fix.statements[0].run_as.as_deref(), Some("b"));
    assert!(f[0].fix.automatic);
    // A reader of one project made a member of the other's owner: which membership or grant is
    // wrong is the operator's call, so nothing is revoked automatically.
    let (mut w, [_, a_ro, b, _], _) = two_projects(16);
    w.grant(b, a_ro, 100, false, true, true);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::CrossProjectMembership]);
    assert_eq!(
        f[0].message,
        "login role \"a_ro\" belongs to several projects: a member of the roles of \"b\" and \
         granted CONNECT on the databases of \"a\""
    );
    assert!(!f[0].fix.automatic);
}

#[test]
fn projects_are_inferred_from_owners_members_and_grants_without_an_inventory() {
    let (mut w, [a, a_ro, _, b_ro], [da, _]) = two_projects(16);
    // A member of a's owner role is a's; b's reader granted CONNECT on a spans two projects.
    let app = w.role("a_app");
    w.grant(a, app, 100, false, true, true);
    w.can_connect(app, da);
    w.acl(da, a, b_ro, "CONNECT");
    w.can_connect(b_ro, da);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::ConnectOutsideProject], "{f:#?}");
    assert_eq!(
        f[0].objects,
        [
            AuditObject::new(ObjectKind::Role, "b_ro"),
            AuditObject::new(ObjectKind::Database, "a"),
            AuditObject::new(ObjectKind::Database, "b"),
        ]
    );
    assert!(!f[0].fix.automatic);
    // An owner that is a member of the other owner: one finding, the connect it gives is not
    // reported twice.
    let (mut w, [a, _, b, _], [_, db]) = two_projects(14);
    w.grant(b, a, 100, false, true, true);
    w.can_connect(a, db);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::CrossProjectMembership]);
    let _ = (a_ro, b_ro);
    // A member of two owners belongs to no single project.
    let (mut w, [a, _, b, _], _) = two_projects(14);
    let both = w.role("both");
    w.grant(a, both, 100, false, true, true);
    w.grant(b, both, 100, false, true, true);
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::CrossProjectMembership]);
    assert!(f[0].message.contains("several projects"), "{}", f[0]);
    // A login role that reaches nothing is unclaimed, as info.
    let (mut w, _, _) = two_projects(18);
    w.role("lonely");
    let report = w.audit(Vec::new(), &Scope::default());
    assert_eq!(rules(&report.findings), [Rule::UnclaimedLoginRole]);
    assert_eq!(report.findings[0].severity, Severity::Info);
    assert!(report.is_clean());
}

#[test]
fn public_access_is_revoked_by_its_grantor_and_not_reported_again_per_role() {
    let (mut w, [a, a_ro, b, b_ro], [da, _]) = two_projects(16);
    w.acl(da, a, 0, "CONNECT");
    w.acl(da, a, 0, "TEMPORARY");
    for r in [b, b_ro] {
        w.can_connect(r, da);
    }
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::PublicDatabaseAccess]);
    assert_eq!(
        f[0].fix_sql(),
        ["REVOKE CONNECT, TEMPORARY ON DATABASE \"a\" FROM PUBLIC"]
    );
    assert_eq!(f[0].fix.statements[0].run_as.as_deref(), Some("a"));
    assert!(f[0].fix.automatic);
    let _ = a_ro;
}

#[test]
fn attributes_master_cannot_remove_are_listed_not_applied() {
    let (mut w, [a, _, b, _], _) = two_projects(16);
    for r in w.c.roles.iter_mut() {
        r.createdb |= r.oid == a;
        r.bypassrls |= r.oid == b;
    }
    let f = w.findings();
    assert_eq!(rules(&f), [Rule::RoleAttribute, Rule::RoleAttribute]);
    let by_sql: BTreeMap<String, bool> = f
        .iter()
        .map(|f| (f.fix_sql()[0].to_owned(), f.fix.automatic))
        .collect();
    assert!(by_sql["ALTER ROLE \"a\" NOCREATEDB"]);
    assert!(!by_sql["ALTER ROLE \"b\" NOBYPASSRLS"]);
}

#[test]
fn in_database_findings_name_their_database_schema_object_and_owner() {
    let (w, [_, _, b, _], _) = two_projects(16);
    let planted = DatabaseCatalog {
        database: "b".into(),
        shadowing: vec![ObjectRow {
            description: "function public.lower(text)".into(),
            kind: "function".into(),
            schema: Some("public".into()),
            identity: Some("public.lower(pg_catalog.text)".into()),
            owner: b,
        }],
        security_definers: vec![
            ObjectRow {
                description: "function public.mine()".into(),
                kind: "function".into(),
                schema: Some("public".into()),
                identity: Some("public.mine()".into()),
                owner: b,
            },
            ObjectRow {
                description: "function public.helper()".into(),
                kind: "function".into(),
                schema: Some("public".into()),
                identity: Some("public.helper()".into()),
                owner: 100,
            },
        ],
        ..DatabaseCatalog::default()
    };
    let report = w.audit(vec![planted], &Scope::default());
    assert_eq!(
        rules(&report.findings),
        [Rule::ShadowingObject, Rule::SecurityDefiner]
    );
    let s = &report.findings[0];
    assert_eq!(s.fix_sql(), ["DROP FUNCTION public.lower(pg_catalog.text)"]);
    assert!(!s.fix.automatic);
    let d = &report.findings[1];
    assert!(
        d.message.contains("public.helper()") && d.message.contains("(master)"),
        "{d}"
    );
    assert_eq!(
        d.fix_sql(),
        ["ALTER ROUTINE public.helper() SECURITY INVOKER"]
    );
}

#[test]
fn settings_are_reported_with_what_can_be_told() {
    let (mut w, _, _) = two_projects(13);
    w.c.password_encryption = "md5".into();
    w.c.rds_force_ssl = Some("0".into());
    let snapshot = Snapshot {
        cluster: w.c.clone(),
        databases: Vec::new(),
        not_audited: vec![("locked".into(), "\"master\" may not connect to it".into())],
        tls: TlsState::NotRequired("rds.force_ssl = 0".into()),
    };
    let report = evaluate(&snapshot, &Scope::default(), "t".into());
    assert_eq!(
        rules(&report.findings),
        [
            Rule::DatabaseNotAudited,
            Rule::TlsRequired,
            Rule::PasswordEncryption
        ]
    );
    assert_eq!(
        report.findings[1].objects,
        [AuditObject::new(ObjectKind::Setting, "rds.force_ssl = 0")]
    );
    assert!(report.findings[1].fix.note.contains("DB parameter group"));
    assert!(!report.is_clean());
}

const INVENTORY: &str = r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "one"
client = "acme"
environment = "staging"
region = "eu-west-1"
postgres_major = 16
endpoint = "db1.example.com"
master_user = "master"

[[instance]]
name = "two"
client = "acme"
environment = "production"
region = "eu-west-1"
postgres_major = 16
endpoint = "db2.example.com"
port = 6432
master_user = "admin"

[[project]]
name = "site-a"
client = "acme"
environment = "staging"
region = "eu-west-1"
instance = "one"

[[project.database]]
name = "a"
owner = "a"
readers = ["a_ro"]

[project.roles]
a = { connection_limit = 10 }
"#;

#[test]
fn the_inventory_instance_is_named_or_found_at_the_connections_endpoint() {
    let inventory = Inventory::from_str(INVENTORY, "fleet.toml").unwrap();
    let at =
        |host: &str, port: u16, user: &str| ConnectOptions::new().host(host).port(port).user(user);
    let pair = |name: Option<&str>| (inventory.clone(), name.map(str::to_owned));
    let s = Scope::resolve(&at("DB1.example.com", 5432, "master"), Some(&pair(None))).unwrap();
    assert_eq!(s.instance.as_deref(), Some("one"));
    assert_eq!(s.projects.len(), 1);
    assert_eq!(
        s.projects[0].settings,
        [ScopeSettings {
            role: "a".to_owned(),
            connection_limit: Some(10),
            valid_until: None,
            iam: None,
        }]
    );
    let e = Scope::resolve(&at("db2.example.com", 5432, "admin"), Some(&pair(None))).unwrap_err();
    assert!(e.to_string().contains("name the one to audit"), "{e}");
    let s = Scope::resolve(&at("tunnel", 15432, "admin"), Some(&pair(Some("two")))).unwrap();
    assert_eq!(s.instance.as_deref(), Some("two"));
    assert!(s.projects.is_empty());
    let e = Scope::resolve(&at("db1.example.com", 5432, "admin"), Some(&pair(None))).unwrap_err();
    assert!(e.to_string().contains("names \"master\" as master"), "{e}");
    let e = Scope::resolve(&at("x", 1, "master"), Some(&pair(Some("three")))).unwrap_err();
    assert!(e.to_string().contains("has no instance \"three\""), "{e}");
}

#[test]
fn with_an_inventory_readers_may_connect_only_where_they_read() {
    let inventory = Inventory::from_str(INVENTORY, "fleet.toml").unwrap();
    let scope = Scope::resolve(
        &ConnectOptions::new().host("db1.example.com").user("master"),
        Some(&(inventory, None)),
    )
    .unwrap();
    let mut w = World::new(16);
    let a = w.role("a");
    let a_ro = w.role("a_ro");
    let da = w.database("a", a);
    let other = w.role("other");
    let dx = w.database("x", other);
    w.acl(da, a, a_ro, "CONNECT");
    w.acl(dx, other, a_ro, "CONNECT");
    for (r, d) in [(a, da), (a_ro, da), (a_ro, dx), (other, dx)] {
        w.can_connect(r, d);
    }
    w.c.roles
        .iter_mut()
        .find(|r| r.oid == a)
        .unwrap()
        .connection_limit = 50;
    let report = w.audit(Vec::new(), &scope);
    let got: Vec<(Rule, Vec<String>)> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.objects.iter().map(|o| o.name.clone()).collect()))
        .collect();
    assert_eq!(
        got,
        [
            (
                Rule::ConnectOutsideProject,
                vec!["a_ro".to_owned(), "x".to_owned()]
            ),
            (Rule::UnclaimedLoginRole, vec!["other".to_owned()]),
            (
                Rule::UnclaimedDatabase,
                vec!["x".to_owned(), "other".to_owned()]
            ),
            (Rule::RoleConnectionLimit, vec!["a".to_owned()]),
        ]
    );
    assert_eq!(
        report.findings[0].fix_sql(),
        ["REVOKE CONNECT ON DATABASE \"x\" FROM \"a_ro\""]
    );
    assert_eq!(
        report.findings[0].fix.statements[0].run_as.as_deref(),
        Some("other")
    );
    assert_eq!(report.instance.as_deref(), Some("one"));
}

#[test]
fn an_iam_setting_is_compared_with_rds_iam_membership() {
    let text = INVENTORY.replace(
        "a = { connection_limit = 10 }",
        "a = { iam = true }\na_ro = { iam = false }",
    );
    let inventory = Inventory::from_str(&text, "fleet.toml").unwrap();
    let scope = Scope::resolve(
        &ConnectOptions::new().host("db1.example.com").user("master"),
        Some(&(inventory, None)),
    )
    .unwrap();
    assert_eq!(scope.projects[0].settings[0].iam, Some(true));
    assert_eq!(scope.projects[0].settings[1].iam, Some(false));
    let mut w = World::new(16);
    let rds_iam = w.role_with(30, "rds_iam", false, false);
    let a = w.role("a");
    let a_ro = w.role("a_ro");
    let da = w.database("a", a);
    w.acl(da, a, a_ro, "CONNECT");
    for r in [a, a_ro] {
        w.can_connect(r, da);
    }
    let iam_findings = |w: &World| -> Vec<(Vec<String>, Vec<String>, String)> {
        w.audit(Vec::new(), &scope)
            .findings
            .iter()
            .filter(|f| f.rule == Rule::RoleIam)
            .map(|f| {
                (
                    f.objects.iter().map(|o| o.name.clone()).collect(),
                    f.fix_sql().into_iter().map(str::to_owned).collect(),
                    f.message.clone(),
                )
            })
            .collect()
    };
    // Neither is what the inventory says: a is no IAM user, a_ro is one.
    w.grant(rds_iam, a_ro, 100, false, true, true);
    let got = iam_findings(&w);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].0, ["a"]);
    assert_eq!(got[0].1, ["GRANT rds_iam TO \"a\""]);
    assert!(
        got[0].2.contains("is not a member of rds_iam"),
        "{}",
        got[0].2
    );
    assert_eq!(got[1].0, ["a_ro"]);
    assert!(
        got[1].1.is_empty(),
        "a password cannot be set by a fix statement"
    );
    assert!(got[1].2.contains("is a member of rds_iam"), "{}", got[1].2);
    // As the inventory says: no finding.
    w.c.memberships
        .retain(|m| !(m.role == rds_iam && m.member == a_ro));
    w.grant(rds_iam, a, 100, false, true, true);
    assert_eq!(iam_findings(&w), []);
}

#[test]
fn rule_ids_are_unique_and_round_trip() {
    let mut seen = BTreeSet::new();
    for rule in Rule::ALL {
        assert!(seen.insert(rule.id()), "{rule:?}");
        assert_eq!(Rule::from_id(rule.id()), Some(*rule));
    }
    assert_eq!(Rule::from_id("nope"), None);
}
