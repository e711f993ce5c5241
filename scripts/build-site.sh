#!/usr/bin/env bash
# Builds the browser bundle into the site root named by Leptos.toml:
#   <site-root>/<site-pkg-dir>/<output-name>.js, <output-name>_bg.wasm, <output-name>.css
# plus the files of <assets-dir>. Leptos.toml is the only place these names live; the server reads
# the same file at start-up.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

eval "$(python3 - <<'PY'
import shlex, tomllib
opts = tomllib.load(open("Leptos.toml", "rb"))["package"]["metadata"]["leptos"]
for key in ["output-name", "site-root", "site-pkg-dir", "style-file", "assets-dir"]:
    print(f'{key.replace("-", "_").upper()}={shlex.quote(str(opts[key]))}')
PY
)"

# `BUILD_SITE_PROFILE=dev` (scripts/dev.sh) builds unoptimised and skips wasm-opt: seconds, not minutes.
profile="${BUILD_SITE_PROFILE:-wasm-release}"
pkg="$SITE_ROOT/$SITE_PKG_DIR"

log "building the browser bundle (profile $profile)"
cargo build --locked -p frontend --lib --target wasm32-unknown-unknown --profile "$profile"

rm -rf "$pkg.tmp" && mkdir -p "$pkg.tmp"
out_dir=$profile
[ "$profile" = dev ] && out_dir=debug
wasm-bindgen --target web --no-typescript --out-dir "$pkg.tmp" --out-name "$OUTPUT_NAME" \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$out_dir/frontend.wasm"

if [ "$profile" != dev ]; then
  log "optimising the WASM with wasm-opt"
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$pkg.tmp/${OUTPUT_NAME}_bg.wasm" -o "$pkg.tmp/${OUTPUT_NAME}_bg.wasm"
fi

cp "$STYLE_FILE" "$pkg.tmp/$OUTPUT_NAME.css"
rm -rf "$pkg" && mv "$pkg.tmp" "$pkg"
cp -r "$ASSETS_DIR"/. "$SITE_ROOT"/

wasm_gz=$(gzip -9c "$pkg/${OUTPUT_NAME}_bg.wasm" | wc -c)
js_gz=$(gzip -9c "$pkg/$OUTPUT_NAME.js" | wc -c)
total_kib=$(( (wasm_gz + js_gz) / 1024 ))
log "site built in $SITE_ROOT: wasm+js $total_kib KiB gzipped (wasm $((wasm_gz / 1024)) KiB, js $((js_gz / 1024)) KiB)"

# The size ratchet. Issue 15's budget is 250 KB; the bundle is far above it (README, "Size"), so
# until it is met this ceiling stops it from growing unnoticed: a change that adds to the bundle
# must lower something else or raise this figure in the same commit, saying why.
ceiling_kib=${WASM_CEILING_KIB:-801}
if [ "$profile" != dev ] && [ "$total_kib" -gt "$ceiling_kib" ]; then
  log "the browser bundle is $total_kib KiB gzipped, over its ceiling of $ceiling_kib KiB (scripts/build-site.sh)"
  exit 1
fi
