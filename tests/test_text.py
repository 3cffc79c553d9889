"""What the grader says in a terminal, read by an instructor meeting it for the first time:
the help, the reference canary's verdict and refusal, the progress bar after Ctrl-C (#22)."""

from __future__ import annotations

import dataclasses
import gc

import pytest

from grader import cli
from grader.checks import rubric
from grader.core.errors import InfrastructureError
from grader.course import batch
from grader.grading import canary
from grader.run.layers import SandboxConfig
from tests.conftest import build_notebook
from tests.test_report import fixture


def test_help_is_written_for_instructors(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "adapter" not in text and "pipeline" not in text  # no developer prose
    intro = text.split("\n\n")[1]
    assert intro.startswith("Grade the students' notebooks")
    for step in ("validate backprop", "grade --assignment backprop", "--roster roster.csv",
                 "gradebook --assignment backprop", "index.html", "exit status: 0"):
        assert step in text, step


def test_a_cached_canary_says_when_it_was_checked_not_cached() -> None:
    verdict = canary.Canary({"train_mnist": 2.8}, 4.0, "sandbox: namespaces", cached=True,
                            checked="2026-12-06 14:03")
    line = verdict.line()
    assert "cached" not in line
    assert line.startswith("reference canary: full marks for the reference solution (checked "
                           "at 2026-12-06 14:03 on this machine")
    assert "train_mnist 2.8 s" in line
    fresh = dataclasses.replace(verdict, cached=False).line()
    assert "(graded just now in 4.0 s)" in fresh


def test_the_canary_refusal_ends_its_reason_once() -> None:
    result = fixture("full_marks")
    first = dataclasses.replace(result.tests[0], score=0.0, message="out: failed.")
    result = dataclasses.replace(result, tests=(first, *result.tests[1:]))
    with pytest.raises(InfrastructureError) as refused:
        canary._refuse_unless_full_marks(rubric.load("backprop"), result)
    message = str(refused.value)
    assert ".." not in message
    assert f"'{first.name}' gave it 0/{first.max_score:g}: out: failed. Fix the machine" in message


def test_an_interrupted_batch_does_not_redraw_its_progress_bar(tmp_path, monkeypatch,
                                                              capsys) -> None:
    """Ctrl-C while grading: the bar is finished before the interruption reaches the command
    line's "interrupted" message, never drawn again below it when it is collected."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield  # (a generator, as _execute is)

    monkeypatch.setattr(batch, "_execute", interrupted)
    monkeypatch.setattr(batch.zygote.ZygotePool, "warm", lambda *a, **k: None)
    monkeypatch.setattr(batch.expectations, "prepare", lambda *a, **k: None)
    notebook = build_notebook(tmp_path, "convolution", name="ada")
    with pytest.raises(KeyboardInterrupt) as raised:
        batch.grade_all([notebook], rubric.load("convolution"), tmp_path / "out",
                        sandbox=SandboxConfig.from_env(), progress=True, check_reference=False)
    before = capsys.readouterr().err
    del raised
    gc.collect()
    assert "grading" in before and before.endswith("\n")
    assert capsys.readouterr().err == ""  # nothing drawn after the interruption
