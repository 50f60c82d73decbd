#!/usr/bin/env bash
# Turns a Debian 12 machine into an executor-fleet Docker registry mirror: the distribution registry (Debian's
# docker-registry package) as a pull-through cache with its storage on the data disk mount, Prometheus metrics on
# :5001, a health check with a timer, and node_exporter on :9100. Run by the Packer template and usable on its own.
# Safe to run again: what is already in place is left alone.
set -euo pipefail

PROG=provision-mirror
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

PACKAGES=(ca-certificates curl docker-registry prometheus-node-exporter)
CONFIG=/etc/docker/registry/config.yml
UNIT_DIR=/etc/systemd/system

usage() {
  cat <<EOF
Usage: sudo $0 [options]

Installs the Docker registry mirror on this machine.

Options:
  --upstream-url URL    registry the cache pulls through to (default https://registry-1.docker.io); the
                        machine's startup script may override it with REGISTRY_PROXY_REMOTEURL in
                        /etc/docker/registry/mirror.env
  --storage DIR         where the cached layers live, the data disk mount (default /mnt/registry)
  --deb-dir DIR         install the .deb files in DIR first (air-gapped); packages still missing come from
                        apt's archive
  -h, --help            this help
EOF
}

UPSTREAM=https://registry-1.docker.io
STORAGE=/mnt/registry
DEB_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --upstream-url) UPSTREAM=${2:-}; shift 2 || usage_error "--upstream-url needs a URL" ;;
    --storage) STORAGE=${2:-}; shift 2 || usage_error "--storage needs a directory" ;;
    --deb-dir) DEB_DIR=${2:-}; shift 2 || usage_error "--deb-dir needs a directory" ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument $1" ;;
  esac
done

[[ "$UPSTREAM" =~ ^https?://[^[:space:]]+$ ]] ||
  usage_error "--upstream-url $UPSTREAM is not an http(s) URL; e.g. --upstream-url https://registry-1.docker.io"
[[ "$STORAGE" = /* ]] || usage_error "--storage $STORAGE is not an absolute path; e.g. --storage /mnt/registry"
if [ -n "$DEB_DIR" ] && [ ! -d "$DEB_DIR" ]; then
  usage_error "--deb-dir $DEB_DIR is not a directory; pass the folder holding the .deb files"
fi
require_root

install_debs "$DEB_DIR" "${PACKAGES[@]}"

write_file 0644 "$CONFIG" <<EOF
# Written by provision-mirror.sh: a pull-through cache for the executors' image pulls.
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $STORAGE
  # A pull-through cache expires blobs itself; deleting must be allowed for that.
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
  # :5001 is the port the Terraform firewall opens for the metrics (and registry-mirror-healthcheck reads).
  debug:
    addr: :5001
    prometheus:
      enabled: true
      path: /metrics
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
proxy:
  remoteurl: $UPSTREAM
EOF

# The storage directory on the boot disk until the data disk is mounted over it.
install -d -o docker-registry -g docker-registry -m 0750 "$STORAGE"

install_file 0644 "$HERE/files/docker-registry.conf" "$UNIT_DIR/docker-registry.service.d/mirror.conf"
# RequiresMountsFor= in the drop-in names the default path; a different --storage needs its own line.
if [ "$STORAGE" != /mnt/registry ]; then
  write_file 0644 "$UNIT_DIR/docker-registry.service.d/storage.conf" <<EOF
[Unit]
RequiresMountsFor=$STORAGE
[Service]
ExecStartPre=+/usr/bin/install -d -o docker-registry -g docker-registry -m 0750 $STORAGE
EOF
fi
install_file 0755 "$HERE/files/registry-mirror-healthcheck" /usr/local/bin/registry-mirror-healthcheck
install_file 0644 "$HERE/files/registry-mirror-health.service" "$UNIT_DIR/registry-mirror-health.service"
install_file 0644 "$HERE/files/registry-mirror-health.timer" "$UNIT_DIR/registry-mirror-health.timer"

for unit in docker-registry.service registry-mirror-health.timer prometheus-node-exporter.service; do
  enable_unit "$unit"
done
if [ "$CHANGED" -eq 1 ]; then
  reload_and_restart docker-registry.service registry-mirror-health.timer
fi
finish
