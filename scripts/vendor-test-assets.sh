#!/usr/bin/env bash
# Vendors test-only browser assets from the npm registry into
# internal/app/testdata/: today axe-core, the accessibility engine the
# browser tests inject with CDP Runtime.evaluate (internal/app/a11y_test.go).
# Vigil never serves these files. Like scripts/vendor-assets.sh, each pinned
# package is fetched with `npm pack` in a temporary directory, its file
# copied, and VERSIONS records name, version and the sha256 of the copied
# file. Run it after changing a pin; commit the result. Needs npm, tar and
# sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=internal/app/testdata/axe

# name version file-in-package → file-in-dest
assets=(
  "axe-core 4.14.1 package/axe.min.js axe.min.js"
  "axe-core 4.14.1 package/LICENSE LICENSE"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
versions="# Vendored by scripts/vendor-test-assets.sh; do not edit. Test-only: never served.
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
