#!/usr/bin/env bash
# Load and soak benchmark (not part of the test command; README "Benchmark"). Builds the release
# server, then runs server/benches/load.rs, which starts it on loopback against the mock model and
# reports: SSR throughput and p99 of the dashboard (50 characters) against a bare axum handler at
# 64 connections (wrk), STREAMS concurrent streaming chats with RSS and CPU, and a SOAK_SECS soak.
# Rate limits are turned off for the run (LIMIT_*=0).
#
# Knobs (environment): STREAMS=2000 STREAM_SECS=60 CONNS=64 WRK_SECS=15 SOAK_SECS=300
# SOAK_WORKERS=16 PHASES=ssr,streams,soak LOAD_DATABASE_URL=postgres://… (default: SQLite file).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi
fi

# Each stream holds a client connection and an upstream one in the server, and both ends in the
# benchmark process (client and mock): about 2 × STREAMS descriptors each, plus the database.
want=$(( ${STREAMS:-2000} * 2 + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  log "the hard limit on open files is $hard, below the $want needed for ${STREAMS:-2000} streams; lower STREAMS or raise it"
  exit 1
fi
# Never lower it: raise the soft limit to the hard one.
if [ "$hard" = unlimited ]; then ulimit -n 1048576; else ulimit -n "$hard"; fi

log "building the release server and the load benchmark"
cargo build --locked --release -p server --bin personaflux
cargo bench --locked -p server --bench load --no-run

target="${CARGO_TARGET_DIR:-target}"
log "running (open-file limit $(ulimit -n))"
PF_BIN="$target/release/personaflux" cargo bench --locked -p server --bench load
