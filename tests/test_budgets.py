"""One submission cannot hold a worker for long: a total budget per submission (relative to
the reference's own grading time), and no waiting again on a function already stopped."""

from __future__ import annotations

import time

import pytest

from grader.core import budgets

pytestmark = pytest.mark.core

SLOW = """
def dense_forward(x, W, b):
    import time
    time.sleep(1.5)
    return x @ W + b, (x, W, b)
"""

STUCK = """
def relu_forward(x):
    import signal
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass
"""


@pytest.mark.slow
def test_the_total_budget_stops_a_submission_that_crawls(submission, grade_notebook,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(budgets, "TOTAL", budgets.Relative(times_reference=5, at_least=6,
                                                           at_most=6))
    path = submission("backprop", replace={"dense_forward": SLOW})
    started = time.monotonic()
    result = grade_notebook(path, "backprop", kinds=("output", "gradient"))
    assert time.monotonic() - started < 30
    skipped = [t for t in result.tests if t.message.startswith("Not run: the time for grading")]
    assert skipped, [t.message for t in result.tests]
    assert all(t.status == "timeout" and t.score == 0 for t in skipped)
    assert "6 s (the cap of 6 s)" in skipped[0].message
    assert result.tests[-1] in skipped  # everything after the budget ran out


@pytest.mark.slow
def test_the_diagnostic_does_not_wait_again_on_a_stopped_function(submission, grade_notebook):
    path = submission("backprop", replace={"relu_forward": STUCK})
    started = time.monotonic()
    result = grade_notebook(path, "backprop", kinds=("output", "mnist_diagnostic"),
                            options={"output": {"timeout": 2}})
    elapsed = time.monotonic() - started
    diagnostic = next(t for t in result.tests if t.name.startswith("MNIST: a fixed network"))
    assert diagnostic.message.startswith("Not run: your `relu_forward` had to be stopped")
    assert diagnostic.status == "timeout"
    assert elapsed < 60, f"{elapsed:.0f} s"


def test_the_total_budget_follows_the_reference() -> None:
    seconds, how = budgets.total_seconds({budgets.TOTAL_KEY: 40.0})
    assert seconds == 200 and "5 × the reference's 40.00 s" in how
    assert budgets.total_seconds(None)[0] == budgets.TOTAL.at_most
