"""Observing apart from scoring (``grader.grading.rescore``): a rubric change that only touches
points, visibility, descriptions or an MNIST threshold re-scores stored results without running any
student code, and gives exactly what a full regrade under the new rubric gives; a change of what is
observed (inputs, tolerances) runs the submission again."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from grader.checks import rubric
from grader.core.errors import InfrastructureError
from grader.core.results import SubmissionResult
from grader.course import batch
from grader.grading import rescore
from tests.conftest import SOLUTIONS, build_notebook
from tests.test_bug_patterns import BUGS
from tests.test_mnist_grading import WEAK_PREDICT, WEAK_TRAIN

VOLATILE = ("duration_s", "timings")
RANDOM_CONV1D = "conv1d: random sizes and strides"
CONV2D_FORWARD = "conv2d_forward: batches, channels, stride and padding"
EXAMPLE_CONV2D = "conv2d: lecture example"

# (the conv2d example test as solutions/convolution.toml writes it)
CONV2D = ('name = "conv2d: lecture example"\nrequirement = "Valid 2-D cross-correlation of one '
          'image x (H, W) with one kernel w (KH, KW)."\nfunction = "conv2d"\n')


def copy_rubric(folder: Path, name: str) -> Path:
    """A private copy of an assignment's rubric and reference, to edit."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".toml", ".ipynb"):
        shutil.copy(SOLUTIONS / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder / f"{name}.toml"


def edit(toml: Path, old: str, new: str) -> None:
    text = toml.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {toml.name} exactly once"
    toml.write_text(text.replace(old, new), encoding="utf-8")


def stable(result: SubmissionResult) -> dict:
    data = result.to_json()
    for key in VOLATILE:
        data.pop(key)
    return data


def grade(paths: list[Path], solutions: Path, out: Path, sandbox, **kwargs) -> batch.BatchSummary:
    loaded = rubric.load("convolution", solutions_dir=solutions)
    return batch.grade_all(paths, loaded, out, sandbox=sandbox, jobs=1, progress=False,
                           check_reference=False, **kwargs)


def no_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on any submission that would run stops the batch."""

    def refuse(job):
        raise AssertionError(f"{job.path.name} was run")

    monkeypatch.setattr(batch, "grade_submission", refuse)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, sandbox_config):
    """Three convolution submissions, graded once under the real rubric: one with half the
    credit of the conv2d_forward test (padding ignored: right without padding, wrong with it),
    the untouched template (zero) and a file that is no notebook (ungradable)."""
    root = tmp_path_factory.mktemp("rescore")
    bug = next(b for b in BUGS if b.function == "conv2d_forward")
    students = [
        build_notebook(root, "convolution", name="no_padding", replace={bug.function: bug.code}),
        build_notebook(root, "convolution", name="template", template=True),
        root / "broken.ipynb",
    ]
    students[-1].write_text("{ not a notebook")
    solutions = root / "solutions"
    copy_rubric(solutions, "convolution")
    summary = grade(students, solutions, root / "first", sandbox_config)
    assert (summary.graded, summary.rescored) == (3, 0)
    return root, students, summary


def scoring_change(root: Path, target: Path) -> Path:
    """The rubric with conv2d_forward worth 3 points instead of 2, a hidden test made public
    and a description added."""
    shutil.copytree(root / "solutions", target)
    toml = target / "convolution.toml"
    conv1d = 'bugs = ["flipped_kernel", "stride_ignored"]\nshape_formula = "(L'
    edit(toml, f'visibility = "hidden"\n{conv1d}', f'visibility = "public"\n{conv1d}')
    edit(toml, 'outputs = ["out"]\npoints = 2\n', 'outputs = ["out"]\npoints = 3\n')
    edit(toml, CONV2D, CONV2D + 'description = "The example of the lecture."\n')
    return target


def test_a_scoring_change_rescores_without_running(graded, sandbox_config, monkeypatch,
                                                   tmp_path) -> None:
    root, students, first = graded
    out = tmp_path / "out"
    shutil.copytree(root / "first", out)
    solutions = scoring_change(root, tmp_path / "solutions")
    no_running(monkeypatch)
    summary = grade(students, solutions, out, sandbox_config)
    assert (summary.graded, summary.rescored, summary.reused) == (3, 3, 0)
    assert "3 re-scored without running, 0 run." in summary.line(out)
    before = {r.student: {t.name: t for t in r.tests} for r in first.results}
    for result in summary.results:
        old = before[result.student]
        for test in result.tests:
            was = old[test.name]
            if test.name == CONV2D_FORWARD:
                earned = 0.0 if result.error else round(3 * was.fraction, 2)
                assert (test.max_score, test.score) == (3.0, earned)
            elif test.name == RANDOM_CONV1D:
                assert (test.visibility, was.visibility) == ("public", "hidden")
                assert (test.score, test.max_score) == (was.score, was.max_score)
            else:
                assert (test.score, test.max_score, test.visibility) == (
                    was.score, was.max_score, was.visibility)
            assert test.message == was.message
        assert {t.name: t.description for t in result.tests}[EXAMPLE_CONV2D] == (
            "The example of the lecture.")
        stored = json.loads((out / f"{result.student}.json").read_text())
        assert stored["max_score"] == first.results[0].max_score + 1
        if result.error is None:  # (an ungradable page lists no tests: none ran)
            assert "The example of the lecture." in (out / f"{result.student}.html").read_text()
    half = {t.name: t for t in summary.results[0].tests}[CONV2D_FORWARD]
    assert (half.score, half.max_score) == (1.5, 3.0)  # half of the cases right, as before
    assert summary.results[0].score == first.results[0].score + 0.5


def test_rescoring_equals_a_full_regrade(graded, sandbox_config, tmp_path) -> None:
    root, students, _ = graded
    out = tmp_path / "out"
    shutil.copytree(root / "first", out)
    solutions = scoring_change(root, tmp_path / "solutions")
    rescored = grade(students, solutions, out, sandbox_config)
    regraded = grade(students, solutions, tmp_path / "forced", sandbox_config, force=True)
    assert (rescored.rescored, regraded.rescored, regraded.graded) == (3, 0, 3)
    assert [stable(r) for r in rescored.results] == [stable(r) for r in regraded.results]


def test_changing_a_tolerance_runs_again(graded, sandbox_config, tmp_path) -> None:
    root, students, _ = graded
    out = tmp_path / "out"
    shutil.copytree(root / "first", out)
    shutil.copytree(root / "solutions", tmp_path / "solutions")
    toml = tmp_path / "solutions" / "convolution.toml"
    edit(toml, CONV2D, CONV2D + "tolerance = 1e-3\n")
    summary = grade(students, tmp_path / "solutions", out, sandbox_config)
    assert (summary.graded, summary.rescored) == (3, 1)  # the broken file has nothing to run
    assert "1 re-scored without running, 2 run." in summary.line(out)


def test_unchanged_rubric_reuses_and_runs_nothing(graded, sandbox_config, monkeypatch,
                                                  tmp_path) -> None:
    root, students, _ = graded
    out = tmp_path / "out"
    shutil.copytree(root / "first", out)
    no_running(monkeypatch)
    summary = grade(students, root / "solutions", out, sandbox_config)
    assert (summary.graded, summary.rescored, summary.reused) == (0, 0, 3)


def test_the_no_running_seam_would_catch_a_run(graded, sandbox_config, monkeypatch,
                                               tmp_path) -> None:
    """The guard of the tests above can fail: a changed submission must run, and is refused."""
    root, students, _ = graded
    out = tmp_path / "out"
    shutil.copytree(root / "first", out)
    changed = build_notebook(tmp_path, "convolution", name="no_padding", extra_cells=["x = 1"])
    no_running(monkeypatch)
    with pytest.raises(InfrastructureError, match="was run"):
        grade([changed, *students[1:]], root / "solutions", out, sandbox_config)


# --- the keys, without any sandbox -------------------------------------------------------------


def keys(loaded: rubric.Rubric) -> tuple[str, ...]:
    return rescore.observation_keys("0" * 64, loaded)


def changed(loaded: rubric.Rubric, index: int, options: dict | None = None,
            **fields) -> rubric.Rubric:
    tests = list(loaded.tests)
    tests[index] = dataclasses.replace(tests[index], **fields).with_options(**(options or {}))
    return dataclasses.replace(loaded, tests=tuple(tests))


# an observing key of each kind (the rules have none: their function, then)
OBSERVING = {"example": "tolerance", "output": "tolerance", "gradient": "tolerance",
             "mnist": "seed", "mnist_diagnostic": "epochs"}


@pytest.mark.parametrize("assignment", ["backprop", "convolution"])
def test_scoring_fields_leave_the_keys_alone(assignment) -> None:
    loaded = rubric.load(assignment)
    for index, spec in enumerate(loaded.tests):
        options = {}
        if spec.kind == "mnist":
            options.update(threshold=0.5, floor=0.1, review_above=0.999)
        edited = changed(loaded, index, points=spec.points + 3, visibility="public",
                         description="new words", options=options)
        assert keys(edited) == keys(loaded), spec.name


@pytest.mark.parametrize("assignment", ["backprop", "convolution"])
def test_observing_fields_change_this_key_and_every_later_one(assignment) -> None:
    loaded = rubric.load(assignment)
    original = keys(loaded)
    for index, spec in enumerate(loaded.tests):
        key = OBSERVING.get(spec.kind)
        edited = keys(changed(loaded, index, options={key: 3}) if key else
                      changed(loaded, index, function=spec.function + "_2"))
        assert edited[:index] == original[:index], spec.name
        assert all(a != b for a, b in zip(edited[index:], original[index:])), spec.name
    assert keys(dataclasses.replace(loaded, seed=loaded.seed + 1))[0] != original[0]
    assert rescore.observation_keys("1" * 64, loaded)[0] != original[0]


def test_the_diagnostic_threshold_is_observing() -> None:
    """It decides whether the culprit search runs, so changing it runs the notebook again."""
    loaded = rubric.load("backprop")
    index = next(i for i, t in enumerate(loaded.tests) if t.kind == "mnist_diagnostic")
    edited = changed(loaded, index, options={"threshold": 0.5})
    assert keys(edited)[index] != keys(loaded)[index]


# --- MNIST: a threshold change re-judges the stored accuracy, without training ---------------



def mnist_rubric(threshold: float) -> rubric.Rubric:
    """The backprop rubric as ``grade_notebook`` builds it for the MNIST test alone."""
    loaded = rubric.load("backprop")
    tests = tuple(t.with_options(threshold=threshold)
                  for t in loaded.tests if t.kind == "mnist")
    return dataclasses.replace(loaded, tests=tests)


def without_times(test) -> dict:
    data = dataclasses.asdict(test)
    data["details"] = {k: v for k, v in data["details"].items() if not k.endswith("_seconds")}
    data["message"] = data["message"].split(" (trained in")[0]
    return data


@pytest.mark.slow
def test_an_mnist_threshold_change_rescores_without_training(submission, grade_notebook,
                                                              monkeypatch) -> None:
    path = submission("backprop", replace={"train_mnist": WEAK_TRAIN, "predict": WEAK_PREDICT})
    strict = grade_notebook(path, "backprop", kinds=("mnist",))
    before = strict.tests[0]
    assert before.status == "failed" and 0 < before.score < before.max_score
    accuracy = before.details["accuracy"]
    lenient = round(accuracy - 0.05, 2)
    fresh = grade_notebook(path, "backprop", kinds=("mnist",),
                           options={"mnist": {"threshold": lenient}})

    from grader.run import sandbox

    def refuse(*args, **kwargs):
        raise AssertionError("a sandbox was started")

    monkeypatch.setattr(sandbox.Sandbox, "start", refuse)
    again = rescore.rescore(strict, mnist_rubric(lenient), cache_key="new")
    assert again is not None
    after = again.tests[0]
    assert (after.status, after.score, after.details["threshold"]) == ("passed", 4.0, lenient)
    assert f"reaches the {lenient:.0%} threshold" in after.message
    assert after.details["accuracy"] == accuracy and after.fraction == 1.0
    assert without_times(after) == without_times(fresh.tests[0])
    back = rescore.rescore(again, mnist_rubric(0.95), cache_key="old")
    assert without_times(back.tests[0]) == without_times(before)


# --- the reference canary re-scores its stored result too ------------------------------------


def refuse_sandboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.run import sandbox

    def refuse(*args, **kwargs):
        raise AssertionError("a sandbox was started")

    monkeypatch.setattr(sandbox.Sandbox, "start", refuse)


def with_options(loaded: rubric.Rubric, kind: str, **options) -> rubric.Rubric:
    tests = tuple(t.with_options(**options) if t.kind == kind else t for t in loaded.tests)
    return dataclasses.replace(loaded, tests=tests, sha256=f"{loaded.sha256}{options}")


def test_the_canary_rescores_the_reference_after_a_scoring_change(sandbox_config, tmp_path,
                                                                  monkeypatch) -> None:
    from grader.grading import canary

    loaded = rubric.load("convolution")
    first = canary.check(loaded, config=sandbox_config, cache_dir=tmp_path)
    more_points = dataclasses.replace(
        loaded, sha256="changed", tests=tuple(dataclasses.replace(t, points=t.points * 2)
                                             for t in loaded.tests))
    with monkeypatch.context() as patched:
        refuse_sandboxes(patched)
        again = canary.check(more_points, config=sandbox_config, cache_dir=tmp_path)
    assert not first.cached and again.cached
    assert again.reference_seconds == first.reference_seconds
    tighter = with_options(loaded, "output", tolerance=1e-9)
    assert not canary.check(tighter, config=sandbox_config, cache_dir=tmp_path).cached


@pytest.mark.slow
def test_a_threshold_the_reference_misses_stops_the_batch_without_training(
        sandbox_config, mnist_files, tmp_path, monkeypatch) -> None:
    from grader.grading import canary

    full = rubric.load("backprop")
    loaded = dataclasses.replace(full, tests=tuple(t for t in full.tests if t.kind == "mnist"))
    config = dataclasses.replace(sandbox_config, data_dir=mnist_files.sandbox_dir)
    first = canary.check(loaded, config=config, mnist=mnist_files, cache_dir=tmp_path)
    refuse_sandboxes(monkeypatch)
    lenient = canary.check(with_options(loaded, "mnist", threshold=0.9), config=config,
                           mnist=mnist_files, cache_dir=tmp_path)
    assert not first.cached and lenient.cached
    with pytest.raises(InfrastructureError, match="does not get full marks"):
        canary.check(with_options(loaded, "mnist", threshold=0.9999), config=config,
                     mnist=mnist_files, cache_dir=tmp_path)
