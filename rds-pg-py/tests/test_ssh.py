"""connect(ssh=...): master's connections through an SSH forward via a throw-away sshd on
loopback (the application server of issue 15), closed with the provisioner."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import rds_pg

# The name the sandbox's certificate carries for an RDS endpoint; it never resolves.
ENDPOINT_NAME = "db.sandbox.rds-pg.invalid"
ALIAS = "rds-pg-test-app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd():
    """sshd on 127.0.0.1 for `nobody`, key authentication only; yields the client config."""
    if not (Path("/usr/sbin/sshd").is_file() and shutil.which("ssh")) or os.geteuid() != 0:
        pytest.fail("needs root and OpenSSH: run `make setup` (apt-get install openssh-server)")
    Path("/run/sshd").mkdir(exist_ok=True)
    # nobody reads authorized_keys with its own uid: a directory every account may enter.
    d = Path(tempfile.mkdtemp(prefix="rds-pg-sshd-"))
    d.chmod(0o755)
    client = d / "client"
    client.mkdir(mode=0o700)
    for key in (d / "host_key", client / "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = d / "authorized_keys"
    authorized.write_text("restrict,port-forwarding " + (client / "id.pub").read_text())
    authorized.chmod(0o644)
    port = free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {d / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {authorized}\nAuthenticationMethods publickey\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin no\nAllowUsers nobody\nAllowTcpForwarding local\nPermitTTY no\n"
    )
    (client / "known_hosts").write_text(f"[127.0.0.1]:{port} " + (d / "host_key.pub").read_text())
    config = client / "config"
    config.write_text(
        f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User nobody\n"
        f"  IdentityFile {client / 'id'}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
        f"  UserKnownHostsFile {client / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
    )
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.05)
    try:
        yield config
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()
        shutil.rmtree(d)


def ssh_processes(config: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = next(l for l in (entry / "status").read_text().splitlines() if l.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if str(config) in cmdline and "Z" not in state:
            found.append(int(entry.name))
    return found


def test_connect_through_ssh_and_close_the_forward(sandbox, sshd):
    kwargs = dict(host=ENDPOINT_NAME, hostaddr="127.0.0.1", ssh=ALIAS, ssh_config=str(sshd))
    with rds_pg.connect(sandbox.master_dsn, **kwargs) as rds:
        assert rds.current_user == sandbox.master_user
        assert ssh_processes(sshd), "the forward is open"
        assert rds.ensure_user("via_ssh").changed
    assert not ssh_processes(sshd), "closed with the provisioner"
    # A failed connection through the forward leaves nothing running either.
    with pytest.raises(rds_pg.ConnectionError):
        rds_pg.connect(sandbox.master_dsn, password="wrong", **kwargs)
    assert not ssh_processes(sshd)
    with pytest.raises(rds_pg.ToolError, match="Permission denied"):
        rds_pg.connect(sandbox.master_dsn, host=ENDPOINT_NAME, hostaddr="127.0.0.1",
                       ssh="root@" + ALIAS, ssh_config=str(sshd))
    with pytest.raises(rds_pg.InvalidInput):
        rds_pg.connect(sandbox.master_dsn, ssh="-oProxyCommand=sh")
