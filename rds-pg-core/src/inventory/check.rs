//! `fleet check`: the hosting policies as rules over an [`Inventory`] (and, optionally, what AWS
//! describes), each finding with its rule, severity, the entries involved and the fix.

use std::collections::BTreeMap;
use std::fmt;

use super::aws::{self, AwsSnapshot};
use super::{Instance, Inventory, Location, Project};
use crate::config::SslMode;
use crate::ident::{RoleName, RESERVED_NAMES};

/// How much a finding matters. Either makes `fleet check` fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A policy is broken: data of one client, project or environment can reach another, or an
    /// instance is exposed or unprotected.
    Error,
    /// Something could not be verified, or is likely a mistake that breaks nothing yet.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

crate::rule::rule_enum! {
    enum = "A rule `fleet check` applies; [`Rule::id`] is its stable name.",
    all = "Every rule, inventory rules first, in the order they are applied.",
    id = "The rule's stable id, e.g. `one-client-per-instance`.",
    severity = "How much breaking the rule matters.";
    /// Every project on an instance belongs to the instance's client (each client's data stays
    /// on instances in its own AWS account).
    OneClientPerInstance = "one-client-per-instance", Error;
    /// The servers of every project on an instance are in the instance's region.
    SameRegion = "same-region", Error;
    /// An instance's `region` agrees with the region its RDS endpoint names.
    EndpointRegion = "endpoint-region", Error;
    /// Staging and production never share an instance: a project's environment is its
    /// instance's.
    SeparateStagingProduction = "separate-staging-production", Error;
    /// One PostgreSQL major version per instance: a project that needs another major needs
    /// another instance.
    OneMajorPerInstance = "one-major-per-instance", Error;
    /// A database name is used once per instance.
    UniqueDatabaseName = "unique-database-name", Error;
    /// A database lists a role once: no reader twice, not its owner as a reader.
    UniqueRoleName = "unique-role-name", Warning;
    /// A role belongs to one project of an instance: it is not one project's owner or reader
    /// and another project's owner or reader (its credentials on one project's servers would
    /// reach the other's data).
    RolePerProject = "role-per-project", Error;
    /// No project role is named like the instance's master user or a role RDS or PostgreSQL
    /// reserve (`rdsadmin`, `postgres`, `public`, `rds_*`, `pg_*`), in any letter case.
    ReservedRoleName = "reserved-role-name", Error;
    /// An IAM role (`iam = true` in `[project.roles]`) has no `[project.credentials]` entry that
    /// rds-pg would write to: it has no password, so nothing is ever delivered there (an entry
    /// with a `read_command`, which `backup run` reads the owner's credentials with, is not a
    /// finding).
    IamRoleCredentials = "iam-role-credentials", Warning;
    /// Master's connection to an instance verifies the server's certificate and name (`sslmode`
    /// is `verify-full`, the default): anything weaker sends master's password to whoever
    /// answers at the endpoint.
    VerifiedTls = "verified-tls", Warning;
    /// Each inventory instance is in the AWS descriptions given.
    AwsInstanceDescribed = "aws-instance-described", Warning;
    /// Each described DB instance is in the inventory.
    AwsInstanceInInventory = "aws-instance-in-inventory", Warning;
    /// The DB instance is in its client's AWS account (`DBInstanceArn`).
    AwsAccount = "aws-account", Error;
    /// The DB instance is in the inventory's region (`DBInstanceArn`).
    AwsRegion = "aws-region", Error;
    /// The DB instance runs RDS for PostgreSQL (`Engine` is `postgres`).
    AwsEngine = "aws-engine", Error;
    /// The DB instance's major version is the inventory's (`EngineVersion`).
    AwsEngineMajor = "aws-engine-major", Error;
    /// The DB instance listens on the inventory's port (`Endpoint.Port`).
    AwsPort = "aws-port", Error;
    /// The DB instance is not reachable from the Internet (`PubliclyAccessible` is false).
    AwsNotPublic = "aws-not-public", Error;
    /// Its VPC security groups let the PostgreSQL port in only from other security groups
    /// (`UserIdGroupPairs`): no IPv4 or IPv6 CIDR range, no prefix list.
    AwsIngressFromSecurityGroups = "aws-ingress-from-security-groups", Error;
    /// Each of its VPC security groups is in the AWS descriptions given, so its rules can be
    /// checked.
    AwsSecurityGroupDescribed = "aws-security-group-described", Warning;
    /// Its storage is encrypted (`StorageEncrypted`).
    AwsStorageEncrypted = "aws-storage-encrypted", Error;
    /// It cannot be deleted by mistake (`DeletionProtection`).
    AwsDeletionProtection = "aws-deletion-protection", Error;
    /// It keeps automated backups at least as long as the policy says (`BackupRetentionPeriod`).
    AwsBackupRetention = "aws-backup-retention", Error;
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.id())
    }
}

