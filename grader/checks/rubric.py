"""Rubrics: an assignment's tests as data (``solutions/<name>.toml``), parsed once into typed
values against a strict schema (``SCHEMA``): every table and key is known, so a typo is an
error with a "did you mean", never a silently ignored key. Every message names the file, the
test by its name and the key, e.g. ``backprop.toml: test 'relu: output': points must be a
number ≥ 0``; all the problems of a rubric are reported at once, one line each.

The keys every test has are here; a test's own keys are its kind's (``grader.checks.kinds``:
an ``Options`` dataclass per kind, its fields the keys with their typed defaults, filled in at
parse time), and so are its case keys and its cross-checks. ``docs/rubric.md`` is generated
from the same schema (``reference_markdown``), so the written reference of the format cannot
drift from what the parser accepts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from pathlib import Path
from typing import Any

from grader.checks import kinds
from grader.checks.kinds import Kind
from grader.checks.spec import Case, Rubric, TestSpec
from grader.core import paths, schema
from grader.core.errors import GraderError
from grader.core.schema import Problems, ProblemsError, did_you_mean

__all__ = ["Case", "Rubric", "TestSpec", "available", "load", "reference_markdown"]

VISIBILITIES = ("public", "hidden")
DISTRIBUTIONS = ("normal", "uniform", "labels", "distinct", "ties", "zeros")
PROJECT_ROOT = paths.PROJECT_ROOT
SOLUTIONS_DIR = paths.SOLUTIONS_DIR
# the side checks of every kind, by name (a backward's: ``[assignment].side_checks``)
SIDE_CHECKS = tuple(dict.fromkeys(name for kind in kinds.KINDS for name in kind.side_checks))


# --- value parsers (``grader.core.schema``), and the rubric's own ------------------------------

_string, _text, _strings, _number = schema.string, schema.text, schema.strings, schema.number
_one_of = schema.one_of


def _quotes(value: Any, where: str) -> dict[str, str]:
    """``side_checks``: a quote for each side check, by its name."""
    if not isinstance(value, dict):
        raise GraderError(f"{where} must be a table of side checks and quotes (got {value!r})")
    for name, quote in value.items():
        if name not in SIDE_CHECKS:
            raise GraderError(f"{where}: unknown side check {name!r}"
                              f"{did_you_mean(name, SIDE_CHECKS)}; they are "
                              f"{', '.join(SIDE_CHECKS)}")
        if not isinstance(quote, str) or not quote.strip():
            raise GraderError(f"{where}: {name!r} must be the notebook's sentence, quoted")
    return dict(value)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    ):
        raise GraderError(f"{where} must be a non-empty list of sizes ≥ 1 (got {value!r})")
    return tuple(value)


# --- the schema ------------------------------------------------------------------------------

REQUIRED = schema.REQUIRED


Key = schema.Key


ASSIGNMENT_KEYS = (
    Key("title", "string", "the file name", "Shown on every feedback page.", _text),
    Key("functions", "list of strings", REQUIRED,
        "The functions students write, by name. Each must be defined in the solution notebook "
        "inside `### BEGIN SOLUTION` / `### END SOLUTION` markers (unless listed in `given`); "
        "a test's `function` must be one of them.", _strings),
    Key("given", "list of strings", [],
        "Functions of `functions` handed to students complete: defined without solution "
        "markers, copied into the template as they are, not required to score 0 there.",
        _strings),
    Key("seed", "integer ≥ 0", 0,
        "Seeds every generated input (with the test's name and the case's number): the same "
        "inputs for every student, on every machine.", _number(0, integer=True)),
    Key("cell_timeout", "seconds > 0", 10.0,
        "How long one top-level cell of a submission may run before it is stopped.",
        _number(0, above=True)),
    Key("setup_budget", "seconds > 0", 30.0,
        "How long all top-level cells together may run; after that only definitions run.",
        _number(0, above=True)),
    Key("side_checks", "table of strings", {},
        "For each side check of a backward pass (`repeatable`, `leaves inputs unchanged`, "
        "`zero upstream gives zero`), the handed-out notebook's sentence that asks for it, "
        "quoted as a test's `requirement` is. Required when a gradient test has points: a "
        "failed side check deducts, and its feedback quotes the sentence.", _quotes),
)

# The keys of every kind of test; each kind adds its own (``Kind.options``: a dataclass whose
# fields are its keys with their typed defaults, ``grader.checks.kinds.base.key``).
COMMON_KEYS = (
    Key("name", "string", REQUIRED,
        "Unique within the rubric; the feedback, the gradebook columns and every message "
        "use it.", _string),
    Key("function", "string", REQUIRED,
        "The function under test, one of `[assignment].functions` (`rules` tests: any "
        "label, e.g. \"(whole notebook)\"); `mnist` tests: `train_mnist`, whose model "
        "`predict` is then called.", _string),
    Key("kind", "string", REQUIRED,
        " ".join(f"`{kind.name}`: {kind.meaning}" for kind in kinds.KINDS),
        _one_of(kinds.NAMES)),
    Key("points", "number ≥ 0", REQUIRED,
        "What the test is worth, shared equally among its cases and the values each compares.",
        _number(0)),
    Key("visibility", "string", "public",
        "`public` tests run in the students' self-check (`python -m grader check`); "
        "`hidden` ones only when grading, and their feedback never shows the rubric.",
        _one_of(VISIBILITIES)),
    Key("description", "string", "", "Shown with the test's result.", _text),
    Key("requirement", "string", "",
        "The sentence of the handed-out notebook that this test checks, quoted exactly (line "
        "breaks and runs of spaces may differ): the feedback of a test that loses points "
        "quotes it, so every lost point traces to something the student was given. Required "
        "for every test that can take points (`points` > 0, and `rules` tests, whose finds "
        "cost other tests theirs); `validate` checks that the template holds it.", _text),
)

# A test whose kind takes cases may give a single case's keys directly (``Kind.case_keys``).
SINGLE_CASE_KEYS = (
    Key("cases", "list of case tables", REQUIRED,
        "The calls to make, each a case table (below). A test with a single case may give "
        "the case's keys (`args`, `kwargs`, `expected`, `upstream`) directly instead."),
    Key("args", "list", "—", "The single case's positional arguments (see case tables)."),
    Key("kwargs", "table", "{}", "The single case's keyword arguments (see case tables)."),
    Key("expected", "array (nested lists of numbers)", "—",
        "The single case's expected value (see case tables)."),
    Key("upstream", "input spec", "—",
        "The single case's upstream gradient (see case tables)."),
)

CASE_KEYS = (
    Key("args", "list", REQUIRED,
        "Positional arguments: literal values (lists become float arrays) or input specs."),
    Key("kwargs", "table", "{}",
        "Keyword arguments, literal or input specs; each must be a parameter of the "
        "reference function (of the forward, for gradient tests)."),
    Key("expected", "array (nested lists of numbers)", REQUIRED,
        "The exact expected value (`example` tests only; other kinds compare with the "
        "reference)."),
    Key("upstream", "input spec", "normal, the output's shape",
        "The upstream gradient `dout` fed to the backward."),
)

INPUT_KEYS = (
    Key("shape", "list of integers ≥ 1", REQUIRED, "The array's shape.", _shape),
    Key("dist", "string", "normal",
        "`normal` (standard normal), `uniform` (in [−1, 1)), `labels` (integers in "
        "[0, classes)), `distinct` (no two values equal: max-pooling's gradient is unique), "
        "`ties` (values 0, 1, 2: windows with several maxima), `zeros`.",
        _one_of(DISTRIBUTIONS)),
    Key("away_from_zero", "number ≥ 0", 0,
        "Pushes every value at least this far from 0 (keeps ReLU inputs off its kink).",
        _number(0)),
    Key("zero_fraction", "number in [0, 1]", 0,
        "Sets about this fraction of values to exactly 0 (probes a kink on purpose).",
        _number(0, 1)),
    Key("scale", "number", 1, "Multiplies the values (e.g. 1000 for overflow tests).",
        _number()),
    Key("offset", "number", 0, "Added to the values after scaling.", _number()),
    Key("classes", "integer ≥ 1", REQUIRED + " with dist = \"labels\"",
        "The number of classes of `labels`.", _number(1, integer=True)),
    Key("dtype", "string", "float64", "The array's type.",
        _one_of(("float64", "float32", "float16"))),
)



def _test_keys() -> dict[str, Key]:
    """Every [[tests]] key, of every kind: the common ones, a single case's, then each kind's
    options in the registry's order (a key two kinds share is listed once)."""
    found = {k.name: k for k in (*COMMON_KEYS, *SINGLE_CASE_KEYS)}
    for kind in kinds.KINDS:
        for key in kind.options.keys():
            found.setdefault(key.name, key)
    return found


