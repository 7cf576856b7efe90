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


def hold_database_lock(sandbox, tmp_path, database: str, seconds: float) -> subprocess.Popen:
    """Another deploy holding rds_pg's lock on `database` for `seconds` (then its session ends)."""
    psql = Psql(sandbox, tmp_path)
    holder = subprocess.Popen(
        [
            psql.binary,
            "--no-psqlrc",
            "--dbname",
            sandbox.master_dsn,
            "--command",
            f"SELECT pg_advisory_lock(hashtextextended('rds-pg:database:{database}', 0)), pg_sleep({seconds})",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while psql.ok(
        sandbox.master_user,
        sandbox.master_password,
        "postgres",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
    ) == "0":
        assert time.monotonic() < deadline, "the lock holder never got its lock"
        time.sleep(0.05)
    return holder
