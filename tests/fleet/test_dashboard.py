"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright).

Screenshots go to the test's tmp directory, or to $FLEET_TEST_SCREENSHOTS when set (to look at them).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.fleet_server import FleetServer, start_fleet_server

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
STEP = {"image": "bb", "commands": ["ls"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found; install it with: apt-get install -y chromium (or run `make test`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def fleet_server(tmp_path: Path) -> Iterator[FleetServer]:
    """A server that never resets a job for want of heartbeats: these tests play the executor by hand, slowly."""
    server = start_fleet_server(tmp_path / "fleet", stalled_job_seconds="3600")
    yield server
    server.stop()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("FLEET_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(browser: Browser, server: FleetServer, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server.url + "/")
    page.fill("input[name=token]", server.api_token)
    page.click("button[type=submit]")
    page.wait_for_selector("#queues")
    return page


def log_entry(ex: httpx.Client, job_id: int, out: str, entry_id: int | None = None, code: int | None = None) -> int:
    body = {
        "executorName": "web-host-1",
        "jobId": job_id,
        "key": "step.docker.0",
        "command": ["ls", "-la"],
        "startTime": "2026-01-01T00:00:00Z",
        "exitCode": code,
        "out": out,
        "durationMs": 42 if code is not None else None,
    }
    if entry_id is None:
        return int(ex.post("/.executors/queue/batches/addExecutionLogEntry", json=body).json())
    ex.post("/.executors/queue/batches/updateExecutionLogEntry", json={**body, "entryId": entry_id})
    return entry_id


def test_dashboard_shows_queues_executors_jobs_and_logs(
    fleet_server: FleetServer, browser: Browser, tmp_path: Path
) -> None:
    with fleet_server.api() as api, fleet_server.executor() as ex:
        for _ in range(2):
            api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]})
        job = ex.post("/.executors/queue/batches/dequeue", json={"executorName": "web-host-1"}).json()
        ex.post(
            "/.executors/queue/batches/heartbeat",
            json={"executorName": "web-host-1", "jobIds": [job["id"]], "os": "linux", "architecture": "amd64"},
        )
        log_entry(ex, job["id"], "stdout: <b>README</b>\n", code=0)

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
    assert executor_row.locator(".health").inner_text() == "healthy"  # a word, not only a colour
    assert executor_row.locator("td").nth(2).inner_text() == str(job["id"])  # what it runs now
    assert executor_row.locator("td").nth(5).inner_text().endswith(" ago")
    assert page.locator("#jobs tr").count() == 3  # header + 2 jobs
    shot(page, tmp_path, "dashboard")

    page.click(f"#jobs a:text-is('{job['id']}')")
    page.wait_for_selector(".log-key")
    assert "step.docker.0" in page.locator(".log-key").inner_text()
    # Output is shown as text, never as markup.
    assert page.locator("pre").inner_text().strip() == "stdout: <b>README</b>"
    assert "processing" in page.locator("h1").inner_text()
    assert "UTC" in page.locator("#job").inner_text()  # times say their zone
    shot(page, tmp_path, "job")
    page.close()


def test_job_page_follows_the_stream_and_stops_when_finished(
    fleet_server: FleetServer, browser: Browser, tmp_path: Path
) -> None:
    with fleet_server.api() as api, fleet_server.executor() as ex:
        api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]})
        job_id = ex.post("/.executors/queue/batches/dequeue", json={"executorName": "web-host-1"}).json()["id"]
        page = sign_in(browser, fleet_server)
        page.goto(f"{fleet_server.url}/jobs/{job_id}")
        assert page.locator("meta[http-equiv=refresh]").count() == 0  # no reloads: the stream updates the page
        page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        entry = log_entry(ex, job_id, "stdout: first\n")
        expect(page.locator("pre")).to_have_text("stdout: first\n")
        log_entry(ex, job_id, "stdout: first\nstdout: second\n", entry, code=0)
        expect(page.locator("pre")).to_have_text("stdout: first\nstdout: second\n")
        expect(page.locator(".meta")).to_contain_text("exit 0")
        assert page.locator("#retry-form").is_hidden() and page.locator("#cancel-form").is_visible()
        ex.post("/.executors/queue/batches/markComplete", json={"executorName": "web-host-1", "jobId": job_id})
        expect(page.locator("#live")).to_have_text("finished: completed")
    expect(page.locator("#job-state")).to_have_text("completed")
    assert page.locator("#retry-form").is_visible() and page.locator("#cancel-form").is_hidden()
    assert page.evaluate("window.loadedOnce") is True
    shot(page, tmp_path, "job-live-finished")
    page.close()


