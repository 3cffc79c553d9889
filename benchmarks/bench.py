"""Where the grader's time and memory go: ``python -m benchmarks.bench`` (``make bench``).

Prints one table: the time of each grading stage and of each group of checks, the cost of one
submission without the student's own MNIST training, throughput with 1 and 2 workers, peak
memory per worker, MNIST loading cold and cached, the reference network's MNIST training, the
diagnostic's fixed-network training and the sandbox's start-up; then the class view of a
generated class of 300, and what large and hostile notebooks cost the grader's own process
(``--large`` for that table alone). Targets sit next to the figures; nothing here asserts, a
benchmark only reports.

The submissions are built from ``solutions/`` like the tests build theirs: each assignment's
reference and template, one notebook per bug of the bug-pattern corpus and one unreadable file.
Grading runs in child processes (``--child``, internal) so that each measurement starts from a
fresh interpreter, as ``python -m grader grade`` does, and so that the parent can watch their
process trees: peak memory is polled from /proc, because a sandbox is killed when its
submission is done and its usage never reaches ``getrusage(RUSAGE_CHILDREN)``.

Needs MNIST for the MNIST rows (``$MNIST_DIR``, as for the tests); without it those rows say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ("backprop", "convolution")
UNIT_KINDS = ("example", "output", "gradient", "rules")  # everything but the MNIST training
GROUPS = {"example": "example/output", "output": "example/output", "gradient": "gradient",
          "rules": "rules", "mnist": "mnist", "mnist_diagnostic": "mnist_diagnostic"}
TARGET_COST_S = 1.0
TARGET_NUMPY_RATIO = 2.0  # per-submission cost <= 2x `python -c 'import numpy'` (issue 14)
TARGET_SPEEDUP = 1.8  # issue 14
TARGET_MEMORY_MB = 1536.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
RESULT_PREFIX = "BENCH-RESULT "
# the throughput runs' memory poll: rarer than the stages' (0.05 s), whose peaks it measures,
# so that the poll's own CPU (~2 % of a core at 0.05 s) does not weigh on the 2-worker runs
THROUGHPUT_POLL_S = 0.25


# --- the submissions -----------------------------------------------------------------------


def class_copies(source: Path, folder: Path, copies: int) -> None:
    """The built submissions ``copies`` times over, each under its own file name: a batch the
    size of a class, where a batch's fixed costs (the pool and its warm sandboxes, the
    overview and class pages at the end) weigh on throughput as much as in a real course, not
    as much as in a batch of 23."""
    for notebook in sorted(source.rglob("*.ipynb")):
        target = folder / notebook.parent.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            shutil.copyfile(notebook, target / f"{notebook.stem}-{copy}.ipynb")


def build_submissions(folder: Path) -> dict[str, int]:
    """Reference, template, every corpus bug and one unreadable file, per assignment folder."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.conftest import build_notebook
    from tests.test_bug_patterns import BUGS

    counts = {"reference": 0, "template": 0, "buggy": 0, "unreadable": 0}
    for assignment in ASSIGNMENTS:
        (folder / assignment).mkdir(parents=True)
        build_notebook(folder / assignment, assignment, name="reference")
        build_notebook(folder / assignment, assignment, name="template", template=True)
        counts["reference"] += 1
        counts["template"] += 1
    for number, bug in enumerate(BUGS):
        build_notebook(folder / bug.assignment, bug.assignment, name=f"bug{number:02d}",
                       replace={bug.function: bug.code})
        counts["buggy"] += 1
    (folder / "backprop" / "unreadable.ipynb").write_text("{ this is not a notebook")
    counts["unreadable"] += 1
    return counts


def _unit_rubric(name: str):
    from grader.checks import rubric

    loaded = rubric.load(name)
    return dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests if t.kind in UNIT_KINDS))


# --- child processes: the measurements themselves --------------------------------------------


