"""Gradescope's side of the autograder zip (``python -m grader gradescope`` builds it): what
``run_autograder`` runs for each submission.

It grades exactly one notebook of ``/autograder/submission``, the assignment's own file name
first, never a Jupyter checkpoint or a macOS resource copy, never a symbolic link (which could
point at the solutions this process can read): the notebook is copied without following links
(``grader.core.nofollow``) and the private copy is graded. It turns the grader's Gradescope
JSON into ``/autograder/results/results.json``. A submission without a notebook gets a
``results.json`` that says so. When the grader itself cannot grade (its exit status 2), no
``results.json`` is written: Gradescope then reports a failed autograder rather than a score,
which is what it is, and the reason is in the autograder's stdout for the instructor.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.core import nofollow
from grader.core.files import write_atomic

IGNORED_FOLDERS = frozenset({".ipynb_checkpoints", "__MACOSX"})


@dataclass(frozen=True)
class Choice:
    """The notebook to grade (None: there is none) and the other candidates, for the message."""

    notebook: Path | None
    others: tuple[Path, ...] = ()
    refused: tuple[tuple[Path, str], ...] = ()  # notebooks not graded, with why


def choose_notebook(submission: Path, assignment: str) -> Choice:
    """The one notebook to grade: ``<assignment>.ipynb`` when present (any case, any folder),
    else the only one, else the first by path; ``.IPYNB`` is a notebook too (Windows and some
    zip tools write it so). Without any notebook, a Python file (``.py``) is chosen the same
    way: the grader reads it as a notebook of one cell and says so (``grader.course.handins``).
    Checkpoints, ``__MACOSX`` and hidden files are copies or debris, never the student's work.
    A link (or a file in a linked folder) is never chosen: it is listed in ``refused``."""
    found: dict[str, list[Path]] = {".ipynb": [], ".py": []}
    refused: list[tuple[Path, str]] = []
    for path in sorted(submission.rglob("*")):
        suffix = path.suffix.lower()
        if suffix not in found or _is_debris(path, submission):
            continue
        why = _refusal(path, submission)
        if why:
            refused.append((path, why))
        elif path.is_file():
            found[suffix].append(path)
    for suffix, candidates in found.items():
        if candidates:
            wanted = f"{assignment}{suffix}".lower()
            named = [p for p in candidates if p.name.lower() == wanted]
            chosen = min(named or candidates,
                         key=lambda p: (len(p.relative_to(submission).parts), str(p)))
            return Choice(chosen, tuple(p for p in candidates if p != chosen), tuple(refused))
    return Choice(None, refused=tuple(refused))


def _is_debris(path: Path, submission: Path) -> bool:
    parts = path.relative_to(submission).parts
    return any(part.startswith(".") or part in IGNORED_FOLDERS for part in parts)


def _refusal(path: Path, submission: Path) -> str | None:
    if nofollow.link_below(path, submission):
        return nofollow.LINK
    if not path.resolve().is_relative_to(submission.resolve()):
        return "outside your submission"
    return None


def no_notebook_result(assignment: str, submission: Path) -> dict[str, Any]:
    """Gradescope's results.json for a submission holding no notebook."""
    listed = sorted(str(p.relative_to(submission)) for p in submission.rglob("*") if p.is_file())
    seen = ", ".join(listed[:10]) + (" …" if len(listed) > 10 else "") if listed else "no files"
    return {
        "score": 0.0,
        "output": (
            f"No notebook to grade: your submission holds {seen}. Submit your "
            f"{assignment}.ipynb (the .ipynb file itself, not a checkpoint copy or an export), "
            f"then this autograder runs again."
        ),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def run(root: Path, assignment: str, *, uid_isolation: bool = False) -> int:
    """Grade the submission under ``root`` (normally ``/autograder``); the exit status of
    ``run_autograder``."""
    submission, results = root / "submission", root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    choice = choose_notebook(submission, assignment)
    with tempfile.TemporaryDirectory(prefix="grader-submission-") as private:
        copy = None
        if choice.notebook is not None:
            try:
                copy = nofollow.private_copy(choice.notebook, submission, Path(private))
            except nofollow.Refused as exc:  # swapped for a link since, or a hard link
                choice = Choice(None, refused=(*choice.refused, (choice.notebook, str(exc))))
        if copy is None:
            _write_json(results, _with_refused(no_notebook_result(assignment, submission),
                                               choice, submission))
            print(f"no notebook to grade in {submission}; results.json says so")
            return 0
        trusted = _uid_isolation_ready() if uid_isolation else False
        graded = _grade(copy, assignment, trusted=trusted)
    if graded is None:
        return 2  # the grader's one-line reason is already on stdout/stderr
    if choice.others and choice.notebook is not None:  # (it is: it was graded)
        graded["output"] = (_which_one(choice.notebook, choice.others, submission) + "\n\n"
                            + graded.get("output", ""))
    _write_json(results, _with_refused(graded, choice, submission))
    return 0


def _with_refused(result: dict[str, Any], choice: Choice, submission: Path) -> dict[str, Any]:
    """The result with a line first for each notebook that was not graded, and why."""
    if not choice.refused:
        return result
    lines = [f"Not graded: {path.relative_to(submission)} is {why}."
             for path, why in choice.refused]
    return {**result, "output": "\n".join(lines) + "\n\n" + result.get("output", "")}


def _uid_isolation_ready() -> bool:
    """Grading without namespaces is safe only under the sandbox's uid drop (root here) with
    the solutions out of the unprivileged uid's reach (setup.sh made them 0700)."""
    from grader.run import layers

    if "namespaces" in layers.available_layers():
        return False  # the full sandbox works: no need to trust anything
    if "uid" not in layers.available_layers():
        print("grader: error: no user namespaces and no uid drop (needs root and setpriv): "
              "student code could read the solutions, so nothing is graded", file=sys.stderr)
        raise SystemExit(2)
    return True


def _grade(notebook: Path, assignment: str, *, trusted: bool) -> dict[str, Any] | None:
    from grader import cli

    with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as out:
        argv = ["grade", "--assignment", assignment, "--out", out, str(notebook),
                "--jobs", "1", "--quiet", "--force"]
        if trusted:
            argv.append("--trust-submissions-without-isolation")
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            status = cli.main(argv)
        print(_without_feedback_line(summary.getvalue()), end="")
        if status != 0:
            _show_error_log(Path(out))
            return None
        written = sorted((Path(out) / "gradescope").glob("*.json"))
        if len(written) != 1:
            print(f"grader: error: expected one Gradescope result, found {len(written)}",
                  file=sys.stderr)
            return None
        result: dict[str, Any] = json.loads(written[0].read_text(encoding="utf-8"))
        return result


def _without_feedback_line(summary: str) -> str:
    """The batch summary without its "Feedback: <folder>/index.html" line: that folder is
    this run's temporary one, gone when the autograder ends (Gradescope shows the tests'
    messages from results.json instead)."""
    return "".join(line for line in summary.splitlines(keepends=True)
                   if not line.startswith("Feedback: "))


def _show_error_log(out: Path) -> None:
    """What the grader wrote to ``grader-error.txt`` when it stopped, on stdout: the folder
    goes with the autograder, the autograder's output stays for the instructor."""
    log = out / "grader-error.txt"
    if log.is_file():
        print(f"grader-error.txt:\n{log.read_text(encoding='utf-8', errors='replace')}")


def _which_one(notebook: Path, others: tuple[Path, ...], submission: Path) -> str:
    graded = notebook.relative_to(submission)
    listed = ", ".join(str(p.relative_to(submission)) for p in others)
    return (f"Your submission holds several notebooks; this grade is for {graded} "
            f"(not {listed}). Submit only the notebook you want graded.")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    write_atomic(path, text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.distribute.autograder",
                                     description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("/autograder"))
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--uid-isolation", action="store_true",
                        help="without user namespaces, grade under the sandbox's uid drop")
    args = parser.parse_args(argv)
    return run(args.root, args.assignment, uid_isolation=args.uid_isolation)


if __name__ == "__main__":
    sys.exit(main())
