#!/usr/bin/env bash
# Builds the rds_pg wheel and runs its pytest suite, as `make test-python` does:
#  1. a venv in the ignored .cache/venv (pip downloads cached in .cache/pip) with the pinned
#     tools of rds-pg-py/requirements-test.txt (maturin, pytest, pytest-timeout, fabric);
#  2. `maturin build` (dev profile: it reuses the workspace's dev build of rds-pg-core and its
#     dependencies) into .cache/wheels, then `pip install` of that wheel;
#  3. pytest in rds-pg-py (tests/, settings in pyproject.toml) against the installed wheel, with
#     RDS_PG_TOOLS_DIRS naming the client tools 18 of `make setup`.
# Needs Python >= 3.9 with venv (PYTHON, default python3), Rust, and the PostgreSQL binaries of
# `make setup`. Extra arguments go to pytest.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=$here/.cache
venv=$cache/venv
python=${PYTHON:-python3}
export PIP_CACHE_DIR=$cache/pip PIP_DISABLE_PIP_VERSION_CHECK=1
# The TLS-capable client tools 18 of `make setup`, for dump/restore on 16-18 (as .cargo/config.toml
# sets for cargo); a value already set wins.
export RDS_PG_TOOLS_DIRS=${RDS_PG_TOOLS_DIRS:-$cache/postgresql/client-18/bin}

log() { printf 'python-test: %s\n' "$*" >&2; }

make_venv() { rm -rf "$venv" && "$python" -m venv "$venv"; }
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $python"
  if ! make_venv; then
    # Debian's python3 needs python3.X-venv for ensurepip; install it as make setup installs
    # PostgreSQL (as root), or say how.
    package=python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
      log "cannot create a venv with $python: install $package (sudo apt-get install -y $package)"
      exit 1
    fi
    log "apt-get install $package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" >/dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" >/dev/null; }
    make_venv
  fi
fi
requirements=$here/rds-pg-py/requirements-test.txt
stamp=$venv/.requirements
if ! cmp -s "$requirements" "$stamp"; then
  log "installing the pinned test tools"
  "$venv/bin/python" -m pip install --quiet -r "$requirements"
  cp "$requirements" "$stamp"
fi

wheels=$cache/wheels
rm -rf "$wheels"
log "building the wheel (maturin, dev profile)"
started=$(date +%s)
# maturin picks the interpreter it finds first on PATH: the venv's.
PATH=$venv/bin:$PATH "$venv/bin/maturin" build --quiet --locked \
  --manifest-path "$here/rds-pg-py/Cargo.toml" --interpreter "$venv/bin/python" --out "$wheels"
log "wheel built in $(( $(date +%s) - started )) s: $(cd "$wheels" && ls)"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheels"/rds_pg-*.whl

cd "$here/rds-pg-py"
exec "$venv/bin/python" -m pytest "$@"
