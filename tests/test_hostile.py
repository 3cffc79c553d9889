"""Hostile and broken submissions: one tiny fixture per failure mode.

Every notebook case asserts the same five things: grading completes (in bounded time), the
result names the problem (in a test message, a notice or ``error``), the score is not inflated
(a cheat never gets more than the honest-but-broken version), no process of the sandbox
survives, and no file outside the sandbox's scratch folder changed.

Submissions are the reference notebook with one hostile cell inserted or one function replaced.
Short limits (2 s per call and per cell, 6 s of setup) keep the whole file fast. Cases that are
only safe behind some sandbox layers are skipped where those layers are missing (e.g.
``GRADER_SANDBOX=off``); ``strict`` runs them all.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat
import pytest

from grader import cli
from grader.checks import rubric
from grader.core import nofollow
from grader.core.results import SubmissionResult, load
from grader.course import batch
from grader.course.batch import grade_all
from grader.render import report
from grader.run import mnist, zygote
from grader.run.layers import Limits, SandboxConfig, plan_layers
from grader.run.sandbox import BASE_UID, Sandbox, state_dir
from tests.conftest import ROOT, UNIT_KINDS, build_notebook

# sandboxed end to end: what must hold everywhere (core), seconds each (slow, not in test-fast)
pytestmark = [pytest.mark.core, pytest.mark.slow]

TIMEOUTS = {"output": {"timeout": 2}, "gradient": {"timeout": 2}, "example": {"timeout": 2}}
TARGET = "softmax_cross_entropy"  # the function the function-level cases replace
SLOTS = state_dir() / "slots"
WATCHED = [ROOT / name for name in ("solutions", "assignments", "submissions", "grader/run/inside")]
HONEST_BROKEN = f"""
def {TARGET}(logits, y):
    raise NotImplementedError("not done yet")
"""


def layers_in_use() -> set[str]:
    return set(plan_layers(SandboxConfig.from_env().mode)[0])


# --- the world a hostile notebook attacks ----------------------------------------------------


@dataclass
class World:
    """Things outside the sandbox that hostile code aims at, named by tokens in its source."""

    out: Path  # a results folder with a result in it
    sentinel: Path  # an existing file in the host's /tmp
    fresh: Path  # a path in the host's /tmp that must not come to exist
    listener: socket.socket  # a port open on the host's loopback

    @property
    def tokens(self) -> dict[str, str]:
        return {
            "@ROOT@": str(ROOT),
            "@OUT@": str(self.out),
            "@SENTINEL@": str(self.sentinel),
            "@FRESH@": str(self.fresh),
            "@PORT@": str(self.listener.getsockname()[1]),
            "@CACHE@": str(mnist.default_cache_dir()),
        }

    def fill(self, text: str) -> str:
        for token, value in self.tokens.items():
            text = text.replace(token, value)
        return text

    def snapshot(self) -> dict[str, str]:
        """A digest of every watched file, plus the paths that must not appear."""
        files = {}
        for folder in [*WATCHED, self.out]:
            files[f"{folder} mode"] = oct(folder.stat().st_mode)
            for path in sorted(folder.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        files[str(self.sentinel)] = self.sentinel.read_text()
        for path in (self.fresh, ROOT / "pwned.txt", ROOT / "pwned", Path("/pwned")):
            files[f"{path} exists"] = str(path.exists())
        return files


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    out = tmp_path / "out"
    out.mkdir()
    (out / "student.json").write_text('{"score": 0}\n')
    handle, name = tempfile.mkstemp(prefix="hostile-sentinel-")
    os.write(handle, b"untouched")
    os.close(handle)
    fresh = Path(tempfile.gettempdir()) / f"hostile-fresh-{os.getpid()}-{time.time_ns()}"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield World(out, Path(name), fresh, listener)
    listener.close()
    Path(name).unlink(missing_ok=True)
    fresh.unlink(missing_ok=True)


# --- what must not be left behind ------------------------------------------------------------


def _processes() -> Iterator[tuple[int, int, int, str]]:
    """(pid, ppid, uid, command) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            yield int(entry.name), int(fields[1]), uid, command[:120]


def _slot_is_free(number: int) -> bool:
    """Nobody holds this sandbox slot, so no process of its uid has any business running."""
    path = SLOTS / f"{number}.lock"
    if not path.exists():
        return True
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def _multiprocessing_helpers() -> set[int | None]:
    """multiprocessing's fork server and resource tracker: long-lived by design, they serve
    the next batch (a test process with threads, such as a pytest-xdist worker, uses them)."""
    from multiprocessing import forkserver, resource_tracker

    return {getattr(forkserver._forkserver, "_forkserver_pid", None),
            getattr(resource_tracker._resource_tracker, "_pid", None)}


