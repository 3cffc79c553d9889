"""The class seen one function at a time, and who shares whose code: pages for the tutors.

After a batch, ``write(results, out_dir, rubric)`` adds ``class/function-NAME.html`` per graded
function (every implementation in the class, grouped by what it does on the tests, then by
identical code) and ``class/similarity.html`` (suspicious pairs and clusters, side by side;
``grader.render.similarity`` computes them), and returns what the overview links to.

Both are pure functions of the stored results and the template: no student code runs. A
behaviour is read from what the checks stored (each test's status, diagnosis, which outputs
and checks failed, relative errors to two digits): the same wrong numbers on the same hidden
inputs mean the same bug. Student code is shown through Pygments, which escapes every
character; everything else goes through Jinja's autoescape.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pygments import format as format_tokens
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from grader.checks.rubric import Rubric
from grader.core import notebook, solution
from grader.core.files import write_atomic
from grader.core.results import SCHEMA_VERSION, SubmissionResult, TestResult
from grader.render import similarity

FOLDER = "class"
SIMILARITY_PAGE = "similarity.html"
MAX_SOURCE_CHARS = notebook.MAX_SOURCE_CHARS + 1_000  # shown of older results' longer code
MAX_SIDE_BY_SIDE = 100  # pairs drawn in full; the table lists every one
STATUS_WORDS = {"passed": "passed", "failed": "failed", "error": "crashed",
                "timeout": "timed out", "review": "needs review"}
_RAISED = re.compile(r"raised (\w+)")
# One test's outcome as comparable data: (name, "passed"), or (name, status, diagnosis, the
# outputs that failed, the checks that failed, what it raised) (``_test_signature``)
TestSignature = tuple[Any, ...]
Behaviour = tuple[TestSignature, ...]


@dataclass(frozen=True)
class Variant:
    """Implementations identical once names, layout and comments are set aside."""

    students: tuple[str, ...]
    source: str  # the first student's, as written


@dataclass(frozen=True)
class Group:
    """Students whose function behaved the same on every test of it."""

    correct: bool
    verdict: str
    diagnoses: tuple[str, ...]
    findings: tuple[str, ...]  # per test that did not pass, what went wrong, in words
    students: tuple[str, ...]
    variants: tuple[Variant, ...]  # most common first


@dataclass(frozen=True)
class FunctionView:
    name: str
    tests: tuple[str, ...]
    groups: tuple[Group, ...]  # largest first

    @property
    def students(self) -> int:
        return sum(len(g.students) for g in self.groups)


# --------------------------------------------------------------------------- public API


def write(results: Sequence[SubmissionResult], out_dir: Path, rubric: Rubric, *,
          generated: str | None = None) -> dict[str, Any] | None:
    """Write the function pages and the similarity page under ``out_dir/class`` and return
    the overview's links (None, and no pages, when nothing was graded). Never raises for what
    students wrote: should a page fail anyway, the overview says so instead of stopping the
    batch."""
    generated = generated or date.today().isoformat()
    folder = out_dir / FOLDER
    graded = [dataclasses.replace(r, sources=_strings(r.sources))
              for r in results if r.error is None]
    if not graded:
        return None
    try:
        views = functions(graded, rubric)
        for view in views:
            write_atomic(folder / function_page(view.name), render_function(view, generated))
        sources = {r.student: _strings(r.sources) for r in graded}
        library = library_functions(graded)
        found = similarity.compare(_own_functions(sources, rubric, library),
                                   template=template_sources(rubric),
                                   unseen=[*unseen(graded, rubric),
                                           *_library_notes(library)])
        write_atomic(folder / SIMILARITY_PAGE, render_similarity(found, sources, generated))
        document = {"schema": SCHEMA_VERSION, **asdict(found)}
        write_atomic(folder / "similarity.json", json.dumps(document, indent=1) + "\n")
    except Exception as error:  # noqa: BLE001 - the class view must not stop the batch
        return {"problem": f"The class view could not be built ({type(error).__name__}: "
                           f"{str(error)[:300]}); the grades are not affected."}
    return summary(views, found)


def prepare(result: SubmissionResult, rubric: Rubric) -> None:
    """Work out now what ``write`` will need of one result's code (normalised tokens and
    fingerprints, remembered per source), while a batch's workers still grade: the parent
    is mostly idle then, and ``write`` at the end, which nothing overlaps, gets shorter.
    Sources too long to be remembered are left to ``write`` (worked out here, they would be
    worked out there again). Never raises: whatever fails here fails again in ``write``,
    which says so."""
    if result.error is not None:
        return
    given = set(rubric.given)
    try:
        for name, source in _strings(result.sources).items():
            if name not in given and len(source) <= similarity.MEMORY_CHARS:
                similarity.normalised(source)
                similarity.fingerprints(name, source)
                _lexed(source)  # what the pages show is what students wrote
    except Exception:  # noqa: BLE001,S110 - only a head start; ``write`` reports problems
        pass


def warm_up(rubric: Rubric | None = None) -> None:
    """Compile the class pages' templates, load the highlighter and read the handed-out
    template's code before they are needed (see ``prepare``)."""
    env = _environment()
    for name in ("function.html.j2", "similarity.html.j2"):
        env.get_template(name)
    _code("x = 1\n")
    _code_css()
    if rubric is not None:
        for source in template_sources(rubric).values():
            similarity.all_hashes(source)


