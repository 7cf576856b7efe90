"""Credentials: the outputs a deploy hands to an application, each checked by using it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import pytest

import rds_pg
from conftest import newest_pg_dump_major


@pytest.fixture(scope="module")
def shop(sandbox):
    with sandbox.connect() as rds:
        password = rds.ensure_user("shop").generated_password
        rds.ensure_database(rds_pg.DatabaseSpec("shop", "shop"))
        return rds.credentials("shop", "shop", password)


def test_provisioner_fills_in_the_server(sandbox, shop):
    assert (shop.host, shop.port, shop.database, shop.user) == (sandbox.host, sandbox.port, "shop", "shop")
    assert shop.sslrootcert == sandbox.ca_cert_path
    assert isinstance(shop.password, rds_pg.Secret)
    assert rds_pg.Credentials(shop.host, shop.port, "shop", "shop", shop.password, sslmode=shop.sslmode, sslrootcert=shop.sslrootcert) == shop


def test_repr_never_shows_the_password(shop):
    text = repr(shop) + str(shop)
    assert shop.password.reveal() not in text and "password=Secret([redacted])" in text
    for output in (shop.database_url(), shop.pgpass_line(), shop.env_file(), shop.json()):
        assert isinstance(output, rds_pg.Secret) and str(output) == "[redacted]"
        assert shop.password.reveal() in output.reveal()


WHO = "SELECT current_user || '@' || current_database() || ' ssl=' || coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'f')"


def who(sandbox, user, database):
    """What WHO prints for `user` on `database`: TLS in use exactly where the sandbox requires it."""
    return f"{user}@{database} ssl={'true' if sandbox.ca_cert_path else 'false'}"


def test_database_url_and_pgpass_line_log_in(sandbox, shop, psql, tmp_path, monkeypatch):
    # psql (libpq) given the URL alone logs in: user, password, database and TLS are all in it.
    assert psql.login(shop.database_url().reveal(), WHO) == who(sandbox, "shop", "shop")
    pgpass = tmp_path / "pgpass"
    shop.write_pgpass(pgpass)
    assert pgpass.stat().st_mode & 0o777 == 0o600
    assert pgpass.read_text() == shop.pgpass_line().reveal() + "\n"
    # psql finds the password in the file written (by libpq's rules, not rds_pg's).
    assert psql.login(sandbox.dsn_for("shop", "shop"), WHO, passfile=pgpass) == who(sandbox, "shop", "shop")
    # The default file is PGPASSFILE (else ~/.pgpass), as libpq reads it.
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "default-pgpass"))
    shop.write_pgpass()
    assert (tmp_path / "default-pgpass").read_text() == pgpass.read_text()


def test_env_file_and_command_sinks(sandbox, shop, psql, tmp_path):
    env_file = tmp_path / "shop.env"
    shop.write_env_file(env_file)
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.read_text() == shop.env_file().reveal()
    # The env file, loaded by sh as a service would, is all psql needs (PGPASSWORD, PGSSLMODE, ...).
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    r = subprocess.run(
        ["sh", "-c", f'set -a; . "$1"; set +a; exec {psql.binary} --no-psqlrc -tAc "$2"', "sh", str(env_file), WHO],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == who(sandbox, "shop", "shop"), r.stderr
    received = tmp_path / "received.json"
    shop.send_to_command([sys.executable, "-c", f"import sys; open({str(received)!r}, 'w').write(sys.stdin.read())"])
    data = json.loads(received.read_text())
    assert data["user"] == "shop" and data["password"] == shop.password.reveal()
    assert psql.login(data["database_url"], WHO) == who(sandbox, "shop", "shop")
    with pytest.raises(rds_pg.NotFound):
        shop.send_to_command([str(tmp_path / "no-such-program")])


def test_a_command_sink_gets_none_of_masters_credentials(sandbox, tmp_path):
    # A deploy script whose environment holds master's password (PGPASSWORD, DATABASE_URL) and
    # password file: the sink it runs sees none of it, and still gets PATH, HOME and AWS_*.
    master_password = sandbox.master_password.reveal()
    seen = tmp_path / "sink.env"
    script = "\n".join(
        [
            "import sys, rds_pg",
            f"creds = rds_pg.Credentials({sandbox.host!r}, {sandbox.port}, 'shop', 'shop', 'project-pw')",
            f"creds.send_to_command(['sh', '-c', 'env > {seen}; cat > {seen}.json'])",
        ]
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
        "PGUSER": sandbox.master_user,
        "PGPASSWORD": master_password,
        "PGPASSFILE": str(tmp_path / "master-pgpass"),
        "PGSERVICE": "master",
        "DATABASE_URL": f"postgresql://{sandbox.master_user}:{master_password}@{sandbox.host}:{sandbox.port}/postgres",
        "RDS_PG_SANDBOX_DIR": str(tmp_path),
        "AWS_REGION": "eu-west-1",
        "HOME": str(tmp_path),
    }
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    received = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    leaked = [k for k in received if k.startswith(("PG", "RDS_PG_")) or k == "DATABASE_URL"]
    assert leaked == [], received
    assert master_password not in seen.read_text()
    assert received["AWS_REGION"] == "eu-west-1" and received["HOME"] == str(tmp_path) and "PATH" in received
    assert json.loads((tmp_path / "sink.env.json").read_text())["password"] == "project-pw"


def test_a_password_file_open_to_others_is_ignored_with_libpqs_warning(sandbox, shop, tmp_path, monkeypatch):
    # As libpq does: the file is not read, and the warning says why (as a UserWarning here).
    pgpass = tmp_path / "pgpass"
    shop.write_pgpass(pgpass)
    pgpass.chmod(0o644)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    warning = f'password file "{pgpass}" has group or world access; permissions should be u=rw (0600) or less'
    with pytest.warns(UserWarning, match=re.escape(warning)):
        # The file was not read: the login had no password to send.
        with pytest.raises(rds_pg.ConnectionError, match="password missing"):
            rds_pg.dump(sandbox.dsn_for("shop", "shop"), tmp_path / "shop.dump")
    pgpass.chmod(0o600)
    if sandbox.major_version <= newest_pg_dump_major():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert rds_pg.dump(sandbox.dsn_for("shop", "shop"), tmp_path / "shop.dump").bytes > 0
