"""``example`` tests: the lecture's worked examples, literal inputs with literal expected
values. They run as ``output`` tests do, against the rubric's ``expected`` instead of the
reference's answer, and are not shrunk to a smaller counterexample: they are small already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.checks.kinds.output import Output, OutputOptions

if TYPE_CHECKING:
    from grader.checks.spec import Case, TestSpec
    from grader.core.reference import Reference


@dataclass(frozen=True)
class ExampleOptions(OutputOptions):
    shrinks = False  # (small already)


class Example(Output):
    name = "example"
    meaning = "literal inputs and expected values (the lecture's worked examples)."
    options = ExampleOptions
    case_keys = ("args", "kwargs", "expected")

    def _check_case(self, spec: TestSpec, reference: Reference, args: list[Any],
                    kwargs: dict[str, Any], case: Case) -> list[str]:
        problems = super()._check_case(spec, reference, args, kwargs, case)
        if problems:
            return problems
        value = reference[spec.function](*args, **kwargs)
        got = value[spec.returns.index(spec.outputs[0])] if spec.returns else value
        expected = np.asarray(case.expected, dtype=np.float64)
        if np.shape(got) != expected.shape:
            return [f"expected has shape {expected.shape} but the reference {spec.function} "
                    f"returns shape {np.shape(got)}"]
        return []