def summary(views: Sequence[FunctionView], found: similarity.Similarity) -> dict[str, Any]:
    """What the class overview shows and links to (paths relative to ``index.html``)."""
    return {
        "problem": None,
        "functions": [{"name": v.name, "href": f"{FOLDER}/{quote(function_page(v.name))}",
                       "students": v.students, "groups": len(v.groups),
                       "correct": sum(len(g.students) for g in v.groups if g.correct)}
                      for v in views],
        "similarity": {"href": f"{FOLDER}/{SIMILARITY_PAGE}", "pairs": len(found.pairs),
                       "clusters": len(found.clusters), "compared": len(found.students),
                       "threshold": _pct(found.threshold),
                       "largest": [[{"student": s, "href": quote(f"{s}.html", safe="")}
                                    for s in cluster] for cluster in found.clusters[:10]]},
    }


def function_page(name: str) -> str:
    return f"function-{name}.html"


def functions(graded: Sequence[SubmissionResult], rubric: Rubric) -> tuple[FunctionView, ...]:
    """One view per function the students write (those handed out complete are left out)."""
    names = [f for f in rubric.functions if f not in rubric.given and f.isidentifier()]
    return tuple(group_function(graded, name) for name in names)


def template_sources(rubric: Rubric) -> dict[str, str]:
    """The functions as handed out (``assignments/NAME.ipynb``, else made from the solution
    as ``grader assign`` makes it): what is in them is nobody's own work."""
    path = rubric.solution.parent.parent / "assignments" / rubric.solution.name
    raw = path.read_bytes() if path.is_file() else solution.render_assignment(rubric.solution)
    return dict(_template_functions(path, raw, tuple(rubric.functions)))


