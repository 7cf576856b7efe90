"""Every exception class, raised by a real failure against a sandbox, with `sqlstate` and `hint`."""

from __future__ import annotations

import time

import pytest

import rds_pg
from conftest import VERSIONS, Psql, hold_database_lock, newest_pg_dump_major, start_sandbox
from rds_pg import DatabaseSpec, UserSpec

ALL = [
    rds_pg.InvalidName,
    rds_pg.InvalidInput,
    rds_pg.PermissionDenied,
    rds_pg.NotFound,
    rds_pg.StillInUse,
    rds_pg.PolicyViolation,
    rds_pg.ConnectionError,
    rds_pg.TlsError,
    rds_pg.ServerError,
    rds_pg.ToolError,
    rds_pg.IoError,
]


def test_every_class_derives_from_rds_pg_error_and_has_the_attributes():
    for cls in ALL:
        assert issubclass(cls, rds_pg.RdsPgError) and cls.__module__ == "rds_pg", cls
        assert cls.sqlstate is None and cls.kind is None and cls.__doc__
    assert rds_pg.PermissionDenied.hint is None
    assert rds_pg.PolicyViolation.hint is None
    assert rds_pg.ToolError.stderr is None
    assert issubclass(rds_pg.RdsPgError, Exception)


@pytest.fixture(scope="module")
def project(sandbox):
    """A project user and its database on the module's sandbox."""
    with sandbox.connect() as rds:
        password = rds.ensure_user("shop").generated_password
        rds.ensure_database(DatabaseSpec("shop", "shop"))
    return password


def test_invalid_name_before_any_sql():
    for make in (
        lambda: UserSpec("pg_monitor2"),
        lambda: UserSpec("x" * 64),
        lambda: DatabaseSpec("template0", "shop"),
        lambda: rds_pg.ReadOnlyGrant("shop", "rds_superuser"),
    ):
        with pytest.raises(rds_pg.InvalidName) as e:
            make()
        assert e.value.sqlstate is None


def test_invalid_input(sandbox):
    with pytest.raises(rds_pg.InvalidInput, match="unsupported connection option"):
        rds_pg.connect("host=localhost bogus=1")
    with pytest.raises(rds_pg.InvalidInput, match="sslmode"):
        rds_pg.connect(sandbox.master_dsn, sslmode="sometimes")
    with pytest.raises(rds_pg.InvalidInput, match="lock_timeout"):
        rds_pg.connect(sandbox.master_dsn, lock_timeout=-1)
    with sandbox.connect() as rds:
        with pytest.raises(rds_pg.InvalidInput, match="connection limit -5") as e:
            rds.ensure_user(UserSpec("limited", connection_limit=-5))
    assert e.value.sqlstate is None


def test_permission_denied_from_the_server_has_sqlstate(sandbox, project):
    # A project user cannot create roles: the server says so.
    with rds_pg.connect(sandbox.dsn_for("shop"), password=project) as as_shop:
        with pytest.raises(rds_pg.PermissionDenied, match="permission denied to create role") as e:
            as_shop.ensure_user("intruder")
    assert e.value.sqlstate == "42501"
    assert e.value.hint is None


def test_permission_denied_before_any_change_has_a_hint(sandbox, project):
    # An untrusted extension that is not on RDS's whitelist: refused by the planner, with the fix.
    with sandbox.connect() as rds:
        with pytest.raises(rds_pg.PermissionDenied, match="not trusted") as e:
            rds.ensure_extensions("shop", ["file_fdw"])
    assert e.value.hint == "choose an extension RDS supports for this engine version"
    assert e.value.sqlstate is None


@pytest.mark.skipif(
    not [v for v in VERSIONS if v >= 16], reason="needs PostgreSQL 16+ in RDS_PG_TEST_VERSIONS"
)
def test_permission_denied_without_admin_option_names_the_grant(tmp_path):
    # 16+: a second administrator (CREATEROLE) has no ADMIN on the roles master created, so it
    # cannot give them a database; the error carries the GRANT that fixes it.
    version = [v for v in VERSIONS if v >= 16][-1]
    with start_sandbox(version) as sb, sb.connect() as rds:
        rds.ensure_user("shop")
        psql = Psql(sb, tmp_path)
        psql.ok(sb.master_user, sb.master_password, "postgres", "CREATE ROLE admin2 LOGIN CREATEROLE PASSWORD 'admin2-pw'")
        with rds_pg.connect(sb.dsn_for("admin2"), password="admin2-pw") as admin2:
            with pytest.raises(rds_pg.PermissionDenied) as e:
                admin2.ensure_database(DatabaseSpec("shopdb", "shop"))
        assert e.value.hint is not None and 'GRANT "shop" TO "admin2" WITH ADMIN OPTION' in e.value.hint
        assert "(fix: " in str(e.value)
        assert not rds.plan_drop_database("shopdb"), "nothing was created"


