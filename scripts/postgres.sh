#!/usr/bin/env bash
# Finds a Postgres for the test suite and exports TEST_POSTGRES_URL (an admin URL; each test creates
# and drops its own database on it). In order:
#   1. TEST_POSTGRES_URL, if set;
#   2. a server answering on 127.0.0.1:5432 as postgres/postgres (or PGUSER/PGPASSWORD);
#   3. a throwaway cluster started here on a free loopback port from Debian's postgresql
#      (installed if missing), owned by the `postgres` user, removed by pg_cleanup.
# Source it: `. scripts/postgres.sh; pg_ensure; ...; pg_cleanup`.

pg_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

pg_try() { # url -> success if it answers
  PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

pg_ensure() {
  # The binaries are needed even with a server given: one test runs a cluster of its own, to
  # stop and start it under load.
  if ! command -v psql >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    pg_log "installing Debian's postgresql"
    apt_install postgresql
  fi
  if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    pg_try "$TEST_POSTGRES_URL" || { echo "TEST_POSTGRES_URL does not answer: $TEST_POSTGRES_URL" >&2; return 1; }
    pg_log "using Postgres from TEST_POSTGRES_URL"
    return 0
  fi
  local user="${PGUSER:-postgres}" pass="${PGPASSWORD:-postgres}"
  local url="postgres://$user:$pass@127.0.0.1:5432/postgres"
  if pg_try "$url"; then
    export TEST_POSTGRES_URL="$url"
    pg_log "using the Postgres answering on 127.0.0.1:5432"
    return 0
  fi
  local bin port
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  PG_TMP=$(mktemp -d /tmp/pf-pg.XXXXXX)
  chown postgres: "$PG_TMP" 2>/dev/null || true
  chmod 700 "$PG_TMP"
  pg_log "starting a throwaway Postgres cluster on 127.0.0.1:$port ($PG_TMP)"
  as_postgres "$bin/initdb" -D "$PG_TMP/data" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
  as_postgres "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w -o \
    "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  PG_BIN="$bin"
  export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  pg_try "$TEST_POSTGRES_URL" || { cat "$PG_TMP/log" >&2; return 1; }
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_cleanup() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "${PF_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    PF_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
