"""The trust boundary: what a sandbox answers is checked before use, and nothing it answers
makes the grader's own code raise.

The check engine runs here on a scripted session, in-process: every call returns what
Hypothesis draws from everything the wire can carry (arrays of any numeric dtype and shape,
NaN, infinities, huge values, tuples of the wrong length, the runtime's tags, failures of every
kind). Every test must come back as a result the student's code earned, never as a grader
fault (``details["grader_fault"]``), and ``grader.run.replies`` must turn every answer into either
its checked form or an ``Interference``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.checks import engine as checks
from grader.checks import rubric
from grader.core import budgets, reference
from grader.core.calls import CallOutcome
from grader.run import replies
from grader.run.inside import wire

DTYPES = st.sampled_from(["float64", "float32", "float16", "int64", "int8", "uint8", "bool"])


def arrays() -> st.SearchStrategy[np.ndarray]:
    """Any numeric array the wire carries (Hypothesis's elements include NaN, infinities and
    each dtype's extremes)."""
    return DTYPES.flatmap(lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))


def values() -> st.SearchStrategy[Any]:
    """Everything ``runtime._plain`` can send back, and more of the same forms."""
    leaves = st.one_of(arrays(), st.none(),
                       st.builds(lambda t: {"__unsendable__": t}, st.text(max_size=20)),
                       st.builds(lambda t: {"__not_tuple__": t}, st.text(max_size=20)))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.builds(lambda items, kind: {"__sequence__": items, "type": kind},
                  st.lists(inner, max_size=4), st.sampled_from(["tuple", "list", "X"]))),
        max_leaves=8)


# How a near-miss answer is made from the reference's own (``ScriptedSession``): the paths
# that compare, diagnose and describe right-shaped values are the ones random values miss.
TWISTS = ("exact", "double", "transpose", "nan", "float32", "int", "flat", "short", "long",
          "negate", "huge", "zero")


def outcomes() -> st.SearchStrategy[Any]:
    failures = st.builds(lambda kind, error: CallOutcome(False, kind=kind, error=error),
                         st.sampled_from(sorted(replies.FAILURES) + ["crash", "budget"]),
                         st.text(max_size=30))
    returns = st.builds(lambda value, guards: CallOutcome(True, value=value, guards=guards),
                        values(), st.sampled_from([(), ("numpy.convolve",)]))
    near_misses = st.tuples(st.just("twist"), st.sampled_from(TWISTS))
    return st.one_of(returns, failures, near_misses, near_misses)


def twisted(value: Any, twist: str) -> Any:
    """The reference's value with one thing wrong with it, as the wire would carry it."""
    if isinstance(value, tuple):
        items = [twisted(v, twist) for v in value]
        if twist == "short":
            items = items[:-1]
        elif twist == "long":
            items = [*items, np.zeros(1)]
        return {"__sequence__": items, "type": "tuple"}
    if not isinstance(value, np.ndarray | float | int):
        return {"__unsendable__": type(value).__name__}
    array = np.array(value, dtype=np.float64)
    with np.errstate(all="ignore"):
        change = {"double": lambda a: a * 2, "transpose": lambda a: a.T.copy(),
                  "float32": lambda a: a.astype(np.float32), "int": lambda a: a.astype(np.int64),
                  "flat": lambda a: a.ravel(), "negate": lambda a: -a,
                  "huge": lambda a: a * 1e300, "zero": np.zeros_like}
        if twist == "nan" and array.size:
            array.flat[0] = np.nan
        return change.get(twist, lambda a: a)(array)


