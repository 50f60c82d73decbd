"""provision-mirror.sh, run for real in a Debian bookworm container on a real Docker Engine, then the mirror it
configures is started and pulled through: a second, plain registry in the same container plays the upstream
(there is no network here), an image is pushed to it, and pulling through the mirror must land the layers on
/mnt/registry.
"""

from __future__ import annotations

import pytest

from tests.images.conftest import ProvisionRun

# The first test pays for the session fixtures: on a cold cache, building the Debian rootfs takes minutes.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

START_REGISTRIES = r"""
set -e
mkdir -p /srv/upstream
cat > /srv/upstream.yml <<'EOF'
version: 0.1
storage:
  filesystem:
    rootdirectory: /srv/upstream
http:
  addr: 127.0.0.1:5002
EOF
chown -R docker-registry: /srv/upstream
# As the unit does it: its drop-in's ExecStartPre, then the registry as its own user with the mirror.env settings.
install -d -o docker-registry -g docker-registry -m 0750 /mnt/registry
wait_for() {
  for i in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done
  cat /tmp/upstream.log /tmp/mirror.log >&2
  return 1
}
curl -fs -o /dev/null http://127.0.0.1:5002/v2/ ||
  setsid su -s /bin/sh docker-registry -c 'docker-registry serve /srv/upstream.yml' >/tmp/upstream.log 2>&1 &
# The proxy asks the upstream for its auth challenges at start and gives up when it cannot reach it (on a
# machine, Restart=always in the unit's drop-in retries), so the upstream must be up first.
wait_for http://127.0.0.1:5002/v2/
setsid su -s /bin/sh docker-registry -c 'docker-registry serve /etc/docker/registry/config.yml' \
  >/tmp/mirror.log 2>&1 &
wait_for http://127.0.0.1:5000/v2/
"""

# Push a one-layer image to the upstream with the registry HTTP API (monolithic blob uploads, schema 2 manifest).
PUSH_TO_UPSTREAM = r"""
set -e
cd /tmp
up=http://127.0.0.1:5002/v2/library/hello
printf 'layer content %s\n' "$(date +%s%N)" > layer.txt
tar -cf layer.tar layer.txt
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha256sum layer.tar | cut -d' ' -f1)" > config.json
push_blob() {
  digest="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
  location=$(curl -fsS -X POST -D - -o /dev/null "$up/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$location" in http*) ;; *) location="http://127.0.0.1:5002$location" ;; esac
  case "$location" in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" \
    "$location${sep}digest=$digest" -o /dev/null
  echo "$digest"
}
config_digest=$(push_blob config.json)
layer_digest=$(push_blob layer.tar)
cat > manifest.json <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
 "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":$(stat -c %s config.json),
           "digest":"$config_digest"},
 "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":$(stat -c %s layer.tar),
            "digest":"$layer_digest"}]}
EOF
curl -fsS -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
  --data-binary @manifest.json "$up/manifests/latest" -o /dev/null
echo "$layer_digest"
"""


def test_second_run_changes_nothing(mirror_machine: ProvisionRun) -> None:
    assert "installing 1 package file(s) from /debs" in mirror_machine.first_output
    assert "wrote /etc/docker/registry/config.yml" in mirror_machine.first_output
    assert mirror_machine.listing_after_first.count("\n") > 20, "the checksum listing is suspiciously short"
    assert mirror_machine.listing_after_second == mirror_machine.listing_after_first
    assert "done: nothing changed" in mirror_machine.second_output


def test_units_pass_systemd_analyze_verify(mirror_machine: ProvisionRun) -> None:
    box = mirror_machine.container
    code, out = box.sh(
        "systemd-analyze verify docker-registry.service /etc/systemd/system/registry-mirror-health.service"
        " /etc/systemd/system/registry-mirror-health.timer",
        check=False,
    )
    assert code == 0, out
    for unit in (
        "docker-registry.service",
        "registry-mirror-health.timer",
        "prometheus-node-exporter.service",
    ):
        assert box.sh(f"systemctl is-enabled {unit}", check=False)[1].strip() == "enabled", unit


def test_mirror_pulls_through_to_the_data_disk_with_health_and_metrics(mirror_machine: ProvisionRun) -> None:
    box = mirror_machine.container
    box.sh(START_REGISTRIES)

    code, out = box.sh("registry-mirror-healthcheck", check=False)
    assert code == 0 and "healthy" in out, out
    metrics = box.sh("curl -fsS http://127.0.0.1:5001/metrics")[1]
    assert "registry_http_requests_total" in metrics

    layer_digest = box.sh(PUSH_TO_UPSTREAM)[1].strip().splitlines()[-1]
    assert layer_digest.startswith("sha256:")
    hex_digest = layer_digest.removeprefix("sha256:")
    blob = f"/mnt/registry/docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    assert box.sh(f"test -e {blob}", check=False)[0] != 0, "the mirror had the layer before anyone pulled it"

    # Pull through the mirror as Docker would: manifest, then the layer.
    box.sh(
        "curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'"
        " http://127.0.0.1:5000/v2/library/hello/manifests/latest -o /dev/null"
    )
    pulled = box.sh(f"curl -fsS http://127.0.0.1:5000/v2/library/hello/blobs/{layer_digest} | tar -xOf - layer.txt")
    assert pulled[1].startswith("layer content")
    # The proxy stores the blob on the data disk mount in the background, right after serving it.
    code, out = box.sh(f"for i in $(seq 50); do test -s {blob} && exit 0; sleep 0.2; done; exit 1", check=False)
    assert code == 0, f"layer not cached under /mnt/registry:\n{box.sh('cat /tmp/mirror.log')[1][-2000:]}"
    assert box.sh(f"stat -c %U {blob}")[1].strip() == "docker-registry"


def test_healthcheck_fails_when_the_registry_is_down(mirror_machine: ProvisionRun) -> None:
    box = mirror_machine.container
    box.sh(START_REGISTRIES)
    box.sh("pkill -f '^docker-registry serve /etc/docker/registry/config.yml'; sleep 0.5")
    try:
        code, out = box.sh("registry-mirror-healthcheck", check=False)
        assert code == 1
        assert "registry API http://127.0.0.1:5000/v2/ does not answer 200" in out
    finally:
        box.sh(START_REGISTRIES)


def test_mirror_env_overrides_the_upstream(mirror_machine: ProvisionRun) -> None:
    """A startup script can point the cache elsewhere through mirror.env (the unit's EnvironmentFile=)."""
    box = mirror_machine.container
    box.sh(START_REGISTRIES)
    box.sh("pkill -f '^docker-registry serve /etc/docker/registry/config.yml'; sleep 0.5")
    try:
        box.sh("echo \"REGISTRY_PROXY_REMOTEURL='http://127.0.0.1:5009'\" > /etc/docker/registry/mirror.env")
        # Nothing listens on 5009: a registry that took the override gives up at start, naming that address.
        code, out = box.sh(
            "set -a; . /etc/docker/registry/mirror.env; set +a;"
            " su -p -s /bin/sh docker-registry -c 'timeout 20 docker-registry serve /etc/docker/registry/config.yml'",
            check=False,
        )
        assert code not in (0, 124), out
        assert "127.0.0.1:5009" in out
    finally:
        box.sh("rm -f /etc/docker/registry/mirror.env")
        box.sh(START_REGISTRIES)