def leftovers() -> list[str]:
    """Processes of sandbox uids whose slot nobody holds, and children of this test process
    (other than multiprocessing's fork server and resource tracker and the idle zygotes)."""
    me, helpers = os.getpid(), _multiprocessing_helpers() - {None}
    found = []
    for pid, ppid, uid, command in _processes():
        if BASE_UID <= uid < BASE_UID + 1000 and _slot_is_free(uid - BASE_UID):
            found.append(f"{pid} (uid {uid}): {command}")
        elif ppid == me and pid not in helpers and pid not in zygote.process_pool().pids():
            found.append(f"{pid} (child of the tests): {command}")
    return found


def assert_nothing_left(world: World | None = None, before: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftovers(), f"processes left running: {leftovers()}"
    if world is not None:
        assert world.snapshot() == before, "a file outside the scratch folder changed"
        world.listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            world.listener.accept()  # nobody connected to the host's port


# --- the corpus of hostile notebooks ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile notebook: cells inserted right after the imports (or appended at the end,
    after the function they cheat for), and/or the target function replaced."""

    name: str
    cells: tuple[str, ...] = ()
    at_end: bool = False
    function: str | None = None  # a new definition of TARGET
    says: tuple[str, ...] = ()  # what the result must say (case-insensitive)
    never: tuple[str, ...] = ()  # what it must not say
    zero: tuple[str, ...] = ()  # functions that must score nothing; all others full marks
    cheat: bool = False  # TARGET is broken: score at most the honest-but-broken version's
    needs: tuple[str, ...] = ()  # sandbox layers without which running it is unsafe
    cell_timeout: float = 2.0
    memory_mb: int | None = None  # a smaller memory limit: filling 3 GB takes seconds
    seconds: float = 20.0  # the grading must finish within this


def top(name: str, code: str, *says: str, **extra) -> Case:
    return Case(name, cells=(textwrap.dedent(code),), says=says, **extra)


def fn(name: str, body: str, *says: str, **extra) -> Case:
    definition = f"def {TARGET}(logits, y):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return Case(name, function=definition, says=says, zero=(TARGET,), **extra)


IGNORE_SIGNALS = """
import signal
for name in ("SIGINT", "SIGTERM", "SIGALRM"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
while True:
    pass
"""
SWALLOW_EVERYTHING = """
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
"""
GROW_FOREVER = """
hog = []
while True:
    hog.append(b"x" * (1 << 24))
"""
SPREAD_OVER_PROCESSES = """
import os, time
if os.fork() == 0:
    mine = b"c" * (150 << 20)
    time.sleep(1000)
time.sleep(1)
mine = b"p" * (450 << 20)  # each process is under its own limit, the two together are not
"""
FORK_FOREVER = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
DOUBLE_FORK = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1000)
    os._exit(0)
os.wait()
"""
READ_SOLUTIONS = """
import json, os
found = []
for guess in ("@ROOT@/solutions/backprop.ipynb", "../solutions/backprop.ipynb",
              "../../solutions/backprop.ipynb", "/solutions/backprop.ipynb",
              os.path.expanduser("~/solutions/backprop.ipynb")):
    try:
        with open(guess) as handle:
            cells = json.load(handle)["cells"]
    except OSError:
        continue
    found.append(guess)
    for cell in cells:
        text = "".join(cell["source"])
        if "def softmax_cross_entropy" in text:
            exec(text)
print("FOUND", found)
"""
SEARCH_DISK = """
import os
found = [p for p in ("@CACHE@", "@ROOT@") if os.path.exists(p)]
for folder, subfolders, files in os.walk("/"):
    if folder == "/":
        subfolders[:] = [s for s in subfolders if s not in ("proc", "sys", "dev")]
    found += [os.path.join(folder, f) for f in files
              if f.startswith("t10k") or "test_labels" in f
              or f.startswith(("backprop.", "convolution."))]
print("FOUND", found)
"""
WRITE_OUTSIDE = """
import os
targets = ["@ROOT@/solutions/backprop.ipynb", "@ROOT@/pwned.txt",
           "@ROOT@/grader/run/inside/wire.py",
           "@SENTINEL@", "@FRESH@", "@OUT@/student.json", "/scratch/../out/student.json",
           "../out/student.json", "/pwned"]
for target in targets:
    try:
        with open(target, "a") as handle:
            handle.write("pwned")
        print("WROTE", target)
    except OSError as exc:
        print("REFUSED", target, type(exc).__name__)
for target in ("@ROOT@/solutions", "@OUT@"):
    try:
        os.chmod(target, 0o777)
        print("WROTE", target)
    except OSError as exc:
        print("REFUSED", target, type(exc).__name__)
"""
CONNECT = """
import socket
for address in [("127.0.0.1", @PORT@), ("1.1.1.1", 53), ("::1", @PORT@)]:
    try:
        socket.create_connection(address, timeout=1).close()
        print("CONNECTED", address[0])
    except OSError as exc:
        print("REFUSED", address[0], type(exc).__name__)
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("1.1.1.1", 53))
    print("CONNECTED udp")
except OSError as exc:
    print("REFUSED udp", type(exc).__name__)
"""
SIDE_CHANNELS = """
import ctypes, fcntl, os
shared = os.open("/usr/lib/os-release", os.O_RDONLY)
for name, attempt in [("flock", lambda: fcntl.flock(shared, fcntl.LOCK_SH | fcntl.LOCK_NB)),
                      ("lockf", lambda: fcntl.lockf(shared, fcntl.LOCK_SH | fcntl.LOCK_NB))]:
    try:
        attempt()
        print("LOCKED", name)
    except OSError as exc:
        print("REFUSED", name, exc.errno)
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall(248, b"user", b"left-for-the-next", b"secret", 6, -3)  # add_key
print("KEYRING", "REFUSED" if key < 0 else "ADDED")
import threading, time
try:  # a thread would go on printing (or reading later requests) after this cell
    threading.Thread(target=lambda: [print("THREAD STILL", "HERE") or time.sleep(0.2)
                                     for _ in range(100)], daemon=True).start()
    print("THREAD STARTED")
except RuntimeError:
    print("THREAD REFUSED")
"""
NAMESPACES = """
import ctypes, subprocess
libc = ctypes.CDLL(None, use_errno=True)
for name, flag in [("user", 0x10000000), ("mount", 0x00020000), ("network", 0x40000000)]:
    print("UNSHARE", name, "REFUSED" if libc.unshare(flag) != 0 else "NAMESPACE CREATED")
try:
    done = subprocess.run(["unshare", "--user", "--map-root-user", "id", "-u"],
                          capture_output=True, text=True, timeout=10)
    print("ROOT INSIDE" if done.stdout.strip() == "0" else "UNSHARE COMMAND REFUSED")
except OSError as exc:
    print("UNSHARE COMMAND REFUSED", type(exc).__name__)
"""
MONKEYPATCH = """
import builtins
np.allclose = lambda *args, **kwargs: True
np.isclose = lambda *args, **kwargs: True
np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
builtins.abs = lambda value: 0
builtins.max = lambda *args, **kwargs: 0
"""
LIAR = """
class Liar(np.ndarray):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __array__(self, *args, **kwargs):
        return np.asarray(1.0)
def softmax_cross_entropy(logits, y):
    return np.zeros(()).view(Liar), np.zeros_like(logits).view(Liar)
"""
FAKE_RESULTS = """
import json
print(json.dumps({"score": 100, "max_score": 100, "tests": []}))
for target in ("/scratch/../out/student.json", "../out/student.json", "@OUT@/student.json"):
    try:
        with open(target, "w") as handle:
            json.dump({"score": 100, "max_score": 100}, handle)
    except OSError as exc:
        print("REFUSED", target, type(exc).__name__)
"""
FORGE_ANSWER = """
import json, os, sys
channel = json.loads(sys.argv[-1])["fds"][1]
os.write(channel, b'{"ok": true, "errors": [], "timed_out": false, "value": 1}\\n')
"""
# The answer channel's request number, read from the runtime's frames (as student code can),
# then a line of nested empty lists: a right number must not buy a long line either.
FORGE_HUGE = """
import json, os, sys
def forge(size):
    frame, number = sys._getframe(), None
    while frame is not None:
        number = frame.f_locals.get("number") if frame.f_code.co_name == "_serve" else number
        frame = frame.f_back
    assert number is not None, "the runtime's frames changed: this test forges nothing"
    line = b"%d " % number + b'{"ok":true,"errors":[],"value":[' + b"[]," * (size // 3) + b"[]]}"
    channel = json.loads(sys.argv[-1])["fds"][1]
    view = memoryview(line + bytes([10]))
    while view:
        view = view[os.write(channel, view):]
"""
SCRIPT_TAGS = "<script>alert(1)</script>"

CASES = [
    # time
    top("top-level loop", "while True:\n    pass", "stopped after"),
    top("top-level loop ignoring signals", IGNORE_SIGNALS, "stopped after", "skipped"),
    top("top-level loop swallowing BaseException", SWALLOW_EVERYTHING, "stopped after"),
    Case("cells past the setup budget", cells=("while True:\n    pass",) * 12, says=("setup",),
         seconds=12),
    fn("function loop", "while True:\n    pass", "did not finish"),
    fn("function loop ignoring signals", IGNORE_SIGNALS, "did not finish", seconds=12),
    fn("function loop swallowing BaseException", SWALLOW_EVERYTHING, "did not finish",
       seconds=12),
    # memory
    top("top-level 50 GB", "hog = np.ones(50 * 2**30 // 8)", "memory", needs=("rlimits",)),
    # (a cell timeout far above the second it needs: the memory limit must end it, not the
    # clock, even with both cores busy)
    top("top-level list growing forever", GROW_FOREVER, "memory", needs=("rlimits",),
        memory_mb=600, cell_timeout=10),
    fn("function 50 GB", "return np.ones(50 * 2**30 // 8), None", "memory",
       needs=("rlimits",)),
    fn("function list growing forever", GROW_FOREVER, "memory", needs=("rlimits",),
       memory_mb=600),
    top("memory spread over forked processes", SPREAD_OVER_PROCESSES, "ran out of memory",
        needs=("cgroup", "uid"), memory_mb=600, cell_timeout=5),
    # processes
    top("top-level fork bomb", FORK_FOREVER, "process", needs=("cgroup", "uid")),
    top("top-level fork until refused", "import os\nwhile True:\n    os.fork()",
        "BlockingIOError", needs=("cgroup", "uid")),
    fn("function fork until refused", "import os\nwhile True:\n    os.fork()",
       "BlockingIOError", needs=("cgroup", "uid")),
    top("setsid sleeper", "import subprocess\n"
        "subprocess.Popen(['sleep', '1000'], start_new_session=True)", "left 1 process",
        needs=("uid",)),
    top("double-fork daemon", DOUBLE_FORK, "left 1 process", needs=("uid",)),
    # exits and kills
    top("top-level sys.exit", "import sys\nsys.exit('bye')", "SystemExit"),
    top("top-level os._exit", "import os\nos._exit(3)", "stopped the notebook", "status 3"),
    top("kill the parent and everyone", "import os\nos.kill(os.getppid(), 9)\nos.kill(-1, 9)",
        "PermissionError", needs=("namespaces", "uid")),
    fn("function sys.exit", "import sys\nsys.exit(0)", "tried to end the program"),
    fn("function os._exit", "import os\nos._exit(0)", "exited with status 0"),
    fn("function kills its process group", "import os\nos.killpg(0, 9)", "SIGKILL",
       needs=("namespaces", "uid")),
    # cheats
    Case("reads the reference solution", cells=(READ_SOLUTIONS,), at_end=True,
         function=HONEST_BROKEN, says=("FOUND []",), zero=(TARGET,), cheat=True,
         needs=("namespaces",)),
    Case("searches the disk for labels and solutions", cells=(SEARCH_DISK,), at_end=True,
         says=("FOUND []",), needs=("namespaces",), cell_timeout=10),
    Case("writes outside the scratch folder", cells=(WRITE_OUTSIDE,),
         says=("REFUSED @ROOT@/solutions/backprop.ipynb", "REFUSED @OUT@/student.json",
               "REFUSED @ROOT@/pwned.txt"),
         never=("WROTE @ROOT@", "WROTE @OUT@", "WROTE /pwned"), needs=("namespaces", "uid")),
    Case("connects to the network", cells=(CONNECT,), says=("REFUSED 127.0.0.1", "REFUSED 1.1.1.1"),
         never=("CONNECTED",), needs=("seccomp",)),
    Case("talks to other sandboxes through file locks, the keyring or a thread",
         cells=(SIDE_CHANNELS,), says=("REFUSED flock", "REFUSED lockf", "KEYRING REFUSED",
                                       "THREAD REFUSED"),
         never=("LOCKED", "ADDED", "THREAD STARTED", "THREAD STILL HERE"), needs=("seccomp",)),
    Case("makes namespaces of its own (root in a user namespace)", cells=(NAMESPACES,),
         says=("UNSHARE user REFUSED", "UNSHARE mount REFUSED", "UNSHARE network REFUSED",
               "UNSHARE COMMAND REFUSED"),
         never=("NAMESPACE CREATED", "ROOT INSIDE"), needs=("seccomp",)),
    Case("monkeypatches NumPy and builtins", cells=(MONKEYPATCH,), at_end=True,
         function=f"def {TARGET}(logits, y):\n    return 0.0, np.zeros_like(logits)",
         says=("loss",), zero=(TARGET,), cheat=True),
    Case("returns an ndarray subclass that equals anything", cells=(LIAR,), at_end=True,
         function=HONEST_BROKEN, says=("loss",), zero=(TARGET,), cheat=True),
    Case("prints a fake score and writes fake results", cells=(FAKE_RESULTS,),
         function=HONEST_BROKEN, says=("not implemented",), zero=(TARGET,), cheat=True,
         needs=("uid",)),
    Case("forges an answer of the protocol", cells=(FORGE_ANSWER,), function=HONEST_BROKEN,
         says=("protocol",), zero=(TARGET,), cheat=True),
    # output
    top("prints 200 MB", "print('x' * 200_000_000)", "more characters", seconds=15),
    Case("function printing 20 MB per call", function=f"""
def {TARGET}(logits, y):
    import sys
    sys.stderr.write("y" * 20_000_000)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probs = np.exp(log_probs)
    probs[np.arange(n), y] -= 1
    return -log_probs[np.arange(n), y].mean(), probs / n
"""),
    top("closes its output", "import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)"),
    Case("script in outputs and exception messages",
         cells=(f"print('{SCRIPT_TAGS}<img src=x onerror=alert(2)>')",),
         function=f"def {TARGET}(logits, y):\n    raise ValueError('{SCRIPT_TAGS}')",
         says=(SCRIPT_TAGS,), zero=(TARGET,)),
]


def hostile_notebook(folder: Path, case: Case, world: World) -> Path:
    replace_map = {TARGET: world.fill(case.function)} if case.function else None
    path = build_notebook(folder, "backprop", name="hostile", replace=replace_map)
    notebook = nbformat.read(path, as_version=4)
    cells = [nbformat.v4.new_code_cell(world.fill(code)) for code in case.cells]
    at = len(notebook.cells) if case.at_end else 2  # cell 2 holds the imports
    notebook.cells[at:at] = cells
    nbformat.write(notebook, path)
    return path


def said(result: SubmissionResult) -> str:
    """Everything the result tells the student in words (not the sources it quotes)."""
    parts = [result.error or "", *result.notices]
    parts += [f"{t.message} {t.diagnosis or ''}" for t in result.tests]
    return "\n".join(parts)


def skip_unless(needs: tuple[str, ...]) -> None:
    missing = sorted(set(needs) - layers_in_use())
    if missing:
        pytest.skip(f"unsafe without the sandbox layers {', '.join(missing)}")


_HONEST: dict[str, float] = {}


def honest_score(grade_notebook, folder: Path) -> float:
    """The score of the same notebook with the target honestly unfinished (graded once)."""
    if "score" not in _HONEST:
        path = build_notebook(folder, "backprop", name="honest", replace={TARGET: HONEST_BROKEN})
        _HONEST["score"] = grade_notebook(path, "backprop", kinds=UNIT_KINDS,
                                          options=TIMEOUTS).score
    return _HONEST["score"]


def grade_hostile(grade_notebook, path: Path, case: Case) -> SubmissionResult:
    limits = Limits(memory_mb=case.memory_mb) if case.memory_mb else None
    # the whole setup budget covers the notebook's own cells too: a slow cell of the case
    # must not find it spent on a busy machine
    return grade_notebook(path, "backprop", kinds=UNIT_KINDS, options=TIMEOUTS,
                          cell_timeout=case.cell_timeout,
                          setup_budget=max(6.0, case.cell_timeout + 6), limits=limits)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_notebook(case: Case, world: World, grade_notebook, tmp_path: Path) -> None:
    skip_unless(case.needs)
    path = hostile_notebook(tmp_path, case, world)
    before = world.snapshot()
    started = time.monotonic()
    result = grade_hostile(grade_notebook, path, case)
    elapsed = time.monotonic() - started
    text = said(result)

    assert elapsed < case.seconds, f"grading took {elapsed:.1f} s"
    assert result.error is None, result.error
    for words in case.says:
        assert world.fill(words).lower() in text.lower(), f"{words!r} not in:\n{text[:3000]}"
    for words in case.never:
        assert world.fill(words).lower() not in text.lower(), f"{words!r} in:\n{text[:3000]}"
    for test in result.tests:
        if test.function in case.zero:
            assert test.score == 0, f"{test.name} scored {test.score}: {test.message}"
        else:
            assert test.score == test.max_score, f"{test.name} lost points: {test.message}"
    if case.cheat:
        assert result.score <= honest_score(grade_notebook, tmp_path)
    json.loads(json.dumps(result.to_json()))  # plain JSON, whatever the student did
    assert_nothing_left(world, before)


def test_markup_stays_text(world: World, grade_notebook, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name.startswith("script"))
    result = grade_hostile(grade_notebook, hostile_notebook(tmp_path, case, world), case)
    assert SCRIPT_TAGS in json.dumps(result.to_json(), ensure_ascii=False)
    for page in (report.render_student(result), report.render_index([result])):
        assert "<script>alert" not in page and "<img src=x" not in page


@pytest.mark.parametrize("where, size", [("cell", 100_000_000), ("function", 15_000_000)])
def test_a_forged_answer_of_nested_lists_costs_the_grader_little(
    where: str, size: int, world: World, grade_notebook, tmp_path: Path
) -> None:
    """A 100 MB line of nested empty lists written to the answer channel by a cell, with the
    right request number (it once took the grader 5 GB and 352 s to decode), and a 15 MB one
    answering a call (within the size a call's answer may have, refused for its 5 million
    values): the grading stays quick and small and says the protocol was broken, nothing more."""
    if where == "cell":
        case = Case("forges a huge answer", cells=(FORGE_HUGE + f"forge({size})\n",))
    else:
        case = Case("forges a huge answer", cells=(FORGE_HUGE,), function=(
            f"def {TARGET}(logits, y):\n    forge({size})\n"), zero=(TARGET,))
    path = hostile_notebook(tmp_path, case, world)
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = grade_hostile(grade_notebook, path, case)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started

    assert elapsed < 30, f"grading took {elapsed:.1f} s"
    assert peak < 200 << 20, f"the grader's memory peaked at {peak >> 20} MB"
    assert result.error is None, result.error
    text = said(result)
    assert "broke the protocol" in text and "[]" not in text, text[:3000]
    for test in result.tests:
        if test.function in case.zero:
            assert test.score == 0 and "protocol" in test.message, test.message
        else:
            assert test.score == test.max_score, f"{test.name} lost points: {test.message}"
    if where == "cell":  # one notice for the cell, and the notebook went on without it
        assert len([n for n in result.notices if "protocol" in n]) == 1, result.notices
    assert_nothing_left()


# --- broken files ----------------------------------------------------------------------------


def _reference_cells() -> list[str]:
    notebook = nbformat.read(ROOT / "solutions" / "backprop.ipynb", as_version=4)
    return [c.source for c in notebook.cells if c.cell_type == "code"]


def _nbformat3(path: Path) -> None:
    v3 = nbformat.v3
    cells = [v3.new_code_cell(input=source) for source in _reference_cells()]
    notebook = v3.new_notebook(worksheets=[v3.new_worksheet(cells=cells)])
    path.write_text(v3.writes_json(notebook))


def _huge_outputs(path: Path) -> None:
    notebook = nbformat.read(ROOT / "solutions" / "backprop.ipynb", as_version=4)
    image = "iVBORw0KGgo" + "A" * (30 << 20)  # 30 MB of "base64 PNG"
    cell = next(c for c in notebook.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": image})]
    nbformat.write(notebook, path)


def _with_bom(path: Path) -> None:
    text = (ROOT / "solutions" / "backprop.ipynb").read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())


def _sparse(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(201 << 20)


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _document(document: object) -> Callable[[Path], None]:
    return _bytes(json.dumps(document).encode())


@dataclass(frozen=True)
class BadFile:
    name: str
    make: Callable[[Path], None]
    says: str  # what the error (or, for a graded file, a notice) must say
    graded: bool = False  # readable after all: graded, with full marks
    seconds: float = 10.0


NB4 = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}}
BAD_FILES = [
    BadFile("empty", _bytes(b""), "empty"),
    BadFile("whitespace", _bytes(b"  \n\t\n"), "empty"),
    BadFile("invalid JSON", _bytes(b'{"cells": [{"cell_type": "code", '), "invalid JSON"),
    BadFile("Python script", _bytes(b"import numpy as np\n\ndef relu_forward(x):\n    return x\n"),
            "Python script"),
    BadFile("binary", _bytes(bytes(range(256)) * 64), "not UTF-8"),
    BadFile("JSON list", _document([1, 2, 3]), "without notebook cells"),
    BadFile("cells not a list", _document({**NB4, "cells": 5}), "cells"),
    BadFile("cells of junk", _document({**NB4, "cells": [1, "x", None, {"cell_type": 3}]}),
            "cell"),
    BadFile("source of junk", _document({**NB4, "cells": [
        {"cell_type": "code", "source": [1, None], "metadata": {}, "outputs": []}]}), "cell"),
    BadFile("nbformat 99", _document({"nbformat": 99, "nbformat_minor": 0, "cells": [],
                                      "metadata": {}}), "nbformat"),
    BadFile("deeply nested JSON", _bytes(b"[" * 200_000 + b"]" * 200_000), "not a notebook"),
    BadFile("larger than allowed", _sparse, "MB"),
    BadFile("nbformat 3", _nbformat3, "nbformat 3", graded=True),
    BadFile("30 MB of embedded outputs", _huge_outputs, "", graded=True),
    BadFile("byte order mark", _with_bom, "", graded=True),
]


