"""Shared fixtures: RDS-like sandboxes per PostgreSQL version, and psql to log in as the users.

`RDS_PG_TEST_VERSIONS` ("15 18" or "15,18") selects the versions of the per-version tests; unset
or empty means 15 and the newest installed version. Tests that need one server use the first
selected version. A selected version whose binaries are missing fails with the command that
installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import rds_pg

SETUP_HINT = "run `make setup` (scripts/setup-postgres.sh) to install the PostgreSQL binaries"


def selected_versions() -> list[int]:
    raw = os.environ.get("RDS_PG_TEST_VERSIONS", "").replace(",", " ").split()
    if raw:
        return [int(v) for v in raw]
    available = rds_pg.Sandbox.available_versions()
    if not available:
        pytest.fail(f"no PostgreSQL server binaries found: {SETUP_HINT}")
    return sorted({15, available[-1]})


VERSIONS = selected_versions()


def start_sandbox(version: int) -> rds_pg.Sandbox:
    try:
        sandbox = rds_pg.Sandbox(version)
    except rds_pg.NotFound as e:
        pytest.fail(f"PostgreSQL {version} is not installed ({e}): {SETUP_HINT}")
    if version == 15 and not sandbox.has_postgis:
        sandbox.stop()
        pytest.fail(
            "PostgreSQL 15 sandbox without PostGIS/pgextwlist: run `make setup` (apt-get install "
            "postgresql-15-postgis-3 postgresql-15-pgextwlist)"
        )
    return sandbox


@pytest.fixture(params=VERSIONS, ids=[f"pg{v}" for v in VERSIONS])
def sandbox_each(request):
    """A fresh sandbox, once per selected version."""
    with start_sandbox(request.param) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox of the first selected version, shared by a test module."""
    with start_sandbox(VERSIONS[0]) as sandbox:
        yield sandbox


