"""A password change and its delivery are one unit (issue 13), through the Python API on every
selected version: a sink that fails (`command=` that exits 1 or does not exist, `env_file=` that
is a directory) raises, says nothing changed, leaves the old password working or creates no
role, and shows no password; a sink that works gets the password that logs in."""

from __future__ import annotations

import pytest

import rds_pg
from rds_pg import UserSpec

OLD = "Old-py-pw'$$x"  # (the psql helper's passfile takes no backslash or colon)

FAILING_COMMANDS = [
    ["sh", "-c", "cat > /dev/null; exit 1"],
    ["sh", "-c", "cat >&2; exit 3"],  # a vault client that echoes what it got
    ["/nonexistent/vault-client"],
]


def role_count(psql, sb, name: str) -> str:
    return psql.ok(
        sb.master_user,
        sb.master_password,
        "postgres",
        f"SELECT count(*) FROM pg_roles WHERE rolname = '{name}'",
    )


def assert_says_nothing_changed(error: rds_pg.RdsPgError, *secrets: str) -> None:
    text = str(error) + "\n" + repr(error)
    assert "nothing was changed" in text and "rolled back" in text, text
    for s in secrets:
        assert s not in text, "the error shows a password"


def test_a_failing_sink_changes_nothing(sandbox_each, psql_each, tmp_path):
    sb, psql = sandbox_each, psql_each
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    with sb.connect() as rds:
        rds.ensure_user(UserSpec("shop", password=rds_pg.Secret(OLD)))
        for i, sink in enumerate([{"command": c} for c in FAILING_COMMANDS] + [{"env_file": occupied}]):
            new = f"New-py-pw-{i}-xyz"
            with pytest.raises(rds_pg.RdsPgError) as e:
                rds.rotate_password("shop", rds_pg.Secret(new), **sink)
            assert_says_nothing_changed(e.value, OLD, new)
            psql.ok("shop", OLD, "postgres", "SELECT 1")
            assert psql.run("shop", new, "postgres", "SELECT 1").returncode != 0

            user = f"shop_new{i}"
            with pytest.raises(rds_pg.RdsPgError) as e:
                rds.ensure_user(UserSpec(user), **sink)
            assert_says_nothing_changed(e.value)
            assert role_count(psql, sb, user) == "0", "no role is left behind"

        # A sink that works: the delivered password is the one that logs in.
        env_file = tmp_path / "shop.env"
        report = rds.rotate_password("shop", env_file=env_file)
        assert report.changed
        lines = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        delivered = lines["PGPASSWORD"].strip("'")
        psql.ok("shop", delivered, "postgres", "SELECT 1")
        assert report.generated_password.reveal() == delivered
        assert psql.run("shop", OLD, "postgres", "SELECT 1").returncode != 0
        for text in (repr(report), str(report)):
            assert delivered not in text and OLD not in text
