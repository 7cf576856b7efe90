//! Planning `rotate_password`: a new password for an existing project role.

use super::{missing_admin, refuse_privileged, with_leftover_cleanup, Change, Plan, Step};
use crate::error::{Error, Result};
use crate::ident::RoleName;
use crate::inspect::{RoleState, ServerFacts};
use crate::secret::NewPassword;

/// Plans `rotate_password` for an existing role (`role` from the user snapshot), setting
/// `password` (decided before planning).
///
/// # Errors
/// [`Error::NotFound`] for a missing role; [`Error::PolicyViolation`] for master or a role that
/// holds more than a project role may; [`Error::PermissionDenied`] on 16+ without ADMIN on the
/// role.
pub fn plan_rotate_password(
    facts: &ServerFacts,
    role: Option<&RoleState>,
    name: &RoleName,
    password: &NewPassword,
) -> Result<Plan> {
    name.ensure_creatable()?;
    let role = role.ok_or_else(|| Error::NotFound {
        message: format!("role {:?} does not exist", name.as_str()),
        source: None,
    })?;
    refuse_privileged(
        name.as_str(),
        role,
        "project user whose password rds-pg rotates",
    )?;
    if facts.major >= 16 && !role.access.admin && !facts.is_superuser {
        return Err(missing_admin(facts, name.as_str()));
    }
    let mut plan = Plan::default();
    plan.steps.push(Step::new(
        facts,
        None,
        Change::SetPassword {
            role: name.clone(),
            password: password.verifier().clone(),
        },
        "new password (sent as a SCRAM-SHA-256 verifier)",
    ));
    with_leftover_cleanup(facts, [(name.as_str(), role)], &mut plan);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::RoleAccess;
    use crate::plan::tests::{facts, project_role, CREATED_BY_MASTER_16};
    use crate::secret::Password;

    fn role(s: &str) -> RoleName {
        RoleName::new(s).unwrap()
    }

    #[test]
    fn rotation_sends_a_verifier_and_needs_admin_on_16() {
        let chosen = NewPassword::given(Password::new("Chosen-pw-1"));
        let plan = plan_rotate_password(
            &facts(15),
            Some(&project_role(RoleAccess::default())),
            &role("shop"),
            &chosen,
        )
        .unwrap();
        assert_eq!(plan.sql(), ["ALTER ROLE \"shop\" PASSWORD '[redacted]'"]);
        assert!(plan.steps[0]
            .executable_sql()
            .contains(chosen.verifier().expose()));
        let err = plan_rotate_password(
            &facts(16),
            Some(&project_role(RoleAccess::default())),
            &role("shop"),
            &chosen,
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
        assert!(plan_rotate_password(
            &facts(16),
            Some(&project_role(CREATED_BY_MASTER_16)),
            &role("shop"),
            &chosen
        )
        .is_ok());
    }

    #[test]
    fn a_missing_or_privileged_role_is_refused() {
        let p = NewPassword::generate().unwrap();
        let e = plan_rotate_password(&facts(15), None, &role("ghost"), &p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        let admin = RoleState {
            create_role: true,
            ..project_role(RoleAccess::default())
        };
        let e = plan_rotate_password(&facts(15), Some(&admin), &role("shop"), &p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PolicyViolation);
    }
}
