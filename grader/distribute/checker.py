"""The students' self-check, as exported by ``python -m grader export-check NAME``: the
grader's own check engine on the public tests, with the reference replaced by its recorded
answers (``grader.distribute.replay``), and the same summary as ``python -m grader check``.

The student's notebook runs in a plain subprocess (``GRADER_SANDBOX=off``): it is their own
code, on their own machine, and the checker holds no secret it could read.

This module imports only the standard library at its top, so that a Python without NumPy or
nbformat gets one line saying what to install (``EXIT_NEEDS``), not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.resources
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.core import inert

BUNDLE_PACKAGE = "checker_data"  # the recorded answers' folder at the root of the .pyz
# 4: this Python cannot run the checker (too old, or without NumPy or nbformat); 1 is kept
# for "your tests do not pass yet", so that nobody reads a missing package as a failing test
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_BROKEN, EXIT_NEEDS = 0, 1, 2, 3, 4
NEEDS = ("numpy", "nbformat")  # beside the standard library; Jupyter has both
NOTE_WIDTH = 100  # where notes wrap when the output is no terminal (a notebook cell's `!`)


@dataclass(frozen=True)
class Bundle:
    """What the exported checker carries: the public rubric and the recorded answers."""

    rubric: Any  # grader.checks.rubric.Rubric, public tests only
    reference: Any  # grader.core.reference.Reference of Replay functions
    skipped: tuple[str, ...]  # public tests the checker cannot run (MNIST), for the summary


def load_bundle() -> Bundle:
    """The bundle inside the .pyz this module was loaded from."""
    import numpy as np

    from grader.distribute.replay import stand_in

    folder = importlib.resources.files(BUNDLE_PACKAGE)
    data = json.loads(folder.joinpath("answers.json").read_text(encoding="utf-8"))
    raw_arrays = folder.joinpath("arrays.npz").read_bytes()
    arrays = dict(np.load(io.BytesIO(raw_arrays), allow_pickle=False))
    return Bundle(_rubric(data), stand_in(data, arrays), tuple(data["skipped"]))


def _rubric(data: dict[str, Any]) -> Any:
    from grader.checks import rubric

    here = Path(__file__).resolve().parents[2] / BUNDLE_PACKAGE
    return rubric._parse(data["rubric"], path=here / f"{data['assignment']}.toml",
                         solution=here / "no-reference.ipynb", digest=data["rubric_sha256"])


def check(notebook_path: str | Path, *, bundle: Bundle | None = None,
          quiet: bool = False) -> Any:
    """Run the public tests on a notebook; print the same report as ``python -m grader
    check`` and return the ``SubmissionResult``. From a notebook cell (save it first):
    ``import sys; sys.path.insert(0, "backprop-check.pyz"); import grader.distribute.checker as c;
    c.check("my_backprop.ipynb")``."""
    from grader.core import notebook, scripts
    from grader.grading import grade
    from grader.grading.grade import Job
    from grader.run.layers import SandboxConfig

    bundle = bundle or load_bundle()
    path = Path(notebook_path)
    config = SandboxConfig(mode="off", allow_unisolated=True)  # the student's own code
    job = Job(path, bundle.rubric, config, None, public_only=True)
    started, read = time.perf_counter(), scripts.read(path)  # (a .py: one cell)
    base = grade._Common(student=grade.student_name(path), assignment=bundle.rubric.name,
                submission=notebook.display_name(path), sha256=read.sha256,
                grader_version=_version(), cache_key="")
    if isinstance(read, notebook.UnreadableNotebook):
        from grader.core.results import SubmissionResult

        tests = grade._ungraded(job, read.error)
        result = SubmissionResult(error=read.error, notices=(), tests=tests, duration_s=0.0,
                                  timings={}, **base)
    else:
        from grader.core import budgets

        rubric = budgets.resolve(bundle.rubric, None)
        result = grade._grade_read(job, read, rubric, bundle.reference, config, None, base,
                                   started, {})
    if not quiet:
        print(report(result, bundle, width=inert.terminal_width()))
    return result


def report(result: Any, bundle: Bundle, *, width: int | None = None) -> str:
    """The grader's self-check summary (student text in it made inert: ``render.summary``),
    plus the public tests this checker leaves out, then the notices whole; ``width``: the
    terminal's."""
    from grader.render import summary

    # (a copy for the summary alone: ``render.summary`` cuts each note at 160 characters,
    # mid-word; here they are written whole and wrapped, even where nothing else wraps)
    lines = [summary.summary(dataclasses.replace(result, notices=()), width=width)]
    for name in bundle.skipped:
        lines.append(f"  (not run here: {inert.line(name)}. It needs MNIST and the full "
                     f"training; it runs when your notebook is graded.)")
    text = inert.wrap("\n".join(lines), width, summary.MESSAGE_INDENT)
    notes = [inert.wrap(line, width or NOTE_WIDTH, summary.MESSAGE_INDENT)
             for line in note_lines(result)]
    return "\n".join([text, *notes])


