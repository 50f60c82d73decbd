"""`executor validate`, `install`, `test-vm` and the metrics endpoint, run as a user would run them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from executor_agent import metrics
from tests.executor_agent.helpers import agent_env, make_repo, register_repo
from tests.support.docker_engine import DockerEngine
from tests.support.fleet_server import FleetServer
from tests.support.postgres import free_port


def executor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor_agent", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def env(fleet_server: FleetServer, docker_engine: DockerEngine, tmp_path: Path) -> dict[str, str]:
    return agent_env(fleet_server, tmp_path, docker_engine.host)


@pytest.mark.docker
def test_validate_all_good(env: dict[str, str]) -> None:
    result = executor(env, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("✓ configuration: queues batches, runtime docker")
    assert any(line.startswith("✓ git 2.") and "(>= 2.31)" in line for line in lines)
    assert any(line.startswith("✓ runtime docker: Docker Engine") for line in lines)
    assert "✓ step limits: at most 4096 processes, no-new-privileges, reduced caps" in lines
    assert lines[-1].startswith("✓ server http://127.0.0.1:") and lines[-1].endswith("executor secret accepted")


@pytest.mark.docker
def test_validate_names_what_to_fix(env: dict[str, str]) -> None:
    wrong_secret = executor({**env, "EXECUTOR_FRONTEND_PASSWORD": "not-the-secret-not-the-secret"}, "validate")
    assert wrong_secret.returncode == 1
    assert (
        "rejected the executor secret (HTTP 401); check that EXECUTOR_FRONTEND_PASSWORD equals the server's "
        "FLEET_EXECUTORS_ACCESS_TOKEN" in wrong_secret.stdout
    )
    unreachable = executor({**env, "EXECUTOR_FRONTEND_URL": f"http://127.0.0.1:{free_port()}"}, "validate")
    assert unreachable.returncode == 1
    assert "unreachable" in unreachable.stdout and "check EXECUTOR_FRONTEND_URL" in unreachable.stdout
    no_docker = executor({**env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "validate")
    assert no_docker.returncode == 1
    assert "✗ runtime docker: Docker Engine at unix:///nonexistent/docker.sock does not answer" in no_docker.stdout
    mirror = executor({**env, "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://127.0.0.1:5000"}, "validate")
    assert mirror.returncode == 1
    assert "✗ registry mirror: EXECUTOR_DOCKER_REGISTRY_MIRROR_URL=http://127.0.0.1:5000 is not among" in mirror.stdout
    # This host cannot run the VM runtime (no VM runtime in this build, or no usable KVM): one line says why.
    firecracker = executor({**env, "EXECUTOR_USE_FIRECRACKER": "true"}, "validate")
    assert firecracker.returncode == 1
    runtime_lines = [line for line in firecracker.stdout.splitlines() if "runtime firecracker:" in line]
    assert len(runtime_lines) == 1 and runtime_lines[0].startswith("✗ runtime firecracker: "), firecracker.stdout
    assert runtime_lines[0] == "✗ runtime firecracker: " + unavailable_reason(env)


def unavailable_reason(env: dict[str, str]) -> str:
    """What the runtime registry says about the VM runtime on this host, asked in a child with the same env."""
    code = (
        "from executor_agent.config import load_settings; from executor_agent.runtimes import runtime_unavailable; "
        "print(runtime_unavailable('firecracker', load_settings()))"
    )
    env = {**env, "EXECUTOR_USE_FIRECRACKER": "true"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    reason = out.stdout.strip()
    assert reason and reason != "None" and "\n" not in reason
    return reason


@pytest.mark.docker
def test_run_with_an_unavailable_runtime_exits_2_with_one_line(env: dict[str, str]) -> None:
    result = executor({**env, "EXECUTOR_USE_FIRECRACKER": "true"}, "run")
    assert result.returncode == 2
    assert result.stderr == f"executor: runtime firecracker: {unavailable_reason(env)}\n"


@pytest.mark.docker
def test_install_dry_run_changes_nothing_and_docker_config_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    daemon_json = tmp_path / "etc-docker" / "daemon.json"
    env = {
        **env,
        "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://10.0.1.4:5000",
        "EXECUTOR_DOCKER_DAEMON_JSON": str(daemon_json),
    }
    dry = executor(env, "install", "all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "✓ docker: already done: install Docker Engine from the distribution" in dry.stdout
    assert f"would docker-config: add registry mirror http://10.0.1.4:5000 to {daemon_json}" in dry.stdout
    assert "iptables -A EXECUTOR-FLEET -d 169.254.169.254/32 -j DROP" in dry.stdout
    assert "iptables -A EXECUTOR-FLEET -d 10.0.1.4/32 -p tcp --dport 5000 -j RETURN" in dry.stdout
    assert not daemon_json.exists()

    daemon_json.parent.mkdir()
    daemon_json.write_text(json.dumps({"log-driver": "json-file"}))
    first = executor(env, "install", "docker-config")
    assert first.returncode == 0 and "✓ docker-config: add registry mirror" in first.stdout
    written = json.loads(daemon_json.read_text())
    assert written == {"log-driver": "json-file", "registry-mirrors": ["http://10.0.1.4:5000"]}
    again = executor(env, "install", "docker-config")
    assert "already done" in again.stdout
    assert json.loads(daemon_json.read_text()) == written

    unknown = executor(env, "install", "kvm")
    assert unknown.returncode == 2 and "unknown component(s) kvm" in unknown.stderr
    components = {line.split(":")[0].split()[-1] for line in dry.stdout.splitlines()}
    assert components == {"docker", "docker-config", "iptables-rules"}, "`all` holds vm only for the VM runtime"


@pytest.mark.docker
def test_test_vm_clones_and_prints_how_to_attach(
    env: dict[str, str], fleet_server: FleetServer, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    sha = make_repo(tmp_path / "origin", {"README": "hello from the repo\n"})
    register_repo(fleet_server, "github.com/acme/tools", tmp_path / "origin")
    # A git in front of the real one that records every argument list, to show the shared secret is never on a
    # command line (any process on the host reads /proc/*/cmdline).
    shim, argv_log = tmp_path / "shim", tmp_path / "git-argv.log"
    shim.mkdir()
    real_git = shutil.which("git")
    assert real_git, "git is needed: apt-get install git"
    (shim / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {real_git} "$@"\n')
    (shim / "git").chmod(0o755)
    env = {**env, "EXECUTOR_TEST_VM_IMAGE": "busybox", "PATH": f"{shim}:{env.get('PATH', os.defpath)}"}
    client = docker_engine.client()
    try:
        # Its own default revision (HEAD), and an explicit commit.
        for revision in ([], ["--revision", sha]):
            result = executor(env, "test-vm", "--repo", "github.com/acme/tools", *revision)
            assert result.returncode == 0, result.stderr
            lines = result.stdout.splitlines()
            attach = lines[lines.index("Attach to it with:") + 1].strip()
            assert attach.startswith(f"DOCKER_HOST={docker_engine.host} docker exec -it ")
            name = attach.split()[-2]
            remove = lines[lines.index("Remove it with:") + 1].strip()
            assert remove.startswith(f"DOCKER_HOST={docker_engine.host} docker rm -f {name} && rm -rf ")
            sandbox = client.containers.get(name)
            assert sandbox.status == "running"
            assert sandbox.exec_run(["cat", "/data/README"]).output == b"hello from the repo\n"
            sandbox.remove(force=True)
        recorded = argv_log.read_text()
        assert "fetch" in recorded and "checkout" in recorded, recorded
        assert env["EXECUTOR_FRONTEND_PASSWORD"] not in recorded
        assert "extraHeader" not in recorded
        only_name = executor(env, "test-vm", "--name-only")
        assert only_name.returncode == 0
        client.containers.get(only_name.stdout.strip()).remove(force=True)
    finally:
        client.close()


@pytest.mark.docker
def test_test_vm_with_an_image_not_on_this_host_says_so_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = executor({**env, "EXECUTOR_TEST_VM_IMAGE": "acme/no-such-image:1.0"}, "test-vm")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("executor: image 'acme/no-such-image:1.0' is not present in the Docker Engine at ")
    assert "set EXECUTOR_TEST_VM_IMAGE to an image this host has" in result.stderr
    assert not [p for p in (tmp_path / "workspaces").iterdir() if p.name.startswith("test-vm-")], "workspace removed"


def test_every_help_has_examples_and_version_is_printed() -> None:
    env = {"PATH": os.environ["PATH"]}  # no configuration at all: help and --version need none
    for command in ([], ["run"], ["validate"], ["install"], ["test-vm"]):
        result = executor(env, *command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Examples:" in result.stdout and "  executor" in result.stdout.split("Examples:")[1], command
    top = executor(env, "--help").stdout
    for name in ("run", "validate", "install", "test-vm"):
        assert f"\n  {name} " in top
    install_help = " ".join(executor(env, "install", "--help").stdout.split())
    assert "all (default), docker, docker-config, iptables-rules, vm" in install_help
    version = executor(env, "--version")
    assert version.returncode == 0 and version.stdout.startswith("executor ") and len(version.stdout.split()) == 2
    missing = executor(env)  # the default command is run, which needs the configuration
    assert missing.returncode == 2 and "EXECUTOR_FRONTEND_URL is not set" in missing.stderr


def test_every_command_line_in_the_docs_parses() -> None:
    """Each `executor ...` line of docs/executor.md's shell examples, with --help added: options that do not exist
    (or a command that was renamed) fail to parse."""
    docs = Path(__file__).parents[2] / "docs" / "executor.md"
    blocks = re.findall(r"```bash\n(.*?)```", docs.read_text(), re.S)
    lines = [line.split("#")[0].split() for block in blocks for line in block.splitlines()]
    commands = [
        words[[w.startswith("EXECUTOR_") and "=" in w for w in words].index(False) :] for words in lines if words
    ]
    commands = [words[1:] for words in commands if words[0] == "executor"]
    assert len(commands) >= 8
    for args in commands:
        result = executor({"PATH": os.environ["PATH"]}, *args, "--help")
        assert result.returncode == 0 and "Usage: executor" in result.stdout, (args, result.stderr)


def test_help_imports_no_docker_sdk_httpx_or_configuration() -> None:
    code = "import sys, executor_agent.cli; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("'docker'", "'httpx'", "'pydantic_settings'", "'executor_agent.config'", "'executor_agent.loop'"):
        assert heavy not in loaded, heavy
    helped = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "executor_agent", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in helped.stderr.splitlines()}
    assert not imported & {"docker", "httpx", "pydantic_settings", "executor_agent.config"}


def test_registry_names_the_missing_vm_runtime_and_uses_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from executor_agent import runtimes
    from executor_agent.config import load_settings

    settings = load_settings(
        EXECUTOR_FRONTEND_URL="http://127.0.0.1:1", EXECUTOR_FRONTEND_PASSWORD="x" * 20,
        EXECUTOR_QUEUE_NAME="batches", EXECUTOR_USE_FIRECRACKER="true",
    )  # fmt: skip
    # A build without the VM runtime module: one line, and what to set instead.
    monkeypatch.setitem(sys.modules, "executor_agent.runtimes.vm", None)
    reason = runtimes.runtime_unavailable("firecracker", settings)
    assert reason == (
        "the VM runtime is not installed in this build of the executor; set EXECUTOR_USE_FIRECRACKER=false "
        "(or EXECUTOR_RUNTIME=docker) to run jobs in Docker containers"
    )
    with pytest.raises(runtimes.RuntimeUnavailable, match="the VM runtime is not installed"):
        runtimes.make_runtime(settings, "x")

    # A VM runtime module: its unavailable_reason is the registry's answer, its VMRuntime the factory.
    made: list[tuple[object, str]] = []
    vm = types.ModuleType("executor_agent.runtimes.vm")
    vm.unavailable_reason = lambda s: "no usable KVM: /dev/kvm cannot be opened"  # type: ignore[attr-defined]
    vm.VMRuntime = lambda s, name: made.append((s, name)) or "a runtime"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "executor_agent.runtimes.vm", vm)
    assert runtimes.runtime_unavailable("firecracker", settings) == "no usable KVM: /dev/kvm cannot be opened"
    vm.unavailable_reason = lambda s: None  # type: ignore[attr-defined]
    assert runtimes.make_runtime(settings, "exec-1") == "a runtime"  # type: ignore[comparison-overlap]
    assert made == [(settings, "exec-1")]


def test_install_vm_calls_the_vm_runtimes_installer(monkeypatch: pytest.MonkeyPatch) -> None:
    from executor_agent.config import load_settings
    from executor_agent.install import install

    base = {"EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1", "EXECUTOR_FRONTEND_PASSWORD": "x" * 20,
            "EXECUTOR_QUEUE_NAME": "batches"}  # fmt: skip
    settings = load_settings(**base, EXECUTOR_USE_FIRECRACKER="true")
    lines: list[str] = []
    monkeypatch.setitem(sys.modules, "executor_agent.vm.assets", None)
    assert install(settings, ["vm"], True, lines.append) == 1
    assert lines == ["✗ vm: the VM runtime is not installed in this build of the executor; nothing to prepare"]
    lines.clear()
    assert install(settings, ["all"], True, lines.append) == 0  # `run` refuses with the reason (exit 2)
    assert (
        lines[-1] == "- vm: skipped: the VM runtime is not installed in this build of the executor; nothing to prepare"
    )

    calls: list[tuple[object, bool]] = []
    assets = types.ModuleType("executor_agent.vm.assets")

    def install_vm(s: object, dry_run: bool, echo: Callable[[str], None]) -> int:
        calls.append((s, dry_run))
        echo("would vm: unpack the kernel")
        return 0

    assets.install_vm = install_vm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "executor_agent.vm.assets", assets)
    lines.clear()
    assert install(settings, ["vm"], True, lines.append) == 0
    assert calls == [(settings, True)] and lines == ["would vm: unpack the kernel"]
    # `all` holds vm when the VM runtime is configured, and not otherwise.
    install(settings, ["all"], True, lines.append)
    assert len(calls) == 2 and lines[-1] == "would vm: unpack the kernel"
    install(load_settings(**base, EXECUTOR_USE_FIRECRACKER="false"), ["all"], True, lines.append)
    assert len(calls) == 2


@pytest.fixture
def node_exporter() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"node_cpu_seconds_total 42\n" if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_metrics_endpoints(node_exporter: str) -> None:
    metrics.processor_total.labels("batches").inc()
    metrics.observe_api("dequeue", 0.01, error=False)
    server = metrics.MetricsServer("127.0.0.1:0", node_exporter)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/metrics", "/proxy?module=executor"):
            text = httpx.get(base + path).text
            assert 'src_executor_processor_total{queue="batches"}' in text
            assert 'src_apiworker_apiclient_queue_total{op="dequeue"}' in text
            for family in ("src_executor_processor_duration_seconds", "src_apiworker_command_total"):
                assert f"# TYPE {family}" in text
        assert httpx.get(base + "/proxy?module=node").text == "node_cpu_seconds_total 42\n"
    finally:
        server.stop()
    bare = metrics.MetricsServer("127.0.0.1:0", "")
    bare.start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{bare.port}/proxy?module=node")
        assert reply.status_code == 404 and "NODE_EXPORTER_URL is not set" in reply.text
    finally:
        bare.stop()


def test_install_iptables_rules_for_real_in_a_private_network_namespace(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("iptables") is None:
        pytest.fail("needs unshare (util-linux) and iptables: apt-get install -y util-linux iptables")
    env = {
        "PATH": os.environ["PATH"],
        "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
        "EXECUTOR_FRONTEND_PASSWORD": "unused-here-unused-here",
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://10.0.1.4:5000",
    }
    install = f"{sys.executable} -m executor_agent install iptables-rules"
    # A fresh network namespace has its own, empty iptables: the host's rules are never touched.
    # DOCKER-USER is the chain dockerd creates; here the test stands in for dockerd.
    script = f"iptables -N DOCKER-USER && {install} && echo ==== && {install} && echo ==== && iptables -S"
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    first, second, rules = result.stdout.split("====\n")
    assert "✓ iptables-rules: iptables -A EXECUTOR-FLEET -d 169.254.169.254/32 -j DROP" in first
    assert "already done" not in first
    assert all(line.startswith("✓ iptables-rules: already done") for line in second.splitlines())
    assert "-A DOCKER-USER -i docker0 -j EXECUTOR-FLEET" in rules
    assert "-A EXECUTOR-FLEET -d 10.0.1.4/32 -p tcp -m tcp --dport 5000 -j RETURN" in rules
    assert rules.index("--dport 5000 -j RETURN") < rules.index("-d 10.0.0.0/8 -j DROP"), "mirror allowed first"
    assert rules.count("-A EXECUTOR-FLEET") == 8
