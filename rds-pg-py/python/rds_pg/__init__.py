"""Provision PostgreSQL on Amazon RDS with its non-superuser master account.

A thin layer over the Rust library rds-pg-core: one login role per project without CREATEDB or
CREATEROLE, databases owned by that role, extensions, read-only access and teardown, with every
workaround RDS's master needs on PostgreSQL 13 to 18. Calls release the GIL.

    import rds_pg

    with rds_pg.connect() as rds:  # master, from PGHOST/PGUSER/... and ~/.pgpass
        user = rds.ensure_user("shop")  # password generated, returned once
        rds.ensure_database(rds_pg.DatabaseSpec("shop", "shop", extensions=["hstore"]))
        password = user.generated_password  # a Secret: .reveal() it into your vault

Errors are `RdsPgError` subclasses, one per kind, with `sqlstate` when the server gave one.
"""

from ._rds_pg import (
    ConnectionError,
    Credentials,
    DatabaseSpec,
    DumpReport,
    Extension,
    InvalidInput,
    InvalidName,
    IoError,
    NotFound,
    PermissionDenied,
    Plan,
    PolicyViolation,
    Provisioner,
    RdsPgError,
    ReadOnlyGrant,
    Report,
    RestoreReport,
    Sandbox,
    Secret,
    ServerError,
    SkippedEntry,
    Step,
    StillInUse,
    TableRowCount,
    TlsError,
    ToolError,
    UserSpec,
    VerifyReport,
    __version__,
    connect,
    dump,
    restore,
    verify_backup,
)

__all__ = [
    "ConnectionError",
    "Credentials",
    "DatabaseSpec",
    "DumpReport",
    "Extension",
    "InvalidInput",
    "InvalidName",
    "IoError",
    "NotFound",
    "PermissionDenied",
    "Plan",
    "PolicyViolation",
    "Provisioner",
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
    "connect",
    "dump",
    "restore",
    "verify_backup",
]