def test_not_found(sandbox, project):
    with sandbox.connect() as rds:
        with pytest.raises(rds_pg.NotFound, match='owner role "nobody" does not exist') as e:
            rds.ensure_database(DatabaseSpec("orphan", "nobody"))
        assert e.value.sqlstate is None
        with pytest.raises(rds_pg.NotFound, match="not available") as e:
            rds.ensure_extensions("shop", ["no_such_extension"])
        # The server's verdict on an encoding name carries its SQLSTATE (undefined_object).
        with pytest.raises(rds_pg.NotFound, match="not a valid encoding name") as e:
            rds.ensure_database(DatabaseSpec("latin", "shop", encoding="NO-SUCH-ENCODING"))
        assert e.value.sqlstate == "42704"


def test_still_in_use_sessions(sandbox, project):
    with sandbox.connect() as rds, rds_pg.connect(sandbox.dsn_for("shop", "shop"), password=project):
        with pytest.raises(rds_pg.StillInUse, match="connected session") as e:
            rds.drop_database("shop")
        assert e.value.sqlstate is None and e.value.kind == "still_in_use"
    with sandbox.connect() as rds:
        assert not rds.plan_ensure_database(DatabaseSpec("shop", "shop")), "still there, unchanged"


def test_still_in_use_lock_timeout(sandbox, project, tmp_path):
    # Another deploy holds the lock on this database: after lock_timeout, StillInUse with the
    # server's lock_not_available.
    holder = hold_database_lock(sandbox, tmp_path, "shop", "shop", project, 60)
    try:
        with sandbox.connect(lock_timeout=0.5) as rds:
            started = time.monotonic()
            with pytest.raises(rds_pg.StillInUse) as e:
                rds.ensure_extensions("shop", ["citext"])
            assert time.monotonic() - started < 10
        assert e.value.sqlstate == "55P03"
    finally:
        holder.kill()
        holder.wait()


def test_policy_violation(sandbox):
    with sandbox.connect() as rds:
        with pytest.raises(rds_pg.PolicyViolation, match="connected master user") as e:
            rds.ensure_user(sandbox.master_user)
    assert e.value.sqlstate is None


def test_policy_violation_for_a_restore_not_as_the_owner(sandbox, project, tmp_path):
    # Refused before pg_restore even reads the archive: as master, and as a role that does not
    # own the database.
    archive = tmp_path / "never-read.dump"
    archive.write_bytes(b"not read: the restoring role is checked first\n")
    with pytest.raises(rds_pg.PolicyViolation, match="privileged") as e:
        rds_pg.restore(sandbox.master_dsn, archive, database="shop")
    assert "PGUSER=shop" in e.value.hint and e.value.sqlstate is None
    with sandbox.connect() as rds:
        intruder = rds.ensure_user("intruder").generated_password
    Psql(sandbox, tmp_path).ok("shop", project, "shop", "GRANT CONNECT ON DATABASE shop TO intruder")
    with pytest.raises(rds_pg.PolicyViolation, match="not the database's owner") as e:
        rds_pg.restore(sandbox.dsn_for("intruder", "shop"), archive, password=intruder)
    assert "PGUSER=shop" in e.value.hint


def test_connection_error(sandbox):
    with pytest.raises(rds_pg.ConnectionError, match="password authentication failed") as e:
        rds_pg.connect(sandbox.master_dsn, password="wrong")
    assert e.value.sqlstate == "28P01"
    assert "wrong" not in str(e.value)
    with pytest.raises(rds_pg.ConnectionError) as e:
        rds_pg.connect(sandbox.master_dsn, dbname="no_such_db")
    assert e.value.sqlstate == "3D000"
    with pytest.raises(rds_pg.ConnectionError, match="refused") as e:
        rds_pg.connect(sandbox.master_dsn, port=1)
    assert e.value.sqlstate is None
    # A closed provisioner refuses calls the same way.
    rds = sandbox.connect()
    rds.close()
    assert rds.closed
    with pytest.raises(rds_pg.ConnectionError, match="closed"):
        rds.ensure_user("late")


def test_tls_error(sandbox):
    if sandbox.ca_cert_path is None:
        pytest.skip(f"PostgreSQL {sandbox.major_version} sandbox has no TLS (only 15+)")
    # The system's public CAs do not vouch for the sandbox's certificate.
    with pytest.raises(rds_pg.TlsError, match="UnknownIssuer") as e:
        rds_pg.connect(sandbox.master_dsn, sslrootcert="/etc/ssl/certs/ca-certificates.crt")
    assert e.value.sqlstate is None


def test_server_error(sandbox):
    with sandbox.connect() as rds:
        with pytest.raises(rds_pg.ServerError, match="invalid input syntax") as e:
            rds.ensure_user(UserSpec("expiring", valid_until="not a date"))
        assert e.value.sqlstate == "22007"
        assert rds.ensure_user("expiring").changed, "the failed statement left nothing behind"


