//! Planning `ensure_user`: a project's login role, created or converged.

use super::{
    missing_admin, refuse_privileged, with_leftover_cleanup, Change, Plan, RoleAttribute, Step,
};
use crate::error::Result;
use crate::inspect::{ServerFacts, UserSnapshot};
use crate::secret::NewPassword;
use crate::spec::UserSpec;

/// Plans `ensure_user`. `password` is the one a new role gets (the spec's, or one generated
/// before planning); an existing role's password is left alone.
///
/// # Errors
/// [`crate::Error::PolicyViolation`] for a role that is master or holds more than a project role
/// may (SUPERUSER, CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS, a privileged membership);
/// [`crate::Error::PermissionDenied`] on 16+ when master lacks ADMIN on an existing role that
/// needs changes.
pub fn plan_user(
    facts: &ServerFacts,
    snapshot: &UserSnapshot,
    spec: &UserSpec,
    password: &NewPassword,
) -> Result<Plan> {
    spec.validate()?;
    let mut plan = Plan::default();
    match &snapshot.role {
        None => {
            plan.steps.push(Step::new(
                facts,
                None,
                Change::CreateRole {
                    role: spec.name.clone(),
                    connection_limit: spec.connection_limit,
                    valid_until: spec.valid_until.clone(),
                    password: (spec.iam != Some(true)).then(|| password.verifier().clone()),
                },
                "the role does not exist",
            ));
            if spec.iam == Some(true) {
                plan.steps.push(Step::new(
                    facts,
                    None,
                    Change::GrantIam {
                        role: spec.name.clone(),
                    },
                    "an IAM user logs in with IAM authentication tokens, not a password",
                ));
            }
        }
        Some(role) => {
            refuse_privileged(spec.name.as_str(), role, "project user")?;
            let mut attributes = Vec::new();
            if !role.can_login {
                attributes.push(RoleAttribute::Login);
            }
            if let Some(limit) = spec
                .connection_limit
                .filter(|l| *l != role.connection_limit)
            {
                attributes.push(RoleAttribute::ConnectionLimit(limit));
            }
            if let (Some(ts), true) = (&spec.valid_until, role.valid_until_differs) {
                attributes.push(RoleAttribute::ValidUntil(ts.clone()));
            }
            let switch = match spec.iam {
                Some(true) if !role.iam => Some(true),
                Some(false) if role.iam => Some(false),
                _ => None,
            };
            if (!attributes.is_empty() || switch.is_some())
                && facts.major >= 16
                && !role.access.admin
                && !facts.is_superuser
            {
                return Err(missing_admin(facts, spec.name.as_str()));
            }
            if !attributes.is_empty() {
                plan.steps.push(Step::new(
                    facts,
                    None,
                    Change::AlterRole {
                        role: spec.name.clone(),
                        attributes,
                    },
                    "the role's attributes differ from a project user's",
                ));
            }
            match switch {
                Some(true) => {
                    plan.steps.push(Step::new(
                        facts,
                        None,
                        Change::GrantIam {
                            role: spec.name.clone(),
                        },
                        "switched to IAM authentication",
                    ));
                    plan.steps.push(Step::new(
                        facts,
                        None,
                        Change::ClearPassword {
                            role: spec.name.clone(),
                        },
                        "an IAM user keeps no password",
                    ));
                }
                Some(false) => {
                    plan.steps.push(Step::new(
                        facts,
                        None,
                        Change::RevokeIam {
                            role: spec.name.clone(),
                        },
                        "switched back to password authentication",
                    ));
                    plan.steps.push(Step::new(
                        facts,
                        None,
                        Change::SetPassword {
                            role: spec.name.clone(),
                            password: password.verifier().clone(),
                        },
                        "a password user needs a password",
                    ));
                }
                None => {}
            }
            if spec.password.is_some() && switch != Some(false) {
                plan.notes.push(format!(
                    "{:?} exists: its password was left unchanged (rotate it explicitly)",
                    spec.name.as_str()
                ));
            }
            with_leftover_cleanup(facts, [(spec.name.as_str(), role)], &mut plan);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{RoleAccess, RoleState};
    use crate::plan::tests::{facts, project_role, sql, CREATED_BY_MASTER_16};
    use crate::secret::Password;

    fn generated() -> NewPassword {
        NewPassword::generate().unwrap()
    }

    #[test]
    fn new_user_gets_a_verifier_and_a_generated_password_that_never_shows() {
        let spec = UserSpec::new("app").unwrap();
        let password = generated();
        let plan = plan_user(&facts(15), &UserSnapshot::default(), &spec, &password).unwrap();
        assert_eq!(
            sql(&plan),
            ["CREATE ROLE \"app\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '[redacted]'"]
        );
        assert!(matches!(
            plan.changes()[..],
            [Change::CreateRole { ref role, connection_limit: None, valid_until: None, .. }] if role.as_str() == "app"
        ));
        let executable = plan.steps[0].executable_sql();
        assert!(executable.contains("'SCRAM-SHA-256$4096:"));
        assert!(!executable.contains(password.password().expose()));
        assert!(!format!("{plan:?}{plan}").contains(password.password().expose()));
        assert!(plan.sets_password());
    }

    #[test]
    fn iam_users_are_created_without_a_password_and_switched_explicitly() {
        let spec = UserSpec::new("app").unwrap().iam(true);
        let plan = plan_user(&facts(16), &UserSnapshot::default(), &spec, &generated()).unwrap();
        assert_eq!(
            sql(&plan),
            [
                "CREATE ROLE \"app\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL",
                "GRANT rds_iam TO \"app\""
            ]
        );
        assert!(!plan.sets_password());
        let password_user = UserSnapshot {
            role: Some(project_role(CREATED_BY_MASTER_16)),
            ..UserSnapshot::default()
        };
        let iam_user = UserSnapshot {
            role: Some(RoleState {
                iam: true,
                ..project_role(CREATED_BY_MASTER_16)
            }),
            ..UserSnapshot::default()
        };
        for major in [13, 16] {
            let to_iam = plan_user(&facts(major), &password_user, &spec, &generated()).unwrap();
            assert_eq!(
                sql(&to_iam),
                [
                    "GRANT rds_iam TO \"app\"",
                    "ALTER ROLE \"app\" PASSWORD NULL"
                ]
            );
            assert!(!to_iam.sets_password());
            let back = UserSpec::new("app").unwrap().iam(false);
            let to_password = plan_user(&facts(major), &iam_user, &back, &generated()).unwrap();
            assert_eq!(
                sql(&to_password),
                [
                    "REVOKE rds_iam FROM \"app\"",
                    "ALTER ROLE \"app\" PASSWORD '[redacted]'"
                ]
            );
            assert!(to_password.sets_password());
            // Without a choice, either kind of user stays as it is.
            let plain = UserSpec::new("app").unwrap();
            for snap in [&password_user, &iam_user] {
                assert!(plan_user(&facts(major), snap, &plain, &generated())
                    .unwrap()
                    .is_empty());
            }
            assert!(plan_user(&facts(major), &iam_user, &spec, &generated())
                .unwrap()
                .is_empty());
        }
        // A switch needs ADMIN on the role on 16+.
        let no_admin = UserSnapshot {
            role: Some(project_role(RoleAccess::default())),
            ..UserSnapshot::default()
        };
        let err = plan_user(&facts(16), &no_admin, &spec, &generated()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
        let err = UserSpec::new("app")
            .unwrap()
            .iam(true)
            .password("x")
            .validate()
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_same_inputs_give_the_same_plan() {
        let spec = UserSpec::new("app").unwrap().connection_limit(3);
        let password = generated();
        let a = plan_user(&facts(16), &UserSnapshot::default(), &spec, &password).unwrap();
        let b = plan_user(&facts(16), &UserSnapshot::default(), &spec, &password).unwrap();
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.steps[0].executable_sql(), b.steps[0].executable_sql());
    }

    #[test]
    fn existing_compliant_user_needs_nothing_and_keeps_its_password() {
        let spec = UserSpec::new("app").unwrap().password("x");
        let snap = UserSnapshot {
            role: Some(project_role(RoleAccess::default())),
            ..UserSnapshot::default()
        };
        let plan = plan_user(
            &facts(16),
            &snap,
            &spec,
            &NewPassword::given(Password::new("x")),
        )
        .unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.notes.len(), 1, "says the password was left unchanged");
    }

    #[test]
    fn privileged_roles_are_refused() {
        let spec = UserSpec::new("app").unwrap();
        for role in [
            RoleState {
                superuser: true,
                ..RoleState::default()
            },
            RoleState {
                is_current_user: true,
                ..RoleState::default()
            },
            RoleState {
                privileged_memberships: vec!["rds_superuser".into()],
                ..RoleState::default()
            },
            RoleState {
                bypass_rls: true,
                ..RoleState::default()
            },
        ] {
            let err = plan_user(
                &facts(15),
                &UserSnapshot {
                    role: Some(role),
                    ..UserSnapshot::default()
                },
                &spec,
                &generated(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::PolicyViolation, "{err}");
        }
    }

    #[test]
    fn converging_an_existing_role_needs_admin_on_16() {
        let spec = UserSpec::new("app")
            .unwrap()
            .connection_limit(4)
            .valid_until("2100-01-01");
        let snap = UserSnapshot {
            role: Some(RoleState {
                can_login: false,
                valid_until_differs: true,
                ..project_role(RoleAccess::default())
            }),
            ..UserSnapshot::default()
        };
        let plan = plan_user(&facts(15), &snap, &spec, &generated()).unwrap();
        assert_eq!(
            sql(&plan),
            ["ALTER ROLE \"app\" LOGIN CONNECTION LIMIT 4 VALID UNTIL '2100-01-01'"]
        );
        assert_eq!(
            plan.changes(),
            [&Change::AlterRole {
                role: spec.name.clone(),
                attributes: vec![
                    RoleAttribute::Login,
                    RoleAttribute::ConnectionLimit(4),
                    RoleAttribute::ValidUntil("2100-01-01".into())
                ]
            }]
        );
        assert!(!plan.sets_password());
        let err = plan_user(&facts(16), &snap, &spec, &generated()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
        assert!(
            err.hint()
                .unwrap()
                .contains("GRANT \"app\" TO \"master\" WITH ADMIN OPTION"),
            "{err}"
        );
    }

    #[test]
    fn a_leftover_membership_of_the_user_is_removed_even_with_nothing_else_to_do() {
        let spec = UserSpec::new("app").unwrap();
        for major in [14, 17] {
            let snap = UserSnapshot {
                role: Some(RoleState {
                    leftover_membership: true,
                    ..project_role(RoleAccess {
                        usage: true,
                        set: true,
                        admin: major >= 16,
                    })
                }),
                ..UserSnapshot::default()
            };
            let plan = plan_user(&facts(major), &snap, &spec, &generated()).unwrap();
            assert_eq!(plan.sql(), ["REVOKE \"app\" FROM \"master\""]);
            assert!(plan.steps[0].removes_leftover());
        }
    }

    #[test]
    fn roles_holding_more_than_a_project_role_are_refused_with_the_sql_that_fixes_them() {
        let cases: [(RoleState, &str); 4] = [
            (
                RoleState {
                    create_db: true,
                    create_role: true,
                    ..project_role(RoleAccess::default())
                },
                "ALTER ROLE \"app\" NOCREATEROLE NOCREATEDB",
            ),
            (
                RoleState {
                    privileged_memberships: vec!["pg_read_all_data".into()],
                    ..project_role(RoleAccess::default())
                },
                "REVOKE \"pg_read_all_data\" FROM \"app\"",
            ),
            (
                RoleState {
                    privileged_memberships: vec!["master".into()],
                    ..project_role(RoleAccess::default())
                },
                "REVOKE \"master\" FROM \"app\"",
            ),
            (
                RoleState {
                    replication: true,
                    ..project_role(RoleAccess::default())
                },
                "ALTER ROLE \"app\" NOREPLICATION",
            ),
        ];
        for (role, fix) in cases {
            let snap = UserSnapshot {
                role: Some(role),
                ..UserSnapshot::default()
            };
            for major in [13, 16] {
                let err = plan_user(
                    &facts(major),
                    &snap,
                    &UserSpec::new("app").unwrap(),
                    &generated(),
                )
                .unwrap_err();
                assert_eq!(err.kind(), crate::ErrorKind::PolicyViolation, "{err}");
                assert!(err.hint().unwrap().contains(fix), "{err}");
            }
        }
    }
}