def child_stages(folder: Path, *, mnist_runs: int, starts: int) -> dict[str, Any]:
    """Grade every submission once, in this process, timing each stage and each group of
    checks; then the reference with MNIST; then bare sandbox starts."""
    from grader.checks import kinds, rubric
    from grader.course import batch
    from grader.grading.grade import Job
    from grader.render import report
    from grader.run import mnist, zygote
    from grader.run.layers import SandboxConfig
    from grader.run.sandbox import Sandbox

    current: dict[str, float] = {}

    def timed(runner: Callable) -> Callable:
        def wrapper(spec, context):
            began = time.perf_counter()
            try:
                return runner(spec, context)
            finally:
                group = GROUPS.get(spec.kind, spec.kind)
                current[group] = current.get(group, 0.0) + time.perf_counter() - began

        return wrapper

    for kind in kinds.KINDS:  # (each kind's run, timed: the instance's own attribute)
        kind.run = timed(kind.run)  # type: ignore[method-assign]
    render = report.render_student

    def timed_render(result, **kwargs):
        began = time.perf_counter()
        try:
            return render(result, **kwargs)
        finally:
            current["render"] = time.perf_counter() - began

    report.render_student = timed_render
    config = SandboxConfig.from_env()
    out: dict[str, Any] = {"records": [], "warmup": [], "mnist": [], "starts": [], "notes": []}

    for assignment in ASSIGNMENTS:
        unit = _unit_rubric(assignment)
        paths = sorted((folder / assignment).glob("*.ipynb"))
        reference = folder / assignment / "reference.ipynb"
        began = time.perf_counter()  # the first: probes (once per process), reference load
        batch.grade_one(Job(reference.resolve(), unit, config))
        out["warmup"].append(time.perf_counter() - began)
        for path in paths:
            current.clear()
            began = time.perf_counter()
            data, _ = batch.grade_one(Job(path.resolve(), unit, config))
            out["records"].append({
                "assignment": assignment, "name": path.stem, "wall": time.perf_counter() - began,
                "timings": data["timings"], "groups": dict(current), "error": data["error"],
            })

    try:
        files = mnist.prepare(download=False)
    except mnist.MnistError as exc:
        out["notes"].append(f"MNIST rows skipped: {str(exc).splitlines()[0][:160]}")
        files = None
    if files is not None:
        full = rubric.load("backprop")
        kinds = {t.name: t.kind for t in full.tests}
        mnist_config = dataclasses.replace(config, data_dir=files.sandbox_dir)
        reference = (folder / "backprop" / "reference.ipynb").resolve()
        for _ in range(mnist_runs):
            current.clear()
            began = time.perf_counter()
            data, _ = batch.grade_one(Job(reference, full, mnist_config, files))
            tests = {kinds[t["name"]]: t for t in data["tests"]}
            for kind in ("mnist", "mnist_diagnostic"):
                if tests[kind]["status"] != "passed":
                    out["notes"].append(f"the reference's {kind} test did not pass: "
                                        f"{tests[kind]['message'][:160]}")
            details = tests["mnist"]["details"]
            out["mnist"].append({
                "wall": time.perf_counter() - began, "groups": dict(current),
                "train": details.get("train_seconds"), "predict": details.get("predict_seconds"),
            })

    for _ in range(starts):
        box = Sandbox(config, pool=zygote.process_pool())
        began = time.perf_counter()
        box.start()
        started = time.perf_counter()
        box.close()
        out["starts"].append((started - began, time.perf_counter() - started))
    return out


def child_throughput(folder: Path, out_dir: Path, *, jobs: int,
                     one_core: bool = False) -> dict[str, Any]:
    """What ``python -m grader grade --jobs N --force`` does for each assignment, minus the
    MNIST kinds; the clock starts after the imports, so the pool's start-up counts.
    ``one_core``: this process, and so its sandboxes, held to one core."""
    if one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from grader.course import batch
    from grader.course.batch import grade_all
    from grader.run.layers import SandboxConfig, plan_layers

    config = SandboxConfig.from_env()
    plan_layers(config.mode)  # as the command line does before grading
    rubrics = {name: _unit_rubric(name) for name in ASSIGNMENTS}
    grading = _time_grading(batch)
    began = time.perf_counter()
    scores = {}
    for name in ASSIGNMENTS:
        summary = grade_all([folder / name], rubrics[name], out_dir / name, sandbox=config,
                            jobs=jobs, force=True, progress=False)
        scores.update({f"{name}/{r.student}": r.score for r in summary.results})
    wall = time.perf_counter() - began
    grading_wall = sum(grading)
    began, rescored = time.perf_counter(), 0  # then a points-only rubric change (issue 14)
    for name in ASSIGNMENTS:
        summary = grade_all([folder / name], _points_changed(rubrics[name]), out_dir / name,
                            sandbox=config, jobs=jobs, progress=False, check_reference=False)
        rescored += summary.rescored
    return {"wall": wall, "count": len(scores), "scores": scores, "grading_wall": grading_wall,
            "rescore_wall": time.perf_counter() - began, "rescored": rescored}


def _time_grading(batch) -> list[float]:
    """The grading phase of each batch (first job out to last result written): what more
    workers can shorten. The rest of a run (canary, reference answers, the class's pages at
    the end) is serial, and bounds the speed-up (Amdahl)."""
    spent: list[float] = []
    execute = batch._execute

    def timed(*args, **kwargs):
        began = time.perf_counter()
        yield from execute(*args, **kwargs)
        spent.append(time.perf_counter() - began)

    batch._execute = timed
    return spent


