//! The one place a [`Change`] becomes SQL, for a given server, with secrets redacted (to show)
//! or not (to run).

use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::change::{Change, ExtensionSchema, Grantee, RelationKind, RoleAttribute, TopologyTable};
use crate::inspect::ServerFacts;

/// The placeholder that stands for a verifier in SQL that is shown.
pub(crate) const REDACTED: &str = "'[redacted]'";

/// Whether rendered SQL carries secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// Verifiers become `'[redacted]'` (plans, reports, logs).
    Redacted,
    /// Verifiers are written out (the statement sent to the server).
    Revealed,
}

/// What rendering needs to know about the server: its major version (membership options differ
/// from 16 on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderContext {
    /// The server's major version.
    pub major: u32,
}

impl From<&ServerFacts> for RenderContext {
    fn from(facts: &ServerFacts) -> Self {
        RenderContext { major: facts.major }
    }
}

fn grantee(g: &Grantee) -> String {
    match g {
        Grantee::Public => "PUBLIC".to_owned(),
        Grantee::Role(r) => r.quoted(),
    }
}

fn relation_kind(kind: RelationKind) -> &'static str {
    match kind {
        RelationKind::Table => "TABLE",
        RelationKind::Sequence => "SEQUENCE",
    }
}

fn objects(kind: RelationKind) -> &'static str {
    match kind {
        RelationKind::Table => "TABLES",
        RelationKind::Sequence => "SEQUENCES",
    }
}

/// `change` as SQL for the server described by `context`.
pub fn render(change: &Change, context: RenderContext, secrets: Secrets) -> String {
    let secret = |v: &crate::secret::ScramVerifier| match secrets {
        Secrets::Redacted => REDACTED.to_owned(),
        Secrets::Revealed => escape_literal(v.expose()),
    };
    match change {
        Change::CreateRole {
            role,
            connection_limit,
            valid_until,
            password,
        } => {
            let mut sql = format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
                role.quoted()
            );
            if let Some(limit) = connection_limit {
                sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
            }
            if let Some(ts) = valid_until {
                sql.push_str(&format!(" VALID UNTIL {}", escape_literal(ts)));
            }
            sql.push_str(" PASSWORD ");
            match password {
                Some(v) => sql.push_str(&secret(v)),
                None => sql.push_str("NULL"),
            }
            sql
        }
        Change::AlterRole { role, attributes } => {
            let attrs: Vec<String> = attributes
                .iter()
                .map(|a| match a {
                    RoleAttribute::Login => "LOGIN".to_owned(),
                    RoleAttribute::ConnectionLimit(n) => format!("CONNECTION LIMIT {n}"),
                    RoleAttribute::ValidUntil(ts) => format!("VALID UNTIL {}", escape_literal(ts)),
                })
                .collect();
            format!("ALTER ROLE {} {}", role.quoted(), attrs.join(" "))
        }
        Change::SetPassword { role, password } => {
            format!("ALTER ROLE {} PASSWORD {}", role.quoted(), secret(password))
        }
        Change::ClearPassword { role } => format!("ALTER ROLE {} PASSWORD NULL", role.quoted()),
        Change::GrantIam { role } | Change::RestoreIam { role, .. } => {
            format!("GRANT rds_iam TO {}", role.quoted())
        }
        Change::RevokeIam { role } | Change::SuspendIam { role } => {
            format!("REVOKE rds_iam FROM {}", role.quoted())
        }
        Change::DropRole { role } => format!("DROP ROLE {}", role.quoted()),
        Change::GrantTemporaryMembership {
            role,
            member,
            inherit,
        } => {
            if context.major >= 16 {
                format!(
                    "GRANT {} TO {} WITH INHERIT {}, SET TRUE",
                    role.quoted(),
                    member.quoted(),
                    if *inherit { "TRUE" } else { "FALSE" }
                )
            } else {
                format!("GRANT {} TO {}", role.quoted(), member.quoted())
            }
        }
        Change::RevokeTemporaryMembership { role, member, .. } => {
            format!("REVOKE {} FROM {}", role.quoted(), member.quoted())
        }
        Change::CreateDatabase {
            database,
            owner,
            template,
            encoding,
            locale,
            lc_collate,
            lc_ctype,
            connection_limit,
        } => {
            let mut sql = format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE {} ENCODING {}",
                database.quoted(),
                owner.quoted(),
                template.quoted(),
                escape_literal(encoding)
            );
            for (word, value) in [
                ("LOCALE", locale),
                ("LC_COLLATE", lc_collate),
                ("LC_CTYPE", lc_ctype),
            ] {
                if let Some(v) = value {
                    sql.push_str(&format!(" {word} {}", escape_literal(v)));
                }
            }
            if let Some(limit) = connection_limit {
                sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
            }
            sql
        }
        Change::AlterDatabaseOwner { database, owner } => {
            format!(
                "ALTER DATABASE {} OWNER TO {}",
                database.quoted(),
                owner.quoted()
            )
        }
        Change::AlterDatabaseConnectionLimit { database, limit } => {
            format!(
                "ALTER DATABASE {} CONNECTION LIMIT {limit}",
                database.quoted()
            )
        }
        Change::DropDatabase { database, force } => format!(
            "DROP DATABASE IF EXISTS {}{}",
            database.quoted(),
            if *force { " WITH (FORCE)" } else { "" }
        ),
        Change::GrantConnect { database, to } => {
            format!(
                "GRANT CONNECT ON DATABASE {} TO {}",
                database.quoted(),
                to.quoted()
            )
        }
        Change::RevokeAllOnDatabase { database, from } => {
            format!(
                "REVOKE ALL ON DATABASE {} FROM {}",
                database.quoted(),
                grantee(from)
            )
        }
        Change::CreateExtension { extension, schema } => format!(
            "CREATE EXTENSION IF NOT EXISTS {}{}",
            escape_identifier(extension.name()),
            match schema {
                ExtensionSchema::Public => " SCHEMA public",
                ExtensionSchema::ControlFile => "",
            }
        ),
        Change::ReownSpatialRefSys { schema, owner } => format!(
            "ALTER TABLE {}.spatial_ref_sys OWNER TO {}",
            escape_identifier(schema),
            owner.quoted()
        ),
        Change::ReownTopologySchema { owner } => {
            format!("ALTER SCHEMA topology OWNER TO {}", owner.quoted())
        }
        Change::ReownTopologyTable { table, owner } => format!(
            "ALTER TABLE topology.{} OWNER TO {}",
            match table {
                TopologyTable::Topology => "topology",
                TopologyTable::Layer => "layer",
            },
            owner.quoted()
        ),
        Change::ReownPublicSchema { owner } => {
            format!("ALTER SCHEMA public OWNER TO {}", owner.quoted())
        }
        Change::RevokeCreateOnPublicSchema => "REVOKE CREATE ON SCHEMA public FROM PUBLIC".into(),
        Change::SetRole { role } => format!("SET ROLE {}", role.quoted()),
        Change::ResetRole => "RESET ROLE".into(),
        Change::GrantSchemaUsage { schema, to } => {
            format!(
                "GRANT USAGE ON SCHEMA {} TO {}",
                schema.quoted(),
                to.quoted()
            )
        }
        Change::RevokeSchemaUsage { schema, from } => {
            format!(
                "REVOKE USAGE ON SCHEMA {} FROM {}",
                schema.quoted(),
                from.quoted()
            )
        }
        Change::GrantSelect {
            kind,
            relations,
            to,
        } => format!(
            "GRANT SELECT ON {} {} TO {}",
            relation_kind(*kind),
            join(relations),
            to.quoted()
        ),
        Change::RevokeSelect {
            kind,
            relations,
            from,
        } => format!(
            "REVOKE SELECT ON {} {} FROM {}",
            relation_kind(*kind),
            join(relations),
            from.quoted()
        ),
        Change::DefaultSelect {
            owner,
            schema,
            kind,
            grantee,
            grant,
        } => format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} {} SELECT ON {} {} {}",
            owner.quoted(),
            schema.quoted(),
            if *grant { "GRANT" } else { "REVOKE" },
            objects(*kind),
            if *grant { "TO" } else { "FROM" },
            grantee.quoted()
        ),
        Change::ReassignOwned { role, to } => {
            format!("REASSIGN OWNED BY {} TO {}", role.quoted(), to.quoted())
        }
        Change::DropOwned { role } => format!("DROP OWNED BY {}", role.quoted()),
    }
}

