"""The pre-warmed zygote and the pool that keeps each process's zygotes.

Where the namespaces layer works, a sandbox is a child of a ``Zygote`` (see ``inside/zygote.py``):
one bubblewrap sandbox per worker pays for Python and NumPy once and forks each submission into
fresh PID, mount and IPC namespaces with every layer applied to the child alone, so a
submission costs a fork instead of an interpreter. ``GRADER_ZYGOTE=off`` (and a machine where
no zygote starts) gives each submission a sandbox of its own.

A ``ZygotePool`` holds one process's zygotes: idle ones, ones still booting, and whether one
failed here. It is an object a sandbox is given (``Sandbox(config, pool=...)``), so a test can
make one and throw it away; ``process_pool`` is the one a process's sandboxes share by default,
and a forked process gets its own (the zygotes it inherited are its parent's).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import multiprocessing.util
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from grader.core.errors import GraderError
from grader.run.layers import SandboxConfig, describe_layers, plan_layers, zygote_wanted
from grader.run.sandbox import (
    BASE_UID,
    Sandbox,
    SandboxCrashed,
    ZygoteLost,
    claim_slot,
    joining,
    python_mounts,
)

MAX_IDLE = 2  # idle zygotes a process keeps (more after a pool's lent zygotes came back)


class Zygote(Sandbox):
    """One sandbox per worker whose process is ``inside.zygote``: it imports Python, NumPy and
    the runtime once and forks a child per submission (``Sandbox`` in child mode talks to that
    child). It holds the slot, the uid and the cgroups; it never runs student code.

    Its capabilities are only those a child needs to build its walls before dropping them all:
    in its user namespace where the grader is an ordinary user, CAP_SYS_ADMIN (namespaces and
    mounts); as root, that and CAP_SETUID/SETGID/SETPCAP, so that each child can become the
    slot's unprivileged uid, which cannot signal or trace the root zygote, and CAP_SYS_RESOURCE,
    so that its memory killer score cannot be lowered."""

    def __init__(self, config: SandboxConfig):
        super().__init__(config)
        self._control: socket.socket | None = None
        self._log: IO[bytes] | None = None
        self.child: ZygoteChild | None = None
        self._oom_seen = 0
        # lent by the batch's process to this pool worker (``ZygotePool.borrow``): its process is
        # the lender's child, so the lender alone waits for it and decides when it ends
        self.borrowed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if isinstance(self._process, subprocess.Popen) else None

    def _start(self, timeout: float) -> None:
        self._launch()
        self._await_ready(time.monotonic() + timeout)

    def _launch(self) -> None:
        """Start the zygote's process without waiting for it (``_await_ready`` does)."""
        number, self._slot = claim_slot()
        if "uid" in self.layers:
            self.uid = BASE_UID + number
            self._kill_leftovers()
        self._cgroups = self._make_cgroups(number) if "cgroup" in self.layers else []
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        python_exe, mounts = python_mounts()
        bootstrap = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
                     "from inside.zygote import main; main(sys.argv[3:])")
        command = [*self._bwrap_args(mounts), python_exe, "-I", "-c", bootstrap, "/sandbox",
                   "/site", json.dumps({"control": theirs.fileno()})]
        # Only grader code writes there: a file, not a pipe with a thread to drain it (an idle
        # zygote's thread would keep its worker from forking the next pool)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the zygote
        try:
            self._process = subprocess.Popen(
                joining(self._cgroups, command), stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, pass_fds=(theirs.fileno(),), env=self._environment(),
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._control = ours

    def _await_ready(self, deadline: float) -> None:
        hello = self.receive(deadline)
        if not hello or not hello.get("ready"):
            why = (hello or {}).get("error") or hello or self.log()
            raise SandboxCrashed(f"the zygote did not start: {why}")

    @property
    def alive(self) -> bool:
        """Running and idle: nothing waits on its channel (an answer nobody asked for, or the
        end a dead zygote leaves). A borrowed zygote is not this process's child, so only its
        channel can tell."""
        if self._control is None or (not self.borrowed and not super().alive):
            return False
        return not select.select([self._control], [], [], 0)[0]

    def idle(self, timeout: float = 5.0) -> bool:
        """Alive, and no child running, in the zygote's own words."""
        control = self._control
        if control is None or not self.alive:
            return False
        try:
            control.send(b'{"op": "ping"}')
            answer = self.receive(time.monotonic() + timeout)
        except (OSError, ZygoteLost):
            return False
        return answer == {"idle": True}

    def log(self) -> str:
        """What the zygote printed (its own errors; never student output), the last 2 kB."""
        if self._log is None:
            return ""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(self._log.tell() - 2048, 0))
        return self._log.read().decode(errors="replace")

    def _capabilities(self) -> list[str]:
        wanted = ["CAP_SYS_ADMIN"]
        if os.geteuid() == 0:
            # (CAP_SYS_RESOURCE: a child's memory killer score of 1000 becomes its floor)
            wanted += ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_SYS_RESOURCE"]
            prefix = ["--cap-drop", "ALL"]
        else:
            prefix = ["--unshare-user", "--cap-drop", "ALL"]
        return prefix + [arg for cap in wanted for arg in ("--cap-add", cap)]

    def spawn(self, request: dict[str, Any], fds: list[int]) -> ZygoteChild:
        """A new child with ``fds`` as its descriptors (the caller closes its own copies)."""
        if self._control is None or self.child is not None:
            raise ZygoteLost("the zygote is not ready for a child")
        try:
            socket.send_fds(self._control, [json.dumps(request).encode()], fds)
        except OSError as exc:
            raise ZygoteLost(f"the zygote is gone ({exc})") from None
        answer = self.receive(time.monotonic() + 30)
        if not answer or not answer.get("spawned"):
            error = answer.get("error") if answer else "no answer"
            raise SandboxCrashed(f"the zygote could not start a child: {error}")
        self.child = ZygoteChild(self)
        return self.child

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The zygote's next message, None if there is none by ``deadline``; ZygoteLost (and
        the zygote closed) when it is gone."""
        if self._control is None:
            raise ZygoteLost("the zygote is not running")
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([self._control], [], [], max(remaining, 0))
        if not ready:
            return None
        try:
            message = self._control.recv(1 << 16)
        except OSError:
            message = b""
        if not message:
            self.close()
            raise ZygoteLost("the zygote stopped")
        answer: dict[str, Any] = json.loads(message)  # (the zygote's own JSON objects)
        return answer

    def kill_child(self) -> None:
        try:
            if self._control is not None:
                self._control.send(b'{"op": "kill"}')
        except OSError:
            pass

    def oom_kills(self) -> int:
        """Kills in the zygote's memory cgroup; once it is closed (its cgroups gone with it),
        the last count, so that a child can still tell whether its zygote died of memory."""
        if self._cgroups:
            self._oom_seen = super().oom_kills()
        return self._oom_seen

    def close(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.close()
        self.oom_kills()  # (the last look, before the cgroups go)
        super().close()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def forget(self) -> None:
        """In a forked process: let go of the parent's zygote without touching it."""
        if self._control is not None:
            self._control.close()
        self._control = self._process = None


