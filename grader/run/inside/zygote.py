"""The zygote: one sandboxed process per worker that pays for Python, NumPy and the runtime once,
then forks a fresh child per submission. It never runs student code itself.

Each child, before any student code, gets walls of its own on top of the sandbox's: new PID, mount
and IPC namespaces (all of its processes die with it, and it cannot see or signal the zygote), a
fresh size-capped tmpfs for /scratch, /tmp and /dev/shm, a read-only /proc of its own namespace,
no capabilities, no new privileges, the slot's uid where the grader runs as root, then the usual
rlimits and seccomp filter (``runtime.main`` applies them). Python state is fresh because the fork
comes from the pristine zygote, which has run nothing but this file.

Everything else the children share (the sandbox's root, /dev, /etc, /sandbox: folders bubblewrap
made, owned by the child's uid where the grader is an ordinary user) is remounted read-only in
each child's own mount namespace before its fresh folders are mounted, and checked: whatever one
submission could write there would be found, or imported, by the next. The zygote checks once, at
start, that this works here; where it does not, it does not start, and each submission gets a
fresh sandbox of its own instead.

The child's memory killer score is 1000 (first to go), written while the child still holds its
capabilities (as root that raises the floor too) on a /proc then mounted read-only, so student code
cannot lower it and leave the zygote to be killed in its place.

Three processes per child: a launcher (unshares, forks, exits at once; the zygote is the
subreaper, so the next one becomes its child), an init that mounts and then only reaps, and the
runtime, which serves the grader. The init's exit status is the runtime's (128 + the signal that
killed it, as bubblewrap reports its own child's).

Control protocol (a SOCK_SEQPACKET socket): the grader sends ``{"op": "spawn", ...}`` with the
child's file descriptors attached (SCM_RIGHTS); the zygote answers ``{"spawned": true}`` or an
error, and ``{"exited": status}`` once the child is gone. ``{"op": "kill"}`` kills the child;
``{"op": "ping"}`` is answered ``{"idle": true}`` when no child is running, else ``false``.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import signal
import socket
import sys
from typing import Any

import numpy  # noqa: F401 - imported once here, shared by every child (copy on write)

from . import runtime
from .limits import load_seccomp, reap_exited_children

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY = 0x2, 0x4, 0x8, 0x1
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
PR_SET_DUMPABLE, PR_CAPBSET_DROP = 4, 24
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT = 38, 36, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
MS_NOSYMFOLLOW = 0x100
KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
              "nosymfollow": MS_NOSYMFOLLOW}  # may be locked: a remount must keep them (or EPERM)
FRESH = ("/tmp", "/dev/shm", "/scratch")  # each child's own tmpfs: its only writable folders
SETUP_FAILED = 71  # exit status of a child whose walls could not be built (never the student's)

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _mount(source: str, target: str, kind: str | None, flags: int,
           data: str | None = None) -> None:
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
    runtime.find_guard_holders()
    _seal_what_children_need_not_write()
    problem = _probe_sealing()
    if problem:  # no zygote, rather than children that could leave files for the next
        control.send(json.dumps({"ready": False, "error": problem}).encode())
        os._exit(SETUP_FAILED)
    control.send(json.dumps({"ready": True}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 64)
        if not message:
            os._exit(0)  # the grader closed the channel
        request = json.loads(message)
        if request.get("op") == "ping":  # (asked by a lender taking its zygote back)
            control.send(b'{"idle": true}')
        if request.get("op") != "spawn":
            _close(fds)
            continue
        _serve_child(control, request, fds)


def _serve_child(control: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Fork one child, then wait for its end (or a kill request) and report its status."""
    _run_on(request.get("cpus") or [])
    try:
        child = _spawn(control, request, fds)
    except OSError as exc:
        control.send(json.dumps({"spawned": False, "error": str(exc)}).encode())
        return
    finally:
        _close(fds)
    control.send(json.dumps({"spawned": True}).encode())
    status = _wait_for(control, child)
    reap_exited_children()  # launchers and anything else that ended (a subreaper)
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
            waiting: list[socket.socket | int] = [control] if watch is None else [control, watch]
            ready, _, _ = select.select(waiting, [], [], 0.02 if watch is None else None)
            if control in ready:
                message = control.recv(1 << 16)
                if not message:
                    os._exit(0)  # the grader is gone: the sandbox goes with this process
                operation = json.loads(message).get("op")
                if operation == "kill":
                    os.kill(child, signal.SIGKILL)  # the child's init: its namespace dies with it
                elif operation == "ping":
                    control.send(b'{"idle": false}')
            if watch is None:
                pid, status = os.waitpid(child, os.WNOHANG)
                if pid:
                    return status
            elif watch in ready:
                return os.waitpid(child, 0)[1]
    finally:
        if watch is not None:
            os.close(watch)


