"""The job examples in docs/*.md, as written: every fenced JSON job is accepted by a real server and run by a real
executor (shell runtime: the image is not pulled, the commands run as written). Placeholders the docs use for a
commit (`5f1c0e…`) become the SHA of a repository registered under the example's name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.executor_agent.helpers import agent_env, make_repo, register_repo, start_agent, wait_state
from tests.support.fleet_server import FleetServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
HEREDOC = re.compile(r"<<'?(\w+)'?\n(.*?)\n\1\n", re.S)
ECHOED = re.compile(r"echo '(\{.*?\})'", re.S)


def job_examples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        for block in FENCE.findall(doc.read_text()):
            texts = [body for _, body in HEREDOC.findall(block)] + ECHOED.findall(block) + [block]
            for text in texts:
                try:
                    value = json.loads(text)
                except ValueError:
                    continue
                if isinstance(value, dict) and ("dockerSteps" in value or "cliSteps" in value):
                    found.append((doc.name, value))
    return found


EXAMPLES = job_examples()


def test_the_docs_have_job_examples() -> None:
    docs = {name for name, _ in EXAMPLES}
    assert {"control-plane.md", "executor.md"} <= docs, f"job examples found only in {docs}"


@pytest.mark.parametrize(("doc", "example"), EXAMPLES, ids=[f"{d}-{i}" for i, (d, _) in enumerate(EXAMPLES)])
def test_job_example_is_accepted_and_runs(
    fleet_server: FleetServer, tmp_path: Path, doc: str, example: dict[str, Any]
) -> None:
    job = dict(example)
    if job.get("repositoryName"):
        sha = make_repo(tmp_path / "origin", {"README": "foo\n"})
        register_repo(fleet_server, job["repositoryName"], tmp_path / "origin")
        assert "…" in job["commit"] or job["commit"] == sha, "a real commit in the docs would be kept as written"
        job["commit"] = sha
    with fleet_server.api() as api:
        r = api.post("/api/v1/jobs", json=job)
        assert r.status_code == 201, f"{doc}: the example is refused: {r.text}"
        job_id = r.json()["id"]
    queue = job["queue"]
    env = agent_env(fleet_server, tmp_path, "", EXECUTOR_RUNTIME="shell", EXECUTOR_TRUSTED_QUEUES=queue,
                    EXECUTOR_QUEUE_NAME=queue, EXECUTOR_NUM_TOTAL_JOBS="1")  # fmt: skip
    agent = start_agent(env, tmp_path / "agent.log")
    try:
        record = wait_state(fleet_server, job_id, timeout=300)
    finally:
        agent.stop()
    assert record["state"] == "completed", f"{doc}: {record.get('failureMessage')}\n{agent.log()[-2000:]}"