class ZygoteChild:
    """A zygote's child as ``Sandbox`` sees its process (Popen's poll, wait and returncode)."""

    def __init__(self, zygote: Zygote):
        self.zygote = zygote
        self.returncode: int | None = None
        self.lost = False  # the zygote died: nobody will say how the child ended

    @property
    def ended(self) -> bool:
        return self.returncode is not None and not self.lost

    def poll(self) -> int | None:
        if self.returncode is None:
            self._listen(time.monotonic())
        return self.returncode

    def wait(self, timeout: float) -> int:
        self._listen(time.monotonic() + timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired("zygote child", timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.zygote.kill_child()

    def _listen(self, deadline: float) -> None:
        while self.returncode is None:
            try:
                message = self.zygote.receive(deadline)
            except ZygoteLost:
                self.lost, self.returncode = True, -signal.SIGKILL
                return
            if message is None:
                return
            if "exited" in message:
                self.returncode = int(message["exited"])
                self.zygote.child = None


class ZygotePool:
    """The zygotes of one process: idle ones by the configuration they were started with,
    ones started by ``warm`` whose hello is not read yet, and why a zygote failed here, if one
    did (then this process's sandboxes start fresh). A forked process must not use (or kill)
    its parent's zygotes: each method first lets go of zygotes the pool's process did not
    start (``forget``)."""

    def __init__(self, *, keep_idle: int = MAX_IDLE) -> None:
        self.idle: list[Zygote] = []
        self.booting: list[Zygote] = []
        self.broken = ""  # why a zygote could not start in this process
        self.keep_idle = keep_idle
        self.owner = os.getpid()
        self._finalizer_for: int | None = None

    def plan(self, layers: Iterable[str]) -> tuple[bool, str]:
        """Whether this pool's sandboxes fork from a zygote, and that said in words."""
        wanted, why = zygote_wanted(layers)
        if wanted and self.broken:
            return False, f"a fresh sandbox per submission (the zygote failed: {self.broken})"
        return wanted, why

    def take(self, config: SandboxConfig) -> Zygote:
        """An idle zygote for ``config``, or a new one started now."""
        self._own()
        self._finish_booting()
        key = _zygote_key(config)
        while self.idle:
            zygote = self.idle.pop()
            if zygote.alive and _zygote_key(zygote.config) == key:
                return zygote
            zygote.close()
        zygote = Zygote(key)
        zygote.start()
        self._close_at_exit()
        return zygote

    def give_back(self, zygote: Zygote, *, clean: bool) -> None:
        """Keep a zygote whose child ended as it should; close one in any doubt."""
        if clean and zygote.alive and zygote.child is None and (
                zygote.borrowed or len(self.idle) < self.keep_idle):
            self.idle.append(zygote)
        else:
            zygote.close()

    def failed(self, exc: BaseException) -> None:
        """A zygote could not start: this process goes on with a fresh sandbox each."""
        if not self.broken:
            self.broken = str(exc)[:200]
            print(f"grader: the sandbox's zygote could not start ({exc}); each submission gets "
                  f"a fresh sandbox instead", file=sys.stderr)

    def warm(self, config: SandboxConfig, count: int) -> None:
        """Start, without waiting, the zygotes that give this process ``count`` idle ones for
        ``config``. A batch calls it first, so that Python and NumPy load inside them while it
        prepares the reference's answers; the first sandbox, or ``lend``, waits for them.
        Does nothing where submissions get a fresh sandbox each."""
        layers, _ = plan_layers(config.mode, allow_unisolated=config.allow_unisolated)
        if not self.plan(layers)[0]:
            return
        self._own()
        key = _zygote_key(config)
        have = sum(1 for z in self.idle + self.booting if _zygote_key(z.config) == key)
        for _ in range(count - have):
            zygote = Zygote(key)
            try:
                zygote._launch()
            except (SandboxCrashed, OSError, GraderError) as exc:
                zygote.close()
                if not isinstance(exc, GraderError):
                    self.failed(exc)
                return  # the first sandbox says what is wrong, or starts without a zygote
            self.booting.append(zygote)
        self._close_at_exit()

    def lend(self, config: SandboxConfig, count: int) -> ZygoteLoan | None:
        """Up to ``count`` ready zygotes for ``config`` for a pool of workers this process is
        about to fork, taken out of its idle ones; None when there are none."""
        self._own()
        self._finish_booting()
        key = _zygote_key(config)
        lent = [z for z in self.idle if _zygote_key(z.config) == key and z.alive][:count]
        if not lent:
            return None
        self.idle = [z for z in self.idle if z not in lent]
        return ZygoteLoan(lent, self)

    def borrow(self, loan: ZygoteLoan, number: int) -> None:
        """First thing in worker ``number`` (from 0), forked after ``lend``: that zygote of the
        loan becomes this worker's idle one; the others, and the lender's own, are let go of."""
        mine = loan.zygotes[number] if number < len(loan.zygotes) else None
        for zygote in self.idle + self.booting + loan.zygotes:
            if zygote is not mine:
                zygote.forget()
        self.idle = [mine] if mine is not None else []
        self.booting = []
        self.owner = os.getpid()
        if mine is not None:
            mine.borrowed = True

    def pids(self) -> set[int]:
        """The processes of the idle zygotes (bubblewrap's): alive on purpose."""
        return {z.pid for z in self.idle if z.pid is not None}

    def close(self) -> None:
        """Close every zygote this process started (a borrowed one is its lender's)."""
        if self.owner != os.getpid():
            return
        while self.booting:
            self.booting.pop().close()
        while self.idle:
            zygote = self.idle.pop()
            if zygote.borrowed:
                zygote.forget()  # the lender's to close
            else:
                zygote.close()

    def forget(self) -> None:
        """In a forked process: let go of the parent's zygotes without touching them."""
        for inherited in self.idle + self.booting:
            inherited.forget()
        self.idle, self.booting = [], []

    def _own(self) -> None:
        if self.owner != os.getpid():
            self.forget()
            self.owner = os.getpid()

    def _finish_booting(self, timeout: float = 60) -> None:
        """Wait for the zygotes ``warm`` started; each ready one becomes idle."""
        deadline = time.monotonic() + timeout
        while self.booting:
            zygote = self.booting.pop(0)
            try:
                zygote._await_ready(deadline)
            except (SandboxCrashed, OSError) as exc:
                zygote.close()
                self.failed(exc)
                continue
            self.idle.append(zygote)

    def _close_at_exit(self) -> None:
        if self._finalizer_for != os.getpid():
            # a pool's worker process ends without atexit: multiprocessing runs its finalizers
            self._finalizer_for = os.getpid()
            multiprocessing.util.Finalize(self, self.close, exitpriority=10)


@dataclass
class ZygoteLoan:
    """Idle zygotes of the batch's process, lent to the pool workers it forks: one each.

    Each worker then grades from the first submission on with Python and NumPy already loaded,
    and the zygotes outlive the pool: the lender keeps them for its next batch. The lender
    alone is their parent, so a borrower never waits for one; one it closes (a zygote that
    failed it) is found dead when the loan is settled."""

    zygotes: list[Zygote]
    lender: ZygotePool

    def settle(self, *, clean: bool) -> None:
        """In the lender, once the pool is gone: zygotes that say they have no child running
        are kept (``clean``: the pool ended normally), the others closed. A worker may have
        ended without closing its last sandbox: only the zygote knows, so it is asked."""
        for zygote in self.zygotes:
            if clean and zygote.idle():
                self.lender.idle.append(zygote)
            else:
                zygote.close()
        self.lender.keep_idle = max(MAX_IDLE, len(self.lender.idle))
        self.zygotes = []


_PROCESS_POOL: list[ZygotePool] = []  # this process's, made on first use


def process_pool() -> ZygotePool:
    """The pool this process's sandboxes share unless given another. A process forked from
    one that had a pool gets a new one, and lets go of the zygotes it inherited."""
    if _PROCESS_POOL and _PROCESS_POOL[0].owner == os.getpid():
        return _PROCESS_POOL[0]
    pool = ZygotePool()
    if _PROCESS_POOL:
        _PROCESS_POOL[0].forget()
    _PROCESS_POOL[:] = [pool]
    return pool


@atexit.register
def _close_process_pool() -> None:
    if _PROCESS_POOL and _PROCESS_POOL[0].owner == os.getpid():
        _PROCESS_POOL[0].close()


def describe(layers: list[str], missing: list[str], pool: ZygotePool | None = None) -> str:
    """The sandbox in one line, for the batch summary and the class overview."""
    return describe_layers(layers, missing) + "; " + (pool or process_pool()).plan(layers)[1]


def _zygote_key(config: SandboxConfig) -> SandboxConfig:
    return dataclasses.replace(config, data_dir=None)  # data reaches each child on its own
