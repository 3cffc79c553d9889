"""nbgrader beside this grader: ``python -m benchmarks.peer`` (``make bench-peer``).

Times ``nbgrader autograde`` and ``python -m grader grade`` on the same example submissions
(``submissions/convolution``), back to back in one run, and prints one table: total and
per-submission wall time of each tool and their ratio. Both run one notebook at a time (nbgrader
autogrades in one process; the grader gets ``--jobs 1``); nbgrader executes the notebooks in a
plain Jupyter kernel with no sandbox, the grader in its sandbox.

nbgrader needs a course: this builds one in a temporary folder. Its source notebook is
``solutions/<assignment>.ipynb`` with nbgrader's cell metadata: each cell with solution markers
becomes an autograded answer, and each test of the rubric with points becomes an autograder-test
cell (hidden tests inside nbgrader's hidden-test markers) that calls the same student functions
on the same inputs as the grader (drawn by ``grader.checks.inputs`` from the rubric's seed) and
asserts
the reference's values within the grader's default tolerance. The example submissions carry no
nbgrader metadata, and nbgrader matches cells by it, so each submission is copied whole and its
cells that define the answer functions get the released answer cells' metadata (matched by
function name); the test cells are appended. The grader compares more per test (shapes, side
checks, numerical gradients, diagnoses); nbgrader here only asserts closeness.

nbgrader lives in its own environment (``.venv-peer``, made by ``make bench-peer`` from PyPI),
never in the project's: pass its ``nbgrader`` script with ``--nbgrader``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NBGRADER = ROOT / ".venv-peer" / "bin" / "nbgrader"
TESTED_KINDS = ("example", "output", "gradient")  # rules (0 points) and MNIST are not compared
RTOL, ATOL = 1e-6, 1e-8  # grader.checks.compare's default relative tolerance
TESTS_HEADING = "## Autograder tests (nbgrader)"
COURSE_ID = "peer-bench"


class PeerError(Exception):
    """nbgrader is missing or failed: the benchmark cannot compare."""


@dataclass(frozen=True)
class Timing:
    tool: str
    submissions: int
    seconds: float

    @property
    def per_submission(self) -> float:
        return self.seconds / self.submissions


# --- the nbgrader course ---------------------------------------------------------------------


def _defined(source: str) -> set[str]:
    """Names of the top-level functions a cell defines (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def _literal(value: Any) -> str:
    """Python source that rebuilds an input or expected value exactly (repr round-trips floats)."""
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r}, dtype={str(value.dtype)!r})"
    return repr(value)


def _call(function: str, args: list, kwargs: dict) -> str:
    parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
    return f"{function}({', '.join(parts)})"


def _case_inputs(rubric: Any, spec: Any, number: int) -> tuple[list, dict]:
    """The inputs the grader draws for this case (grader.checks.context.case_inputs)."""
    from grader.checks import inputs

    rng = inputs.rng_for(rubric.seed, spec.name, number)
    case = spec.cases[number]
    return ([inputs.make(a, rng) for a in case.args],
            {k: inputs.make(v, rng) for k, v in case.kwargs.items()})


def _output_lines(rubric: Any, spec: Any, reference: Any) -> list[str]:
    lines = []
    for number, case in enumerate(spec.cases):
        args, kwargs = _case_inputs(rubric, spec, number)
        if case.expected is not None:
            expected = np.asarray(case.expected, dtype=float)
        else:
            expected = reference[spec.function](*copy.deepcopy(args), **kwargs)
            if spec.returns:
                expected = expected[spec.returns.index(spec.outputs[0])]
        got = _call(spec.function, args, kwargs)
        if spec.returns:
            got += f"[{spec.returns.index(spec.outputs[0])}]"
        if spec.options.get("then") == "relu":
            got = f"np.maximum(0, {got})"
            expected = np.maximum(0, expected)
        lines.append(f"np.testing.assert_allclose({got}, {_literal(np.asarray(expected))}, "
                     f"rtol={RTOL}, atol={ATOL})")
    return lines


def _gradient_lines(rubric: Any, spec: Any, reference: Any) -> list[str]:
    from grader.checks import inputs

    lines = []
    for number, case in enumerate(spec.cases):
        args, kwargs = _case_inputs(rubric, spec, number)
        out, cache = reference[spec.forward](*copy.deepcopy(args), **kwargs)
        dout = inputs.make(case.upstream or {"shape": list(np.shape(out))},
                           inputs.rng_for(rubric.seed, spec.name, number, "upstream"))
        lines.append(f"out, cache = {_call(spec.forward, args, kwargs)}")
        lines.append(f"dout = {_literal(dout)}")
        lines.append(f"grads = {spec.function}(dout, cache)")
        if len(spec.outputs) == 1:
            lines.append("grads = (grads,)")
        if spec.options.get("kink") == "max_tie":
            lines += _tie_lines(args[0], kwargs)
            continue
        expected = reference[spec.function](dout, cache)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for position, name in enumerate(spec.outputs):
            lines.append(f"np.testing.assert_allclose(grads[{position}], "
                         f"{_literal(expected[position])}, rtol={RTOL}, atol={ATOL}, "
                         f"err_msg={name!r})")
    return lines


