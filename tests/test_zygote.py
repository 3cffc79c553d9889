"""The pre-warmed sandbox: one zygote per worker forks a child per submission, and nothing of
submission A reaches submission B, nor the zygote.

Each test runs A and B as consecutive children of the same zygote (checked: B's sandbox names
A's zygote), with the real sandbox and every layer this machine offers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from grader.checks import rubric
from grader.core.errors import GraderError, InfrastructureError
from grader.core.notebook import read
from grader.course import batch
from grader.grading import grade
from grader.run import layers, sandbox
from grader.run import zygote as zygotes
from grader.run.layers import Limits, SandboxConfig
from grader.run.sandbox import Sandbox
from grader.run.session import Session
from tests.conftest import ROOT, UNIT_KINDS, build_notebook

# sandboxed end to end: what must hold everywhere (core), seconds each (slow, not in test-fast)
pytestmark = [pytest.mark.core, pytest.mark.slow]
needs_zygote = pytest.mark.skipif(not zygotes.process_pool().plan(layers.available_layers())[0],
                                  reason="no zygote here: each submission gets a fresh sandbox")

# folders every child of a zygote sees, made by bubblewrap (owned by the child's uid where the
# grader is an ordinary user): nothing written there may outlive the child
SHARED = ("/", "/dev", "/dev/pts", "/etc", "/sandbox", "/sandbox/inside", "/site", "/usr")

# A: everything a submission could try to leave behind for the next one
LEAVE_TRACES = r"""
import os, sys, subprocess, numpy as np
from multiprocessing import shared_memory
for folder in ("/scratch", "/tmp", "/dev/shm", os.environ["HOME"], os.environ["TMPDIR"]):
    open(os.path.join(folder, "from-A"), "w").write("secret of A")
planted = []
for folder in SHARED:  # code the next student would import (/sandbox is first on sys.path)
    for name in ("from_a.py", "gzip.py"):
        try:
            with open(os.path.join(folder, name), "w") as handle:
                handle.write("print('CODE OF A RUNS IN B', flush=True)\n")
            planted.append(os.path.join(folder, name))
        except OSError:
            pass
    try:
        os.mkdir(os.path.join(folder, "from-A-dir"))
        planted.append(os.path.join(folder, "from-A-dir"))
    except OSError:
        pass
print("PLANTED " + " ".join(planted), flush=True)
keep = shared_memory.SharedMemory(name="from-A-shm", create=True, size=1 << 20)
try:
    with open("/dev/shm/from-A-fill", "wb") as hog:  # until the tmpfs is full
        while True:
            hog.write(b"x" * (1 << 20))
except OSError:
    pass
