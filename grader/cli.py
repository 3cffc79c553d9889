"""The command line: a thin adapter over the pipeline's entry points.

This is the one place where the grader's own exceptions become a one-line message and a
non-zero exit status. Whatever the submissions scored, a run that worked exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from grader import __version__
from grader.core import inert
from grader.core.errors import GraderError

if TYPE_CHECKING:  # (the commands import what they use when they run: a fast --help)
    from grader.checks.rubric import Rubric
    from grader.run.layers import SandboxConfig
    from grader.run.mnist import MnistFiles

EXIT_INSTRUCTOR_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)  # (each subcommand's function: ``_parser``)
        return status
    except GraderError as exc:
        print(f"grader: error: {_error_text(exc)}", file=sys.stderr)
        return EXIT_INSTRUCTOR_ERROR
    except KeyboardInterrupt:
        print(
            "grader: interrupted; finished results are kept, run again to resume", file=sys.stderr
        )
        return 130


def _error_text(exc: GraderError) -> str:
    """The error for a terminal: its message may name a submitted file (a clash, an archive's
    member), so each of its lines is made inert (``ProblemsError``: one line per problem)."""
    lines = getattr(exc, "lines", None)
    if isinstance(lines, list) and len(lines) > 1:
        return f"{len(lines)} problems:\n  " + "\n  ".join(inert.line(str(x)) for x in lines)
    return inert.line(str(exc))


HELP = """\
Grade the students' notebooks: each runs in a sandbox, is checked against the reference
solution and gets a feedback page; the class gets an overview and gradebooks."""
HELP_END = """\
a course, start to end:
  python -m grader validate backprop       check the rubric and reference solution
  python -m grader export-check backprop   the self-check to give students
  python -m grader grade --assignment backprop --out feedback/backprop \\
      --roster roster.csv --course course.toml submissions.zip
  python -m grader gradebook --assignment backprop --out feedback/backprop
                                           after editing course.toml (no regrading)
then open feedback/backprop/index.html; upload grades.csv, canvas.csv or moodle.csv.

