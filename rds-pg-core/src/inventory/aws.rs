//! What AWS says about a fleet, read from the JSON that `aws rds describe-db-instances` and
//! `aws ec2 describe-security-groups` print, and the rules that compare it with the inventory.
//! rds-pg calls no AWS API and holds no AWS credentials.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::check::{instance_at, Finding, FindingObject, ObjectKind, Rule};
use super::{Instance, Inventory, Location};
use crate::error::{Error, Result};

/// A DB instance as `aws rds describe-db-instances` describes it (the fields rds-pg checks).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbInstance {
    /// `DBInstanceIdentifier`.
    pub identifier: String,
    /// `DBInstanceArn`: `arn:PARTITION:rds:REGION:ACCOUNT:db:IDENTIFIER`.
    pub arn: Option<String>,
    /// `Engine` (`postgres` for RDS for PostgreSQL).
    pub engine: Option<String>,
    /// `EngineVersion` (`16.4`).
    pub engine_version: Option<String>,
    /// `Endpoint.Address`.
    pub address: Option<String>,
    /// `Endpoint.Port`.
    pub port: Option<u16>,
    /// `PubliclyAccessible`.
    pub publicly_accessible: Option<bool>,
    /// `StorageEncrypted`.
    pub storage_encrypted: Option<bool>,
    /// `DeletionProtection`.
    pub deletion_protection: Option<bool>,
    /// `BackupRetentionPeriod`, in days.
    pub backup_retention_period: Option<i64>,
    /// `VpcSecurityGroups[].VpcSecurityGroupId`.
    pub vpc_security_groups: Vec<String>,
    /// Where it is: the file and the JSON pointer of the DB instance.
    pub location: Location,
}

impl DbInstance {
    fn arn_part(&self, index: usize) -> Option<&str> {
        let arn = self.arn.as_deref()?;
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        (parts.len() == 7 && parts[0] == "arn" && parts[2] == "rds")
            .then(|| parts[index])
            .filter(|p| !p.is_empty())
    }

    /// The region named by the ARN.
    pub fn region(&self) -> Option<&str> {
        self.arn_part(3)
    }

    /// The AWS account id named by the ARN.
    pub fn account_id(&self) -> Option<&str> {
        self.arn_part(4)
    }

    /// The major version in `EngineVersion` (`16` for `16.4`).
    pub fn engine_major(&self) -> Option<u32> {
        self.engine_version
            .as_deref()?
            .split('.')
            .next()?
            .parse()
            .ok()
    }

    /// The place of one of its fields (`PubliclyAccessible`, `Endpoint/Port`).
    fn at(&self, field: &str) -> Location {
        let mut location = self.location.clone();
        if let Some(p) = &mut location.pointer {
            p.push('/');
            p.push_str(field);
        }
        location
    }

    fn object(&self, field: &str) -> FindingObject {
        FindingObject::new(ObjectKind::DbInstance, &self.identifier, self.at(field))
    }
}

/// One inbound rule of a security group (`IpPermissions[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngressRule {
    /// `IpProtocol`: `tcp`, `udp`, `icmp`, a protocol number, or `-1` (all traffic).
    pub ip_protocol: String,
    /// `FromPort`.
    pub from_port: Option<i64>,
    /// `ToPort`.
    pub to_port: Option<i64>,
    /// `IpRanges[].CidrIp`.
    pub ipv4_ranges: Vec<String>,
    /// `Ipv6Ranges[].CidrIpv6`.
    pub ipv6_ranges: Vec<String>,
    /// `PrefixListIds[].PrefixListId`.
    pub prefix_lists: Vec<String>,
    /// `UserIdGroupPairs[].GroupId`: the security groups let in.
    pub groups: Vec<String>,
    /// Where it is: the file and the JSON pointer of the rule.
    pub location: Location,
}

impl IngressRule {
    /// Whether the rule lets TCP traffic to `port` in: all traffic (`-1`), or TCP with `port` in
    /// `FromPort`..=`ToPort` (all ports when they are not given).
    pub fn allows_tcp_port(&self, port: u16) -> bool {
        match self.ip_protocol.as_str() {
            "-1" => true,
            "tcp" | "6" => {
                let port = i64::from(port);
                let from = self.from_port.unwrap_or(0);
                let to = self.to_port.unwrap_or(65535);
                (from == -1 && to == -1) || (from <= port && port <= to)
            }
            _ => false,
        }
    }

