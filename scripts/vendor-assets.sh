#!/usr/bin/env bash
# Vendors the console's browser assets from the npm registry into
# internal/web/console/static/vendor/, so `go build` needs no Node: each
# pinned package is fetched with `npm pack` in a temporary directory, its
# minified file copied, and static/vendor/VERSIONS records name, version and
# the sha256 of the copied file. Run it after changing a pin; commit the
# result. Needs npm, tar and sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=internal/web/console/static/vendor

# name version file-in-package → file-in-vendor
assets=(
  "htmx.org 2.0.11 package/dist/htmx.min.js htmx.min.js"
  "leaflet 1.9.4 package/dist/leaflet.js leaflet.js"
  "leaflet 1.9.4 package/dist/leaflet.css leaflet.css"
  "uplot 1.6.32 package/dist/uPlot.iife.min.js uplot.min.js"
  "uplot 1.6.32 package/dist/uPlot.min.css uplot.min.css"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
versions="# Vendored by scripts/vendor-assets.sh; do not edit.
# name version sha256 file"
for a in "${assets[@]}"; do
  read -r name version src file <<<"$a"
  echo "== $name@$version"
  if [ ! -d "$tmp/$name" ]; then
    tgz=$(cd "$tmp" && npm pack --silent "$name@$version")
    mkdir -p "$tmp/$name"
    tar -xzf "$tmp/$tgz" -C "$tmp/$name"
  fi
  cp "$tmp/$name/$src" "$dest/$file"
  sum=$(sha256sum "$dest/$file" | cut -d' ' -f1)
  versions+=$'\n'"$name $version $sum $file"
done
printf '%s\n' "$versions" >"$dest/VERSIONS"
cat "$dest/VERSIONS"
