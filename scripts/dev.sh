#!/usr/bin/env bash
# The developer loop: builds the site and the server (debug, fast), serves on the address in
# Leptos.toml, and rebuilds and restarts whenever a source file changes. A change to the
# stylesheet or public/ only copies files (reload the page); anything else rebuilds.
# Same configuration as scripts/run.sh (environment or .env). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

scripts/setup.sh
if ! command -v inotifywait >/dev/null; then
  log "installing inotify-tools (file watching)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq inotify-tools >/dev/null
fi

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server; exit 0' INT TERM

build_and_start() {
  stop_server
  if BUILD_SITE_PROFILE=dev scripts/build-site.sh && cargo build -p server --bin personaflux; then
    target/debug/personaflux &
    server_pid=$!
    log "serving (pid $server_pid); watching app/ server/ frontend/ style/ public/ migrations/"
  else
    log "build failed; fix the error and save again"
  fi
}

copy_assets() {
  eval "$(python3 - <<'PY'
import shlex, tomllib
o = tomllib.load(open("Leptos.toml", "rb"))["package"]["metadata"]["leptos"]
for k in ["output-name", "site-root", "site-pkg-dir", "style-file", "assets-dir"]:
    print(f'{k.replace("-", "_").upper()}={shlex.quote(str(o[k]))}')
PY
)"
  cp "$STYLE_FILE" "$SITE_ROOT/$SITE_PKG_DIR/$OUTPUT_NAME.css"
  cp -r "$ASSETS_DIR"/. "$SITE_ROOT"/
  log "stylesheet and assets copied; reload the page"
}

build_and_start
while true; do
  # Wait for a change, then let a burst of saves settle before acting on it.
  changed=$(inotifywait -qr -e close_write,create,delete,move --format '%w%f' \
    app server frontend style public migrations Leptos.toml Cargo.toml 2>/dev/null || true)
  sleep 0.3
  case "$changed" in
    style/*|public/*) copy_assets ;;
    *~|*.swp|*/.#*|"") ;;
    *) log "changed: $changed"; build_and_start ;;
  esac
done
