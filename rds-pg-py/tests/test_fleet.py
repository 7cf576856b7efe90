"""fleet_plan and fleet_apply on a sandbox: typed reports, credentials delivered where the
inventory says (Secrets Manager's shape for a command), users logging in with them, a second run
in sync, a take-over that is a finding unless asked, and the same exceptions as elsewhere."""

from __future__ import annotations

import json
import re

import pytest

import rds_pg


def inventory_text(
    sandbox: rds_pg.Sandbox, tmp_path, owner_of_archive: str = "", project: str = "shop"
) -> str:
    """One instance, the sandbox, with project `project` (databases `project` and
    `project_archive`, owner `project`, reader `project_ro`)."""
    owner_of_archive = owner_of_archive or project
    pgpass = tmp_path / "master.pgpass"
    password = sandbox.master_password.reveal().replace("\\", "\\\\").replace(":", "\\:")
    pgpass.write_text(f"127.0.0.1:{sandbox.port}:postgres:{sandbox.master_user}:{password}\n")
    pgpass.chmod(0o600)
    tls = (
        f'sslrootcert = "{sandbox.ca_cert_path}"'
        if sandbox.ca_cert_path is not None
        else 'sslmode = "disable"'
    )
    return f"""
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "acme-db"
client = "acme"
environment = "production"
region = "eu-west-1"
postgres_major = {sandbox.major_version}
endpoint = "127.0.0.1"
port = {sandbox.port}
master_user = "{sandbox.master_user}"
master_password = {{ pgpass = "{pgpass}" }}
{tls}

[[project]]
name = "{project}"
client = "acme"
environment = "production"
region = "eu-west-1"
instance = "acme-db"

[[project.database]]
name = "{project}"
owner = "{project}"
extensions = ["hstore"]
readers = ["{project}_ro"]

[[project.database]]
name = "{project}_archive"
owner = "{owner_of_archive}"

[project.credentials]
{project} = {{ env_file = "{tmp_path}/{project}.env" }}
{project}_ro = {{ command = ["sh", "-c", "cat > {tmp_path}/{project}_ro.json"], format = "secretsmanager" }}
"""


def env_password(path) -> str:
    text = path.read_text()
    match = re.search(r"^PGPASSWORD='([^']*)'$", text, re.M)
    assert match, text
    return match.group(1)


def test_fleet_plan_apply_and_in_sync(sandbox, psql, tmp_path):
    inventory = rds_pg.Inventory.from_str(inventory_text(sandbox, tmp_path), "fleet.toml")
    plan = rds_pg.fleet_plan(inventory)
    assert isinstance(plan, rds_pg.FleetReport)
    assert plan.mode == "plan" and plan.differs and not plan.in_sync and not plan.has_errors
    (instance,) = plan
    assert isinstance(instance, rds_pg.InstanceReport)
    assert instance.name == "acme-db" and instance.error is None
    assert instance.server_version.startswith(str(sandbox.major_version))
    states = [(i.kind, i.name, i.state) for i in instance.items]
    assert ("user", "shop", "planned") in states
    assert ("database", "shop", "planned") in states
    assert ("read_only_grant", "shop_ro", "pending") in states
    database = next(i for i in instance.items if i.kind == "database" and i.name == "shop")
    assert isinstance(database, rds_pg.FleetItem) and isinstance(database.plan, rds_pg.Plan)
    assert any(s.startswith('CREATE DATABASE "shop" OWNER "shop"') for s in database.plan.sql)
    assert not (tmp_path / "shop.env").exists(), "a plan delivers nothing"

    done = rds_pg.fleet_apply(inventory, jobs=2)
    assert not done.has_errors, str(done)
    (instance,) = done
    assert instance.changes > 0 and "changed" in instance.summary
    user = next(i for i in instance.items if i.kind == "user" and i.name == "shop")
    assert user.state == "applied" and isinstance(user.report, rds_pg.Report)
    assert user.report.generated_password is None, "the password went to the sink only"

    shop_password = env_password(tmp_path / "shop.env")
    psql.ok("shop", shop_password, "shop", "CREATE TABLE public.orders (id int)")
    secret = json.loads((tmp_path / "shop_ro.json").read_text())
    assert (secret["engine"], secret["username"], secret["dbname"]) == ("postgres", "shop_ro", "shop")
    assert secret["port"] == sandbox.port
    assert psql.ok("shop_ro", secret["password"], "shop", "SELECT count(*) FROM public.orders") == "0"
    psql.fails("shop_ro", secret["password"], "shop", "INSERT INTO public.orders VALUES (1)")

    again = rds_pg.fleet_apply(inventory)
    assert again.in_sync and not again.differs, str(again)
    (instance,) = again
    assert instance.summary == "in sync" and instance.changes == 0
    assert instance.inspection_queries == (3 if sandbox.major_version >= 15 else 4)
    assert all(i.state == "in_sync" for i in instance.items)

    # Another owner named for an existing database: a finding, the same exception type.
    moved = rds_pg.Inventory.from_str(
        inventory_text(sandbox, tmp_path, owner_of_archive="shop_ro"), "moved.toml"
    )
    report = rds_pg.fleet_plan(moved)
    (item,) = [i for i in report.instances[0].items if i.name == "shop_archive"]
    assert item.state == "blocked" and item.differs
    assert isinstance(item.error, rds_pg.PolicyViolation)
    assert "--take-over" in item.error.hint
    assert report.differs and not report.has_errors, "a finding is drift in a plan"
    assert rds_pg.fleet_apply(moved).has_errors, "and left after an apply"

    with pytest.raises(rds_pg.InvalidInput, match="no instance"):
        rds_pg.fleet_plan(inventory, instances=["nope"])


def test_an_unreachable_instance_is_reported_not_raised(tmp_path):
    text = """
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "gone"
client = "acme"
environment = "staging"
region = "eu-west-1"
postgres_major = 16
endpoint = "127.0.0.1"
port = 9
master_user = "master"
master_password = { env = "RDS_PG_TEST_NO_SUCH_VARIABLE" }
sslmode = "disable"
"""
    report = rds_pg.fleet_plan(rds_pg.Inventory.from_str(text, "gone.toml"))
    (instance,) = report
    assert report.has_errors and instance.summary.startswith("error:")
    assert isinstance(instance.error, rds_pg.InvalidInput)
    assert "RDS_PG_TEST_NO_SUCH_VARIABLE" in str(instance.error)


def test_ensure_user_delivers_in_the_secrets_manager_shape(sandbox, tmp_path):
    out = tmp_path / "secret.json"
    with sandbox.connect() as rds:
        rds.ensure_user(
            "vaulted",
            command=["sh", "-c", f"cat > {out}"],
            credentials_format="secretsmanager",
        )
        secret = json.loads(out.read_text())
        assert sorted(secret) == ["dbname", "engine", "host", "password", "port", "ssl", "username"]
        assert secret["ssl"] is (sandbox.ca_cert_path is not None)
        assert secret["username"] == "vaulted"
        credentials = rds.credentials("vaulted", "postgres", secret["password"])
        assert json.loads(credentials.secrets_manager_json().reveal())["dbname"] == "postgres"
        with pytest.raises(rds_pg.InvalidInput, match="format"):
            rds.ensure_user("other", env_file=tmp_path / "x.env", credentials_format="secretsmanager")
        with pytest.raises(rds_pg.InvalidInput):
            rds.ensure_user("other", command=["true"], credentials_format="yaml")
        rds.drop_user("vaulted")