TEST_KEYS = tuple(_test_keys().values())
SCHEMA = {
    "[assignment]": ASSIGNMENT_KEYS,
    "[[tests]]": TEST_KEYS,
    "case tables": CASE_KEYS,
    "input specs": INPUT_KEYS,
}
TABLES = ("assignment", "defaults", "tests")
_TEST = {k.name: k for k in TEST_KEYS}
_CASE = {k.name: k for k in CASE_KEYS}
_INPUT = {k.name: k for k in INPUT_KEYS}
COMMON = tuple(k.name for k in COMMON_KEYS)
CASE_PARTS = tuple(k.name for k in SINGLE_CASE_KEYS)  # parsed by _cases


def kinds_taking(name: str) -> tuple[str, ...]:
    """The kinds of test whose [[tests]] tables take key ``name``, in the registry's order."""
    if name in COMMON:
        return kinds.NAMES
    return tuple(kind.name for kind in kinds.KINDS if kind.accepts(name))


def case_kinds_taking(name: str) -> tuple[str, ...]:
    """The kinds of test whose case tables take key ``name``."""
    return tuple(kind.name for kind in kinds.KINDS if name in kind.case_keys)


# --- loading ---------------------------------------------------------------------------------


def available(solutions_dir: Path = SOLUTIONS_DIR) -> list[str]:
    return sorted(p.stem for p in solutions_dir.glob("*.toml") if p.with_suffix(".ipynb").exists())


