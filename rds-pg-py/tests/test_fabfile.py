"""examples/fabfile.py's tasks, run through invoke.Context against a sandbox the way `fab` runs
them on a deploy host: settings in the environment, master's password in a pgpass file."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import invoke
import pytest

import rds_pg
from conftest import newest_pg_dump_major

FABFILE = Path(__file__).resolve().parents[2] / "examples" / "fabfile.py"


@pytest.fixture(scope="module")
def fabfile():
    spec = importlib.util.spec_from_file_location("fabfile", FABFILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def deploy_env(sandbox, tmp_path, monkeypatch):
    """A deploy host's environment: libpq variables for master, a pgpass file with master's
    line, the project's RDS_PG_* settings."""
    for name in ("PGPASSWORD", "PGDATABASE", "PGSERVICE", "RDS_PG_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{sandbox.host}:{sandbox.port}:*:{sandbox.master_user}:{sandbox.master_password.reveal()}\n")
    pgpass.chmod(0o600)
    env = {
        "PGHOST": sandbox.host,
        "PGPORT": str(sandbox.port),
        "PGUSER": sandbox.master_user,
        "PGPASSFILE": str(pgpass),
        "PGSSLMODE": "verify-full" if sandbox.ca_cert_path else "disable",
        "RDS_PG_PROJECT": "fabshop",
        "RDS_PG_EXTENSIONS": "hstore,postgis" if sandbox.has_postgis else "hstore",
        "RDS_PG_READONLY": "fabshop_ro",
        "RDS_PG_ENV_FILE": str(tmp_path / "fabshop.env"),
    }
    if sandbox.ca_cert_path:
        env["PGSSLROOTCERT"] = str(sandbox.ca_cert_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = shlex.split(value)[0]
    return values


def test_fabfile_tasks_provision_dump_teardown_restore(fabfile, sandbox, deploy_env, psql, capsys):
    ctx = invoke.Context()
    env_file = deploy_env / "fabshop.env"

    fabfile.provision(ctx)
    out = capsys.readouterr().out
    assert "user fabshop: changed" in out and "database fabshop: changed" in out
    assert env_file.stat().st_mode & 0o777 == 0o600
    creds = read_env_file(env_file)
    password, ro_password = creds["PGPASSWORD"], read_env_file(Path(f"{env_file}.readonly"))["PGPASSWORD"]
    assert password not in out and ro_password not in out
    assert creds["PGUSER"] == "fabshop" and creds["PGDATABASE"] == "fabshop"
    # The application logs in with what the task wrote, and the read-only user can read.
    psql.ok("fabshop", password, "fabshop", "CREATE TABLE orders (id int, note hstore); INSERT INTO orders VALUES (1, 'a=>b'), (2, NULL)")
    assert psql.ok("fabshop_ro", ro_password, "fabshop", "SELECT count(*) FROM orders") == "2"
    assert "permission denied" in psql.fails("fabshop_ro", ro_password, "fabshop", "DELETE FROM orders")

    # Idempotent: nothing changes, no credentials are rewritten.
    written = env_file.stat().st_mtime_ns
    fabfile.provision(ctx)
    out = capsys.readouterr().out
    assert "changed" not in out.replace("no change", ""), out
    assert env_file.stat().st_mtime_ns == written

    # Dump as the project user (its password from the pgpass file provision wrote).
    archive = deploy_env / "fabshop.dump"
    if sandbox.major_version > newest_pg_dump_major():
        # No pg_dump new enough on this machine: the task fails saying so, and that is all.
        with pytest.raises(rds_pg.ToolError, match="pg_dump"):
            fabfile.dump(ctx, output=str(archive))
        fabfile.teardown(ctx, yes=True)
        return
    fabfile.dump(ctx, output=str(archive), verify=True)
    assert archive.stat().st_size > 0
    out = capsys.readouterr().out
    assert f"dumped fabshop to {archive}" in out
    assert re.search(rf"verified {re.escape(str(archive))}: \d+ tables, same row counts", out), out

    # Teardown refuses without --yes, then drops everything.
    with pytest.raises(invoke.Exit):
        fabfile.teardown(ctx)
    with rds_pg.connect(sandbox.dsn_for("fabshop", "fabshop"), password=password):
        with pytest.raises(rds_pg.StillInUse):
            fabfile.teardown(ctx, yes=True)
    fabfile.teardown(ctx, yes=True)
    out = capsys.readouterr().out
    assert "drop database fabshop: changed" in out and "drop user fabshop: changed" in out
    err = psql.fails("fabshop", password, "postgres", "SELECT 1")
    assert "password authentication failed" in err
    with sandbox.connect() as rds:
        assert not rds.plan_drop_database("fabshop"), "the database is gone"
        assert not rds.plan_drop_user("fabshop_ro"), "the read-only user is gone"

    # Restore recreates the user (new password, handed over again) and the database.
    fabfile.restore(ctx, archive=str(archive))
    out = capsys.readouterr().out
    assert re.search(r"restored \d+ of \d+ entries into fabshop", out), out
    assert '] creating TABLE "public.orders"' in out, out
    new_password = read_env_file(env_file)["PGPASSWORD"]
    assert new_password != password
    assert psql.ok("fabshop", new_password, "fabshop", "SELECT note->'a' FROM orders WHERE id = 1") == "b"

    fabfile.teardown(ctx, yes=True, force=True)


def test_fabric_host_tasks_go_through_an_ssh_forward(fabfile, sandbox, deploy_env, sshd, psql, capsys, monkeypatch):
    """`fab -H nobody@app provision`/`teardown` run here, through a forward via the Fabric host;
    master's password comes from a local command, the endpoint's name is verified through it."""
    from fabric import Connection

    from conftest import ALIAS, ENDPOINT_NAME, ssh_processes

    secret = deploy_env / "master-secret"
    secret.write_text(sandbox.master_password.reveal() + "\n")
    secret.chmod(0o600)
    (deploy_env / "pgpass").write_text("")  # no password file line for master: the command gives it
    monkeypatch.setenv("RDS_PG_MASTER_PASSWORD_COMMAND", f"cat '{secret}'")
    monkeypatch.setenv("RDS_PG_SSH_CONFIG", str(sshd.config))
    monkeypatch.setenv("RDS_PG_PROJECT", "tunshop")
    monkeypatch.setenv("RDS_PG_READONLY", "")
    monkeypatch.setenv("RDS_PG_ENV_FILE", str(deploy_env / "tunshop.env"))
    # The endpoint's name (what the certificate carries), resolved on the app server's side: the
    # hostaddr stands for the VPC's DNS.
    monkeypatch.setenv("PGHOST", ENDPOINT_NAME)
    monkeypatch.setenv("PGHOSTADDR", "127.0.0.1")
    c = Connection(ALIAS, user="nobody", port=sshd.port)

    fabfile.provision(c)
    out = capsys.readouterr().out
    assert f"through an ssh forward via ssh://nobody@{ALIAS}:{sshd.port}" in out, out
    assert "user tunshop: changed" in out and "database tunshop: changed" in out, out
    assert not ssh_processes(sshd.config), "the forward is closed after the task"
    creds = read_env_file(deploy_env / "tunshop.env")
    assert creds["PGHOST"] == ENDPOINT_NAME, "the project gets the endpoint, never the forward"
    password = creds["PGPASSWORD"]
    assert password not in out
    psql.ok("tunshop", password, "tunshop", "CREATE TABLE t (id int)")

    # dump (verified) and restore as the project user from here, its line of the local password
    # file (provision added it) going through forwards of their own.
    archive = deploy_env / "tunshop.dump"
    fabfile.dump(c, output=str(archive), verify=True)
    out = capsys.readouterr().out
    assert f"dumped tunshop to {archive}" in out and f"verified {archive}" in out, out
    assert not ssh_processes(sshd.config)
    psql.ok("tunshop", password, "tunshop", "DROP TABLE t")
    fabfile.restore(c, archive=str(archive))
    out = capsys.readouterr().out
    assert re.search(r"restored \d+ of \d+ entries into tunshop", out), out
    psql.ok("tunshop", password, "tunshop", "SELECT count(*) FROM t")
    assert not ssh_processes(sshd.config)
    fabfile.teardown(c, yes=True)
    out = capsys.readouterr().out
    assert "drop database tunshop: changed" in out and "drop user tunshop: changed" in out, out
    assert "password authentication failed" in psql.fails("tunshop", password, "postgres", "SELECT 1")
    assert not ssh_processes(sshd.config)


def test_fabfile_fleet_task_plans_then_applies_an_inventory(fabfile, sandbox, tmp_path, monkeypatch, psql, capsys):
    from test_fleet import env_password, inventory_text

    path = tmp_path / "fleet.toml"
    path.write_text(inventory_text(sandbox, tmp_path, project="fabfleet"))
    monkeypatch.setenv("RDS_PG_INVENTORY", str(path))
    ctx = invoke.Context()
    fabfile.fleet(ctx)
    out = capsys.readouterr().out
    assert "acme-db (127.0.0.1:" in out and "to change" in out
    assert 'CREATE DATABASE "fabfleet" OWNER "fabfleet"' in out
    assert not (tmp_path / "fabfleet.env").exists()
    fabfile.fleet(ctx, apply=True, jobs=2)
    out = capsys.readouterr().out
    assert "changed" in out
    password = env_password(tmp_path / "fabfleet.env")
    assert password not in out
    psql.ok("fabfleet", password, "fabfleet", "SELECT 1")
    fabfile.fleet(ctx, apply=True)
    assert ": in sync" in capsys.readouterr().out
    monkeypatch.delenv("RDS_PG_INVENTORY")
    with pytest.raises(invoke.Exit):
        fabfile.fleet(ctx)
