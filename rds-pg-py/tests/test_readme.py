"""The README's Python example runs as written."""

from __future__ import annotations

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