class ScriptedSession:
    """Stands in for ``grader.run.session.Session``: calls answer with the outcomes given, raw
    requests with the answers given, in turn. An outcome ``("twist", how)`` is the reference's
    own answer to that call, twisted (``twisted``). (All drawn before the checks run: a draw
    inside them would put Hypothesis's own exceptions in the engine's way.)"""

    out_of_time = False
    notebook = config = None

    def __init__(self, outcomes: list[Any], answers: list[Any], ref: Any):
        self.outcomes, self.answers = itertools.cycle(outcomes), itertools.cycle(answers)
        self.ref, self.stored = ref, {}

    def call(self, function: str, args: list, kwargs: dict | None = None, *,
             store: str | None = None, reply: Any = "value", **_: Any) -> CallOutcome:
        outcome = next(self.outcomes)
        if isinstance(outcome, CallOutcome):
            return outcome
        try:
            value = self.ref[function](*[self._resolve(a) for a in args], **(kwargs or {}))
        except Exception as exc:  # noqa: BLE001 - a twisted cache: the student's exception
            return CallOutcome(False, kind="exception", error=str(exc))
        if store:
            self.stored[store] = value
        if isinstance(reply, list) and isinstance(value, tuple):
            return CallOutcome(True, value=[twisted(value[i], outcome[1]) for i in reply])
        return CallOutcome(True, value=twisted(value, outcome[1]))

    def _resolve(self, arg: Any) -> Any:
        if isinstance(arg, dict) and "__ref__" in arg:
            return self.stored.get(arg["__ref__"], (None, None))[arg.get("index") or 0]
        return arg.copy() if isinstance(arg, np.ndarray) else arg

    def request(self, message: dict[str, Any], *, timeout: float) -> Any:
        return next(self.answers)

    def stuck(self, function: str) -> None:
        return None

    def busy(self) -> None:  # (the machine is never busy here)
        return None


def answers() -> st.SearchStrategy[Any]:
    """What ``Session.request`` gives: None (no answer in time), a crash's text, or an
    answer in the runtime's own form."""
    return st.one_of(st.none(), st.text(max_size=10), st.builds(
        lambda v: {"ok": True, "value": v, "used": [], "strays": 0}, values()))


@pytest.fixture(scope="module", params=["convolution", "backprop"])
def assignment(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    loaded = rubric.load(request.param)
    return budgets.resolve(loaded, None), reference.load(loaded.solution)


@settings(max_examples=300, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_answer_makes_a_check_raise(assignment: tuple[Any, Any], data: st.DataObject) -> None:
    loaded, ref = assignment
    checked = [t for t in loaded.tests if not t.options.needs_mnist]
    session = ScriptedSession(data.draw(st.lists(outcomes(), min_size=1, max_size=40)),
                              data.draw(st.lists(answers(), min_size=1, max_size=4)), ref)
    context = checks.Context(session=session, rubric=loaded.__class__(
        **{**loaded.__dict__, "tests": tuple(checked)}), reference=ref, forbidden={})
    results = checks.run(context)
    assert [r.name for r in results] == [t.name for t in checked]
    faults = {r.name: r.details["grader_fault"] for r in results if "grader_fault" in r.details}
    assert not faults, next(iter(faults.values()))
    assert all(0.0 <= r.score <= r.max_score for r in results)


# --- the answers themselves -------------------------------------------------------------------


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.sampled_from(
                                    ["ok", "kind", "error", "value", "inputs", "guards", "used",
                                     "strays", "errors", "timed_out", "__sequence__", "type",
                                     "__array__", "dtype", "shape", "__unsendable__", "x"]),
                                    inner, max_size=5)),
        max_leaves=12)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(op=st.sampled_from(["call", "fetch", "exec", "guards"]), answer=json_values())
def test_every_answer_is_checked_or_refused(op: str, answer: Any) -> None:
    """What a forged handler can write (any JSON the wire decodes) is either an answer of the
    runtime's own form or an ``Interference``; nothing else comes out."""
    try:
        decoded = wire.loads(json.dumps({"answer": answer}).encode())["answer"]
    except wire.WireError:
        return
    try:
        found = replies.checked(op, decoded)
    except replies.Interference:
        return
    assert isinstance(found["ok"], bool)
    assert isinstance(found["strays"], int)


@pytest.mark.parametrize("answer, why", [
    ({"ok": True, "seconds": "not a number", "value": None, "guards": []}, None),
    ({"ok": True, "value": {"__sequence__": 3, "type": "tuple"}}, "never sends back"),
    ({"ok": True, "value": None, "guards": "numpy.convolve"}, "list of guard"),
    ({"ok": True, "value": None, "guards": ["os.system"]}, "no guard reports"),
    ({"ok": False, "kind": "passed", "error": "x"}, "unknown kind"),
    ({"ok": 1, "value": None}, "not true or false"),
    ({"ok": True, "value": 0.5}, "never sends back"),
    ({"ok": True, "value": None, "strays": 10**100}, "small count"),
])
def test_forged_call_answers(answer: dict[str, Any], why: str | None) -> None:
    """The forged replies of the review (attack 3) are refused, or their forged parts are not
    taken (a ``seconds`` of any kind is never read)."""
    if why is None:
        found = replies.checked("call", answer)
        assert "seconds" not in found
        return
    with pytest.raises(replies.Interference, match=why):
        replies.checked("call", answer)
