"""A generated class for the class view: known behaviour groups and known copies.

Every independent student writes each layer of the backprop practical in a style of their own,
drawn statement by statement from the many ways a NumPy programmer writes it (``@``, ``np.dot``,
``.dot``, ``einsum``, loops, masks...), with names of their own and comments. Some carry a known
bug (dense_backward dividing by N again, dW transposed, a softmax without the max shift), whose
test results are those the checks store for it. Copiers take another student's notebook and
disguise it: locals renamed, reformatted, comments rewritten. ``make_class`` returns the results
and the truth to check the class view against.
"""

from __future__ import annotations

import ast
import random
import textwrap
from dataclasses import dataclass, field

from grader.core.results import SubmissionResult, TestResult

FUNCTIONS = ("dense_forward", "dense_backward", "relu_forward", "relu_backward",
             "sigmoid_forward", "sigmoid_backward", "softmax_cross_entropy")

HEADERS = {
    "dense_forward": ('def dense_forward(x, W, b):\n    """Forward pass of a dense layer: '
                      'x (N, D), W (D, M), b (M,) -> out (N, M)."""\n'),
    "dense_backward": ('def dense_backward(dout, cache):\n    """Backward pass of a dense layer: '
                       'returns (dx, dW, db) for the upstream gradient dout."""\n'),
    "relu_forward": 'def relu_forward(x):\n    """ReLU, element-wise: returns (out, cache)."""\n',
    "relu_backward": ('def relu_backward(dout, cache):\n    """Gradient of ReLU: pass dout through '
                      'where the input was positive."""\n'),
    "sigmoid_forward": ('def sigmoid_forward(x):\n    """Numerically stable logistic sigmoid: '
                        'returns (out, cache)."""\n'),
    "sigmoid_backward": ('def sigmoid_backward(dout, cache):\n    """Gradient of the sigmoid, '
                         'using the cached output s: dout * s * (1 - s)."""\n'),
    "softmax_cross_entropy": (
        'def softmax_cross_entropy(logits, y):\n    """Mean softmax cross-entropy of logits (N, C) '
        'for integer labels y (N,).\n\n    Returns (loss, dlogits), with dlogits = '
        '(softmax(logits) - onehot(y)) / N.\n    """\n'),
}
STUB = {
    "dense_forward": "compute out = x @ W + b and keep (x, W) as the cache.",
    "dense_backward": "unpack (x, W) from the cache; use dout @ W.T, x.T @ dout and a sum over "
                      "rows.",
}

# Names students pick, by role: copies are disguised by mapping through these too.
NAMES = {
    "out": ["out", "y", "z", "a", "h", "result", "res", "output", "act", "o"],
    "cache": ["cache", "c", "memo", "saved", "ctx", "store"],
    "dx": ["dx", "grad_x", "dX", "gx", "d_input", "dinput"],
    "dW": ["dW", "grad_W", "dw", "gW", "d_weights", "dweights"],
    "db": ["db", "grad_b", "dB", "gb", "d_bias", "dbias"],
    "n": ["N", "n", "batch", "m", "num", "B", "bs"],
    "i": ["i", "k", "row", "r", "idx", "j"],
    "mask": ["mask", "pos", "positive", "keep", "on", "active"],
    "s": ["s", "sig", "sigma", "p", "val", "sv"],
    "e": ["e", "ex", "expo", "t", "q", "enx"],
    "p": ["probs", "p", "prob", "softmax", "sm", "pr"],
    "shift": ["shifted", "z", "stable", "logits_s", "l", "sh"],
    "loss": ["loss", "L", "ce", "cost", "nll", "err"],
    "grad": ["dlogits", "grad", "dl", "dz", "g", "dscores"],
    "rows": ["rows", "idx", "ar", "ids", "rng", "r_"],
}

