"""Validate an assignment before any student pays for a mistake in it.

A rubric can be well-formed and still wrong: a keyword the function does not take, an output
name the function does not return, a function the solution notebook never defines or defines
without solution markers. Each of these used to reach students as a lost point or an
"internal grader error" on their page. ``assignment`` finds them first, one line each:

1. the rubric against its strict schema (``grader.checks.rubric``);
2. the solution notebook: every function of ``[assignment].functions`` defined, inside
   solution markers unless ``given`` (``grader.distribute.solution.solution_leaks``);
3. every case called on the reference in this process, on the very inputs the grader will
   generate: keyword arguments against the real signature, ``returns``/``outputs`` against what
   comes back (and against the names in its ``return`` statement);
4. in the sandbox, through the students' path: the reference scores full marks (the canary,
   ``grader.grading.canary``) and the untouched template scores 0 on every graded test. Both
   verdicts are cached per grader, rubric, notebooks and sandbox, so an unchanged re-run is free.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import json
import platform
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__
from grader.checks import expectations, inputs, rubric
from grader.checks.rubric import Rubric, TestSpec, did_you_mean
from grader.core import reference, solution
from grader.core.errors import GraderError
from grader.core.files import write_atomic
from grader.grading import canary

DOCS = rubric.PROJECT_ROOT / "docs" / "rubric.md"


def run(names: Iterable[str], *, solutions_dir: Path = rubric.SOLUTIONS_DIR,
        grade: bool = True) -> list[str]:
    """Validate each named assignment (none: every one in ``solutions_dir``); one line per
    valid assignment, or ``ProblemsError`` with every problem of all of them."""
    names = list(names) or rubric.available(solutions_dir)
    if not names:
        raise GraderError(f"no assignment to validate in {solutions_dir}")
    lines, problems = [], []
    for name in names:
        try:
            loaded = rubric.load(name, solutions_dir=solutions_dir)
            if grade:
                config, files = _machine(loaded)
                lines.append(assignment(loaded, config=config, mnist=files))
            else:
                _raise(static(loaded))
                lines.append(f"{name}: valid ({len(loaded.tests)} tests; not graded)")
        except rubric.ProblemsError as exc:
            problems += exc.lines
        except GraderError as exc:
            problems.append(str(exc))
    _raise(problems)
    return lines


def assignment(loaded: Rubric, *, config: Any, mnist: Any = None,
               cache_dir: Path | None = None) -> str:
    """Everything above for one loaded rubric, on the grading machine's sandbox ``config``."""
    _raise(static(loaded))
    verdict = canary.check(loaded, config=config, mnist=mnist, cache_dir=cache_dir)
    cached = template_scores_zero(loaded, config=config, mnist=mnist, cache_dir=cache_dir)
    return (f"{loaded.name}: valid ({len(loaded.tests)} tests; the reference scores full marks"
            f"{', cached' if verdict.cached else ''}; the template scores 0"
            f"{', cached' if cached else ''})")


def static(loaded: Rubric) -> list[str]:
    """The problems that need no sandbox: notebook, signatures, returned values."""
    try:
        ref = reference.load(loaded.solution)
    except GraderError as exc:
        return [str(exc)]
    problems = _defined(loaded, ref)
    notebook = _read(loaded.solution)
    graded = [f for f in loaded.functions if f not in loaded.given and f in ref.functions]
    problems += solution.solution_leaks(notebook, name=loaded.solution.name, functions=graded)
    for spec in loaded.tests:
        if spec.kind in rubric.CALLED and _target(spec) in ref.functions:
            problems += _calls(loaded, spec, ref)
    if not problems:  # (the template is made from a notebook that passed the checks above)
        problems += requirements(loaded, _template_text(loaded, graded))
    return problems


# --- every lost point traces to the notebook's text ------------------------------------------


def requirements(loaded: Rubric, template: str) -> list[str]:
    """Every test that can take points quotes the sentence of the handed-out notebook it
    checks, and so does every side check of a backward where a gradient test has points; each
    quote must be in the template (line breaks and runs of spaces aside)."""
    where, text, problems = loaded.path.name, _words(template), []
    for spec in loaded.tests:
        spot = f"{where}: test {spec.name!r}: requirement"
        if spec.requirement:
            problems += _missing_quote(spot, spec.requirement, text, loaded)
        elif spec.points > 0 or spec.kind == "rules":
            problems.append(f"{spot} is required: quote the sentence of the handed-out notebook "
                            f"this test checks (a test that can take points must trace to what "
                            f"students were given)")
    if any(s.kind == "gradient" and s.points > 0 for s in loaded.tests):
        for name in rubric.SIDE_CHECKS:
            spot = f"{where}: [assignment] side_checks: {name!r}"
            quote = loaded.side_checks.get(name, "")
            if not quote:
                problems.append(f"{spot} is required: a failed side check of a backward "
                                f"deducts, so quote the notebook's sentence that asks for it")
            else:
                problems += _missing_quote(spot, quote, text, loaded)
    return problems