    /// The sources that are not security groups: CIDR ranges and prefix lists.
    pub fn address_sources(&self) -> Vec<&str> {
        self.ipv4_ranges
            .iter()
            .chain(&self.ipv6_ranges)
            .chain(&self.prefix_lists)
            .map(String::as_str)
            .collect()
    }
}

/// A security group as `aws ec2 describe-security-groups` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityGroup {
    /// `GroupId` (`sg-…`).
    pub group_id: String,
    /// `GroupName`.
    pub group_name: Option<String>,
    /// `OwnerId`: the account that owns it.
    pub owner_id: Option<String>,
    /// `VpcId`.
    pub vpc_id: Option<String>,
    /// `IpPermissions`: the inbound rules.
    pub ingress: Vec<IngressRule>,
    /// Where it is: the file and the JSON pointer of the group.
    pub location: Location,
}

/// What AWS describes: DB instances and security groups, from one or more JSON documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsSnapshot {
    /// Every `DBInstances[]` entry, in the order read.
    pub db_instances: Vec<DbInstance>,
    /// Every `SecurityGroups[]` entry, in the order read.
    pub security_groups: Vec<SecurityGroup>,
}

// The shapes AWS documents (DescribeDBInstances, DescribeSecurityGroups), as the AWS CLI prints
// them; fields rds-pg does not check are ignored.

#[derive(Deserialize)]
struct RawDocument {
    #[serde(rename = "DBInstances")]
    db_instances: Option<Vec<serde_json::Value>>,
    #[serde(rename = "SecurityGroups")]
    security_groups: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawDbInstance {
    #[serde(rename = "DBInstanceIdentifier")]
    identifier: String,
    #[serde(rename = "DBInstanceArn")]
    arn: Option<String>,
    #[serde(rename = "Engine")]
    engine: Option<String>,
    #[serde(rename = "EngineVersion")]
    engine_version: Option<String>,
    #[serde(rename = "Endpoint")]
    endpoint: Option<RawEndpoint>,
    #[serde(rename = "PubliclyAccessible")]
    publicly_accessible: Option<bool>,
    #[serde(rename = "StorageEncrypted")]
    storage_encrypted: Option<bool>,
    #[serde(rename = "DeletionProtection")]
    deletion_protection: Option<bool>,
    #[serde(rename = "BackupRetentionPeriod")]
    backup_retention_period: Option<i64>,
    #[serde(rename = "VpcSecurityGroups", default)]
    vpc_security_groups: Vec<RawVpcSecurityGroup>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    #[serde(rename = "Address")]
    address: Option<String>,
    #[serde(rename = "Port")]
    port: Option<u16>,
}

#[derive(Deserialize)]
struct RawVpcSecurityGroup {
    #[serde(rename = "VpcSecurityGroupId")]
    id: String,
}

#[derive(Deserialize)]
struct RawSecurityGroup {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "GroupName")]
    group_name: Option<String>,
    #[serde(rename = "OwnerId")]
    owner_id: Option<String>,
    #[serde(rename = "VpcId")]
    vpc_id: Option<String>,
    #[serde(rename = "IpPermissions", default)]
    ip_permissions: Vec<RawIpPermission>,
}

#[derive(Deserialize)]
struct RawIpPermission {
    #[serde(rename = "IpProtocol")]
    ip_protocol: String,
    #[serde(rename = "FromPort")]
    from_port: Option<i64>,
    #[serde(rename = "ToPort")]
    to_port: Option<i64>,
    #[serde(rename = "IpRanges", default)]
    ip_ranges: Vec<RawIpRange>,
    #[serde(rename = "Ipv6Ranges", default)]
    ipv6_ranges: Vec<RawIpv6Range>,
    #[serde(rename = "PrefixListIds", default)]
    prefix_list_ids: Vec<RawPrefixListId>,
    #[serde(rename = "UserIdGroupPairs", default)]
    user_id_group_pairs: Vec<RawUserIdGroupPair>,
}

#[derive(Deserialize)]
struct RawIpRange {
    #[serde(rename = "CidrIp")]
    cidr_ip: String,
}

#[derive(Deserialize)]
struct RawIpv6Range {
    #[serde(rename = "CidrIpv6")]
    cidr_ipv6: String,
}

