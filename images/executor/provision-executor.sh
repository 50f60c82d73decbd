#!/usr/bin/env bash
# Turns a Debian 12 (or Ubuntu 22.04+) machine into an executor-fleet executor: Docker and git from the
# distribution, the `executor` program in its own virtualenv, executor.service with the retire-on-exit-0 hook,
# node_exporter on 127.0.0.1:9100 and syslog for the log shipping agents. Run by the Packer templates and usable
# on its own on a machine you bring (see docs/images.md). Safe to run again: what is already in place is left alone.
set -euo pipefail

PROG=provision-executor
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

PREFIX=/opt/executor-fleet
HOOK_DIR=/usr/local/libexec/executor-fleet
UNIT_DIR=/etc/systemd/system
PACKAGES=(ca-certificates curl git docker.io python3 python3-venv prometheus-node-exporter rsyslog)
# What the microVM runtime needs (docs/executor.md, "MicroVM isolation"): QEMU, the guest kernel, disk and net tools.
VM_PACKAGES=(qemu-system-x86 linux-image-cloud-amd64 e2fsprogs iproute2 iptables busybox-static dmsetup binutils lz4)

usage() {
  cat <<EOF
Usage: sudo $0 [options] [SOURCE]

Installs the executor on this machine. SOURCE is this project as a wheel (.whl), an sdist (.tar.gz) or a source
directory; it defaults to the checkout this script lives in.

Options:
  --wheelhouse DIR      install Python dependencies only from the wheels in DIR (air-gapped; no index is used)
  --deb-dir DIR         install the .deb files in DIR first (air-gapped, or extra packages such as the
                        CloudWatch agent or the Ops Agent); packages still missing come from apt's archive
  --extra-packages "P…" more Debian packages to install (e.g. awscli for the AWS drain hook)
  --no-poweroff         keep the machine up when the executor exits 0 (machines you bring yourself)
  --skip-install-all    do not run \`executor install\` now (executor.service still runs it at start)
  --vm-packages         also install what the microVM runtime needs (QEMU, the cloud kernel, e2fsprogs, ...)
  --firecracker-tarball FILE --firecracker-sha256 HEX
                        install Firecracker and its jailer from this release tarball, checked against HEX
                        (install-firecracker.sh; the Packer template downloads the pinned release)
  -h, --help            this help

Environment: PIP_INDEX_URL and friends are honoured when --wheelhouse is not given.
EOF
}

SOURCE=""
WHEELHOUSE=""
DEB_DIR=""
EXTRA_PACKAGES=""
POWEROFF=1
INSTALL_ALL=1
VM=0
FC_TARBALL=""
FC_SHA256=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) WHEELHOUSE=${2:-}; shift 2 || usage_error "--wheelhouse needs a directory" ;;
    --deb-dir) DEB_DIR=${2:-}; shift 2 || usage_error "--deb-dir needs a directory" ;;
    --extra-packages) EXTRA_PACKAGES=${2:-}; shift 2 || usage_error "--extra-packages needs package names" ;;
    --no-poweroff) POWEROFF=0; shift ;;
    --skip-install-all) INSTALL_ALL=0; shift ;;
    --vm-packages) VM=1; shift ;;
    --firecracker-tarball) FC_TARBALL=${2:-}; shift 2 || usage_error "--firecracker-tarball needs a file" ;;
    --firecracker-sha256) FC_SHA256=${2:-}; shift 2 || usage_error "--firecracker-sha256 needs the sha256" ;;
    -h | --help) usage; exit 0 ;;
    -*) usage_error "unknown option $1" ;;
    *)
      [ -z "$SOURCE" ] || usage_error "SOURCE given twice ($SOURCE and $1); pass one wheel, sdist or directory"
      SOURCE=$1
      shift
      ;;
  esac
done

if [ -z "$SOURCE" ]; then
  SOURCE=$(cd "$HERE/../.." && pwd)
  [ -f "$SOURCE/pyproject.toml" ] ||
    usage_error "SOURCE not given and $SOURCE is no checkout; pass the executor-fleet wheel, sdist or directory"
fi
[ -e "$SOURCE" ] || usage_error "SOURCE=$SOURCE does not exist; pass the executor-fleet wheel, sdist or directory"
case "$SOURCE" in
  *.whl | *.tar.gz) [ -f "$SOURCE" ] || usage_error "SOURCE=$SOURCE is not a file" ;;
  *) [ -f "$SOURCE/pyproject.toml" ] ||
    usage_error "SOURCE=$SOURCE is neither a .whl, a .tar.gz nor a directory with pyproject.toml" ;;
esac
if [ -n "$WHEELHOUSE" ] && [ ! -d "$WHEELHOUSE" ]; then
  usage_error "--wheelhouse $WHEELHOUSE is not a directory; pass the folder holding the dependency wheels"
fi
if [ -n "$DEB_DIR" ] && [ ! -d "$DEB_DIR" ]; then
  usage_error "--deb-dir $DEB_DIR is not a directory; pass the folder holding the .deb files"
fi
if [ -n "$FC_TARBALL" ] && [ -z "$FC_SHA256" ]; then
  usage_error "--firecracker-tarball $FC_TARBALL needs --firecracker-sha256 (the release's pinned checksum)"
fi
SOURCE=$(realpath "$SOURCE")
require_root

# --- Debian packages ----------------------------------------------------------------------------------------
read -r -a extra <<<"$EXTRA_PACKAGES"
[ "$VM" -eq 0 ] || extra+=("${VM_PACKAGES[@]}")
install_debs "$DEB_DIR" "${PACKAGES[@]}" "${extra[@]}"
if [ -n "$FC_TARBALL" ]; then
  "$HERE/install-firecracker.sh" --tarball "$FC_TARBALL" --sha256 "$FC_SHA256" ||
    die "Firecracker not installed (see above)"
fi

# --- the executor program -----------------------------------------------------------------------------------
# A fingerprint of what was installed: the same wheel/sdist/tree again means nothing to do.
source_fingerprint() {
  if [ -d "$SOURCE" ]; then
    (cd "$SOURCE" && find . -mindepth 1 \( -name '.*' -o -name '__pycache__' -o -name '*.egg-info' -o -name build \
      -o -name tests -o -name bench -o -name docs \) -prune -o -type f -print0 | LC_ALL=C sort -z |
      xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  else
    sha256sum "$SOURCE" | cut -d' ' -f1
  fi
}

pip_args=()
[ -z "$WHEELHOUSE" ] || pip_args=(--no-index --find-links "$(realpath "$WHEELHOUSE")")

fingerprint=$(source_fingerprint)
stamp="$PREFIX/.installed-from"
if [ -x "$PREFIX/bin/executor" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$fingerprint" ]; then
  log "unchanged $PREFIX (executor-fleet from $SOURCE)"
else
  [ -x "$PREFIX/bin/python" ] || python3 -m venv "$PREFIX"
  log "installing executor-fleet from $SOURCE into $PREFIX"
  # --force-reinstall of the project alone: a rebuilt tree keeps its version number but not its code.
  "$PREFIX/bin/pip" install --quiet --disable-pip-version-check "${pip_args[@]}" "$SOURCE"
  "$PREFIX/bin/pip" install --quiet --disable-pip-version-check "${pip_args[@]}" --no-deps --force-reinstall \
    "$SOURCE"
  printf '%s\n' "$fingerprint" >"$stamp"
  CHANGED=1
fi
"$PREFIX/bin/executor" --help >/dev/null || die "$PREFIX/bin/executor --help failed; the install is broken"
# The conventional path of the executor program, for people and scripts that expect it there.
link_file "$PREFIX/bin/executor" /usr/local/bin/executor

# --- machine setup by the executor itself --------------------------------------------------------------------
# `executor install all` needs the machine's settings (the mirror URL decides the iptables rules and daemon.json).
# With executor.env present (a machine you bring) it runs now; an image gets them only at boot, so here only the
# Docker part runs and executor.service runs `executor install all` before every start (iptables rules do not
# survive a reboot anyway).
ENV_FILE=$UNIT_DIR/executor.env
if [ "$INSTALL_ALL" -eq 0 ]; then
  log "skipping \`executor install\` (--skip-install-all)"
elif ! "$PREFIX/bin/executor" install --help >/dev/null 2>&1; then
  log "this executor build has no \`executor install\`; Docker and git come from the distribution only"
elif [ -f "$ENV_FILE" ]; then
  # shellcheck source=/dev/null
  (set -a && . "$ENV_FILE" && set +a && "$PREFIX/bin/executor" install all) ||
    die "executor install all failed (settings from $ENV_FILE)"
else
  # The command insists on the required settings even for the Docker step; these placeholders reach no server.
  EXECUTOR_FRONTEND_URL=http://settings-come-at-boot.invalid EXECUTOR_FRONTEND_PASSWORD=placeholder-settings-come-at-boot \
    EXECUTOR_QUEUE_NAME=unset EXECUTOR_QUEUE_NAMES="" "$PREFIX/bin/executor" install docker ||
    die "executor install docker failed"
fi

# --- executor.service ---------------------------------------------------------------------------------------
install_file 0755 "$HERE/files/executor-stop-hook" "$HOOK_DIR/executor-stop-hook"
install_file 0644 "$HERE/files/executor.service" "$UNIT_DIR/executor.service"
if [ "$POWEROFF" -eq 0 ]; then
  write_file 0644 "$UNIT_DIR/executor.service.d/no-poweroff.conf" <<'EOF'
# Written by provision-executor.sh --no-poweroff: this machine stays up when the executor exits 0.
[Service]
Environment=EXECUTOR_POWEROFF_COMMAND=true
EOF
elif [ -e "$UNIT_DIR/executor.service.d/no-poweroff.conf" ]; then
  rm -f "$UNIT_DIR/executor.service.d/no-poweroff.conf"
  log "removed $UNIT_DIR/executor.service.d/no-poweroff.conf"
  CHANGED=1
fi
# The unit refuses to start without its settings; an empty file would hide that, so only the directory is made.
# The Terraform startup script (or the operator) writes executor.env.
mkdir -p "$UNIT_DIR"

# --- node_exporter on loopback: the executor proxies it at /proxy?module=node --------------------------------
install_file 0644 "$HERE/files/node-exporter-listen.conf" \
  "$UNIT_DIR/prometheus-node-exporter.service.d/listen.conf"

# --- logs: journald -> rsyslog -> /var/log/syslog, which the CloudWatch agent and the Ops Agent read --------------
install_file 0644 "$HERE/files/cloudwatch-agent.json" /opt/aws/amazon-cloudwatch-agent/etc/executor-fleet.json
install_file 0644 "$HERE/files/ops-agent.yaml" /etc/google-cloud-ops-agent/config.yaml

for unit in docker.service prometheus-node-exporter.service rsyslog.service executor.service; do
  enable_unit "$unit"
done
# executor.service is not started here: it needs executor.env, which comes with the machine's startup script.
if [ "$CHANGED" -eq 1 ]; then
  reload_and_restart prometheus-node-exporter.service rsyslog.service
fi
finish