/// What kind of thing a finding names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// An inventory client.
    Client,
    /// An inventory instance.
    Instance,
    /// An inventory project.
    Project,
    /// A database of a project.
    Database,
    /// A role of a project.
    Role,
    /// The inventory's `[policy]`.
    Policy,
    /// A DB instance in `aws rds describe-db-instances` output.
    DbInstance,
    /// A security group in `aws ec2 describe-security-groups` output.
    SecurityGroup,
}

impl ObjectKind {
    /// `client`, `instance`, `project`, `database`, `role`, `policy`, `db_instance` or
    /// `security_group`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ObjectKind::Client => "client",
            ObjectKind::Instance => "instance",
            ObjectKind::Project => "project",
            ObjectKind::Database => "database",
            ObjectKind::Role => "role",
            ObjectKind::Policy => "policy",
            ObjectKind::DbInstance => "db_instance",
            ObjectKind::SecurityGroup => "security_group",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One entry a finding is about, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindingObject {
    /// What it is.
    pub kind: ObjectKind,
    /// Its name (a DB instance's identifier, a security group's id).
    pub name: String,
    /// Where it is: the inventory line of the key that matters, or the JSON value.
    pub location: Location,
}

impl FindingObject {
    /// An object of `kind` named `name` at `location`.
    pub fn new(kind: ObjectKind, name: impl Into<String>, location: Location) -> Self {
        FindingObject {
            kind,
            name: name.into(),
            location,
        }
    }
}

impl fmt::Display for FindingObject {
    /// `project "shop" at fleet.toml:40:11`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} at {}", self.kind, self.name, self.location)
    }
}

/// One broken rule: which, how bad, what is wrong, the entries involved and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Its severity.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The entries involved, each with its place.
    pub objects: Vec<FindingObject>,
    /// How to fix it, in words.
    pub fix: String,
}

impl Finding {
    /// A finding of `rule` (with the rule's severity).
    pub fn new(
        rule: Rule,
        message: impl Into<String>,
        objects: Vec<FindingObject>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            rule,
            severity: rule.severity(),
            message: message.into(),
            objects,
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Finding {
    /// A block: `SEVERITY RULE: message`, one line per object, then `fix: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<7} {}: {}", self.severity, self.rule, self.message)?;
        for object in &self.objects {
            write!(f, "\n        {object}")?;
        }
        write!(f, "\n        fix: {}", self.fix)
    }
}

/// What [`Inventory::check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// The inventory checked.
    pub source: String,
    /// Every finding, in the order of the inventory (then of the AWS descriptions).
    pub findings: Vec<Finding>,
    /// How many instances the inventory has.
    pub instances: usize,
    /// How many projects the inventory has.
    pub projects: usize,
    /// How many DB instances the AWS descriptions hold; `None` when none were given.
    pub aws_db_instances: Option<usize>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

impl fmt::Display for CheckReport {
    /// The summary line: `fleet.toml: 2 findings (1 error, 1 warning); 3 instances, …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(f, "{}: ", self.source)?;
        if self.is_clean() {
            f.write_str("clean")?;
        } else {
            write!(
                f,
                "{} ({}, {})",
                plural(self.findings.len(), "finding", "findings"),
                plural(self.count(Severity::Error), "error", "errors"),
                plural(self.count(Severity::Warning), "warning", "warnings")
            )?;
        }
        write!(
            f,
            "; {}, {} checked",
            plural(self.instances, "instance", "instances"),
            plural(self.projects, "project", "projects")
        )?;
        match self.aws_db_instances {
            Some(n) => write!(
                f,
                " against {} described by AWS",
                plural(n, "DB instance", "DB instances")
            ),
            None => f.write_str(" (no AWS descriptions given)"),
        }
    }
}

