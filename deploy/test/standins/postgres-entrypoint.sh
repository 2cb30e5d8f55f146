#!/bin/sh
# Test stand-in for the official postgres image's entrypoint, covering only
# what Yelb's db image relies on: POSTGRES_PASSWORD/USER/DB, PGDATA and the
# *.sql files in /docker-entrypoint-initdb.d, run once on an empty volume.
# Used only by scripts/test-deploy.sh, where no image can be pulled.
set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
BIN=/usr/lib/postgresql/15/bin
USER_NAME="${POSTGRES_USER:-postgres}"
# As the official entrypoint: root switches to postgres, postgres runs as is.
if [ "$(id -u)" = 0 ]; then
  as_postgres() { runuser -u postgres -- "$@"; }
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
else
  as_postgres() { "$@"; }
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp); printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > "$pw"; chmod 644 "$pw"
  as_postgres "$BIN/initdb" -D "$PGDATA" -U "$USER_NAME" --pwfile="$pw" --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=" -w start >/dev/null
  as_postgres psql -v ON_ERROR_STOP=1 -U "$USER_NAME" -d postgres -c "CREATE DATABASE \"${POSTGRES_DB:-$USER_NAME}\""
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$f" ] && as_postgres psql -v ON_ERROR_STOP=1 -U "$USER_NAME" -d "${POSTGRES_DB:-$USER_NAME}" -f "$f"
  done
  as_postgres "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
set -- "$BIN/postgres" -D "$PGDATA" -c "listen_addresses=*"
if [ "$(id -u)" = 0 ]; then exec runuser -u postgres -- "$@"; else exec "$@"; fi