def note_lines(result: Any) -> list[str]:
    """One line per notice of a graded notebook, as the summary gives them: the first line of
    each, made inert; printed output only named (the feedback page shows it)."""
    if result.error:
        return []
    lines = []
    for notice in result.notices:
        if notice.startswith("your notebook printed"):
            notice = "your notebook printed output; the feedback page shows it"
        lines.append(f"  note: {inert.line(notice.split(chr(10), 1)[0])}")
    return lines


def passed(result: Any) -> bool:
    return not result.error and all(t.status == "passed" for t in result.tests)


def _version() -> str:
    from grader import __version__

    return __version__


def unmet_needs(version: tuple[int, ...] = sys.version_info[:3]) -> str | None:
    """What this Python lacks to run the checker, as a sentence that says what to do, or
    None. Asked before anything imports NumPy: without it, a traceback would end in exit
    status 1, which means "your tests do not pass yet"."""
    if version[:2] < (3, 11):
        shown = ".".join(map(str, version[:3]))
        return (f"this checker needs Python 3.11 or newer, and this is Python {shown}; run it "
                f"with a newer python (Jupyter's, for instance)")
    missing = []
    for name in NEEDS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    return (f"this Python ({inert.line(sys.executable)}) has no {' or '.join(missing)}; "
            f"install {'them' if len(missing) > 1 else 'it'} with "
            f"`python -m pip install {' '.join(missing)}`, or run the checker with the "
            f"python of your Jupyter, which has both")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=inert.line(Path(sys.argv[0]).name),
        description="Check your notebook with the public tests, as the grader runs them.",
    )
    parser.add_argument("notebook", type=Path,
                        help="your .ipynb file (save it first), or your .py file")
    parser.add_argument("--json", action="store_true",
                        help="print the result as the grader's JSON instead of the summary")
    parser.add_argument("--submit", metavar="URL",
                        help="after the check, hand the notebook in to the course server at "
                        "URL (with --token) and wait for its feedback")
    parser.add_argument("--token", help="your personal token, from your sign-in link")
    args = parser.parse_args(argv)  # a usage error exits 2
    if args.submit and not args.token:
        parser.error("--submit needs --token (the end of your personal sign-in link)")
    needs = unmet_needs()
    if needs:
        print(f"{parser.prog}: {needs}", file=sys.stderr)
        return EXIT_NEEDS
    from grader.distribute.replay import NotRecorded

    if not args.notebook.is_file():
        print(f"{parser.prog}: error: no such notebook: {inert.line(str(args.notebook))}",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        result = check(args.notebook, quiet=args.json)
        if args.json:  # (the same document, with what a terminal would act on escaped)
            print(inert.json_text(json.dumps(result.to_json(), indent=1, ensure_ascii=False)))
    except NotRecorded as exc:
        print(f"{parser.prog}: this checker is incomplete ({inert.line(str(exc))}). This is "
              f"not about your notebook: tell your instructor.", file=sys.stderr)
        return EXIT_BROKEN
    if args.submit:
        try:
            print(submit(args.submit, args.token, args.notebook, result.assignment))
        except SubmitError as exc:
            print(f"{parser.prog}: not handed in: {inert.line(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_PASSED if passed(result) else EXIT_FAILED


class SubmitError(Exception):
    """The course server refused the notebook or could not be reached (said in words)."""


def submit(url: str, token: str, path: Path, assignment: str, *,
           wait: float = 180.0) -> str:
    """Hand ``path`` in to the course server (``POST URL/api/submit`` with the student's
    token as a bearer token), wait for it to be graded and say what the server shows: the
    public tests before the deadline, as the student's page does. Standard library only."""
    import urllib.error
    import urllib.request
    import uuid

    base = url.rstrip("/")
    boundary = uuid.uuid4().hex
    parts = [(f'--{boundary}\r\nContent-Disposition: form-data; name="assignment"\r\n\r\n'
              f"{assignment}\r\n").encode(),
             (f'--{boundary}\r\nContent-Disposition: form-data; name="notebook"; '
              f'filename="{path.name.replace(chr(34), "_")}"\r\nContent-Type: '
              f"application/octet-stream\r\n\r\n").encode(), path.read_bytes(),
             f"\r\n--{boundary}--\r\n".encode()]
    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = _request(urllib.request.Request(base + "/api/submit", data=b"".join(parts),
                                             headers=headers, method="POST"))
    status_url = base + answer["status"]
    deadline = time.monotonic() + wait
    state = answer
    while state.get("state") in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        state = _request(urllib.request.Request(status_url, headers=headers))
    page = base + answer["page"]
    if state.get("state") == "done" and "score" in state:
        return (f"handed in and graded: {state['score']} / {state['max_score']} ("
                f"{state.get('shown', '')}); your feedback page: {page}")
    if state.get("state") == "done":
        return f"handed in and graded ({state.get('shown', '')}); see {page}"
    return f"handed in ({state.get('state')}); your feedback will be at {page}"


def _request(request: Any) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            why = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            why = exc.reason
        raise SubmitError(f"the server said {exc.code}: {why}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SubmitError(f"cannot reach the course server: {exc}") from None
