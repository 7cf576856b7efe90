"""Fabric 3 tasks that replace the psql steps of our RDS procedure with rds_pg calls.

Run them where the RDS instance is reachable (an EC2 instance in its security group, as the hosting
policy requires), with the master's settings in the libpq environment and the project's settings
in RDS_PG_* variables:

    export PGHOST=proj.abc123.eu-west-1.rds.amazonaws.com PGUSER=master
    export PGSSLMODE=verify-full PGSSLROOTCERT=/etc/ssl/rds/global-bundle.pem
    # master's password: a line in ~/.pgpass (or PGPASSFILE), removed when you are done
    export RDS_PG_PROJECT=shop RDS_PG_EXTENSIONS=postgis,hstore RDS_PG_READONLY=shop_ro
    export RDS_PG_ENV_FILE=/srv/shop/db.env
    fab provision                      # user, database, extensions, read-only user; idempotent
    fab dump --output shop.dump --verify  # as the project user; restored into a scratch db and compared
    fab restore --archive shop.dump    # into the project's database (created if missing)
    fab teardown --yes                 # database and users dropped

    fab fleet --inventory fleet.toml            # every instance of an inventory: what differs
    fab fleet --inventory fleet.toml --apply    # ... brought in line (credentials delivered)

Or run them on your own machine, through the application server Fabric targets: with
`fab -H deploy@app1 provision` (or `teardown`), rds_pg reaches the instance through an SSH
forward via app1 (the system ssh, your ~/.ssh/config and agent), so nothing of master's is ever
on app1: master's password comes from your local ~/.pgpass (the line for the endpoint's name),
or from a command such as your password manager's CLI:

    export RDS_PG_MASTER_PASSWORD_COMMAND="op read op://Shared/acme-prod/password"
    fab -H deploy@app1 provision

dump and restore run as the project user: without -H on a host that has its password (an
application server), or with -H from your machine, through the same kind of forward, with the
project's line of your local password file (provision adds it there).

Settings:
    RDS_PG_PROJECT     the project's login role (required)
    RDS_PG_DATABASE    its database (default: the project's name)
    RDS_PG_EXTENSIONS  comma-separated extensions (postgis, hstore, ...), default none
    RDS_PG_READONLY    a read-only role to create and grant, default none
    RDS_PG_ENV_FILE    where the project's new credentials go as an env file (DATABASE_URL,
                       PGHOST, ..., mode 0600), default none
    PGPASSFILE         the password file (default ~/.pgpass): master's line is read from it, and
                       the project users' new passwords are added to it so dump/restore work
    RDS_PG_MASTER_PASSWORD_COMMAND
                       a command (split like a shell would, run without one, once per connection)
                       that prints master's password, instead of the password file
    RDS_PG_SSH_CONFIG  an ssh configuration file for the forward of -H (default ~/.ssh/config)

Generated passwords are written only to those files, never printed. The fleet task reads
everything from the inventory (instances, master's password sources, projects, where their
credentials go) instead: RDS_PG_INVENTORY names it when --inventory does not.
"""

from __future__ import annotations

import os
import shlex

from fabric import task
from invoke import Exit

import rds_pg


class Settings:
    """The project's settings, read from the environment when a task runs."""

    def __init__(self) -> None:
        self.project = os.environ.get("RDS_PG_PROJECT", "").strip()
        if not self.project:
            raise Exit("set RDS_PG_PROJECT to the project's role name")
        self.database = os.environ.get("RDS_PG_DATABASE", "").strip() or self.project
        self.extensions = [
            e.strip() for e in os.environ.get("RDS_PG_EXTENSIONS", "").split(",") if e.strip()
        ]
        self.readonly = os.environ.get("RDS_PG_READONLY", "").strip() or None
        self.env_file = os.environ.get("RDS_PG_ENV_FILE", "").strip() or None

    def database_spec(self) -> rds_pg.DatabaseSpec:
        return rds_pg.DatabaseSpec(self.database, self.project, extensions=self.extensions)

    def project_dsn(self) -> str:
        """The project user on its database; the rest (host, TLS, password file) comes from the
        libpq environment."""
        return f"user={self.project} dbname={self.database}"


def ssh_destination(c) -> str | None:
    """The host Fabric targets (`fab -H deploy@app1 ...`) as an ssh destination, or None when the
    task runs without one (then it connects directly)."""
    host = getattr(c, "original_host", None)
    if not host:
        return None
    return f"ssh://{c.user}@{host}:{c.port}"


def forward(c) -> dict:
    """The `ssh=`/`ssh_config=` arguments of rds_pg's calls for the Fabric host (none without
    -H): each call opens its own forward via that host and closes it when it returns."""
    destination = ssh_destination(c)
    if not destination:
        return {}
    kwargs = {"ssh": destination}
    config = os.environ.get("RDS_PG_SSH_CONFIG", "").strip()
    if config:
        kwargs["ssh_config"] = config
    return kwargs


def connect_master(c) -> rds_pg.Provisioner:
    """Master's provisioner: directly, or through an SSH forward via the Fabric host; the
    password from the password file, or from RDS_PG_MASTER_PASSWORD_COMMAND."""
    kwargs = forward(c)
    if kwargs:
        print(f"through an ssh forward via {kwargs['ssh']}")
    command = os.environ.get("RDS_PG_MASTER_PASSWORD_COMMAND", "").strip()
    if command:
        kwargs["password_command"] = shlex.split(command)
    return rds_pg.connect(**kwargs)


