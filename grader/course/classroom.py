"""A class's output folder: who handed in what, and everything rebuilt from all of it.

``intake`` turns what the instructor gives ``grade`` (LMS zips, folders, files, a roster, a
course file) into the notebooks to grade and the result name of each. ``rebuild`` runs after
every grading run: it reads *every* result in the folder (not only this run's), lays the
course file over them (``grader.course.final``) and writes the overview, ``grades.csv``, the Canvas
and Moodle upload files and the pages of students whose final grade changed. So grading one
late file into the class's folder adds that student and keeps everyone else.

What the folder remembers lives in ``intake/state.json``: its assignment, the roster (as
data), the course file's path (read again on every run, so an edited file counts without a
regrade), each student's submission (file, LMS, time, earlier attempts) and the files that
matched nobody.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from grader.checks.rubric import Rubric
from grader.core.errors import GraderError
from grader.core.files import write_atomic
from grader.core.results import SubmissionResult, load, number
from grader.course import coursefile as course_file
from grader.course import final, gradebook, handins, ingest, roster
from grader.course.roster import Roster, Student
from grader.render import classview, report
from grader.render.export import rubric_order

STATE = Path("intake") / "state.json"
STATE_VERSION = 1


@dataclass(frozen=True)
class Intake:
    """This run's submissions: what to grade, under which name, and what was left out."""

    matched: ingest.Matched
    roster: Roster | None = None
    roster_path: Path | None = None
    course_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.matched.latest.values()]

    @property
    def names(self) -> dict[Path, str]:
        return {s.path: roster.result_name(student) for student, s in self.matched.latest.items()}

    def superseded(self) -> dict[str, str]:
        """``{name without a roster: roster name}`` for this run's submissions, where the two
        differ: a folder graded first without the roster holds each student's result under
        the first name too. A name that is some roster student's own is never listed."""
        if self.roster is None:
            return {}
        current = {roster.result_name(s.id) for s in self.roster.students}
        found = {}
        for student, submission in self.matched.latest.items():
            old, new = roster.result_name(submission.slug()), roster.result_name(student)
            if old != new and old not in current:
                found[old] = new
        return found


@dataclass(frozen=True)
class ClassView:
    counts: gradebook.Counts
    finals: tuple[final.FinalGrade, ...]
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default_factory=tuple)


@contextlib.contextmanager
def intake(paths: list[Path], *, out_dir: Path | None = None, roster_path: Path | None = None,
           course_path: Path | None = None, lms: str = "auto") -> Iterator[Intake]:
    """Read the roster and course file (refusing a bad one before any grading), find and match
    the submissions; archives stay extracted while the context lasts. Without ``roster_path``
    the roster ``out_dir`` remembers is used, so a late file joins its student; a student the
    course file (given or remembered) names must be on the roster, checked before grading."""
    loaded = roster.load(roster_path) if roster_path else _remembered_roster(out_dir)
    course = (course_file.load(course_path) if course_path
              else _course(_state(out_dir), out_dir) if out_dir is not None
              else course_file.NO_COURSE)
    if loaded is not None:  # every student the course file names must be on it
        course_file.resolve(course, loaded.students, roster=True)
    with ingest.collect(paths, lms=lms) as (found, refused), \
            handins.collect(paths, lms=lms) as others:  # (.py hand-ins; the rest, listed)
        matched = ingest.match(found, loaded, [*refused, *others.skipped])
        matched = handins.join(matched, others.scripts, loaded)
        yield Intake(matched, loaded, _absolute(roster_path), _absolute(course_path))


def assignment_of(out_dir: Path) -> str | None:
    """The assignment a class's folder holds: the one its record names, else (a folder from
    before the record kept it) the one its results share; None where it holds none."""
    if not out_dir.is_dir():
        return None
    if (out_dir / STATE).exists() and _state(out_dir).get("assignment"):
        return str(_state(out_dir)["assignment"])
    held = set()
    for path in out_dir.glob("*.json"):
        try:
            held.add(load(path).assignment)
        except (OSError, ValueError, TypeError, KeyError):
            continue
    if len(held) > 1:
        raise GraderError(f"{out_dir} holds results of {', '.join(sorted(held))}; give "
                          f"--assignment")
    return held.pop() if held else None


