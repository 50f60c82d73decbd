"""The microVM runtime (`firecracker`): one job = one VM, its steps run inside it (docs/executor.md,
"MicroVM isolation").

Lifecycle per job: step images -> read-only ext4 disks (cached), the workspace -> a sparse scratch disk, a per-job
initramfs archive with the step descriptions, a tap, then the monitor (QEMU microvm or Firecracker). The guest agent
reports READY; each step is RUN and streams its output back; close() powers the VM off and removes everything.
Every VM's state lives in <workspace root>/vms/<prefix>-<job id>-<random>/ with an owner.json, so the janitor of a
later agent finds what a killed one left (the monitor's command line carries that directory and the name).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker

from executor_agent.config import ExecutorSettings
from executor_agent.job import JobFailure, StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.protocol.durations import format_size
from executor_agent.protocol.jobs import JobSpec
from executor_agent.runtimes.base import STOP_GRACE_SECONDS, RuntimeUnavailable, StepResult, StepRun
from executor_agent.vm import checks, firecracker, network, qemu, sources
from executor_agent.vm.assets import Assets, AssetsMissing, assets, write_job_initrd
from executor_agent.vm.guest import GuestChannel
from executor_agent.vm.rootfs import ImageCache, ImageUnavailable, make_ext4
from executor_agent.workspace import OWNER_FILE, Workspace, workspace_root

log = logging.getLogger(__name__)
STEP_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root")
BOOT_TIMEOUT_KVM = 60.0
BOOT_TIMEOUT_TCG = 600.0  # software emulation on a loaded host: tens of seconds is normal


def unavailable_reason(settings: ExecutorSettings) -> str | None:
    return checks.unavailable_reason(settings)


def step_keys(job: JobSpec) -> list[tuple[str, str, str]]:
    """(key, image, kind) of every step in the order the job runner runs them (docs/executor.md log keys)."""
    keys = [(f"step.docker.{s.key or i}", s.image, "docker") for i, s in enumerate(job.dockerSteps)]
    return keys + [(f"step.cli.{s.key or i}", "", "cli") for i, s in enumerate(job.cliSteps)]


def run_script(image_env: list[str], step_env: list[str], directory: str) -> str:
    lines = [f"export {shlex.quote(item)}" for item in (*STEP_ENV, *image_env, *step_env) if "=" in item]
    target = "/data" if directory in ("", ".") else f"/data/{directory.strip('/')}"
    lines.append(f"cd {shlex.quote(target)} || exit 1")
    lines.append("exec /bin/sh /.fleet-step/script")
    return "\n".join(lines) + "\n"


class VMRuntime:
    name = "firecracker"

    def __init__(self, settings: ExecutorSettings, executor_name: str, netns: str | None = None) -> None:
        self.settings = settings
        self.executor_name = executor_name
        self.netns = netns  # tests: taps, rules and monitors inside this network namespace
        self.assets: Assets = assets(settings)
        self.vms_root = workspace_root(settings.workspace_root) / "vms"
        self._docker: docker.DockerClient | None = None

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = sources.engine(self.settings)
        return self._docker

    def check(self) -> str:
        reason = unavailable_reason(self.settings)
        if reason:
            raise RuntimeUnavailable(reason)
        try:
            self.assets.require(self.settings.vm_backend)
        except AssetsMissing as exc:
            raise RuntimeUnavailable(str(exc)) from None
        mode = "KVM" if checks.use_kvm(self.settings) else "TCG software emulation"
        return f"{self.settings.vm_backend} microVMs ({mode})"

    def host_checks(self) -> list[tuple[bool, str]]:
        return checks.host_checks(self.settings)

    def open_job(self, job: JobSpec, workspace: Workspace) -> VMSandbox:
        try:
            self.assets.require(self.settings.vm_backend)
        except AssetsMissing as exc:
            raise RuntimeUnavailable(str(exc)) from None
        sandbox = VMSandbox(self, job.id, workspace)
        try:
            sandbox.prepare(job)
            sandbox.boot()
        except BaseException:
            sandbox.close()
            raise
        return sandbox

    def start_sandbox(self, workspace: Workspace, name: str) -> str:
        """`executor test-vm`: a VM with the workspace at /data and a shell on a console socket; it stays up."""
        sandbox = VMSandbox(self, 0, workspace, name=name, interactive=True)
        try:
            sandbox.prepare(JobSpec(id=0))
            sandbox.boot()
        except BaseException:
            sandbox.close()
            raise
        console = sandbox.dir / "console.sock"
        pid = sandbox.process.pid if sandbox.process else 0
        net = network.removal_commands(sandbox.net.tap, sandbox.name, self.netns) if sandbox.net else []
        remove = " && ".join([f"kill {pid}", *net, shlex.join(["rm", "-rf", str(sandbox.dir), str(workspace.job_dir)])])
        # Not ours to stop when this process exits: the VM stays until removed (the janitor leaves test-vm-* alone).
        sandbox.process = None
        return (
            f"socat -,raw,echo=0 UNIX-CONNECT:{console}\n"
            f"  (VM {sandbox.name}, workspace at /data; remove it with: {remove})"
        )

    def remove_orphans(self, is_active: Callable[[int], bool]) -> list[str]:
        from executor_agent.janitor import stale_workspaces

        removed: list[str] = []
        if not self.vms_root.is_dir():
            return removed
        live = set()
        for vm_dir in stale_workspaces(self.vms_root, self.settings.vm_prefix, self.executor_name, is_active):
            removed += destroy(vm_dir, self.netns)
        for vm_dir in self.vms_root.iterdir():  # also `executor test-vm` sandboxes, which the janitor leaves alone
            with contextlib.suppress(OSError):
                live.add((vm_dir / "tap").read_text().strip().removeprefix(network.TAP_PREFIX))
        # Processes and taps whose directory is gone already (an agent killed during teardown).
        for pid, cmdline in monitor_processes(self.vms_root):
            if not any(str(self.vms_root / d.name) in cmdline for d in self.vms_root.iterdir()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"VM process {pid}")
        for tap in network.taps(self.netns):
            if tap.removeprefix(network.TAP_PREFIX) not in live:
                network.teardown(tap, tap.removeprefix(network.TAP_PREFIX), self.netns)
                removed.append(f"tap {tap}")
        return removed


def monitor_processes(vms_root: Path) -> list[tuple[int, str]]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{vms_root}/" in cmdline and ("-name " in cmdline or "--id " in cmdline):
            found.append((int(proc.name), cmdline))
    return found


def destroy(vm_dir: Path, netns: str | None) -> list[str]:
    """Kill the VM's monitor, remove its tap, rules and disks."""
    removed = []
    for pid, _ in monitor_processes(vm_dir.parent):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(vm_dir) + "/" in cmdline.replace("\0", " "):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                removed.append(f"VM process {pid} ({vm_dir.name})")
    with contextlib.suppress(OSError):
        tap = (vm_dir / "tap").read_text().strip()
        if tap:
            network.teardown(tap, vm_dir.name, netns)
            removed.append(f"tap {tap}")
    shutil.rmtree(vm_dir, ignore_errors=True)
    removed.append(f"VM disks {vm_dir}")
    return removed


