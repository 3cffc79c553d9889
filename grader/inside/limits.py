"""Resource limits and the seccomp filter, applied by the sandboxed process to itself before
any student code runs. Lowering limits needs no privilege, and an unprivileged process cannot
raise them again, so the student inherits them for good."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import resource
import socket
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


def install_seccomp() -> None:
    """Refuse internet sockets (IPv4 and IPv6, loopback included) with EACCES."""
    # pyseccomp finds libseccomp through ldconfig, which has no cache to read in the sandbox;
    # point it at the library by its soname instead.
    original = ctypes.util.find_library
    sonames = {"seccomp": "libseccomp.so.2", "c": "libc.so.6"}
    ctypes.util.find_library = lambda name: sonames.get(name) or original(name)
    try:
        import pyseccomp as seccomp
    finally:
        ctypes.util.find_library = original
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for family in (socket.AF_INET, socket.AF_INET6):
        for call in ("socket", "socketpair"):
            syscall_filter.add_rule(
                seccomp.ERRNO(errno.EACCES), call, seccomp.Arg(0, seccomp.EQ, family)
            )
    syscall_filter.load()
