"""What the checks need of the reference is computed once, not per submission
(``grader.checks.expectations``), and cannot be changed by the checks that share it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from grader.checks import expectations, rubric
from grader.checks.compare import directional_error, numerical_gradient, relative_error
from grader.core import reference


@pytest.fixture(scope="module", params=["backprop", "convolution"])
def prepared(request):
    loaded = rubric.load(request.param)
    ref = reference.load(loaded.solution)
    expectations.prepare(loaded, ref)
    return loaded, ref


def cases(loaded, kinds):
    return [(spec, n) for spec in loaded.tests if spec.kind in kinds
            for n in range(len(spec.cases))]


def test_every_case_is_computed_once_and_then_shared(prepared, monkeypatch) -> None:
    loaded, ref = prepared
    first = {(s.name, n): expectations.gradient_case(s, loaded, ref, n)
             for s, n in cases(loaded, ("gradient",))}
    assert first

    def refuse(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(expectations, "_gradient_case", refuse)
    monkeypatch.setattr(expectations, "_output_case", refuse)
    for spec, number in cases(loaded, ("gradient",)):
        assert expectations.gradient_case(spec, loaded, ref, number) is first[spec.name, number]
    for spec, number in cases(loaded, ("example", "output")):
        expectations.output_case(spec, loaded, ref, number)


def test_shared_arrays_are_read_only(prepared) -> None:
    loaded, ref = prepared
    for spec, number in cases(loaded, ("gradient",)):
        known = expectations.gradient_case(spec, loaded, ref, number)
        arrays = [a for a in (*known.args, known.dout, *known.expected)
                  if isinstance(a, np.ndarray)]
        arrays += [n.gradient for n in known.numeric if n is not None]
        assert all(not a.flags.writeable for a in arrays), spec.name
        with pytest.raises(ValueError):
            known.dout[...] = 0


def test_the_stored_differences_judge_gradients_like_measuring_them_again(prepared) -> None:
    """The reference's gradient agrees with its own central differences; a gradient off by a
    factor of two does not; and the stored figures equal a fresh measurement's."""
    loaded, ref = prepared
    for spec, number in cases(loaded, ("gradient",)):
        known = expectations.gradient_case(spec, loaded, ref, number)
        for numeric, expected in zip(known.numeric, known.expected):
            if numeric is None:
                continue
            assert numeric.error(expected) < 1e-5, spec.name
            if np.any(expected):
                assert numeric.error(2 * expected) > 0.1, spec.name


def test_stored_differences_equal_a_fresh_measurement() -> None:
    loaded = rubric.load("backprop")
    ref = reference.load(loaded.solution)
    spec = next(s for s in loaded.tests if s.kind == "gradient" and s.options.wrt is None
                and s.options.numeric)
    known = expectations.gradient_case(spec, loaded, ref, 0)
    work = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in known.args]
    forward = ref[spec.forward]

    def loss() -> float:
        return float(np.sum(np.asarray(forward(*work, **known.kwargs)[0]) * known.dout))

    from grader.checks import inputs

    rng = inputs.rng_for(loaded.seed, loaded.secret, spec.name, 0, "upstream")
    inputs.make(spec.cases[0].upstream or {"shape": list(known.dout.shape)}, rng)
    gradient, measured = numerical_gradient(loss, work[0], rng=rng)
    value = known.expected[0] + 1e-3
    fresh = max(relative_error(value[measured], gradient[measured]),
                directional_error(loss, work[0], value, rng=rng))
    assert known.numeric[0].error(value) == pytest.approx(fresh, rel=1e-12)


