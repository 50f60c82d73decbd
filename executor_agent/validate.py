"""`executor validate`: is this host ready to take jobs? One ✓/✗ line per check; exit 1 on any ✗."""

from __future__ import annotations

from collections.abc import Callable

from executor_agent.apiclient import ApiClient, Refused, ServerUnavailable
from executor_agent.config import ExecutorSettings
from executor_agent.hostinfo import MIN_GIT, executor_version, git_version
from executor_agent.protocol.wire import TEST_AUTH_PATH
from executor_agent.runtimes import RuntimeUnavailable, make_runtime

Check = tuple[bool, str]


def check_git() -> Check:
    found = git_version()
    want = ".".join(map(str, MIN_GIT))
    if found is None:
        return False, f"git: not installed; install git >= {want} (apt-get install -y git)"
    have = ".".join(map(str, found))
    if found[:2] < MIN_GIT:
        return False, f"git: version {have} is too old; install git >= {want}"
    return True, f"git {have} (>= {want})"


def check_runtime(settings: ExecutorSettings) -> list[Check]:
    """The runtime's own host checks, or the one line saying why it cannot run on this host."""
    try:
        runtime = make_runtime(settings, "validate")
    except RuntimeUnavailable as exc:
        return [(False, f"runtime {settings.runtime.value}: {exc}")]
    return runtime.host_checks()


def check_server(settings: ExecutorSettings) -> Check:
    api = ApiClient(settings.frontend_url, settings.frontend_password, "validate", executor_version())
    try:
        api.test_auth(settings.queue_names)
    except ServerUnavailable as exc:
        return False, f"server: {settings.frontend_url} unreachable ({exc}); check EXECUTOR_FRONTEND_URL"
    except Refused as exc:
        if exc.status in (401, 403):
            return False, (
                f"server: {settings.frontend_url} rejected the executor secret (HTTP {exc.status}); check that "
                "EXECUTOR_FRONTEND_PASSWORD equals the server's FLEET_EXECUTORS_ACCESS_TOKEN"
            )
        if exc.status == 404 and "unknown queue" in str(exc):
            return False, f"server: {settings.frontend_url} has no such queue: {exc}; check EXECUTOR_QUEUE_NAME(S)"
        return False, f"server: {settings.frontend_url}{TEST_AUTH_PATH} answered {exc}; is it a fleet server?"
    finally:
        api.close()
    return True, f"server {settings.frontend_url} reachable, executor secret accepted"


def validate(settings: ExecutorSettings, echo: Callable[[str], None] = print) -> int:
    checks: list[Check | None] = [
        (True, f"configuration: queues {', '.join(settings.queue_names)}, runtime {settings.runtime}"),
        check_git(),
        *check_runtime(settings),
        check_server(settings),
    ]
    ok = True
    for check in checks:
        if check is None:
            continue
        passed, line = check
        ok &= passed
        echo(f"{'✓' if passed else '✗'} {line}")
    return 0 if ok else 1
