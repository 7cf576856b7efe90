//! The rules: a pure function from what the audit read (and the inventory's projects, when
//! given) to findings, each with the SQL that repairs it and whether `--fix` may run that SQL.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::inspect::{
    AclRow, ClusterCatalog, DatabaseRow, MembershipRow, RoleRow, Snapshot, TlsState,
    SYSTEM_DATABASES,
};
use super::{
    AuditObject, AuditReport, ConnectAccess, Finding, Fix, FixStatement, ObjectKind, Rule, Severity,
};
use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::inspect::PRIVILEGED_ROLES;
use crate::inventory::Inventory;

/// Roles AWS keeps on RDS instances for itself (beyond the `pg_` and `rds_` prefixes), which
/// are no project's.
pub(crate) const AWS_INTERNAL_ROLES: [&str; 3] = ["rdsadmin", "rdsrepladmin", "rdstopmgr"];

fn q(name: &str) -> String {
    escape_identifier(name)
}

/// One project as the inventory describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScopeProject {
    pub name: String,
    /// (database, owner, readers).
    pub databases: Vec<(String, String, Vec<String>)>,
    /// What the inventory says of each role (`[project.roles]`).
    pub settings: Vec<ScopeSettings>,
}

/// What the inventory says of one project role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScopeSettings {
    pub role: String,
    pub connection_limit: Option<i32>,
    pub valid_until: Option<String>,
    /// Whether it is an IAM user (`Some(true)`) or a password user (`Some(false)`).
    pub iam: Option<bool>,
}

/// What the server is compared with: the projects of one inventory instance, or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    pub instance: Option<String>,
    pub projects: Vec<ScopeProject>,
}

impl Scope {
    /// Picks the inventory instance (named, else the one at the connection's endpoint and port,
    /// else the only one) and checks its master user against the connection's.
    pub(crate) fn resolve(
        master: &ConnectOptions,
        inventory: Option<&(Inventory, Option<String>)>,
    ) -> Result<Scope> {
        let Some((inventory, name)) = inventory else {
            return Ok(Scope::default());
        };
        let names: Vec<String> = inventory
            .instances
            .iter()
            .map(|i| format!("{:?}", i.name))
            .collect();
        let instance = match name {
            Some(n) => inventory.instance(n).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "inventory {} has no instance {n:?} (it has {})",
                    inventory.source,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ))
            })?,
            None => {
                let at: Vec<_> = inventory
                    .instances
                    .iter()
                    .filter(|i| {
                        i.endpoint.eq_ignore_ascii_case(master.get_host())
                            && i.port == master.get_port()
                    })
                    .collect();
                match (at.as_slice(), inventory.instances.as_slice()) {
                    ([one], _) => *one,
                    ([], [only]) => only,
                    _ => {
                        return Err(Error::InvalidInput(format!(
                            "inventory {} has {} instances and {} of them at {}:{}: name the one \
                             to audit (--instance; one of {})",
                            inventory.source,
                            inventory.instances.len(),
                            at.len(),
                            master.get_host(),
                            master.get_port(),
                            names.join(", ")
                        )))
                    }
                }
            }
        };
        if instance.master_user.as_str() != master.get_user() {
            return Err(Error::InvalidInput(format!(
                "inventory instance {:?} names {:?} as master, but the audit connects as {:?}",
                instance.name,
                instance.master_user.as_str(),
                master.get_user()
            )));
        }
        let projects = inventory
            .projects_on(&instance.name)
            .map(|p| ScopeProject {
                name: p.name.clone(),
                databases: p
                    .databases
                    .iter()
                    .map(|d| {
                        (
                            d.name.as_str().to_owned(),
                            d.owner.as_str().to_owned(),
                            d.readers.iter().map(|r| r.as_str().to_owned()).collect(),
                        )
                    })
                    .collect(),
                settings: p
                    .role_settings
                    .iter()
                    .map(|s| ScopeSettings {
                        role: s.role.as_str().to_owned(),
                        connection_limit: s.connection_limit,
                        valid_until: s.valid_until.clone(),
                        iam: s.iam,
                    })
                    .collect(),
            })
            .collect();
        Ok(Scope {
            instance: Some(instance.name.clone()),
            projects,
        })
    }

    /// The roles with a `valid_until` requirement, and the requirement (for the cluster query).
    pub(crate) fn valid_until_requirements(&self) -> (Vec<String>, Vec<Option<String>>) {
        self.projects
            .iter()
            .flat_map(|p| &p.settings)
            .filter(|s| s.valid_until.is_some())
            .map(|s| (s.role.clone(), s.valid_until.clone()))
            .unzip()
    }
}

/// How master can run a statement as another role.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Acting {
    /// As itself.
    Master,
    /// Through `SET ROLE` (with a temporary membership when it has none).
    As(String),
    /// It cannot; why.
    Cannot(String),
}

/// What the rules look things up in.
struct Ctx<'a> {
    cluster: &'a ClusterCatalog,
    major: u32,
    master: Option<&'a RoleRow>,
    roles: HashMap<u32, &'a RoleRow>,
    member_of: HashMap<u32, Vec<&'a MembershipRow>>,
    databases: HashMap<u32, &'a DatabaseRow>,
    privileged: BTreeSet<u32>,
}

impl<'a> Ctx<'a> {
    fn new(cluster: &'a ClusterCatalog) -> Ctx<'a> {
        let roles: HashMap<u32, &RoleRow> = cluster.roles.iter().map(|r| (r.oid, r)).collect();
        let master = cluster
            .roles
            .iter()
            .find(|r| r.name == cluster.current_user);
        let mut member_of: HashMap<u32, Vec<&MembershipRow>> = HashMap::new();
        for m in &cluster.memberships {
            member_of.entry(m.member).or_default().push(m);
        }
        let mut privileged: BTreeSet<u32> = cluster
            .roles
            .iter()
            .filter(|r| PRIVILEGED_ROLES.contains(&r.name.as_str()))
            .map(|r| r.oid)
            .collect();
        privileged.extend(master.map(|m| m.oid));
        Ctx {
            cluster,
            major: cluster.version_num / 10000,
            master,
            roles,
            member_of,
            databases: cluster.databases.iter().map(|d| (d.oid, d)).collect(),
            privileged,
        }
    }

    fn master_oid(&self) -> u32 {
        self.master.map(|m| m.oid).unwrap_or(u32::MAX)
    }

    fn master_name(&self) -> &str {
        &self.cluster.current_user
    }

    fn master_is_superuser(&self) -> bool {
        self.master.is_some_and(|m| m.superuser)
    }

    /// The role's name; `PUBLIC` for 0.
    fn name(&self, oid: u32) -> String {
        if oid == 0 {
            return "PUBLIC".to_owned();
        }
        self.roles
            .get(&oid)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("(role {oid})"))
    }

    /// The role as SQL names it: quoted, or `PUBLIC`.
    fn grantee_sql(&self, oid: u32) -> String {
        if oid == 0 {
            "PUBLIC".to_owned()
        } else {
            q(&self.name(oid))
        }
    }

    /// Roles RDS and PostgreSQL keep for themselves: the bootstrap superuser, `pg_*`, `rds_*`
    /// and AWS's own.
    fn is_system(&self, oid: u32) -> bool {
        let Some(r) = self.roles.get(&oid) else {
            return true;
        };
        oid == 10
            || r.name.starts_with("pg_")
            || r.name.starts_with("rds_")
            || AWS_INTERNAL_ROLES.contains(&r.name.as_str())
    }

