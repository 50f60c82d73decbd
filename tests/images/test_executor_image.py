"""provision-executor.sh, run for real in a Debian bookworm container (rootfs from debootstrap) on a real Docker
Engine, air-gapped: Debian packages already present, Python dependencies from a local wheelhouse, no network.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.images.conftest import ProvisionRun
from tests.images.startup_script import render, startup_templates

# The first test pays for the session fixtures: on a cold cache, building the Debian rootfs takes minutes.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

# Quotes of both kinds, `$`, a backslash and spaces: everything that could break between Terraform, the env file
# and the settings class.
PASSWORD = 's3cret "quoted" it\'s $HOME and ${PATH} \\n back\\slash  two  spaces'


def test_executor_and_its_commands_run(executor_machine: ProvisionRun) -> None:
    box = executor_machine.container
    for command in (
        "executor --help",
        "executor validate --help",
        "/opt/executor-fleet/bin/executor install --help",
    ):
        code, out = box.sh(command, check=False)
        assert code == 0, f"{command} failed in the provisioned container:\n{out}"
        assert "usage: executor" in out.lower()
    assert box.sh("readlink /usr/local/bin/executor")[1].strip() == "/opt/executor-fleet/bin/executor"
    assert box.sh("git --version && dockerd --version")[0] == 0


def test_first_run_installs_and_enables_units(executor_machine: ProvisionRun) -> None:
    out = executor_machine.first_output
    assert "wrote /etc/systemd/system/executor.service" in out
    assert "systemd is not running (container or chroot): units installed and enabled, not started" in out
    box = executor_machine.container
    for unit in ("executor.service", "docker.service", "prometheus-node-exporter.service", "rsyslog.service"):
        assert box.sh(f"systemctl is-enabled {unit}", check=False)[1].strip() == "enabled", unit


def test_second_run_changes_nothing(executor_machine: ProvisionRun) -> None:
    assert executor_machine.listing_after_first.count("\n") > 100, "the checksum listing is suspiciously short"
    assert executor_machine.listing_after_second == executor_machine.listing_after_first
    assert "done: nothing changed" in executor_machine.second_output
    assert "wrote " not in executor_machine.second_output


def test_units_pass_systemd_analyze_verify(executor_machine: ProvisionRun) -> None:
    box = executor_machine.container
    code, out = box.sh(
        "systemd-analyze verify /etc/systemd/system/executor.service prometheus-node-exporter.service",
        check=False,
    )
    assert code == 0 and "executor.service" not in out, out
    # The same check rejects a unit whose program is missing: the verification above is not vacuous.
    code, out = box.sh(
        "sed 's#^ExecStart=.*#ExecStart=/opt/missing/executor run#' /etc/systemd/system/executor.service"
        " > /tmp/broken.service && systemd-analyze verify /tmp/broken.service",
        check=False,
    )
    assert code != 0 and "/opt/missing/executor" in out


def test_unit_carries_the_image_contract(executor_machine: ProvisionRun) -> None:
    unit = executor_machine.container.sh("cat /etc/systemd/system/executor.service")[1]
    for line in (
        "After=docker.service network-online.target",
        "BindsTo=docker.service",
        "ConditionPathExists=/etc/systemd/system/executor.env",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "EnvironmentFile=/etc/systemd/system/executor.env",
        "ExecStart=/opt/executor-fleet/bin/executor run",
        "ExecStartPre=/opt/executor-fleet/bin/executor install all",
        "ExecStopPost=/usr/local/libexec/executor-fleet/executor-stop-hook post",
    ):
        assert line in unit.splitlines(), f"{line!r} missing from executor.service"


def test_node_exporter_listens_on_loopback_only(executor_machine: ProvisionRun) -> None:
    box = executor_machine.container
    unit = box.sh(
        "cat /lib/systemd/system/prometheus-node-exporter.service"
        " /etc/systemd/system/prometheus-node-exporter.service.d/listen.conf"
    )[1]
    exec_start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert exec_start[-2:] == [
        "ExecStart=",
        "ExecStart=/usr/bin/prometheus-node-exporter --web.listen-address=127.0.0.1:9100 $ARGS",
    ]
    # Start it with the unit's own command line, as its user and with its environment file (no systemd here),
    # and see where it listens.
    command = exec_start[-1].removeprefix("ExecStart=")
    box.sh(
        "set -a; . /etc/default/prometheus-node-exporter; set +a;"
        f" (setsid su -p -s /bin/sh prometheus -c {shlex.quote(command)} >/tmp/ne.log 2>&1 &)"
    )
    code, out = box.sh(
        "for i in $(seq 50); do curl -fsS http://127.0.0.1:9100/metrics >/tmp/m && break; sleep 0.2; done;"
        " grep -c '^node_' /tmp/m; awk 'FNR>1 && $4==\"0A\" {print $2}' /proc/net/tcp /proc/net/tcp6",
        check=False,
    )
    assert code == 0, out
    node_series, *listening = out.split()
    assert int(node_series) > 100, out
    # 0100007F:238C is 127.0.0.1:9100 in /proc/net/tcp's notation.
    assert "0100007F:238C" in listening, out
    assert not any(addr.endswith(":238C") and addr != "0100007F:238C" for addr in listening), out


def test_log_shipping_configs_are_valid(executor_machine: ProvisionRun) -> None:
    box = executor_machine.container
    cloudwatch = json.loads(box.sh("cat /opt/aws/amazon-cloudwatch-agent/etc/executor-fleet.json")[1])
    files = [f["file_path"] for f in cloudwatch["logs"]["logs_collected"]["files"]["collect_list"]]
    assert "/var/log/syslog" in files
    ops = box.sh("cat /etc/google-cloud-ops-agent/config.yaml")[1]
    assert "type: systemd_journald" in ops
    # /var/log/syslog, which both read, exists only because rsyslog copies the journal there.
    assert box.sh("systemctl is-enabled rsyslog.service")[1].strip() == "enabled"


def test_no_poweroff_drop_in_comes_and_goes(executor_machine: ProvisionRun) -> None:
    box = executor_machine.container
    script = "/src/images/executor/provision-executor.sh --skip-install-all --wheelhouse /wheelhouse /dist/*.whl"
    drop_in = "/etc/systemd/system/executor.service.d/no-poweroff.conf"
    out = box.sh(f"{script} --no-poweroff")[1]
    assert f"wrote {drop_in}" in out
    assert "Environment=EXECUTOR_POWEROFF_COMMAND=true" in box.sh(f"cat {drop_in}")[1]
    code, out = box.sh("systemd-analyze verify /etc/systemd/system/executor.service", check=False)
    assert code == 0, out
    out = box.sh(script)[1]
    assert f"removed {drop_in}" in out
    assert box.sh(f"test -e {drop_in}", check=False)[0] != 0


def test_installs_from_a_source_tree_once(executor_machine: ProvisionRun) -> None:
    box = executor_machine.container
    # pip builds a source tree in place, so it gets a writable copy.
    box.sh(
        "rm -rf /tmp/project && mkdir /tmp/project && tar -C /src/project --exclude=./.git --exclude=./.venv"
        " --exclude='*/__pycache__' --exclude=./.mypy_cache --exclude=./.ruff_cache -cf - . | tar -C /tmp/project -xf -"
    )
    script = "/src/images/executor/provision-executor.sh --skip-install-all --wheelhouse /wheelhouse /tmp/project"
    out = box.sh(script)[1]
    assert "installing executor-fleet from /tmp/project into /opt/executor-fleet" in out
    assert box.sh("executor validate --help")[0] == 0
    out = box.sh(script)[1]
    assert "unchanged /opt/executor-fleet (executor-fleet from /tmp/project)" in out
    assert "done: nothing changed" in out
    # A changed tree is installed again, although its version number stayed the same.
    box.sh("echo '# changed' >> /tmp/project/executor_agent/__init__.py")
    out = box.sh(script)[1]
    assert "installing executor-fleet from /tmp/project" in out
    assert "# changed" in box.sh("cat /opt/executor-fleet/lib/python3*/site-packages/executor_agent/__init__.py")[1]


def test_there_is_a_terraform_startup_template() -> None:
    assert startup_templates(), "no terraform/*/modules/executors/*.tftpl found to render"


@pytest.mark.terraform
@pytest.mark.parametrize("template", startup_templates(), ids=lambda p: p.parts[-4])
def test_terraform_env_file_is_read_by_the_agent(
    executor_machine: ProvisionRun, template: Path, tmp_path: Path
) -> None:
    env = {
        "EXECUTOR_FRONTEND_URL": "http://10.0.1.10:3080",
        "EXECUTOR_FRONTEND_PASSWORD": PASSWORD,
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_USE_FIRECRACKER": "false",
        "EXECUTOR_MAXIMUM_RUNTIME_PER_JOB": "1h30m",
        "EXECUTOR_JOB_MEMORY": "8G",
        "SRC_LOG_LEVEL": "info",
    }
    script = render(template, env, tmp_path / "tf", region="us-east-1", docker_mirror_url="")
    box = executor_machine.container
    box.sh(f"cat > /tmp/startup.sh <<'STARTUP_EOF'\n{script}\nSTARTUP_EOF")
    # The container has no systemd to talk to; a stand-in records what the startup script asks of it.
    box.sh(
        "mkdir -p /tmp/shim && printf '#!/bin/sh\\necho \"$*\" >> /tmp/systemctl.calls\\n' > /tmp/shim/systemctl"
        " && chmod +x /tmp/shim/systemctl && rm -f /tmp/systemctl.calls"
    )
    code, out = box.sh("PATH=/tmp/shim:$PATH bash /tmp/startup.sh", check=False)
    assert code == 0, out
    assert "enable --now executor.service" in box.sh("cat /tmp/systemctl.calls")[1]

    # executor.env is read the way the image's tools read it (a shell `set -a; .`), then by the settings class.
    probe = (
        "import json; from executor_agent.config import load_settings; s = load_settings(); "
        "print(json.dumps({'password': s.frontend_password, 'url': s.frontend_url, 'queues': s.queue_names, "
        "'runtime': str(s.runtime), 'limit': s.maximum_runtime_per_job, 'memory': s.job_memory}))"
    )
    box.sh(f"cat > /tmp/probe.py <<'PROBE_EOF'\n{probe}\nPROBE_EOF")
    code, out = box.sh(
        "env -i PATH=/usr/bin:/bin bash -c 'set -a; . /etc/systemd/system/executor.env; set +a;"
        " exec /opt/executor-fleet/bin/python /tmp/probe.py'",
        check=False,
    )
    assert code == 0, out
    settings = json.loads(out.strip().splitlines()[-1])
    assert settings == {
        "password": PASSWORD,
        "url": "http://10.0.1.10:3080",
        "queues": ["batches"],
        "runtime": "docker",
        "limit": 5400.0,
        "memory": 8 * 1024**3,
    }
    assert box.sh("stat -c %a /etc/systemd/system/executor.env")[1].strip() == "600"

    # The unit's ExecStartPre with these settings; --dry-run, since the container may not change iptables.
    code, out = box.sh(
        "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c 'set -a; . /etc/systemd/system/executor.env; set +a;"
        " exec /opt/executor-fleet/bin/executor install all --dry-run'",
        check=False,
    )
    assert code == 0, out
    assert "docker" in out and "iptables" in out
