"""A timeout is the student's only when the machine ran as fast as when the budgets were set
(``grader.core.pace``): a busy machine's timeout waits for the instructor and is graded again.

The tests never assert a timing: the pace at the start is set a hundred times faster or slower
than the machine could be, so the verdict holds on a quiet machine and on a loaded one.
"""

from __future__ import annotations

from pathlib import Path

from grader.core import notebook, pace
from grader.run import inprocess
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
