"""One sandboxed runtime process that serves many requests: how it starts (fresh, or forked
from a zygote of ``grader.run.zygote``), how a request and its answer travel, and how every
process of it is killed and every trace of it removed.

The walls it gets come from ``grader.run.layers`` (namespaces, uid, cgroup, rlimits, seccomp).
Behind a uid or a PID namespace of its own, the runtime also kills whatever student code left
running after each request (fork bombs, ``setsid`` daemons), and every answer carries its
request's number, so bytes student code writes to the channel break nothing but its sandbox.
"""

from __future__ import annotations

import fcntl
import functools
import io
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
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from grader.core import paths
from grader.core.errors import GraderError
from grader.core.paths import private_dir
from grader.run import bubblewrap, sealed
from grader.run.inside import wire
from grader.run.layers import SandboxConfig, cgroup_dirs, plan_layers

if TYPE_CHECKING:  # (the zygote is a sandbox itself: its module imports this one)
    from grader.run.zygote import Zygote, ZygoteChild

INSIDE_PACKAGE = Path(__file__).resolve().parent / "inside"
BASE_UID = 61000


class SandboxCrashed(Exception):
    """The sandboxed process died or broke the protocol; the session restarts it."""


class SandboxTimedOut(SandboxCrashed):
    """The sandboxed process did not answer in time and was killed."""


class ZygoteLost(SandboxCrashed):
    """The worker's zygote died under a child: the machine's fault, never the student's.

    Unless its memory cgroup counted a kill (then it is the student's out-of-memory, and no
    ZygoteLost). Where there is no such cgroup, ``machine_out_of_memory`` says whether the
    kernel's memory killer struck anywhere on the machine while the child ran: once proves
    nothing, the same request losing its zygote that way twice is the student's."""

    def __init__(self, message: str, *, machine_out_of_memory: bool = False):
        super().__init__(message)
        self.machine_out_of_memory = machine_out_of_memory


class Zygotes(Protocol):
    """Where a sandbox's zygote comes from and goes back to (``grader.run.zygote.ZygotePool``)."""

    def plan(self, layers: Iterable[str]) -> tuple[bool, str]: ...

    def take(self, config: SandboxConfig) -> Zygote: ...

    def give_back(self, zygote: Zygote, *, clean: bool) -> None: ...

    def failed(self, exc: BaseException) -> None: ...


# --- parallel slots -----------------------------------------------------------------------


SLOTS = 128


def claim_slot(limit: int = SLOTS) -> tuple[int, IO[str]]:
    """The first free slot number and its locked lock file (closing the file frees the slot).

    A lock file per slot works across worker processes, Dask workers and test runs alike, and
    the kernel releases the lock if its holder dies.
    """
    folder = private_dir(state_dir() / "slots")
    for number in range(limit):
        handle = open(folder / f"{number}.lock", "w")  # noqa: SIM115 - held while in use
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return number, handle
    raise GraderError(f"all {limit} sandbox slots are busy; lower --jobs")


def state_dir() -> Path:
    """Where this user's grader keeps its locks: never a fixed shared ``/tmp`` path, which
    another user could create first. Root's slots are machine-wide (each slot is a uid that
    every root grader on the machine must agree on), so root uses ``/run``."""
    if os.geteuid() == 0 and os.access("/run", os.W_OK):
        return private_dir(Path("/run/backprop-grader"))
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and _owned_private(Path(runtime)):
        return private_dir(Path(runtime) / "backprop-grader")
    return private_dir(paths.cache_dir("run"))


def _owned_private(path: Path) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


# --- the sandbox --------------------------------------------------------------------------