def _missing_quote(spot: str, quote: str, text: str, loaded: Rubric) -> list[str]:
    if _words(quote) in text:
        return []
    shown = " ".join(quote.split())
    shown = shown if len(shown) <= 70 else shown[:69] + "…"
    return [f"{spot} {shown!r} is not in the template made from {loaded.solution.name}: quote "
            f"its text exactly (only line breaks and runs of spaces may differ)"]


def _words(text: str) -> str:
    return " ".join(text.split())


def _template_text(loaded: Rubric, graded: list[str]) -> str:
    """Everything students read in the handed-out notebook: every cell's text."""
    import nbformat

    made = solution.render_assignment(loaded.solution, functions=graded)
    return "\n".join(cell.source for cell in nbformat.reads(made.decode(), as_version=4).cells)


def write_docs(path: Path = DOCS) -> Path:
    """docs/rubric.md from the schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, rubric.reference_markdown())
    return path


# --- the solution notebook -------------------------------------------------------------------


def _read(solution: Path) -> Any:
    import nbformat

    return nbformat.read(solution, as_version=4)


def _defined(loaded: Rubric, ref: reference.Reference) -> list[str]:
    return [
        f"{loaded.solution.name}: `{name}` is in {loaded.path.name} [assignment].functions but "
        f"the notebook does not define it{did_you_mean(name, ref.functions)}"
        for name in loaded.functions
        if name not in ref.functions
    ]


# --- calling the reference -------------------------------------------------------------------


def _target(spec: TestSpec) -> str:
    """The function a case's arguments go to: the forward, for gradient tests."""
    return (spec.forward or "") if spec.kind == "gradient" else spec.function


def _calls(loaded: Rubric, spec: TestSpec, ref: reference.Reference) -> list[str]:
    where = f"{loaded.path.name}: test {spec.name!r}"
    function = ref[_target(spec)]
    problems: list[str] = []
    for number, case in enumerate(spec.cases):
        spot = f"{where}: cases[{number}]" if len(spec.cases) > 1 else where
        wrong = _signature(spot, _target(spec), function, case)
        if wrong:
            problems.append(wrong)
            continue
        args, kwargs = expectations.case_inputs(spec, loaded, number)
        check = _gradient if spec.kind == "gradient" else _output
        try:
            found = check(spec, ref, args, kwargs, case)
        except Exception as exc:  # the instructor's reference on the rubric's inputs
            found = [f"the reference {_target(spec)} raised {type(exc).__name__}: {exc}"]
        problems += [f"{spot}: {line}" for line in found]
        if found:
            break  # the other cases would say the same
    return problems + _names(where, spec, ref)


def _signature(spot: str, name: str, function: Callable, case: rubric.Case) -> str | None:
    signature = inspect.signature(function)
    parameters = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key in case.kwargs:
        if key not in parameters and not takes_any:
            return (f"{spot}: kwargs: {name}() has no parameter {key!r}"
                    f"{did_you_mean(key, parameters)}; its parameters: "
                    f"{', '.join(parameters)}")
    try:
        signature.bind(*case.args, **case.kwargs)
    except TypeError as exc:
        return f"{spot}: {name}{signature} cannot be called with these arguments: {exc}"
    return None


def _output(spec: TestSpec, ref: reference.Reference, args: list, kwargs: dict,
            case: rubric.Case) -> list[str]:
    value = ref[spec.function](*args, **kwargs)
    if spec.returns:
        if not isinstance(value, tuple) or len(value) != len(spec.returns):
            return [f"returns names {len(spec.returns)} values ({', '.join(spec.returns)}) but "
                    f"the reference {spec.function} returns {_describe(value)}"]
        values = {name: value[spec.returns.index(name)] for name in spec.outputs}
    elif isinstance(value, tuple):
        return [f"the reference {spec.function} returns {_describe(value)}: name them with "
                f"returns = [...] and pick the compared ones with outputs = [...]"]
    else:
        values = {spec.outputs[0]: value}
    problems = [f"output {name!r}: the reference returns {_describe(v)}, not an array"
                for name, v in values.items() if not _numeric(v)]
    if spec.kind == "example" and not problems:
        [got] = values.values()
        expected = np.asarray(case.expected, dtype=np.float64)
        if np.shape(got) != expected.shape:
            problems.append(f"expected has shape {expected.shape} but the reference "
                            f"{spec.function} returns shape {np.shape(got)}")
    return problems