def _points_changed(loaded):
    """The rubric with one more point on every test: a change for scoring alone."""
    tests = tuple(dataclasses.replace(t, points=t.points + 1) for t in loaded.tests)
    return dataclasses.replace(loaded, tests=tests, sha256=loaded.sha256 + "+points")


# --- watching a child's process tree ---------------------------------------------------------


class TreeMonitor(threading.Thread):
    """Polls /proc: peak RSS per worker (the worker plus its sandboxes) and of the whole tree,
    and the machine's busy time over the run (``run_child`` takes the run's own CPU from the
    kernel's accounts), so that the load of *other* processes during a run can be estimated.

    A worker is the root itself (one worker) or a long-lived copy of it: forked by the pool, or
    by a fork server. A process that is a copy of its parent and younger than ``TRANSIENT_S``
    is a ``subprocess`` child between fork and exec (a sandbox starting): its pages are its
    parent's, so it is left out rather than counted twice."""

    TRANSIENT_S = 0.25

    def __init__(self, root: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peaks: dict[int, int] = {}  # worker pid -> peak bytes
        self.whole_peak = 0  # the whole tree's peak bytes
        self._halt = threading.Event()
        self._busy_start = _busy_ticks()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.busy = _busy_ticks()[0] - self._busy_start[0]

    def sample(self) -> None:
        table = _processes()
        with open("/proc/uptime") as handle:
            now = float(handle.read().split()[0])
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_) in table.items():
            children.setdefault(ppid, []).append(pid)
        tree = [pid for pid in _subtree(self.root, children) if pid in table]
        commands = {pid: _cmdline(pid) for pid in tree}

        def copy(pid: int) -> bool:
            return commands.get(pid) == commands.get(table[pid][0])

        def transient(pid: int) -> bool:
            return copy(pid) and now - table[pid][3] / CLK_TCK < self.TRANSIENT_S

        workers = []
        for child in children.get(self.root, []):
            if "multiprocessing.forkserver" in commands.get(child, ""):
                workers += [w for w in children.get(child, []) if not transient(w)]
            elif child in commands and copy(child) and not transient(child):
                workers.append(child)
        for worker in workers or [self.root]:
            rss = sum(table[pid][1] for pid in _subtree(worker, children)
                      if pid in table and pid in commands and not transient(pid))
            self.peaks[worker] = max(self.peaks.get(worker, 0), rss)
        # the whole run: a pool's workers borrow zygotes their parent started, so sandboxes
        # are not below the worker that uses them
        whole = sum(table[pid][1] for pid in tree if pid in commands and not transient(pid))
        self.whole_peak = max(self.whole_peak, whole)


def _processes() -> dict[int, tuple[int, int, int, int]]:
    """pid -> (ppid, rss bytes, utime+stime ticks, start ticks) of every process now."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # fields[0] is field 3, the state
        found[int(entry.name)] = (int(fields[1]), int(fields[21]) * PAGE_BYTES,
                                  int(fields[11]) + int(fields[12]), int(fields[19]))
    return found


def _subtree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue += children.get(pid, [])
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _busy_ticks() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def _cpu_of_this_and_children() -> float:
    import resource

    return sum(usage.ru_utime + usage.ru_stime for usage in (
        resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_child(args: list[str], *,
              interval: float = 0.05) -> tuple[dict[str, Any], dict[str, float]]:
    """Run ``--child ...`` in a fresh interpreter; its result and what the monitor saw,
    polling every ``interval`` seconds (each poll reads every process's /proc files: about a
    millisecond of CPU, taken from the workers when they use every core)."""
    command = [sys.executable, "-m", "benchmarks.bench", "--child", *args]
    began, spent_before = time.perf_counter(), _cpu_of_this_and_children()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    monitor = TreeMonitor(process.pid, interval)
    monitor.start()
    stdout, stderr = process.communicate()
    monitor.stop()
    wall = time.perf_counter() - began
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"benchmark child {' '.join(args[:1])} failed (exit {process.returncode})")
    # the child and every descendant, counted by the kernel as each is reaped (a poll misses
    # the short-lived sandboxes), and this process's own polling
    ours = _cpu_of_this_and_children() - spent_before
    workers = {pid: peak for pid, peak in monitor.peaks.items() if pid != process.pid}
    peaks = workers or monitor.peaks  # the root counts where it was the only worker
    seen = {
        "peak_mb": max(peaks.values(), default=0) / 2**20,
        "whole_mb": monitor.whole_peak / 2**20,
        "workers": len(peaks),
        "other_cores": max(monitor.busy / CLK_TCK - ours, 0.0) / wall,
    }
    return json.loads(lines[-1][len(RESULT_PREFIX):]), seen


# --- MNIST loading (in this process) ---------------------------------------------------------


def numpy_import_times(runs: int = 7) -> list[float]:
    """Wall time of ``python -c 'import numpy'`` with this interpreter: the yardstick for the
    per-submission cost, measured in the same run on the same (busy) machine."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True)
        times.append(time.perf_counter() - began)
    return times