fn join(relations: &[super::change::QuotedRelation]) -> String {
    relations
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::RoleName;
    use crate::secret::Password;

    fn role(name: &str) -> RoleName {
        RoleName::new(name).unwrap()
    }

    #[test]
    fn secrets_show_redacted_and_run_revealed() {
        let verifier = Password::new("Render-pw").scram_verifier();
        let change = Change::SetPassword {
            role: role("app"),
            password: verifier.clone(),
        };
        let ctx = RenderContext { major: 15 };
        assert_eq!(
            render(&change, ctx, Secrets::Redacted),
            "ALTER ROLE \"app\" PASSWORD '[redacted]'"
        );
        assert_eq!(
            render(&change, ctx, Secrets::Revealed),
            format!("ALTER ROLE \"app\" PASSWORD '{}'", verifier.expose())
        );
    }

    #[test]
    fn temporary_memberships_follow_the_version() {
        let mut grant = Change::GrantTemporaryMembership {
            role: role("app"),
            member: role("master"),
            inherit: true,
        };
        assert_eq!(
            render(&grant, RenderContext { major: 15 }, Secrets::Redacted),
            "GRANT \"app\" TO \"master\""
        );
        assert_eq!(
            render(&grant, RenderContext { major: 16 }, Secrets::Redacted),
            "GRANT \"app\" TO \"master\" WITH INHERIT TRUE, SET TRUE"
        );
        if let Change::GrantTemporaryMembership { inherit, .. } = &mut grant {
            *inherit = false;
        }
        assert_eq!(
            render(&grant, RenderContext { major: 17 }, Secrets::Redacted),
            "GRANT \"app\" TO \"master\" WITH INHERIT FALSE, SET TRUE"
        );
        assert_eq!(
            render(&grant, RenderContext { major: 14 }, Secrets::Redacted),
            "GRANT \"app\" TO \"master\"",
            "before 16 a membership always inherits"
        );
    }

    #[test]
    fn default_privileges_read_both_ways() {
        let mut change = Change::DefaultSelect {
            owner: role("app"),
            schema: crate::ident::SchemaName::new("public").unwrap(),
            kind: RelationKind::Sequence,
            grantee: role("ro"),
            grant: true,
        };
        let ctx = RenderContext { major: 13 };
        assert_eq!(
            render(&change, ctx, Secrets::Redacted),
            "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"public\" GRANT SELECT ON SEQUENCES TO \"ro\""
        );
        if let Change::DefaultSelect { grant, .. } = &mut change {
            *grant = false;
        }
        assert_eq!(
            render(&change, ctx, Secrets::Redacted),
            "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"public\" REVOKE SELECT ON SEQUENCES FROM \"ro\""
        );
    }
}
