"""Which walls a sandbox gets on this machine: its configuration, what the machine offers,
and the plan every sandbox of a run follows (``plan_layers``).

Layers, outermost first (each one named in every result, so a report says what protected it):

- ``namespaces``: bubblewrap gives a private PID namespace (nothing survives the sandbox), no
  network but a private loopback, a read-only view of just Python, NumPy and
  ``grader/run/inside``, and size-capped tmpfs for /tmp, /dev/shm and the writable /scratch
  (nothing written inside reaches the grading machine's disk). Solutions, rubrics, tests, other
  submissions and the MNIST test labels are simply not there.
- ``uid``: as root, the student runs as an unprivileged uid of its own (one per live sandbox:
  each claims a free slot, since process limits and the final clean-up go by uid), with no
  capabilities and no new privileges.
- ``cgroup``: memory and process-count caps enforced by the kernel for the whole process tree.
- ``rlimits``: address space, CPU time, processes, file size, open files (self-applied inside).
- ``seccomp``: internet sockets are refused, loopback included.

``GRADER_SANDBOX=strict`` refuses to grade when a layer is missing, ``auto`` (the default) uses
what exists and says what is missing, ``off`` runs a plain child process (debugging only).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.core.errors import GraderError
from grader.run import bubblewrap, sealed

MODES = ("strict", "auto", "off")
ALL_LAYERS = ("namespaces", "uid", "cgroup", "rlimits", "seccomp")


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
    # MNIST files the student may see (never the test labels): a folder, or one submission's
    # disguised arrays in sealed memory (``grader.run.mnist.disguised``)
    data_dir: Path | sealed.Arrays | None = None
    # Grade without the namespaces layer, where student code can read the disk: only for
    # submissions the instructor trusts (``--trust-submissions-without-isolation``).
    allow_unisolated: bool = False

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
    if bubblewrap.works():
        found.add("namespaces")
    if os.geteuid() == 0 and shutil.which("setpriv"):
        found.add("uid")
    if cgroup_dirs() is not None:
        found.add("cgroup")
    if _seccomp_works():
        found.add("seccomp")
    return frozenset(found)


def plan_layers(mode: str, *, allow_unisolated: bool = False) -> tuple[list[str], list[str]]:
    """The layers to use and the ones missing; GraderError where grading would not be safe.

    Without the namespaces layer student code can read the solutions and other submissions
    and write to the disk, so ``auto`` refuses unless the instructor said the submissions are
    trusted. The other layers need root or cgroup v1; ``auto`` grades without them and the
    batch summary says so."""
    if mode == "off":
        if not allow_unisolated:
            raise GraderError("GRADER_SANDBOX=off runs student code with no sandbox at all; "
                              "pass --trust-submissions-without-isolation if that is meant")
        return [], list(ALL_LAYERS)
    present = available_layers()
    used = [layer for layer in ALL_LAYERS if layer in present]
    missing = [layer for layer in ALL_LAYERS if layer not in present]
    if mode == "strict" and missing:
        why = f" {bubblewrap.namespaces_missing_reason()}" if "namespaces" in missing else ""
        raise GraderError(
            f"GRADER_SANDBOX=strict but these sandbox layers are missing here: "
            f"{', '.join(missing)} (uid needs root and setpriv, cgroup needs root with cgroup "
            f"v1, seccomp needs libseccomp; or set GRADER_SANDBOX=auto).{why}"
        )
    if "namespaces" in missing and not allow_unisolated:
        raise GraderError(unisolated_refusal())
    return used, missing


def unisolated_refusal() -> str:
    """The one paragraph an instructor reads where student code cannot be isolated."""
    return (
        "refusing to grade: the sandbox cannot hide the file system from student code on this "
        f"machine. {bubblewrap.namespaces_missing_reason()} Until that is fixed a submission "
        "could read the reference solutions and other students' work, so nothing was graded. "
        "Only for submissions you trust: --trust-submissions-without-isolation grades anyway."
    )


def zygote_wanted(layers: Iterable[str]) -> tuple[bool, str]:
    """Whether submissions should be forked from a pre-warmed zygote, and that said in words
    (a pool whose zygote failed says otherwise: ``grader.run.zygote.ZygotePool.plan``).

    A zygote's child needs namespaces of its own (PID, mount, IPC) to be as isolated as a fresh
    sandbox; without the namespaces layer there are none, so each submission gets a fresh
    sandbox (``GRADER_ZYGOTE=off`` asks for that anywhere)."""
    choice = os.environ.get("GRADER_ZYGOTE", "auto").strip().lower() or "auto"
    if choice not in ("auto", "off"):
        raise GraderError(f"GRADER_ZYGOTE must be auto or off, not {choice!r}")
    if choice == "off":
        return False, "a fresh sandbox per submission (GRADER_ZYGOTE=off)"
    if "namespaces" not in layers:
        return False, "a fresh sandbox per submission (no namespaces here for a zygote's children)"
    return True, "a pre-warmed zygote per worker forks each submission into namespaces of its own"


def describe_layers(layers: list[str], missing: list[str]) -> str:
    """The layers in one line (``grader.run.zygote.describe`` adds how submissions start)."""
    found = bubblewrap.find() if "namespaces" in layers else None
    text = f"sandbox layers: {', '.join(layers) or 'none'}"
    if found is not None:
        text += f"; {found.describe()}"
    if missing:
        text += f"; missing here: {', '.join(missing)}"
    return text


def _seccomp_works() -> bool:
    code = "from grader.run.inside.limits import install_seccomp; install_seccomp()"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def cgroup_dirs() -> dict[str, Path] | None:
    """Writable cgroup v1 folders for the memory and pids controllers, or None."""
    roots: dict[str, Path] = {}
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


def program_note(layers: Iterable[str]) -> str:
    """What a sandbox's process runs first, for an instructor whose sandbox cannot start:
    the chosen bwrap with namespaces (``bubblewrap.failing``: it may have gone since it was
    chosen), else ``setpriv`` for the uid layer, else this Python."""
    if "namespaces" in layers:
        return bubblewrap.failing()
    if "uid" in layers:
        return f"it runs {shutil.which('setpriv') or 'setpriv (not found)'}, then {sys.executable}"
    return f"it runs {sys.executable}"