@pytest.mark.parametrize("bad", BAD_FILES, ids=lambda b: b.name)
def test_broken_file(bad: BadFile, grade_notebook, tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    bad.make(path)
    started = time.monotonic()
    result = grade_notebook(path, "backprop", kinds=UNIT_KINDS, options=TIMEOUTS,
                            cell_timeout=2, setup_budget=6)
    assert time.monotonic() - started < bad.seconds
    if bad.graded:
        assert result.error is None, result.error
        assert result.score == result.max_score, said(result)
    else:
        assert result.error and result.score == 0
        assert all(t.status == "error" for t in result.tests)
    assert bad.says.lower() in said(result).lower(), said(result)[:2000]
    json.loads(json.dumps(result.to_json()))
    assert_nothing_left()


# --- batches ---------------------------------------------------------------------------------


def _small_rubric() -> rubric.Rubric:
    loaded = rubric.load("backprop")
    tests = tuple(t.with_options(timeout=2) if hasattr(t.options, "timeout") else t
                  for t in loaded.tests if t.kind in UNIT_KINDS)
    return replace(loaded, tests=tests, cell_timeout=2, setup_budget=6)


ODD_NAMES = ["a b", "élève ü", "$(touch pwned);rm -rf x", "-rf", "bytes"]


def test_batch_with_hostile_and_odd_names(tmp_path: Path, monkeypatch, world: World) -> None:
    """Two workers over good notebooks with odd names and a few hostile ones: it completes, the
    good ones get full marks, every output name is safe, and no shell ran anything."""
    folder, out = tmp_path / "in", tmp_path / "results"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("must survive `rm -rf x`")
    good = [build_notebook(folder, "backprop", name=name) for name in ["good", *ODD_NAMES]]
    os.rename(good[-1], os.fsencode(folder) + b"/bad \xff\xfe bytes.ipynb")  # not UTF-8
    for case in ("top-level loop ignoring signals", "top-level fork bomb", "top-level os._exit"):
        spec = next(c for c in CASES if c.name == case)
        if not set(spec.needs) - layers_in_use():
            hostile_notebook(folder, spec, world).rename(folder / f"{case.replace(' ', '-')}.ipynb")
    (folder / "empty.ipynb").write_bytes(b"")
    (folder / "script.ipynb").write_text("import numpy as np\n")

    summary = grade_all([folder], _small_rubric(), out, sandbox=SandboxConfig.from_env(),
                        jobs=2, progress=False)

    assert summary.graded == len(list(folder.iterdir()))
    names = sorted(p.name for p in out.glob("*.json"))
    assert len(names) == summary.graded
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.json", n) for n in names), names
    broken = {"empty.ipynb", "script.ipynb"}
    assert {r.submission for r in summary.results if r.error} == broken
    for result in summary.results:  # the hostile cells cost nothing but themselves
        if result.submission not in broken:
            assert result.score == result.max_score, (result.submission, said(result))
    assert (tmp_path / "x").exists()
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()
    assert "<script>alert" not in (out / "index.html").read_text()
    assert_nothing_left()


def test_batch_grades_no_linked_notebook(tmp_path: Path, capsys) -> None:
    """A notebook found in a folder that is a link (here to the solution, which the grader can
    read) is listed as not graded and never graded; one the instructor names is followed."""
    folder, out = tmp_path / "in", tmp_path / "results"
    folder.mkdir()
    honest = build_notebook(folder, "backprop", name="honest")
    solution = ROOT / "solutions" / "backprop.ipynb"
    (folder / "cheat.ipynb").symlink_to(solution)
    (folder / "linked").symlink_to(solution.parent, target_is_directory=True)
    (folder / "twice.ipynb").symlink_to(honest)

    assert batch.collect([folder]) == [honest]
    said = capsys.readouterr().err
    for name in ("cheat.ipynb", "twice.ipynb"):
        assert f"grader: not graded: {folder / name} is {nofollow.LINK}" in said
    assert batch.collect([folder / "cheat.ipynb"]) == [folder / "cheat.ipynb"]

    summary = grade_all([folder], _small_rubric(), out, sandbox=SandboxConfig.from_env(),
                        jobs=1, progress=False)
    assert [r.submission for r in summary.results] == ["honest.ipynb"]
    assert sorted(p.name for p in out.glob("*.json")) == ["honest.json"]
    assert_nothing_left()


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grader", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_interrupted_batch_resumes(tmp_path: Path) -> None:
    """kill -9 mid-batch leaves only complete results; the rerun grades only the rest."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for number in range(6):
        build_notebook(folder, "convolution", name=f"student{number}",
                       extra_cells=[f"import time\ntime.sleep(0.8)  # student {number}"])
    args = ["grade", "--assignment", "convolution", "--out", str(out), "--jobs", "2", "--quiet",
            str(folder)]
    run = _cli(*args, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)  # its workers die with it and close the pipes
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert 2 <= len(finished) < 6
    for path in finished:
        assert load(path).score == load(path).max_score  # complete, readable results
    assert_nothing_left()

    rerun = _cli(*args, cwd=tmp_path)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    graded, unchanged = map(int, re.search(r"(\d+) graded, (\d+) unchanged", stdout).groups())
    assert (graded, unchanged) == (6 - len(finished), len(finished)), stdout
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())
    assert len(list(out.glob("*.json"))) == 6
    assert len(list((out / "gradescope").glob("*.json"))) == 6
    assert not [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert_nothing_left()


def _broken_rubric(folder: Path, text: bytes) -> Path:
    (folder / "convolution.toml").write_bytes(text)
    reference = ROOT / "solutions" / "convolution.ipynb"
    (folder / "convolution.ipynb").write_bytes(reference.read_bytes())
    return folder


@pytest.mark.parametrize("mistake", ["unknown assignment", "missing folder", "invalid TOML",
                                     "rubric not UTF-8", "rubric is a folder"])
def test_instructor_mistakes(mistake: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """One clear line on stderr and exit status 2, never a traceback."""
    assignment, paths = "convolution", [str(ROOT / "submissions" / "convolution")]
    if mistake == "unknown assignment":
        assignment = "no-such-practical"
    elif mistake == "missing folder":
        paths = [str(tmp_path / "nowhere")]
    else:
        solutions = tmp_path / "solutions"
        solutions.mkdir()
        if mistake == "rubric is a folder":
            _broken_rubric(solutions, b"")
            (solutions / "convolution.toml").unlink()
            (solutions / "convolution.toml").mkdir()
        else:
            _broken_rubric(solutions, b"[assignment\n" if "TOML" in mistake else b"\xff\xfe")
        original = rubric.load
        monkeypatch.setattr(rubric, "load", lambda name, **kw: original(
            name, solutions_dir=solutions))
    monkeypatch.setattr(mnist, "prepare", lambda *a, **k: pytest.fail("needs no MNIST"))
    status = cli.main(["grade", "--assignment", assignment, "--out", str(tmp_path / "o"), *paths])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("grader: error: ") and err.count("\n") == 1, err


# --- the sandbox itself ------------------------------------------------------------------------


def test_closing_one_sandbox_leaves_its_neighbour_alive() -> None:
    """Two sandboxes made from the same config (as the MNIST diagnostic does) never share a uid
    or a cgroup, so one's clean-up cannot kill the other."""
    config = SandboxConfig.from_env()
    pool = zygote.process_pool()  # (as the grader's sandboxes get their zygotes)
    with Sandbox(config, pool=pool) as first:
        second = Sandbox(config, pool=pool)
        second.start()
        second.close()
        answer = first.request({"op": "guards"}, timeout=5)
        assert answer["ok"], answer
    assert_nothing_left()


@pytest.fixture(autouse=True)
def _no_sandbox_leaks_before() -> Iterator[None]:
    """A failing case must not be blamed on processes an earlier one left behind."""
    assert_nothing_left()
    yield

