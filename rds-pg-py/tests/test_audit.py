"""Provisioner.audit(): a provisioned instance audits clean, breaks are typed findings with their
rule, objects and fix SQL, fix=True repairs the revocable ones (proven by logging in) and lists
the others, and an inventory checks who may connect where. On every selected version."""

from __future__ import annotations

import pytest

import rds_pg
from rds_pg import DatabaseSpec, ReadOnlyGrant, UserSpec

PROJECTS = ("alpha", "beta")


def password(role: str) -> rds_pg.Secret:
    return rds_pg.Secret(f"{role}-Audit-pw-1")


def provision(rds: rds_pg.Provisioner) -> None:
    rds.secure_instance()
    for project in PROJECTS:
        for role in (project, f"{project}_ro"):
            rds.ensure_user(UserSpec(role, password=password(role)))
        rds.ensure_database(DatabaseSpec(project, project, extensions=["hstore"]))
        rds.grant_read_only(ReadOnlyGrant(project, f"{project}_ro"))


def baseline(major: int) -> set[str]:
    """What the sandbox emulates of RDS's defaults: no TLS before 15, MD5 hashing on 13."""
    return {13: {"tls-required", "password-encryption"}, 14: {"tls-required"}}.get(major, set())


def beyond_baseline(report: rds_pg.AuditReport, major: int) -> list[rds_pg.AuditFinding]:
    assert baseline(major) <= {f.rule for f in report}, [str(f) for f in report]
    return [f for f in report if f.rule not in baseline(major)]


def objects(finding: rds_pg.AuditFinding) -> list[tuple[str, str, object]]:
    return [(o.kind, o.name, o.database) for o in finding.objects]


def test_breaks_are_typed_findings_and_fix_repairs_the_revocable_ones(sandbox_each, psql_each):
    sb, psql = sandbox_each, psql_each
    major = sb.major_version
    with rds_pg.connect(sb.master_dsn) as rds:
        provision(rds)
        report = rds.audit()
        assert isinstance(report, rds_pg.AuditReport)
        assert beyond_baseline(report, major) == []
        assert report.clean == (major >= 15)
        assert report.databases == ["alpha", "beta", "postgres", "template1"]
        assert report.login_roles == 4 and report.fixed == []
        assert [(c.database, c.project, c.roles) for c in report.connect_matrix] == [
            ("alpha", "alpha", ["alpha", "alpha_ro"]),
            ("beta", "beta", ["beta", "beta_ro"]),
        ]
        assert "4 databases and 4 login roles audited" in str(report)

        # PUBLIC may connect to alpha (granted by its owner), master left a member of beta, and
        # a function with a pg_catalog name planted in beta's database.
        psql.ok("alpha", password("alpha"), "alpha", "GRANT CONNECT ON DATABASE alpha TO PUBLIC")
        psql.ok("beta_ro", password("beta_ro"), "alpha", "SELECT 1")
        psql.ok(sb.master_user, sb.master_password, "postgres", "GRANT beta TO CURRENT_USER")
        psql.ok(
            "beta",
            password("beta"),
            "beta",
            "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT $1 $$",
        )
        report = rds.audit()
        assert not report.clean
        found = {f.rule: f for f in beyond_baseline(report, major)}
        assert sorted(found) == ["master-membership", "public-database-access", "shadowing-object"]

        public = found["public-database-access"]
        assert public.severity == "error" and public.fixable
        assert objects(public) == [("database", "alpha", None), ("role", "PUBLIC", None)]
        assert public.fix_sql == ['REVOKE CONNECT ON DATABASE "alpha" FROM PUBLIC']
        (statement,) = public.fix_statements
        assert (statement.database, statement.run_as) == (None, "alpha")

        leftover = found["master-membership"]
        assert objects(leftover) == [("role", sb.master_user, None), ("role", "beta", None)]
        assert leftover.fix_sql == [f'REVOKE "beta" FROM "{sb.master_user}"'] and leftover.fixable

        planted = found["shadowing-object"]
        assert objects(planted) == [
            ("database", "beta", None),
            ("schema", "public", "beta"),
            ("object", "function public.lower(text)", "beta"),
            ("role", "beta", None),
        ]
        assert not planted.fixable
        assert planted.fix_sql == ["DROP FUNCTION public.lower(pg_catalog.text)"]
        assert "drops nothing" in planted.fix
        assert str(planted).startswith("error   shadowing-object: function public.lower(text)")

        after = rds.audit(fix=True)
        assert sorted(f.finding.rule for f in after.fixed) == [
            "master-membership",
            "public-database-access",
        ]
        assert all(f.succeeded for f in after.fixed)
        assert all(error is None for f in after.fixed for _, error in f.results)
        assert [f.rule for f in beyond_baseline(after, major)] == ["shadowing-object"]

    # Logged in, the other project's reader is turned away again; the function is still there.
    error = psql.fails("beta_ro", password("beta_ro"), "alpha", "SELECT 1")
    assert "permission denied for database" in error
    assert psql.ok("beta", password("beta"), "beta", "SELECT public.lower('X')") == "X"


def test_an_inventory_says_who_may_connect_where(sandbox, psql):
    sb = sandbox
    inventory = rds_pg.Inventory.from_str(
        f"""
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "sandbox"
client = "acme"
environment = "staging"
region = "eu-west-1"
postgres_major = {sb.major_version}
endpoint = "{sb.host}"
port = {sb.port}
master_user = "{sb.master_user}"

[[project]]
name = "alpha-site"
client = "acme"
environment = "staging"
region = "eu-west-1"
instance = "sandbox"

[[project.database]]
name = "alpha"
owner = "alpha"
readers = ["alpha_ro"]

[[project]]
name = "beta-site"
client = "acme"
environment = "staging"
region = "eu-west-1"
instance = "sandbox"

[[project.database]]
name = "beta"
owner = "beta"
readers = ["beta_ro"]
""",
        "fleet.toml",
    )
    major = sb.major_version
    with rds_pg.connect(sb.master_dsn) as rds:
        provision(rds)
        report = rds.audit(inventory, jobs=2)
        assert report.instance == "sandbox"
        assert beyond_baseline(report, major) == []
        assert report.connect_matrix[0].project == "alpha-site"

        psql.ok("beta", password("beta"), "beta", "GRANT CONNECT ON DATABASE beta TO alpha_ro")
        (finding,) = beyond_baseline(rds.audit(inventory, instance="sandbox"), major)
        assert finding.rule == "connect-outside-project"
        assert objects(finding) == [("role", "alpha_ro", None), ("database", "beta", None)]
        assert finding.fix_sql == ['REVOKE CONNECT ON DATABASE "beta" FROM "alpha_ro"']
        after = rds.audit(inventory, fix=True)
        assert [f.finding.rule for f in after.fixed] == ["connect-outside-project"]
        assert beyond_baseline(after, major) == []
    assert "permission denied for database" in psql.fails("alpha_ro", password("alpha_ro"), "beta", "SELECT 1")

    with rds_pg.connect(sb.master_dsn) as rds:
        with pytest.raises(rds_pg.InvalidInput, match="has no instance"):
            rds.audit(inventory, instance="nope")
        with pytest.raises(rds_pg.InvalidInput, match="needs an inventory"):
            rds.audit(instance="sandbox")
        with pytest.raises(rds_pg.InvalidInput, match="jobs = 0 is out of range"):
            rds.audit(jobs=0)
