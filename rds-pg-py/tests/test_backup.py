"""Backups from Python: backup_run as each project's role, backup_verify as a throw-away role,
backup_list and backup_prune, with the same reports and exceptions as the command line."""

from __future__ import annotations

import json

import pytest

import rds_pg
from conftest import newest_pg_dump_major


def inventory_text(sandbox: rds_pg.Sandbox, tmp_path, projects: dict[str, str]) -> str:
    master_pgpass = tmp_path / "master.pgpass"
    master_pgpass.write_text(
        f"127.0.0.1:{sandbox.port}:*:{sandbox.master_user}:{sandbox.master_password.reveal()}\n"
    )
    master_pgpass.chmod(0o600)
    text = f"""
[policy]
backup_dir = "{tmp_path / 'backups'}"
backup_keep_last = 1

[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "sandbox"
client = "acme"
environment = "production"
region = "eu-west-1"
postgres_major = {sandbox.major_version}
endpoint = "127.0.0.1"
port = {sandbox.port}
master_user = "{sandbox.master_user}"
master_password = {{ pgpass = "{master_pgpass}" }}
"""
    for name, sink in projects.items():
        text += f"""
[[project]]
name = "{name}"
client = "acme"
environment = "production"
region = "eu-west-1"
instance = "sandbox"

[[project.database]]
name = "{name}"
owner = "{name}"

[project.credentials]
{name} = {sink}
"""
    return text


def test_backup_run_verify_list_prune(sandbox, tmp_path, psql):
    if newest_pg_dump_major() < sandbox.major_version:
        pytest.fail(f"backups of PostgreSQL {sandbox.major_version} need its client tools")
    pgpass = tmp_path / "shop.pgpass"
    with sandbox.connect() as rds:
        rds.secure_instance()
        rds.ensure_user("shop", pgpass=pgpass)
        rds.ensure_database(rds_pg.DatabaseSpec("shop", "shop"))
        rds.ensure_user("lost", pgpass=tmp_path / "lost.pgpass")
        rds.ensure_database(rds_pg.DatabaseSpec("lost", "lost"))
    # Rows, loaded as the project user with the password the sink received.
    secret = [l for l in pgpass.read_text().splitlines() if ":shop:shop:" in l][0].rsplit(":", 1)[1]
    r = psql.run("shop", secret, "shop", "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1234)")
    assert r.returncode == 0, r.stderr
    text = inventory_text(
        sandbox,
        tmp_path,
        {"shop": f'{{ pgpass = "{pgpass}" }}', "lost": f'{{ pgpass = "{tmp_path / "nowhere"}" }}'},
    )
    inventory = rds_pg.Inventory.from_str(text, "fleet.toml")
    ca = sandbox.ca_cert_path
    tls = {"sslmode": "verify-full", "sslrootcert": ca} if ca else {"sslmode": "disable"}

    run = rds_pg.backup_run(inventory, **tls)
    assert isinstance(run, rds_pg.BackupRunReport)
    assert not run.succeeded and len(run) == 2
    shop, lost = sorted(run, key=lambda d: d.database != "shop")
    assert shop.succeeded and shop.error is None
    assert shop.archive.role == "shop" and shop.archive.verification == "unverified"
    assert [(t.table, t.rows) for t in shop.archive.tables] == [("t", 1234)]
    assert shop.archive.toc["TABLE DATA"] == 1
    assert lost.archive is None
    assert isinstance(lost.error, rds_pg.NotFound)
    assert lost.error.kind == "not_found"
    assert "nowhere" in str(lost.error)
    manifest = json.loads(shop.archive.manifest_path.read_text())
    assert manifest["sha256"] == shop.archive.sha256

    # A second archive, then verify the newest (the inventory path works as well).
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    second = rds_pg.backup_run(str(path), project="shop", **tls)
    assert second.succeeded
    report = rds_pg.backup_verify(path, project="shop", **tls)
    assert report.succeeded and len(report) == 1
    (v,) = report
    assert v.verified and v.recorded and v.scratch_dropped
    assert v.scratch.startswith("rdspg_verify_")
    assert [(t.table, t.expected, t.restored, t.matches) for t in v.tables] == [("t", 1234, 1234, True)]
    assert v.archive.path == second.databases[0].archive.path
    states = [a.verification for a in rds_pg.backup_list(inventory, database="shop")]
    assert states == ["unverified", "verified"]

    # A damaged archive fails with its problems, as InvalidInput.
    first = shop.archive.path
    first.write_bytes(first.read_bytes()[:100])
    (bad,) = rds_pg.backup_verify(inventory, archive=first, **tls)
    assert not bad.verified and bad.recorded
    assert isinstance(bad.error, rds_pg.InvalidInput)
    assert any("changed since it was written" in p for p in bad.problems), bad.problems

    # Prune from the inventory's policy (keep 1 last): the older, failed archive goes in a dry
    # run, and stays; then it goes.
    dry = rds_pg.backup_prune(inventory, dry_run=True)
    assert dry.policy == "keep 1 last" and dry.dry_run
    assert [d.archive.path for d in dry.removals] == [first]
    assert first.exists()
    done = rds_pg.backup_prune(tmp_path / "backups", keep_last=1)
    assert done.succeeded
    assert [d.archive.path for d in done if d.removed] == [first]
    assert not first.exists()
    assert [d.reasons for d in done if d.keep] == [["last"]]

    with pytest.raises(rds_pg.InvalidInput):
        rds_pg.backup_run(inventory, encrypt_to=["not-a-key"])
    with pytest.raises(rds_pg.NotFound):
        rds_pg.backup_run(inventory, project="nope")