class Sandbox:
    """One sandboxed runtime process serving many requests (no start-up cost per test)."""

    def __init__(self, config: SandboxConfig, *, pool: Zygotes | None = None):
        self.config = config
        self.pool = pool  # where its zygote comes from; None: a fresh sandbox
        self.layers, self.missing = plan_layers(config.mode,
                                                allow_unisolated=config.allow_unisolated)
        self.uid: int | None = None  # claimed with a slot by ``start``
        self._slot: IO[str] | None = None
        # its own process, or a zygote's child (``_start_child``, with ``_zygote`` set)
        self._process: subprocess.Popen[bytes] | ZygoteChild | None = None
        self._scratch: Path | None = None  # on the host, where there is no namespace
        self._req_write: int | None = None
        self._resp_read: int | None = None
        self._cgroups: list[Path] = []
        self._buffer = bytearray()
        self._sent = 0  # requests sent: each answer must carry its request's number
        self._output = bytearray()
        self._output_dropped = 0
        self._drainers: list[threading.Thread] = []
        self._zygote: Zygote | None = None  # the zygote this sandbox is a child of, if any
        self._oom_before = 0
        self._machine_oom_before = 0

    # -- lifecycle --
    def start(self, *, timeout: float = 60) -> None:
        """Start the runtime and wait for its hello; on any failure nothing is left behind."""
        try:
            self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> None:
        if self.pool is not None and self.pool.plan(self.layers)[0]:
            try:
                zygote = self.pool.take(self.config)
            except (SandboxCrashed, OSError) as exc:
                self.pool.failed(exc)  # this process goes on with a fresh sandbox each
            else:
                self._start_child(zygote, timeout)
                return
        number, self._slot = claim_slot()
        if "uid" in self.layers:
            self.uid = BASE_UID + number
            self._kill_leftovers()  # of a grader killed before it could clean up
        if "namespaces" not in self.layers:  # (inside a namespace it is a size-capped tmpfs)
            _remove_stale_scratch()
            self._scratch = Path(tempfile.mkdtemp(prefix=f"grader-scratch-{os.getpid()}-"))
            if self.uid is not None:
                os.chown(self._scratch, self.uid, self.uid)
        self._cgroups = self._make_cgroups(number) if "cgroup" in self.layers else []
        req_read, self._req_write = os.pipe()
        self._resp_read, resp_write = os.pipe()
        data = open_data(self.config.data_dir)
        config = {
            "limits": self._rlimits() if "rlimits" in self.layers else {},
            "seccomp": "seccomp" in self.layers,
            "data": data,
            "fds": [req_read, resp_write],
            # stray processes can be told apart only by a uid or a PID namespace of their own
            "reap": "uid" in self.layers or "namespaces" in self.layers,
        }
        try:
            self._process = subprocess.Popen(
                joining(self._cgroups, self._command(json.dumps(config))),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(req_read, resp_write, *data.values()),
                env=self._environment(),
                cwd=self._scratch,
                start_new_session=True,
            )
        finally:
            for fd in (req_read, resp_write, *data.values()):
                os.close(fd)
        stdout = self._process.stdout
        assert isinstance(stdout, io.BufferedReader)  # (stdout=PIPE, buffered by default)
        self._start_drain(stdout)
        self._wait_for_hello(timeout)

    def _wait_for_hello(self, timeout: float) -> None:
        hello = self._receive(deadline=time.monotonic() + timeout, number=0,
                              limit=wire.REPLY_BYTES["hello"])
        if not hello.get("ready"):
            raise SandboxCrashed(f"the sandbox did not start: {hello}")

    def _start_child(self, zygote: Zygote, timeout: float) -> None:
        """Fork this sandbox's runtime from ``zygote``: fresh namespaces, scratch and limits,
        its own pipes and MNIST descriptors (sent over the zygote's socket, then closed here)."""
        self._zygote, self.uid = zygote, zygote.uid
        self._oom_before = zygote.oom_kills()
        self._machine_oom_before = machine_oom_kills()
        req_read, self._req_write = os.pipe()
        self._resp_read, resp_write = os.pipe()
        out_read, out_write = os.pipe()
        data = open_data(self.config.data_dir)
        fds = [req_read, resp_write, out_write, *data.values()]
        request = {
            "op": "spawn", "uid": self.uid, "env": self._environment(),
            "scratch_mb": self.config.limits.scratch_mb,
            # the cores this worker may run on (its own one in a pool: ``batch``), as a fresh
            # sandbox inherits them: the zygote's fork, and the code the worker waits on, run
            # where the worker does and share its cache
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
            "runtime": {"limits": self._rlimits() if "rlimits" in self.layers else {},
                        "seccomp": "seccomp" in self.layers, "reap": True},
            "fds": {"request": 0, "response": 1, "output": 2,
                    "data": {name: 3 + i for i, name in enumerate(data)}},
        }
        try:
            self._start_drain(os.fdopen(out_read, "rb"))
            self._process = zygote.spawn(request, fds)
        finally:
            for fd in fds:
                os.close(fd)
        self._wait_for_hello(timeout)

    def close(self) -> None:
        """Kill every process of this sandbox and remove its scratch folder and cgroups; the
        slot (and so the uid) is freed last, once nothing of it runs any more."""
        process, self._process = self._process, None
        if isinstance(process, subprocess.Popen):
            _kill_group(process.pid)
        elif process is not None:  # a zygote's child: the zygote kills it
            process.kill()
        if process is not None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for fd in (self._req_write, self._resp_read):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._req_write = self._resp_read = None
        self._kill_leftovers()
        self._remove_cgroups()
        for thread in self._drainers:
            thread.join(timeout=5)
        self._drainers = []
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if self._slot is not None:
            self._slot.close()
            self._slot = None
        zygote, self._zygote = self._zygote, None
        if zygote is not None and self.pool is not None:
            child = _as_child(process)
            self.pool.give_back(zygote, clean=child is not None and child.ended)

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --
    def request(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send one request and wait for its answer; kill the sandbox when it is late."""
        if self._process is None or self._req_write is None:
            raise SandboxCrashed("the sandbox is not running")
        self._sent += 1
        line = wire.frame(self._sent, message)
        try:
            _write_all(self._req_write, line)
        except (BrokenPipeError, OSError) as exc:
            self.close()
            raise SandboxCrashed(f"the sandboxed process is gone ({exc})") from None
        deadline = time.monotonic() + timeout + 2.0  # the inside alarm gets the first chance
        try:
            return self._receive(deadline=deadline, number=self._sent,
                                 limit=wire.reply_limit(message.get("op"), len(line)))
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

    @property
    def zygote_lost(self) -> bool:
        """Whether this sandbox stopped because its zygote did (never the student's doing)."""
        child = _as_child(self._process)
        return self._zygote is not None and child is not None and child.lost

    # -- internals --
    def _receive(self, *, deadline: float, number: int, limit: int) -> dict[str, Any]:
        """The answer to request ``number``, at most ``limit`` bytes long.

        Student code can write to the channel too, so the grader's cost of a line is bounded
        before it is read whole: a line that answers another request (or none) is refused from
        its first bytes, one longer than its limit as soon as it is, and its JSON is measured
        before it is decoded (``wire.unframe``)."""
        end = self._buffer.find(b"\n")
        while end < 0:
            self._check_partial(number, limit)
            chunk = self._read_chunk(deadline)
            newline = chunk.find(b"\n")
            end = len(self._buffer) + newline if newline >= 0 else -1
            self._buffer += chunk  # a bytearray: growing it in place stays linear
        self._check_partial(number, limit, end)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            return wire.unframe(line, limit=limit)[1]
        except wire.WireError as exc:
            raise SandboxCrashed(f"the sandbox broke the protocol: {exc}") from None

    def _check_partial(self, number: int, limit: int, end: int = -1) -> None:
        """Refuse the line being received as soon as its first bytes or its length break the
        protocol (``end``: where it ends, once known)."""
        length = len(self._buffer) if end < 0 else end
        if end >= 0 or length >= wire.HEADER_BYTES:
            found = wire.number_of(self._buffer[: min(length, wire.HEADER_BYTES)])
            if found is None:
                raise SandboxCrashed("the sandbox broke the protocol: a line without its "
                                     "request's number (written to the channel by student code)")
            if found != number:
                # written by the student's code straight to the channel: nothing after it can
                # be trusted to answer the right request
                raise SandboxCrashed("the sandbox broke the protocol: an answer out of turn")
        if length > limit + wire.HEADER_BYTES:
            raise SandboxCrashed(f"the sandbox broke the protocol: an answer longer than the "
                                 f"{limit} bytes allowed for this request")

    def _read_chunk(self, deadline: float) -> bytes:
        """The next bytes of the channel (at most a megabyte), waiting until ``deadline``."""
        channel = self._resp_read
        assert channel is not None  # (the pipes live as long as the process: ``close``)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimedOut("no answer before the time limit")
            with selectors.DefaultSelector() as selector:
                selector.register(channel, selectors.EVENT_READ)
                if selector.select(timeout=min(remaining, 1.0)):
                    break
            if self._process is not None and self._process.poll() is not None:
                raise self._crash()
        chunk = os.read(channel, 1 << 20)
        if not chunk:
            raise self._crash()
        return chunk

    def _crash(self) -> SandboxCrashed:
        note = self._death_note()
        child = _as_child(self._process)
        if self._zygote is not None and child is not None and child.lost:
            if self._out_of_memory():  # the kill in its cgroup was the student's memory's
                return SandboxCrashed(note)
            return ZygoteLost(f"the worker's zygote stopped ({note})", machine_out_of_memory=(
                machine_oom_kills() > self._machine_oom_before))
        return SandboxCrashed(note)

    def _death_note(self) -> str:
        if self._process is None:
            return "the sandboxed process is gone"
        try:
            code = self._process.wait(timeout=2 if self._zygote is None else 5)
        except subprocess.TimeoutExpired:
            return "the sandboxed process closed its channel"
        if self._out_of_memory():
            return (f"the sandboxed process ran out of memory (the limit is "
                    f"{self.config.limits.memory_mb} MB) and was killed")
        if code > 128 and "namespaces" in self.layers:
            code = -(code - 128)  # bubblewrap exits with 128 + the signal that killed its child
        if code < 0:
            return f"the sandboxed process was killed by {_signal_name(-code)}"
        return f"the sandboxed process exited with status {code}"

    def _out_of_memory(self) -> bool:
        """Whether the kernel had to kill in this sandbox's memory cgroup (a zygote's child
        shares its zygote's: only kills since the child started count)."""
        if self._zygote is not None:
            return self._zygote.oom_kills() > self._oom_before
        return self.oom_kills() > 0

    def oom_kills(self) -> int:
        total = 0
        for folder in self._cgroups:
            try:
                control = (folder / "memory.oom_control").read_text()
            except OSError:
                continue
            counts = dict(line.split() for line in control.splitlines() if len(line.split()) == 2)
            total += int(counts.get("oom_kill", 0))
        return total

    def _start_drain(self, stream: io.BufferedReader) -> None:
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
        python_exe, mounts = python_mounts()
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
        bwrap = bubblewrap.find()
        if bwrap is None:  # (planned with one: ``layers.plan_layers``)
            raise GraderError("bwrap is gone since the sandbox's layers were planned")
        args = [
            bwrap.path, *self._capabilities(),
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            # tmpfs, not host folders: capped in size (and charged to the memory cgroup), so a
            # student cannot fill the grading machine's disk; 1777, or uid 61000 cannot write
            "--perms", "1777", "--size", str(scratch_mb << 20), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(scratch_mb << 20), "--tmpfs", "/dev/shm",
            "--perms", "1777", "--size", str(scratch_mb << 20), "--tmpfs", "/scratch",
            "--chdir", "/scratch",
            "--perms", "0755", "--dir", "/sandbox",  # bwrap makes parents 0700 otherwise
            "--ro-bind", str(INSIDE_PACKAGE), "/sandbox/inside",
        ]
        if Path("/etc/ld.so.cache").exists():
            args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        for source, target in mounts:
            for parent in reversed(Path(target).parents[:-1]):  # bwrap would make them 0700
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", source, target]
        for hidden in _grader_copies_in(Path(_numpy_site())):
            args += ["--tmpfs", "/site/" + hidden]
        for key, value in self._environment().items():
            args += ["--setenv", key, value]
        return args + ["--"]

    def _capabilities(self) -> list[str]:
        """bubblewrap's options for the capabilities inside (as root it keeps them all by
        default: the runtime's ``setpriv`` needs CAP_SETUID and CAP_SETGID)."""
        return []

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

    def _make_cgroups(self, number: int) -> list[Path]:
        roots = cgroup_dirs()
        if roots is None:
            return []
        _remove_stale_cgroups(roots.values())
        name = f"backprop-grader-{os.getpid()}-{number}-{id(self)}"
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

    def _kill_leftovers(self) -> None:
        """Kill whatever escaped the process group (``setsid`` children) and drop cgroups."""
        for _ in range(200):  # about a second at most; usually one round or two
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
            time.sleep(0.005)

    def _remove_cgroups(self) -> None:
        for folder in self._cgroups:
            try:
                folder.rmdir()
            except OSError:
                pass
        self._cgroups = []


# A sandbox's process joins its cgroups before it runs anything: ``sh`` writes its own pid into
# each (``$1`` of them, then the command) and then becomes the command. Joining can wait ~15 ms
# for the kernel (an RCU grace period): in a ``preexec_fn`` the grader would wait with it (at
# the serial start of every batch, where it now prepares the reference's answers meanwhile),
# and a ``preexec_fn`` is not safe in a process with threads, as the grader's are.
JOIN_THEN_RUN = ('n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs" || exit 71; '
                 'shift; n=$((n - 1)); done; exec "$@"')


def joining(cgroups: list[Path], command: list[str]) -> list[str]:
    """``command``, run inside ``cgroups`` from its first instruction on."""
    if not cgroups:
        return command
    return ["/bin/sh", "-c", JOIN_THEN_RUN, "sh", str(len(cgroups)), *map(str, cgroups),
            *command]


DATA_FILES = ("train_images", "train_labels", "test_images")


def open_data(folder: Path | sealed.Arrays | None) -> dict[str, int]:
    """The MNIST files the student may read, as read-only descriptors of sealed in-memory
    copies (``grader.run.sealed``): they reach the sandbox in every mode, whatever uid it runs as
    and however private the instructor's cache folder is, and none of them leads to a file on
    disk the student could write. (The test labels are not among them.) ``sealed.Arrays``:
    arrays made in memory for this submission (its disguised MNIST)."""
    if folder is None:
        return {}
    if isinstance(folder, sealed.Arrays):
        return {name: folder.open_copy(name) for name in DATA_FILES if name in folder}
    opened: dict[str, int] = {}
    try:
        for name in DATA_FILES:
            opened[name] = sealed.open_readonly(folder / f"{name}.npy")
    except OSError as exc:
        for fd in opened.values():
            os.close(fd)
        raise GraderError(f"the grader cannot read the MNIST file {exc.filename}: "
                          f"{exc.strerror}") from None
    return opened


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # (``number in signal.Signals`` raises TypeError before Python 3.12)
        return f"signal {number}"


def _as_child(process: subprocess.Popen[bytes] | ZygoteChild | None) -> ZygoteChild | None:
    """``process`` when it is a zygote's child, else None."""
    return None if isinstance(process, subprocess.Popen) else process


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_stale_cgroups(roots: Iterable[Path]) -> None:
    """Empty cgroups of grader processes that died before their clean-up (kill -9)."""
    for root in roots:
        for folder in root.glob("backprop-grader-*-*-*"):
            owner = folder.name.split("-")[2]
            if owner.isdigit() and not Path("/proc", owner).exists():
                try:
                    folder.rmdir()
                except OSError:
                    pass


def _remove_stale_scratch() -> None:
    """Scratch folders of grader processes that died before their clean-up (kill -9)."""
    for folder in Path(tempfile.gettempdir()).glob("grader-scratch-*-*"):
        owner = folder.name.split("-")[2]
        if owner.isdigit() and not Path("/proc", owner).exists():
            shutil.rmtree(folder, ignore_errors=True)


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
def python_mounts() -> tuple[str, list[tuple[str, str]]]:
    """Where the interpreter and NumPy appear inside: the interpreter's prefix at its own path
    (its RUNPATH and compiled-in prefix name that path: pyenv, conda and uv builds find their
    own ``libpython`` there, not whatever ``/usr/lib`` has) and NumPy's site-packages at /site."""
    executable = Path(sys.executable).resolve()
    prefix = Path(sys.base_prefix).resolve()
    mounts = [(_numpy_site(), "/site")]
    if prefix == Path("/usr") or str(prefix).startswith("/usr/"):
        return str(executable), mounts
    return str(executable), [(str(prefix), str(prefix)), *mounts]


def _grader_copies_in(site: Path) -> list[str]:
    """A non-editable install puts the whole grader into site-packages: mask it inside."""
    return [name for name in ("grader",) if (site / name).is_dir()]


def machine_oom_kills() -> int:
    """How many processes the kernel's memory killer has killed on this machine (0 where the
    kernel does not say: before 4.13)."""
    try:
        with open("/proc/vmstat") as handle:
            for line in handle:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
