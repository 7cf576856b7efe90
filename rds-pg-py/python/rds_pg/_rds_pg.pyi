"""Type stubs of the native module rds_pg._rds_pg (re-exported by rds_pg)."""

import datetime
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Optional, Union, final

__version__: str
__all__ = [
    "AppliedFix",
    "AuditFinding",
    "AuditObject",
    "AuditReport",
    "ArchiveVerification",
    "BackupArchive",
    "BackupRunReport",
    "BackupTable",
    "BackupTableCheck",
    "BackupVerifyReport",
    "CheckReport",
    "ConnectAccess",
    "ConnectionError",
    "Credentials",
    "DatabaseBackup",
    "DatabaseSpec",
    "DumpReport",
    "Extension",
    "Finding",
    "FindingObject",
    "FixStatement",
    "FleetItem",
    "FleetReport",
    "InstanceReport",
    "InvalidInput",
    "InvalidName",
    "Inventory",
    "InventoryProblem",
    "IoError",
    "Location",
    "NotFound",
    "PermissionDenied",
    "Plan",
    "PolicyViolation",
    "Provisioner",
    "PruneDecision",
    "PruneReport",
    "RdsPgError",
    "ReadOnlyGrant",
    "Report",
    "RestoreReport",
    "Sandbox",
    "Secret",
    "ServerError",
    "SkippedEntry",
    "Step",
    "StillInUse",
    "TableRowCount",
    "TlsError",
    "ToolError",
    "UserSpec",
    "VerifyReport",
    "__version__",
    "backup_list",
    "backup_prune",
    "backup_run",
    "backup_verify",
    "connect",
    "dump",
    "fleet_apply",
    "fleet_plan",
    "restore",
    "verify_backup",
]

_Password = Union[str, "Secret"]
_Seconds = Union[int, float, datetime.timedelta]
_Path = Union[str, os.PathLike[str]]
_ExtensionArg = Union["Extension", str]
_Connection = Union["Credentials", str, None]
_Progress = Union[
    Callable[[int, int, str], object],
    Callable[[int, int, str, Optional[int]], object],
]

# ---------------------------------------------------------------------------------- exceptions

class RdsPgError(Exception):
    """Base class of every rds_pg error."""

    kind: Optional[str]
    """The error's kind as the command line's JSON names it (`not_found`, ...)."""
    sqlstate: Optional[str]
    """The server's SQLSTATE when the server reported the error."""

class InvalidName(RdsPgError):
    """A name PostgreSQL would truncate or reject, or that rds_pg refuses to touch."""

class InvalidInput(RdsPgError):
    """Bad input other than a name (an invalid inventory too)."""

    problems: Optional[list[InventoryProblem]]
    """Every problem of an invalid inventory, each with its location; else None."""

class PermissionDenied(RdsPgError):
    """The connected role lacks a privilege."""

    hint: Optional[str]
    """The fix, when rds_pg knows it."""

class NotFound(RdsPgError):
    """A role, database, schema, extension, file or program that does not exist."""

class StillInUse(RdsPgError):
    """Sessions are connected, or a lock was not granted within lock_timeout."""

class PolicyViolation(RdsPgError):
    """The request would break a rule rds_pg enforces (e.g. a restore as anyone but the
    database's unprivileged owner)."""

    hint: Optional[str]
    """The fix, when rds_pg knows it (for a refused restore: how to restore as the owner)."""

class ConnectionError(RdsPgError):  # noqa: A001 - rds_pg.ConnectionError, not the built-in
    """The server could not be reached or refused the login; or the Provisioner is closed."""

class TlsError(RdsPgError):
    """TLS set-up or certificate verification failed."""

class ServerError(RdsPgError):
    """Any other error reported by the server."""

class ToolError(RdsPgError):
    """An external program failed (or none new enough was found)."""

    tool: Optional[str]
    status: Optional[str]
    stderr: Optional[str]

class IoError(RdsPgError):
    """A file-system or process error on the client side."""

