"""A real Prometheus (Debian's package) scrapes a real `fleet server`, an `executor` running jobs and a
`metrics-publisher`; every dashboard panel's query and every alert rule must be valid there and return series.

Also: `promtool check rules` / `check config` on what fleet/dashboards ships, and the committed files match
what fleet/dashboards/generate.py writes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.dashboards import generate
from tests.support.fleet_server import FleetServer
from tests.support.postgres import free_port

SHIPPED = Path(generate.__file__).resolve().parent
STEP_OK = {"cliSteps": [{"commands": ["echo done"]}]}
STEP_FAIL = {"cliSteps": [{"commands": ["exit 3"]}]}


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found; install it with: apt-get install -y prometheus (or run `make test`)")
    return path


def test_shipped_files_are_current_and_pass_promtool() -> None:
    assert generate.main(["--check"]) == 0, "run `python -m fleet.dashboards.generate`"
    r = subprocess.run([tool("promtool"), "check", "rules", str(SHIPPED / "prometheus" / "rules.yml")], text=True,
                       capture_output=True)  # fmt: skip
    assert r.returncode == 0 and "SUCCESS: 5 rules found" in r.stdout, r.stdout + r.stderr
    for name in ("scrape-aws.yml", "scrape-google.yml", "scrape-static.yml"):
        r = subprocess.run(
            [tool("promtool"), "check", "config", name], cwd=SHIPPED / "prometheus", capture_output=True, text=True
        )
        assert r.returncode == 0 and "SUCCESS" in r.stdout, name + r.stdout + r.stderr


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((SHIPPED / "grafana").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            out.extend((f"{path.stem}: {panel['title']}", t["expr"]) for t in panel["targets"])
    return out


def alert_rules() -> list[dict[str, Any]]:
    # rules.yml is written with JSON-quoted strings, so each `expr:` line reads back with json.loads.
    rules, name = [], None
    for line in (SHIPPED / "prometheus" / "rules.yml").read_text().splitlines():
        if line.strip().startswith("- alert:"):
            name = line.split(":", 1)[1].strip()
        elif line.strip().startswith("expr:"):
            rules.append({"name": name, "expr": json.loads(line.split(":", 1)[1].strip())})
    return rules


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class Prom:
    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def ready(self) -> bool:
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        try:
            reply = self.http.get("/api/v1/query", params={"query": expr})
        except httpx.HTTPError as exc:
            return {"status": "unreachable", "error": str(exc)}
        if reply.status_code == 503:  # Prometheus answers a plain "Service Unavailable" until it is ready
            return {"status": "not ready", "error": reply.text}
        return dict(reply.json())

    def series(self, expr: str) -> list[Any]:
        reply = self.query(expr)
        return list(reply.get("data", {}).get("result", [])) if reply.get("status") == "success" else []


@pytest.fixture
def fleet_stack(fleet_server: FleetServer, tmp_path: Path) -> Iterator[tuple[FleetServer, Prom, subprocess.Popen]]:
    agent_port, publisher_port, prom_port = free_port(), free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EXECUTOR_", "FLEET_", "AWS_"))}
    agent_env = {
        **clean,
        "EXECUTOR_FRONTEND_URL": fleet_server.url,
        "EXECUTOR_FRONTEND_PASSWORD": fleet_server.executor_token,
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_USE_FIRECRACKER": "false",
        "EXECUTOR_RUNTIME": "shell",
        "EXECUTOR_TRUSTED_QUEUES": "batches",
        "EXECUTOR_JOB_NUM_CPUS": "1",
        "EXECUTOR_JOB_MEMORY": "256M",
        # 2 jobs that complete, 4 attempts of one that fails (3 retries: the fixture server's default), 1 more.
        "EXECUTOR_NUM_TOTAL_JOBS": "7",
        "EXECUTOR_HEARTBEAT_INTERVAL": "1s",
        "EXECUTOR_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "EXECUTOR_METRICS_ADDR": f"127.0.0.1:{agent_port}",
        "SRC_LOG_LEVEL": "info",
    }
    publisher_env = {
        **clean,
        "FLEET_URL": fleet_server.url,
        "FLEET_API_TOKEN": fleet_server.api_token,
        "EXECUTOR_METRIC_PROMETHEUS_ADDR": f"127.0.0.1:{publisher_port}",
        "EXECUTOR_METRIC_PUBLISH_INTERVAL": "1s",
        "SRC_LOG_LEVEL": "info",
    }
    rules = tmp_path / "rules.yml"
    shutil.copy(SHIPPED / "prometheus" / "rules.yml", rules)
    config = tmp_path / "prometheus.yml"
    server_target = fleet_server.url.removeprefix("http://")
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: fleet-server, static_configs: [{{targets: ['{server_target}']}}]}}\n"
        f"  - {{job_name: metrics-publisher, static_configs: [{{targets: ['127.0.0.1:{publisher_port}']}}]}}\n"
        "  - job_name: sourcegraph-executors\n    metrics_path: /proxy\n    params: {module: [executor]}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{agent_port}']}}]\n"
    )
    agent = start([sys.executable, "-m", "executor_agent", "run"], agent_env, tmp_path / "executor.log")
    program = Path(sys.executable).parent / "metrics-publisher"
    publisher = start([str(program), "--dry-run"], publisher_env, tmp_path / "pub.log")
    prometheus = start(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        clean,
        tmp_path / "prometheus.log",
    )
    try:
        prom = Prom(prom_port)
        wait_for("Prometheus to be ready", prom.ready)
        yield fleet_server, prom, agent
    finally:
        for proc in (agent, publisher, prometheus):
            stop(proc)


def test_every_panel_and_alert_returns_series_from_a_live_fleet(
    fleet_stack: tuple[FleetServer, Prom, subprocess.Popen], tmp_path: Path
) -> None:
    server, prom, agent = fleet_stack
    with server.api() as api:
        for spec in (STEP_OK, STEP_OK, STEP_FAIL):
            api.post("/api/v1/jobs", json={"queue": "batches", **spec}).raise_for_status()
        for _ in range(2):  # work for a queue no executor serves
            api.post("/api/v1/jobs", json={"queue": "codeintel", **STEP_OK}).raise_for_status()
    # Every job has run, and Prometheus has seen it (the outcome counters and the executor's error counter).
    wait_for("the outcomes in Prometheus", lambda: prom.series('fleet_job_outcomes_total{state="failed"} > 0'))
    wait_for("the executor's errors", lambda: prom.series("src_executor_processor_errors_total > 0"))
    wait_for("a publish", lambda: prom.series("executor_metric_publisher_last_success_timestamp_seconds"))
    # rate() needs two samples of every target.
    wait_for("three scrapes of every target", lambda: prom.series("min(count_over_time(up[5m])) >= 3"))

    waits = prom.series('fleet_job_queue_wait_seconds_count{queue="batches"}')
    # Three jobs started in batches, one of them four times; an attempt that errors and is dequeued again between
    # two scrapes shows only as its job's last start (fleet/api/job_metrics.py).
    assert waits and 3.0 <= float(waits[0]["value"][1]) <= 6.0
    assert not prom.series('fleet_queue_oldest_queued_age_seconds{queue="batches"}')  # empty queue: no series
    assert prom.series('fleet_queue_oldest_queued_age_seconds{queue="codeintel"}')
    assert not prom.series('{__name__=~".+_created"}')

    empty = []
    for title, expr in panel_queries():
        reply = prom.query(expr)
        assert reply["status"] == "success", f"{title}: {expr}: {reply.get('error')}"
        if not reply["data"]["result"]:
            empty.append(f"{title}: {expr}")
    for rule in alert_rules():
        reply = prom.query(rule["expr"])
        assert reply["status"] == "success", f"{rule['name']}: {reply.get('error')}"
        signal = re.fullmatch(r"\((.*)\) > [0-9.]+", rule["expr"])
        assert signal, f"{rule['name']}: expected `(signal) > threshold`, got {rule['expr']}"
        if not prom.series(signal.group(1)):
            empty.append(f"alert {rule['name']}: {signal.group(1)}")
    assert empty == [], "queries without series:\n" + "\n".join(empty)

    loaded = prom.http.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]
    assert sorted(r["name"] for r in loaded) == sorted(r["name"] for r in alert_rules())
    assert all(r["health"] == "ok" for r in loaded), loaded

    # The last job uses up EXECUTOR_NUM_TOTAL_JOBS: the executor exits 0 and the server shows it drained.
    with server.api() as api:
        api.post("/api/v1/jobs", json={"queue": "batches", **STEP_OK}).raise_for_status()
        assert agent.wait(120) == 0, (tmp_path / "executor.log").read_text()[-3000:]
        (executor,) = api.get("/api/v1/executors").json()["executors"]
    assert executor["health"] == "drained" and executor["active"] is False
    assert executor["exitReason"] == "drained: EXECUTOR_NUM_TOTAL_JOBS=7 jobs dequeued"