def _tie_lines(x: np.ndarray, kwargs: dict) -> list[str]:
    """Tied maxima: any winner may get a window's gradient (as the grader accepts), so assert
    that each window sends all of it, and only to its maxima."""
    size, stride = kwargs["size"], kwargs["stride"]
    if stride < size:  # trap: with overlapping windows the sums below would mix windows
        raise PeerError("a tied-maxima test with overlapping windows: not supported here")
    return textwrap.dedent(f"""\
        x, dx = {_literal(x)}, np.asarray(grads[0])
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                rows = slice(i * {stride}, i * {stride} + {size})
                cols = slice(j * {stride}, j * {stride} + {size})
                window, sent = x[:, :, rows, cols], dx[:, :, rows, cols]
                top = window.max(axis=(2, 3), keepdims=True)
                assert np.all((sent == 0) | (window == top)), "gradient sent to a non-maximum"
                np.testing.assert_allclose(sent.sum(axis=(2, 3)), dout[:, :, i, j], rtol={RTOL})
        """).splitlines()


def test_cell(number: int, rubric: Any, spec: Any, reference: Any) -> nbformat.NotebookNode:
    """One autograder-test cell for one rubric test: the same function, the same inputs."""
    lines = (_gradient_lines if spec.kind == "gradient" else _output_lines)(rubric, spec, reference)
    if spec.visibility == "hidden":
        lines = ["### BEGIN HIDDEN TESTS", *lines, "### END HIDDEN TESTS"]
    cell = nbformat.v4.new_code_cell("\n".join([f"# {spec.name}", *lines]))
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "points": spec.points, "grade_id": f"test_{number:02d}",
                                 "schema_version": 3}
    return cell