def _remembered_roster(out_dir: Path | None) -> Roster | None:
    if out_dir is None or not (out_dir / STATE).exists():
        return None
    rows = _state(out_dir)["roster"]
    return roster.from_rows(rows) if rows else None


def rebuild(out_dir: Path, *, assignment: str, max_score: float, intake: Intake | None = None,
            fresh: Sequence[str] = (), machine: Sequence[str] = (),
            rubric: Rubric | None = None,
            known: Sequence[SubmissionResult] = ()) -> ClassView:
    """Write the class's overview and gradebooks from every result in ``out_dir``, and the pages of
    students whose final grade changed (``fresh``: pages just written without it). With the
    ``rubric``, also the class's function and similarity pages (``grader.render.classview``), from
    every result in the folder too. ``known``: results the caller holds exactly as it wrote them
    into the folder in this run (under its lock), not read back again."""
    state = _merged(_state(out_dir), intake)
    results = _results(out_dir, assignment, known)
    people = _people(state, results)
    course = course_file.resolve(_course(state, out_dir), people, roster=bool(state["roster"]),
                                 assignment=assignment, tests=_tests(rubric, results))
    finals = tuple(final.compute(results.get(roster.result_name(s.id)), s, course,
                                 assignment=assignment,
                                 max_score=max_score, intake=state["submissions"].get(s.id))
                   for s in people)
    counts = gradebook.Counts.of(finals)
    files = _write_gradebooks(out_dir, finals, results, course, assignment, state)
    _write_pages(out_dir, finals, results, state, set(fresh))
    view = _overview(counts, finals, state, results)
    every = list(results.values())
    class_view = classview.write(every, out_dir, rubric) if rubric is not None else None
    write_atomic(out_dir / "index.html", report.render_index(
        every, machine=machine, gradebook=view, class_view=class_view))
    state["assignment"] = assignment
    write_atomic(out_dir / STATE, json.dumps(state, indent=1, sort_keys=True) + "\n")
    return ClassView(counts, finals, tuple(view["notes"]), files)


def warm_up(rubric: Rubric | None = None) -> None:
    """Load in this process, ahead of ``rebuild``, what its first call would load then: the
    templates, the highlighter and the handed-out code of ``rubric``'s template (what is
    nobody's own work). A batch calls it once its workers are busy, so that this
    overlaps their grading instead of adding to the serial end of the run. Never raises
    (``rebuild`` would again)."""
    try:
        report._template("index.html.j2")
        classview.warm_up(rubric)
    except Exception:  # noqa: BLE001,S110 - only a head start
        pass


# --------------------------------------------------------------------------- state


def _state(out_dir: Path) -> dict[str, Any]:
    path = out_dir / STATE
    empty: dict[str, Any] = {
        "version": STATE_VERSION, "assignment": None, "roster": None, "roster_file": None,
        "course": None, "submissions": {}, "unmatched": [], "refused": [], "pages": {}}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GraderError(f"cannot read {path} ({exc}); move it away to start the class's "
                          f"record afresh (results are kept)") from None
    return {**empty, **data} if isinstance(data, dict) else empty


def _merged(state: dict[str, Any], intake: Intake | None) -> dict[str, Any]:
    """This run's intake laid over what the folder knew: a roster or course file given now
    replaces the remembered one, the students graded now replace their own entries only."""
    if intake is None:
        return state
    state = dict(state, submissions=dict(state["submissions"]))
    if intake.roster is not None and intake.roster_path is not None:
        state["roster"] = roster.to_rows(intake.roster)
        state["roster_file"] = str(intake.roster_path)
    if intake.course_path is not None:
        state["course"] = str(intake.course_path)
    matched = intake.matched
    for student, submission in matched.latest.items():
        state["submissions"][student] = {
            "file": submission.original, "lms": submission.lms, "name": submission.name,
            "submitted": submission.submitted, "late": submission.late,
            "mtime": submission.mtime,
            "earlier": [s.original for s in matched.earlier.get(student, ())]}
    if matched.latest or matched.unmatched or matched.refused:  # (not a rebuild alone)
        state["unmatched"] = [s.original for s in matched.unmatched]
        state["refused"] = [f"{r.original}: {r.why}" for r in matched.refused]
    return state


