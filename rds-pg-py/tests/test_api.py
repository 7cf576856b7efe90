"""The public API: every name exported and documented, the stub true to the native module."""

from __future__ import annotations

import inspect
import subprocess
import sys

import rds_pg
from rds_pg import _rds_pg


def test_every_public_name_is_exported_and_documented():
    native = {n for n in dir(_rds_pg) if not n.startswith("_")}
    assert native <= set(rds_pg.__all__), native - set(rds_pg.__all__)
    undocumented = []
    for name in rds_pg.__all__:
        obj = getattr(rds_pg, name)
        if name.startswith("__"):
            continue
        if not (obj.__doc__ or "").strip():
            undocumented.append(name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                # Members of Extension are instances; exception attributes default to None.
                if attr.startswith("_") or isinstance(value, obj) or value is None:
                    continue
                if not (getattr(value, "__doc__", None) or "").strip():
                    undocumented.append(f"{name}.{attr}")
    assert not undocumented, undocumented


def test_stub_matches_the_native_module():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "rds_pg._rds_pg"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_is_typed():
    from importlib.resources import files

    assert files("rds_pg").joinpath("py.typed").is_file()
    assert files("rds_pg").joinpath("_rds_pg.pyi").is_file()