def source_notebook(assignment: str) -> tuple[nbformat.NotebookNode, int]:
    """The solution with nbgrader metadata, the rubric's tests appended; and how many tests."""
    from grader.checks import rubric
    from grader.core import reference

    loaded = rubric.load(assignment)
    ref = reference.load(loaded.solution)
    notebook = nbformat.read(loaded.solution, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            names = sorted(_defined(cell.source))
            cell.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                         "grade_id": "answer_" + "_".join(names),
                                         "schema_version": 3}
    specs = [s for s in loaded.tests if s.kind in TESTED_KINDS and s.points > 0]
    notebook.cells.append(nbformat.v4.new_markdown_cell(TESTS_HEADING))
    notebook.cells += [test_cell(n, loaded, s, ref) for n, s in enumerate(specs)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    return notebook, len(specs)


def submitted_notebook(student: Path, released: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student's notebook whole, its answer cells wearing the released cells' metadata
    (matched by the functions they define) and the released test cells appended. An answer the
    student removed is put back as released (a stub), so nbgrader scores it as not done."""
    notebook = nbformat.read(student, as_version=4)
    answers = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("solution")]
    taken: set[int] = set()
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type != "code":
            continue
        defined = _defined(cell.source)
        for number, answer in enumerate(answers):
            if number not in taken and defined & _defined(answer.source):
                cell.metadata["nbgrader"] = copy.deepcopy(answer.metadata["nbgrader"])
                taken.add(number)
                break
    notebook.cells += [copy.deepcopy(a) for n, a in enumerate(answers) if n not in taken]
    start = next(i for i, c in enumerate(released.cells) if c.source == TESTS_HEADING)
    notebook.cells += copy.deepcopy(released.cells[start:])
    notebook.metadata["kernelspec"] = released.metadata["kernelspec"]
    return notebook


def build_course(course: Path, assignment: str, submissions: list[Path], nbgrader: Path) -> int:
    """The nbgrader course: config, source, release, and every submission in submitted/."""
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
    )
    notebook, tests = source_notebook(assignment)
    source = course / "source" / assignment
    source.mkdir(parents=True)
    nbformat.write(notebook, source / f"{assignment}.ipynb")
    run_nbgrader(nbgrader, course, ["generate_assignment", assignment, "--force"])
    released = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", 4)
    for path in submissions:
        folder = course / "submitted" / path.stem / assignment
        folder.mkdir(parents=True)
        nbformat.write(submitted_notebook(path, released), folder / f"{assignment}.ipynb")
    return tests


def run_nbgrader(nbgrader: Path, course: Path, args: list[str]) -> None:
    # trap: nbgrader runs its environment's alembic (and Jupyter) from PATH, not beside itself
    env = {**os.environ, "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(nbgrader), *args], cwd=course, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise PeerError(f"nbgrader {args[0]} failed (exit {done.returncode}):\n{tail}")


# --- the timed runs --------------------------------------------------------------------------


def time_nbgrader(nbgrader: Path, course: Path, assignment: str, count: int) -> Timing:
    began = time.perf_counter()
    run_nbgrader(nbgrader, course, ["autograde", assignment, "--force"])
    return Timing("nbgrader autograde (no sandbox)", count, time.perf_counter() - began)


def time_grader(assignment: str, folder: Path, out: Path, count: int) -> Timing:
    command = [sys.executable, "-m", "grader", "grade", "--assignment", assignment, "--jobs", "1",
               "--force", "--quiet", "--out", str(out), str(folder)]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode not in (0, 1):  # 1: some submission needs attention, still graded
        raise PeerError(f"the grader failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return Timing("this grader (sandboxed)", count, seconds)


def mean_scores(course: Path, nbgrader: Path, out: Path, assignment: str) -> dict[str, float]:
    """Each tool's mean share of the points, and for how many submissions they agree: a sanity
    check that both really graded (the grader also zeroes a library convolution and gives
    partial credit per case, so they need not agree everywhere)."""
    run_nbgrader(nbgrader, course, ["export", "--to", str(course / "grades.csv")])
    with open(course / "grades.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["assignment"] == assignment]
    peer = {r["student_id"]: float(r["raw_score"]) / float(r["max_score"]) for r in rows}
    ours = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    mine = {r["student"]: r["score"] / r["max_score"] for r in ours if r.get("max_score")}
    same = sum(abs(peer[s] - mine[s]) < 1e-6 for s in peer.keys() & mine.keys())
    return {"nbgrader": statistics.mean(peer.values()), "grader": statistics.mean(mine.values()),
            "same": same}


def table(rounds: list[tuple[Timing, Timing]]) -> str:
    peer = statistics.median(p.seconds for p, _ in rounds)
    ours = statistics.median(o.seconds for _, o in rounds)
    count = rounds[0][0].submissions
    rows = [("tool", "submissions", "total s", "per submission s", "ratio"),
            (rounds[0][0].tool, str(count), f"{peer:.1f}", f"{peer / count:.2f}",
             f"{peer / ours:.2f}"),
            (rounds[0][1].tool, str(count), f"{ours:.1f}", f"{ours / count:.2f}", "1.00")]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def timed_rounds(rounds: int, nbgrader: Path, course: Path, folder: Path,
                 out: Path) -> list[tuple[Timing, Timing]]:
    """(nbgrader, grader) per round, back to back, alternating who goes first so that a busy
    machine favours neither."""
    count, assignment = len(list(folder.glob("*.ipynb"))), folder.name
    results = []
    for number in range(rounds):
        if number % 2:
            ours = time_grader(assignment, folder, out, count)
            peer = time_nbgrader(nbgrader, course, assignment, count)
        else:
            peer = time_nbgrader(nbgrader, course, assignment, count)
            ours = time_grader(assignment, folder, out, count)
        results.append((peer, ours))
    return results


def environment_problem(nbgrader: Path) -> str | None:
    if not os.access(nbgrader, os.X_OK):
        return (f"no nbgrader at {nbgrader}: install it in its own environment (make bench-peer "
                "does) or pass --nbgrader")
    python = nbgrader.parent / "python"
    if subprocess.run([str(python), "-c", "import nbgrader, numpy"]).returncode != 0:
        return f"{python} cannot import nbgrader and numpy: the notebooks' kernel needs both"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--nbgrader", type=Path, default=DEFAULT_NBGRADER,
                        help="nbgrader's script, in its own environment (default .venv-peer)")
    parser.add_argument("--assignment", default="convolution")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time both tools this many times, alternating; the median counts")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # absolute (nbgrader runs in the course folder), but not resolved: a venv's python is a link
    nbgrader = Path(os.path.abspath(args.nbgrader))
    problem = environment_problem(nbgrader)
    if problem:
        print(f"bench-peer: {problem}", file=sys.stderr)
        return 2
    folder = ROOT / "submissions" / args.assignment
    submissions = sorted(folder.glob("*.ipynb"))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-peer-") as temp:
            course, out = Path(temp) / "course", Path(temp) / "feedback"
            course.mkdir()
            tests = build_course(course, args.assignment, submissions, nbgrader)
            print(f"{len(submissions)} submissions of {args.assignment}, {tests} tests each; "
                  "both tools one process, one notebook at a time, back to back")
            rounds = timed_rounds(args.rounds, nbgrader, course, folder, out)
            scores = mean_scores(course, nbgrader, out, args.assignment)
    except PeerError as exc:
        print(f"bench-peer: {exc}", file=sys.stderr)
        return 1
    print(table(rounds))
    print(f"mean share of the points: nbgrader {scores['nbgrader']:.0%}, "
          f"this grader {scores['grader']:.0%}; the same score for {scores['same']} of "
          f"{len(submissions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