def _course(state: dict[str, Any], out_dir: Path) -> course_file.Course:
    """The course file given now or remembered; one that has gone is said so, not skipped
    (its penalties and adjustments would silently vanish from the grades)."""
    if not state.get("course"):
        return course_file.NO_COURSE
    path = Path(state["course"])
    if not path.is_file():
        raise GraderError(f"the course file {path} that {out_dir} remembers is gone; give "
                          f"--course again (results are kept)")
    return course_file.load(path)


def _results(out_dir: Path, assignment: str,
             known: Sequence[SubmissionResult] = ()) -> dict[str, SubmissionResult]:
    """Every result of ``assignment`` in the folder, by student (a file that is no result is
    skipped: the folder is the instructor's)."""
    held = {f"{r.student}.json": r for r in known}
    found = {}
    for path in sorted(out_dir.glob("*.json")):
        try:
            result = held.get(path.name) or load(path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if result.assignment == assignment:
            found[result.student] = result
    return found


def _tests(rubric: Rubric | None, results: dict[str, SubmissionResult]) -> set[str]:
    """The assignment's test names: the rubric's, else those its results hold."""
    if rubric is not None:
        return {t.name for t in rubric.tests}
    return {t.name for r in results.values() for t in r.tests}


def _people(state: dict[str, Any], results: dict[str, SubmissionResult]) -> list[Student]:
    """The roster's students (in its order), then anyone with a result who is not on it."""
    people = list(roster.from_rows(state["roster"]).students) if state["roster"] else []
    known = {roster.result_name(s.id) for s in people}
    for student in sorted(results, key=lambda s: (s.casefold(), s)):
        if student not in known:
            people.append(Student(id=student, name=_name(state["submissions"].get(student))))
    return people


def _name(entry: dict[str, Any] | None) -> str:
    """A student off the roster: the name the LMS gave, else a plain file's own name
    ('bob two bugs' for bob two bugs.ipynb, whose result is bob_two_bugs-3f2a1c)."""
    entry = entry or {}
    if entry.get("name"):
        return str(entry["name"])
    if entry.get("lms") == "file" and entry.get("file"):
        name = PurePosixPath(str(entry["file"])).name
        return name[:-6] if name.lower().endswith(".ipynb") else name
    return ""


# --------------------------------------------------------------------------- writing


def _write_gradebooks(out_dir: Path, finals: Sequence[final.FinalGrade],
                      results: dict[str, SubmissionResult], course: course_file.Course,
                      assignment: str, state: dict[str, Any]) -> tuple[str, ...]:
    tests = rubric_order(results.values())
    write_atomic(out_dir / "grades.csv", gradebook.grades_csv(finals, tests))
    written = ["grades.csv"]
    if state["roster"]:
        column = course.rules(assignment).canvas_column or assignment
        write_atomic(out_dir / "canvas.csv", gradebook.canvas_csv(finals, column))
        write_atomic(out_dir / "moodle.csv", gradebook.moodle_csv(finals))
        written += ["canvas.csv", "moodle.csv"]
    return tuple(written)


def _write_pages(out_dir: Path, finals: Sequence[final.FinalGrade],
                 results: dict[str, SubmissionResult], state: dict[str, Any],
                 fresh: set[str]) -> None:
    """Render again the pages whose final grade changed since they were written, so the
    student sees the late penalty and adjustments (with comment and author) on their page."""
    pages = dict(state.get("pages") or {})  # student -> what their page shows, if not plain
    listed = _listed(state)
    for grade in finals:
        result = results.get(roster.result_name(grade.student.id))
        if result is None:
            continue
        student = result.student
        shown = None if student in fresh else pages.get(student)
        view = _page_view(grade, result, on_roster=grade.student.id in listed)
        wanted = None if view is None else hashlib.sha256(json.dumps(
            [result.cache_key, view], sort_keys=True).encode()).hexdigest()[:16]
        if shown != wanted:
            write_atomic(out_dir / f"{student}.html", report.render_student(result, final=view))
        if wanted is None:
            pages.pop(student, None)
        else:
            pages[student] = wanted
    state["pages"] = pages


def _page_view(grade: final.FinalGrade, result: SubmissionResult, *, on_roster: bool
               ) -> dict[str, Any] | None:
    """What a student's page shows beyond its result: the final grade where the course file
    changes it, and the student's name as the roster (or the LMS) gives it, not the name of
    their result files, with the roster's id beside it. None: the page written while grading
    is right as it is."""
    name = grade.student.name.strip()
    named = bool(name) and name != result.student
    if not grade.changed and not named:
        return None
    return {**grade.view(), "changed": grade.changed, "name": name or None,
            "id": grade.student.id if on_roster else None}


def _listed(state: dict[str, Any]) -> set[str]:
    """The ids of the roster's students (none without a roster)."""
    return {s.id for s in roster.from_rows(state["roster"]).students} if state["roster"] else set()


def prepare(result: SubmissionResult, intake: Intake | None) -> None:
    """Highlight a result's code while a batch's workers still grade, where ``rebuild`` will
    draw its page again to name the student (with a roster: every page), so that the second
    drawing, at the serial end of the run, costs a few milliseconds instead of twenty."""
    stem = result.submission[:-6] if result.submission.lower().endswith(".ipynb") else None
    if intake is not None and (intake.roster is not None or stem != result.student):
        report.prepare(result)


def _overview(counts: gradebook.Counts, finals: Sequence[final.FinalGrade],
              state: dict[str, Any], results: dict[str, SubmissionResult]) -> dict[str, Any]:
    """What the overview's gradebook section and its list of students show, as plain data."""
    listed = _listed(state)
    rows = [_row(f, results, f.student.id in listed) for f in finals]
    earlier = [(student, entry["earlier"]) for student, entry in
               sorted(state["submissions"].items()) if entry.get("earlier")]
    notes = []
    if state["unmatched"]:
        notes.append(f"{len(state['unmatched'])} file(s) matched nobody on the roster and were "
                     f"not graded")
    if state["refused"]:
        notes.append(f"{len(state['refused'])} file(s) refused and not graded (not notebooks, "
                     f"links, unsafe or damaged archive members)")
    mean = counts.mean
    return {"line": counts.line(), "counts": counts,
            "mean": "—" if mean is None else f"{number(mean)} / "
                                              f"{number(counts.max_score)}",
            "mean_percent": "—" if mean is None or not counts.max_score
            else f"{100 * mean / counts.max_score:.1f} %",
            "fractions": [f.score / f.max_score for f in finals
                          if f.score is not None and f.max_score],
            "rows": rows, "earlier": earlier, "unmatched": list(state["unmatched"]),
            # tests an instructor adjusted: looked at, so no longer "needs your review"
            "reviewed": sorted({(roster.result_name(f.student.id), a.test) for f in finals
                                for a in f.adjustments if a.test}),
            "refused": list(state["refused"]), "notes": notes,
            "files": ["grades.csv", *(["canvas.csv", "moodle.csv"] if state["roster"] else [])]}


def _row(grade: final.FinalGrade, results: dict[str, SubmissionResult], on_roster: bool
         ) -> dict[str, Any]:
    """One student in the overview's list: every student, on the roster or with a result,
    each number as the gradebooks write it; the id is shown beside the name where the
    roster gives it (off the roster, it is only the result files' name)."""
    name = roster.result_name(grade.student.id)
    return {"id": grade.student.id, "name": grade.student.name, "show_id": on_roster,
            "section": grade.student.section, "status": grade.status,
            "result": name if name in results else None,
            "score": number(grade.score), "max": number(grade.max_score),
            "fraction": (grade.score / grade.max_score if grade.score is not None
                         and grade.max_score else None),
            "tests": number(grade.raw_score),
            "late": grade.late_days > 0 or grade.status == "late",
            "late_days": grade.late_days, "penalty": number(grade.penalty * 100),
            "adjustments": [_adjustment(a) for a in grade.adjustments],
            "notes": list(grade.notes)}


def _adjustment(adjustment: course_file.Adjustment) -> str:
    """An adjustment in a line, its points rounded as every grade is (``results.number``)."""
    points = number(adjustment.points)
    sign = "" if points.startswith("-") else "+"
    where = f"on {adjustment.test}" if adjustment.test else "on the total"
    return f"{sign}{points} {where} by {adjustment.by}: {adjustment.comment}"


def _absolute(path: Path | None) -> Path | None:
    return Path(path).resolve() if path is not None else None
