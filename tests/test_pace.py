"""A timeout is the student's only when the machine ran as fast as when the budgets were set
(``grader.core.pace``): a busy machine's timeout waits for the instructor and is graded again.

The tests never assert a timing: the pace at the start is set a hundred times faster or slower
than the machine could be, so the verdict holds on a quiet machine and on a loaded one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from grader.checks import engine, rubric
from grader.checks.context import Context
from grader.core import notebook, pace, reference
from grader.core.results import TestResult, load
from grader.course.batch import BatchSummary, grade_all
from grader.run import inprocess
from grader.run.layers import SandboxConfig
from tests.conftest import build_notebook

SPIN = "def conv1d(x, w, stride=1):\n    while True:\n        pass\n"


def test_an_unmeasured_start_believes_every_timeout() -> None:
    assert pace.busy(None) is None and pace.busy(0.0) is None


def test_a_machine_as_fast_as_at_the_start_is_not_busy() -> None:
    assert pace.busy(pace.pace() * 100) is None


def test_a_machine_far_slower_than_at_the_start_is_busy() -> None:
    found = pace.busy(pace.pace() / 100)
    assert found is not None and found >= pace.BUSY


def _spin(tmp_path: Path, machine_pace: float | None):
    read = notebook.read(build_notebook(tmp_path, "convolution", replace={"conv1d": SPIN}))
    # (the template's own check cell calls it too: its cell stops after half a second)
    with inprocess.session(read, machine_pace=machine_pace, cell_timeout=0.5) as session:
        return session.call("conv1d", [[1.0, 2.0], [1.0]], timeout=0.3)


def test_a_timeout_on_a_busy_machine_says_so(tmp_path: Path) -> None:
    outcome = _spin(tmp_path, pace.pace() / 100)
    assert outcome.kind == "timeout" and outcome.busy is not None and outcome.busy >= pace.BUSY


def test_a_timeout_on_a_machine_as_fast_as_at_the_start_is_believed(tmp_path: Path) -> None:
    for machine_pace in (pace.pace() * 100, None):
        outcome = _spin(tmp_path, machine_pace)
        assert outcome.kind == "timeout" and outcome.busy is None


def _graded_spinning(tmp_path: Path, machine_pace: float) -> list:
    """conv1d's first output test, one case, a 0.3 s budget, through the check engine."""
    loaded = rubric.load("convolution")
    spec = next(t for t in loaded.tests if t.function == "conv1d" and t.kind == "output")
    spec = dataclasses.replace(spec, cases=spec.cases[:1],
                               options=dataclasses.replace(spec.options, timeout=0.3))
    loaded = dataclasses.replace(loaded, tests=(spec,))
    read = notebook.read(build_notebook(tmp_path, "convolution", replace={"conv1d": SPIN}))
    with inprocess.session(read, machine_pace=machine_pace, cell_timeout=0.5) as session:
        context = Context(session=session, rubric=loaded,
                          reference=reference.load(loaded.solution), forbidden={})
        return engine.run(context)


def test_a_busy_machines_timeout_waits_for_review_and_blames_nobody(tmp_path: Path) -> None:
    (test,) = _graded_spinning(tmp_path, pace.pace() / 100)
    assert test.status == "review" and test.score == 0
    assert "the machine grading it was busy" in test.message
    assert "may not have been your code's" in test.message
    assert test.details["machine_busy"] >= pace.BUSY


def test_a_quiet_machines_timeout_is_the_students(tmp_path: Path) -> None:
    (test,) = _graded_spinning(tmp_path, pace.pace() * 100)
    assert test.status == "timeout" and test.score == 0
    assert "did not finish within 0.3 s" in test.message and "busy" not in test.message