exit status: 0 the grader worked, whatever the scores; 2 something to fix, said in one
line; 130 interrupted (finished results are kept: run again to resume).
README.md and docs/ have the whole guide. `python -m grader COMMAND --help` explains a command."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader", description=HELP, epilog=HELP_END,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, title="commands",
                                     metavar="COMMAND")

    grade = commands.add_parser("grade", help="grade submitted notebooks (files or folders)")
    grade.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    grade.add_argument("--assignment", help="e.g. backprop or convolution (default: the one "
                       "the --out folder holds)")
    grade.add_argument("--out", required=True, type=Path, help="folder for results and feedback")
    grade.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel workers (default: the number of cores)",
    )
    grade.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    grade.add_argument("--dask", metavar="ADDRESS", help="grade on this Dask scheduler")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument(
        "--trust-submissions-without-isolation",
        dest="trusted",
        action="store_true",
        help="grade even where the sandbox cannot hide the file system from student code "
        "(they could read the solutions): only for submissions you trust",
    )
    _class_options(grade)
    grade.add_argument("--lms", default="auto", choices=["auto", "canvas", "moodle",
                                                         "brightspace", "none"],
                       help="how the submissions' file names say who they are (default: auto)")
    grade.set_defaults(run=_grade)

    book = commands.add_parser(
        "gradebook", help="rebuild the overview and gradebooks of an output folder, no grading "
        "(after editing the course file)")
    book.add_argument("--assignment", help="default: the one the --out folder holds")
    book.add_argument("--out", required=True, type=Path)
    _class_options(book)
    book.set_defaults(run=_gradebook)

    check = commands.add_parser("check", help="a student's self-check: the public tests only")
    check.add_argument("notebook", type=Path)
    check.add_argument("--assignment", required=True)
    check.set_defaults(run=_check)

    export_check = commands.add_parser(
        "export-check", help="write a self-check for students (public tests, no solutions)"
    )
    export_check.add_argument("name", metavar="NAME", help="the assignment, e.g. backprop")
    export_check.add_argument("--out", type=Path, help="default: NAME-check.pyz")
    export_check.set_defaults(run=_export_check)

    gradescope = commands.add_parser("gradescope", help="build a Gradescope autograder zip")
    gradescope.add_argument("name", metavar="NAME", help="the assignment, e.g. backprop")
    gradescope.add_argument("--out", type=Path, help="default: NAME-autograder.zip")
    gradescope.add_argument("--mnist", type=Path, metavar="DIR",
                            help="put MNIST's four .gz files from DIR in the zip "
                            "(default: setup.sh downloads and verifies them)")
    gradescope.add_argument("--uid-isolation", action="store_true",
                            help="where Gradescope has no user namespaces, grade under the "
                            "sandbox's unprivileged uid instead of refusing")
    gradescope.set_defaults(run=_gradescope)

    assign = commands.add_parser("assign", help="make assignments/ from solutions/")
    assign.add_argument("--solutions", type=Path, default=Path("solutions"))
    assign.add_argument("--assignments", type=Path, default=Path("assignments"))
    assign.add_argument(
        "--check",
        action="store_true",
        help="fail if assignments/ is out of date instead of writing it",
    )
    assign.set_defaults(run=_assign)

    validate = commands.add_parser(
        "validate", help="check rubrics and solution notebooks before any student is graded"
    )
    validate.add_argument("names", nargs="*", metavar="NAME", help="default: every assignment")
    validate.add_argument("--solutions", type=Path, default=None, help="default: solutions/")
    validate.add_argument(
        "--static", action="store_true", help="skip the two gradings in the sandbox"
    )
    validate.add_argument(
        "--write-docs", action="store_true",
        help="write docs/rubric.md and docs/course.md from their schemas"
    )
    validate.set_defaults(run=_validate)

    serve = commands.add_parser(
        "serve", help="the course server: students hand in and read feedback, instructors "
        "review, adjust and release in the browser")
    serve.add_argument("--data", type=Path, default=Path("serve-data"),
                       help="folder for the database (SQLite) and the server's key "
                       "(default: serve-data)")
    serve.add_argument("--database", help="postgresql://USER:PASSWORD@HOST/DB instead of "
                       "SQLite in --data")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--assignments", default="backprop,convolution",
                       help="comma-separated (default: backprop,convolution)")
    serve.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="grading workers (default: the number of cores)")
    serve.add_argument("--dask", metavar="ADDRESS", help="grade on this Dask scheduler")
    serve.add_argument("--roster", type=Path, help="the class list (CSV) to load on an empty "
                       "database (default: the example roster)")
    serve.add_argument("--lease", type=float, default=30.0, help="seconds after which an "
                       "attempt whose worker stopped renewing it is graded again (default 30)")
    serve.add_argument("--https", action="store_true", help="served over https (behind a "
                       "proxy): session cookies are Secure")
    serve.set_defaults(run=_serve)
    return parser


def _class_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--roster", type=Path, help="the class list (CSV); remembered by --out")
    command.add_argument("--course", type=Path, help="deadlines, extensions, late rule and "
                         "adjustments (TOML); remembered by --out")


def _assignment(args: argparse.Namespace) -> str:
    """The assignment to grade into ``--out``: the one given, else the one the folder holds
    (so a late file needs only the folder). One that differs from the folder's is refused:
    its results would replace the others' under the same student names."""
    from grader.course import classroom

    held = classroom.assignment_of(args.out)
    if args.assignment is None:
        if held is None:
            raise GraderError(f"--assignment is needed: {args.out} holds no graded "
                              f"assignment yet")
        return held
    if held is not None and held != args.assignment:
        raise GraderError(f"{args.out} holds the results of {held}, not {args.assignment}; "
                          f"give --assignment {held}, or another --out for {args.assignment}")
    given: str = args.assignment
    return given


def _setup(assignment: str, *, trusted: bool) -> tuple[Rubric, MnistFiles | None, SandboxConfig]:
    from grader.checks import rubric
    from grader.run.layers import SandboxConfig, plan_layers

    loaded = rubric.load(assignment)
    config = SandboxConfig.from_env(allow_unisolated=trusted)
    plan_layers(config.mode, allow_unisolated=trusted)  # refuses here, before any grading
    files = None
    if loaded.needs_mnist:
        from grader.run import mnist

        files = mnist.prepare()
        config = dataclasses.replace(config, data_dir=files.sandbox_dir)
    return loaded, files, config


