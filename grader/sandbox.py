"""Run student code in another process, behind as many walls as the machine offers.

Layers, outermost first (each one named in every result, so a report says what protected it):

- ``namespaces``: bubblewrap gives a private PID namespace (nothing survives the sandbox), no
  network but a private loopback, a read-only view of just Python, NumPy and ``grader/inside``,
  a private /tmp and /dev/shm, and one writable scratch folder. Solutions, rubrics, tests, other
  submissions and the MNIST test labels are simply not there.
- ``uid``: as root, the student runs as an unprivileged uid of its own (one per parallel slot,
  since process limits count per uid), with no capabilities and no new privileges.
- ``cgroup``: memory and process-count caps enforced by the kernel for the whole process tree.
- ``rlimits``: address space, CPU time, processes, file size, open files (self-applied inside).
- ``seccomp``: internet sockets are refused, loopback included.

``GRADER_SANDBOX=strict`` refuses to grade when a layer is missing, ``auto`` (the default) uses
what exists and says what is missing, ``off`` runs a plain child process (debugging only).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.inside import wire

MODES = ("strict", "auto", "off")
ALL_LAYERS = ("namespaces", "uid", "cgroup", "rlimits", "seccomp")
INSIDE_PACKAGE = Path(__file__).resolve().parent / "inside"
BASE_UID = 61000
MAX_MESSAGE_BYTES = 256 << 20


class SandboxCrashed(Exception):
    """The sandboxed process died or broke the protocol; the session restarts it."""


class SandboxTimedOut(SandboxCrashed):
    """The sandboxed process did not answer in time and was killed."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 3072
    cpu_seconds: int = 1800
    processes: int = 64
    file_size_mb: int = 64
    open_files: int = 256
    output_kb: int = 64
    scratch_mb: int = 256


@dataclass(frozen=True)
class SandboxConfig:
    mode: str = "auto"
    limits: Limits = field(default_factory=Limits)
    data_dir: Path | None = None  # MNIST files the student may see (never the test labels)
    slot: int = 0

    @classmethod
    def from_env(cls, **overrides: Any) -> SandboxConfig:
        mode = os.environ.get("GRADER_SANDBOX", "auto").strip().lower() or "auto"
        if mode not in MODES:
            raise GraderError(f"GRADER_SANDBOX must be one of {', '.join(MODES)}, not {mode!r}")
        return cls(mode=mode, **overrides)


# --- what this machine offers -------------------------------------------------------------


@functools.cache
def available_layers() -> frozenset[str]:
    """Probe, once per process, which layers work here."""
    found = {"rlimits"}
    if _bwrap_works():
        found.add("namespaces")
    if os.geteuid() == 0 and shutil.which("setpriv"):
        found.add("uid")
    if _cgroup_dirs() is not None:
        found.add("cgroup")
    if _seccomp_works():
        found.add("seccomp")
    return frozenset(found)


def plan_layers(mode: str) -> tuple[list[str], list[str]]:
    """The layers to use and the ones missing, or GraderError in strict mode."""
    if mode == "off":
        return [], list(ALL_LAYERS)
    present = available_layers()
    used = [layer for layer in ALL_LAYERS if layer in present]
    missing = [layer for layer in ALL_LAYERS if layer not in present]
    if mode == "strict" and missing:
        raise GraderError(
            f"GRADER_SANDBOX=strict but these sandbox layers are missing here: "
            f"{', '.join(missing)} (install bubblewrap and run as root on Linux with cgroup v1, "
            f"or set GRADER_SANDBOX=auto)"
        )
    return used, missing


def _bwrap_works() -> bool:
    if not shutil.which("bwrap"):
        return False
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _seccomp_works() -> bool:
    code = "from grader.inside.limits import install_seccomp; install_seccomp()"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _cgroup_dirs() -> dict[str, Path] | None:
    """Writable cgroup v1 folders for the memory and pids controllers, or None."""
    roots = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in ("memory", "pids"):
            if controller in controllers.split(","):
                roots[controller] = Path("/sys/fs/cgroup", controller) / path.lstrip("/")
    if set(roots) != {"memory", "pids"}:
        return None
    if not all(os.access(root, os.W_OK) for root in roots.values()):
        return None
    return roots


# --- parallel slots -----------------------------------------------------------------------


@contextmanager
def slot(limit: int = 128) -> Iterator[int]:
    """Claim a free slot number (its own uid and cgroup) for as long as the block runs.

    A lock file per slot works across worker processes and Dask workers alike, and the kernel
    releases the lock if the worker dies.
    """
    folder = Path(tempfile.gettempdir()) / "backprop-grader-slots"
    folder.mkdir(exist_ok=True)
    for number in range(limit):
        handle = open(folder / f"{number}.lock", "w")  # noqa: SIM115 - held while in use
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield number
        finally:
            handle.close()
        return
    raise GraderError(f"all {limit} sandbox slots are busy; lower --jobs")


