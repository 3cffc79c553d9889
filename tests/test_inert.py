"""Student text reaches a terminal inert (``grader.core.inert``): no escape sequence, carriage
return or bidi control of a submission acts on the terminal, and no newline of a student's
starts a line that could pass for one of the grader's."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from grader import cli
from grader.core import inert
from grader.core.results import SubmissionResult, TestResult
from grader.render import summary

UNSAFE = {"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"}
# what a hostile exception message holds: a title, a cleared screen, a carriage return, a
# fake summary line, a bidi override, concealed text, an 8-bit CSI and a lone surrogate
HOSTILE = ("\x1b]0;pwned\x07\x1b[2J\x1b[H\r\n  ok    1.00/1    everything\n"
           "\u202eKO\u202c 16.00 / 16 all ok\x1b[8m\x9b2J\u2066\ufeff\udc80\u2028end")


def unsafe_characters(text: str) -> list[str]:
    """The characters of ``text`` a terminal could act on (newlines are the layout's)."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in UNSAFE]


def test_a_hostile_message_is_shown_not_obeyed() -> None:
    shown = inert.line(HOSTILE)
    assert unsafe_characters(shown) == [] and "\n" not in shown
    assert shown.startswith("\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H\\n  ok")
    assert "\\u202eKO\\u202c" in shown and "\\x9b2J" in shown and "\\udc80" in shown
    shown.encode("utf-8")  # (a lone surrogate would make print() raise)


def test_a_students_newline_starts_a_marked_line() -> None:
    shown = inert.block("first\nsecond\r\n  ok    1.00/1    everything", "    ")
    assert shown.split("\n") == ["first", "    | second", "    |   ok    1.00/1    everything"]


def test_wrapping_keeps_every_line_inside_the_terminal() -> None:
    padded = "x" * 71 + "  ok    1.00/1    everything"  # lands at the edge of 80 columns
    shown = inert.wrap("         " + padded, 80, "         ")
    assert all(len(row) < 80 for row in shown.split("\n"))
    assert all(row.startswith("         ") for row in shown.split("\n"))
    assert inert.wrap("anything " * 30, None, "  ") == "anything " * 30


@given(st.text())
def test_line_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    shown = inert.line(text)
    assert unsafe_characters(shown) == [] and "\n" not in shown
    shown.encode("utf-8")


@given(st.text(), st.sampled_from(["", "  ", " " * 9]))
def test_block_marks_every_continuation(text: str, indent: str) -> None:
    rows = inert.block(text, indent).split("\n")
    assert all(unsafe_characters(row) == [] for row in rows)
    assert all(row.startswith(indent + inert.CONTINUATION) for row in rows[1:])


@given(st.text(), st.integers(min_value=1, max_value=200))
def test_wrap_never_exceeds_the_width(text: str, width: int) -> None:
    indent = " " * 9
    rows = inert.wrap(indent + inert.line(text), width, indent).split("\n")
    room = max(width - 1, len(indent) + 20)
    assert all(sum(1 if c < "\x7f" else 2 for c in row) <= room for row in rows)
    assert "".join(rows).replace(" ", "") == inert.line(text).replace(" ", "")


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_json_text_is_the_same_document_made_safe(value) -> None:
    text = inert.json_text(json.dumps(value, indent=1, ensure_ascii=False))
    assert json.loads(text) == value
    assert unsafe_characters(text) == []


def summary_of(message: str, *, submission: str = "evil.ipynb",
               notices: tuple[str, ...] = ()) -> str:
    tests = (
        TestResult("conv1d: lecture example", "conv1d", 0.0, 1.0, "error", message,
                   diagnosis=HOSTILE),
        TestResult("conv2d: lecture example", "conv2d", 1.5, 1.5, "passed", "fine"),
    )
    result = SubmissionResult("evil", "convolution", submission, "0" * 64, None, notices,
                              tests, "test", 0.0)
    return summary.summary(result)


def test_the_self_check_summary_shows_student_text_inert() -> None:
    shown = summary_of(f"`conv1d` raised ValueError: {HOSTILE}",
                       submission="evil\x1b[2J\u202e.ipynb", notices=(HOSTILE,))
    assert unsafe_characters(shown) == []
    rows = shown.split("\n")
    assert rows[0] == "evil\\x1b[2J\\u202e.ipynb: 1.50 / 2.5 on the public tests"
    assert rows[1] == "  ERR   0.00/1    conv1d: lecture example"
    assert "  ok    1.50/1.5  conv2d: lecture example" in rows
    # the grader's own lines start at the edge or two spaces in; the student's never do
    own = [r for r in rows if not r.startswith(summary.MESSAGE_INDENT)]
    assert own == [rows[0], rows[1], "  ok    1.50/1.5  conv2d: lecture example",
                   "  note: " + inert.line(HOSTILE.split("\n")[0]),
                   rows[-1]]
    assert not any("16.00 / 16" in r for r in own)


def test_an_ungradable_notebooks_error_is_inert_too() -> None:
    result = SubmissionResult("evil", "convolution", "evil.ipynb", "0" * 64, HOSTILE, (), (),
                              "test", 0.0)
    shown = summary.summary(result, width=60)
    assert unsafe_characters(shown) == []
    assert all(r.startswith(summary.MESSAGE_INDENT) for r in shown.split("\n")[2:])


def test_inert_needs_nothing_but_the_standard_library() -> None:
    """The exported checker imports it on a student's machine."""
    import ast
    import sys

    tree = ast.parse(Path(inert.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert names and all(n.split(".")[0] in sys.stdlib_module_names or n == "__future__"
                         for n in names), names


def test_the_batch_names_a_refused_link_inert(tmp_path: Path, capsys) -> None:
    from grader.course import batch

    (tmp_path / "real.ipynb").write_text("{}")
    (tmp_path / "evil\x1b[2J\u202e.ipynb").symlink_to(tmp_path / "real.ipynb")
    assert batch.collect([tmp_path]) == [tmp_path / "real.ipynb"]
    said = capsys.readouterr().err
    assert unsafe_characters(said) == [] and "evil\\x1b[2J\\u202e.ipynb" in said


def test_an_instructor_error_naming_a_submission_is_inert() -> None:
    from grader.checks.rubric import ProblemsError
    from grader.core.errors import GraderError

    clash = GraderError("two submissions would share the result name 'x': a\x1b[2J.ipynb and "
                        "b\n grader: all done.ipynb; rename one of them")
    assert cli._error_text(clash) == ("two submissions would share the result name 'x': "
                                      "a\\x1b[2J.ipynb and b\\n grader: all done.ipynb; "
                                      "rename one of them")
    problems = ProblemsError(["rubric.toml: one\x1b[8m", "rubric.toml: two"])
    assert cli._error_text(problems) == ("2 problems:\n  rubric.toml: one\\x1b[8m\n"
                                         "  rubric.toml: two")