def test_cancel_and_retry_buttons_need_the_csrf_token(
    fleet_server: FleetServer, browser: Browser, tmp_path: Path
) -> None:
    with fleet_server.api() as api:
        job_id = api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}).json()["id"]
    page = sign_in(browser, fleet_server)
    cookie = next(c for c in page.context.cookies() if c["name"] == "fleet_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert fleet_server.api_token not in cookie["value"]

    # A post without the token (what another site could send) is refused and changes nothing.
    page.goto(f"{fleet_server.url}/jobs/{job_id}")
    status = page.evaluate(f"fetch('/jobs/{job_id}/cancel', {{method: 'POST'}}).then(r => r.status)")
    assert status == 403
    forged = httpx.post(
        f"{fleet_server.url}/jobs/{job_id}/cancel",
        data={"csrf_token": "0" * 64},
        cookies={"fleet_session": cookie["value"]},
    )
    assert forged.status_code == 403
    with fleet_server.api() as api:
        assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "queued"
        # A forged session cookie is no session.
        assert httpx.get(f"{fleet_server.url}/", cookies={"fleet_session": "1.2.3"}).status_code == 401

    page.click("#cancel")
    expect(page.locator("#job-state")).to_have_text("canceled")
    assert "Cancel requested" in page.locator(".note").inner_text()
    page.click("#retry")
    expect(page.locator("#job-state")).to_have_text("queued")
    shot(page, tmp_path, "job-retried")
    with fleet_server.api() as api:
        assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "queued"

    page.click("#sign-out")
    expect(page.locator("input[name=token]")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "fleet_session"]
    page.goto(fleet_server.url + "/jobs")
    assert page.locator("input[name=token]").is_visible()
    page.close()


def test_job_list_filters_pages_newest_first(fleet_server: FleetServer, browser: Browser, tmp_path: Path) -> None:
    with fleet_server.api() as api:
        ids = [
            api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}).json()["id"] for _ in range(27)
        ]
        other = api.post("/api/v1/jobs", json={"queue": "codeintel", "dockerSteps": [STEP]}).json()["id"]
        api.post(f"/api/v1/jobs/{ids[0]}/cancel")
    page = sign_in(browser, fleet_server)
    page.goto(fleet_server.url + "/jobs")
    first_page = [int(t) for t in page.locator("#jobs td:first-child a").all_inner_texts()]
    assert first_page == [other, *reversed(ids[-24:])]  # 25 rows, newest first
    page.click("#older")
    assert [int(t) for t in page.locator("#jobs td:first-child a").all_inner_texts()] == list(reversed(ids[:3]))
    assert page.locator("#older").count() == 0
    page.select_option("select[name=queue]", "codeintel")
    page.click("button:text-is('Filter')")
    assert page.locator("#jobs td:first-child a").all_inner_texts() == [str(other)]
    page.goto(fleet_server.url + "/jobs?state=canceled")
    assert page.locator("#jobs td:first-child a").all_inner_texts() == [str(ids[0])]
    page.goto(fleet_server.url + "/jobs?queue=bogus")
    assert "queue 'bogus' does not exist" in page.locator(".alert").inner_text()
    shot(page, tmp_path, "jobs")
    page.close()


def test_executors_active_inactive_and_unserved_queues_at_phone_width(browser: Browser, tmp_path: Path) -> None:
    # A short heartbeat interval: an executor that stops heartbeating is "crashed" after 20 intervals (4 s).
    server = start_fleet_server(tmp_path / "fleet2", heartbeat_interval_seconds="0.2")
    try:
        with server.api() as api, server.executor() as ex:
            for _ in range(2):
                api.post("/api/v1/jobs", json={"queue": "codeintel", "dockerSteps": [STEP]})
            for name in ("vm-crashed", "vm-drained", "vm-alive"):
                ex.post("/.executors/queue/batches/heartbeat", json={"executorName": name, "executorVersion": "0.1.0"})
            ex.post(
                "/.executors/queue/batches/heartbeat",
                json={"executorName": "vm-drained", "exitReason": "drained: EXECUTOR_NUM_TOTAL_JOBS=1 jobs dequeued"},
            )
            deadline = time.monotonic() + 60
            while True:  # wait for the server to see vm-crashed as gone, keeping vm-alive alive
                ex.post("/.executors/queue/batches/heartbeat", json={"executorName": "vm-alive"})
                health = {e["name"]: e["health"] for e in api.get("/api/v1/executors").json()["executors"]}
                if health["vm-crashed"] == "crashed" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert health == {"vm-crashed": "crashed", "vm-drained": "drained", "vm-alive": "healthy"}
            page = sign_in(browser, server, width=390)
        assert page.locator("#executors tr", has_text="vm-alive").count() == 1
        assert page.locator("#executors tr", has_text="vm-crashed").count() == 0  # off the active list
        page.click("#inactive summary")
        inactive = page.locator("#inactive")
        assert "crashed" in inactive.locator("tr", has_text="vm-crashed").inner_text()
        assert "drained" in inactive.locator("tr", has_text="vm-drained").inner_text()
        unserved = page.locator(".unserved[data-queue=codeintel]")
        assert "2 job(s) waiting and no active executor serving this queue for" in unserved.inner_text()
        assert page.locator(".unserved[data-queue=batches]").count() == 0
        # Usable at 390 px: the page itself does not scroll sideways (wide tables scroll in their own box).
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, tmp_path, "dashboard-390px")
        page.close()
    finally:
        server.stop()