#[derive(Deserialize)]
struct RawPrefixListId {
    #[serde(rename = "PrefixListId")]
    prefix_list_id: String,
}

#[derive(Deserialize)]
struct RawUserIdGroupPair {
    #[serde(rename = "GroupId")]
    group_id: Option<String>,
}

impl AwsSnapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the JSON output of `aws rds describe-db-instances` or `aws ec2
    /// describe-security-groups` (a document with `DBInstances`, `SecurityGroups`, or both).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::InvalidInput`] for text that is not
    /// such a document, with the line and column or the JSON pointer of the problem.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading AWS JSON {}", path.display()), e))?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// As [`AwsSnapshot::load`], from `text`; `name` stands for the file in messages.
    ///
    /// # Errors
    /// As [`AwsSnapshot::load`].
    #[allow(clippy::should_implement_trait)] // it takes a name for messages, as FromStr cannot
    pub fn from_str(text: &str, name: &str) -> Result<Self> {
        let doc: RawDocument = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("{name}:{}:{}: {e}", e.line(), e.column())))?;
        if doc.db_instances.is_none() && doc.security_groups.is_none() {
            return Err(Error::InvalidInput(format!(
                "{name}: neither `DBInstances` nor `SecurityGroups`: expected the JSON that `aws \
                 rds describe-db-instances` or `aws ec2 describe-security-groups` prints"
            )));
        }
        let mut snapshot = AwsSnapshot::new();
        for (i, value) in doc.db_instances.into_iter().flatten().enumerate() {
            let pointer = format!("/DBInstances/{i}");
            let raw: RawDbInstance = serde_json::from_value(value)
                .map_err(|e| Error::InvalidInput(format!("{name}#{pointer}: {e}")))?;
            let endpoint = raw.endpoint;
            snapshot.db_instances.push(DbInstance {
                identifier: raw.identifier,
                arn: raw.arn,
                engine: raw.engine,
                engine_version: raw.engine_version,
                address: endpoint.as_ref().and_then(|e| e.address.clone()),
                port: endpoint.as_ref().and_then(|e| e.port),
                publicly_accessible: raw.publicly_accessible,
                storage_encrypted: raw.storage_encrypted,
                deletion_protection: raw.deletion_protection,
                backup_retention_period: raw.backup_retention_period,
                vpc_security_groups: raw.vpc_security_groups.into_iter().map(|g| g.id).collect(),
                location: Location::in_json(name, pointer),
            });
        }
        for (i, value) in doc.security_groups.into_iter().flatten().enumerate() {
            let pointer = format!("/SecurityGroups/{i}");
            let raw: RawSecurityGroup = serde_json::from_value(value)
                .map_err(|e| Error::InvalidInput(format!("{name}#{pointer}: {e}")))?;
            let ingress = raw
                .ip_permissions
                .into_iter()
                .enumerate()
                .map(|(j, p)| IngressRule {
                    ip_protocol: p.ip_protocol,
                    from_port: p.from_port,
                    to_port: p.to_port,
                    ipv4_ranges: p.ip_ranges.into_iter().map(|r| r.cidr_ip).collect(),
                    ipv6_ranges: p.ipv6_ranges.into_iter().map(|r| r.cidr_ipv6).collect(),
                    prefix_lists: p
                        .prefix_list_ids
                        .into_iter()
                        .map(|r| r.prefix_list_id)
                        .collect(),
                    groups: p
                        .user_id_group_pairs
                        .into_iter()
                        .filter_map(|g| g.group_id)
                        .collect(),
                    location: Location::in_json(name, format!("{pointer}/IpPermissions/{j}")),
                })
                .collect();
            snapshot.security_groups.push(SecurityGroup {
                group_id: raw.group_id,
                group_name: raw.group_name,
                owner_id: raw.owner_id,
                vpc_id: raw.vpc_id,
                ingress,
                location: Location::in_json(name, pointer),
            });
        }
        Ok(snapshot)
    }

    /// Adds what `other` describes (another account, region or command's output).
    pub fn extend(&mut self, other: AwsSnapshot) {
        self.db_instances.extend(other.db_instances);
        self.security_groups.extend(other.security_groups);
    }

    /// Reads and merges several files (see [`AwsSnapshot::load`]).
    ///
    /// # Errors
    /// As [`AwsSnapshot::load`], for the first file that fails.
    pub fn load_all<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Self> {
        let mut snapshot = AwsSnapshot::new();
        for path in paths {
            snapshot.extend(AwsSnapshot::load(path)?);
        }
        Ok(snapshot)
    }

    /// The security group with id `id`.
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.group_id == id)
    }
}

impl fmt::Display for DbInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DB instance {:?} ({})", self.identifier, self.location)
    }
}

/// The DB instance identifier an endpoint names (its first label), when it is an RDS endpoint.
fn endpoint_identifier(instance: &Instance) -> Option<String> {
    instance.endpoint_region.as_ref()?;
    instance
        .endpoint
        .split('.')
        .next()
        .map(|s| s.to_ascii_lowercase())
}

/// Whether `db` is the one `instance` names: by endpoint address, else by identifier.
fn same_address(instance: &Instance, db: &DbInstance) -> bool {
    db.address.as_deref().is_some_and(|a| {
        a.trim_end_matches('.')
            .eq_ignore_ascii_case(instance.endpoint.trim_end_matches('.'))
    })
}

fn same_identifier(instance: &Instance, db: &DbInstance) -> bool {
    let id = db.identifier.to_ascii_lowercase();
    endpoint_identifier(instance).is_some_and(|e| e == id)
        || instance.name.to_ascii_lowercase() == id
}

/// The AWS rules, appended to `out`.
pub(super) fn check(inventory: &Inventory, aws: &AwsSnapshot, out: &mut Vec<Finding>) {
    let mut matched = vec![false; aws.db_instances.len()];
    let mut pairs: Vec<(&Instance, Option<usize>)> = inventory
        .instances
        .iter()
        .map(|instance| {
            let i = aws
                .db_instances
                .iter()
                .position(|db| same_address(instance, db));
            if let Some(i) = i {
                matched[i] = true;
            }
            (instance, i)
        })
        .collect();
    for (instance, found) in &mut pairs {
        if found.is_none() {
            *found = aws
                .db_instances
                .iter()
                .enumerate()
                .position(|(i, db)| !matched[i] && same_identifier(instance, db));
            if let Some(i) = *found {
                matched[i] = true;
            }
        }
    }
    for (instance, found) in pairs {
        match found {
            Some(i) => check_instance(inventory, instance, &aws.db_instances[i], aws, out),
            None => out.push(Finding::new(
                Rule::AwsInstanceDescribed,
                format!(
                    "instance {:?} ({}) is not among the DB instances described",
                    instance.name, instance.endpoint
                ),
                vec![instance_at(instance, "endpoint")],
                format!(
                    "add the output of `aws rds describe-db-instances --region {}` in the \
                     account of client {:?}, or correct the instance's `endpoint`",
                    instance.region, instance.client
                ),
            )),
        }
    }
    for (i, db) in aws.db_instances.iter().enumerate() {
        if !matched[i] {
            out.push(Finding::new(
                Rule::AwsInstanceInInventory,
                format!(
                    "DB instance {:?} ({}) is not in the inventory",
                    db.identifier,
                    db.address.as_deref().unwrap_or("no endpoint")
                ),
                vec![db.object("Endpoint/Address")],
                "add it as an [[instance]] (with its endpoint) so that its placement is \
                 checked, or leave it out of the AWS JSON",
            ));
        }
    }
}

fn check_instance(
    inventory: &Inventory,
    instance: &Instance,
    db: &DbInstance,
    aws: &AwsSnapshot,
    out: &mut Vec<Finding>,
) {
    let mut push = |rule: Rule, message: String, key: &str, field: &str, fix: String| {
        out.push(Finding::new(
            rule,
            message,
            vec![instance_at(instance, key), db.object(field)],
            fix,
        ));
    };
    let name = &instance.name;
    let id = &db.identifier;
    if let Some(client) = inventory.client(&instance.client) {
        if db.account_id() != Some(client.account_id.as_str()) {
            push(
                Rule::AwsAccount,
                match db.account_id() {
                    Some(account) => format!(
                        "DB instance {id:?} is in AWS account {account}, not in account {} of \
                         client {:?}",
                        client.account_id, client.name
                    ),
                    None => format!("DB instance {id:?} has no DBInstanceArn naming its account"),
                },
                "client",
                "DBInstanceArn",
                format!(
                    "host instance {name:?} in the AWS account of client {:?} ({}), or correct \
                     the client's `account_id`",
                    client.name, client.account_id
                ),
            );
        }
    }
    if db.region() != Some(instance.region.as_str()) {
        push(
            Rule::AwsRegion,
            format!(
                "DB instance {id:?} is in region {}, the inventory says {:?}",
                db.region().unwrap_or("(unknown)"),
                instance.region
            ),
            if instance.explicit_region.is_some() {
                "region"
            } else {
                "endpoint"
            },
            "DBInstanceArn",
            format!("correct the region of instance {name:?} in the inventory"),
        );
    }
    if db.engine.as_deref() != Some("postgres") {
        push(
            Rule::AwsEngine,
            format!(
                "DB instance {id:?} runs engine {:?}, not RDS for PostgreSQL (\"postgres\")",
                db.engine.as_deref().unwrap_or("(none given)")
            ),
            "endpoint",
            "Engine",
            format!("point instance {name:?} at an RDS for PostgreSQL DB instance"),
        );
    }
    if db.engine_major() != Some(instance.postgres_major) {
        push(
            Rule::AwsEngineMajor,
            format!(
                "DB instance {id:?} runs PostgreSQL {}, the inventory says {}",
                db.engine_version.as_deref().unwrap_or("(no EngineVersion)"),
                instance.postgres_major
            ),
            "postgres_major",
            "EngineVersion",
            format!(
                "correct `postgres_major` of instance {name:?}, or upgrade the DB instance (and \
                 move projects that need the old major to an instance of their own)"
            ),
        );
    }
    if db.port.is_some_and(|p| p != instance.port) {
        push(
            Rule::AwsPort,
            format!(
                "DB instance {id:?} listens on port {}, the inventory says {}",
                db.port.unwrap_or(0),
                instance.port
            ),
            "port",
            "Endpoint/Port",
            format!("correct `port` of instance {name:?}"),
        );
    }
    if db.publicly_accessible != Some(false) {
        push(
            Rule::AwsNotPublic,
            format!(
                "DB instance {id:?} is {}",
                if db.publicly_accessible == Some(true) {
                    "publicly accessible (PubliclyAccessible is true)"
                } else {
                    "not said to be private (no PubliclyAccessible)"
                }
            ),
            "endpoint",
            "PubliclyAccessible",
            format!(
                "aws rds modify-db-instance --db-instance-identifier {id} \
                 --no-publicly-accessible --apply-immediately"
            ),
        );
    }
    if db.storage_encrypted != Some(true) {
        push(
            Rule::AwsStorageEncrypted,
            format!("DB instance {id:?} does not have encrypted storage"),
            "endpoint",
            "StorageEncrypted",
            format!(
                "storage cannot be encrypted in place: restore an encrypted copy of a snapshot \
                 (aws rds copy-db-snapshot --kms-key-id …, then restore-db-instance-from-db-snapshot) \
                 and move instance {name:?} to it"
            ),
        );
    }
    if db.deletion_protection != Some(true) {
        push(
            Rule::AwsDeletionProtection,
            format!("DB instance {id:?} has no deletion protection"),
            "endpoint",
            "DeletionProtection",
            format!(
                "aws rds modify-db-instance --db-instance-identifier {id} --deletion-protection \
                 --apply-immediately"
            ),
        );
    }
    let days = inventory.policy.backup_retention_days;
    if db
        .backup_retention_period
        .is_none_or(|kept| kept < i64::from(days))
    {
        let mut objects = vec![
            instance_at(instance, "endpoint"),
            db.object("BackupRetentionPeriod"),
        ];
        if let Some(location) = &inventory.policy.location {
            objects.push(FindingObject::new(
                ObjectKind::Policy,
                "backup_retention_days",
                location.clone(),
            ));
        }
        out.push(Finding::new(
            Rule::AwsBackupRetention,
            format!(
                "DB instance {id:?} keeps automated backups {} days, the policy asks for at \
                 least {days}",
                db.backup_retention_period
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "(unknown)".into())
            ),
            objects,
            format!(
                "aws rds modify-db-instance --db-instance-identifier {id} \
                 --backup-retention-period {days} --apply-immediately"
            ),
        ));
    }
    security_groups(instance, db, aws, out);
}

fn security_groups(
    instance: &Instance,
    db: &DbInstance,
    aws: &AwsSnapshot,
    out: &mut Vec<Finding>,
) {
    let id = &db.identifier;
    let port = db.port.unwrap_or(instance.port);
    if db.vpc_security_groups.is_empty() {
        out.push(Finding::new(
            Rule::AwsSecurityGroupDescribed,
            format!("DB instance {id:?} lists no VPC security group"),
            vec![
                instance_at(instance, "endpoint"),
                db.object("VpcSecurityGroups"),
            ],
            "check that the DB instance is in a VPC with a security group of its own",
        ));
    }
    for (i, group_id) in db.vpc_security_groups.iter().enumerate() {
        let Some(group) = aws.security_group(group_id) else {
            out.push(Finding::new(
                Rule::AwsSecurityGroupDescribed,
                format!(
                    "security group {group_id} of DB instance {id:?} is not among the security \
                     groups described, so its rules were not checked"
                ),
                vec![
                    instance_at(instance, "endpoint"),
                    db.object(&format!("VpcSecurityGroups/{i}/VpcSecurityGroupId")),
                ],
                format!(
                    "add the output of `aws ec2 describe-security-groups --group-ids {group_id} \
                     --region {}`",
                    instance.region
                ),
            ));
            continue;
        };
        let open: Vec<&IngressRule> = group
            .ingress
            .iter()
            .filter(|r| r.allows_tcp_port(port) && !r.address_sources().is_empty())
            .collect();
        if open.is_empty() {
            continue;
        }
        let sources: Vec<&str> = open.iter().flat_map(|r| r.address_sources()).collect();
        let mut objects = vec![
            instance_at(instance, "endpoint"),
            db.object("VpcSecurityGroups"),
        ];
        objects.extend(open.iter().map(|r| {
            FindingObject::new(
                ObjectKind::SecurityGroup,
                &group.group_id,
                r.location.clone(),
            )
        }));
        out.push(Finding::new(
            Rule::AwsIngressFromSecurityGroups,
            format!(
                "security group {} of DB instance {id:?} lets port {port} in from address \
                 ranges, not only from security groups: {}",
                group.group_id,
                sources.join(", ")
            ),
            objects,
            format!(
                "remove those rules (aws ec2 revoke-security-group-ingress --group-id {} …) and \
                 allow port {port} only from the application servers' security group \
                 (--source-group)",
                group.group_id
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts_and_engine_major() {
        let db = DbInstance {
            identifier: "x".into(),
            arn: Some("arn:aws:rds:eu-west-1:111122223333:db:x".into()),
            engine: Some("postgres".into()),
            engine_version: Some("16.4".into()),
            address: None,
            port: None,
            publicly_accessible: None,
            storage_encrypted: None,
            deletion_protection: None,
            backup_retention_period: None,
            vpc_security_groups: Vec::new(),
            location: Location::in_json("f", "/DBInstances/0"),
        };
        assert_eq!(db.region(), Some("eu-west-1"));
        assert_eq!(db.account_id(), Some("111122223333"));
        assert_eq!(db.engine_major(), Some(16));
        assert_eq!(
            db.at("Endpoint/Port").to_string(),
            "f#/DBInstances/0/Endpoint/Port"
        );
        let bad = DbInstance {
            arn: Some("arn:aws:ec2:eu-west-1:1:db:x".into()),
            ..db
        };
        assert_eq!(bad.account_id(), None);
    }

    #[test]
    fn which_rules_let_a_port_in() {
        let rule = |proto: &str, from: Option<i64>, to: Option<i64>| IngressRule {
            ip_protocol: proto.into(),
            from_port: from,
            to_port: to,
            ipv4_ranges: vec!["10.0.0.0/8".into()],
            ipv6_ranges: Vec::new(),
            prefix_lists: Vec::new(),
            groups: Vec::new(),
            location: Location::default(),
        };
        assert!(rule("-1", None, None).allows_tcp_port(5432));
        assert!(rule("tcp", Some(5432), Some(5432)).allows_tcp_port(5432));
        assert!(rule("tcp", Some(0), Some(65535)).allows_tcp_port(5432));
        assert!(rule("6", Some(5000), Some(6000)).allows_tcp_port(5432));
        assert!(!rule("tcp", Some(22), Some(22)).allows_tcp_port(5432));
        assert!(!rule("udp", Some(5432), Some(5432)).allows_tcp_port(5432));
        assert!(!rule("icmp", Some(-1), Some(-1)).allows_tcp_port(5432));
    }
}
