"""`executor validate`: is this host ready to take jobs? One ✓/✗ line per check; exit 1 on any ✗."""

from __future__ import annotations

from collections.abc import Callable

from executor_agent.apiclient import ApiClient, Refused, ServerUnavailable
from executor_agent.config import FIRECRACKER_UNAVAILABLE, ExecutorSettings, RuntimeName
from executor_agent.hostinfo import MIN_GIT, executor_version, git_version
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


def check_runtime(settings: ExecutorSettings) -> Check:
    if settings.runtime == RuntimeName.FIRECRACKER:
        return False, f"runtime firecracker: {FIRECRACKER_UNAVAILABLE}"
    try:
        runtime = make_runtime(settings, "validate")
        version = runtime.check()
    except RuntimeUnavailable as exc:
        return False, f"runtime {settings.runtime}: {exc}"
    if settings.runtime == RuntimeName.SHELL:
        return True, "runtime shell: jobs run NOT isolated, for EXECUTOR_TRUSTED_QUEUES only"
    return True, f"runtime docker: Docker Engine {version} answers"


def check_mirror(settings: ExecutorSettings) -> Check | None:
    mirror = settings.docker_registry_mirror_url
    if not mirror or settings.runtime != RuntimeName.DOCKER:
        return None
    from executor_agent.runtimes.docker import DockerRuntime

    try:
        info = DockerRuntime(settings, "validate").client.info()
    except Exception as exc:  # already reported by the runtime check
        return False, f"registry mirror: cannot ask the Docker Engine: {exc}"
    mirrors = [m.rstrip("/") for m in (info.get("RegistryConfig") or {}).get("Mirrors") or []]
    if mirror.rstrip("/") in mirrors:
        return True, f"registry mirror {mirror} configured in the Docker Engine"
    return False, (
        f"registry mirror: EXECUTOR_DOCKER_REGISTRY_MIRROR_URL={mirror} is not among the daemon's mirrors "
        f"{mirrors}; run `executor install docker-config` and restart dockerd"
    )


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
        return False, f"server: {settings.frontend_url}/.executors/test/auth answered {exc}; is it a fleet server?"
    finally:
        api.close()
    return True, f"server {settings.frontend_url} reachable, executor secret accepted"


def validate(settings: ExecutorSettings, echo: Callable[[str], None] = print) -> int:
    checks: list[Check | None] = [
        (True, f"configuration: queues {', '.join(settings.queue_names)}, runtime {settings.runtime}"),
        check_git(),
        check_runtime(settings),
        check_mirror(settings),
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