# Each function: a list of slots, each a list of alternatives (one per line, "{role}" names).
DENSE_FORWARD = [
    ["{out} = x @ W + b", "{out} = np.dot(x, W) + b", "{out} = x.dot(W) + b",
     "{out} = np.einsum('nd,dm->nm', x, W) + b[None, :]",
     "{out} = np.matmul(x, W)\n{out} += b",
     "{n} = x.shape[0]\n{out} = np.zeros((x.shape[0], W.shape[1]))\n"
     "for {i} in range({n}):\n    {out}[{i}] = x[{i}] @ W + b",
     "{out} = b + x @ W", "{out} = (W.T @ x.T).T + b"],
    ["{cache} = (x, W)\nreturn {out}, {cache}", "return {out}, (x, W)",
     "{cache} = x, W\nreturn ({out}, {cache})", "return ({out}, (x, W))"],
]
DENSE_BACKWARD = [
    ["x, W = cache", "x = cache[0]\nW = cache[1]", "(x, W) = cache", "x, W = cache[0], cache[1]"],
    ["{dx} = dout @ W.T", "{dx} = np.dot(dout, W.T)", "{dx} = dout.dot(W.T)",
     "{dx} = np.einsum('nm,dm->nd', dout, W)", "{dx} = np.matmul(dout, W.transpose())",
     "{dx} = (W @ dout.T).T"],
    ["{dW} = x.T @ dout", "{dW} = np.dot(x.T, dout)", "{dW} = x.T.dot(dout)",
     "{dW} = np.einsum('nd,nm->dm', x, dout)",
     "{dW} = np.zeros_like(W)\nfor {i} in range(x.shape[0]):\n"
     "    {dW} += np.outer(x[{i}], dout[{i}])",
     "{dW} = np.matmul(x.transpose(), dout)"],
    ["{db} = dout.sum(axis=0)", "{db} = np.sum(dout, axis=0)", "{db} = dout.sum(0)",
     "{db} = np.einsum('nm->m', dout)", "{db} = np.ones(dout.shape[0]) @ dout",
     "{db} = dout.sum(axis=0, keepdims=True).ravel()"],
    ["return {dx}, {dW}, {db}", "return ({dx}, {dW}, {db})",
     "grads = ({dx}, {dW}, {db})\nreturn grads"],
]
DIVIDE_AGAIN = ["{dW} = {dW} / x.shape[0]\n{db} = {db} / x.shape[0]",
                "{n} = x.shape[0]\n{dW} /= {n}\n{db} /= {n}",
                "{dW} = {dW} / len(x)\n{db} = {db} / len(x)",
                "{n} = dout.shape[0]\n{dW} = {dW} * (1.0 / {n})\n{db} = {db} * (1.0 / {n})"]
TRANSPOSED_DW = ["{dW} = dout.T @ x", "{dW} = np.dot(dout.T, x)", "{dW} = (x.T @ dout).T",
                 "{dW} = np.einsum('nm,nd->md', dout, x)"]