def test_tool_error_carries_stderr(sandbox, project, tmp_path, psql):
    garbage = tmp_path / "not-a-dump"
    garbage.write_bytes(b"this is not a pg_dump archive\n")
    # Not an archive at all: refused before any program runs.
    with pytest.raises(rds_pg.InvalidInput, match="not a pg_dump archive"):
        rds_pg.restore(sandbox.dsn_for("shop", "shop"), garbage, password=project)
    # An archive whose data is cut short: its table of contents reads, pg_restore's error comes back.
    psql.ok(
        "shop",
        project,
        "shop",
        "CREATE TABLE IF NOT EXISTS filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g",
    )
    archive = tmp_path / "shop.dump"
    rds_pg.dump(sandbox.dsn_for("shop", "shop"), archive, password=project)
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: len(data) // 2])
    with sandbox.connect() as rds:
        rds.ensure_database(DatabaseSpec("shop_cut", "shop"))
    with pytest.raises(rds_pg.ToolError) as e:
        rds_pg.restore(sandbox.dsn_for("shop", "shop_cut"), truncated, password=project)
    assert e.value.tool and "pg_restore" in e.value.tool
    assert "could not read from input file" in e.value.stderr or "end of file" in e.value.stderr, e.value.stderr
    assert e.value.status and e.value.sqlstate is None
    # A program that fails while receiving credentials: its output comes back, password redacted.
    creds = rds_pg.Credentials(sandbox.host, sandbox.port, "shop", "shop", project)
    with pytest.raises(rds_pg.ToolError) as e:
        creds.send_to_command(["sh", "-c", "cat >&2; exit 3"])
    assert "[redacted]" in e.value.stderr and project.reveal() not in e.value.stderr


def test_io_error(sandbox, project, tmp_path):
    creds = rds_pg.Credentials(sandbox.host, sandbox.port, "shop", "shop", project)
    # A directory where the file should go: the new file cannot replace it.
    (tmp_path / "shop.env").mkdir()
    with pytest.raises(rds_pg.IoError) as e:
        creds.write_env_file(tmp_path / "shop.env")
    assert e.value.sqlstate is None and e.value.kind == "io"
    assert project.reveal() not in str(e.value)
    assert list((tmp_path / "shop.env").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["shop.env"]
    # A directory that does not exist is refused before anything is written, as the command
    # line refuses it before it changes the password.
    with pytest.raises(rds_pg.InvalidInput, match="is not a directory") as e:
        creds.write_pgpass(tmp_path / "no-such-dir" / "pgpass")
    assert e.value.kind == "invalid_input"


def test_an_exception_in_the_progress_callback_is_raised_after_the_restore(sandbox, project, tmp_path, psql):
    if sandbox.major_version > newest_pg_dump_major():
        pytest.skip(f"no pg_dump for PostgreSQL {sandbox.major_version} on this machine")
    psql.ok("shop", project, "shop", "CREATE TABLE IF NOT EXISTS kept (id int); INSERT INTO kept VALUES (1)")
    archive = tmp_path / "shop.dump"
    rds_pg.dump(sandbox.dsn_for("shop", "shop"), archive, password=project)
    with sandbox.connect() as rds:
        rds.ensure_database(DatabaseSpec("shop_restored", "shop"))

    calls = []

    def progress(done, total, message):
        calls.append(done)
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        rds_pg.restore(sandbox.dsn_for("shop", "shop_restored"), archive, password=project, progress=progress)
    assert len(calls) > 1, "the restore went on after the callback raised"
    assert psql.ok("shop", project, "shop_restored", "SELECT count(*) FROM kept") == "1"


def test_a_progress_callback_that_uses_the_same_provisioner_gets_an_error_not_a_deadlock(
    sandbox, project, tmp_path, psql
):
    if sandbox.major_version > newest_pg_dump_major():
        pytest.skip(f"no pg_dump for PostgreSQL {sandbox.major_version} on this machine")
    psql.ok("shop", project, "shop", "CREATE TABLE IF NOT EXISTS kept (id int); INSERT INTO kept VALUES (1)")
    archive = tmp_path / "shop.dump"
    rds_pg.dump(sandbox.dsn_for("shop", "shop"), archive, password=project)
    with sandbox.connect() as rds:
        rds.ensure_database(DatabaseSpec("shop_reentry", "shop"))
        seen = []

        def progress(done, total, message):
            for attempt in (lambda: rds.plan_ensure_user("someone"), rds.close):
                try:
                    attempt()
                except rds_pg.RdsPgError as e:
                    seen.append(str(e))
                else:
                    seen.append("no error")

        rds_pg.restore(
            sandbox.dsn_for("shop", "shop_reentry"), archive, password=project, master=rds, progress=progress
        )
        assert seen, "the callback ran"
        assert all("inside one of its own calls" in s for s in seen), seen
        # The provisioner is still open and usable once the restore returned.
        assert not rds.closed
        assert rds.plan_ensure_user("someone").steps
    rows = psql.ok("shop", project, "shop", "SELECT count(*) FROM kept")
    assert psql.ok("shop", project, "shop_reentry", "SELECT count(*) FROM kept") == rows
