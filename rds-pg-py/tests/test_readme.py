"""The README's Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_example_runs_as_written():
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 10, "the example is meant to fit in ten lines"
    r = subprocess.run(
        [sys.executable, "-W", "error", "-c", example], capture_output=True, text=True, timeout=240
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "CREATE DATABASE \"shop\" OWNER \"shop\"" in out, out
    assert out.rstrip().endswith("[redacted]"), out


def test_readme_credentials_and_dump_example_runs(tmp_path):
    # The second example continues the first: run it with a provisioned `rds` and `user`, the
    # files it writes redirected into a temporary directory.
    example = python_blocks(README.read_text())[1]
    env_file = tmp_path / "db.env"
    body = example.replace('"/srv/shop/db.env"', repr(str(env_file)))
    program = "\n".join(
        [
            "import rds_pg",
            "with rds_pg.Sandbox() as sandbox, sandbox.connect() as rds:",
            '    user = rds.ensure_user("shop")',
            '    rds.ensure_database(rds_pg.DatabaseSpec("shop", "shop"))',
            '    rds.ensure_database(rds_pg.DatabaseSpec("shop_copy", "shop"))',
            *("    " + line for line in body.splitlines()),
        ]
    )
    env = {**os.environ, "PGPASSFILE": str(tmp_path / "pgpass")}
    r = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "PGUSER='shop'" in env_file.read_text()
    assert (tmp_path / "pgpass").read_text().count(":shop:shop:") == 1
    assert (tmp_path / "shop.dump").stat().st_size > 0
    # The progress callback ran, last when pg_restore had finished.
    done, total, message = r.stdout.splitlines()[-1].split(" ", 2)
    assert done == total and message == "done", r.stdout


def test_the_repository_readme_shows_the_same_example():
    # The top-level README's Python example is this one, so the test above runs it too.
    top = Path(__file__).resolve().parents[2] / "README.md"
    assert python_blocks(top.read_text())[0] == python_blocks(README.read_text())[0]
