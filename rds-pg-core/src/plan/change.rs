//! What a plan's steps do, as data: every statement rds-pg sends is one [`Change`], turned into
//! SQL only by [`super::render`](mod@super::render).

use crate::ident::{DatabaseName, RoleName, SchemaName};
use crate::secret::ScramVerifier;
use crate::spec::Extension;

/// Who a privilege is granted to or revoked from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    /// Every role (`PUBLIC`).
    Public,
    /// One role.
    Role(RoleName),
}

/// An attribute `ALTER ROLE` converges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleAttribute {
    /// `LOGIN`.
    Login,
    /// `CONNECTION LIMIT n`.
    ConnectionLimit(i32),
    /// `VALID UNTIL 'timestamp'`.
    ValidUntil(String),
}

/// What kind of relations a `GRANT SELECT` / `REVOKE SELECT` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationKind {
    /// Tables, views, materialized views, foreign tables (`ON TABLE`).
    Table,
    /// Sequences (`ON SEQUENCE`).
    Sequence,
}

/// A relation's name as the server quoted it (`format('%I.%I', schema, name)`), safe to put in
/// SQL as it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotedRelation(pub(crate) String);

impl QuotedRelation {
    /// The quoted `schema.name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The schema `CREATE EXTENSION` puts an extension in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtensionSchema {
    /// `SCHEMA public`.
    Public,
    /// The schema its control file names (PostGIS topology's `topology`).
    ControlFile,
}

/// A table of PostGIS topology, re-owned to the database owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyTable {
    /// `topology.topology`.
    Topology,
    /// `topology.layer`.
    Layer,
}

