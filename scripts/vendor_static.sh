#!/usr/bin/env bash
# Fetch the web app's front-end libraries from the npm registry at pinned versions, check each
# tarball against its pinned sha512 (the registry's own `integrity`), and copy the browser builds
# into src/reelm/web/static/vendor/ with their licence files. The page serves them from there:
# never from a CDN. Run by `make static`; idempotent (a stamp names the pins).
set -euo pipefail
cd "$(dirname "$0")/.."

VENDOR=src/reelm/web/static/vendor
WORK=build/npm
# package@version | file inside the tarball | name served under /static/vendor/ | sha512 (base64)
PINS=(
  "htmx.org@2.0.11|package/dist/htmx.min.js|htmx.min.js|Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=="
  "hls.js@1.7.4|package/dist/hls.min.js|hls.min.js|3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg=="
  "tus-js-client@4.3.1|package/dist/tus.min.js|tus.min.js|ZLeYmjrkaU1fUsKbIi8JML52uAocjEZtBx4DKjRrqzrZa0O4MYwT6db+oqePlspV+FxXJAyFBc/L5gwUi2OFsg=="
)
STAMP="$VENDOR/.pins-$(printf '%s\n' "${PINS[@]}" | cksum | cut -d' ' -f1)"
[ -f "$STAMP" ] && exit 0

command -v npm >/dev/null || { echo "vendor_static: npm is needed (Node.js 18+)" >&2; exit 1; }
rm -rf "$WORK" "$VENDOR"
mkdir -p "$WORK" "$VENDOR"
for pin in "${PINS[@]}"; do
  IFS='|' read -r spec inner served sha <<<"$pin"
  name=${spec%@*}
  if ! tarball=$(cd "$WORK" && npm pack --silent --pack-destination . "$spec" 2>npm.log | tail -n1) \
    || [ ! -f "$WORK/$tarball" ]; then
    cat "$WORK/npm.log" >&2
    echo "vendor_static: npm pack $spec failed" >&2
    exit 1
  fi
  got=$(openssl dgst -sha512 -binary "$WORK/$tarball" | base64 -w0)
  if [ "$got" != "$sha" ]; then
    echo "vendor_static: $spec does not match its pinned sha512 (got $got)" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name"
  tar -xzf "$WORK/$tarball" -C "$WORK/$name"
  cp "$WORK/$name/$inner" "$VENDOR/$served"
  cp "$WORK/$name/package/LICENSE" "$VENDOR/${served%%.*}.LICENSE"
  echo "vendor_static: $spec -> /static/vendor/$served"
done
touch "$STAMP"