def machine_scaling(starts: int = 20) -> list[float]:
    """This machine's own speed-up from a second process on start-up work like a sandbox's
    (``python -c 'import numpy'``, ``starts`` times in one process, then half each in two at
    once): the ceiling the grader's 2-worker figure should be read against. A pure CPU loop
    scales 2x here; starting processes and mapping their files does not."""
    command = [sys.executable, "-c", "import numpy"]
    ratios = []
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(starts):
            subprocess.run(command, check=True)
        one = time.perf_counter() - began
        script = f"for i in $(seq {starts // 2}); do {' '.join(map(shlex.quote, command))}; done"
        began = time.perf_counter()
        pair = [subprocess.Popen(["bash", "-c", script]) for _ in range(2)]
        for process in pair:
            process.wait()
        ratios.append(one / (time.perf_counter() - began))
    return ratios


def mnist_loading() -> dict[str, float] | str:
    from grader.run import mnist

    source = os.environ.get("MNIST_DIR")
    if not source or not Path(source).is_dir():
        return "MNIST_DIR is not set to a folder with the four gzip files"
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mnist-") as scratch:
        for label, cache in (("load", Path(scratch, "a")), ("prepare", Path(scratch, "b"))):
            for state in ("cold", "cached"):
                began = time.perf_counter()
                if label == "load":
                    for split in ("train", "test"):
                        images, labels = mnist.load(split, data_dir=Path(source), cache_dir=cache,
                                                    download=False)
                        del images, labels
                else:
                    mnist.prepare(data_dir=Path(source), cache_dir=cache, download=False)
                times[f"{label}_{state}"] = time.perf_counter() - began
    return times


# --- the table -------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1.0:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def row(label: str, values: Iterable[float | None], target: str = "", verdict: str = "",
        fmt: Callable[[float], str] = seconds, worse: Callable = max) -> list[str]:
    present = [v for v in values if v is not None]
    if not present:
        return [label, "0", "n/a", "", target, verdict]
    worst = fmt(worse(present)) if len(present) > 1 else ""
    return [label, str(len(present)), fmt(statistics.median(present)), worst, target, verdict]


def check(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def render(rows: list[list[str]], title: str, notes: list[str]) -> str:
    header = ["measure", "n", "median", "worst", "target", ""]
    table = [header, *(r for r in rows if r[1] != "#")]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    align = ["<", ">", ">", ">", "<", "<"]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(r) if r[1] != "#" else f"-- {r[0]}" for r in rows]
    return "\n".join([title, line(header), rule, *body, rule, *notes])


def busy_note(others: float) -> str:
    if others <= 1.2:  # (what the runs' sandboxes leave unaccounted stays below that)
        return ""
    return (": with 2 workers on 2 cores whatever they take is missing, so the 2-worker figures "
            "are low; rerun on an idle machine")


def section(name: str) -> list[str]:
    return [name, "#", "", "", "", ""]