def show(what: str, report: rds_pg.Report) -> None:
    print(f"{what}: {'changed' if report.changed else 'no change'}")
    for step in report.steps:
        print(f"    {step}")
    for note in report.notes:
        print(f"    note: {note}")


def hand_over(rds: rds_pg.Provisioner, user: str, database: str, password, env_file) -> None:
    """Stores a new password where the deploy and the application read it."""
    credentials = rds.credentials(user, database, password)
    credentials.write_pgpass()
    print(f"    {user}'s password added to the password file")
    if env_file:
        credentials.write_env_file(env_file)
        print(f"    {user}'s credentials written to {env_file}")


@task
def provision(c):
    """Creates the project's user, its database (extensions included) and the read-only user,
    or brings existing ones in line; running it again changes nothing. With -H, through an SSH
    forward via that host."""
    s = Settings()
    with connect_master(c) as rds:
        report = rds.ensure_user(s.project)
        show(f"user {s.project}", report)
        if report.generated_password is not None:
            hand_over(rds, s.project, s.database, report.generated_password, s.env_file)
        show(f"database {s.database}", rds.ensure_database(s.database_spec()))
        if s.readonly:
            report = rds.ensure_user(s.readonly)
            show(f"user {s.readonly}", report)
            if report.generated_password is not None:
                env_file = f"{s.env_file}.readonly" if s.env_file else None
                hand_over(rds, s.readonly, s.database, report.generated_password, env_file)
            grant = rds_pg.ReadOnlyGrant(s.database, s.readonly)
            show(f"read-only access for {s.readonly}", rds.grant_read_only(grant))


@task
def teardown(c, yes=False, force=False):
    """Drops the project's database and its users. Needs --yes; --force ends sessions still
    connected to the database. With -H, through an SSH forward via that host."""
    s = Settings()
    if not yes:
        raise Exit(f"this drops database {s.database} and its users: run again with --yes")
    with connect_master(c) as rds:
        show(f"drop database {s.database}", rds.drop_database(s.database, force=force))
        for user in filter(None, (s.readonly, s.project)):
            show(f"drop user {user}", rds.drop_user(user))


@task
def dump(c, output=None, verify=False):
    """Dumps the project's database as the project user (custom format) to --output (default
    <database>.dump); with --verify, restores it into a scratch database and compares row
    counts (the scratch database is dropped afterwards). With -H, through an SSH forward via
    that host."""
    s = Settings()
    archive = output or f"{s.database}.dump"
    report = rds_pg.dump(s.project_dsn(), archive, **forward(c))
    print(f"dumped {s.database} to {report.path}: {report.bytes} bytes in {report.duration:.1f} s ({report.tool})")
    if verify:
        with connect_master(c) as rds:
            checked = rds_pg.verify_backup(rds, s.project_dsn(), archive, **forward(c))
        if not checked.verified:
            for t in checked.mismatches:
                print(f"    {t.schema}.{t.table}: {t.source} rows in {s.database}, {t.restored} restored")
            raise Exit(f"backup {archive} does not match {s.database}")
        print(f"verified {archive}: {len(checked.tables)} tables, same row counts")


@task
def restore(c, archive):
    """Restores --archive into the project's database as the project user, creating the user
    and database first when they are missing. With -H, through SSH forwards via that host."""
    s = Settings()

    def progress(done, total, message):
        print(f"    [{done}/{total}] {message}")

    with connect_master(c) as rds:
        report = rds.ensure_user(s.project)
        if report.generated_password is not None:
            hand_over(rds, s.project, s.database, report.generated_password, s.env_file)
        show(f"database {s.database}", rds.ensure_database(s.database_spec()))
        # As the project user (never as master); master creates only the project's extensions.
        restored = rds_pg.restore(
            s.project_dsn(),
            archive,
            master=rds,
            extensions=s.extensions,
            progress=progress,
            **forward(c),
        )
        print(f"restored {restored.entries_restored} of {restored.entries_total} entries into {s.database}")
        for skipped in restored.skipped:
            print(f"    left out {skipped.entry}: {skipped.reason}")


@task
def fleet(c, inventory=None, apply=False, instance=None, jobs=4, prune=False, take_over=False):
    """Plans (or with --apply converges) every instance of the inventory (--inventory, default
    RDS_PG_INVENTORY), or only --instance, --jobs at a time; --prune drops databases and login
    roles no project claims, --take-over moves databases the inventory gives another owner.
    Fails when an instance could not be processed, or when findings are left after --apply."""
    path = inventory or os.environ.get("RDS_PG_INVENTORY", "").strip()
    if not path:
        raise Exit("give --inventory or set RDS_PG_INVENTORY to the inventory file")
    run = rds_pg.fleet_apply if apply else rds_pg.fleet_plan
    report = run(
        rds_pg.Inventory.load(path),
        instances=[instance] if instance else None,
        jobs=int(jobs),
        prune=prune,
        take_over=take_over,
    )
    for i in report:
        print(f"{i.name} ({i.endpoint}): {i.summary}")
        for item in i.items:
            if not item.differs:
                continue
            print(f"    {item}")
            steps = item.plan if item.plan is not None else item.report.steps if item.report else []
            for step in steps:
                print(f"        {step.sql}")
            if item.reason:
                print(f"        {item.reason}")
            if item.error is not None:
                print(f"        {item.error}")
        for note in i.notes:
            print(f"    note: {note}")
    if report.has_errors:
        raise Exit(f"fleet {report.mode}: errors or findings left (see above)", code=1)