RELU_FORWARD = [
    ["{out} = np.maximum(0, x)", "{out} = np.maximum(x, 0)", "{out} = x * (x > 0)",
     "{out} = np.where(x > 0, x, 0)", "{out} = x.clip(min=0)",
     "{out} = x.copy()\n{out}[{out} < 0] = 0", "{mask} = x > 0\n{out} = x * {mask}",
     "{out} = np.clip(x, 0, None)"],
    ["return {out}, x", "{cache} = x\nreturn {out}, {cache}", "return ({out}, x.copy())"],
]
RELU_BACKWARD = [
    ["x = cache", "", "x = np.asarray(cache)"],
    ["return dout * (x > 0)", "{dx} = np.where(x > 0, dout, 0)\nreturn {dx}",
     "{dx} = dout.copy()\n{dx}[x <= 0] = 0\nreturn {dx}",
     "{mask} = (x > 0).astype(float)\nreturn dout * {mask}", "return (x > 0) * dout",
     "{dx} = np.zeros_like(dout)\n{dx}[x > 0] = dout[x > 0]\nreturn {dx}",
     "return np.multiply(dout, x > 0)"],
]
SIGMOID_FORWARD = [
    ["{e} = np.exp(-np.abs(x))\n{out} = np.where(x >= 0, 1 / (1 + {e}), {e} / (1 + {e}))",
     "{out} = np.empty_like(x, dtype=float)\n{mask} = x >= 0\n"
     "{out}[{mask}] = 1.0 / (1.0 + np.exp(-x[{mask}]))\n{e} = np.exp(x[~{mask}])\n"
     "{out}[~{mask}] = {e} / (1.0 + {e})",
     "{out} = 0.5 * (1 + np.tanh(0.5 * x))",
     "{out} = np.exp(-np.logaddexp(0, -x))",
     "{out} = np.zeros(x.shape)\n{mask} = x < 0\n{e} = np.exp(-np.abs(x))\n"
     "{out}[~{mask}] = 1 / (1 + {e}[~{mask}])\n{out}[{mask}] = {e}[{mask}] / (1 + {e}[{mask}])"],
    ["return {out}, {out}", "{cache} = {out}\nreturn {out}, {cache}",
     "return ({out}, {out}.copy())"],
]
SIGMOID_BACKWARD = [
    ["{s} = cache", "", "{s} = np.asarray(cache)"],
    ["return dout * {s} * (1 - {s})", "return dout * ({s} - {s} ** 2)",
     "{dx} = {s} * (1.0 - {s})\nreturn {dx} * dout", "return np.multiply(dout, {s} * (1 - {s}))",
     "{dx} = dout * {s}\n{dx} = {dx} * (1 - {s})\nreturn {dx}"],
]
SOFTMAX = [
    ["{n} = logits.shape[0]", "{n} = len(y)", "{n}, _ = logits.shape", "{n} = y.shape[0]"],
    ["{shift} = logits - logits.max(axis=1, keepdims=True)",
     "{shift} = logits - np.max(logits, axis=1, keepdims=True)",
     "{shift} = logits - logits.max(1)[:, None]",
     "{shift} = logits - np.amax(logits, axis=1).reshape(-1, 1)"],
    ["{e} = np.exp({shift})\n{p} = {e} / {e}.sum(axis=1, keepdims=True)",
     "{p} = np.exp({shift})\n{p} /= np.sum({p}, axis=1, keepdims=True)",
     "{e} = np.exp({shift})\n{p} = {e} / np.sum({e}, 1)[:, np.newaxis]",
     "{p} = np.exp({shift} - np.log(np.exp({shift}).sum(axis=1, keepdims=True)))"],
    ["{rows} = np.arange({n})\n{loss} = -np.mean(np.log({p}[{rows}, y]))",
     "{loss} = -np.log({p}[np.arange({n}), y]).sum() / {n}",
     "{loss} = 0.0\nfor {i} in range({n}):\n    {loss} -= np.log({p}[{i}, y[{i}]])\n"
     "{loss} /= {n}",
     "{loss} = float(-np.log({p}[range({n}), y]).mean())"],
    ["{grad} = {p}.copy()\n{grad}[np.arange({n}), y] -= 1\n{grad} /= {n}",
     "{grad} = {p} - np.eye({p}.shape[1])[y]\n{grad} = {grad} / {n}",
     "{grad} = np.array({p})\nfor {i} in range({n}):\n    {grad}[{i}, y[{i}]] -= 1.0\n"
     "{grad} = {grad} / {n}",
     "{grad} = ({p} - (np.arange({p}.shape[1]) == y[:, None])) / {n}"],
    ["return float({loss}), {grad}", "return {loss}, {grad}", "return ({loss}, {grad})"],
]
# Without the max shift: the bug of the "large and shifted logits" test.
UNSHIFTED = ["{shift} = logits", "{shift} = logits.copy()", "{shift} = np.array(logits)",
             "{shift} = logits.astype(float)"]
SLOTS = {"dense_forward": DENSE_FORWARD, "dense_backward": DENSE_BACKWARD,
         "relu_forward": RELU_FORWARD, "relu_backward": RELU_BACKWARD,
         "sigmoid_forward": SIGMOID_FORWARD, "sigmoid_backward": SIGMOID_BACKWARD,
         "softmax_cross_entropy": SOFTMAX}
COMMENTS = ["# forward pass", "# the gradient", "# TODO: check shapes", "# see lecture 4",
            "# vectorised", "# works!", "# sum over the batch", "# keep for backward"]


@dataclass
class GeneratedClass:
    results: list[SubmissionResult]
    behaviour: dict[str, dict[str, str]]  # function -> student -> known behaviour label
    copies: dict[str, str]  # copier -> the student copied
    clusters: list[set[str]]  # sets of students that share copied code
    independent_correct: list[str]  # wrote every function themselves, all correct, not copied
    untouched: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- writing code