class VMSandbox:
    def __init__(
        self, runtime: VMRuntime, job_id: int, workspace: Workspace, name: str = "", interactive: bool = False
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.workspace = workspace
        self.token = secrets.token_hex(4)
        self.name = name or f"{self.settings.vm_prefix}-{job_id}-{self.token}"
        self.dir = runtime.vms_root / self.name
        self.interactive = interactive
        self.steps: dict[str, str] = {}  # job runner key -> guest step id
        self.images: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: GuestChannel | None = None
        self.net: network.VMNetwork | None = None
        self.kvm = checks.use_kvm(self.settings)
        self.timings: dict[str, float] = {}
        self._sock: socket.socket | None = None
        self._closed = False

    # --- preparing and booting ---

    def prepare(self, job: JobSpec) -> None:
        began = time.monotonic()
        self.dir.mkdir(parents=True)
        owner = {"executorName": self.runtime.executor_name, "pid": os.getpid(), "hostname": socket.gethostname(),
                 "jobId": job.id, "name": self.name}  # fmt: skip
        (self.dir / OWNER_FILE).write_text(json.dumps(owner))
        cache = ImageCache(self.runtime.assets.images, self.settings.vm_image_cache_size, self.runtime.docker)
        files: dict[str, bytes | None] = {}
        labels: dict[str, str] = {}
        steps_by_index = {key: (job.dockerSteps + job.cliSteps)[i] for i, (key, _, _) in enumerate(step_keys(job))}
        for i, (key, image, _kind) in enumerate(step_keys(job)):
            step = steps_by_index[key]
            label, env = "", []
            if image:
                try:
                    disk = cache.disk(image, job.dockerAuthConfig or None)
                except ImageUnavailable as exc:
                    raise JobFailure(f"{key}: {exc}") from None
                label, env = disk.label, disk.env
                self.timings["image_cached" if disk.cached else "image_converted"] = time.monotonic() - began
                if disk.path not in self.images:
                    self.images.append(disk.path)
                labels[image] = label
            elif self.runtime.assets.base.is_file():
                label = "fleet-base"
                if self.runtime.assets.base not in self.images:
                    self.images.append(self.runtime.assets.base)
            sid = str(i)
            self.steps[key] = sid
            files[f"job/steps/{sid}/label"] = label.encode()
            files[f"job/steps/{sid}/run.sh"] = run_script(env, step.env, step.dir).encode()
            files[f"job/steps/{sid}/script"] = ("set -e\n" + "\n".join(step.commands) + "\n").encode()
        if self.settings.vm_startup_script_path:
            try:
                files["job/startup.sh"] = Path(self.settings.vm_startup_script_path).read_bytes()
            except OSError as exc:
                raise JobFailure(f"EXECUTOR_VM_STARTUP_SCRIPT_PATH: cannot read it: {exc.strerror}") from None
        write_job_initrd(self.runtime.assets.initrd, files, set(), self.dir / "initrd.img")
        # The workspace as the scratch disk's /workspace: job_dir holds owner.json and workspace/.
        make_ext4(
            self.workspace.job_dir, self.dir / "scratch.ext4", "fleet-scratch", self.settings.firecracker_disk_space
        )
        self.timings["prepare"] = time.monotonic() - began

    def _boot_args(self) -> list[str]:
        # The guest ends with `reboot -f`; with -no-reboot QEMU exits on the reset. microvm has no keyboard
        # controller, so a triple fault (t) resets at once; Firecracker exits on its emulated i8042 reset (k).
        reboot = "reboot=t" if self.settings.vm_backend == "qemu" else "reboot=k"
        args = ["console=ttyS0", "quiet", "panic=-1", reboot]
        args.append("fleet.chan=" + ("vport" if self.settings.vm_backend == "qemu" else "ttyS0"))
        if not self.kvm:
            args += qemu.tcg_boot_args()
        if self.net:
            args.append(self.net.guest_arg)
            dns = _nameserver()
            if dns:
                args.append(f"fleet.dns={dns}")
        if self.interactive:
            args.append("fleet.shell")
        return args

    def boot(self) -> None:
        began = time.monotonic()
        self.net = network.plan(self.token)
        (self.dir / "tap").write_text(self.net.tap)
        try:
            network.setup(
                self.net, self.name, self.runtime.netns, self.settings.docker_registry_mirror_url,
                self.settings.frontend_url,
                self.settings.firecracker_bandwidth_ingress if self.settings.vm_backend == "qemu" else 0,
                self.settings.firecracker_bandwidth_egress if self.settings.vm_backend == "qemu" else 0,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise JobFailure(f"VM network: {' '.join(exc.cmd)}: {exc.stderr.strip()}") from None
        cpus, memory = max(1, int(self.settings.job_num_cpus)), max(64, self.settings.job_memory >> 20)
        if self.settings.vm_backend == "qemu":
            self._start_qemu(cpus, memory)
        else:
            self._start_firecracker(cpus, memory)
        assert self.channel is not None and self.process is not None
        timeout = BOOT_TIMEOUT_KVM if self.kvm else BOOT_TIMEOUT_TCG
        deadline = time.monotonic() + timeout
        while not self.channel.ready.wait(0.2):
            if self.process.poll() is not None or self.channel.closed.is_set() or time.monotonic() > deadline:
                raise JobFailure(f"the VM did not boot within {timeout:.0f}s: {self._console_tail()}")
        self.timings["boot"] = time.monotonic() - began
        exit_ = self.channel.wait_exit("startup", 0) if self.settings.vm_startup_script_path else None
        if exit_ is not None and exit_.code != 0:
            raise JobFailure(f"EXECUTOR_VM_STARTUP_SCRIPT_PATH failed in the VM with exit code {exit_.code}")

    def _spawn(self, argv: list[str], pipes: bool) -> None:
        io = subprocess.PIPE if pipes else subprocess.DEVNULL
        with open(self.dir / "monitor.log", "wb") as monitor_log:
            self.process = subprocess.Popen(
                [*network.ns_prefix(self.runtime.netns), *argv], stdin=io, stdout=io, stderr=monitor_log,
                start_new_session=True,
            )  # fmt: skip

    def _start_qemu(self, cpus: int, memory: int) -> None:
        assert self.net is not None
        spec = qemu.QemuSpec(
            name=self.name, kernel=self.runtime.assets.vmlinuz, initrd=self.dir / "initrd.img", cpus=cpus,
            memory_mib=memory, scratch=self.dir / "scratch.ext4", images=self.images,
            agent_socket=self.dir / "agent.sock", console_log=self.dir / "console.log", kvm=self.kvm,
            tap=self.net.tap, mac=self.net.mac, boot_args=self._boot_args(),
            console_socket=self.dir / "console.sock" if self.interactive else None,
        )  # fmt: skip
        self._spawn(qemu.argv(spec), pipes=False)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 60
        while True:
            try:
                sock.connect(str(spec.agent_socket))
                break
            except OSError:
                assert self.process is not None
                if self.process.poll() is not None or time.monotonic() > deadline:
                    sock.close()
                    raise JobFailure(f"QEMU did not start: {self._monitor_log()}") from None
                time.sleep(0.05)
        self._sock = sock
        self.channel = GuestChannel(sock.makefile("rb"), sock.sendall)
        self.channel.start()

    def _start_firecracker(self, cpus: int, memory: int) -> None:
        assert self.net is not None
        files = {
            "vmlinux": self.runtime.assets.vmlinux,
            "initrd.img": self.dir / "initrd.img",
            "scratch.ext4": self.dir / "scratch.ext4",
            **{f"img{i}.ext4": p for i, p in enumerate(self.images)},
        }
        api_socket = self.dir / "api.sock"
        if firecracker.jailed():
            # The jailer chroots the monitor: its files are linked in, and named as it sees them.
            root = firecracker.jail_root(self.dir / "jail", self.name)
            files, api_socket = firecracker.stage(files, root), root / "api.sock"
        self._spawn(firecracker.argv(self.name, api_socket, self.dir / "jail"), pipes=True)
        assert self.process is not None and self.process.stdout is not None and self.process.stdin is not None
        stdin = self.process.stdin

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        self.channel = GuestChannel(self.process.stdout, write)
        self.channel.start()
        api = firecracker.FirecrackerAPI(api_socket)
        try:
            api.wait_ready(time.monotonic() + 10)
            firecracker.configure(api, firecracker.FirecrackerSpec(
                kernel=files["vmlinux"], initrd=files["initrd.img"], boot_args=self._boot_args(),
                cpus=cpus, memory_mib=memory, scratch=files["scratch.ext4"],
                images=[files[f"img{i}.ext4"] for i in range(len(self.images))],
                tap=self.net.tap, mac=self.net.mac, ingress=self.settings.firecracker_bandwidth_ingress,
                egress=self.settings.firecracker_bandwidth_egress,
            ))  # fmt: skip
        except (firecracker.FirecrackerError, OSError) as exc:
            raise JobFailure(f"Firecracker: {exc}") from None

    def _monitor_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "monitor.log").read_text(errors="replace").strip()[-500:]
        return ""

    def _console_tail(self) -> str:
        lines = list(self.channel.noise)[-5:] if self.channel else []
        with contextlib.suppress(OSError):
            lines += (self.dir / "console.log").read_text(errors="replace").strip().splitlines()[-5:]
        return " | ".join(lines) or self._monitor_log() or "no console output"

    # --- steps ---

    def describe(self, step: StepRun) -> list[str]:
        cpus, memory = max(1, int(self.settings.job_num_cpus)), format_size(self.settings.job_memory)
        argv = ["vm", self.name, f"--cpus={cpus}", f"--memory={memory}", "--image", step.image or "(base)"]
        argv += ["-w", "/data" if step.dir in ("", ".") else f"/data/{step.dir}"]
        for item in step.env:
            argv += ["-e", item]
        return [*argv, "/bin/sh", "-c", step.script()]

    def run_step(self, step: StepRun, entry: LogEntry, stop: StopSignal) -> StepResult:
        assert self.channel is not None and self.process is not None
        sid = self.steps.get(step.key)
        if sid is None:
            entry.note(f"step {step.key} was not announced when the VM was prepared")
            return StepResult(1, "the step is not part of the job the VM was prepared for")
        self.channel.run(sid, entry.write)
        sent_term = sent_kill = 0.0
        while True:
            exit_ = self.channel.wait_exit(sid, 0.2)
            if exit_ is not None:
                break
            if self.channel.closed.is_set() or self.process.poll() is not None:
                return StepResult(137, f"the VM stopped during the step: {self._console_tail()}")
            now = time.monotonic()
            if stop.is_set() and not sent_term:
                self.channel.send(f"STOP {sid}")
                sent_term = now
            elif sent_term and not sent_kill and now - sent_term > STOP_GRACE_SECONDS:
                self.channel.send(f"KILL {sid}")
                sent_kill = now
            elif sent_kill and now - sent_kill > 5:
                self._kill()  # the guest does not answer any more
                return StepResult(137, "stopped: the VM did not end the step and was killed")
        if exit_.flag == "oom":
            limit = format_size(self.settings.job_memory)
            return StepResult(
                exit_.code or 137, f"killed: out of memory in the VM (limit {limit}, EXECUTOR_JOB_MEMORY)"
            )
        if exit_.flag == "error":
            return StepResult(
                exit_.code, f"the VM could not start the step: {' | '.join(list(self.channel.noise)[-3:])}"
            )
        return StepResult(exit_.code)

    # --- teardown ---

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        began = time.monotonic()
        if self.channel and self.process and self.process.poll() is None:
            self.channel.send("POWEROFF")
            try:
                self.process.wait(30 if self.kvm else 120)
            except subprocess.TimeoutExpired:
                log.warning("VM %s did not power off; killing it: %s", self.name, self._console_tail())
        self._kill()
        if self._sock:
            self._sock.close()
        if self.settings.keep_workspaces and (self.dir / "scratch.ext4").is_file():
            self._copy_back()
        if self.net:
            network.teardown(self.net.tap, self.name, self.runtime.netns)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.timings["teardown"] = time.monotonic() - began

    def _copy_back(self) -> None:
        """EXECUTOR_KEEP_WORKSPACES: the VM's /data replaces the host workspace (read with debugfs: no mount)."""
        out = Path(tempfile.mkdtemp(prefix="copyback-", dir=self.workspace.job_dir))
        proc = subprocess.run(
            ["debugfs", "-R", f"rdump /workspace {out}", str(self.dir / "scratch.ext4")], capture_output=True, text=True
        )
        if proc.returncode != 0 or not (out / "workspace").is_dir():
            log.error("VM %s: workspace not copied back: %s", self.name, proc.stderr.strip()[-300:])
            shutil.rmtree(out, ignore_errors=True)
            return
        shutil.rmtree(self.workspace.path, ignore_errors=True)
        (out / "workspace").rename(self.workspace.path)
        shutil.rmtree(out, ignore_errors=True)


def _nameserver() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
                return parts[1]
    return ""
