"""The runtimes and the one place that knows them: name → lazily imported factory, or why it cannot run here.

`docker` (containers through the Engine API), `shell` (host processes, trusted queues only) and `firecracker`
(one microVM per job, in executor_agent.runtimes.vm). A runtime module may define `unavailable_reason(settings)`,
a one-line reason it cannot run on this host (or None); docs/executor.md, "Runtimes", describes the seam.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from executor_agent.config import ExecutorSettings
from executor_agent.runtimes.base import JobSandbox, Runtime, RuntimeUnavailable, StepResult, StepRun

# name -> (module, class); the class is called as Class(settings, executor_name).
FACTORIES: dict[str, tuple[str, str]] = {
    "docker": ("executor_agent.runtimes.docker", "DockerRuntime"),
    "shell": ("executor_agent.runtimes.shell", "ShellRuntime"),
    "firecracker": ("executor_agent.runtimes.vm", "VMRuntime"),
}
FALLBACK = "set EXECUTOR_USE_FIRECRACKER=false (or EXECUTOR_RUNTIME=docker) to run jobs in Docker containers"
NOT_INSTALLED = {
    "firecracker": f"the VM runtime is not installed in this build of the executor; {FALLBACK}",
    "docker": "the Docker SDK for Python is not installed (pip install docker); or use EXECUTOR_RUNTIME=shell",
}


def _load(name: str) -> ModuleType:
    """The runtime's module; RuntimeUnavailable (one line) when this build or host lacks it."""
    if name not in FACTORIES:
        raise RuntimeUnavailable(f"unknown runtime {name!r}; choose from {', '.join(FACTORIES)}")
    module_name = FACTORIES[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise RuntimeUnavailable(NOT_INSTALLED.get(name, f"runtime {name}: {module_name} is missing")) from None
        # The runtime is there but a library it needs is not.
        raise RuntimeUnavailable(
            f"runtime {name} needs the Python module {exc.name!r}, which is not installed"
        ) from None


def runtime_unavailable(name: str, settings: ExecutorSettings) -> str | None:
    """Why runtime `name` cannot run on this host, in one line; None when it can (as far as is known without
    starting it: `Runtime.check()` then asks the runtime itself)."""
    try:
        module = _load(name)
    except RuntimeUnavailable as exc:
        return str(exc)
    reason = getattr(module, "unavailable_reason", None)
    return reason(settings) if callable(reason) else None


def make_runtime(settings: ExecutorSettings, executor_name: str) -> Runtime:
    """The configured runtime; raises RuntimeUnavailable with the one-line reason it cannot run here."""
    name = settings.runtime.value
    reason = runtime_unavailable(name, settings)
    if reason:
        raise RuntimeUnavailable(reason)
    factory = getattr(_load(name), FACTORIES[name][1])
    runtime: Runtime = factory(settings, executor_name)
    return runtime


__all__ = [
    "FACTORIES",
    "JobSandbox",
    "Runtime",
    "RuntimeUnavailable",
    "StepResult",
    "StepRun",
    "make_runtime",
    "runtime_unavailable",
]