def report_table(counts: dict[str, int], stages: dict[str, Any], throughput: dict[int, list],
                 loading: dict[str, float] | str, stage_seen: dict[str, float]) -> str:
    records = stages["records"]
    graded = [r for r in records if not r["error"]]

    def timing(key: str) -> list[float]:
        return [r["timings"][key] for r in records if key in r["timings"]]

    def group(key: str, source: list[dict] = graded) -> list[float]:
        return [r["groups"][key] for r in source if key in r["groups"]]

    cost = [r["wall"] for r in records]
    rows = [section("stages, per submission (MNIST kinds excluded, one warm worker)")]
    rows += [
        row("read notebook", timing("read_notebook")),
        row("sandbox start", timing("sandbox_start")),
        row("run cells", timing("run_cells")),
        row("checks: example/output", group("example/output")),
        row("checks: gradient", group("gradient")),
        row("checks: rules", group("rules")),
        row("checks, all of them", timing("checks")),
        row("render the HTML page", group("render", records)),
    ]
    mnist = stages["mnist"]
    train = [m["train"] for m in mnist]
    rows += [
        row("checks: MNIST training (reference train_mnist)", train),
        row("checks: MNIST prediction (reference predict)", [m["predict"] for m in mnist]),
        row("checks: MNIST rest (data refs, accuracy, feedback)",
            [m["groups"]["mnist"] - (m["train"] or 0) - (m["predict"] or 0)
             for m in mnist if "mnist" in m["groups"]]),
        row("checks: MNIST diagnostic (1 fixed-network training)",
            [m["groups"].get("mnist_diagnostic") for m in mnist]),
        row("whole reference backprop grading, with MNIST", [m["wall"] for m in mnist]),
    ]
    rows.append(section("cost per submission"))
    rows += [
        row("per submission, MNIST kinds excluded", cost, f"<= {TARGET_COST_S:g} s",
            check(bool(cost) and statistics.median(cost) <= TARGET_COST_S)),
        row("first submission of each assignment in a worker", stages["warmup"]),
        row(f"sandbox start-up (median of {len(stages['starts'])} starts)",
            [s[0] for s in stages["starts"]]),
        row("sandbox tear-down", [s[1] for s in stages["starts"]]),
    ]
    imports = stages.get("numpy_import", [])
    if imports and cost:
        ratio = statistics.median(cost) / statistics.median(imports)
        rows += [
            row("python -c 'import numpy', same run", imports),
            ["per submission / python -c 'import numpy' (medians)", "1", f"{ratio:.1f}x", "",
             f"<= {TARGET_NUMPY_RATIO:g}x", check(ratio <= TARGET_NUMPY_RATIO)],
        ]
    rows.append(section("MNIST data"))
    if isinstance(loading, str):
        rows.append(["MNIST load and prepare", "0", "n/a", "", loading, ""])
    else:
        rows += [
            row("MNIST load train+test, cold (gzip -> fresh cache)", [loading["load_cold"]]),
            row("MNIST load train+test, cached (memory-mapped)", [loading["load_cached"]]),
            row("MNIST prepare for the sandbox, cold", [loading["prepare_cold"]]),
            row("MNIST prepare, cached", [loading["prepare_cached"]]),
        ]
    total = throughput[1][0][0]["count"] if throughput.get(1) else 0
    rows.append(section(f"throughput: a class of {total} submissions (the built ones, several "
                        f"times), both assignments, MNIST kinds excluded, fresh process per run"))
    rate = {jobs: [r["count"] / r["wall"] for r, _ in runs] for jobs, runs in throughput.items()}
    for jobs in throughput:
        rows.append(row(f"{jobs} worker{'s' * (jobs > 1)}: submissions per second", rate[jobs],
                        fmt=lambda v: f"{v:.2f}/s", worse=min))
    speedups = [b / a for a, b in zip(rate.get(1, []), rate.get(2, []))]
    if speedups:
        median = statistics.median(speedups)
        rows.append(["2 workers vs 1 (paired runs; worst = lowest)", str(len(speedups)),
                     f"{median:.2f}x", f"{min(speedups):.2f}x" if len(speedups) > 1 else "",
                     f">= {TARGET_SPEEDUP:g}x", check(median >= TARGET_SPEEDUP)])
        # On a shared machine the pair that others disturbed least says most about the grader.
        load = [max(a[1]["other_cores"], b[1]["other_cores"])
                for a, b in zip(throughput[1], throughput[2])]
        quiet = min(range(len(speedups)), key=load.__getitem__)
        rows.append([f"2 workers vs 1, least disturbed pair (unaccounted {load[quiet]:.2f} cores)",
                     "1", f"{speedups[quiet]:.2f}x", "", f">= {TARGET_SPEEDUP:g}x",
                     check(speedups[quiet] >= TARGET_SPEEDUP)])
    ceiling = stages.get("machine_scaling", [])
    if ceiling:
        rows.append(["this machine: 2 processes vs 1 starting python -c 'import numpy'",
                     str(len(ceiling)), f"{statistics.median(ceiling):.2f}x",
                     f"{min(ceiling):.2f}x", "", ""])
    held = [r["count"] / r["wall"] for r in stages.get("one_core", [])]
    if held and rate.get(2):
        # one worker alone also uses the second core a little (the grader and its sandbox
        # overlap): held to one core it is what two cores could at best double
        rows.append(row("1 worker held to one core: submissions per second", held,
                        fmt=lambda v: f"{v:.2f}/s", worse=min))
        rows.append(["2 workers vs 1 held to one core (medians)", str(len(held)),
                     f"{statistics.median(rate[2]) / statistics.median(held):.2f}x", "", "", ""])
    phase = {jobs: [r["grading_wall"] for r, _ in runs if "grading_wall" in r]
             for jobs, runs in throughput.items()}
    serial = {jobs: [r["wall"] - r["grading_wall"] for r, _ in runs if "grading_wall" in r]
              for jobs, runs in throughput.items()}
    for jobs in throughput:
        rows.append(row(f"{jobs} worker{'s' * (jobs > 1)}: grading phases (first job to last "
                        f"result)", phase[jobs]))
        rows.append(row(f"{jobs} worker{'s' * (jobs > 1)}: the rest of the run (serial: "
                        f"canary, reference, pages)", serial[jobs]))
    phase_speedups = [a / b for a, b in zip(phase.get(1, []), phase.get(2, []))]
    if phase_speedups:
        rows.append(["2 workers vs 1, grading phases only (paired)", str(len(phase_speedups)),
                     f"{statistics.median(phase_speedups):.2f}x",
                     f"{min(phase_speedups):.2f}x" if len(phase_speedups) > 1 else "", "", ""])
    rescoring = [r["rescore_wall"] / r["count"] for runs in throughput.values() for r, _ in runs
                 if "rescore_wall" in r]
    if rescoring:
        counted = [r["rescored"] for runs in throughput.values() for r, _ in runs]
        rows.append(row(f"re-score after points change ({min(counted)}/{total} not run), each",
                        rescoring, "< 0.1 s",
                        check(statistics.median(rescoring) < 0.1)))
    rows.append(section("peak memory per worker (RSS; for a pool, the whole run's over its "
                        "workers)"))
    memory_rows = [("grading with MNIST (reference training)", [stage_seen["peak_mb"]])]
    memory_rows += [(f"throughput runs, {jobs} worker{'s' * (jobs > 1)}: whole run / {jobs}",
                     [seen["whole_mb"] / jobs for _, seen in runs])
                    for jobs, runs in throughput.items()]
    peak = max((max(v) for _, v in memory_rows if v), default=0.0)
    for number, (label, values) in enumerate(memory_rows):
        last = number == len(memory_rows) - 1
        rows.append(row(label, values, f"<= {TARGET_MEMORY_MB / 1024:g} GB" if last else "",
                        check(peak <= TARGET_MEMORY_MB) if last else "",
                        fmt=lambda v: f"{v:.0f} MB"))

    from grader.run.layers import SandboxConfig, plan_layers

    mode = SandboxConfig.from_env().mode
    used, _ = plan_layers(mode)
    title = (f"Grader benchmark: {sum(counts.values())} submissions ({counts['reference']} "
             f"reference, {counts['template']} template, {counts['buggy']} buggy, "
             f"{counts['unreadable']} unreadable), {os.cpu_count()} cores, sandbox {mode}: "
             f"{'+'.join(used) or 'none'}")
    others = max([seen["other_cores"] for runs in throughput.values() for _, seen in runs],
                 default=0.0)
    runs = [result for outcomes in throughput.values() for result, _ in outcomes]
    differ = sorted({key for run in runs for key, score in run["scores"].items()
                     if score != runs[0]["scores"].get(key)})
    notes = [
        "median/worst over submissions (stages), over runs (throughput, memory); "
        "'worst' of the speed-up is its lowest value.",
        "Per-submission cost = grade_one's wall time (slot, grading, rendering) with the rubric "
        "restricted to the example, output, gradient and rules kinds.",
        f"Busy time no process of the runs accounts for: up to {others:.2f} cores during the "
        f"throughput runs (the machine's busy time minus the CPU the kernel counted for the run "
        f"and this benchmark's polling). Most of it is the sandboxes' own: bubblewrap never "
        f"hands its processes' CPU back to the kernel's account of the run: about 0.5 cores "
        f"with 1 worker and 0.9 with 2 on this project's idle machine, whose kernel threads "
        f"took 0.01. The rest is other processes{busy_note(others)}.",
        *stages["notes"],
    ]
    if differ:
        notes.append(f"WARNING: scores differ between throughput runs for {', '.join(differ)}")
    return render(rows, title, notes)