/// One statement of a plan, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// `CREATE ROLE … LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS …
    /// PASSWORD '<verifier>'` (`PASSWORD NULL` for an IAM user).
    CreateRole {
        /// The role.
        role: RoleName,
        /// `CONNECTION LIMIT`, if any.
        connection_limit: Option<i32>,
        /// `VALID UNTIL`, if any.
        valid_until: Option<String>,
        /// The password's SCRAM verifier (redacted when shown); `None` for an IAM user, who has
        /// no password (`PASSWORD NULL`).
        password: Option<ScramVerifier>,
    },
    /// `ALTER ROLE … <attributes>`.
    AlterRole {
        /// The role.
        role: RoleName,
        /// What changes.
        attributes: Vec<RoleAttribute>,
    },
    /// `ALTER ROLE … PASSWORD '<verifier>'`.
    SetPassword {
        /// The role.
        role: RoleName,
        /// The password's SCRAM verifier (redacted when shown).
        password: ScramVerifier,
    },
    /// `ALTER ROLE … PASSWORD NULL`: a user switched to IAM authentication keeps no password.
    ClearPassword {
        /// The role.
        role: RoleName,
    },
    /// `GRANT rds_iam TO …`: the user logs in with IAM authentication tokens (switched to IAM,
    /// or an IAM user found without it, e.g. after a run killed while it was suspended).
    GrantIam {
        /// The role.
        role: RoleName,
    },
    /// `REVOKE rds_iam FROM …`: the user switched back to password authentication.
    RevokeIam {
        /// The role.
        role: RoleName,
    },
    /// `REVOKE rds_iam FROM …` for the duration of an operation: master is about to become a
    /// member of this IAM user, and a member of a member of `rds_iam` could no longer log in
    /// with its password. Ended by [`Change::RestoreIam`].
    SuspendIam {
        /// The IAM user.
        role: RoleName,
    },
    /// `GRANT rds_iam TO …`: the end of a [`Change::SuspendIam`], after master gave up its
    /// temporary membership; it runs on the error path too.
    RestoreIam {
        /// The IAM user.
        role: RoleName,
        /// Whether it runs only when the operation failed (the role itself was being dropped).
        only_on_failure: bool,
    },
    /// `DROP ROLE …`.
    DropRole {
        /// The role.
        role: RoleName,
    },
    /// `GRANT role TO member`: master gains `role` for the duration of the operation.
    GrantTemporaryMembership {
        /// The role master gains.
        role: RoleName,
        /// Master.
        member: RoleName,
        /// Whether master inherits the role's privileges (16+: `WITH INHERIT TRUE`), needed when
        /// master itself must act with them; otherwise master only may `SET ROLE` to it
        /// (`INHERIT FALSE, SET TRUE`) and the statements that need the role run as it. Before
        /// 16 a membership always inherits (master is `INHERIT`).
        inherit: bool,
    },
    /// `REVOKE role FROM member`: the end of a [`Change::GrantTemporaryMembership`].
    RevokeTemporaryMembership {
        /// The role master gives up.
        role: RoleName,
        /// Master.
        member: RoleName,
        /// Whether it runs only when the operation failed (the role itself was being dropped,
        /// which removes the membership with it).
        only_on_failure: bool,
        /// Whether it removes a membership found already there (left by an operation that was
        /// killed, or granted by hand) rather than one this operation granted.
        leftover: bool,
        /// Whether it runs only when no other rds-pg operation holds the role's lock: a
        /// leftover membership of a role this operation does not otherwise touch, which may be
        /// another run's, in use, rather than a leftover. Such a revoke is dropped from the plan
        /// when the lock is taken.
        if_unlocked: bool,
    },
    /// `CREATE DATABASE … OWNER … TEMPLATE … ENCODING …`.
    CreateDatabase {
        /// The database.
        database: DatabaseName,
        /// Its owner.
        owner: RoleName,
        /// Its template.
        template: DatabaseName,
        /// `ENCODING`.
        encoding: String,
        /// `LOCALE`, if any.
        locale: Option<String>,
        /// `LC_COLLATE`, if any.
        lc_collate: Option<String>,
        /// `LC_CTYPE`, if any.
        lc_ctype: Option<String>,
        /// `CONNECTION LIMIT`, if any.
        connection_limit: Option<i32>,
    },
    /// `ALTER DATABASE … OWNER TO …`.
    AlterDatabaseOwner {
        /// The database.
        database: DatabaseName,
        /// Its new owner.
        owner: RoleName,
    },
    /// `ALTER DATABASE … CONNECTION LIMIT …`.
    AlterDatabaseConnectionLimit {
        /// The database.
        database: DatabaseName,
        /// The limit (-1: none).
        limit: i32,
    },
    /// `DROP DATABASE IF EXISTS … [WITH (FORCE)]`.
    DropDatabase {
        /// The database.
        database: DatabaseName,
        /// Whether connected sessions are terminated.
        force: bool,
    },
    /// `GRANT CONNECT ON DATABASE … TO …`.
    GrantConnect {
        /// The database.
        database: DatabaseName,
        /// Who may connect.
        to: RoleName,
    },
    /// `REVOKE ALL ON DATABASE … FROM …`.
    RevokeAllOnDatabase {
        /// The database.
        database: DatabaseName,
        /// Who loses its privileges.
        from: Grantee,
    },
    /// `CREATE EXTENSION IF NOT EXISTS …`.
    CreateExtension {
        /// The extension.
        extension: Extension,
        /// Where it goes.
        schema: ExtensionSchema,
    },
    /// `ALTER TABLE <schema>.spatial_ref_sys OWNER TO …`.
    ReownSpatialRefSys {
        /// The schema PostGIS lives in.
        schema: String,
        /// The database owner.
        owner: RoleName,
    },
    /// `ALTER SCHEMA topology OWNER TO …`.
    ReownTopologySchema {
        /// The database owner.
        owner: RoleName,
    },
    /// `ALTER TABLE topology.<table> OWNER TO …`.
    ReownTopologyTable {
        /// The table.
        table: TopologyTable,
        /// The database owner.
        owner: RoleName,
    },
    /// `ALTER SCHEMA public OWNER TO …`.
    ReownPublicSchema {
        /// The database owner.
        owner: RoleName,
    },
    /// `REVOKE CREATE ON SCHEMA public FROM PUBLIC`.
    RevokeCreateOnPublicSchema,
    /// `SET ROLE …`: the following statements run as that role.
    SetRole {
        /// The role.
        role: RoleName,
    },
    /// `RESET ROLE`: back to master.
    ResetRole,
    /// `GRANT USAGE ON SCHEMA … TO …`.
    GrantSchemaUsage {
        /// The schema.
        schema: SchemaName,
        /// Who gets it.
        to: RoleName,
    },
    /// `REVOKE USAGE ON SCHEMA … FROM …`.
    RevokeSchemaUsage {
        /// The schema.
        schema: SchemaName,
        /// Who loses it.
        from: RoleName,
    },
    /// `GRANT SELECT ON TABLE|SEQUENCE … TO …`.
    GrantSelect {
        /// Tables or sequences.
        kind: RelationKind,
        /// The relations, as the server quoted them.
        relations: Vec<QuotedRelation>,
        /// Who gets it.
        to: RoleName,
    },
    /// `REVOKE SELECT ON TABLE|SEQUENCE … FROM …`.
    RevokeSelect {
        /// Tables or sequences.
        kind: RelationKind,
        /// The relations, as the server quoted them.
        relations: Vec<QuotedRelation>,
        /// Who loses it.
        from: RoleName,
    },
    /// `ALTER DEFAULT PRIVILEGES FOR ROLE … IN SCHEMA … GRANT|REVOKE SELECT ON TABLES|SEQUENCES …`.
    DefaultSelect {
        /// The role whose future objects it is about.
        owner: RoleName,
        /// The schema.
        schema: SchemaName,
        /// Tables or sequences.
        kind: RelationKind,
        /// Who gets (or loses) SELECT.
        grantee: RoleName,
        /// Grant (true) or revoke.
        grant: bool,
    },
    /// `REASSIGN OWNED BY … TO …`.
    ReassignOwned {
        /// The role whose objects move.
        role: RoleName,
        /// Their new owner.
        to: RoleName,
    },
    /// `DROP OWNED BY …`.
    DropOwned {
        /// The role.
        role: RoleName,
    },
}

impl Change {
    /// Whether PostgreSQL refuses it inside a transaction block, or it must run in a session of
    /// its own, so it is sent alone.
    pub fn is_standalone(&self) -> bool {
        matches!(
            self,
            Change::CreateDatabase { .. } | Change::DropDatabase { .. }
        ) || self.needs_default_search_path()
    }

    /// Whether it runs in a session whose default `search_path` is PostgreSQL's rather than
    /// rds-pg's pinned one: `CREATE EXTENSION` of an extension whose script reads the default
    /// ([`Extension::script_reads_default_search_path`]).
    pub fn needs_default_search_path(&self) -> bool {
        matches!(self, Change::CreateExtension { extension, .. }
                 if extension.script_reads_default_search_path())
    }

    /// For a temporary membership (its grant or its revoke): the role master gains or gives up.
    pub fn temporary_role(&self) -> Option<&RoleName> {
        match self {
            Change::GrantTemporaryMembership { role, .. }
            | Change::RevokeTemporaryMembership { role, .. } => Some(role),
            _ => None,
        }
    }
}