def psql_binary() -> str:
    """The newest psql installed (Debian's versioned directories first, then PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/psql"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    found = shutil.which("psql")
    if found is None:
        pytest.fail(f"psql is not installed: {SETUP_HINT} (Debian package postgresql-client-15)")
    return found


def newest_pg_dump_major() -> int:
    """The newest pg_dump rds-pg finds (RDS_PG_TOOLS_DIRS, then Debian's versioned directories; 0:
    none). `scripts/python-test.sh` points RDS_PG_TOOLS_DIRS at the client tools 18 of `make setup`."""
    dirs = [Path(d) for d in os.environ.get("RDS_PG_TOOLS_DIRS", "").split(os.pathsep) if d]
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    majors = []
    for d in dirs:
        tool = d / "pg_dump"
        if tool.is_file():
            out = subprocess.run([str(tool), "--version"], capture_output=True, text=True).stdout
            digits = out.split("(PostgreSQL)")[-1].strip().split(".")[0]
            if digits.isdigit():
                majors.append(int(digits))
    return max(majors, default=0)


class Psql:
    """Runs SQL through psql as a given role, the way an operator checks access by hand.

    The password goes through a 0600 passfile, never argv or the environment.
    """

    def __init__(self, sandbox: rds_pg.Sandbox, workdir: Path):
        self.sandbox = sandbox
        self.workdir = workdir
        self.binary = psql_binary()

    def run(self, user: str, password, dbname: str, sql: str) -> subprocess.CompletedProcess:
        secret = password.reveal() if isinstance(password, rds_pg.Secret) else password
        passfile = self.workdir / f"pgpass-{user}"
        passfile.write_text(f"*:*:*:{user}:{secret}\n")
        passfile.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(passfile)
        env["PGCONNECT_TIMEOUT"] = "10"
        return subprocess.run(
            [
                self.binary,
                "--no-psqlrc",
                "--set=ON_ERROR_STOP=1",
                "--tuples-only",
                "--no-align",
                "--quiet",
                "--dbname",
                self.sandbox.dsn_for(user, dbname),
                "--command",
                sql,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def login(self, conninfo: str, sql: str, *, passfile=None) -> str:
        """The output of `sql` run by psql given only `conninfo` (a `key=value` DSN or a
        postgresql:// URL), as a user would run it: no PG* variable, and no password file but
        `passfile` (a path that does not exist by default). It must succeed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(passfile or (self.workdir / "no-such-pgpass"))
        env["PGCONNECT_TIMEOUT"] = "10"
        r = subprocess.run(
            [self.binary, "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--tuples-only", "--no-align", "--quiet", "--dbname", conninfo, "--command", sql],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, f"psql with the connection string failed: {r.stderr}"
        return r.stdout.strip()

    def ok(self, user: str, password, dbname: str, sql: str) -> str:
        """The output of `sql`, which must succeed."""
        r = self.run(user, password, dbname, sql)
        assert r.returncode == 0, f"as {user} in {dbname}: {sql!r} failed: {r.stderr}"
        return r.stdout.strip()

    def fails(self, user: str, password, dbname: str, sql: str) -> str:
        """The error text of `sql`, which must fail."""
        r = self.run(user, password, dbname, sql)
        assert r.returncode != 0, f"as {user} in {dbname}: {sql!r} unexpectedly succeeded"
        return r.stderr


@pytest.fixture
def psql_each(sandbox_each, tmp_path) -> Psql:
    return Psql(sandbox_each, tmp_path)


@pytest.fixture
def psql(sandbox, tmp_path) -> Psql:
    return Psql(sandbox, tmp_path)


class DeployHoldingLocks:
    """Another deploy in the middle of changing `database`: a real rds_pg call
    (`ensure_extensions(database, ["citext"])` on its own Provisioner) that holds rds_pg's locks
    on the database while it waits for a session of the database's owner, which has created the
    same extension without committing and ends after `seconds` (or at `kill()`), rolling back.
    Then the deploy finishes, creating the extension, and lets its locks go; `wait()` drops the
    extension again, as the owner, so the database is left as it was."""

    HOLDER = "rds-pg-test-holder"

    def __init__(self, sandbox, tmp_path, database: str, owner: str, owner_password, seconds: float):
        self.sandbox = sandbox
        self.psql = Psql(sandbox, tmp_path)
        self.owner, self.owner_password, self.database = owner, owner_password, database
        secret = owner_password.reveal() if isinstance(owner_password, rds_pg.Secret) else owner_password
        passfile = tmp_path / f"pgpass-holder-{owner}"
        passfile.write_text(f"*:*:*:{owner}:{secret}\n")
        passfile.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(passfile)
        self.owner_session = subprocess.Popen(
            [
                self.psql.binary,
                "--no-psqlrc",
                "--set=ON_ERROR_STOP=1",
                "--dbname",
                sandbox.dsn_for(owner, database) + f" application_name={self.HOLDER}",
                "--command",
                f"BEGIN; CREATE EXTENSION citext; SELECT pg_sleep({seconds}); ROLLBACK;",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._until(f"application_name = '{self.HOLDER}' AND wait_event = 'PgSleep'", "the owner's session to sleep")
        self.deploy = sandbox.connect(lock_timeout=seconds + 30)
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._deploy, args=(database,), daemon=True)
        self.thread.start()
        self._until("application_name = 'rds-pg' AND wait_event_type = 'Lock'", "the deploy to wait, holding its locks")
        assert self._count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") >= 1

    def _deploy(self, database: str):
        try:
            self.deploy.ensure_extensions(database, ["citext"])
        except Exception as e:  # noqa: BLE001 - reported by wait()
            self.error = e

    def _count(self, sql: str) -> int:
        return int(self.psql.ok(self.sandbox.master_user, self.sandbox.master_password, "postgres", sql))

    def _until(self, condition: str, what: str):
        deadline = time.monotonic() + 20
        while self._count(f"SELECT count(*) FROM pg_stat_activity WHERE {condition}") == 0:
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def kill(self):
        """Ends the owner's session now: the deploy then finishes."""
        self.owner_session.kill()
        self.psql.ok(
            self.sandbox.master_user,
            self.sandbox.master_password,
            "postgres",
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{self.HOLDER}'",
        )

    def wait(self, timeout: float = 60):
        """Waits for the owner's session and the deploy to finish; the deploy must succeed."""
        self.owner_session.wait(timeout)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the deploy is still waiting"
        self.deploy.close()
        assert self.error is None, f"the deploy failed: {self.error!r}"
        self.psql.ok(self.owner, self.owner_password, self.database, "DROP EXTENSION citext")


def hold_database_lock(sandbox, tmp_path, database: str, owner: str, owner_password, seconds: float) -> DeployHoldingLocks:
    """Another deploy holding rds_pg's locks on `database` for `seconds` (see DeployHoldingLocks)."""
    return DeployHoldingLocks(sandbox, tmp_path, database, owner, owner_password, seconds)