def class_view_seconds(runs: int = 3) -> list[float]:
    """``grader.render.classview.write`` (every function page and the similarity page) on a
    generated
    class of 300 with known bugs and copies (tests/classgen.py), from stored results only."""
    from grader.checks import rubric
    from grader.render import classview
    from tests.classgen import make_class

    generated = make_class(correct=150, divide_again=60, transposed=40, unshifted=43)
    loaded = rubric.load("backprop")
    times = []
    for _ in range(runs):
        classview.forget()  # each run cold: no sources remembered from the run before
        with tempfile.TemporaryDirectory(prefix="grader-class-view-") as out:
            started = time.perf_counter()
            classview.write(generated.results, Path(out), loaded)
            times.append(time.perf_counter() - started)
    return times


def class_view_table() -> str:
    label = "class view, 300 generated submissions (9 function pages + similarity)"
    return render([row(label, class_view_seconds(), "seconds")], "Class view", [])


# --- large and hostile notebooks: the grader's own work on one submission's text --------------

LARGE_RUNS = 3
TARGET_TEXT_S = 2.0  # issue 21: "at most a few seconds" of the grader's own process
REDEFINITION = "def conv1d(x, w, stride=1):\n    return x\n"
CONVOLUTION_FUNCTIONS = ("conv1d", "conv2d", "max_pool2d", "avg_pool2d", "conv2d_forward",
                         "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward")