    /// A role whose privileges the audit judges: not a system role, not master.
    fn audited(&self, oid: u32) -> bool {
        oid != 0 && !self.is_system(oid) && oid != self.master_oid()
    }

    fn audited_login(&self, oid: u32) -> bool {
        self.audited(oid) && self.roles.get(&oid).is_some_and(|r| r.login)
    }

    /// Master or a superuser: roles whose objects and grants are not a project's doing.
    fn trusted(&self, oid: u32) -> bool {
        oid == self.master_oid() || self.roles.get(&oid).is_some_and(|r| r.superuser)
    }

    fn is_superuser(&self, oid: u32) -> bool {
        self.roles.get(&oid).is_some_and(|r| r.superuser)
    }

    fn login_roles(&self) -> Vec<&'a RoleRow> {
        let mut v: Vec<&RoleRow> = self
            .cluster
            .roles
            .iter()
            .filter(|r| self.audited_login(r.oid))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every role `from` is a member of, directly or through a chain, with the shortest chain
    /// (the roles after `from`, ending with the role itself). `stop_at` roles are reached but
    /// not gone through.
    fn reach(&self, from: u32, stop_at: &BTreeSet<u32>) -> BTreeMap<u32, Vec<u32>> {
        let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut queue = VecDeque::from([(from, Vec::new())]);
        while let Some((node, path)) = queue.pop_front() {
            if node != from && stop_at.contains(&node) {
                continue;
            }
            for edge in self.member_of.get(&node).into_iter().flatten() {
                if edge.role == from || out.contains_key(&edge.role) {
                    continue;
                }
                let mut p = path.clone();
                p.push(edge.role);
                out.insert(edge.role, p.clone());
                queue.push_back((edge.role, p));
            }
        }
        out
    }

    /// `from`'s direct memberships through which `target` is reached (or of `target` itself).
    fn first_hops(&self, from: u32, target: u32) -> Vec<&'a MembershipRow> {
        self.member_of
            .get(&from)
            .into_iter()
            .flatten()
            .filter(|e| {
                e.role == target || self.reach(e.role, &BTreeSet::new()).contains_key(&target)
            })
            .copied()
            .collect()
    }

    /// Whether master holds ADMIN OPTION on `role` (may grant and revoke it).
    fn master_admin_on(&self, role: u32) -> bool {
        if self.master_is_superuser() {
            return true;
        }
        let direct = self
            .member_of
            .get(&self.master_oid())
            .into_iter()
            .flatten()
            .any(|e| e.role == role && e.admin);
        if self.major >= 16 {
            direct
        } else {
            // Before 16, CREATEROLE may grant and revoke any role but a superuser.
            direct || (self.master.is_some_and(|m| m.createrole) && !self.is_superuser(role))
        }
    }

    /// How master can run a statement as `role` (the grantor of what a fix revokes).
    fn act_as(&self, role: u32) -> Acting {
        if role == self.master_oid() {
            return Acting::Master;
        }
        let name = self.name(role);
        if self.master_is_superuser() {
            return Acting::As(name);
        }
        if self.is_superuser(role) {
            return Acting::Cannot(format!(
                "it must run as {name:?}, a superuser, which {:?} cannot become",
                self.master_name()
            ));
        }
        let can_set = self
            .member_of
            .get(&self.master_oid())
            .into_iter()
            .flatten()
            .any(|e| e.role == role && e.set);
        if can_set || self.master_admin_on(role) {
            Acting::As(name)
        } else {
            Acting::Cannot(format!(
                "it must run as {name:?}, and {:?} lacks ADMIN OPTION on it to gain the \
                 membership for the fix",
                self.master_name()
            ))
        }
    }

    /// The role whose grants on a schema or database a grantor `pg_database_owner` stands for.
    fn real_grantor(&self, grantor: u32, database_owner: u32) -> u32 {
        match self.roles.get(&grantor) {
            Some(r) if r.name == "pg_database_owner" => database_owner,
            _ => grantor,
        }
    }

    /// A statement run as `grantor`, or why master cannot run it.
    fn statement_as(
        &self,
        grantor: u32,
        database: Option<&str>,
        sql: String,
    ) -> std::result::Result<FixStatement, (FixStatement, String)> {
        let statement = |run_as: Option<String>| FixStatement {
            database: database.map(str::to_owned),
            run_as,
            sql: sql.clone(),
        };
        match self.act_as(grantor) {
            Acting::Master => Ok(statement(None)),
            Acting::As(name) => Ok(statement(Some(name))),
            Acting::Cannot(why) => Err((statement(Some(self.name(grantor))), why)),
        }
    }

    /// The statement that removes membership row `edge` (`REVOKE role FROM member`, or only its
    /// ADMIN OPTION), or why master cannot run it.
    fn revoke_membership(
        &self,
        edge: &MembershipRow,
        admin_only: bool,
    ) -> std::result::Result<FixStatement, (FixStatement, String)> {
        let sql = format!(
            "REVOKE {}{} FROM {}",
            if admin_only { "ADMIN OPTION FOR " } else { "" },
            q(&self.name(edge.role)),
            q(&self.name(edge.member))
        );
        let plain = |run_as: Option<String>| FixStatement {
            database: None,
            run_as,
            sql: sql.clone(),
        };
        let role = self.name(edge.role);
        if self.major < 16 {
            // One row per (role, member); CREATEROLE or ADMIN OPTION may remove it.
            return if self.master_admin_on(edge.role) {
                Ok(plain(None))
            } else {
                Err((
                    plain(None),
                    format!(
                        "{:?} lacks ADMIN OPTION on {role:?} (only a superuser or a role with it \
                         may revoke it)",
                        self.master_name()
                    ),
                ))
            };
        }
        // 16+: the row of this grantor; the grantor revokes it, and must hold ADMIN OPTION.
        if edge.grantor == self.master_oid() || self.master_is_superuser() {
            if self.master_admin_on(edge.role) || self.master_is_superuser() {
                let mut s = plain(None);
                if edge.grantor != self.master_oid() {
                    s.sql
                        .push_str(&format!(" GRANTED BY {}", q(&self.name(edge.grantor))));
                }
                return Ok(s);
            }
            return Err((
                plain(None),
                format!(
                    "{:?} no longer holds ADMIN OPTION on {role:?}",
                    self.master_name()
                ),
            ));
        }
        match self.act_as(edge.grantor) {
            Acting::As(name) => Ok(plain(Some(name))),
            Acting::Master => Ok(plain(None)),
            Acting::Cannot(why) => {
                let grantor = self.name(edge.grantor);
                let mut s = plain(None);
                s.sql.push_str(&format!(" GRANTED BY {}", q(&grantor)));
                let why = if self.is_superuser(edge.grantor) {
                    format!(
                        "the membership was granted by {grantor:?}, a superuser, so only a \
                         superuser can revoke it"
                    )
                } else {
                    format!("the membership was granted by {grantor:?}: {why}")
                };
                Err((s, why))
            }
        }
    }
}

/// Builds a fix from statements that master may or may not be able to run: automatic when it
/// can run them all.
fn fix_from(
    results: Vec<std::result::Result<FixStatement, (FixStatement, String)>>,
    done: &str,
) -> Fix {
    let mut statements = Vec::new();
    let mut reasons = Vec::new();
    for r in results {
        match r {
            Ok(s) => statements.push(s),
            Err((s, why)) => {
                statements.push(s);
                reasons.push(why);
            }
        }
    }
    if statements.is_empty() {
        return Fix::note(done);
    }
    if reasons.is_empty() {
        Fix::automatic(statements, done)
    } else {
        reasons.dedup();
        Fix::manual(
            statements,
            format!("{done}; not applied by --fix: {}", reasons.join("; ")),
        )
    }
}