def load(name: str, *, solutions_dir: Path = SOLUTIONS_DIR) -> Rubric:
    """Load and validate the rubric of assignment ``name``."""
    path = solutions_dir / f"{name}.toml"
    if not path.exists():
        known = ", ".join(available(solutions_dir)) or "none"
        raise GraderError(
            f"unknown assignment {name!r} (known: {known}); expected a rubric at {path}"
        )
    solution = path.with_suffix(".ipynb")
    if not solution.exists():
        raise GraderError(f"{path.name}: the reference notebook {solution} is missing")
    try:
        raw = path.read_bytes()
    except OSError as exc:  # a folder of that name, no permission...
        raise GraderError(f"{path.name}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GraderError(f"{path.name}: not valid TOML ({exc})") from None
    loaded = _parse(data, path=path, solution=solution, digest=hashlib.sha256(raw).hexdigest())
    return dataclasses.replace(loaded, secret=grading_secret(solution))


def grading_secret(solution: Path) -> str:
    """The secret the grading inputs are drawn with: the reference notebook's digest (what
    only the instructor holds; it never reaches a sandbox or the exported checker)."""
    try:
        raw = solution.read_bytes()
    except OSError as exc:
        raise GraderError(f"{solution.name}: cannot be read ({exc.strerror})") from None
    return hashlib.sha256(b"grading inputs\0" + raw).hexdigest()


def _parse(data: dict[str, Any], *, path: Path, solution: Path, digest: str) -> Rubric:
    where, problems = path.name, Problems()
    for table in data:
        if table not in TABLES:
            hint = did_you_mean(table, TABLES, lambda t: f"[{t}]")
            problems.add(f"{where}: unknown table [{table}]{hint}; a rubric has [assignment], "
                         f"[defaults] and [[tests]]")
    head = data.get("assignment")
    if not isinstance(head, dict):
        problems.add(f"{where}: needs an [assignment] table")
        raise ProblemsError(problems.lines)  # (every test would say its function is unknown)
    settings = _table_keys(head, ASSIGNMENT_KEYS, f"{where}: [assignment]", problems)
    functions = settings.get("functions") or ()
    given = settings.get("given") or ()
    for name in given:
        if name not in functions:
            problems.add(f"{where}: [assignment] given: {name!r} is not in functions")
    defaults = _defaults(data.get("defaults", {}), where, problems)
    tests_raw = data.get("tests")
    if not isinstance(tests_raw, list) or not tests_raw:
        problems.add(f"{where}: needs at least one [[tests]] table")
        tests_raw = []
    tests = [_parse_test(t, i, defaults, where, functions, problems)
             for i, t in enumerate(tests_raw)]
    names = [t.name for t in tests if t is not None]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.add(f"{where}: test names must be unique; repeated: {', '.join(duplicates)}")
    problems.raise_any()
    return Rubric(
        name=path.stem,
        title=settings.get("title") or path.stem,
        path=path,
        solution=solution,
        functions=functions,
        tests=tuple(t for t in tests if t is not None),
        seed=settings["seed"],
        sha256=digest,
        cell_timeout=settings["cell_timeout"],
        setup_budget=settings["setup_budget"],
        given=given,
        side_checks=dict(settings.get("side_checks") or {}),
    )


def _table_keys(raw: dict[str, Any], keys: tuple[Key, ...], where: str,
                problems: Problems) -> dict[str, Any]:
    return schema.parse_table(raw, keys, where, problems)


def _defaults(raw: Any, where: str, problems: Problems) -> dict[str, Any]:
    """[defaults]: any [[tests]] key but the test's name, applied where the kind accepts it."""
    if not isinstance(raw, dict):
        problems.add(f"{where}: [defaults] must be a table")
        return {}
    for name in raw:
        if name not in _TEST or name == "name":
            problems.add(f"{where}: [defaults]: unknown key {name!r}"
                         f"{did_you_mean(name, [k for k in _TEST if k != 'name'])}")
    return {k: v for k, v in raw.items() if k in _TEST and k != "name"}


def _parse_test(raw: Any, index: int, defaults: dict[str, Any], file: str,
                functions: tuple[str, ...], problems: Problems) -> TestSpec | None:
    if not isinstance(raw, dict):
        problems.add(f"{file}: tests[{index}] must be a table")
        return None
    name = raw.get("name")
    label = f"test {name!r}" if isinstance(name, str) and name else f"tests[{index}] (no name)"
    where = f"{file}: {label}"
    before = len(problems.lines)
    named = raw.get("kind", defaults.get("kind"))
    kind = kinds.get(named) if isinstance(named, str) and named in kinds.NAMES else None
    for key in raw:
        if key not in _TEST:
            problems.add(f"{where}: unknown key {key!r}{did_you_mean(key, _TEST)}")
        elif kind and key not in COMMON and not kind.accepts(key):
            problems.add(f"{where}: {key} is not a key of {kind.name} tests (only of "
                         f"{', '.join(kinds_taking(key))} tests)")
    merged = {**{k: v for k, v in defaults.items()
                 if kind is None or k in COMMON or kind.accepts(k)}, **raw}
    merged = {k: v for k, v in merged.items() if k in _TEST}
    values = _table_keys({k: v for k, v in merged.items() if k in COMMON}, COMMON_KEYS, where,
                         problems)
    if kind is None:
        return None
    own = {k: v for k, v in merged.items() if k not in COMMON and k not in CASE_PARTS}
    options = kind.options.parse(own, where, problems)
    cases = _cases(merged, kind, where, problems) if kind.case_keys else ()
    if len(problems.lines) > before or options is None:
        return None
    spec = TestSpec(
        name=values["name"],
        function=values["function"],
        kind=kind.name,
        points=values["points"],
        visibility=values["visibility"],
        description=values["description"],
        requirement=values["requirement"],
        cases=cases,
        options=options,
        hooks=kind,
        written=tuple(sorted(own)),
    )
    kind.cross_check(spec, where=where, functions=functions, problems=problems)
    return spec


def _cases(merged: dict[str, Any], kind: Kind, where: str, problems: Problems) -> tuple[Case, ...]:
    single = [k for k in _CASE if k in merged]
    if "cases" in merged and single:
        problems.add(f"{where}: give either cases = [...] or {', '.join(single)} for a single "
                     f"case, not both")
        return ()
    if "cases" in merged:
        raw_cases, spots = merged["cases"], None
        if not isinstance(raw_cases, list) or not raw_cases:
            problems.add(f"{where}: cases must be a non-empty list of case tables")
            return ()
    elif not single:
        problems.add(f"{where}: needs cases = [...] (or args = [...] for a single case)")
        return ()
    else:
        raw_cases, spots = [{k: merged[k] for k in single}], [where]
    cases = []
    for i, raw in enumerate(raw_cases):
        spot = spots[0] if spots else f"{where}: cases[{i}]"
        prefix = f"{spot}: " if spots else f"{spot}."
        case = _case(raw, kind, spot, prefix, problems)
        if case is not None:
            cases.append(case)
    return tuple(cases)


def _case(raw: Any, kind: Kind, spot: str, prefix: str, problems: Problems) -> Case | None:
    """One case table; ``prefix`` joins it to its keys (``…: cases[0].args``, ``…: args``)."""
    if not isinstance(raw, dict):
        problems.add(f"{spot} must be a table with args (and kwargs)")
        return None
    before = len(problems.lines)
    for key in raw:
        if key not in _CASE:
            problems.add(f"{prefix}{key}: unknown key{did_you_mean(key, _CASE)}")
        elif key not in kind.case_keys:
            problems.add(f"{prefix}{key} is not a key of {kind.name} tests (only of "
                         f"{', '.join(case_kinds_taking(key))} tests)")
    args = raw.get("args")
    if not isinstance(args, list):
        problems.add(f"{prefix}args must be a list of arguments")
        args = []
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        problems.add(f"{prefix}kwargs must be a table")
        kwargs = {}
    for i, arg in enumerate(args):
        _input(arg, f"{prefix}args[{i}]", problems)
    for name, value in kwargs.items():
        _input(value, f"{prefix}kwargs.{name}", problems)
    if "expected" in kind.case_keys:
        _expected(raw, prefix, problems, kind.name)
    if "upstream" in raw:
        if not isinstance(raw["upstream"], dict):
            problems.add(f"{prefix}upstream must be an input spec, e.g. {{ shape = [4, 3] }}")
        else:
            _input(raw["upstream"], f"{prefix}upstream", problems)
    if len(problems.lines) > before:
        return None
    return Case(args=tuple(args), kwargs=dict(kwargs), expected=raw.get("expected"),
                upstream=raw.get("upstream"))


def _expected(raw: dict[str, Any], prefix: str, problems: Problems, kind: str) -> None:
    if "expected" not in raw:
        problems.add(f"{prefix}expected is required for an {kind} test")
        return
    import numpy as np  # (only here: the rest of the schema needs no NumPy)

    try:
        np.asarray(raw["expected"], dtype=np.float64)
    except (TypeError, ValueError):
        problems.add(f"{prefix}expected must be a number or (nested, rectangular) lists of "
                     f"numbers")


def _input(value: Any, where: str, problems: Problems) -> None:
    """A table among the arguments is an input spec: its keys are checked here."""
    if not isinstance(value, dict):
        return
    for key in value:
        if key not in _INPUT:
            problems.add(f"{where}: unknown input spec key {key!r}{did_you_mean(key, _INPUT)}")
    if "shape" not in value:
        problems.add(f"{where}: an input spec needs shape = [...]")
    for key in INPUT_KEYS:
        if key.name in value:
            problems.parse(key.parse, value[key.name], f"{where}.{key.name}")
    labels = value.get("dist") == "labels"
    if labels and "classes" not in value:
        problems.add(f"{where}: dist = \"labels\" needs classes = C")
    if "classes" in value and not labels:
        problems.add(f"{where}: classes is only for dist = \"labels\"")


# --- the written reference -------------------------------------------------------------------


def reference_markdown() -> str:
    """docs/rubric.md, generated from the schema (a test keeps the file equal to this)."""
    parts = [_DOC_HEAD]
    parts += _doc_table("[assignment]", ASSIGNMENT_KEYS, "The assignment as a whole.")
    parts += [_DOC_DEFAULTS]
    parts += _doc_table(
        "[[tests]]: every kind", COMMON_KEYS,
        "One table per test, in the order the feedback shows them.")
    for kind in kinds.KINDS:
        keys = [*(k for k in SINGLE_CASE_KEYS if kind.accepts(k.name)), *kind.options.keys()]
        if keys:
            article = "an" if kind.name[0] in "aeiou" else "a"
            parts += _doc_table(f"[[tests]]: kind = \"{kind.name}\"", keys,
                                f"The keys {article} `{kind.name}` test accepts besides those "
                                f"of every kind.")
    parts += _doc_table("Case tables", CASE_KEYS, _DOC_CASES)
    parts += _doc_table("Input specs", INPUT_KEYS, _DOC_INPUTS)
    parts.append(_DOC_TAIL)
    return "\n".join(parts)


_doc_table = schema.doc_table


_DOC_HEAD = """\
# The rubric format

<!-- Generated from the schema in grader/checks/rubric.py and each kind's options in
grader/checks/kinds/ by `python -m grader validate --write-docs`; tests/test_rubric.py fails
when this file differs from what the schema generates. -->

A rubric, `solutions/NAME.toml`, is an assignment's tests as data, beside its reference
notebook `solutions/NAME.ipynb`. Every table and key below is known to the grader: an unknown
key is an error with a "did you mean", and every message names the file, the test by its name
and the key. Check a rubric with `make validate` (or `python -m grader validate NAME`): besides
the format it checks keyword arguments against the reference function's signature, `outputs`
against what the reference returns, that every function is defined in the solution notebook
inside solution markers, that no solution reaches the template, that every test that can take
points quotes the sentence of the handed-out notebook it checks (`requirement`, and
`[assignment.side_checks]` for a backward's side checks) and that the template holds it, that
the reference scores full marks and that the untouched template scores 0. `grade` runs the
same checks before any student, `assign` runs all but the two gradings, and `make test` runs
`make validate`.

```toml
[assignment]
title = "Convolution"
functions = ["conv1d"]

[defaults]            # optional: any [[tests]] key but name, for every test whose kind takes it
visibility = "hidden"

[[tests]]
name = "conv1d: lecture example"
requirement = "Valid 1-D cross-correlation of the signal x with the kernel w (no flipping)."
function = "conv1d"
kind = "example"
points = 1
args = [[0, 1, -1, 0.5], [2]]
expected = [0, 2, -2, 1]

[[tests]]
name = "conv1d: random sizes"
requirement = "Valid 1-D cross-correlation of the signal x with the kernel w (no flipping)."
function = "conv1d"
kind = "output"
points = 2
cases = [
  { args = [{ shape = [17] }, { shape = [4] }] },
  { args = [{ shape = [16] }, { shape = [3] }], kwargs = { stride = 3 } },
]
```
"""

_DOC_DEFAULTS = """\
## [defaults]

Optional. Any `[[tests]]` key but `name`, e.g. `timeout = 5` or `visibility = "hidden"`: it
applies to every test whose kind accepts the key and that does not set the key itself.
"""

_DOC_CASES = """\
The keys of each table in a test's `cases` list (or of the test itself, for a single case).
Positional arguments and keyword values are literals or input specs; for `gradient` tests
they are the forward's, and the backward is called with `(dout, cache)`."""

_DOC_INPUTS = """\
A table among a case's arguments is an input spec: the grader draws a seeded array from it,
the same for every student (seeded by `[assignment].seed`, the test's name and the case's
number), e.g. `{ shape = [4, 6], away_from_zero = 0.1 }`."""

_DOC_TAIL = """\
## Budgets

`timeout`, `budget` and `predict_budget` take seconds, or a table relative to the reference's
own time for the same call on the grading machine (measured by the reference canary before
every batch): `budget = { times_reference = 10, at_least = 60, at_most = 300 }` means 10 × the
reference's time, never under 60 s nor over 300 s. All three keys of the table are required.
"""
