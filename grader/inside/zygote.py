"""The zygote: one sandboxed process per worker that pays for Python, NumPy and the runtime once,
then forks a fresh child per submission. It never runs student code itself.

Each child, before any student code, gets walls of its own on top of the sandbox's: new PID, mount
and IPC namespaces (all of its processes die with it, and it cannot see or signal the zygote), a
fresh size-capped tmpfs for /scratch, /tmp and /dev/shm, a /proc of its own namespace, no
capabilities, no new privileges, the slot's uid where the grader runs as root, then the usual
rlimits and seccomp filter (``runtime.main`` applies them). Python state is fresh because the fork
comes from the pristine zygote, which has run nothing but this file.

Three processes per child: a launcher (unshares, forks, exits at once; the zygote is the
subreaper, so the next one becomes its child), an init that mounts and then only reaps, and the
runtime, which serves the grader. The init's exit status is the runtime's (128 + the signal that
killed it, as bubblewrap reports its own child's).

Control protocol (a SOCK_SEQPACKET socket): the grader sends ``{"op": "spawn", ...}`` with the
child's file descriptors attached (SCM_RIGHTS); the zygote answers ``{"spawned": true}`` or an
error, and ``{"exited": status}`` once the child is gone. ``{"op": "kill"}`` kills the child.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys

import numpy  # noqa: F401 - imported once here, shared by every child (copy on write)

from . import runtime
from .limits import load_seccomp

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY = 0x2, 0x4, 0x8, 0x1
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
PR_SET_DUMPABLE, PR_CAPBSET_DROP = 4, 24
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT = 38, 36, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SETUP_FAILED = 71  # exit status of a child whose walls could not be built (never the student's)

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _mount(source: str, target: str, kind: str | None, flags: int, data: str | None = None):
    _check(_libc.mount(source.encode(), target.encode(), kind.encode() if kind else None,
                       ctypes.c_ulong(flags), data.encode() if data else None),
           f"mount {target}")


# --- the zygote ---------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    config = json.loads(argv[0])
    control = socket.socket(fileno=config["control"])
    # children run as the zygote's uid where the grader is not root: they must not be able to
    # ptrace it or read its /proc files (and their PID namespace hides it from them anyway)
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    load_seccomp()  # the library's import, paid here too
    control.send(json.dumps({"ready": True}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 64)
        if not message:
            os._exit(0)  # the grader closed the channel
        request = json.loads(message)
        if request.get("op") != "spawn":
            _close(fds)
            continue
        _serve_child(control, request, fds)


def _serve_child(control: socket.socket, request: dict, fds: list[int]) -> None:
    """Fork one child, then wait for its end (or a kill request) and report its status."""
    try:
        child = _spawn(control, request, fds)
    except OSError as exc:
        control.send(json.dumps({"spawned": False, "error": str(exc)}).encode())
        return
    finally:
        _close(fds)
    control.send(json.dumps({"spawned": True}).encode())
    status = _wait_for(control, child)
    _reap_all()
    control.send(json.dumps({"exited": os.waitstatus_to_exitcode(status)}).encode())


def _wait_for(control: socket.socket, child: int) -> int:
    """The child's wait status, killing it when the grader asks. A pidfd wakes this up the
    moment the child ends; kernels before 5.3 have none, and get a look every 20 ms."""
    try:
        watch: int | None = os.pidfd_open(child)
    except (AttributeError, OSError):
        watch = None
    try:
        while True:
            waiting = [control] if watch is None else [control, watch]
            ready, _, _ = select.select(waiting, [], [], 0.02 if watch is None else None)
            if control in ready:
                message = control.recv(1 << 16)
                if not message:
                    os._exit(0)  # the grader is gone: the sandbox goes with this process
                if json.loads(message).get("op") == "kill":
                    os.kill(child, signal.SIGKILL)  # the child's init: its namespace dies with it
            if watch is None:
                pid, status = os.waitpid(child, os.WNOHANG)
                if pid:
                    return status
            elif watch in ready:
                return os.waitpid(child, 0)[1]
    finally:
        if watch is not None:
            os.close(watch)


def _spawn(control: socket.socket, request: dict, fds: list[int]) -> int:
    """The child's init, as a child of the zygote (pid in the zygote's namespace)."""
    sys.stdout.flush()
    sys.stderr.flush()
    report_read, report_write = os.pipe()
    launcher = os.fork()
    if launcher == 0:  # pragma: no cover - runs in the child
        try:
            control.detach()
            _launch(request, fds, report_write)
        finally:
            os._exit(SETUP_FAILED)
    os.close(report_write)
    try:
        text = os.read(report_read, 64)
    finally:
        os.close(report_read)
        os.waitpid(launcher, 0)
    if not text.strip().isdigit():
        raise OSError(0, f"the child could not be started ({text.decode(errors='replace')})")
    return int(text)


def _launch(request: dict, fds: list[int], report: int) -> None:
    """In the launcher: keep only the child's descriptors, unshare, fork the init, say its pid."""
    try:
        keep = set(fds) | {report}
        _close_all_but(keep)
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
        init = os.fork()
    except OSError as exc:
        os.write(report, f"error: {exc}".encode()[:60])
        return
    if init == 0:
        os.close(report)
        _init(request, fds)
    os.write(report, b"%d" % init)