# --- the sandbox --------------------------------------------------------------------------


class Sandbox:
    """One sandboxed runtime process serving many requests (no start-up cost per test)."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.layers, self.missing = plan_layers(config.mode)
        self.uid = BASE_UID + config.slot if "uid" in self.layers else None
        self._process: subprocess.Popen | None = None
        self._scratch: Path | None = None
        self._cgroups: list[Path] = []
        self._buffer = b""
        self._output = bytearray()
        self._output_dropped = 0
        self._drainers: list[threading.Thread] = []

    # -- lifecycle --
    def start(self, *, timeout: float = 60) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="grader-scratch-"))
        if self.uid is not None:
            os.chown(self._scratch, self.uid, self.uid)
        self._cgroups = self._make_cgroups() if "cgroup" in self.layers else []
        req_read, self._req_write = os.pipe()
        self._resp_read, resp_write = os.pipe()
        config = {
            "limits": self._rlimits() if "rlimits" in self.layers else {},
            "seccomp": "seccomp" in self.layers,
            "data_dir": self._inside_data_dir(),
            "fds": [req_read, resp_write],
        }
        self._process = subprocess.Popen(
            self._command(json.dumps(config)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(req_read, resp_write),
            env=self._environment(),
            cwd=self._scratch,
            start_new_session=True,
            preexec_fn=self._join_cgroups if self._cgroups else None,  # noqa: PLW1509
        )
        os.close(req_read)
        os.close(resp_write)
        self._start_drain(self._process.stdout)
        hello = self._receive(deadline=time.monotonic() + timeout)
        if not hello.get("ready"):
            raise SandboxCrashed(f"the sandbox did not start: {hello}")

    def close(self) -> None:
        """Kill every process of this sandbox and remove its scratch folder and cgroups."""
        process, self._process = self._process, None
        if process is not None:
            _kill_group(process.pid)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for fd in (self._req_write, self._resp_read):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._kill_leftovers()
        for thread in self._drainers:
            thread.join(timeout=5)
        self._drainers = []
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --
    def request(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send one request and wait for its answer; kill the sandbox when it is late."""
        if self._process is None:
            raise SandboxCrashed("the sandbox is not running")
        try:
            _write_all(self._req_write, wire.dumps(message))
        except (BrokenPipeError, OSError) as exc:
            raise SandboxCrashed(f"the sandboxed process is gone ({exc})") from None
        deadline = time.monotonic() + timeout + 2.0  # the inside alarm gets the first chance
        try:
            return self._receive(deadline=deadline)
        except SandboxCrashed:
            self.close()
            raise

    def output(self) -> str:
        """What the student's code printed (truncated to the configured size)."""
        text = bytes(self._output).decode("utf-8", errors="replace")
        if self._output_dropped:
            text += f"\n[… {self._output_dropped} more bytes of output not kept]"
        return text

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- internals --
    def _receive(self, *, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimedOut("no answer before the time limit")
            with selectors.DefaultSelector() as selector:
                selector.register(self._resp_read, selectors.EVENT_READ)
                if not selector.select(timeout=min(remaining, 1.0)):
                    if self._process is not None and self._process.poll() is not None:
                        raise SandboxCrashed(self._death_note())
                    continue
            chunk = os.read(self._resp_read, 1 << 20)
            if not chunk:
                raise SandboxCrashed(self._death_note())
            self._buffer += chunk
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                raise SandboxCrashed("the sandbox sent a message larger than allowed")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return wire.loads(line)
        except wire.WireError as exc:
            raise SandboxCrashed(f"the sandbox broke the protocol: {exc}") from None

    def _death_note(self) -> str:
        if self._process is None:
            return "the sandboxed process is gone"
        try:
            code = self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the sandboxed process closed its channel"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals else str(-code)
            return f"the sandboxed process was killed by {name}"
        return f"the sandboxed process exited with status {code}"

    def _start_drain(self, stream) -> None:
        limit = self.config.limits.output_kb * 1024

        def drain() -> None:
            for chunk in iter(lambda: stream.read1(65536), b""):
                room = limit - len(self._output)
                self._output += chunk[: max(room, 0)]
                self._output_dropped += max(len(chunk) - max(room, 0), 0)
            stream.close()

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        self._drainers.append(thread)

    def _command(self, config_json: str) -> list[str]:
        bootstrap = (
            "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "from inside.runtime import main; main(sys.argv[3:])"
        )
        if "namespaces" not in self.layers:
            python = [sys.executable, "-I", "-c", bootstrap, str(INSIDE_PACKAGE.parent)]
            command = python + [_numpy_site(), config_json]
            return self._identity() + command
        python_exe, mounts = _python_mounts()
        command = self._bwrap_args(mounts)
        command += self._identity()
        command += [python_exe, "-I", "-c", bootstrap, "/sandbox", "/site", config_json]
        return command

    def _identity(self) -> list[str]:
        if self.uid is None:
            return []
        return [
            "setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
        ]

    def _bwrap_args(self, mounts: list[tuple[str, str]]) -> list[str]:
        scratch_mb = self.config.limits.scratch_mb
        args = [
            "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(scratch_mb << 20), "--tmpfs", "/tmp",
            "--size", str(scratch_mb << 20), "--tmpfs", "/dev/shm",
            "--bind", str(self._scratch), "/scratch", "--chdir", "/scratch",
            "--perms", "0755", "--dir", "/sandbox",  # bwrap makes parents 0700 otherwise
            "--ro-bind", str(INSIDE_PACKAGE), "/sandbox/inside",
        ]
        if Path("/etc/ld.so.cache").exists():
            args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        for source, target in mounts:
            args += ["--ro-bind", source, target]
        for hidden in _grader_copies_in(Path(_numpy_site())):
            args += ["--tmpfs", "/site/" + hidden]
        if self.config.data_dir is not None:
            args += ["--ro-bind", str(self.config.data_dir), "/data"]
        for key, value in self._environment().items():
            args += ["--setenv", key, value]
        return args + ["--"]

    def _inside_data_dir(self) -> str | None:
        if self.config.data_dir is None:
            return None
        return "/data" if "namespaces" in self.layers else str(self.config.data_dir)

    def _environment(self) -> dict[str, str]:
        home = "/scratch" if "namespaces" in self.layers else str(self._scratch)
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": "/tmp" if "namespaces" in self.layers else home,
            "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp" if "namespaces" in self.layers else home,
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def _rlimits(self) -> dict[str, int]:
        limits = self.config.limits
        rlimits = {
            "address_space_mb": limits.memory_mb,
            "cpu_seconds": limits.cpu_seconds,
            "file_size_mb": limits.file_size_mb,
            "open_files": limits.open_files,
        }
        if self.uid is not None:  # RLIMIT_NPROC counts every process of the uid: ours alone
            rlimits["processes"] = limits.processes
        return rlimits

    def _make_cgroups(self) -> list[Path]:
        roots = _cgroup_dirs()
        if roots is None:
            return []
        name = f"backprop-grader-{os.getpid()}-{self.config.slot}-{id(self)}"
        memory, pids = roots["memory"] / name, roots["pids"] / name
        for folder in (memory, pids):
            folder.mkdir(exist_ok=True)
        limit = str(self.config.limits.memory_mb << 20)
        (memory / "memory.limit_in_bytes").write_text(limit)
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists():
            try:
                swap.write_text(limit)
            except OSError:
                pass
        (pids / "pids.max").write_text(str(self.config.limits.processes))
        return [memory, pids]

    def _join_cgroups(self) -> None:  # runs in the child between fork and exec
        for folder in self._cgroups:
            with open(folder / "cgroup.procs", "w") as handle:
                handle.write(str(os.getpid()))

    def _kill_leftovers(self) -> None:
        """Kill whatever escaped the process group (``setsid`` children) and drop cgroups."""
        for _ in range(50):
            pids = set()
            for folder in self._cgroups:
                pids |= _read_pids(folder / "cgroup.procs")
            if self.uid is not None:
                pids |= _pids_of_uid(self.uid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        for folder in self._cgroups:
            try:
                folder.rmdir()
            except OSError:
                pass
        self._cgroups = []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_pids(path: Path) -> set[int]:
    try:
        return {int(line) for line in path.read_text().split()}
    except OSError:
        return set()


def _pids_of_uid(uid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


@functools.cache
def _numpy_site() -> str:
    import numpy

    return str(Path(numpy.__file__).resolve().parent.parent)


@functools.cache
def _python_mounts() -> tuple[str, list[tuple[str, str]]]:
    """Where the interpreter and NumPy appear inside: the interpreter's prefix at /python (unless
    it already lives under /usr) and NumPy's site-packages at /site."""
    executable = Path(sys.executable).resolve()
    prefix = Path(sys.base_prefix).resolve()
    mounts = [(_numpy_site(), "/site")]
    if str(prefix).startswith("/usr/"):
        return str(executable), mounts
    inside = Path("/python") / executable.relative_to(prefix)
    return str(inside), [(str(prefix), "/python"), *mounts]


def _grader_copies_in(site: Path) -> list[str]:
    """A non-editable install puts the whole grader into site-packages: mask it inside."""
    return [name for name in ("grader",) if (site / name).is_dir()]
