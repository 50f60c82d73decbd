#!/usr/bin/env bash
# Installs a pinned Firecracker release (firecracker and jailer) for the executor's VM runtime, after checking the
# release tarball against the sha256 the caller pins. The tarball is a local file (air-gapped builds, tests) or is
# downloaded from the release page. Safe to run again: the same binaries already installed are left alone.
set -euo pipefail

PROG=install-firecracker
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

usage() {
  cat <<EOF
Usage: $0 --sha256 HEX [--version vX.Y.Z] [--tarball FILE] [--dest DIR]

  --sha256 HEX     sha256 of the release tarball firecracker-VERSION-x86_64.tgz (required: the pin)
  --version V      release to install (default: v1.7.0 to download; with --tarball, the release it holds)
  --tarball FILE   use this local tarball instead of downloading it from github.com/firecracker-microvm
  --dest DIR       where the binaries go (default /usr/local/bin)

Example:
  $0 --version v1.7.0 --sha256 <sha256 of firecracker-v1.7.0-x86_64.tgz> --tarball /tmp/firecracker.tgz
EOF
}

VERSION=""
SHA256=""
TARBALL=""
DEST=/usr/local/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --sha256) SHA256=${2:-}; shift 2 || usage_error "--sha256 needs the tarball's sha256" ;;
    --version) VERSION=${2:-}; shift 2 || usage_error "--version needs a release such as v1.7.0" ;;
    --tarball) TARBALL=${2:-}; shift 2 || usage_error "--tarball needs a file" ;;
    --dest) DEST=${2:-}; shift 2 || usage_error "--dest needs a directory" ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument $1" ;;
  esac
done
[[ "$SHA256" =~ ^[0-9a-f]{64}$ ]] ||
  usage_error "--sha256 '${SHA256}' is not a sha256 (64 hex digits); pin the release tarball's checksum"
[ -n "$VERSION" ] || [ -n "$TARBALL" ] || VERSION=v1.7.0
[ -z "$VERSION" ] || [[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  usage_error "--version '${VERSION}' is not like v1.7.0"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$TARBALL" ]; then
  TARBALL=$work/firecracker.tgz
  url="https://github.com/firecracker-microvm/firecracker/releases/download/$VERSION/firecracker-$VERSION-x86_64.tgz"
  log "downloading $url"
  curl -fsSL -o "$TARBALL" "$url" || die "cannot download $url; pass a local copy with --tarball"
fi
[ -f "$TARBALL" ] || usage_error "--tarball $TARBALL is not a file"
actual=$(sha256sum "$TARBALL" | cut -d' ' -f1)
[ "$actual" = "$SHA256" ] || die "$TARBALL has sha256 $actual, not the pinned $SHA256; nothing installed"

tar -xzf "$TARBALL" -C "$work"
if [ -z "$VERSION" ]; then
  release=$(cd "$work"; compgen -G 'release-v*-x86_64' | head -n1) || true
  [ -n "$release" ] || die "$TARBALL holds no release-vX.Y.Z-x86_64 directory; is it a Firecracker release?"
  VERSION=${release#release-}
  VERSION=${VERSION%-x86_64}
fi
for tool in firecracker jailer; do
  binary="$work/release-$VERSION-x86_64/$tool-$VERSION-x86_64"
  [ -f "$binary" ] || die "the tarball has no release-$VERSION-x86_64/$tool-$VERSION-x86_64; is it $VERSION?"
done
mkdir -p "$DEST"
for tool in firecracker jailer; do
  install_file 0755 "$work/release-$VERSION-x86_64/$tool-$VERSION-x86_64" "$DEST/$tool"
done
log "Firecracker $VERSION in $DEST"
