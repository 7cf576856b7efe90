"""connect(ssh=...): master's connections through an SSH forward via a throw-away sshd on
loopback (the application server of issue 15), closed with the provisioner."""

from __future__ import annotations

import pytest

import rds_pg
from conftest import ALIAS, ENDPOINT_NAME, ssh_processes


def test_connect_through_ssh_and_close_the_forward(sandbox, sshd):
    config = sshd.config
    kwargs = dict(host=ENDPOINT_NAME, hostaddr="127.0.0.1", ssh=ALIAS, ssh_config=str(config))
    with rds_pg.connect(sandbox.master_dsn, **kwargs) as rds:
        assert rds.current_user == sandbox.master_user
        assert ssh_processes(config), "the forward is open"
        assert rds.ensure_user("via_ssh").changed
    assert not ssh_processes(config), "closed with the provisioner"
    # A failed connection through the forward leaves nothing running either.
    with pytest.raises(rds_pg.ConnectionError):
        rds_pg.connect(sandbox.master_dsn, password="wrong", **kwargs)
    assert not ssh_processes(config)
    with pytest.raises(rds_pg.ToolError, match="Permission denied"):
        rds_pg.connect(sandbox.master_dsn, host=ENDPOINT_NAME, hostaddr="127.0.0.1",
                       ssh="root@" + ALIAS, ssh_config=str(config))
    with pytest.raises(rds_pg.InvalidInput):
        rds_pg.connect(sandbox.master_dsn, ssh="-oProxyCommand=sh")


def test_dump_restore_and_verify_through_ssh(sandbox, sshd, tmp_path):
    """dump/restore/verify_backup(ssh=...): pg_dump and pg_restore go through a forward open
    for the call only (seen running from the progress callback, gone after)."""
    from rds_pg import DatabaseSpec

    config = str(sshd.config)
    via = dict(ssh=ALIAS, ssh_config=config)
    with sandbox.connect() as rds:
        password = rds.ensure_user("ssh_shop").generated_password
        rds.ensure_database(DatabaseSpec("ssh_shop", "ssh_shop"))
        rds.ensure_database(DatabaseSpec("ssh_shop_copy", "ssh_shop"))

    # The endpoint's name, which never resolves, at the address the ssh server reaches.
    def dsn(db):
        return sandbox.dsn_for("ssh_shop", db) + f" host={ENDPOINT_NAME} hostaddr=127.0.0.1"

    forward_seen = []

    def progress(done, total, message):
        forward_seen.append(bool(ssh_processes(sshd.config)))

    archive = tmp_path / "ssh_shop.dump"
    report = rds_pg.dump(dsn("ssh_shop"), archive, password=password, progress=progress, **via)
    assert report.bytes > 0
    assert forward_seen and all(forward_seen), "pg_dump ran while the forward was open"
    assert not ssh_processes(sshd.config), "the forward ended with the dump"

    forward_seen.clear()
    rds_pg.restore(dsn("ssh_shop_copy"), archive, password=password, progress=progress, **via)
    assert forward_seen and all(forward_seen), "pg_restore ran while the forward was open"
    assert not ssh_processes(sshd.config), "the forward ended with the restore"

    with sandbox.connect() as rds:
        verified = rds_pg.verify_backup(rds, dsn("ssh_shop"), archive, password=password, **via)
    assert verified.verified and verified.scratch_dropped
    assert not ssh_processes(sshd.config)

    # A refused ssh login: ssh's message, nothing written, nothing left running.
    refused = tmp_path / "refused.dump"
    with pytest.raises(rds_pg.ToolError, match="Permission denied"):
        rds_pg.dump(dsn("ssh_shop"), refused, password=password, ssh="root@" + ALIAS,
                    ssh_config=config)
    assert not refused.exists()
    assert not ssh_processes(sshd.config)
    with pytest.raises(rds_pg.InvalidInput, match="ssh_config needs ssh"):
        rds_pg.dump(dsn("ssh_shop"), refused, password=password, ssh_config=config)
