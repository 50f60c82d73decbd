#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/system-packages.txt whose command is missing.
# Idempotent: a machine that already has everything is left untouched and no package index is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
list=${1:-scripts/system-packages.txt}
missing=()
while read -r cmd pkg; do
  [[ -z "${cmd}" || "${cmd}" == \#* ]] && continue
  if [[ "$cmd" == /* ]]; then
    compgen -G "$cmd" >/dev/null || missing+=("$pkg")
    continue
  fi
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" && ! -x "/usr/bin/$cmd" ]]; then
    # PostgreSQL's server binaries live outside PATH on Debian.
    if [[ "$cmd" == initdb ]] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then continue; fi
    missing+=("$pkg")
  fi
done < "$list"
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