def write_function(function: str, rng: random.Random, bug: str | None = None) -> str:
    """One student's ``function``: a style per slot, names of their own, comments here and
    there; ``bug`` inserts a known mistake into it."""
    slots = [list(choices) for choices in SLOTS[function]]
    if bug == "divide_again":
        slots.insert(4, DIVIDE_AGAIN)
    elif bug == "transposed":
        slots[2] = TRANSPOSED_DW
    elif bug == "unshifted":
        slots[1] = UNSHIFTED
    names = {role: rng.choice(options) for role, options in NAMES.items()}
    lines: list[str] = []
    for choices in slots:
        chosen = rng.choice(choices)
        if rng.random() < 0.3:
            lines.append(rng.choice(COMMENTS))
        lines += chosen.format(**names).splitlines() if chosen else []
    return HEADERS[function] + textwrap.indent("\n".join(lines), "    ")


def stub(function: str) -> str:
    hint = STUB.get(function, "write this function")
    return HEADERS[function] + f'    raise NotImplementedError("{hint}")'


def disguise(source: str, rng: random.Random) -> str:
    """A copy made to look different: every local renamed, reformatted by ``ast.unparse``
    (other spacing and brackets), comments rewritten. The behaviour stays the same."""
    tree = ast.parse(source)
    function = tree.body[0]
    params = {a.arg for a in function.args.args}
    local = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Store)} - params
    mapping = {name: f"{rng.choice(['my', 'tmp', 'the', 'v'])}_{name.lower()}_{i}"
               for i, name in enumerate(sorted(local))}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
    lines = ast.unparse(tree).splitlines()
    body = [lines[0]]
    for line in lines[1:]:
        if rng.random() < 0.4 and not line.strip().startswith(('"', "'")):
            body.append(line[:len(line) - len(line.lstrip())] + "# " + rng.choice(
                ["copied? no, my own", "compute it", "step", "as in class", "done"]))
        body.append(line.replace(" = ", "  =  ", 1) if rng.random() < 0.5 else line)
    return "\n".join(body)


# --------------------------------------------------------------------------- test results


def _test(name: str, function: str, status: str = "passed", *, diagnosis: str | None = None,
          outputs: list[dict] | None = None, message: str = "", points: float = 1.0,
          visibility: str = "public") -> TestResult:
    return TestResult(name=name, function=function, score=points if status == "passed" else 0.0,
                      max_score=points, status=status, message=message or status,  # type: ignore
                      diagnosis=diagnosis, visibility=visibility,  # type: ignore[arg-type]
                      details={"outputs": outputs or []})


def _output(name: str, error: float, passed: bool, shape=(4, 5), got=None) -> dict:
    return {"name": name, "passed": passed, "relative_error": error, "tolerance": 1e-7,
            "expected_shape": list(shape), "got_shape": list(got or shape)}


def tests_for(labels: dict[str, str], rng: random.Random) -> tuple[TestResult, ...]:
    """The results the checks store for a student whose functions behave as ``labels`` says
    (tiny relative errors differ from student to student, as real floating point does)."""
    noise = lambda: rng.choice([1.1e-16, 2.2e-16, 3.3e-16, 4.4e-16])  # noqa: E731
    tests = []
    for function, label in labels.items():
        tests += _function_tests(function, label, noise)
    return tuple(tests)