/// The projects the rules judge against, and which roles and databases each claims.
#[derive(Default)]
struct Projects {
    names: Vec<String>,
    /// Project index → its databases.
    databases: Vec<BTreeSet<String>>,
    /// Role → the projects that claim it.
    claims: HashMap<u32, BTreeSet<usize>>,
    /// Role → the databases it may connect to (its projects' for an owner, the ones it reads
    /// for a reader).
    allowed: HashMap<u32, BTreeSet<String>>,
    /// Database → its project.
    database_project: HashMap<String, usize>,
    /// Roles of several projects without an inventory (a member of two owners, or of one
    /// owner and granted another's database), with the projects by membership and by grant.
    ambiguous: Vec<(u32, BTreeSet<usize>, BTreeSet<usize>)>,
    /// Readers without an inventory that may connect to databases of several projects.
    spanning: Vec<(u32, BTreeSet<String>)>,
}

fn is_system_database(name: &str, maintenance: &str) -> bool {
    SYSTEM_DATABASES.contains(&name) || name == maintenance
}

/// Databases `role` may connect to through a grant of its own (not through PUBLIC or a
/// membership).
fn explicit_connect(ctx: &Ctx<'_>, role: u32) -> BTreeSet<String> {
    ctx.cluster
        .databases
        .iter()
        .filter(|d| {
            d.acl
                .iter()
                .any(|a| a.grantee == role && a.privilege == "CONNECT")
        })
        .map(|d| d.name.clone())
        .collect()
}

fn projects(ctx: &Ctx<'_>, scope: &Scope) -> Projects {
    let mut p = Projects::default();
    let by_name: HashMap<&str, u32> = ctx
        .cluster
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r.oid))
        .collect();
    let maintenance = &ctx.cluster.current_database;
    if scope.instance.is_some() {
        for (i, project) in scope.projects.iter().enumerate() {
            p.names.push(project.name.clone());
            let dbs: BTreeSet<String> = project.databases.iter().map(|d| d.0.clone()).collect();
            for (db, owner, readers) in &project.databases {
                p.database_project.insert(db.clone(), i);
                if let Some(&o) = by_name.get(owner.as_str()) {
                    p.claims.entry(o).or_default().insert(i);
                    p.allowed.entry(o).or_default().extend(dbs.iter().cloned());
                }
                for r in readers {
                    if let Some(&oid) = by_name.get(r.as_str()) {
                        p.claims.entry(oid).or_default().insert(i);
                        p.allowed.entry(oid).or_default().insert(db.clone());
                    }
                }
            }
            p.databases.push(dbs);
        }
        return p;
    }
    // Without an inventory: each login role that owns a database is a project; its members are
    // that project's; other login roles belong to the project whose databases they were granted.
    let mut owners: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for d in &ctx.cluster.databases {
        if !is_system_database(&d.name, maintenance) && ctx.audited_login(d.owner) {
            owners.entry(d.owner).or_default().insert(d.name.clone());
        }
    }
    let mut index = HashMap::new();
    for (owner, dbs) in &owners {
        let i = p.names.len();
        index.insert(*owner, i);
        p.names.push(ctx.name(*owner));
        for db in dbs {
            p.database_project.insert(db.clone(), i);
        }
        p.databases.push(dbs.clone());
    }
    for role in ctx.login_roles() {
        let oid = role.oid;
        if let Some(&i) = index.get(&oid) {
            p.claims.insert(oid, BTreeSet::from([i]));
            p.allowed.insert(oid, p.databases[i].clone());
            continue;
        }
        let by_membership: BTreeSet<usize> = ctx
            .reach(oid, &ctx.privileged)
            .keys()
            .filter_map(|g| index.get(g).copied())
            .collect();
        let reached: BTreeSet<String> = explicit_connect(ctx, oid)
            .into_iter()
            .filter(|d| p.database_project.contains_key(d))
            .collect();
        let by_grant: BTreeSet<usize> = reached.iter().map(|d| p.database_project[d]).collect();
        let all: BTreeSet<usize> = by_membership.union(&by_grant).copied().collect();
        match all.len() {
            0 => {}
            1 if by_membership.is_empty() => {
                p.claims.insert(oid, all);
                p.allowed.insert(oid, reached);
            }
            1 => {
                let i = *all.first().expect("one");
                p.claims.insert(oid, all);
                p.allowed.insert(oid, p.databases[i].clone());
            }
            _ if by_membership.is_empty() => p.spanning.push((oid, reached)),
            // Evidence for several projects: which one is right is the operator's call.
            _ => p.ambiguous.push((oid, by_membership, by_grant)),
        }
    }
    p
}

/// Evaluates every rule over `snapshot`.
pub(crate) fn evaluate(snapshot: &Snapshot, scope: &Scope, target: String) -> AuditReport {
    let ctx = Ctx::new(&snapshot.cluster);
    let projects = projects(&ctx, scope);
    let mut findings = Vec::new();
    role_attributes(&ctx, &mut findings);
    memberships(&ctx, &projects, scope, &mut findings);
    database_access(&ctx, &mut findings);
    for db in &snapshot.databases {
        in_database(&ctx, db, &mut findings);
    }
    let matrix = connect_matrix(&ctx, &projects, &mut findings);
    inventory_rules(&ctx, &projects, scope, &mut findings);
    for (database, why) in &snapshot.not_audited {
        let owner = ctx
            .cluster
            .databases
            .iter()
            .find(|d| &d.name == database)
            .map(|d| d.owner);
        let fix = match owner {
            Some(o) if why.contains("may not connect") => {
                let sql = format!(
                    "GRANT CONNECT ON DATABASE {} TO {}",
                    q(database),
                    q(ctx.master_name())
                );
                let statement = ctx.statement_as(o, None, sql);
                let s = match statement {
                    Ok(s) | Err((s, _)) => s,
                };
                Fix::manual(
                    vec![s],
                    "let master connect (a grant, which --fix does not make), then audit again",
                )
            }
            _ => Fix::note("allow connections to it, then audit again"),
        };
        findings.push(Finding::new(
            Rule::DatabaseNotAudited,
            format!("database {database:?} was not audited: {why}"),
            vec![AuditObject::new(ObjectKind::Database, database)],
            fix,
        ));
    }
    settings(&ctx, snapshot, scope, &mut findings);

    let order: HashMap<Rule, usize> = Rule::ALL.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    findings.sort_by(|a, b| {
        order[&a.rule]
            .cmp(&order[&b.rule])
            .then_with(|| a.objects.cmp(&b.objects))
            .then_with(|| a.message.cmp(&b.message))
    });
    findings.dedup();
    AuditReport {
        server_version: ServerVersion(snapshot.cluster.version_num),
        master: snapshot.cluster.current_user.clone(),
        target,
        instance: scope.instance.clone(),
        findings,
        databases: snapshot
            .databases
            .iter()
            .map(|d| d.database.clone())
            .collect(),
        login_roles: ctx.login_roles().len(),
        connect_matrix: matrix,
        fixed: Vec::new(),
    }
}

