#!/usr/bin/env bash
# Installs Node.js of one major version (default 24, the current LTS) into .tools/node<major>/ and prints its bin/
# directory, to be put first on PATH. The binary comes from the npm registry only — the package node-<os>-<arch>
# holds the official build as bin/node — fetched with `npm pack`, which checks it against the registry's integrity hash
# and keeps it in npm's cache. Idempotent: a binary of that major already there is kept (delete the folder to update).
# No rebuild of node_modules follows: every native addon ROAD installs (the Temporal core bridge, @swc/core, rolldown,
# lightningcss) is an N-API module, which loads on any Node from 18 on; esbuild is a separate executable.
set -euo pipefail

major="${1:-24}"
case "$major" in '' | *[!0-9]*) echo "install-node.sh: the major version must be a number, like 24 (got \"$major\")" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${ROAD_TOOLS_DIR:-$root/.tools}/node$major"

installed_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || true; }

if [ -x "$dest/bin/node" ] && [ "$(installed_major "$dest/bin/node")" = "$major" ]; then
  echo "$dest/bin"
  exit 0
fi

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "install-node.sh: no Node package on the npm registry for $(uname -s); install Node $major yourself" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-node.sh: no Node package on the npm registry for $(uname -m); install Node $major yourself" >&2; exit 1 ;;
esac

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
echo "install-node.sh: node-$os-$arch@$major from the npm registry…" >&2
tarball="$(cd "$scratch" && npm pack --silent --no-fund --no-audit "node-$os-$arch@$major" | tail -n 1)"
tar -xzf "$scratch/$tarball" -C "$scratch" package/bin/node package/LICENSE
if [ "$(installed_major "$scratch/package/bin/node")" != "$major" ]; then
  echo "install-node.sh: node-$os-$arch@$major did not hold a runnable Node $major binary" >&2
  exit 1
fi
# Put in place whole (a folder renamed into place), so an interrupted install never leaves half a binary behind.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/bin"
mv "$scratch/package/bin/node" "$dest.tmp/bin/node"
mv "$scratch/package/LICENSE" "$dest.tmp/LICENSE"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "install-node.sh: installed $("$dest/bin/node" --version) in $dest" >&2
echo "$dest/bin"