def _gradient(spec: TestSpec, ref: reference.Reference, args: list, kwargs: dict,
              case: rubric.Case) -> list[str]:
    forward = ref[spec.forward or ""](*[_copy(a) for a in args], **kwargs)
    if not isinstance(forward, tuple) or len(forward) != 2:
        return [f"forward {spec.forward} must return (out, cache); the reference returns "
                f"{_describe(forward)}"]
    out, cache = forward
    upstream = case.upstream or {"shape": list(np.shape(out))}
    dout = inputs.make(upstream, np.random.default_rng(0))
    if dout.shape != np.shape(out):
        return [f"upstream has shape {dout.shape} but {spec.forward} returns out of shape "
                f"{np.shape(out)}"]
    value = ref[spec.function](dout, cache)
    count = len(spec.outputs)
    if count == 1 and isinstance(value, tuple) or count > 1 and (
            not isinstance(value, tuple) or len(value) != count):
        return [f"outputs names {count} gradient(s) ({', '.join(spec.outputs)}) but the "
                f"reference {spec.function} returns {_describe(value)}"]
    gradients = list(value) if count > 1 else [value]
    problems = [f"output {name!r}: the reference returns {_describe(g)}, not an array"
                for name, g in zip(spec.outputs, gradients) if not _numeric(g)]
    if spec.options.get("numeric") is False or problems:
        return problems
    for name, gradient, position in zip(spec.outputs, gradients,
                                        spec.options.get("wrt", range(count))):
        if position >= len(args) or np.shape(args[position]) != np.shape(gradient):
            shape = np.shape(args[position]) if position < len(args) else "no argument"
            problems.append(f"wrt: gradient {name!r} has shape {np.shape(gradient)} but argument "
                            f"{position} of {spec.forward} is {shape}: set wrt = [...] to the "
                            f"positions of the arguments of each gradient")
    return problems


def _names(where: str, spec: TestSpec, ref: reference.Reference) -> list[str]:
    """A compared output must carry the name the reference returns it under, when the reference
    returns a plain variable there: the feedback names it, and so does the template."""
    returned = _returned_names(ref.sources.get(spec.function, ""), spec.function)
    if returned is None:
        return []
    problems = []
    for index, name in enumerate(spec.outputs):
        position = spec.returns.index(name) if spec.returns else index
        actual = returned[position] if position < len(returned) else None
        if actual is not None and actual != name:
            problems.append(f"{where}: outputs names {name!r} but {spec.function} returns "
                            f"{actual!r} there (return {', '.join(n or '…' for n in returned)})")
    return problems


def _returned_names(source: str, function: str) -> list[str | None] | None:
    """The variable names of the function's return statements, position by position (None
    where it returns an expression), or None when its returns disagree."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    definition = next((n for n in tree.body if isinstance(n, ast.FunctionDef)
                       and n.name == function), None)
    if definition is None:
        return None
    shapes = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.Return) and node.value is not None:
            items = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            shapes.add(tuple(i.id if isinstance(i, ast.Name) else None for i in items))
    return list(shapes.pop()) if len(shapes) == 1 else None


def _numeric(value: Any) -> bool:
    try:
        return np.asarray(value, dtype=np.float64).dtype == np.float64
    except (TypeError, ValueError):
        return False


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    if isinstance(value, np.ndarray):
        return f"one array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


# --- the template, graded --------------------------------------------------------------------


def template_scores_zero(loaded: Rubric, *, config: Any, mnist: Any = None,
                         cache_dir: Path | None = None) -> bool:
    """The template made from the solution, graded like a submission, scores 0 on every test of
    a function students write (``rules`` tests reward what is absent, so they are exempt).
    Returns whether the verdict was cached; raises ``ProblemsError`` naming each test."""
    from grader.grading.grade import Job, grade_submission
    from grader.run import zygote
    from grader.run.layers import plan_layers

    text = solution.render_assignment(loaded.solution)
    layers, missing = plan_layers(config.mode, allow_unisolated=config.allow_unisolated)
    parts = [__version__, loaded.sha256, repr(loaded), hashlib.sha256(text).hexdigest(),
             zygote.describe(layers, missing), config.mode, repr(config.limits),
             platform.node(), sys.executable]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
    path = (cache_dir or canary.default_cache_dir()).parent / "template" / f"{key}.json"
    if path.exists():
        return True
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / f"{loaded.name}.ipynb"
        template.write_bytes(text)
        result = grade_submission(Job(path=template, rubric=loaded, sandbox=config, mnist=mnist))
    where = f"{loaded.path.name}: the untouched template of {loaded.solution.name}"
    if result.error:
        raise GraderError(f"{where} cannot be graded: {result.error}")
    problems = [
        f"{where} scores {t.score:g}/{t.max_score:g} on test {t.name!r} ({t.message[:160]}): a "
        f"solution survives in `{t.function}` outside its solution markers, or list it in "
        f"[assignment].given"
        for t, spec in zip(result.tests, loaded.tests)
        if t.score > 0 and spec.kind != "rules" and spec.function not in loaded.given
    ]
    _raise(problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"template": "scores 0", "rubric": loaded.name}))
    return False


def _machine(loaded: Rubric) -> tuple[Any, Any]:
    """The sandbox (and MNIST) validation grades with: the instructor's own notebooks need no
    isolation from the solutions (as for a student's self-check)."""
    from grader.run.layers import SandboxConfig, plan_layers

    config = SandboxConfig.from_env(allow_unisolated=True)
    plan_layers(config.mode, allow_unisolated=True)
    files = None
    if loaded.needs_mnist:
        from grader.run import mnist

        files = mnist.prepare()
        config = dataclasses.replace(config, data_dir=files.sandbox_dir)
    return config, files


def _raise(problems: list[str]) -> None:
    if problems:
        raise rubric.ProblemsError(problems)