def _function_tests(function: str, label: str, noise) -> list[TestResult]:
    gradient = {"dense_backward": ["dense_backward: gradient check"],
                "relu_backward": ["relu_backward: gradient check",
                                  "relu_backward: at exactly zero"],
                "sigmoid_backward": ["sigmoid_backward: gradient check"],
                "softmax_cross_entropy": ["softmax_cross_entropy: loss and gradient",
                                          "softmax_cross_entropy: large and shifted logits"]}
    names = gradient.get(function, [f"{function}: output"])
    if label == "not_implemented":
        message = f"`{function}` is not implemented yet (it still raises NotImplementedError)."
        return [_test(n, function, "error", message=message) for n in names]
    if label == "divide_again":
        return [_test(names[0], function, "failed", points=3, diagnosis=(
            "dW is exactly 1/4 of the expected value, and 4 is the batch size: do not divide by "
            "N inside dense_backward."), outputs=[
            _output("dx", noise(), True), _output("dW", 0.6 + noise(), False, (5, 3)),
            _output("db", 0.6 + noise(), False, (3,))])]
    if label == "transposed":
        return [_test(names[0], function, "failed", points=3, diagnosis=(
            "dW has the shape of W transposed: x.T @ dout gives (D, M)."), outputs=[
            _output("dx", noise(), True), _output("dW", float("nan"), False, (5, 3), (3, 5)),
            _output("db", noise(), True, (3,))])]
    if label == "unshifted":
        return [_test(names[0], function, outputs=[_output("loss", noise(), True, ())]),
                _test(names[1], function, "failed", diagnosis=(
                    "The loss overflows for large logits: subtract each row's maximum first."),
                    outputs=[_output("loss", float("inf"), False, ()),
                             _output("dlogits", 1.0, False, (4, 5))])]
    return [_test(n, function, outputs=[_output("out", noise(), True)]) for n in names]


# --------------------------------------------------------------------------- the class


def make_class(seed: int = 15, *, correct: int = 24, divide_again: int = 12, transposed: int = 7,
               unshifted: int = 5, untouched: int = 2) -> GeneratedClass:
    """A class of independent students (with the known bugs), two untouched templates and
    copies: two disguised copies of correct students, one of a student with the divide bug,
    and a chain of three (a student, a copy, a copy of the copy)."""
    rng = random.Random(seed)
    plan: list[tuple[str, dict[str, str]]] = []
    groups = (("correct", correct), ("divide_again", divide_again),
              ("transposed", transposed), ("unshifted", unshifted))
    for label, count in groups:
        for i in range(count):
            labels = dict.fromkeys(FUNCTIONS, "correct")
            if label in ("divide_again", "transposed"):
                labels["dense_backward"] = label
            elif label == "unshifted":
                labels["softmax_cross_entropy"] = label
            plan.append((f"{label}_{i:02d}", labels))
    sources: dict[str, dict[str, str]] = {}
    truth: dict[str, dict[str, str]] = {f: {} for f in FUNCTIONS}
    results = []
    for student, labels in plan:
        sources[student] = {f: write_function(f, rng, None if label == "correct" else label)
                            for f, label in labels.items()}
        results.append(_result(student, sources[student], labels, rng, truth))
    for i in range(untouched):
        student = f"untouched_{i}"
        labels = dict.fromkeys(FUNCTIONS, "not_implemented")
        sources[student] = {f: stub(f) for f in FUNCTIONS}
        results.append(_result(student, sources[student], labels, rng, truth))
    copies = {"copier_a": "correct_00", "copier_b": "correct_01", "copier_c": "divide_again_00",
              "copier_d": "correct_02", "copier_e": "copier_d"}
    for copier, original in copies.items():
        labels = {f: truth[f][original] for f in FUNCTIONS}
        sources[copier] = {f: disguise(code, rng) for f, code in sources[original].items()}
        results.append(_result(copier, sources[copier], labels, rng, truth))
    copied = set(copies.values())
    return GeneratedClass(
        results=results, behaviour=truth, copies=copies,
        clusters=[{"correct_00", "copier_a"}, {"correct_01", "copier_b"},
                  {"divide_again_00", "copier_c"}, {"correct_02", "copier_d", "copier_e"}],
        independent_correct=[s for s, _ in plan if s.startswith("correct_") and s not in copied],
        untouched=[f"untouched_{i}" for i in range(untouched)])


def _result(student: str, sources: dict[str, str], labels: dict[str, str], rng: random.Random,
            truth: dict[str, dict[str, str]]) -> SubmissionResult:
    for function, label in labels.items():
        truth[function][student] = label
    return SubmissionResult(
        student=student, assignment="backprop", submission=f"{student}.ipynb",
        sha256=f"{rng.getrandbits(128):032x}", error=None, notices=(),
        tests=tests_for(labels, rng), grader_version="test", duration_s=1.0,
        sources=dict(sources))
