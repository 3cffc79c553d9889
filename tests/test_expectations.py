"""What the checks need of the reference is computed once, not per submission
(``grader.expectations``), and cannot be changed by the checks that share it."""

from __future__ import annotations

import numpy as np
import pytest

from grader import expectations, reference, rubric
from grader.compare import directional_error, numerical_gradient, relative_error


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
    for spec, number in cases(loaded, expectations.OUTPUT_KINDS):
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
    spec = next(s for s in loaded.tests if s.kind == "gradient" and "wrt" not in s.options
                and s.options.get("numeric") is not False)
    known = expectations.gradient_case(spec, loaded, ref, 0)
    work = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in known.args]
    forward = ref[spec.forward]

    def loss() -> float:
        return float(np.sum(np.asarray(forward(*work, **known.kwargs)[0]) * known.dout))

    from grader import inputs

    rng = inputs.rng_for(loaded.seed, spec.name, 0, "upstream")
    inputs.make(spec.cases[0].upstream or {"shape": list(known.dout.shape)}, rng)
    gradient, measured = numerical_gradient(loss, work[0], rng=rng)
    value = known.expected[0] + 1e-3
    fresh = max(relative_error(value[measured], gradient[measured]),
                directional_error(loss, work[0], value, rng=rng))
    assert known.numeric[0].error(value) == pytest.approx(fresh, rel=1e-12)
