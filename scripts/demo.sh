#!/usr/bin/env bash
# `make demo`: the seed's whole procedure (using-amazon-rds.rst) through the `rds-pg` command, on
# an RDS-like sandbox whose master user is not a superuser:
#   create the project user, create its database with PostGIS and hstore, create a read-only
#   user and grant it, load a few rows as the project user, dump, restore into a second
#   database owned by a second project, drop both databases and users — then stop the sandbox.
# Each command is shown with its outcome. The sandbox is PostgreSQL 15 with PostGIS when it is
# installed (`make setup`), else the newest version installed (without PostGIS).
# Needs: cargo, and psql/pg_dump/pg_restore (Debian's postgresql-client-15, and for an 18 sandbox
# the client tools 18 in .cache/postgresql/client-18, both from `make setup`).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# rds-pg searches RDS_PG_TOOLS_DIRS for pg_dump/pg_restore before PATH (a value set wins).
export RDS_PG_TOOLS_DIRS=${RDS_PG_TOOLS_DIRS:-$here/.cache/postgresql/client-18/bin}
SECONDS=0

if [ -t 2 ]; then
  log() { printf '\n\033[1m%s\033[0m\n' "$*" >&2; }
else
  log() { printf '\n%s\n' "$*" >&2; }
fi
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

"${CARGO:-cargo}" build --quiet --locked -p rds-pg-cli
rds_pg_bin=${CARGO_TARGET_DIR:-$here/target}/debug/rds-pg
[ -x "$rds_pg_bin" ] || fail "$rds_pg_bin was not built"

psql_bin=$(command -v psql || true)
[ -x "$RDS_PG_TOOLS_DIRS/psql" ] && psql_bin=$RDS_PG_TOOLS_DIRS/psql
[ -x /usr/lib/postgresql/15/bin/psql ] && psql_bin=/usr/lib/postgresql/15/bin/psql
[ -n "$psql_bin" ] || fail "psql is missing: run \`make setup\` as root (installs postgresql-client-15)"

# Shows a command, then runs it: rds-pg prints one line per step and a summary on stderr.
rds_pg() {
  printf '\n$ rds-pg %s\n' "$*" >&2
  "$rds_pg_bin" "$@"
}

# psql as another role, with the sandbox's connection settings and password file.
psql_as() {
  local user=$1 db=$2 sql=$3
  printf '\n$ psql -U %s -d %s -c "%s"\n' "$user" "$db" "$sql" >&2
  PGUSER=$user PGDATABASE=$db "$psql_bin" -X -q -v ON_ERROR_STOP=1 -c "$sql"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/rds-pg-demo.XXXXXX")
chmod 755 "$work"  # the sandbox server runs as an unprivileged account when we are root
cleanup() {
  local status=$?
  if [ -f "$work/sandbox/rds-pg-sandbox.state" ]; then
    "$rds_pg_bin" sandbox stop --dir "$work/sandbox" || status=1
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

log "== An RDS-like sandbox (the master user is not a superuser; PGPASSWORD is not used)"
printf '$ eval "$(rds-pg sandbox start)"\n' >&2
exports=$("$rds_pg_bin" sandbox start --dir "$work/sandbox")
eval "$exports"
printf '%s\n' "$exports" | sed 's/^/    /' >&2

extensions=(--extension hstore)
postgis=false
if "$rds_pg_bin" sandbox status --json | grep -q '"postgis": true'; then
  extensions=(--extension postgis --extension hstore)
  postgis=true
else
  log "(PostGIS is not installed for this PostgreSQL version: hstore only)"
fi

log "== 1. The project user; its password goes into the password file, never on screen"
rds_pg user create shop --credentials-pgpass "$PGPASSFILE"

log "== 2. Its database, owned by it, with extensions (a dry run first)"
rds_pg db create shop --owner shop "${extensions[@]}" --dry-run
rds_pg db create shop --owner shop "${extensions[@]}"

log "== 3. A read-only user and its grant"
rds_pg user create shop_ro --credentials-pgpass "$PGPASSFILE" --credentials-database shop
rds_pg grant readonly shop shop_ro

log "== 4. A few rows, as the project user; the read-only user reads them and cannot write"
psql_as shop shop "CREATE TABLE visits (id serial PRIMARY KEY, page text, tags hstore);
  INSERT INTO visits (page, tags) VALUES ('home', 'lang=>en'), ('cart', 'items=>2'), ('pay', 'method=>card')"
if $postgis; then
  psql_as shop shop "CREATE TABLE shops (name text, location geometry(Point, 4326));
  INSERT INTO shops VALUES ('Brussels', ST_SetSRID(ST_MakePoint(4.35, 50.85), 4326))"
fi
psql_as shop_ro shop "SELECT id, page, tags FROM visits ORDER BY id"
printf '\n$ psql -U shop_ro -d shop -c "INSERT INTO visits (page) VALUES (%s)"\n' "'hack'" >&2
if PGUSER=shop_ro PGDATABASE=shop "$psql_bin" -X -q -c "INSERT INTO visits (page) VALUES ('hack')"; then
  fail "the read-only user could insert"
fi

log "== 5. Dump as the project user"
rds_pg -U shop dump shop --file "$work/shop.dump"

log "== 6. A second project: its user and database, and the dump restored into it as that user"
rds_pg user create shop2 --credentials-pgpass "$PGPASSFILE"
rds_pg db create shop2 --owner shop2 "${extensions[@]}"
rds_pg -U shop2 restore shop2 --file "$work/shop.dump"
psql_as shop2 shop2 "SELECT id, page, tags, pg_get_userbyid(c.relowner) AS table_owner
  FROM visits, pg_class c WHERE c.oid = 'visits'::regclass ORDER BY id"
if $postgis; then
  psql_as shop2 shop2 "SELECT name, ST_AsText(location) FROM shops"
fi

log "== 7. Teardown: both databases, then the users"
rds_pg db drop shop
rds_pg db drop shop2
rds_pg user drop shop_ro
rds_pg user drop shop
rds_pg user drop shop2

log "== 8. Stop the sandbox"
rds_pg sandbox stop --dir "$work/sandbox"
log "demo finished in ${SECONDS}s"
