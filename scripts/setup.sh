#!/usr/bin/env bash
# Installs what building PersonaFlux needs and is missing: the wasm32 target, the wasm-bindgen CLI
# at exactly the version in Cargo.lock, and the npm build tools (wasm-opt from binaryen).
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# The CLI must match the wasm-bindgen crate exactly; Cargo.lock is the one place the version lives.
want=$(python3 - <<'PY'
import tomllib
lock = tomllib.load(open("Cargo.lock", "rb"))
print(next(p["version"] for p in lock["package"] if p["name"] == "wasm-bindgen"))
PY
)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  log "installing wasm-bindgen-cli $want (found: ${have:-none}); this takes a few minutes once"
  cargo install wasm-bindgen-cli --version "$want"
fi

if [ ! -x node_modules/.bin/wasm-opt ]; then
  log "installing npm build tools (binaryen)"
  npm ci --no-audit --no-fund --loglevel=error
fi
