#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, and serves PersonaFlux on
# http://127.0.0.1:3000 with a SQLite file under data/ and the offline LLM provider.
# Configuration: environment variables or a .env file (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-site.sh
printf '\033[1m==> %s\033[0m\n' "building the server (release)" >&2
cargo build --locked --release -p server --bin personaflux
exec target/release/personaflux