/// The inventory rules (not the AWS ones) for one instance and the projects on it.
pub(crate) fn check_instance(inventory: &Inventory, instance: &Instance) -> Vec<Finding> {
    let mut findings = Vec::new();
    let projects: Vec<&Project> = inventory.projects_on(&instance.name).collect();
    placement(instance, &projects, &mut findings);
    names(instance, &projects, &mut findings);
    iam_credentials(&projects, &mut findings);
    if instance.sslmode != SslMode::VerifyFull {
        findings.push(Finding::new(
            Rule::VerifiedTls,
            format!(
                "master connects to instance {:?} with sslmode {}, which does not check that the \
                 server is the instance: its password goes to whoever answers at {}",
                instance.name, instance.sslmode, instance.endpoint
            ),
            vec![FindingObject::new(
                ObjectKind::Instance,
                instance.name.clone(),
                instance.locations.of("sslmode").clone(),
            )],
            "remove `sslmode` (verify-full is the default) and name AWS's global-bundle.pem in \
             `sslrootcert` or PGSSLROOTCERT",
        ));
    }
    findings
}

/// Runs every rule.
pub(super) fn run(inventory: &Inventory, aws: Option<&AwsSnapshot>) -> CheckReport {
    let mut findings = Vec::new();
    for instance in &inventory.instances {
        findings.extend(check_instance(inventory, instance));
    }
    if let Some(aws) = aws {
        aws::check(inventory, aws, &mut findings);
    }
    CheckReport {
        source: inventory.source.clone(),
        findings,
        instances: inventory.instances.len(),
        projects: inventory.projects.len(),
        aws_db_instances: aws.map(|a| a.db_instances.len()),
    }
}

pub(super) fn instance_at(instance: &Instance, key: &str) -> FindingObject {
    FindingObject::new(
        ObjectKind::Instance,
        &instance.name,
        instance.locations.of(key).clone(),
    )
}

fn project_at(project: &Project, key: &str) -> FindingObject {
    FindingObject::new(
        ObjectKind::Project,
        &project.name,
        project.locations.of(key).clone(),
    )
}

/// The rules about where a project may live: client, region, environment, major version.
fn placement(instance: &Instance, projects: &[&Project], out: &mut Vec<Finding>) {
    if let (Some(explicit), Some(endpoint)) = (&instance.explicit_region, &instance.endpoint_region)
    {
        if explicit != endpoint {
            out.push(Finding::new(
                Rule::EndpointRegion,
                format!(
                    "instance {:?} says region {explicit:?}, but its endpoint {:?} is in \
                     {endpoint:?}",
                    instance.name, instance.endpoint
                ),
                vec![
                    instance_at(instance, "region"),
                    instance_at(instance, "endpoint"),
                ],
                format!(
                    "correct `region` or `endpoint` of instance {:?} (or drop `region`: the \
                     endpoint says it)",
                    instance.name
                ),
            ));
        }
    }
    let region_key = if instance.explicit_region.is_some() {
        "region"
    } else {
        "endpoint"
    };
    for project in projects {
        if project.client != instance.client {
            out.push(Finding::new(
                Rule::OneClientPerInstance,
                format!(
                    "project {:?} of client {:?} is on instance {:?} of client {:?}",
                    project.name, project.client, instance.name, instance.client
                ),
                vec![
                    project_at(project, "client"),
                    instance_at(instance, "client"),
                ],
                format!(
                    "move project {:?} to an instance of client {:?} (in its own AWS account), \
                     or correct its `client`",
                    project.name, project.client
                ),
            ));
        }
        if project.region != instance.region {
            out.push(Finding::new(
                Rule::SameRegion,
                format!(
                    "project {:?} has its servers in {:?}, but instance {:?} is in {:?}",
                    project.name, project.region, instance.name, instance.region
                ),
                vec![
                    project_at(project, "region"),
                    instance_at(instance, region_key),
                ],
                format!(
                    "move project {:?} to an instance in {:?}, or correct its `region`",
                    project.name, project.region
                ),
            ));
        }
        if project.environment != instance.environment {
            out.push(Finding::new(
                Rule::SeparateStagingProduction,
                format!(
                    "{} project {:?} is on {} instance {:?}",
                    project.environment, project.name, instance.environment, instance.name
                ),
                vec![
                    project_at(project, "environment"),
                    instance_at(instance, "environment"),
                ],
                format!(
                    "move project {:?} to a {} instance: staging and production never share an \
                     instance",
                    project.name, project.environment
                ),
            ));
        }
        if let Some(major) = project.postgres_major {
            if major != instance.postgres_major {
                out.push(Finding::new(
                    Rule::OneMajorPerInstance,
                    format!(
                        "project {:?} needs PostgreSQL {major}, but instance {:?} runs {}",
                        project.name, instance.name, instance.postgres_major
                    ),
                    vec![
                        project_at(project, "postgres_major"),
                        instance_at(instance, "postgres_major"),
                    ],
                    format!(
                        "move project {:?} to an instance of PostgreSQL {major} (one major \
                         version per instance), or correct its `postgres_major`",
                        project.name
                    ),
                ));
            }
        }
    }
}

