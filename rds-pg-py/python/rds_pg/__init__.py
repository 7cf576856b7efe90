"""Provision PostgreSQL on Amazon RDS with its non-superuser master account.

A thin layer over the Rust library rds-pg-core: one login role per project without CREATEDB or
CREATEROLE, databases owned by that role, extensions, read-only access and teardown, with every
workaround RDS's master needs on PostgreSQL 13 to 18. Calls release the GIL.

    import rds_pg

    with rds_pg.connect() as rds:  # master, from PGHOST/PGUSER/... and ~/.pgpass
        user = rds.ensure_user("shop")  # password generated, returned once
        rds.ensure_database(rds_pg.DatabaseSpec("shop", "shop", extensions=["hstore"]))
        password = user.generated_password  # a Secret: .reveal() it into your vault

A fleet's inventory (TOML) is checked against the hosting policies without connecting:

    report = rds_pg.Inventory.load("fleet.toml").check(aws_json=["rds.json", "groups.json"])
    for finding in report:  # rule, severity, message, objects (with their lines), fix
        print(finding)

A live instance's isolation is audited as master (`fix=True` revokes what loses no data):

    report = rds.audit(inventory=rds_pg.Inventory.load("fleet.toml"))
    for finding in report:  # rule, severity, message, objects, fix_sql, fixable
        print(finding)

Errors are `RdsPgError` subclasses, one per kind, with `sqlstate` when the server gave one.
"""

from . import _rds_pg
from ._rds_pg import *  # noqa: F403 - every name of _rds_pg.__all__, listed in _rds_pg.pyi
from ._rds_pg import __version__

__all__: list[str] = []
__all__ += _rds_pg.__all__  # the native module's names, in the order it registers them
