//! Planning `secure_instance`: what an operator runs once per instance so that no login role
//! can plant objects where master's sessions or new databases would meet them.

use super::{Change, Plan, Step};
use crate::ident::DatabaseName;
use crate::inspect::{DatabaseSnapshot, ServerFacts};

/// Plans `secure_instance`: in each database given (`None` is the maintenance database), revoke
/// PUBLIC's CREATE on schema `public` where it is granted and master controls the schema. Before
/// PostgreSQL 15 every login role may create there, in `postgres` and `template1` included, and
/// whatever it creates in `template1` is copied into every database created from it.
pub fn plan_secure_instance(
    facts: &ServerFacts,
    databases: &[(Option<DatabaseName>, DatabaseSnapshot)],
) -> Plan {
    let mut plan = Plan::default();
    for (database, db) in databases {
        let label = database
            .as_ref()
            .map(|d| d.as_str())
            .unwrap_or(&facts.current_database);
        if !db.public_create_for_public {
            continue;
        }
        let controls = match db.public_owner.as_deref() {
            None => continue,
            Some("pg_database_owner") => true,
            Some(o) => {
                o == facts.current_user
                    || facts.is_superuser
                    || facts.memberships.iter().any(|m| m.role == o && m.inherit)
            }
        };
        if controls {
            plan.steps.push(Step::new(
                facts,
                database.as_ref(),
                Change::RevokeCreateOnPublicSchema,
                format!(
                    "any login role may create objects in schema public of {label:?}{}",
                    if label == "template1" {
                        ", and they would be copied into every database created from it"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            plan.notes.push(format!(
                "PUBLIC may create in schema public of {label:?}, which is owned by {:?}: only \
                 its owner can revoke that",
                db.public_owner.as_deref().unwrap_or_default()
            ));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::facts;

    fn open_public(owner: &str) -> DatabaseSnapshot {
        DatabaseSnapshot {
            public_owner: Some(owner.into()),
            public_create_for_public: true,
            ..DatabaseSnapshot::default()
        }
    }

    #[test]
    fn revokes_where_master_controls_public_and_notes_the_rest() {
        let template1 = DatabaseName::new("template1").unwrap();
        let plan = plan_secure_instance(
            &facts(14),
            &[
                (None, open_public("master")),
                (Some(template1.clone()), open_public("rdsadmin")),
            ],
        );
        assert_eq!(plan.sql(), ["REVOKE CREATE ON SCHEMA public FROM PUBLIC"]);
        assert_eq!(plan.changes(), [&Change::RevokeCreateOnPublicSchema]);
        assert_eq!(plan.steps[0].database, None);
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
        let closed = DatabaseSnapshot {
            public_create_for_public: false,
            ..open_public("master")
        };
        assert!(plan_secure_instance(&facts(14), &[(Some(template1), closed)]).is_empty());
    }
}