print("FILLED", os.path.getsize("/dev/shm/from-A-fill"), flush=True)
daemon = subprocess.Popen(["/bin/sh", "-c", "sleep 600"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sh", ["sh", "-c", "while true; do sleep 1; done"])
os.environ["FROM_A"] = "1"
os.putenv("FROM_A_PUT", "1")
sys.modules["from_a"] = sys
np.add = lambda *a, **k: 42
np.seterr(all="raise")
np.random.seed(12345)
np.random.random(1000)
import random
random.seed(99)
"""

# B: what it finds, printed as one JSON line
LOOK_AROUND = r"""
import json, os, sys, numpy as np
with open("/dev/shm/room", "wb") as handle:
    handle.write(b"y" * (8 << 20))
os.remove("/dev/shm/room")
try:
    import from_a  # noqa: F401
    imported = True
except ImportError:
    imported = False
import gzip
with open("/dev/null", "w") as sink:  # a read-only /dev still takes what is thrown away
    sink.write("nothing")
found = {
    "files": sorted(name for folder in ("/scratch", "/tmp", "/dev/shm", os.environ["HOME"])
                    for name in os.listdir(folder)),
    "shared": sorted(path for folder in SHARED for path in (
        os.path.join(folder, name) for name in ("from_a.py", "gzip.py", "from-A-dir"))
        if os.path.lexists(path)),
    "imported": imported,
    "gzip": gzip.__file__,
    "env": sorted(k for k in os.environ if k.startswith("FROM_A")),
    "module": "from_a" in sys.modules,
    "add": int(np.add(1, 1)),
    "seterr": np.geterr()["divide"],
    "random": float(np.random.random()),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "uid": os.getuid(),
    "status": {line.split(":")[0]: line.split()[1] for line in open("/proc/self/status")
               if line.startswith(("CapPrm", "CapEff", "CapAmb", "NoNewPrivs", "Seccomp:"))},
}
print("FOUND " + json.dumps(found))
"""


LEAVE_TRACES = f"SHARED = {SHARED!r}\n" + LEAVE_TRACES
LOOK_AROUND = f"SHARED = {SHARED!r}\n" + LOOK_AROUND


def exec_cell(box: Sandbox, source: str, timeout: float = 30) -> dict:
    return box.request({"op": "exec", "cell": 1, "source": source, "timeout": timeout},
                       timeout=timeout)


def found_in(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("FOUND ")]
    assert len(lines) == 1, output
    return json.loads(lines[0][len("FOUND "):])


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` on the host."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def zygote_python(zygote: zygotes.Zygote) -> int:
    """The host pid of the zygote's Python process (below bubblewrap, whose command line names
    it too; the zygote's children share its own, so the one whose parent does not)."""
    def is_zygote(pid: int) -> bool:
        try:
            return (b"inside.zygote" in Path(f"/proc/{pid}/cmdline").read_bytes()
                    and Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap")
        except OSError:
            return False

    def parent(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    found = [pid for pid in descendants(zygote._process.pid)
             if is_zygote(pid) and not is_zygote(parent(pid))]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def pool() -> Iterator[zygotes.ZygotePool]:
    """This test's own zygotes, closed after it."""
    made = zygotes.ZygotePool()
    yield made
    made.close()


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig.from_env(limits=Limits(memory_mb=1024, scratch_mb=64))


@needs_zygote
def test_nothing_of_a_reaches_b(config: SandboxConfig, pool: zygotes.ZygotePool) -> None:
    with Sandbox(config, pool=pool) as first:
        answer = exec_cell(first, LEAVE_TRACES)
        assert answer["ok"], answer
        zygote = first._zygote
        assert zygote is not None
        assert answer.get("strays", 0) >= 2, answer  # (killed by A's runtime after the cell)
    assert "PLANTED \n" in first.output(), first.output()  # nothing shared was writable
    filled = [line for line in first.output().splitlines() if line.startswith("FILLED ")]
    assert filled and int(filled[0].split()[1]) >= (config.limits.scratch_mb - 2) << 20, filled
    # A's namespace died with it: only bubblewrap's init and the zygote are left
    deadline = time.monotonic() + 10
    while len(descendants(zygote._process.pid)) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(descendants(zygote._process.pid)) == 2, descendants(zygote._process.pid)
    second = Sandbox(config, pool=pool)
    second.start()
    try:
        assert second._zygote is zygote  # the same zygote: B is A's sibling
        looked = exec_cell(second, LOOK_AROUND)
        assert looked["ok"], looked
    finally:
        second.close()
    assert "CODE OF A" not in second.output(), second.output()
    found = found_in(second.output())
    assert found["files"] == [], found
    assert found["shared"] == [] and not found["imported"], found
    assert Path(found["gzip"]).parent.name.startswith("python3"), found  # the standard library's
    assert found["env"] == [] and not found["module"], found
    assert found["add"] == 2 and found["seterr"] == "warn", found
    assert found["random"] == np.random.RandomState(0).random_sample(), found
    assert found["processes"] == [1, 2], found  # its init and itself: no A, no zygote
    walls = found["status"]
    assert int(walls["CapPrm"], 16) == int(walls["CapEff"], 16) == int(walls["CapAmb"], 16) == 0
    assert walls["NoNewPrivs"] == "1", walls
    assert walls["Seccomp"] == ("2" if "seccomp" in second.layers else "0"), walls
    if "uid" in second.layers:
        assert found["uid"] == zygote.uid != 0


@needs_zygote
def test_a_child_cannot_signal_or_trace_the_zygote(config: SandboxConfig,
                                                   pool: zygotes.ZygotePool) -> None:
    attack = r"""
import ctypes, os, signal
libc = ctypes.CDLL("libc.so.6", use_errno=True)
results = {}
for pid in (1, 2, 3, 4, 5):
    try:
        os.kill(pid, 0)
        results[pid] = "visible"
    except ProcessLookupError:
        results[pid] = "absent"
    except PermissionError:
        results[pid] = "denied"
traced = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to its init
results["ptrace"] = ctypes.get_errno() if traced != 0 else "attached"
print("FOUND " + __import__("json").dumps(results))
"""
    # everything it may signal (its own runtime too: that crash is the student's own)
    bomb = ("import os, signal\nfor sig in (signal.SIGTERM, signal.SIGKILL):\n"
            "    try:\n        os.kill(1, sig)\n    except OSError:\n        pass\n"
            "if os.fork() == 0:\n    os.kill(-1, signal.SIGKILL)\nos.wait()")
    with Sandbox(config, pool=pool) as first:
        answer = exec_cell(first, attack)
        zygote = first._zygote
        running = zygote_python(zygote)
        with pytest.raises(sandbox.SandboxCrashed) as crash:
            exec_cell(first, bomb)
        assert not isinstance(crash.value, sandbox.ZygoteLost)
    found = found_in(first.output())
    assert answer["ok"], answer
    assert found["3"] == found["4"] == found["5"] == "absent", found
    assert found["ptrace"] != "attached", found
    assert Path(f"/proc/{running}").exists() and zygote.alive
    with Sandbox(config, pool=pool) as second:
        assert second._zygote is zygote
        assert exec_cell(second, "x = 1")["ok"]


@needs_zygote
def test_a_child_cannot_read_the_next_ones_data(config: SandboxConfig, tmp_path: Path,
                                                pool: zygotes.ZygotePool) -> None:
    """A leaves a process that would read any descriptor it can find; it dies with A, and the
    only descriptors B's data arrives on belong to B's namespace alone."""
    data = tmp_path / "data"
    data.mkdir()
    for name in sandbox.DATA_FILES:
        np.save(data / f"{name}.npy", np.arange(10, dtype=np.uint8))
    snoop = r"""
import os
if os.fork() == 0:
    os.setsid()
    while True:
        for pid in os.listdir("/proc"):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
"""
    with Sandbox(dataclasses.replace(config, data_dir=data), pool=pool) as first:
        assert exec_cell(first, snoop)["ok"]
        zygote = first._zygote
    with Sandbox(dataclasses.replace(config, data_dir=data), pool=pool) as second:
        assert second._zygote is zygote
        look = "import os\nprint('FOUND', __import__('json').dumps(sorted(os.listdir('/proc'))))"
        assert exec_cell(second, look)["ok"]
    visible = [p for p in found_in(second.output()) if p.isdigit()]
    assert visible == ["1", "2"], visible


@needs_zygote
def test_a_child_killed_for_memory_or_time_does_not_break_the_next(
        config: SandboxConfig, pool: zygotes.ZygotePool) -> None:
    with Sandbox(config, pool=pool) as first:
        zygote = first._zygote
        hog = "import numpy as np\nx = [np.ones(1 << 27) for _ in range(100)]"
        answer = exec_cell(first, hog)
        assert not answer["ok"] and answer["out_of_memory"], answer
    with Sandbox(config, pool=pool) as second:
        assert second._zygote is zygote
        stubborn = ("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                    "while True:\n    pass")
        with pytest.raises(sandbox.SandboxTimedOut):
            exec_cell(second, stubborn, timeout=1)
    with Sandbox(config, pool=pool) as third:
        assert third._zygote is zygote and zygote.alive
        answer = exec_cell(third, "import numpy as np\nx = np.ones(10).sum()")
        assert answer["ok"], answer


@needs_zygote
def test_a_child_cannot_lower_its_memory_killer_score(config: SandboxConfig,
                                                      pool: zygotes.ZygotePool) -> None:
    """Score 1000 (the child is the kernel's first choice, never the zygote), in the child and
    in what it forks; lowering it fails, whoever tries."""
    attempt = r"""
import json, os
def lower():
    tried = {}
    for value in ("0", "-1000", "999"):
        try:
            with open("/proc/self/oom_score_adj", "w") as handle:
                handle.write(value)
            tried[value] = "written"
        except OSError as exc:
            tried[value] = exc.errno
    tried["now"] = int(open("/proc/self/oom_score_adj").read())
    return tried
reader, writer = os.pipe()
if os.fork() == 0:
    os.write(writer, json.dumps(lower()).encode())
    os._exit(0)
os.close(writer)
os.wait()
print("FOUND " + json.dumps({"runtime": lower(), "forked": json.loads(os.read(reader, 4096))}))
"""
    with Sandbox(config, pool=pool) as box:
        assert box._zygote is not None
        assert exec_cell(box, attempt)["ok"]
    found = found_in(box.output())
    for tried in found.values():
        assert tried["now"] == 1000, found
        assert all(tried[value] != "written" for value in ("0", "-1000", "999")), found


def cgroups_of(pid: int) -> dict[str, str]:
    """controller -> the cgroup (v1) the process is in."""
    found = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            found[controller] = path
    return found


@needs_zygote
@pytest.mark.skipif("cgroup" not in layers.available_layers(), reason="no memory cgroup here")
@pytest.mark.parametrize("zygote", ["auto", "off"])
def test_every_process_of_a_sandbox_is_in_its_cgroups(config: SandboxConfig, zygote: str,
                                                       monkeypatch,
                                                       pool: zygotes.ZygotePool) -> None:
    """Joined before the first instruction (a shell joins, then becomes bubblewrap): every
    process of a zygote and of the child it forks, or of a fresh sandbox, counts against the
    slot's memory and pids."""
    monkeypatch.setenv("GRADER_ZYGOTE", zygote)
    with Sandbox(config, pool=pool) as box:
        holder = box._zygote or box
        memory, pids = holder._cgroups
        assert exec_cell(box, "import time")["ok"]
        tree = [holder._process.pid, *descendants(holder._process.pid)]
        assert len(tree) >= (4 if zygote == "auto" else 2), tree  # bubblewrap, Python(s)
        for pid in tree:
            seen = cgroups_of(pid)
            assert seen["memory"].endswith(f"/{memory.name}"), (pid, seen)
            assert seen["pids"].endswith(f"/{pids.name}"), (pid, seen)


@needs_zygote
@pytest.mark.skipif("cgroup" not in layers.available_layers(), reason="no memory cgroup here")
def test_memory_spread_over_a_childs_processes_is_the_students(config: SandboxConfig,
                                                               pool: zygotes.ZygotePool) -> None:
    """The real thing where a memory cgroup holds the zygote and its child: the child tries to
    lower its score, then fills the cgroup from two processes. The kernel kills in the child,
    the student is told they ran out of memory, and the zygote serves the next child."""
    spread = r"""
import os, time
for value in ("-1000", "0"):
    try:
        open("/proc/self/oom_score_adj", "w").write(value)
    except OSError:
        pass
if os.fork() == 0:
    mine = b"c" * (150 << 20)
    time.sleep(1000)
time.sleep(1)
mine = b"p" * (450 << 20)  # each process under its own limit, the two together are not
"""
    small = dataclasses.replace(config, limits=Limits(memory_mb=600, scratch_mb=64))
    with Sandbox(small, pool=pool) as first:
        zygote = first._zygote
        running = zygote_python(zygote)
        with pytest.raises(sandbox.SandboxCrashed, match="ran out of memory") as crash:
            exec_cell(first, spread, timeout=20)
        assert not isinstance(crash.value, sandbox.ZygoteLost)
    assert zygote.alive and zygote_python(zygote) == running
    with Sandbox(small, pool=pool) as second:
        assert second._zygote is zygote
        assert exec_cell(second, "x = 1")["ok"]


@needs_zygote
@pytest.mark.parametrize("counted_by", ["cgroup", "machine"])
def test_a_zygote_killed_for_memory_is_the_students_out_of_memory(
        config: SandboxConfig, tmp_path: Path, monkeypatch, counted_by: str) -> None:
    """The zygote dies under a child while the kernel's memory killer counts a kill: in the
    zygote's own memory cgroup that is the student's out-of-memory at once; counted only
    machine-wide, it is once the machine's benefit of the doubt (a fresh zygote, the request
    again) and twice the student's. Either way the student's result says so and the
    submission's grading goes on (it never stops the batch)."""
    if counted_by == "cgroup" and "cgroup" not in layers.available_layers():
        pytest.skip("no memory cgroup here")
    kills = iter(range(1, 10_000))  # (each look finds one kill more: the kernel struck)
    if counted_by == "cgroup":
        monkeypatch.setattr(sandbox.Sandbox, "oom_kills", lambda self: next(kills))
    else:
        monkeypatch.setattr(sandbox, "machine_oom_kills", lambda: next(kills))
    hog = ("def hog(x):\n    import time\n    print('HOGGING', flush=True)\n"
           "    time.sleep(60)\n    return x\n")
    path = build_notebook(tmp_path, "backprop", name="hog", extra_cells=[hog])
    killed: list[int] = []
    stop = threading.Event()

    def kill_zygotes_under_hog() -> None:  # as the kernel would, each time the hog runs
        while not stop.wait(0.05):
            box = session._sandbox
            if box is None or box._zygote is None or "HOGGING" not in box.output():
                continue
            running = zygote_python(box._zygote)
            if running not in killed:
                killed.append(running)
                os.kill(running, signal.SIGKILL)

    with Session(read(path), config) as session:
        killer = threading.Thread(target=kill_zygotes_under_hog, daemon=True)
        killer.start()
        try:
            outcome = session.call("hog", [1], timeout=30)
        finally:
            stop.set()
            killer.join()
        assert not outcome.ok and outcome.kind == "crash", outcome
        assert "ran out of memory" in outcome.error, outcome
        assert len(killed) == (1 if counted_by == "cgroup" else 2), killed
        after = session.call("relu_forward", [np.array([-1.0, 2.0])], timeout=30, reply=[0])
        assert after.ok and after.value[0].tolist() == [0.0, 2.0], after


@needs_zygote
def test_a_dead_zygote_is_replaced_and_the_submission_graded(
        config: SandboxConfig, tmp_path: Path) -> None:
    """Killed between two requests of one submission: the request is answered by a fresh
    zygote's child, with the cells replayed; the student is told nothing, blamed for nothing."""
    path = build_notebook(tmp_path, "backprop", name="reference")
    with Session(read(path), config) as session:
        old = session._sandbox._zygote
        os.kill(zygote_python(old), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while old._process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # bubblewrap ends with it, and the child's namespace with that
        assert old._process.poll() is not None
        outcome = session.call("relu_forward", [np.array([-1.0, 2.0])], timeout=30, reply=[0])
        assert outcome.ok, outcome
        assert outcome.value[0].tolist() == [0.0, 2.0]
        assert session._sandbox._zygote is not old and session._sandbox._zygote.alive
        assert not any("stop" in n or "sandbox" in n for n in session.notices), session.notices


@needs_zygote
def test_a_child_that_cannot_start_is_the_machines_fault(tmp_path: Path, monkeypatch) -> None:
    """The zygote's child dies before its hello (here: limits it cannot apply): no student code
    ran, so grading stops instead of giving a zero."""
    monkeypatch.setattr(sandbox.Sandbox, "_rlimits", lambda self: {"no such limit": 1})
    student = build_notebook(tmp_path, "convolution", name="carol")
    job = grade.Job(student, rubric.load("convolution"), SandboxConfig.from_env())
    with pytest.raises(InfrastructureError, match="the sandbox could not start"):
        grade.grade_submission(job)


@needs_zygote
def test_where_no_zygote_starts_each_submission_gets_a_fresh_sandbox(
        config: SandboxConfig, monkeypatch) -> None:
    def refuse(self, timeout):
        raise sandbox.SandboxCrashed("refused for this test")

    monkeypatch.setattr(zygotes.Zygote, "_start", refuse)
    assert_a_fresh_sandbox_instead(config, monkeypatch, "refused for this test")


@needs_zygote
def test_where_a_childs_mounts_cannot_be_sealed_no_zygote_starts(
        config: SandboxConfig, tmp_path: Path, monkeypatch) -> None:
    """The zygote's own check at start fails (here: made to): rather than children that could
    leave files for the next, each submission gets a fresh sandbox, and the summary says why."""
    inside = tmp_path / "inside"
    shutil.copytree(sandbox.INSIDE_PACKAGE, inside)
    source = (inside / "zygote.py").read_text()
    probe = "def _probe_sealing() -> str:\n"
    assert probe in source
    (inside / "zygote.py").write_text(source.replace(
        probe, probe + "    return 'sealing refused for this test'\n", 1))
    monkeypatch.setattr(sandbox, "INSIDE_PACKAGE", inside)
    assert_a_fresh_sandbox_instead(
        config, monkeypatch, "the zygote did not start: sealing refused for this test")


def assert_a_fresh_sandbox_instead(config: SandboxConfig, monkeypatch, why: str) -> None:
    """With no zygote to be had (made so by the caller), a submission still runs, in a sandbox
    of its own, and the batch summary says why."""
    pool = zygotes.ZygotePool()  # (with no zygote yet, nor a failure)
    with Sandbox(config, pool=pool) as box:
        assert box._zygote is None
        assert exec_cell(box, "x = 1")["ok"]
    used, missing = layers.plan_layers(config.mode)
    assert f"fresh sandbox per submission (the zygote failed: {why})" in (
        zygotes.describe(used, missing, pool))


def test_the_plan_says_where_each_submission_runs(monkeypatch) -> None:
    """The batch summary's words: a zygote where children can have namespaces, a fresh sandbox
    per submission in the uid-drop mode (no namespaces) or when asked, an error for a typo."""
    monkeypatch.delenv("GRADER_ZYGOTE", raising=False)
    assert zygotes.process_pool().plan(["namespaces", "rlimits"])[0]
    used, reason = zygotes.process_pool().plan(["uid", "rlimits", "seccomp"])
    assert not used and "no namespaces" in reason
    monkeypatch.setenv("GRADER_ZYGOTE", "off")
    assert zygotes.process_pool().plan(["namespaces"]) == (
        False, "a fresh sandbox per submission (GRADER_ZYGOTE=off)")
    monkeypatch.setenv("GRADER_ZYGOTE", "sometimes")
    with pytest.raises(GraderError, match="GRADER_ZYGOTE must be auto or off"):
        zygotes.process_pool().plan(["namespaces"])


# --------------------------------------------------------------------------- a pool's zygotes


@pytest.fixture
def own_zygotes(monkeypatch, tmp_path: Path):
    """This test's own idle zygotes (closed after it), and a file naming the process that
    started each zygote."""
    launches = tmp_path / "launches"
    launch = zygotes.Zygote._launch

    def counted(self) -> None:
        launch(self)
        with open(launches, "a") as record:  # who started it, and its process
            record.write(f"{os.getpid()} {self._process.pid}\n")

    monkeypatch.setattr(zygotes.Zygote, "_launch", counted)
    yield launches


# A batch in a fresh interpreter, as the command line runs one: a process with threads (a
# test runner's, once a browser or Dask test ran in it) gets a fork server and lends nothing.
IN_A_FRESH_PROCESS = r"""
import dataclasses, json, os, sys
from pathlib import Path
from grader.checks import rubric
from grader.course import batch
from grader.run import zygote as zygotes
from grader.core.errors import InfrastructureError
from grader.run.layers import Limits, SandboxConfig

folder, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
started = []

def children_of(pid):
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found

def cores_of_zygote(outer):
    # bubblewrap, bubblewrap inside, then the zygote's Python: the last process of the line
    pid = outer
    while children_of(pid):
        pid = children_of(pid)[0]
    return sorted(os.sched_getaffinity(pid))
launch = zygotes.Zygote._launch

def counted(self):
    launch(self)
    started.append([os.getpid(), self._process.pid])

zygotes.Zygote._launch = counted
grade_encoded = batch.grade_encoded

def dies_on_untouched(job):
    if job.path.stem == "untouched":
        os._exit(9)
    return grade_encoded(job)

loaded = rubric.load("backprop")
loaded = dataclasses.replace(loaded, tests=tuple(
    t for t in loaded.tests if t.kind in ("example", "output", "gradient", "rules")))
config = SandboxConfig.from_env(limits=Limits(memory_mb=1024, scratch_mb=64))
report = {"me": os.getpid(), "runs": [], "error": None}
if mode == "dies":
    batch.grade_encoded = dies_on_untouched
for run in range(2 if mode == "twice" else 1):
    try:
        summary = batch.grade_all([folder], loaded, out / str(run), sandbox=config, jobs=2,
                                  progress=False, check_reference=False)
        scores = {r.student: r.score == loaded.max_score for r in summary.results}
    except InfrastructureError as error:
        scores, report["error"] = None, str(error)
    idle = [z._process.pid for z in zygotes.process_pool().idle if z.alive and not z.borrowed]
    report["runs"].append({"scores": scores, "idle": idle})
    report.setdefault("cores", []).append([cores_of_zygote(pid) for pid in sorted(idle)])
report["started"] = started
report["alive"] = [pid for _, pid in started if Path(f"/proc/{pid}").exists()
                   and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
print("REPORT " + json.dumps(report))
"""


def batch_in_a_fresh_process(tmp_path: Path, mode: str) -> dict:
    import subprocess
    import sys

    folder = tmp_path / "class"
    folder.mkdir()
    build_notebook(folder, "backprop", name="reference")
    build_notebook(folder, "backprop", name="untouched", template=True)
    build_notebook(folder, "backprop", name="again")
    script = tmp_path / "batch.py"
    script.write_text(IN_A_FRESH_PROCESS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "out"), mode],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(lines[-1][len("REPORT "):])


@needs_zygote
def test_pool_workers_borrow_the_batchs_zygotes(tmp_path: Path) -> None:
    """A two-worker batch starts two zygotes in its own process while it prepares, lends one
    to each worker, and keeps them: the next batch of the process starts none."""
    report = batch_in_a_fresh_process(tmp_path, "twice")
    for run in report["runs"]:
        assert run["scores"] == {"reference": True, "untouched": False, "again": True}
    assert [starter for starter, _ in report["started"]] == [report["me"]] * 2
    zygotes = sorted(pid for _, pid in report["started"])
    assert [sorted(run["idle"]) for run in report["runs"]] == [zygotes, zygotes]
    # each zygote forked where its borrower ran: on the worker's core, one each (a zygote
    # whose worker took no submission was never asked, and kept every core)
    cores = sorted(os.sched_getaffinity(0))
    for seen in report["cores"]:
        single = [one for one in seen if len(one) == 1]
        assert all(one in single or one == cores for one in seen), seen
        if len(cores) >= 2:
            assert single and len({tuple(one) for one in single}) == len(single), seen


@needs_zygote
def test_a_worker_that_dies_stops_the_batch_and_its_zygotes(tmp_path: Path) -> None:
    """A worker killed mid-batch (here: it exits on one submission) is the machine's fault:
    the batch stops with the reason, keeps what was written, and closes the zygotes it lent,
    whose state nobody can vouch for."""
    report = batch_in_a_fresh_process(tmp_path, "dies")
    assert "a grading worker died" in report["error"]
    assert report["runs"] == [{"scores": None, "idle": []}]
    assert len(report["started"]) == 2 and report["alive"] == []  # closed, reaped
    out = tmp_path / "out" / "0"
    assert not (out / "untouched.json").exists()
    assert (out / "grader-error.txt").exists()


def cores_seen(result) -> set[int]:
    """The cores the submission's sandbox could run on, as its extra cell printed them."""
    printed = [n for n in result.notices if "CORES" in n]
    assert len(printed) == 1, result.notices
    return set(json.loads(printed[0].split("CORES", 1)[1].split()[0]))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nothing to spread")
def test_each_pool_worker_and_its_sandboxes_keep_to_one_core(config: SandboxConfig,
                                                             tmp_path: Path) -> None:
    """Two workers on two or more cores: each worker, and every sandbox it starts, runs on a
    core of its own (they share its cache); the two workers on different cores."""
    folder = tmp_path / "class"
    folder.mkdir()
    report_cores = ("import os\n"
                    "print('CORES[' + ','.join(map(str, sorted(os.sched_getaffinity(0)))) + ']')")
    for number in range(6):
        build_notebook(folder, "backprop", name=f"s{number}", extra_cells=[report_cores])
    loaded = rubric.load("backprop")
    loaded = dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests
                                                     if t.kind in UNIT_KINDS))
    summary = batch.grade_all([folder], loaded, tmp_path / "out", sandbox=config, jobs=2,
                              progress=False, check_reference=False)
    seen = [cores_seen(r) for r in summary.results]
    assert all(len(cores) == 1 for cores in seen), seen
    assert len(set.union(*seen)) == 2, seen  # (6 submissions: both workers took some)
    alone = batch.grade_all([folder], loaded, tmp_path / "alone", sandbox=config, jobs=1,
                            progress=False, check_reference=False)
    assert all(cores_seen(r) == os.sched_getaffinity(0) for r in alone.results)


@needs_zygote
def test_a_lent_zygote_still_running_a_child_is_not_kept(config: SandboxConfig,
                                                         own_zygotes: Path,
                                                         pool: zygotes.ZygotePool) -> None:
    """A worker that ended without closing its sandbox leaves its zygote with a child: the
    lender asks the zygote, and closes it rather than keep it for the next batch."""
    box = Sandbox(config, pool=pool)
    box.start()
    try:
        lent = box._zygote
        assert exec_cell(box, "x = 1")["ok"] and lent.alive  # quiet channel, yet busy
        loan = zygotes.ZygoteLoan([lent], pool)
        loan.settle(clean=True)
        assert pool.idle == [] and lent._process is None  # closed
    finally:
        box.close()
    with Sandbox(config, pool=pool) as fresh:  # and the next sandbox is served at once
        assert exec_cell(fresh, "x = 2")["ok"]


def test_workers_get_a_physical_core_each_before_sharing_one(monkeypatch) -> None:
    """Four logical cores, two physical ones (siblings 0-2 and 1-3, as Linux often numbers
    them): two workers get cores 0 and 1, not the two threads of one core."""
    siblings = {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}
    read_text = Path.read_text

    def topology(path: Path, *args, **kwargs) -> str:
        if path.name == "thread_siblings_list":
            return siblings[int(path.parent.parent.name[3:])] + "\n"
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", topology)
    assert batch._one_thread_per_core_first([0, 1, 2, 3]) == [0, 1, 2, 3]
    siblings.update({1: "0,1", 0: "0,1", 2: "2,3", 3: "2,3"})
    assert batch._one_thread_per_core_first([0, 1, 2, 3]) == [0, 2, 1, 3]