def _spawn(control: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
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


def _launch(request: dict[str, Any], fds: list[int], report: int) -> None:
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


# --- the child's init (pid 1 of its namespace) ---------------------------------------------


def _init(request: dict[str, Any], fds: list[int]) -> None:
    """Build the child's private file system, fork the runtime, then only reap until it ends."""
    try:
        _first_to_kill()
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


def _run_on(cpus: list[int]) -> None:
    """The cores of the grader's worker that asks for a child, for the zygote and so for
    every process it forks: the fork's work, and then the child, stay on the core where that
    worker waits, in its cache, instead of taking another worker's core (1-2 % faster with
    two workers, in paired runs). A lent zygote follows its borrower; a core that is not
    there any more only costs that."""
    try:
        if cpus:
            os.sched_setaffinity(0, cpus)
    except (OSError, ValueError):
        pass


def _first_to_kill() -> None:
    """Memory killer score 1000, written while this process still holds its capabilities: as
    root that is CAP_SYS_RESOURCE, which makes 1000 the floor too. (In a user namespace the
    floor stays; the read-only /proc is what keeps student code from lowering the score.)
    Dumpable for that moment, or the file is not ours to write in a user namespace; no student
    process exists yet."""
    _prctl(PR_SET_DUMPABLE, 1)
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    finally:
        _prctl(PR_SET_DUMPABLE, 0)


def _private_mounts(scratch_mb: int) -> None:
    """Everything shared with the zygote read-only; fresh, empty, size-capped writable folders;
    a read-only /proc that shows this namespace only."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _seal_shared_mounts()
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    for hidden in ("/proc/sys", "/proc/sysrq-trigger"):  # as bubblewrap covers them
        if not os.path.exists(hidden):
            continue
        _mount(hidden, hidden, None, MS_BIND | MS_REC)
        _mount(hidden, hidden, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    size = f"size={scratch_mb << 20},mode=1777"
    for folder in FRESH:
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, size)
    _check_sealed()
    os.chdir("/scratch")


def _mounts() -> list[tuple[str, set[str]]]:
    """This namespace's mounts, in order: where each is, and its per-mount options."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # \040
            found.append((where, set(fields[5].split(","))))
    return found


def _seal_what_children_need_not_write() -> None:
    """Remount this zygote's mounts read-only once, /proc apart (a child writes its memory
    killer score there before it mounts its own): each child then has three mounts to seal
    instead of sixteen. Best effort: each child seals, and checks, all of its own anyway."""
    try:
        _seal_shared_mounts(but="/proc")
    except OSError:
        pass


def _seal_shared_mounts(but: str | None = None) -> None:
    """Remount every mount of this (new, private) namespace read-only (but the tree at
    ``but``), keeping the flags bubblewrap set, which may be locked. Done before anything of the
    child's own is mounted, so what lies below its fresh folders is read-only too."""
    for where, options in _mounts():
        if "ro" in options or but and (where == but or where.startswith(but + "/")):
            continue
        kept = sum(flag for name, flag in KEPT_FLAGS.items() if name in options)
        _mount("none", where, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)


def _check_sealed() -> None:
    """Checked, not assumed: only the child's own fresh folders are writable."""
    mounts = _mounts()
    own = {where: index for index, (where, _) in enumerate(mounts) if where in FRESH}
    writable = [where for index, (where, options) in enumerate(mounts)
                if "ro" not in options and own.get(where) != index]
    if writable or sorted(own) != sorted(FRESH):
        raise OSError(0, f"writable where all children share it: {', '.join(writable)}")


def _probe_sealing() -> str:
    """Whether a child's mounts can be sealed here (the zygote's own check at start): empty if
    so, else why not."""
    report_read, report_write = os.pipe()
    probe = os.fork()
    if probe == 0:  # pragma: no cover - runs in the child
        try:
            os.close(report_read)
            _check(_libc.unshare(CLONE_NEWNS), "unshare")
            _mount("none", "/", None, MS_REC | MS_PRIVATE)
            _seal_shared_mounts()
            for folder in FRESH:
                _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536")
            _check_sealed()
            problem = b""
        except BaseException as exc:  # noqa: BLE001 - said to the zygote, which says it on
            problem = f"a child's mounts cannot be made read-only here ({exc})".encode()
        os.write(report_write, problem[:400] or b"ok")
        os._exit(0)
    os.close(report_write)
    try:
        answer = os.read(report_read, 512).decode(errors="replace")
    finally:
        os.close(report_read)
        os.waitpid(probe, 0)
    return "" if answer == "ok" else (answer or "the check of a child's mounts did not finish")


def _become_runtime(request: dict[str, Any], fds: list[int]) -> None:
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


def _say(fds: list[int], request: dict[str, Any], text: str) -> None:
    try:
        os.write(fds[request["fds"]["output"]], text.encode() + b"\n")
    except (OSError, KeyError, IndexError):
        pass
