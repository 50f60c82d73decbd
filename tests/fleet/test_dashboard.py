"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.fleet_server import FleetServer

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found; install it with: apt-get install -y chromium (or run `make test`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def test_dashboard_shows_queues_executors_jobs_and_logs(
    fleet_server: FleetServer, browser: Browser, tmp_path: Path
) -> None:
    with fleet_server.api() as api, fleet_server.executor() as ex:
        for _ in range(2):
            api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [{"image": "bb", "commands": ["ls"]}]})
        job = ex.post("/.executors/queue/batches/dequeue", json={"executorName": "web-host-1"}).json()
        ex.post(
            "/.executors/queue/batches/heartbeat",
            json={"executorName": "web-host-1", "jobIds": [job["id"]], "os": "linux", "architecture": "amd64"},
        )
        ex.post(
            "/.executors/queue/batches/addExecutionLogEntry",
            json={
                "executorName": "web-host-1",
                "jobId": job["id"],
                "key": "step.docker.0",
                "command": ["ls", "-la"],
                "startTime": "2026-01-01T00:00:00Z",
                "exitCode": 0,
                "out": "stdout: <b>README</b>\n",
                "durationMs": 42,
            },
        )

    page = browser.new_page()
    page.goto(fleet_server.url + "/")
    assert page.locator("input[name=token]").is_visible()  # not signed in yet: the login form
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("text=wrong token")  # the answer to the click, not the page from before it
    page.fill("input[name=token]", fleet_server.api_token)
    page.click("button[type=submit]")
    page.wait_for_selector("#queues")
    batches = page.locator("#queues tr", has_text="batches")
    assert batches.locator("td").nth(1).inner_text() == "2"  # size = 1 queued + 1 processing
    executor_row = page.locator("#executors tr", has_text="web-host-1")
    assert executor_row.locator(".mark.healthy").count() == 1
    assert page.locator("#jobs tr").count() == 3  # header + 2 jobs
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    page.click(f"#jobs a:text-is('{job['id']}')")
    page.wait_for_selector(".log-key")
    assert "step.docker.0" in page.locator(".log-key").inner_text()
    # Output is shown as text, never as markup.
    assert page.locator("pre").inner_text().strip() == "stdout: <b>README</b>"
    assert "processing" in page.locator("h1").inner_text()
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
    page.close()