@lru_cache(maxsize=8)
def _template_functions(path: Path, raw: bytes,
                        functions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Remembered per template text (``warm_up`` reads it while the workers grade). Every
    definition of the template, not only the rubric's functions: a student's function is
    compared with the helpers it calls, and a helper handed out is nobody's own either."""
    read = notebook.from_bytes(path, raw)
    if isinstance(read, notebook.UnreadableNotebook):
        raise ValueError(f"the template {path.name} cannot be read: {read.error}")
    defined = (d.name for cell in read.cells for d in cell.definitions)
    return tuple(read.function_sources(list(dict.fromkeys([*functions, *defined]))).items())


# --------------------------------------------------------------------------- grouping


def group_function(graded: Sequence[SubmissionResult], name: str) -> FunctionView:
    """Students grouped by behaviour, and within a behaviour by identical normalised code."""
    members: dict[Behaviour, list[SubmissionResult]] = defaultdict(list)
    for result in sorted(graded, key=lambda r: (r.student.casefold(), r.student)):
        members[behaviour(result, name)].append(result)
    groups = [_group(name, signature, found) for signature, found in members.items()]
    groups.sort(key=lambda g: (-len(g.students), not g.correct, g.verdict, g.students))
    tests = sorted({t.name for r in graded for t in r.tests if t.function == name})
    return FunctionView(name, tuple(tests), tuple(groups))


def behaviour(result: SubmissionResult, function: str) -> Behaviour:
    """What a submission's ``function`` did, as comparable data. Two students share it when
    every test of the function ended the same way for the same reason with the same numbers."""
    tests = sorted((t for t in result.tests if t.function == function), key=lambda t: t.name)
    return tuple(_test_signature(t) for t in tests)


def _test_signature(test: TestResult) -> TestSignature:
    if test.status == "passed":
        return (test.name, "passed")
    details = test.details if isinstance(test.details, dict) else {}
    raised = _RAISED.search(test.message or "") if test.status == "error" else None
    return (test.name, test.status, test.diagnosis or "", _failed_outputs(details),
            _failed_checks(details), raised.group(1) if raised else "")


def _failed_outputs(details: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    outputs = details.get("outputs")
    if not isinstance(outputs, list):
        return ()
    return tuple((str(o.get("name")), _rounded(o.get("relative_error")),
                  str(o.get("got_shape")) if o.get("got_shape") != o.get("expected_shape")
                  else "")
                 for o in outputs if isinstance(o, dict) and not o.get("passed"))


def _failed_checks(details: Mapping[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    checks = details.get("checks")
    if not isinstance(checks, list):
        return ()
    return tuple((str(c.get("name")), c.get("passed"), c.get("cases"))
                 for c in checks if isinstance(c, dict) and c.get("passed") != c.get("cases"))


def _rounded(value: Any) -> str:
    """Two significant digits: the same bug gives the same figure, noise in the last bits
    does not split a group."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f"{value:.1e}" if math.isfinite(value) else str(value)


def _group(name: str, signature: Behaviour, results: list[SubmissionResult]) -> Group:
    failing = [s for s in signature if s[1] != "passed"]
    first = results[0]
    tests = {t.name: t for t in first.tests if t.function == name}
    diagnoses = tuple(dict.fromkeys(s[2] for s in failing if s[2]))
    return Group(
        correct=bool(signature) and not failing,
        verdict=_verdict(signature),
        diagnoses=diagnoses,
        findings=tuple(_finding(tests[s[0]], s) for s in failing if s[0] in tests),
        students=tuple(r.student for r in results),
        variants=_variants(name, results),
    )


def _verdict(signature: Behaviour) -> str:
    if not signature:
        return "no test checks this function on its own"
    failing = sum(1 for s in signature if s[1] != "passed")
    if not failing:
        return f"passes all {len(signature)} test{'s' * (len(signature) > 1)}"
    return f"fails {failing} of {len(signature)} test{'s' * (len(signature) > 1)}"


def _finding(test: TestResult, signature: TestSignature) -> str:
    """One failing test in a line: its outcome, the outputs and checks that failed."""
    _, status, _, outputs, checks, raised = signature
    parts = [f"{test.name}: {STATUS_WORDS.get(status, status)}"]
    if raised:
        parts.append(f"raised {raised}")
    if outputs:
        parts.append("wrong " + ", ".join(
            f"{o}" + (f" (relative error {e})" if e else "") + (f" (shape {s})" if s else "")
            for o, e, s in outputs))
    if checks:
        parts.append("; ".join(f"{c}: passed {p} of {n} cases" for c, p, n in checks))
    if status in ("error", "timeout") and test.message:
        parts.append(f"for example: {_clip(test.message, 300)}")
    return "; ".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _variants(name: str, results: list[SubmissionResult]) -> tuple[Variant, ...]:
    by_code: dict[str, list[SubmissionResult]] = defaultdict(list)
    for result in results:
        source = result.sources.get(name) if isinstance(result.sources, dict) else None
        key = _normalised(source) if isinstance(source, str) else "\x00missing"
        by_code[key or f"\x00raw:{source}"].append(result)
    variants = [Variant(tuple(r.student for r in found), _source(found[0], name))
                for found in by_code.values()]
    return tuple(sorted(variants, key=lambda v: (-len(v.students), v.students)))


def _normalised(source: str) -> str:
    """Empty when the code cannot be normalised, however it fails: it is then compared as
    written, and one student's text never stops the page."""
    try:
        return similarity.normalised(source)
    except Exception:  # noqa: BLE001 - see the docstring
        return ""


def _source(result: SubmissionResult, name: str) -> str:
    source = result.sources.get(name) if isinstance(result.sources, dict) else None
    return source if isinstance(source, str) else ""


def _strings(sources: Any) -> dict[str, str]:
    """A result's sources as read back from JSON: only text is code, and only text a page
    can hold (a result written before the reader replaced surrogates may have them)."""
    if not isinstance(sources, dict):
        return {}
    return {notebook.without_surrogates(str(k)): notebook.without_surrogates(v)
            for k, v in sources.items() if isinstance(v, str)}


def unseen(graded: Sequence[SubmissionResult], rubric: Rubric) -> list[similarity.Note]:
    """What the similarity cannot see, said on its page: cells the reader did not read (too
    long), and functions that earned points with no code to show (defined in such a cell, or
    by ``exec`` and the like). Padding a copied cell past the reader's cap hides nothing."""
    own = [f for f in rubric.functions if f not in rubric.given]
    found = []
    for result in graded:
        if any(notebook.UNREAD in notice for notice in result.notices):
            found.append(similarity.Note(result.student, "", "some of its cells were too long "
                                         "for the grader to read: their code is not compared"))
        earned = {t.function for t in result.tests if t.score > 0}
        found += [similarity.Note(result.student, f, "not compared: it earned points, but the "
                                  "grader found no code of it that it could read")
                  for f in own if f in earned and f not in result.sources]
    return found


def library_functions(graded: Sequence[SubmissionResult]) -> dict[str, set[str]]:
    """Each student's functions that used a forbidden library shortcut (``np.convolve``...):
    already worth nothing, and two students calling the same library function is no copy."""
    return {r.student: {t.function for t in r.tests if t.diagnosis == "forbidden shortcut"}
            for r in graded}


def _library_notes(library: Mapping[str, set[str]]) -> list[similarity.Note]:
    return [similarity.Note(student, function, "not compared: it calls a library shortcut "
                            "(its tests give no points already), and the same library call is "
                            "no sign of copying")
            for student, functions in sorted(library.items()) for function in sorted(functions)]


def _own_functions(sources: Mapping[str, Mapping[str, str]], rubric: Rubric,
                   library: Mapping[str, set[str]] | None = None) -> dict[str, dict[str, str]]:
    given = set(rubric.given)
    return {s: {f: code for f, code in functions.items()
                if f not in given and f not in (library or {}).get(s, ())}
            for s, functions in sources.items()}


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("grader", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["pct"] = _pct
    env.filters["student_href"] = student_href
    return env


def student_href(student: str) -> str:
    """A student's page, seen from ``class/``: a relative link that stays one."""
    return "../" + quote(f"{student}.html", safe="")


def _pct(value: float) -> str:
    return f"{value:.0%}"


def forget() -> None:
    """Drop the highlighted code and the similarity memory this process keeps (see
    ``prepare``): for a benchmark's cold start or a test."""
    _highlighted.cache_clear()
    _tokens.cache_clear()
    _template_functions.cache_clear()
    similarity.forget()


def _code(source: str, lines: Sequence[int] = ()) -> Markup | None:
    """Pygments escapes every character of the source; its markup is safe to embed. Code
    that cannot be shown, however it fails, says so in its place."""
    try:
        if len(source) > similarity.MEMORY_CHARS:  # (a hostile giant is not kept)
            return _highlighted.__wrapped__(source, tuple(lines))
        return _highlighted(source, tuple(lines))
    except Exception as error:  # noqa: BLE001 - one student's text never stops a page
        return Markup('<p class="muted">This code could not be shown ({}).</p>').format(
            type(error).__name__)


@lru_cache(maxsize=similarity.MEMORY)
def _highlighted(source: str, lines: tuple[int, ...]) -> Markup | None:
    """Remembered per source and marked lines: the same code recurs on the function pages and
    the similarity page, and across a class (Markup is an immutable string)."""
    if not source.strip():
        return None
    formatter = _plain_formatter()
    if lines:  # a copy of the made one: making one builds its whole style sheet (0.3 ms)
        formatter = copy.copy(_marking_formatter())
        formatter.hl_lines = set(lines)
    return Markup(format_tokens(_lexed(source), formatter))


def _lexed(source: str) -> tuple[tuple[Any, str], ...]:
    """The shown text's tokens: nine tenths of highlighting's cost, and the same for every
    marked-lines copy of a source. ``prepare`` lexes each source while the workers grade, so
    that little of it is left for ``write``, which nothing overlaps."""
    if len(source) > similarity.MEMORY_CHARS:  # (a hostile giant is not kept)
        return _tokens.__wrapped__(source)
    return _tokens(source)


@lru_cache(maxsize=similarity.MEMORY)
def _tokens(source: str) -> tuple[tuple[Any, str], ...]:
    if len(source) > MAX_SOURCE_CHARS:  # (results keep less: this is for older ones)
        source = (f"{source[:MAX_SOURCE_CHARS]}\n# … [the first {MAX_SOURCE_CHARS:,} of "
                  f"{len(source):,} characters are shown]")
    return tuple(PythonLexer().get_tokens(source))


@lru_cache(maxsize=1)
def _plain_formatter() -> HtmlFormatter[str]:
    """Made once: a formatter builds its whole style sheet when it is created."""
    return HtmlFormatter(cssclass="code", wrapcode=True)


@lru_cache(maxsize=1)
def _marking_formatter() -> HtmlFormatter[str]:
    """Line numbers, and the lines ``hl_lines`` names marked (set on a copy per source)."""
    return HtmlFormatter(cssclass="code", wrapcode=True, linenos="inline")


@lru_cache(maxsize=1)
def _code_css() -> Markup:
    return Markup(HtmlFormatter(cssclass="code").get_style_defs(".code"))


def render_function(view: FunctionView, generated: str) -> str:
    groups = [{"group": g, "code": _code(g.variants[0].source),
               "others": [(v, _code(v.source)) for v in g.variants[1:]]} for g in view.groups]
    return _environment().get_template("function.html.j2").render(
        view=view, groups=groups, generated=generated, code_css=_code_css())


def render_similarity(found: similarity.Similarity, sources: Mapping[str, Mapping[str, str]],
                      generated: str) -> str:
    shown = [{"pair": p, "regions": [_side_by_side(p, r, sources) for r in p.regions]}
             for p in found.pairs[:MAX_SIDE_BY_SIDE]]
    return _environment().get_template("similarity.html.j2").render(
        found=found, shown=shown, generated=generated, code_css=_code_css(),
        params={"k": similarity.K, "window": similarity.WINDOW,
                "common": _pct(similarity.COMMON_FRACTION), "min_shared": similarity.MIN_SHARED,
                "substantial": similarity.SUBSTANTIAL})


def _side_by_side(pair: similarity.Pair, region: similarity.Region,
                  sources: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    left = sources.get(pair.a, {}).get(region.function_a, "")
    right = sources.get(pair.b, {}).get(region.function_b, "")
    return {"region": region, "left": _code(left, region.lines_a),
            "right": _code(right, region.lines_b)}