fn role_object(ctx: &Ctx<'_>, oid: u32) -> AuditObject {
    AuditObject::new(ObjectKind::Role, ctx.name(oid))
}

fn role_attributes(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    for role in ctx.login_roles() {
        for (has, attribute, off) in [
            (role.superuser, "SUPERUSER", "NOSUPERUSER"),
            (role.createdb, "CREATEDB", "NOCREATEDB"),
            (role.createrole, "CREATEROLE", "NOCREATEROLE"),
            (role.replication, "REPLICATION", "NOREPLICATION"),
            (role.bypassrls, "BYPASSRLS", "NOBYPASSRLS"),
        ] {
            if !has {
                continue;
            }
            let statement = FixStatement {
                database: None,
                run_as: None,
                sql: format!("ALTER ROLE {} {off}", q(&role.name)),
            };
            let master_has = ctx.master.is_some_and(|m| match attribute {
                "CREATEDB" => m.createdb,
                "CREATEROLE" => m.createrole,
                _ => false,
            });
            let can = ctx.master_is_superuser()
                || (matches!(attribute, "CREATEDB" | "CREATEROLE")
                    && !role.superuser
                    && if ctx.major >= 16 {
                        master_has && ctx.master_admin_on(role.oid)
                    } else {
                        ctx.master.is_some_and(|m| m.createrole)
                    });
            let fix = if can {
                Fix::automatic(vec![statement], format!("take {attribute} away"))
            } else {
                Fix::manual(
                    vec![statement],
                    format!(
                        "take {attribute} away; not applied by --fix: only a superuser may \
                         (on RDS no customer role can hold or remove {attribute} but through AWS)"
                    ),
                )
            };
            findings.push(Finding::new(
                Rule::RoleAttribute,
                format!(
                    "login role {:?} has {attribute}, which no project role needs",
                    role.name
                ),
                vec![role_object(ctx, role.oid)],
                fix,
            ));
        }
    }
}

fn chain_text(ctx: &Ctx<'_>, path: &[u32]) -> String {
    if path.len() <= 1 {
        return String::new();
    }
    let via: Vec<String> = path[..path.len() - 1]
        .iter()
        .map(|r| format!("{:?}", ctx.name(*r)))
        .collect();
    format!(" through {}", via.join(" → "))
}

fn revoke_first_hops(ctx: &Ctx<'_>, from: u32, target: u32, done: &str) -> Fix {
    let results = ctx
        .first_hops(from, target)
        .into_iter()
        .map(|e| ctx.revoke_membership(e, false))
        .collect();
    fix_from(results, done)
}

