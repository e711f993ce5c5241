#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs everything — formatting, clippy
# (warnings denied), the Rust tests on SQLite and on Postgres, and the Playwright suite in Debian's
# chromium against a freshly built server. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental caches only help a developer's edit loop; in CI they cost disk and time.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

. scripts/postgres.sh
trap pg_cleanup EXIT

started=$(date +%s)
step() { printf '\n\033[1m==> [%ss] %s\033[0m\n' "$(( $(date +%s) - started ))" "$*" >&2; }

step "setting up build tools"
scripts/setup.sh
if ! command -v chromium >/dev/null; then
  step "installing Debian's chromium"
  apt_install chromium
fi
# Installed when missing, or when the lock file changed since (a package was added).
if [ ! -x end2end/node_modules/.bin/playwright ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  step "installing the end2end npm packages"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi

step "cargo fmt --check"
cargo fmt --all --check

step "clippy: server side (app with ssr, server, tests)"
cargo clippy --locked -p app --features ssr --all-targets -- -D warnings
cargo clippy --locked -p server -p mock-llm --all-targets -- -D warnings
step "clippy: browser side (app with hydrate, frontend, wasm32)"
cargo clippy --locked -p frontend --target wasm32-unknown-unknown -- -D warnings

step "finding Postgres"
pg_ensure

step "Rust tests: domain and unit tests (app, ssr)"
cargo test --locked -p app --features ssr
step "Rust tests: server integration tests on SQLite and Postgres, providers against the mock"
cargo test --locked -p server -p mock-llm

step "building the site and the server for the browser tests"
scripts/build-site.sh
cargo build --locked -p server --bin personaflux -p mock-llm --bin mock-llm

step "Playwright (hydrated, no-JavaScript, OpenID Connect and Gemini-mock projects) in Debian's chromium"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PF_E2E_PORT=$(free_port) PF_E2E_GEMINI_PORT=$(free_port) PF_E2E_MOCK_PORT=$(free_port) PF_E2E_IDP_PORT=$(free_port)
export PF_E2E_PORT PF_E2E_GEMINI_PORT PF_E2E_MOCK_PORT PF_E2E_IDP_PORT
(cd end2end && npx playwright test)

step "all tests passed in $(( $(date +%s) - started ))s"