/// One use of a role on an instance.
struct RoleUse<'a> {
    project: &'a Project,
    database: &'a str,
    reader: bool,
    location: Location,
}

/// The rules about names on one instance: databases, roles shared, reserved names.
fn names(instance: &Instance, projects: &[&Project], out: &mut Vec<Finding>) {
    let mut databases: BTreeMap<&str, Vec<(&Project, Location)>> = BTreeMap::new();
    let mut roles: BTreeMap<&RoleName, Vec<RoleUse<'_>>> = BTreeMap::new();
    for project in projects {
        for db in &project.databases {
            databases
                .entry(db.name.as_str())
                .or_default()
                .push((project, db.locations.of("name").clone()));
            roles.entry(&db.owner).or_default().push(RoleUse {
                project,
                database: db.name.as_str(),
                reader: false,
                location: db.locations.of("owner").clone(),
            });
            let mut listed: Vec<&RoleName> = vec![&db.owner];
            for (reader, location) in db.readers.iter().zip(&db.reader_locations) {
                if listed.contains(&reader) {
                    let what = if reader == &db.owner {
                        "its owner as a reader"
                    } else {
                        "a reader twice"
                    };
                    out.push(Finding::new(
                        Rule::UniqueRoleName,
                        format!(
                            "database {:?} of project {:?} lists {what}: {:?}",
                            db.name.as_str(),
                            project.name,
                            reader.as_str()
                        ),
                        vec![
                            FindingObject::new(
                                ObjectKind::Database,
                                db.name.as_str(),
                                db.locations.of("name").clone(),
                            ),
                            FindingObject::new(ObjectKind::Role, reader.as_str(), location.clone()),
                        ],
                        format!(
                            "list {:?} once in database {:?} (an owner reads its database \
                             already)",
                            reader.as_str(),
                            db.name.as_str()
                        ),
                    ));
                    continue;
                }
                listed.push(reader);
                roles.entry(reader).or_default().push(RoleUse {
                    project,
                    database: db.name.as_str(),
                    reader: true,
                    location: location.clone(),
                });
            }
        }
    }
    for (name, uses) in &databases {
        if uses.len() > 1 {
            let owners: Vec<String> = uses.iter().map(|(p, _)| format!("{:?}", p.name)).collect();
            out.push(Finding::new(
                Rule::UniqueDatabaseName,
                format!(
                    "database {name:?} is listed {} times on instance {:?} (projects {})",
                    uses.len(),
                    instance.name,
                    owners.join(", ")
                ),
                uses.iter()
                    .map(|(_, l)| FindingObject::new(ObjectKind::Database, *name, l.clone()))
                    .collect(),
                format!(
                    "give each database on instance {:?} its own name, or host one of them on \
                     another instance",
                    instance.name
                ),
            ));
        }
    }
    for (role, uses) in &roles {
        let mut distinct: Vec<&str> = Vec::new();
        for u in uses {
            if !distinct.contains(&u.project.name.as_str()) {
                distinct.push(&u.project.name);
            }
        }
        if distinct.len() > 1 {
            let described: Vec<String> = uses
                .iter()
                .map(|u| {
                    format!(
                        "{} of {:?} in project {:?}",
                        if u.reader { "reader" } else { "owner" },
                        u.database,
                        u.project.name
                    )
                })
                .collect();
            out.push(Finding::new(
                Rule::RolePerProject,
                format!(
                    "role {:?} belongs to {} projects on instance {:?}: {}",
                    role.as_str(),
                    distinct.len(),
                    instance.name,
                    described.join("; ")
                ),
                uses.iter()
                    .map(|u| {
                        FindingObject::new(ObjectKind::Role, role.as_str(), u.location.clone())
                    })
                    .collect(),
                format!(
                    "give each project its own role (e.g. {}): credentials on one project's \
                     servers must not reach another project's data",
                    distinct
                        .iter()
                        .map(|p| format!("{:?}", format!("{p}_{}", role.as_str())))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if let Some(reason) = reserved_like(role, &instance.master_user) {
            out.push(Finding::new(
                Rule::ReservedRoleName,
                format!(
                    "role {:?} of project {:?} is named like {reason}",
                    role.as_str(),
                    uses[0].project.name
                ),
                uses.iter()
                    .map(|u| {
                        FindingObject::new(ObjectKind::Role, role.as_str(), u.location.clone())
                    })
                    .chain(std::iter::once(instance_at(instance, "master_user")))
                    .collect(),
                format!(
                    "rename role {:?}: a name that differs from a privileged role only in letter \
                     case is one unquoted SQL identifier away from it",
                    role.as_str()
                ),
            ));
        }
    }
}

/// An IAM role's credentials entry that would only ever be written to: nothing is.
fn iam_credentials(projects: &[&Project], out: &mut Vec<Finding>) {
    for project in projects {
        for settings in project.role_settings.iter().filter(|s| s.iam == Some(true)) {
            let Some(entry) = project.credentials_entry(&settings.role) else {
                continue;
            };
            if entry.read_command.is_some() {
                continue;
            }
            let role = settings.role.as_str();
            out.push(Finding::new(
                Rule::IamRoleCredentials,
                format!(
                    "role {role:?} of project {:?} is an IAM user (iam = true), but \
                     [project.credentials] names the {} for it: an IAM user has no password, so \
                     rds-pg never writes there, and whatever it holds does not log the role in",
                    project.name, entry.sink
                ),
                vec![
                    FindingObject::new(ObjectKind::Role, role, settings.location.clone()),
                    FindingObject::new(ObjectKind::Role, role, entry.location.clone()),
                ],
                format!(
                    "remove {role:?} from [project.credentials] of project {:?} (it is needed \
                     again to switch the role back to a password with iam = false)",
                    project.name
                ),
            ));
        }
    }
}

/// Why `role` is too close to the master user or a reserved role, if it is.
fn reserved_like(role: &RoleName, master: &RoleName) -> Option<String> {
    let name = role.as_str();
    let lower = name.to_lowercase();
    if name == master.as_str() {
        return Some(format!("the instance's master user {:?}", master.as_str()));
    }
    if lower == master.as_str().to_lowercase() {
        return Some(format!(
            "the instance's master user {:?} (they differ only in letter case)",
            master.as_str()
        ));
    }
    // The reserved names that are roles (the others are template databases).
    let reserved_roles = RESERVED_NAMES.iter().filter(|r| !r.starts_with("template"));
    if let Some(reserved) = reserved_roles.into_iter().find(|r| **r == lower) {
        return Some(format!(
            "the reserved role {reserved:?} (they differ only in letter case)"
        ));
    }
    for prefix in ["rds_", "pg_"] {
        if lower.starts_with(prefix) {
            return Some(format!(
                "a reserved {prefix}* role (the prefix differs only in letter case)"
            ));
        }
    }
    None
}