fn memberships(ctx: &Ctx<'_>, projects: &Projects, scope: &Scope, findings: &mut Vec<Finding>) {
    let master = ctx.master_oid();
    // Privileged roles, the first on each chain.
    for role in ctx.login_roles() {
        let reach = ctx.reach(role.oid, &ctx.privileged);
        for (target, path) in &reach {
            // The walk stops at privileged roles: each chain reports its first one.
            if !ctx.privileged.contains(target) {
                continue;
            }
            let target_name = ctx.name(*target);
            let mut objects = vec![role_object(ctx, role.oid), role_object(ctx, *target)];
            objects.extend(path[..path.len() - 1].iter().map(|r| role_object(ctx, *r)));
            findings.push(Finding::new(
                Rule::PrivilegedMembership,
                format!(
                    "login role {:?} is a member of {}{:?}{}",
                    role.name,
                    if *target == master { "master " } else { "" },
                    target_name,
                    chain_text(ctx, path)
                ),
                objects,
                revoke_first_hops(
                    ctx,
                    role.oid,
                    *target,
                    &format!("end the membership that leads to {target_name:?}"),
                ),
            ));
        }
    }
    // Another project's roles.
    for role in ctx.login_roles() {
        let Some(mine) = projects.claims.get(&role.oid) else {
            continue;
        };
        let reach = ctx.reach(role.oid, &ctx.privileged);
        for (target, path) in &reach {
            let Some(theirs) = projects.claims.get(target) else {
                continue;
            };
            let foreign = if scope.instance.is_some() {
                mine.is_disjoint(theirs)
            } else {
                // Without an inventory membership is what claims a role: a member of another
                // owner is foreign when the role owns a project of its own.
                let own: BTreeSet<usize> = projects
                    .names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n == role.name)
                    .map(|(i, _)| i)
                    .collect();
                !own.is_empty() && own.is_disjoint(theirs)
            };
            if !foreign || !ctx.audited(*target) {
                continue;
            }
            let project_names = |set: &BTreeSet<usize>| -> Vec<String> {
                set.iter()
                    .map(|i| format!("{:?}", projects.names[*i]))
                    .collect()
            };
            let target_name = ctx.name(*target);
            let mut objects = vec![role_object(ctx, role.oid), role_object(ctx, *target)];
            objects.extend(path[..path.len() - 1].iter().map(|r| role_object(ctx, *r)));
            findings.push(Finding::new(
                Rule::CrossProjectMembership,
                format!(
                    "login role {:?} (project {}) is a member of {:?} (project {}){}",
                    role.name,
                    project_names(mine).join(", "),
                    target_name,
                    project_names(theirs).join(", "),
                    chain_text(ctx, path)
                ),
                objects,
                revoke_first_hops(
                    ctx,
                    role.oid,
                    *target,
                    &format!("end the membership that leads to {target_name:?}"),
                ),
            ));
        }
    }
    for (role, by_membership, by_grant) in &projects.ambiguous {
        let names = |set: &BTreeSet<usize>| -> String {
            set.iter()
                .map(|i| format!("{:?}", projects.names[*i]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut why = vec![format!("a member of the roles of {}", names(by_membership))];
        if !by_grant.is_empty() {
            why.push(format!(
                "granted CONNECT on the databases of {}",
                names(by_grant)
            ));
        }
        let all: BTreeSet<usize> = by_membership.union(by_grant).copied().collect();
        let mut objects = vec![role_object(ctx, *role)];
        objects.extend(
            all.iter()
                .map(|i| AuditObject::new(ObjectKind::Project, &projects.names[*i])),
        );
        findings.push(Finding::new(
            Rule::CrossProjectMembership,
            format!(
                "login role {:?} belongs to several projects: {}",
                ctx.name(*role),
                why.join(" and ")
            ),
            objects,
            Fix::note(format!(
                "decide which project {:?} belongs to, then revoke the other memberships \
                 (REVOKE <owner> FROM {}) and CONNECT grants",
                ctx.name(*role),
                q(&ctx.name(*role))
            )),
        ));
    }
    // Master's leftover memberships.
    for edge in ctx.member_of.get(&master).into_iter().flatten() {
        if !ctx.audited(edge.role) {
            continue;
        }
        let leftover = if ctx.major >= 16 {
            edge.inherit || edge.set
        } else {
            true
        };
        if !leftover {
            continue;
        }
        let role = ctx.name(edge.role);
        let how = if ctx.major >= 16 {
            let mut opts = Vec::new();
            if edge.inherit {
                opts.push("INHERIT");
            }
            if edge.set {
                opts.push("SET");
            }
            format!(
                " with {} (granted by {:?})",
                opts.join(" and "),
                ctx.name(edge.grantor)
            )
        } else {
            String::new()
        };
        let fix = if ctx.major >= 16 && edge.admin {
            // The creator's own membership made to inherit or set (createrole_self_grant): keep
            // the ADMIN OPTION, drop the rest.
            let grantor = q(&ctx.name(edge.grantor));
            let mut statements = Vec::new();
            for (on, opt) in [(edge.inherit, "INHERIT"), (edge.set, "SET")] {
                if on {
                    statements.push(FixStatement {
                        database: None,
                        run_as: None,
                        sql: format!(
                            "REVOKE {opt} OPTION FOR {} FROM {} GRANTED BY {grantor}",
                            q(&role),
                            q(ctx.master_name())
                        ),
                    });
                }
            }
            Fix::manual(
                statements,
                format!(
                    "keep the ADMIN OPTION PostgreSQL gives a role's creator, drop INHERIT and \
                     SET; not applied by --fix: the grant is {:?}'s, and {:?} cannot revoke it",
                    ctx.name(edge.grantor),
                    ctx.master_name()
                ),
            )
        } else {
            fix_from(
                vec![ctx.revoke_membership(edge, false)],
                "remove the membership an operation left behind",
            )
        };
        findings.push(Finding::new(
            Rule::MasterMembership,
            format!(
                "master {:?} is a member of project role {role:?}{how}: an operation that died \
                 left it, and master now acts with {role:?}'s privileges",
                ctx.master_name()
            ),
            vec![role_object(ctx, master), role_object(ctx, edge.role)],
            fix,
        ));
    }
    // ADMIN OPTION held by project roles.
    for m in &ctx.cluster.memberships {
        if !m.admin || !ctx.audited(m.member) {
            continue;
        }
        let role = ctx.name(m.role);
        findings.push(Finding::new(
            Rule::AdminOption,
            format!(
                "role {:?} holds ADMIN OPTION on {role:?} (granted by {:?}): it may grant {role:?} \
                 to others{}",
                ctx.name(m.member),
                ctx.name(m.grantor),
                if ctx.major >= 16 { " and to itself" } else { "" }
            ),
            vec![role_object(ctx, m.member), role_object(ctx, m.role)],
            fix_from(
                vec![ctx.revoke_membership(m, true)],
                "keep the membership, drop its ADMIN OPTION",
            ),
        ));
    }
}

/// Privileges as GRANT lists them, in a stable order.
fn privilege_list(privileges: &BTreeSet<String>) -> String {
    privileges.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn database_access(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let maintenance = &ctx.cluster.current_database;
    for d in &ctx.cluster.databases {
        // PUBLIC on a project database.
        if !is_system_database(&d.name, maintenance) {
            let mut by_grantor: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
            for a in &d.acl {
                if a.grantee == 0 && (a.privilege == "CONNECT" || a.privilege == "TEMPORARY") {
                    by_grantor
                        .entry(a.grantor)
                        .or_default()
                        .insert(a.privilege.clone());
                }
            }
            if !by_grantor.is_empty() {
                let all: BTreeSet<String> = by_grantor.values().flatten().cloned().collect();
                let results = by_grantor
                    .iter()
                    .map(|(grantor, privileges)| {
                        ctx.statement_as(
                            *grantor,
                            None,
                            format!(
                                "REVOKE {} ON DATABASE {} FROM PUBLIC",
                                privilege_list(privileges),
                                q(&d.name)
                            ),
                        )
                    })
                    .collect();
                findings.push(Finding::new(
                    Rule::PublicDatabaseAccess,
                    format!(
                        "every role may use database {:?} through PUBLIC ({})",
                        d.name,
                        privilege_list(&all)
                    ),
                    vec![
                        AuditObject::new(ObjectKind::Database, &d.name),
                        AuditObject::new(ObjectKind::Role, "PUBLIC"),
                    ],
                    fix_from(results, "revoke PUBLIC's access"),
                ));
            }
        }
        // Grant options on the database.
        grant_options(
            ctx,
            findings,
            d.acl.iter().filter(|a| a.grantable && a.grantee != d.owner),
            |privileges, grantee| {
                format!(
                    "REVOKE GRANT OPTION FOR {privileges} ON DATABASE {} FROM {grantee} CASCADE",
                    q(&d.name)
                )
            },
            None,
            AuditObject::new(ObjectKind::Database, &d.name),
            &format!("database {:?}", d.name),
        );
    }
}

/// One finding per grantee holding grant options on an object, with a revoke per grantor.
fn grant_options<'a>(
    ctx: &Ctx<'_>,
    findings: &mut Vec<Finding>,
    entries: impl Iterator<Item = &'a AclRow>,
    sql: impl Fn(&str, &str) -> String,
    database: Option<&str>,
    object: AuditObject,
    what: &str,
) {
    let mut by_grantee: BTreeMap<u32, BTreeMap<u32, BTreeSet<String>>> = BTreeMap::new();
    for a in entries {
        if ctx.audited(a.grantee) {
            by_grantee
                .entry(a.grantee)
                .or_default()
                .entry(a.grantor)
                .or_default()
                .insert(a.privilege.clone());
        }
    }
    for (grantee, grantors) in by_grantee {
        let all: BTreeSet<String> = grantors.values().flatten().cloned().collect();
        let results = grantors
            .iter()
            .map(|(grantor, privileges)| {
                ctx.statement_as(
                    *grantor,
                    database,
                    sql(&privilege_list(privileges), &ctx.grantee_sql(grantee)),
                )
            })
            .collect();
        findings.push(Finding::new(
            Rule::GrantOption,
            format!(
                "role {:?} holds {} WITH GRANT OPTION on {what}: it may pass them on to any role",
                ctx.name(grantee),
                privilege_list(&all)
            ),
            vec![role_object(ctx, grantee), object.clone()],
            fix_from(
                results,
                "keep the privileges, drop the grant option (and what was granted through it)",
            ),
        ));
    }
}

fn drop_sql(kind: &str, identity: &str) -> Option<String> {
    let keyword = match kind {
        "composite type" => "TYPE",
        "function"
        | "aggregate"
        | "procedure"
        | "operator"
        | "table"
        | "view"
        | "materialized view"
        | "sequence"
        | "foreign table"
        | "index"
        | "type"
        | "domain"
        | "schema"
        | "collation"
        | "conversion"
        | "text search configuration"
        | "text search dictionary"
        | "statistics object"
        | "operator class"
        | "operator family" => kind,
        _ => return None,
    };
    Some(format!("DROP {} {identity}", keyword.to_uppercase()))
}

fn in_database(ctx: &Ctx<'_>, db: &super::inspect::DatabaseCatalog, findings: &mut Vec<Finding>) {
    let name = db.database.as_str();
    let row = ctx.cluster.databases.iter().find(|d| d.name == name);
    let owner = row.map(|d| d.owner).unwrap_or(0);
    let system_db = name == "postgres" || name == "template1";
    // Who may create in which schema.
    let mut by_schema: BTreeMap<(String, u32), BTreeSet<u32>> = BTreeMap::new();
    for s in &db.schema_create {
        let grantee_is_owner = s.grantee == ctx.real_grantor(s.owner, owner)
            || ctx
                .roles
                .get(&s.grantee)
                .is_some_and(|r| r.name == "pg_database_owner");
        if grantee_is_owner || (s.grantee != 0 && ctx.trusted(s.grantee)) {
            continue;
        }
        by_schema
            .entry((s.schema.clone(), s.grantee))
            .or_default()
            .insert(ctx.real_grantor(s.grantor, owner));
    }
    for ((schema, grantee), grantors) in by_schema {
        let public_in_system = system_db && schema == "public" && grantee == 0;
        let results = grantors
            .iter()
            .map(|g| {
                ctx.statement_as(
                    *g,
                    Some(name),
                    format!(
                        "REVOKE CREATE ON SCHEMA {} FROM {}",
                        q(&schema),
                        ctx.grantee_sql(grantee)
                    ),
                )
            })
            .collect();
        let (rule, message) = if public_in_system {
            (
                Rule::PublicSchemaCreate,
                format!(
                    "every role may create objects in schema \"public\" of database {name:?} \
                     (PUBLIC has CREATE){}",
                    if name == "template1" {
                        ", and they are copied into every database created from it"
                    } else {
                        ""
                    }
                ),
            )
        } else {
            (
                Rule::SchemaCreate,
                format!(
                    "{} may create objects in schema {schema:?} of database {name:?}, which it \
                     does not own",
                    if grantee == 0 {
                        "every role (PUBLIC)".to_owned()
                    } else {
                        format!("role {:?}", ctx.name(grantee))
                    }
                ),
            )
        };
        findings.push(Finding::new(
            rule,
            message,
            vec![
                AuditObject::in_database(ObjectKind::Schema, &schema, name),
                role_object(ctx, grantee),
            ],
            fix_from(results, "revoke CREATE on the schema"),
        ));
    }
    for o in &db.owned {
        let drop = o.identity.as_deref().and_then(|i| drop_sql(&o.kind, i));
        let owner_name = ctx.name(o.owner);
        findings.push(Finding::new(
            Rule::SystemDatabaseObject,
            format!(
                "{} in database {name:?} is owned by {owner_name:?}, not by master",
                o.description
            ),
            vec![
                AuditObject::in_database(ObjectKind::Object, &o.description, name),
                role_object(ctx, o.owner),
            ],
            Fix::manual(
                drop.map(|sql| FixStatement {
                    database: Some(name.to_owned()),
                    run_as: None,
                    sql,
                })
                .into_iter()
                .collect(),
                format!(
                    "look at what it is, then drop it (or hand it to master: REASSIGN OWNED BY {} \
                     TO {} in that database); not applied by --fix, which drops nothing",
                    q(&owner_name),
                    q(ctx.master_name())
                ),
            ),
        ));
    }
    for o in &db.shadowing {
        let drop = o.identity.as_deref().and_then(|i| drop_sql(&o.kind, i));
        let owner_name = ctx.name(o.owner);
        let mut objects = vec![AuditObject::new(ObjectKind::Database, name)];
        if let Some(schema) = &o.schema {
            objects.push(AuditObject::in_database(ObjectKind::Schema, schema, name));
        }
        objects.push(AuditObject::in_database(
            ObjectKind::Object,
            &o.description,
            name,
        ));
        objects.push(role_object(ctx, o.owner));
        findings.push(Finding::new(
            Rule::ShadowingObject,
            format!(
                "{} in database {name:?}, owned by {owner_name:?}, has the name of a pg_catalog \
                 {}: a session whose search_path includes {:?} may run it instead",
                o.description,
                if o.kind == "operator" {
                    "operator"
                } else {
                    "function"
                },
                o.schema.as_deref().unwrap_or("its schema")
            ),
            objects,
            Fix::manual(
                drop.map(|sql| FixStatement {
                    database: Some(name.to_owned()),
                    run_as: Some(owner_name.clone()),
                    sql,
                })
                .into_iter()
                .collect(),
                "drop it after asking its owner (rds-pg's own sessions never resolve it: their \
                 search_path is pinned to pg_catalog); not applied by --fix, which drops nothing",
            ),
        ));
    }
    for o in &db.security_definers {
        let Some(why) = privileged_because(ctx, o.owner) else {
            continue;
        };
        let owner_name = ctx.name(o.owner);
        findings.push(Finding::new(
            Rule::SecurityDefiner,
            format!(
                "{} in database {name:?} is SECURITY DEFINER and owned by {owner_name:?} ({why}): \
                 whoever may execute it runs it with those privileges",
                o.description
            ),
            vec![
                AuditObject::new(ObjectKind::Database, name),
                AuditObject::in_database(ObjectKind::Object, &o.description, name),
                role_object(ctx, o.owner),
            ],
            Fix::manual(
                o.identity
                    .iter()
                    .map(|i| FixStatement {
                        database: Some(name.to_owned()),
                        run_as: None,
                        sql: format!("ALTER ROUTINE {i} SECURITY INVOKER"),
                    })
                    .collect(),
                "make it SECURITY INVOKER, or give it to the database's owner, or revoke EXECUTE \
                 from the roles that must not run it; not applied by --fix, as it changes what \
                 the function does",
            ),
        ));
    }
    for g in &db.grant_options {
        let keyword = g.keyword.clone();
        let identity = g.identity.clone();
        let row = AclRow {
            grantor: ctx.real_grantor(g.grantor, owner),
            grantee: g.grantee,
            privilege: g.privilege.clone(),
            grantable: true,
        };
        grant_options(
            ctx,
            findings,
            std::iter::once(&row),
            |privileges, grantee| {
                format!(
                    "REVOKE GRANT OPTION FOR {privileges} ON {keyword} {identity} FROM {grantee} CASCADE"
                )
            },
            Some(name),
            AuditObject::in_database(ObjectKind::Object, &g.description, name),
            &format!("{} in database {name:?}", g.description),
        );
    }
    for g in &db.default_grant_options {
        let on = match g.objtype.as_str() {
            "r" => "TABLES",
            "S" => "SEQUENCES",
            "f" => "FUNCTIONS",
            "T" => "TYPES",
            "n" => "SCHEMAS",
            _ => continue,
        };
        let role = ctx.name(g.role);
        let in_schema = g
            .schema
            .as_ref()
            .map(|s| format!(" IN SCHEMA {}", q(s)))
            .unwrap_or_default();
        let row = AclRow {
            grantor: g.role,
            grantee: g.grantee,
            privilege: g.privilege.clone(),
            grantable: true,
        };
        let description = format!(
            "default privileges of {role:?} on new {}{}",
            on.to_lowercase(),
            g.schema
                .as_ref()
                .map(|s| format!(" in schema {s:?}"))
                .unwrap_or_default()
        );
        grant_options(
            ctx,
            findings,
            std::iter::once(&row),
            |privileges, grantee| {
                format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {}{in_schema} REVOKE GRANT OPTION FOR \
                     {privileges} ON {on} FROM {grantee} CASCADE",
                    q(&role)
                )
            },
            Some(name),
            AuditObject::in_database(ObjectKind::Object, &description, name),
            &format!("{description} in database {name:?}"),
        );
    }
}

/// Why `role` is privileged (a superuser, master, an attribute, a privileged membership), or
/// `None` for a plain role.
fn privileged_because(ctx: &Ctx<'_>, role: u32) -> Option<String> {
    let r = ctx.roles.get(&role)?;
    if r.superuser {
        return Some("a superuser".into());
    }
    if role == ctx.master_oid() {
        return Some("master".into());
    }
    let mut why = Vec::new();
    for (has, attr) in [
        (r.createrole, "CREATEROLE"),
        (r.createdb, "CREATEDB"),
        (r.replication, "REPLICATION"),
        (r.bypassrls, "BYPASSRLS"),
    ] {
        if has {
            why.push(attr.to_owned());
        }
    }
    for target in ctx.reach(role, &BTreeSet::new()).keys() {
        if ctx.privileged.contains(target) {
            why.push(format!("member of {}", ctx.name(*target)));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

fn connect_matrix(
    ctx: &Ctx<'_>,
    projects: &Projects,
    findings: &mut Vec<Finding>,
) -> Vec<ConnectAccess> {
    let maintenance = &ctx.cluster.current_database;
    let mut cells: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (role, db) in &ctx.cluster.connect {
        let Some(d) = ctx.databases.get(db) else {
            continue;
        };
        if is_system_database(&d.name, maintenance) || !ctx.audited_login(*role) {
            continue;
        }
        cells.entry(d.name.clone()).or_default().insert(*role);
    }
    let mut matrix = Vec::new();
    for d in &ctx.cluster.databases {
        if is_system_database(&d.name, maintenance) {
            continue;
        }
        let roles = cells.get(&d.name).cloned().unwrap_or_default();
        let mut names: Vec<String> = roles.iter().map(|r| ctx.name(*r)).collect();
        names.sort();
        matrix.push(ConnectAccess {
            database: d.name.clone(),
            owner: ctx.name(d.owner),
            project: projects
                .database_project
                .get(&d.name)
                .map(|i| projects.names[*i].clone()),
            roles: names,
        });
        let public = d
            .acl
            .iter()
            .any(|a| a.grantee == 0 && a.privilege == "CONNECT");
        for role in roles {
            let Some(allowed) = projects.allowed.get(&role) else {
                continue; // unclaimed or spanning roles are reported on their own
            };
            if allowed.contains(&d.name) || ctx.is_superuser(role) || public {
                continue;
            }
            outside_project(ctx, projects, role, d, findings);
        }
    }
    for (role, reached) in &projects.spanning {
        let names: Vec<String> = reached.iter().map(|d| format!("{d:?}")).collect();
        let mut objects = vec![role_object(ctx, *role)];
        objects.extend(
            reached
                .iter()
                .map(|d| AuditObject::new(ObjectKind::Database, d)),
        );
        let mut statements = Vec::new();
        for d in &ctx.cluster.databases {
            if !reached.contains(&d.name) {
                continue;
            }
            for a in d
                .acl
                .iter()
                .filter(|a| a.grantee == *role && a.privilege == "CONNECT")
            {
                let s = match ctx.statement_as(
                    a.grantor,
                    None,
                    format!(
                        "REVOKE CONNECT ON DATABASE {} FROM {}",
                        q(&d.name),
                        q(&ctx.name(*role))
                    ),
                ) {
                    Ok(s) | Err((s, _)) => s,
                };
                statements.push(s);
            }
        }
        findings.push(Finding::new(
            Rule::ConnectOutsideProject,
            format!(
                "login role {:?} may connect to the databases of several projects: {}",
                ctx.name(*role),
                names.join(", ")
            ),
            objects,
            Fix::manual(
                statements,
                "decide which project the role belongs to and revoke CONNECT on the other \
                 projects' databases (one of these statements per database to leave)",
            ),
        ));
    }
    matrix
}

fn outside_project(
    ctx: &Ctx<'_>,
    projects: &Projects,
    role: u32,
    d: &DatabaseRow,
    findings: &mut Vec<Finding>,
) {
    let role_name = ctx.name(role);
    let explicit: Vec<&AclRow> = d
        .acl
        .iter()
        .filter(|a| a.grantee == role && a.privilege == "CONNECT")
        .collect();
    // Through memberships: of a role that owns the database or was granted CONNECT on it.
    let mine = projects.claims.get(&role);
    let mut through = Vec::new();
    let mut reported_elsewhere = false;
    for (g, _) in ctx.reach(role, &BTreeSet::new()) {
        let grants = g == d.owner
            || ctx.is_superuser(g)
            || d.acl
                .iter()
                .any(|a| a.grantee == g && a.privilege == "CONNECT");
        if !grants {
            continue;
        }
        let foreign_project = match (mine, projects.claims.get(&g)) {
            (Some(m), Some(t)) => m.is_disjoint(t),
            _ => false,
        };
        if ctx.privileged.contains(&g) || foreign_project {
            reported_elsewhere = true;
        } else {
            through.push(ctx.name(g));
        }
    }
    if explicit.is_empty() && (reported_elsewhere || through.is_empty()) {
        return;
    }
    let project = projects
        .database_project
        .get(&d.name)
        .map(|i| format!(" (project {:?})", projects.names[*i]))
        .unwrap_or_default();
    let results: Vec<_> = explicit
        .iter()
        .map(|a| {
            ctx.statement_as(
                a.grantor,
                None,
                format!(
                    "REVOKE CONNECT ON DATABASE {} FROM {}",
                    q(&d.name),
                    q(&role_name)
                ),
            )
        })
        .collect();
    let fix = if through.is_empty() {
        fix_from(results, "revoke the role's CONNECT")
    } else {
        let mut fix = fix_from(results, "revoke the role's CONNECT");
        fix.automatic = false;
        fix.note =
            format!(
            "{}; the role also reaches it as a member of {}: end that membership or revoke that \
             role's CONNECT",
            fix.note,
            through.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
        );
        fix
    };
    findings.push(Finding::new(
        Rule::ConnectOutsideProject,
        format!(
            "login role {role_name:?} may connect to database {:?}{project}, which is not its \
             project's",
            d.name
        ),
        vec![
            role_object(ctx, role),
            AuditObject::new(ObjectKind::Database, &d.name),
        ],
        fix,
    ));
}

fn inventory_rules(ctx: &Ctx<'_>, projects: &Projects, scope: &Scope, findings: &mut Vec<Finding>) {
    let maintenance = &ctx.cluster.current_database;
    let inventory = scope.instance.is_some();
    for role in ctx.login_roles() {
        if projects.claims.contains_key(&role.oid)
            || projects.spanning.iter().any(|(r, _)| *r == role.oid)
            || projects.ambiguous.iter().any(|(r, _, _)| *r == role.oid)
        {
            continue;
        }
        let (message, severity) = if inventory {
            (
                format!(
                    "login role {:?} belongs to no project of inventory instance {:?}",
                    role.name,
                    scope.instance.as_deref().unwrap_or_default()
                ),
                Severity::Warning,
            )
        } else {
            (
                format!(
                    "login role {:?} owns no database, is no member of a project's role and may \
                     connect to no project's database",
                    role.name
                ),
                Severity::Info,
            )
        };
        findings.push(
            Finding::new(
                Rule::UnclaimedLoginRole,
                message,
                vec![role_object(ctx, role.oid)],
                Fix::note(if inventory {
                    format!(
                        "add it to the inventory's project it serves, or drop it (rds-pg user \
                         drop {})",
                        role.name
                    )
                } else {
                    format!(
                        "grant it what its project needs (rds-pg grant readonly DB {}), or drop \
                         it (rds-pg user drop {})",
                        role.name, role.name
                    )
                }),
            )
            .with_severity(severity),
        );
    }
    if !inventory {
        return;
    }
    for d in &ctx.cluster.databases {
        if is_system_database(&d.name, maintenance) {
            continue;
        }
        match projects.database_project.get(&d.name) {
            None => findings.push(Finding::new(
                Rule::UnclaimedDatabase,
                format!(
                    "database {:?} (owner {:?}) belongs to no project of inventory instance {:?}",
                    d.name,
                    ctx.name(d.owner),
                    scope.instance.as_deref().unwrap_or_default()
                ),
                vec![
                    AuditObject::new(ObjectKind::Database, &d.name),
                    role_object(ctx, d.owner),
                ],
                Fix::note(format!(
                    "add it to the inventory's project it serves, or drop it (rds-pg db drop {})",
                    d.name
                )),
            )),
            Some(&i) => {
                let expected = scope.projects[i]
                    .databases
                    .iter()
                    .find(|(n, _, _)| *n == d.name)
                    .map(|(_, o, _)| o.clone())
                    .unwrap_or_default();
                let actual = ctx.name(d.owner);
                if actual != expected {
                    findings.push(Finding::new(
                        Rule::DatabaseOwner,
                        format!(
                            "database {:?} of project {:?} is owned by {actual:?}, not by {expected:?} \
                             as the inventory says",
                            d.name, projects.names[i]
                        ),
                        vec![
                            AuditObject::new(ObjectKind::Database, &d.name),
                            AuditObject::new(ObjectKind::Role, &actual),
                            AuditObject::new(ObjectKind::Role, &expected),
                            AuditObject::new(ObjectKind::Project, &projects.names[i]),
                        ],
                        Fix::manual(
                            vec![FixStatement {
                                database: None,
                                run_as: None,
                                sql: format!(
                                    "ALTER DATABASE {} OWNER TO {}",
                                    q(&d.name),
                                    q(&expected)
                                ),
                            }],
                            "find out which is right: the inventory, or the owner; moving a \
                             database between roles is never done by --fix",
                        ),
                    ));
                }
            }
        }
    }
}

fn settings(ctx: &Ctx<'_>, snapshot: &Snapshot, scope: &Scope, findings: &mut Vec<Finding>) {
    let c = &snapshot.cluster;
    let rds = c.rds_force_ssl.as_deref().is_some_and(|v| !v.is_empty());
    let tls_fix = if rds {
        "set rds.force_ssl = 1 in the instance's DB parameter group (aws rds \
         modify-db-parameter-group … --parameters ParameterName=rds.force_ssl,ParameterValue=1,\
         ApplyMethod=immediate)"
    } else {
        "turn ssl on and accept TCP logins only through hostssl lines in pg_hba.conf (RDS: \
         rds.force_ssl = 1)"
    };
    match &snapshot.tls {
        TlsState::Required => {}
        TlsState::NotRequired(why) => findings.push(Finding::new(
            Rule::TlsRequired,
            format!("connections are not required to use TLS: {why}"),
            vec![AuditObject::new(
                ObjectKind::Setting,
                match &c.rds_force_ssl {
                    Some(v) if rds => format!("rds.force_ssl = {v}"),
                    _ => format!("ssl = {}", c.ssl),
                },
            )],
            Fix::note(tls_fix),
        )),
        TlsState::Unknown(why) => findings.push(
            Finding::new(
                Rule::TlsRequired,
                format!("whether connections must use TLS is unknown: {why}"),
                vec![AuditObject::new(
                    ObjectKind::Setting,
                    format!("ssl = {}", c.ssl),
                )],
                Fix::note(tls_fix),
            )
            .with_severity(Severity::Info),
        ),
    }
    if c.password_encryption != "scram-sha-256" {
        findings.push(Finding::new(
            Rule::PasswordEncryption,
            format!(
                "password_encryption is {:?}: passwords set by clients other than rds-pg (which \
                 sends SCRAM verifiers) are stored as weaker hashes",
                c.password_encryption
            ),
            vec![AuditObject::new(
                ObjectKind::Setting,
                format!("password_encryption = {}", c.password_encryption),
            )],
            Fix::note(
                "set password_encryption = scram-sha-256 (RDS: in the DB parameter group), then \
                 set new passwords for roles whose password was stored as MD5 (rds-pg user \
                 password NAME)",
            ),
        ));
    }
    for project in &scope.projects {
        for settings in &project.settings {
            let (role_name, limit, valid_until) = (
                &settings.role,
                &settings.connection_limit,
                &settings.valid_until,
            );
            let Some(role) = c.roles.iter().find(|r| &r.name == role_name) else {
                continue;
            };
            // Directly a member of rds_iam: an IAM user, whose logins take tokens, not a password.
            let iam_member = c
                .roles
                .iter()
                .find(|r| r.name == "rds_iam")
                .is_some_and(|g| {
                    c.memberships
                        .iter()
                        .any(|m| m.role == g.oid && m.member == role.oid)
                });
            if let Some(iam) = settings.iam {
                let member = iam_member;
                if member != iam {
                    let (now, fix) = if iam {
                        (
                            "is not a member of rds_iam: it is no IAM user (a run killed while \
                             its rds_iam was suspended leaves it so)",
                            Fix::manual(
                                vec![FixStatement {
                                    database: None,
                                    run_as: None,
                                    sql: format!("GRANT rds_iam TO {}", q(role_name)),
                                }],
                                "grant it (rds-pg fleet apply does, the inventory saying iam = \
                                 true); not applied by --fix",
                            ),
                        )
                    } else {
                        (
                            "is a member of rds_iam: RDS accepts only IAM authentication tokens \
                             for it, not a password",
                            Fix::note(
                                "run rds-pg fleet apply: it revokes rds_iam, sets a new password \
                                 and delivers it where [project.credentials] says (not done by \
                                 --fix: the role's servers log in with tokens until then)",
                            ),
                        )
                    };
                    findings.push(Finding::new(
                        Rule::RoleIam,
                        format!(
                            "role {role_name:?} of project {:?} {now}; the inventory says iam = \
                             {iam}",
                            project.name
                        ),
                        vec![role_object(ctx, role.oid)],
                        fix,
                    ));
                }
            }
            if let Some(limit) = limit {
                if role.connection_limit < 0 || role.connection_limit > *limit {
                    let now = if role.connection_limit < 0 {
                        "no connection limit".to_owned()
                    } else {
                        format!("connection limit {}", role.connection_limit)
                    };
                    findings.push(Finding::new(
                        Rule::RoleConnectionLimit,
                        format!(
                            "role {role_name:?} of project {:?} has {now}; the inventory requires \
                             at most {limit}",
                            project.name
                        ),
                        vec![role_object(ctx, role.oid)],
                        Fix::manual(
                            vec![FixStatement {
                                database: None,
                                run_as: None,
                                sql: format!(
                                    "ALTER ROLE {} CONNECTION LIMIT {limit}",
                                    q(role_name)
                                ),
                            }],
                            "set the limit (not applied by --fix: a lower limit can turn the \
                             project's servers away)",
                        ),
                    ));
                }
            }
            // VALID UNTIL limits password logins only: an IAM user has no password to expire.
            if let Some(valid_until) = valid_until.as_ref().filter(|_| !iam_member) {
                if role.expires_after == Some(true) {
                    findings.push(Finding::new(
                        Rule::RoleValidUntil,
                        format!(
                            "the password of role {role_name:?} of project {:?} {}; the inventory \
                             requires it to expire by {valid_until}",
                            project.name,
                            match &role.valid_until {
                                Some(v) if v != "infinity" => format!("expires at {v}"),
                                _ => "never expires".to_owned(),
                            }
                        ),
                        vec![role_object(ctx, role.oid)],
                        Fix::manual(
                            vec![FixStatement {
                                database: None,
                                run_as: None,
                                sql: format!(
                                    "ALTER ROLE {} VALID UNTIL {}",
                                    q(role_name),
                                    escape_literal(valid_until)
                                ),
                            }],
                            "set the expiry and rotate the password before it (rds-pg user \
                             password); not applied by --fix, as the password then stops working",
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