# --------------------------------------------------------------------------- kept on disk


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """An empty grader cache, and no memory of this process's: everything is measured."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reference.load.cache_clear()  # (each reference keeps what it computed: a fresh one)
    return tmp_path / "cache" / "backprop-grader" / "expectations"


def measured_cases(loaded, ref) -> dict:
    return {(s.name, n): expectations.gradient_case(s, loaded, ref, n)
            for s, n in cases(loaded, ("gradient",))}


def count_measurements(monkeypatch) -> list:
    calls = []
    measure = expectations._numeric

    def counted(*args, **kwargs):
        if args[0].options.numeric:  # (not measured: nothing to keep)
            calls.append(args[0].name)
        return measure(*args, **kwargs)

    monkeypatch.setattr(expectations, "_numeric", counted)
    return calls


def test_kept_differences_are_read_back_exactly_instead_of_measured(own_cache,
                                                                    monkeypatch) -> None:
    """The next batch (another process: no memory) reads the central differences back, equal
    to the last bit and read-only, and measures nothing."""
    loaded = rubric.load("convolution")
    ref = reference.load(loaded.solution)
    first = measured_cases(loaded, ref)
    kept = sorted(own_cache.glob("*.npz"))
    assert len(kept) == sum(any(n is not None for n in c.numeric) for c in first.values()) > 0
    assert own_cache.stat().st_mode & 0o777 == 0o700
    ref.memo.clear()
    calls = count_measurements(monkeypatch)
    again = measured_cases(loaded, ref)
    assert calls == []
    for key, case in first.items():
        for was, now, expected in zip(case.numeric, again[key].numeric, case.expected,
                                      strict=True):
            if was is None:
                assert now is None
                continue
            assert np.array_equal(was.gradient, now.gradient)
            assert np.array_equal(was.measured, now.measured)
            assert all(np.array_equal(a, b) for a, b in zip(was.directions, now.directions,
                                                             strict=True))
            assert was.slopes == now.slopes and not now.gradient.flags.writeable
            assert was.error(expected * 1.5) == now.error(expected * 1.5)


def test_another_reference_or_a_stand_in_measures_again(own_cache, monkeypatch) -> None:
    loaded = rubric.load("backprop")
    ref = reference.load(loaded.solution)
    measured_cases(loaded, ref)
    kept = set(own_cache.glob("*.npz"))
    calls = count_measurements(monkeypatch)
    changed = dataclasses.replace(ref, digest="0" * 64)  # the solution notebook was edited
    measured_cases(loaded, changed)
    assert calls and set(own_cache.glob("*.npz")) > kept
    calls.clear()
    stand_in = reference.Reference(ref.functions, ref.sources)  # records or replays calls
    now = set(own_cache.glob("*.npz"))
    measured_cases(loaded, stand_in)
    assert calls and set(own_cache.glob("*.npz")) == now  # neither read nor written


def test_a_damaged_kept_file_is_measured_again_and_replaced(own_cache, monkeypatch) -> None:
    loaded = rubric.load("backprop")
    ref = reference.load(loaded.solution)
    first = measured_cases(loaded, ref)
    kept = sorted(own_cache.glob("*.npz"))
    kept[0].write_bytes(b"not a zip")
    with np.load(kept[1]) as stored:  # an array of another shape than the input's
        arrays = dict(stored)
    arrays["gradient0"] = np.zeros(3)
    np.savez(kept[1], **arrays)
    ref.memo.clear()
    calls = count_measurements(monkeypatch)
    again = measured_cases(loaded, ref)
    assert len(calls) == 2
    for key, case in first.items():
        for was, now in zip(case.numeric, again[key].numeric, strict=True):
            assert (was is None and now is None) or np.array_equal(was.gradient, now.gradient)
    ref.memo.clear()
    calls.clear()
    measured_cases(loaded, ref)
    assert calls == []  # both replaced


def test_no_cache_folder_only_costs_the_measurement(tmp_path, monkeypatch) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    reference.load.cache_clear()  # (a fresh reference: it has computed nothing yet)
    loaded = rubric.load("backprop")
    calls = count_measurements(monkeypatch)
    assert measured_cases(loaded, reference.load(loaded.solution)) and calls