def _grade(args: argparse.Namespace) -> int:
    from grader.course import classroom
    from grader.course.batch import grade_all
    from grader.grading import validate

    if args.jobs < 1:
        raise GraderError("--jobs must be at least 1")
    loaded, files, config = _setup(_assignment(args), trusted=args.trusted)
    validate.assignment(loaded, config=config, mnist=files)  # before any student
    with classroom.intake(args.paths, out_dir=args.out, roster_path=args.roster,
                          course_path=args.course, lms=args.lms) as intake:
        summary = grade_all(
            intake.paths,
            loaded,
            args.out,
            sandbox=config,
            mnist=files,
            jobs=args.jobs,
            force=args.force,
            dask_address=args.dask,
            progress=not args.quiet,
            intake=intake,
        )
    print(summary.line(args.out))
    return 0


def _gradebook(args: argparse.Namespace) -> int:
    from grader.checks import rubric
    from grader.course import classroom

    if not (args.out / classroom.STATE).exists() and not list(args.out.glob("*.json")):
        raise GraderError(f"no results in {args.out}; grade into it first")
    from grader.course.batch import _only_run_on

    loaded = rubric.load(_assignment(args))
    with (classroom.intake([], roster_path=args.roster, course_path=args.course) as intake,
          _only_run_on(args.out)):
        # with the rubric, the class's function and similarity pages (and the overview's
        # links to them) are rebuilt too, as after grading, instead of vanishing
        view = classroom.rebuild(args.out, assignment=loaded.name, max_score=loaded.max_score,
                                 intake=intake, rubric=loaded)
    print(view.counts.line() + ".")
    print(f"Written: {', '.join(view.files)} and index.html in {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from grader.grading import canary
    from grader.grading.grade import Job, grade_submission
    from grader.render import summary

    if not args.notebook.is_file():
        raise GraderError(f"no such notebook: {args.notebook}")
    # a student checking their own notebook runs only their own code: no isolation needed
    loaded, files, config = _setup(args.assignment, trusted=True)
    verdict = canary.check(loaded, config=config, mnist=files)
    result = grade_submission(Job(args.notebook, loaded, config, files, public_only=True,
                                  reference_seconds=verdict.reference_seconds))
    print(summary.summary(result, width=inert.terminal_width()))
    return 0 if all(t.status == "passed" for t in result.tests) and not result.error else 1


def _export_check(args: argparse.Namespace) -> int:
    from grader.distribute import selfcheck

    out = args.out or Path(f"{args.name}-check.pyz")
    written = selfcheck.export(args.name, out)
    print(f"written {written}: students run `python {written.name} their.ipynb`")
    return 0


def _gradescope(args: argparse.Namespace) -> int:
    from grader.distribute import gradescope

    out = args.out or Path(f"{args.name}-autograder.zip")
    built = gradescope.build(args.name, out, mnist_dir=args.mnist,
                             uid_isolation=args.uid_isolation)
    print(f"written {built}: upload it as the assignment's autograder (Ubuntu 22.04+ image)")
    return 0


def _assign(args: argparse.Namespace) -> int:
    from grader.checks import rubric
    from grader.distribute.assign import assign
    from grader.grading import validate

    names = rubric.available(args.solutions) if args.solutions.is_dir() else []
    if names:  # all of validate but the two gradings
        validate.run(names, solutions_dir=args.solutions, grade=False)
    written = assign(args.solutions, args.assignments, check=args.check)
    verb = "up to date" if args.check else "written"
    print(f"{len(written)} assignment notebook(s) {verb} in {args.assignments}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from grader import serve

    if args.jobs < 0:
        raise GraderError("--jobs must be at least 0")
    names = tuple(n.strip() for n in args.assignments.split(",") if n.strip())
    config = serve.Config(data=args.data, database=args.database, assignments=names,
                          jobs=args.jobs, dask=args.dask, https=args.https, lease=args.lease,
                          **({"roster": args.roster} if args.roster else {}))
    serve.run(config, host=args.host, port=args.port)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from grader.checks import rubric
    from grader.course import coursefile
    from grader.grading import validate

    if args.write_docs:
        print(f"written {validate.write_docs()}")
        print(f"written {coursefile.write_docs()}")
        return 0
    solutions = args.solutions or rubric.SOLUTIONS_DIR
    for line in validate.run(args.names, solutions_dir=solutions, grade=not args.static):
        print(line)
    return 0