# -------------------------------------------------------------------------------------- values

@final
class Secret:
    """A password: repr() and str() show [redacted]; reveal() returns it. Not picklable."""

    def __new__(cls, value: str) -> Secret: ...
    def reveal(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Extension:
    """Extensions known by name; arguments also accept names as strings."""

    POSTGIS: ClassVar[Extension]
    POSTGIS_TOPOLOGY: ClassVar[Extension]
    HSTORE: ClassVar[Extension]
    CITEXT: ClassVar[Extension]
    PG_TRGM: ClassVar[Extension]
    UUID_OSSP: ClassVar[Extension]
    PGCRYPTO: ClassVar[Extension]
    UNACCENT: ClassVar[Extension]
    BTREE_GIST: ClassVar[Extension]
    BTREE_GIN: ClassVar[Extension]
    LTREE: ClassVar[Extension]
    FUZZYSTRMATCH: ClassVar[Extension]
    PG_STAT_STATEMENTS: ClassVar[Extension]
    @property
    def value(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    @staticmethod
    def from_name(name: str) -> Union[Extension, str]: ...

@final
class UserSpec:
    """A project's login role (LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE ...)."""

    def __new__(
        cls,
        name: str,
        *,
        password: Optional[_Password] = None,
        connection_limit: Optional[int] = None,
        valid_until: Optional[str] = None,
        iam: Optional[bool] = None,
    ) -> UserSpec: ...
    @property
    def name(self) -> str: ...
    @property
    def iam(self) -> Optional[bool]: ...
    @property
    def password(self) -> Optional[Secret]: ...
    @property
    def connection_limit(self) -> Optional[int]: ...
    @property
    def valid_until(self) -> Optional[str]: ...

@final
class DatabaseSpec:
    """A project's database, owned by its user."""

    def __new__(
        cls,
        name: str,
        owner: str,
        *,
        extensions: Optional[Sequence[_ExtensionArg]] = None,
        encoding: Optional[str] = None,
        locale: Optional[str] = None,
        lc_collate: Optional[str] = None,
        lc_ctype: Optional[str] = None,
        template: Optional[str] = None,
        connection_limit: Optional[int] = None,
        strict: bool = False,
    ) -> DatabaseSpec: ...
    @property
    def name(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def extensions(self) -> list[Union[Extension, str]]: ...
    @property
    def encoding(self) -> str: ...
    @property
    def locale(self) -> Optional[str]: ...
    @property
    def lc_collate(self) -> Optional[str]: ...
    @property
    def lc_ctype(self) -> Optional[str]: ...
    @property
    def template(self) -> Optional[str]: ...
    @property
    def connection_limit(self) -> Optional[int]: ...
    @property
    def strict(self) -> bool: ...

@final
class ReadOnlyGrant:
    """Read-only access for a role to a database."""

    def __new__(
        cls,
        database: str,
        role: str,
        *,
        schemas: Optional[Sequence[str]] = None,
        sequences: bool = True,
        future: bool = True,
    ) -> ReadOnlyGrant: ...
    @property
    def database(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def schemas(self) -> list[str]: ...
    @property
    def sequences(self) -> bool: ...
    @property
    def future(self) -> bool: ...

@final
class Step:
    """One statement of a plan or report (SQL redacted)."""

    @property
    def database(self) -> Optional[str]: ...
    @property
    def sql(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def standalone(self) -> bool: ...

@final
class Plan:
    """The steps an operation would run; false when there is nothing to change."""

    @property
    def steps(self) -> list[Step]: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def sql(self) -> list[str]: ...
    @property
    def temporary_grants(self) -> list[str]: ...
    def is_empty(self) -> bool: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __getitem__(self, index: int, /) -> Step: ...
    def __iter__(self) -> Iterator[Step]: ...

@final
class Report:
    """What an operation did."""

    @property
    def changed(self) -> bool: ...
    @property
    def steps(self) -> list[Step]: ...
    @property
    def temporary_grants(self) -> list[str]: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def generated_password(self) -> Optional[Secret]: ...

@final
class Credentials:
    """A project user's login; outputs holding the password come back as Secret."""

    def __new__(
        cls,
        host: str,
        port: int,
        database: str,
        user: str,
        password: _Password,
        *,
        sslmode: str = "prefer",
        sslrootcert: Optional[_Path] = None,
    ) -> Credentials: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def database(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> Secret: ...
    @property
    def sslmode(self) -> str: ...
    @property
    def sslrootcert(self) -> Optional[Path]: ...
    def database_url(self) -> Secret: ...
    def pgpass_line(self) -> Secret: ...
    def env_file(self) -> Secret: ...
    def json(self) -> Secret: ...
    def secrets_manager_json(self) -> Secret: ...
    def write_env_file(self, path: _Path) -> None: ...
    def write_pgpass(self, path: Optional[_Path] = None) -> None: ...
    def send_to_command(self, argv: Sequence[_Path], format: str = "rds-pg") -> None: ...

# -------------------------------------------------------------------------------- provisioning

@final
class Provisioner:
    """A master connection; calls release the GIL and may be shared between threads."""

    @property
    def major_version(self) -> int: ...
    @property
    def current_user(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Provisioner: ...
    def __exit__(self, *exc: object) -> bool: ...
    def ensure_user(
        self,
        spec: Union[UserSpec, str],
        *,
        env_file: Optional[Union[str, os.PathLike[str]]] = None,
        pgpass: Optional[Union[str, os.PathLike[str]]] = None,
        command: Optional[Sequence[str]] = None,
        credentials_database: Optional[str] = None,
        credentials_format: Optional[str] = None,
    ) -> Report: ...
    def plan_ensure_user(self, spec: Union[UserSpec, str]) -> Plan: ...
    def ensure_database(self, spec: DatabaseSpec) -> Report: ...
    def plan_ensure_database(self, spec: DatabaseSpec) -> Plan: ...
    def ensure_extensions(self, database: str, extensions: Sequence[_ExtensionArg]) -> Report: ...
    def plan_ensure_extensions(self, database: str, extensions: Sequence[_ExtensionArg]) -> Plan: ...
    def secure_instance(self) -> Report: ...
    def audit(
        self,
        inventory: Optional[Inventory] = None,
        fix: bool = False,
        *,
        instance: Optional[str] = None,
        jobs: Optional[int] = None,
    ) -> AuditReport: ...
    def plan_secure_instance(self) -> Plan: ...
    def grant_read_only(self, grant: ReadOnlyGrant) -> Report: ...
    def plan_grant_read_only(self, grant: ReadOnlyGrant) -> Plan: ...
    def revoke_read_only(self, grant: ReadOnlyGrant) -> Report: ...
    def plan_revoke_read_only(self, grant: ReadOnlyGrant) -> Plan: ...
    def drop_database(self, name: str, *, force: bool = False) -> Report: ...
    def plan_drop_database(self, name: str, *, force: bool = False) -> Plan: ...
    def drop_user(self, name: str, *, reassign_to: Optional[str] = None) -> Report: ...
    def plan_drop_user(self, name: str, *, reassign_to: Optional[str] = None) -> Plan: ...
    def rotate_password(
        self,
        user: str,
        password: Optional[_Password] = None,
        *,
        env_file: Optional[Union[str, os.PathLike[str]]] = None,
        pgpass: Optional[Union[str, os.PathLike[str]]] = None,
        command: Optional[Sequence[str]] = None,
        credentials_database: Optional[str] = None,
        credentials_format: Optional[str] = None,
    ) -> Report: ...
    def plan_rotate_password(self, user: str, password: Optional[_Password] = None) -> Plan: ...
    def credentials(self, user: str, database: str, password: _Password) -> Credentials: ...

def connect(
    dsn: Optional[str] = None,
    *,
    host: Optional[str] = None,
    port: Optional[int] = None,
    user: Optional[str] = None,
    dbname: Optional[str] = None,
    password: Optional[_Password] = None,
    sslmode: Optional[str] = None,
    sslrootcert: Optional[_Path] = None,
    lock_timeout: Optional[_Seconds] = None,
    passfile: Optional[_Path] = None,
    connect_timeout: Optional[_Seconds] = None,
    application_name: Optional[str] = None,
    hostaddr: Optional[str] = None,
    password_command: Optional[Sequence[str]] = None,
    ssh: Optional[str] = None,
    ssh_config: Optional[_Path] = None,
) -> Provisioner:
    """Connects as master: libpq environment, then dsn, then keyword arguments."""

# ------------------------------------------------------------------------------ dump / restore

@final
class DumpReport:
    @property
    def path(self) -> Path: ...
    @property
    def format(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def tool(self) -> str: ...
    @property
    def server_version(self) -> str: ...

@final
class SkippedEntry:
    @property
    def entry(self) -> str: ...
    @property
    def list_line(self) -> str: ...
    @property
    def reason(self) -> str: ...

@final
class RestoreReport:
    @property
    def database(self) -> str: ...
    @property
    def archive(self) -> Path: ...
    @property
    def entries_total(self) -> int: ...
    @property
    def entries_restored(self) -> int: ...
    @property
    def skipped(self) -> list[SkippedEntry]: ...
    @property
    def created_extensions(self) -> list[str]: ...
    @property
    def single_transaction(self) -> bool: ...
    @property
    def jobs(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def tool(self) -> str: ...
    @property
    def warnings(self) -> list[str]: ...

@final
class TableRowCount:
    @property
    def schema(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def source(self) -> Optional[int]: ...
    @property
    def restored(self) -> Optional[int]: ...
    def matches(self) -> bool: ...

@final
class VerifyReport:
    @property
    def scratch_database(self) -> str: ...
    @property
    def restore(self) -> RestoreReport: ...
    @property
    def tables(self) -> list[TableRowCount]: ...
    @property
    def mismatches(self) -> list[TableRowCount]: ...
    @property
    def verified(self) -> bool: ...
    @property
    def scratch_dropped(self) -> bool: ...

def dump(
    connection: _Connection,
    output: _Path,
    *,
    password: Optional[_Password] = None,
    database: Optional[str] = None,
    format: str = "custom",
    jobs: Optional[int] = None,
    exclude_schemas: Optional[Sequence[str]] = None,
    tools_dir: Optional[_Path] = None,
    progress: Optional[_Progress] = None,
    ssh: Optional[str] = None,
    ssh_config: Optional[_Path] = None,
) -> DumpReport: ...
def restore(
    connection: _Connection,
    archive: _Path,
    *,
    password: Optional[_Password] = None,
    database: Optional[str] = None,
    jobs: Optional[int] = None,
    tools_dir: Optional[_Path] = None,
    master: Optional[Provisioner] = None,
    extensions: Optional[Sequence[_ExtensionArg]] = None,
    progress: Optional[_Progress] = None,
    ssh: Optional[str] = None,
    ssh_config: Optional[_Path] = None,
) -> RestoreReport: ...
def verify_backup(
    master: Provisioner,
    connection: _Connection,
    archive: _Path,
    *,
    password: Optional[_Password] = None,
    jobs: Optional[int] = None,
    tools_dir: Optional[_Path] = None,
    scratch_database: Optional[str] = None,
    extensions: Optional[Sequence[_ExtensionArg]] = None,
    progress: Optional[_Progress] = None,
    ssh: Optional[str] = None,
    ssh_config: Optional[_Path] = None,
) -> VerifyReport: ...

# ------------------------------------------------------------------------------------- sandbox

@final
class Sandbox:
    """A throw-away RDS-like PostgreSQL server; a context manager."""

    def __new__(cls, version: Optional[int] = None) -> Sandbox: ...
    @staticmethod
    def available_versions() -> list[int]: ...
    @property
    def master_dsn(self) -> str: ...
    def dsn_for(self, user: str, dbname: str = "postgres") -> str: ...
    @property
    def master_user(self) -> str: ...
    @property
    def master_password(self) -> Optional[Secret]: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def ca_cert_path(self) -> Optional[Path]: ...
    @property
    def version(self) -> str: ...
    @property
    def major_version(self) -> int: ...
    @property
    def has_postgis(self) -> bool: ...
    @property
    def stopped(self) -> bool: ...
    def connect(self, *, lock_timeout: Optional[_Seconds] = None) -> Provisioner: ...
    def log_text(self) -> str: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Sandbox: ...
    def __exit__(self, *exc: object) -> bool: ...


# ----------------------------------------------------------------------------------- inventory

@final
class Location:
    """A file and line/column (inventory) or JSON pointer (AWS JSON)."""

    @property
    def file(self) -> str: ...
    @property
    def line(self) -> Optional[int]: ...
    @property
    def column(self) -> Optional[int]: ...
    @property
    def pointer(self) -> Optional[str]: ...

@final
class InventoryProblem:
    """One problem of an invalid inventory."""

    @property
    def location(self) -> Location: ...
    @property
    def message(self) -> str: ...

@final
class FindingObject:
    """One entry a finding is about."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def location(self) -> Location: ...

@final
class Finding:
    """One broken rule, with the entries involved and the fix."""

    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def objects(self) -> list[FindingObject]: ...
    @property
    def fix(self) -> str: ...

@final
class CheckReport:
    """What Inventory.check found."""

    @property
    def findings(self) -> list[Finding]: ...
    @property
    def clean(self) -> bool: ...
    @property
    def instances(self) -> int: ...
    @property
    def projects(self) -> int: ...
    @property
    def aws_db_instances(self) -> Optional[int]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Finding]: ...

@final
class Inventory:
    """A fleet's inventory: clients, instances, projects."""

    @staticmethod
    def load(path: _Path) -> Inventory: ...
    @staticmethod
    def from_str(text: str, name: str = "<string>") -> Inventory: ...
    @property
    def source(self) -> str: ...
    @property
    def client_names(self) -> list[str]: ...
    @property
    def instance_names(self) -> list[str]: ...
    @property
    def project_names(self) -> list[str]: ...
    @property
    def backup_retention_days(self) -> int: ...
    def check(self, aws_json: Optional[Sequence[_Path]] = None) -> CheckReport: ...

# --------------------------------------------------------------------------------------- fleet

@final
class FleetItem:
    """One thing the inventory asks of an instance, and where it stands."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def database(self) -> Optional[str]: ...
    @property
    def project(self) -> Optional[str]: ...
    @property
    def state(self) -> str: ...
    @property
    def differs(self) -> bool: ...
    @property
    def plan(self) -> Optional[Plan]: ...
    @property
    def report(self) -> Optional[Report]: ...
    @property
    def reason(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[RdsPgError]: ...
    @property
    def notes(self) -> list[str]: ...

@final
class InstanceReport:
    """What a fleet run found and did on one instance."""

    @property
    def name(self) -> str: ...
    @property
    def client(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def server_version(self) -> Optional[str]: ...
    @property
    def summary(self) -> str: ...
    @property
    def differs(self) -> bool: ...
    @property
    def changes(self) -> int: ...
    @property
    def findings(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def inspection_queries(self) -> int: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def error(self) -> Optional[RdsPgError]: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def items(self) -> list[FleetItem]: ...

@final
class FleetReport:
    """What fleet_plan or fleet_apply found and did, instance by instance."""

    @property
    def mode(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def instances(self) -> list[InstanceReport]: ...
    @property
    def in_sync(self) -> bool: ...
    @property
    def differs(self) -> bool: ...
    @property
    def has_errors(self) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[InstanceReport]: ...

def fleet_plan(
    inventory: Inventory,
    *,
    instances: Optional[Sequence[str]] = None,
    jobs: int = 4,
    prune: bool = False,
    take_over: bool = False,
) -> FleetReport: ...
def fleet_apply(
    inventory: Inventory,
    *,
    instances: Optional[Sequence[str]] = None,
    jobs: int = 4,
    prune: bool = False,
    take_over: bool = False,
) -> FleetReport: ...

# --------------------------------------------------------------------------------------- audit

@final
class AuditObject:
    """One thing an audit finding is about: a role, database, schema, object, setting or project."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def database(self) -> Optional[str]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class FixStatement:
    """One statement of a fix, with the database it runs in and the role it runs as."""

    @property
    def sql(self) -> str: ...
    @property
    def database(self) -> Optional[str]: ...
    @property
    def run_as(self) -> Optional[str]: ...

@final
class AuditFinding:
    """One broken isolation rule, with the objects involved and the SQL that fixes it."""

    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def objects(self) -> list[AuditObject]: ...
    @property
    def fix_sql(self) -> list[str]: ...
    @property
    def fix_statements(self) -> list[FixStatement]: ...
    @property
    def fixable(self) -> bool: ...
    @property
    def fix(self) -> str: ...

@final
class AppliedFix:
    """A fix that audit(fix=True) ran, with each statement's error (None: it ran)."""

    @property
    def finding(self) -> AuditFinding: ...
    @property
    def results(self) -> list[tuple[FixStatement, Optional[str]]]: ...
    @property
    def succeeded(self) -> bool: ...

@final
class ConnectAccess:
    """Which login roles may connect to one database."""

    @property
    def database(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def project(self) -> Optional[str]: ...
    @property
    def roles(self) -> list[str]: ...

@final
class AuditReport:
    """What Provisioner.audit found."""

    @property
    def findings(self) -> list[AuditFinding]: ...
    @property
    def clean(self) -> bool: ...
    @property
    def fixed(self) -> list[AppliedFix]: ...
    @property
    def connect_matrix(self) -> list[ConnectAccess]: ...
    @property
    def databases(self) -> list[str]: ...
    @property
    def login_roles(self) -> int: ...
    @property
    def server_version(self) -> str: ...
    @property
    def instance(self) -> Optional[str]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[AuditFinding]: ...

# ------------------------------------------------------------------------------------- backups

_Target = Union["Inventory", _Path]

@final
class BackupTable:
    """A table of an archive: rows in the dump's snapshot and the planner's estimate."""

    @property
    def schema(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def rows(self) -> Optional[int]: ...
    @property
    def estimated_rows(self) -> Optional[int]: ...
    @property
    def extension(self) -> Optional[str]: ...

@final
class BackupArchive:
    """An archive and what its manifest says."""

    @property
    def client(self) -> str: ...
    @property
    def instance(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def database(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def manifest_path(self) -> Path: ...
    @property
    def format(self) -> str: ...
    @property
    def encrypted(self) -> bool: ...
    @property
    def recipients(self) -> list[str]: ...
    @property
    def bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def finished_at(self) -> str: ...
    @property
    def server_version(self) -> str: ...
    @property
    def pg_dump_version(self) -> str: ...
    @property
    def toc(self) -> dict[str, int]: ...
    @property
    def extensions(self) -> list[str]: ...
    @property
    def tables(self) -> list[BackupTable]: ...
    @property
    def rows(self) -> int: ...
    @property
    def verification(self) -> str: ...
    @property
    def verified_at(self) -> Optional[str]: ...
    @property
    def problems(self) -> list[str]: ...
    @property
    def uploaded(self) -> Optional[bool]: ...

@final
class DatabaseBackup:
    """One database's backup: its archive, or the error that stopped it."""

    @property
    def client(self) -> str: ...
    @property
    def instance(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def database(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def archive(self) -> Optional[BackupArchive]: ...
    @property
    def error(self) -> Optional[RdsPgError]: ...
    @property
    def uploaded(self) -> Optional[bool]: ...
    @property
    def upload_error(self) -> Optional[RdsPgError]: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def duration(self) -> Optional[float]: ...

@final
class BackupRunReport:
    """What backup_run did."""

    @property
    def root(self) -> Path: ...
    @property
    def databases(self) -> list[DatabaseBackup]: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def duration(self) -> float: ...
    def __iter__(self) -> Iterator[DatabaseBackup]: ...
    def __len__(self) -> int: ...

@final
class BackupTableCheck:
    """A table's rows as recorded and as restored."""

    @property
    def schema(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def expected(self) -> Optional[int]: ...
    @property
    def restored(self) -> Optional[int]: ...
    @property
    def matches(self) -> bool: ...

@final
class ArchiveVerification:
    """One archive's verification."""

    @property
    def label(self) -> str: ...
    @property
    def archive(self) -> Optional[BackupArchive]: ...
    @property
    def verified(self) -> bool: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def recorded(self) -> bool: ...
    @property
    def problems(self) -> list[str]: ...
    @property
    def error(self) -> Optional[RdsPgError]: ...
    @property
    def tables(self) -> list[BackupTableCheck]: ...
    @property
    def scratch(self) -> Optional[str]: ...
    @property
    def scratch_dropped(self) -> Optional[bool]: ...
    @property
    def duration(self) -> float: ...

@final
class BackupVerifyReport:
    """What backup_verify did."""

    @property
    def archives(self) -> list[ArchiveVerification]: ...
    @property
    def succeeded(self) -> bool: ...
    def __iter__(self) -> Iterator[ArchiveVerification]: ...
    def __len__(self) -> int: ...

@final
class PruneDecision:
    """The decision about one archive."""

    @property
    def archive(self) -> BackupArchive: ...
    @property
    def keep(self) -> bool: ...
    @property
    def reasons(self) -> list[str]: ...
    @property
    def removed(self) -> bool: ...
    @property
    def error(self) -> Optional[RdsPgError]: ...

@final
class PruneReport:
    """What backup_prune decided and did."""

    @property
    def root(self) -> Path: ...
    @property
    def policy(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def decisions(self) -> list[PruneDecision]: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def removals(self) -> list[PruneDecision]: ...
    def __iter__(self) -> Iterator[PruneDecision]: ...
    def __len__(self) -> int: ...

def backup_run(
    inventory: _Target,
    to: Optional[_Path] = None,
    *,
    instance: Optional[str] = None,
    project: Optional[str] = None,
    database: Optional[str] = None,
    jobs: Optional[int] = None,
    encrypt_to: Optional[Sequence[str]] = None,
    upload: bool = True,
    tools_dir: Optional[_Path] = None,
    sslmode: Optional[str] = None,
    sslrootcert: Optional[_Path] = None,
) -> BackupRunReport:
    """Back up the inventory's databases as their owners."""

def backup_verify(
    inventory: _Target,
    to: Optional[_Path] = None,
    *,
    archive: Optional[_Path] = None,
    identity: Optional[_Path] = None,
    instance: Optional[str] = None,
    project: Optional[str] = None,
    database: Optional[str] = None,
    tools_dir: Optional[_Path] = None,
) -> BackupVerifyReport:
    """Verify the newest archive of each database as a throw-away role (master connecting as the inventory says)."""

def backup_prune(
    target: _Target,
    to: Optional[_Path] = None,
    *,
    keep_last: Optional[int] = None,
    keep_daily: Optional[int] = None,
    keep_weekly: Optional[int] = None,
    keep_monthly: Optional[int] = None,
    keep_yearly: Optional[int] = None,
    dry_run: bool = False,
    instance: Optional[str] = None,
    project: Optional[str] = None,
    database: Optional[str] = None,
) -> PruneReport:
    """Remove what the retention policy does not keep, never the newest verified archive."""

def backup_list(
    target: _Target,
    to: Optional[_Path] = None,
    *,
    instance: Optional[str] = None,
    project: Optional[str] = None,
    database: Optional[str] = None,
) -> list[BackupArchive]:
    """The archives under the backup directory."""
