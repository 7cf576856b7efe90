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