def large_notebooks(folder: Path) -> dict[str, Path]:
    """The convolution reference with one more cell each: the attacks of issue 21 on the
    grader's own reading (ten thousand unary minus signs; 4,000 and 40,000 redefinitions in a
    cell; 2 MB of code in cells just under the cap), every function kept at the most the
    reader keeps of a text slow to compare and to highlight (one helper of 9,000 characters
    of ``a=1;`` that all of them call), and a notebook near the size limit."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from grader.core import notebook
    from tests.conftest import build_notebook

    per_cell = notebook.MAX_CELL_CHARS // len(REDEFINITION)
    extra = {
        "reference (an honest notebook)": [],
        "10,000 unary minus signs": ["z = " + "-" * 10_000 + "1"],
        "4,000 redefinitions in a cell (200 KB)": [REDEFINITION * 4_000],
        "40,000 redefinitions in a cell (2 MB)": [REDEFINITION * 40_000],
        "2 MB in cells under the cap": [REDEFINITION * per_cell] * (40_000 // per_cell),
        "every function as long as kept, slow to compare and to lex": [
            "def _helper(x):\n" + ("    " + "a=1;" * 20 + "\n") * 110 + "".join(
                f"def {name}(x, *args):\n    return _helper(x)\n"
                for name in CONVOLUTION_FUNCTIONS)],
    }
    folder.mkdir(parents=True, exist_ok=True)
    built = {label: build_notebook(folder, "convolution", name=f"large-{number}",
                                   extra_cells=cells)
             for number, (label, cells) in enumerate(extra.items())}
    huge = build_notebook(folder, "convolution", name="large-huge")
    document = json.loads(huge.read_text())
    lines = REDEFINITION.splitlines(keepends=True) * (120_000_000 // len(REDEFINITION))
    document["cells"].append(nbformat_cell(lines))  # as Jupyter saves it: a list of lines
    with huge.open("w") as handle:
        json.dump(document, handle)  # (written as it is encoded: no 120 MB string here)
    return {**built, "120 MB of code in a cell, as Jupyter saves it": huge}


def nbformat_cell(lines: list[str]) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "id": "large", "metadata": {},
            "outputs": [], "source": lines}


def child_large(path: Path, *, scan: bool) -> dict[str, Any]:
    """One notebook's text through what the grader does with it in its own process: read it
    and keep its functions' sources (``grade``), fingerprint and highlight them for the class
    pages (``classview.prepare``, then the pages' own work with nothing remembered), and the
    forbidden-calls scan, which reads the same text (another step's, for comparison). CPU
    time of this process, which is what the grader spends: on a shared machine its wall time
    doubles with the load."""
    from grader.checks import rubric, shortcuts
    from grader.core import notebook
    from grader.core.results import SubmissionResult
    from grader.render import classview

    loaded = rubric.load("convolution")
    classview.warm_up(loaded)
    timings: dict[str, float] = {}
    started = time.process_time()
    read = notebook.read(path)
    if isinstance(read, notebook.UnreadableNotebook):
        raise SystemExit(f"{path.name}: {read.error}")
    sources = read.function_sources(list(loaded.functions))
    timings["read"] = time.process_time() - started
    result = SubmissionResult("large", "convolution", path.name, read.sha256, None, (), (),
                              "bench", 0.0, sources=sources)
    started = time.process_time()
    classview.forget()
    classview.prepare(result, loaded)
    for name, source in sources.items():
        classview._normalised(source)
        classview.similarity.fingerprints(name, source)
        classview._code(source, (1, 2))
    timings["class_view"] = time.process_time() - started
    timings["peak_mb"] = _high_water_mb()
    if scan:
        started = time.process_time()
        shortcuts.scan(read)
        timings["scan"] = time.process_time() - started
    timings["bytes"] = path.stat().st_size
    return timings


def _high_water_mb() -> float:
    """This process's peak resident memory since it started (``ru_maxrss`` would carry the
    peak of the process it was forked from across ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def large_notebook_table() -> str:
    rows = [section("the grader's own process on one notebook's text: CPU time, median of "
                    f"{LARGE_RUNS} fresh processes (the sandbox's run of it is not counted)")]
    with tempfile.TemporaryDirectory(prefix="grader-bench-large-") as scratch:
        for label, path in large_notebooks(Path(scratch)).items():
            scan = path.stat().st_size < 10 << 20  # (it parses all: 120 MB would take GBs)
            runs = [run_child(["large", str(path), "scan" if scan else "no-scan"])[0]
                    for _ in range(LARGE_RUNS)]
            size = runs[0]["bytes"]
            shown = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.0f} KB"
            read = [r["read"] for r in runs]
            target = TARGET_TEXT_S * max(1.0, size / (100 << 20))  # linear beyond 100 MB
            rows.append(row(f"{label} ({shown}): read, sources kept", read,
                            f"<= {target:.1f} s", check(max(read) <= target)))
            rows.append(row("  the class pages' work on its sources",
                            [r["class_view"] for r in runs], f"<= {TARGET_TEXT_S:g} s",
                            check(max(r["class_view"] for r in runs) <= TARGET_TEXT_S)))
            rows.append(row("  the forbidden-calls scan of it (grader.checks.shortcuts)",
                            [r.get("scan") for r in runs]))
            rows.append(row("  peak memory of the process, before the scan",
                            [r["peak_mb"] for r in runs],
                            fmt=lambda v: f"{v:.0f} MB"))
    notes = ["A cell longer than notebook.MAX_CELL_CHARS, or beyond MAX_READ_CHARS of code in "
             "all, runs in the sandbox but is not read by the grader (the student is told): "
             "reading is then linear in the file (JSON, the sources joined, the hash), "
             f"{TARGET_TEXT_S:g} s per 100 MB at most. The scan is another step's and is not "
             "capped yet; it is not run on the 120 MB notebook. Peak memory includes Python, "
             "NumPy and the grader's modules (about 60 MB)."]
    return render(rows, "Large and hostile notebooks", notes)


# --- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="throughput runs per worker count")
    parser.add_argument("--copies", type=int, default=4,
                        help="throughput batch: the built submissions this many times over")
    parser.add_argument("--sandbox-starts", type=int, default=20)
    parser.add_argument("--mnist-runs", type=int, default=2)
    parser.add_argument("--class-view", action="store_true",
                        help="only the class view's row (no grading)")
    parser.add_argument("--large", action="store_true",
                        help="only the large and hostile notebooks' table (no grading)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)
    if args.class_view:
        print(class_view_table())
        return 0
    if args.large:
        print(large_notebook_table())
        return 0

    with tempfile.TemporaryDirectory(prefix="grader-bench-") as scratch:
        folder = Path(scratch)
        counts = build_submissions(folder / "submissions")
        class_copies(folder / "submissions", folder / "class", args.copies)
        throughput: dict[int, list] = {1: [], 2: []}
        for number in range(args.repeats):
            for jobs in ((1, 2) if number % 2 == 0 else (2, 1)):
                out = folder / f"out-{jobs}-{number}"
                throughput[jobs].append(run_child(["throughput", str(folder / "class"),
                                                   str(out), str(jobs)],
                                                  interval=THROUGHPUT_POLL_S))
        stages, stage_seen = run_child(["stages", str(folder / "submissions"),
                                        str(args.mnist_runs), str(args.sandbox_starts)])
        stages["one_core"] = [
            run_child(["throughput", str(folder / "class"), str(folder / f"out-held-{n}"), "1",
                       "one-core"], interval=THROUGHPUT_POLL_S)[0]
            for n in range(min(args.repeats, 3))]
        stages["numpy_import"] = numpy_import_times()
        stages["machine_scaling"] = machine_scaling()
        loading = mnist_loading()
        print(report_table(counts, stages, throughput, loading, stage_seen))
    print(class_view_table())
    print(large_notebook_table())
    return 0


def _child(argv: list[str]) -> int:
    mode, folder, *rest = argv
    if mode == "stages":
        result = child_stages(Path(folder), mnist_runs=int(rest[0]), starts=int(rest[1]))
    elif mode == "large":
        result = child_large(Path(folder), scan=rest == ["scan"])
    elif mode == "throughput":
        result = child_throughput(Path(folder), Path(rest[0]), jobs=int(rest[1]),
                                  one_core=rest[2:] == ["one-core"])
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