def test_a_result_timed_on_a_busy_machine_is_graded_again(tmp_path: Path) -> None:
    """A stored result with a busy machine's timeout is never reused: the next run grades the
    notebook again, and the summary tells the instructor to run it again."""
    folder = tmp_path / "class"
    folder.mkdir()
    build_notebook(folder, "convolution", name="ada")
    loaded, out = rubric.load("convolution"), tmp_path / "out"
    config = SandboxConfig.from_env()
    first = grade_all([folder], loaded, out, sandbox=config, progress=False)
    assert (first.graded, first.busy) == (1, ())
    stored = out / "ada.json"
    data = json.loads(stored.read_text())
    data["tests"][0]["details"]["machine_busy"] = 3.0
    stored.write_text(json.dumps(data))
    assert load(stored).machine_was_busy
    again = grade_all([folder], loaded, out, sandbox=config, progress=False)
    assert (again.graded, again.reused) == (1, 0)
    assert not load(stored).machine_was_busy
    third = grade_all([folder], loaded, out, sandbox=config, progress=False)
    assert (third.graded, third.reused) == (0, 1)


def test_the_summary_names_the_notebooks_the_busy_machine_timed() -> None:
    line = BatchSummary(results=[], graded=0, reused=0, seconds=1.0,
                        busy=("ada", "bo")).line(Path("out"))
    assert ("2 notebook(s) ran out of time while this machine was busy (ada, bo): those tests "
            "wait for review. Run the same command again when the machine is quieter") in line


def test_tests_left_when_a_busy_machine_spent_the_whole_budget_wait_for_review(
        tmp_path: Path) -> None:
    loaded = rubric.load("convolution")
    read = notebook.read(build_notebook(tmp_path, "convolution"))
    with inprocess.session(read, machine_pace=pace.pace() / 100) as session:
        session.deadline = time.monotonic() - 1  # (spent by the cells, say)
        context = Context(session=session, rubric=loaded,
                          reference=reference.load(loaded.solution), forbidden={})
        results = engine.run(context)
    assert results and all(r.status == "review" and r.score == 0 for r in results)
    assert all(r.message.startswith("Grading your whole notebook ran out of time while the "
                                    "machine grading it was busy") for r in results)


STUCK_ON_ZERO = """def relu_backward(dout, cache):
    if not np.any(dout):  # only the side check's zero upstream gradient hangs
        while True:
            pass
    return dout * (cache > 0)
"""


def _graded_side_check(tmp_path: Path, machine_pace: float) -> TestResult:
    loaded = rubric.load("backprop")
    spec = next(t for t in loaded.tests if t.function == "relu_backward"
                and t.kind == "gradient")
    spec = dataclasses.replace(spec, cases=spec.cases[:1],
                               options=dataclasses.replace(spec.options, timeout=0.5))
    loaded = dataclasses.replace(loaded, tests=(spec,))
    read = notebook.read(build_notebook(tmp_path, "backprop",
                                        replace={"relu_backward": STUCK_ON_ZERO}))
    with inprocess.session(read, machine_pace=machine_pace, cell_timeout=1.0) as session:
        context = Context(session=session, rubric=loaded,
                          reference=reference.load(loaded.solution), forbidden={})
        (test,) = engine.run(context)
    return test


def test_a_side_checks_timeout_on_a_busy_machine_takes_nothing(tmp_path: Path) -> None:
    test = _graded_side_check(tmp_path, pace.pace() / 100)
    assert test.status == "review" and "the machine grading it was busy" in test.message


def test_a_side_checks_timeout_on_a_quiet_machine_is_a_failed_side_check(
        tmp_path: Path) -> None:
    test = _graded_side_check(tmp_path, pace.pace() * 100)
    assert "busy" not in test.message and 0 < test.score < test.max_score


def test_a_job_for_another_machine_leaves_this_machines_pace_behind(tmp_path: Path) -> None:
    """A Dask worker's pace is not this machine's: its timeouts are believed, as before."""
    from grader.course.batch import elsewhere
    from grader.grading.grade import Job

    job = Job(path=tmp_path / "a.ipynb", rubric=rubric.load("convolution"),
              sandbox=SandboxConfig.from_env(),
              reference_seconds={"conv1d": 0.01, pace.KEY: 0.003})
    assert elsewhere(job).reference_seconds == {"conv1d": 0.01}
    assert elsewhere(elsewhere(job)) == elsewhere(job)
