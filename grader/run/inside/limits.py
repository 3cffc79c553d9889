"""Resource limits and the seccomp filter, applied by the sandboxed process to itself before
any student code runs. Lowering limits needs no privilege, and an unprivileged process cannot
raise them again, so the student inherits them for good."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
import signal
import socket
import time
from typing import Any

_RLIMITS = {
    "address_space_mb": (resource.RLIMIT_AS, 1 << 20),
    "cpu_seconds": (resource.RLIMIT_CPU, 1),
    "processes": (resource.RLIMIT_NPROC, 1),
    "file_size_mb": (resource.RLIMIT_FSIZE, 1 << 20),
    "open_files": (resource.RLIMIT_NOFILE, 1),
}


def apply_limits(config: dict[str, Any]) -> list[str]:
    """Apply what ``config`` asks for and return the names of the layers now in force."""
    applied = []
    for name, value in config.get("limits", {}).items():
        which, unit = _RLIMITS[name]
        resource.setrlimit(which, (value * unit, value * unit))
        applied.append(f"rlimit:{name}")
    if config.get("seccomp"):
        install_seccomp()
        applied.append("seccomp")
    return applied


# fcntl's record locks: F_GETLK, F_SETLK, F_SETLKW and the open-file-description ones
LOCK_COMMANDS = (5, 6, 7, 36, 37, 38)
CLONE_THREAD = 0x00010000
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID and NEWNET (NEWTIME, 0x80, is
# clone's exit-signal byte there: a time namespace comes only from unshare or clone3, refused)
CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                    0x40000000)


def load_seccomp() -> Any:
    """The pyseccomp module (the zygote imports it once for all its children)."""
    # pyseccomp finds libseccomp through ldconfig, which has no cache to read in the sandbox;
    # point it at the library by its soname instead.
    original = ctypes.util.find_library
    sonames = {"seccomp": "libseccomp.so.2", "c": "libc.so.6"}
    ctypes.util.find_library = lambda name: sonames.get(name) or original(name)
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = original
    return pyseccomp


def install_seccomp() -> None:
    """Refuse internet sockets (IPv4 and IPv6, loopback included) with EACCES, and file locks,
    kernel keyrings, threads and new namespaces with EPERM."""
    seccomp = load_seccomp()
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for family in (socket.AF_INET, socket.AF_INET6):
        for call in ("socket", "socketpair"):
            syscall_filter.add_rule(
                seccomp.ERRNO(errno.EACCES), call, seccomp.Arg(0, seccomp.EQ, family)
            )
    # File locks work on read-only files too, and every sandbox sees the same /usr: two
    # sandboxes graded at once could talk through the kernel's lock table. Keyrings outlive a
    # sandbox in the same uid. Neither has any use in a practical.
    syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), "flock")
    for command in LOCK_COMMANDS:
        syscall_filter.add_rule(
            seccomp.ERRNO(errno.EPERM), "fcntl", seccomp.Arg(1, seccomp.EQ, command)
        )
    for call in ("add_key", "request_key", "keyctl"):
        syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), call)
    # No threads: one could go on acting after its request was answered (printing, reading
    # what a later test sends). Processes are still allowed; they are reaped after each
    # request. clone3's flags cannot be inspected, so it is refused as unknown and the C
    # library falls back to clone, whose flags can.
    syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
                            seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
    syscall_filter.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # No namespaces of its own: a user namespace would make student code root inside it,
    # with the kernel's mount, network and keyring code within reach. A practical needs none.
    for flag in CLONE_NAMESPACES:
        syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
                                seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    for call in ("unshare", "setns"):
        syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), call)
    syscall_filter.load()


def reap_strays() -> int:
    """Kill whatever student code started and left running (``fork``, ``subprocess``, daemons
    that ``setsid`` away from the process group); return how many there were.

    Only called where this process has a uid or a PID namespace of its own: then every other
    process it may signal is the student's, and ``kill(-1)`` reaches all of them at once (the
    kernel spares the caller and init). Forks racing the kill are caught by the next round.
    """
    reap_exited_children()
    found = _others()
    for _ in range(200):
        if not _others():
            break
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap_exited_children()
        time.sleep(0.005)
    return len(found)


def _others() -> set[int]:
    """Live processes (not zombies) this process may signal, other than itself and init."""
    try:
        os.kill(-1, 0)  # cheap: fails when there is nobody
    except ProcessLookupError:
        return set()
    except PermissionError:
        pass
    me, uid, found = os.getpid(), os.getuid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            found.add(int(entry))
    return found


def reap_exited_children() -> None:
    """Reap our own children that have exited, so they do not count as running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