def _close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _reap_all() -> None:
    """Collect launchers and anything else that ended (the zygote is a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- the child's init (pid 1 of its namespace) ---------------------------------------------


def _init(request: dict, fds: list[int]) -> None:
    """Build the child's private file system, fork the runtime, then only reap until it ends."""
    try:
        _private_mounts(int(request["scratch_mb"]))
        for number in range(1, signal.NSIG):  # init ignores what it has no handler for
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(number, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        server = os.fork()
    except BaseException as exc:  # noqa: BLE001 - reported on the child's output, then gone
        _say(fds, request, f"the sandbox's child could not be set up: {exc}")
        os._exit(SETUP_FAILED)
    if server == 0:
        _become_runtime(request, fds)
    _close(fds)
    _drop_bounding_set()
    _drop_capabilities()
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == server:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _private_mounts(scratch_mb: int) -> None:
    """Fresh, empty, size-capped writable folders and a /proc that shows this namespace only."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for hidden in ("/proc/sys", "/proc/sysrq-trigger"):  # as bubblewrap covers them
        if not os.path.exists(hidden):
            continue
        _mount(hidden, hidden, None, MS_BIND | MS_REC)
        _mount(hidden, hidden, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    size = f"size={scratch_mb << 20},mode=1777"
    for folder in ("/tmp", "/dev/shm", "/scratch"):
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, size)
    os.chdir("/scratch")


def _become_runtime(request: dict, fds: list[int]) -> None:
    """Drop every privilege, then serve the grader as ``python -m inside.runtime`` would."""
    try:
        os.setsid()
        output = fds[request["fds"]["output"]]
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(null)
        os.close(output)
        _drop_privileges(request.get("uid"))
        with open("/proc/self/oom_score_adj", "w") as handle:  # (dumpable again: ours to write)
            handle.write("1000")  # the kernel's memory killer takes this child, not the zygote
        os.environ.clear()
        os.environ.update(request["env"])
        config = dict(request["runtime"])
        config["fds"] = [fds[request["fds"]["request"]], fds[request["fds"]["response"]]]
        config["data"] = {name: fds[index] for name, index in request["fds"]["data"].items()}
    except BaseException as exc:  # noqa: BLE001
        print(f"the sandbox's child could not drop its privileges: {exc}", file=sys.stderr,
              flush=True)
        os._exit(SETUP_FAILED)
    sys.argv[-1] = json.dumps(config)  # as a runtime started on its own sees its arguments
    runtime.main([sys.argv[-1]])


def _drop_privileges(uid: int | None) -> None:
    """No capabilities (not even in the bounding set where that can be changed), the slot's uid
    where there is one, no new privileges; checked, not assumed."""
    _drop_bounding_set()
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _drop_capabilities()
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 1)  # as after an exec: the student's process, like today's
    status = open("/proc/self/status").read()
    held = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines()
            if line.startswith(("CapPrm", "CapEff", "CapInh", "CapAmb"))}
    if any(held.values()):
        raise OSError(0, f"capabilities still held: {held}")


def _drop_bounding_set() -> None:
    """Needs CAP_SETPCAP, which the zygote has where the grader is root (in a user namespace
    of its own the bounding set stays, and no capability is held to use it)."""
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        last = int(handle.read())
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    """Empty effective, permitted, inheritable and ambient sets (dropping needs no privilege)."""
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _say(fds: list[int], request: dict, text: str) -> None:
    try:
        os.write(fds[request["fds"]["output"]], text.encode() + b"\n")
    except (OSError, KeyError, IndexError):
        pass
