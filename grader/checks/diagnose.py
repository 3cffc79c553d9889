"""Diagnosis that teaches: when a comparison fails, say *why* it is likely wrong.

Each bug pattern recomputes what a typical mistake would produce (with the reference, on the
same inputs) and checks whether the student's answer matches it. Generic patterns (a constant
factor such as the batch size, a flipped sign, a transpose, NaN) apply everywhere; the rubric
names the function-specific ones per test (``bugs = ["flipped_kernel", "stride_ignored"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.checks.compare import Comparison, relative_error

MATCH = 1e-6  # a relative error this small is a match: the pattern explains the answer
TINY = 1e-6  # a probability below this is changed by the epsilons students add
TINY_LOG = np.log(TINY)


@dataclass(frozen=True)
class Context:
    """Everything a pattern may look at for one compared output."""

    function: str
    output: str  # "out", "dx", "dW", "loss"...
    comparison: Comparison
    args: list[Any]
    kwargs: dict[str, Any]
    reference: Callable[..., Any]  # the reference of the function whose output this is
    output_index: int | None = None  # position of this output in the reference's return tuple
    upstream: np.ndarray | None = None  # dout, for backward functions
    shape_formula: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def got(self) -> np.ndarray | None:
        return self.comparison.got

    @property
    def expected(self) -> np.ndarray:
        return self.comparison.expected

    @property
    def batch(self) -> int | None:
        first = self.args[0] if self.args else None
        return first.shape[0] if isinstance(first, np.ndarray) and first.ndim >= 2 else None

    def rerun(self, args: list[Any], kwargs: dict[str, Any]) -> np.ndarray | None:
        """The reference's answer for changed inputs (a mistake's likely result). On copies: the
        inputs are shared, read-only, by every submission (``grader.checks.expectations``), and a
        reference that wrote into them would fail here and silently lose the diagnosis."""
        try:
            value = self.reference(*[a.copy() if isinstance(a, np.ndarray) else a
                                     for a in args], **kwargs)
        except Exception:  # noqa: BLE001 - a variant may be invalid for these inputs
            return None
        if self.output_index is not None:
            value = value[self.output_index]
        return np.asarray(value, dtype=np.float64)

    def matches(self, candidate: Any) -> bool:
        if candidate is None or self.got is None:
            return False
        candidate = np.asarray(candidate, dtype=np.float64)
        if candidate.shape != self.got.shape:
            return False
        return relative_error(self.got, candidate) <= max(MATCH, self.comparison.tolerance)


Pattern = Callable[[Context], str | None]
PATTERNS: dict[str, Pattern] = {}


def pattern(name: str) -> Callable[[Pattern], Pattern]:
    def register(function: Pattern) -> Pattern:
        PATTERNS[name] = function
        return function

    return register


def diagnose(context: Context, bugs: tuple[str, ...]) -> str | None:
    """The first pattern that explains the failure, specific ones before generic ones."""
    for name in (*bugs, *GENERIC):
        message = PATTERNS[name](context)
        if message:
            return message
    return None


# --- generic patterns ---------------------------------------------------------------------


@pattern("not_array")
def _not_array(c: Context) -> str | None:
    if c.comparison.problem == "type":
        return f"`{c.output}` should be a NumPy array; your function returned something else."
    return None


@pattern("nonfinite")
def _nonfinite(c: Context) -> str | None:
    if c.comparison.problem != "nonfinite":
        return None
    where = (
        f" (first at index {list(c.comparison.worst_index)})" if c.comparison.worst_index else ""
    )
    return (
        f"`{c.output}` contains NaN or inf{where}: look for an overflowing exp, a division by "
        f"zero or a log of 0."
    )


@pattern("shape")
def _shape(c: Context) -> str | None:
    if c.comparison.problem != "shape" or c.got is None:
        return None
    expected, got = tuple(c.expected.shape), tuple(c.got.shape)
    if c.comparison.relative_error is not None:
        return (
            f"`{c.output}` has the right values but shape {got}; expected {expected}. "
            f"Reshape it (or avoid keepdims / an extra axis)."
        )
    formula = f" ({c.shape_formula})" if c.shape_formula else ""
    if got == expected[::-1] and len(got) == 2:
        return f"`{c.output}` has shape {got}, the transpose of the expected {expected}."
    return f"`{c.output}` has shape {got}; expected {expected}{formula}."


@pattern("transposed")
def _transposed(c: Context) -> str | None:
    if c.got is not None and c.got.ndim == 2 and c.got.shape == c.expected.shape[::-1]:
        if relative_error(c.got.T, c.expected) <= MATCH:
            return (
                f"`{c.output}` is transposed: its values are right but rows and columns are "
                f"swapped."
            )
    return None


@pattern("constant")
def _constant(c: Context) -> str | None:
    """Zeros, or one value everywhere, where the expected values vary."""
    if (c.comparison.problem != "values" or c.got is None or c.got.size < 2
            or np.ptp(c.expected) == 0):
        return None
    got = c.got.astype(np.float64)
    if np.ptp(got) != 0:
        return None
    if not np.any(got):
        return (
            f"`{c.output}` is all zeros, but the expected values are not: is a placeholder such "
            f"as `np.zeros_like(...)` still in place?"
        )
    return (
        f"`{c.output}` holds the same value ({float(got.flat[0]):.4g}) everywhere, but the "
        f"expected values vary: compute it from the inputs."
    )


@pattern("passthrough")
def _passthrough(c: Context) -> str | None:
    """dout returned as it came, where the local derivative should multiply it."""
    if c.comparison.problem == "values" and c.upstream is not None and c.matches(c.upstream):
        return (
            f"`{c.output}` is `dout` unchanged: multiply it by the local derivative of the "
            f"layer (the chain rule)."
        )
    return None


@pattern("factor")
def _factor(c: Context) -> str | None:
    """A constant factor: the sign, the batch size N, 1/N, or another constant."""
    if c.comparison.problem != "values" or c.got is None:
        return None
    got, expected = c.got.astype(np.float64).ravel(), c.expected.ravel()
    denominator = float(expected @ expected)
    if denominator == 0:
        return None
    factor = float(got @ expected) / denominator
    if abs(factor - 1) < MATCH or relative_error(got, factor * expected) > MATCH:
        return None
    return _explain_factor(c, factor)


def _explain_factor(c: Context, factor: float) -> str | None:
    n = c.batch
    if abs(factor + 1) < MATCH:
        return (
            f"`{c.output}` has the right size but the opposite sign: check the sign of your "
            f"formula."
        )
    if n and n > 1 and abs(factor - n) < MATCH * n:
        return (
            f"`{c.output}` is N = {n} times too large (N is the batch size): the loss is a mean "
            f"over the batch, so divide by the batch size."
        )
    if n and n > 1 and abs(factor * n - 1) < MATCH:
        return (
            f"`{c.output}` is N = {n} times too small (N is the batch size): you averaged over the "
            f"batch where you should sum (the 1/N is already in the upstream gradient)."
        )
    # (one number: any wrong number is "a factor" of the right one, and that says nothing)
    if c.got is None or c.got.size == 1:
        return None
    return f"`{c.output}` is off by a constant factor of about {factor:.4g}."


GENERIC = (
    "not_array",
    "nonfinite",
    "transposed",
    "shape",
    "constant",
    "passthrough",
    "pool_every_tie",  # generic, so that the rubric's hidden tie test needs no entry
    "factor",
)


# --- function-specific patterns -------------------------------------------------------------


def _flip_kernel(kernel: np.ndarray) -> np.ndarray:
    axes = tuple(range(kernel.ndim))[-2:] if kernel.ndim >= 2 else (0,)
    return np.flip(kernel, axis=axes)


@pattern("flipped_kernel")
def _flipped_kernel(c: Context) -> str | None:
    args = list(c.args)
    args[1] = _flip_kernel(np.asarray(args[1]))
    if c.matches(c.rerun(args, c.kwargs)):
        return (
            "Your output matches the reference with the kernel flipped: that is convolution in "
            "the textbook sense. The lecture (and every deep-learning library) uses "
            "cross-correlation: slide the kernel over the input as it is, without flipping it."
        )
    return None


def _ignores(c: Context, parameter: str, neutral: int) -> bool:
    """The answer is what the call gives with ``parameter`` at its neutral value (stride 1,
    pad 0): same values, or at least the same shape."""
    if c.kwargs.get(parameter, neutral) == neutral or c.got is None:
        return False
    candidate = c.rerun(c.args, {**c.kwargs, parameter: neutral})
    return candidate is not None and (c.matches(candidate) or c.got.shape == candidate.shape)


@pattern("stride_ignored")
def _stride_ignored(c: Context) -> str | None:
    if not _ignores(c, "stride", 1):
        return None
    formula = c.shape_formula or "(L − K) // stride + 1"
    return (
        f"Your output is what stride 1 gives, but the call used stride={c.kwargs['stride']}: "
        f"move the window by `stride` positions each step (output size {formula})."
    )


@pattern("padding_ignored")
def _padding_ignored(c: Context) -> str | None:
    if not _ignores(c, "pad", 0):
        return None
    return (
        f"Your output is what pad=0 gives, but the call used pad={c.kwargs['pad']}: add `pad` "
        f"zeros on each side of both spatial axes first (np.pad), then convolve."
    )


@pattern("relu_no_mask")
def _relu_no_mask(c: Context) -> str | None:
    if c.upstream is not None and c.matches(c.upstream):
        return (
            "You passed `dout` through unchanged: ReLU's gradient is 0 wherever its input was "
            "negative, so multiply by the mask (x > 0)."
        )
    return None


@pattern("sigmoid_from_input")
def _sigmoid_from_input(c: Context) -> str | None:
    if c.upstream is None:
        return None
    x = np.asarray(c.args[0], dtype=np.float64)
    if c.matches(c.upstream * x * (1 - x)):
        return (
            "You used x·(1 − x); the derivative of the sigmoid is s·(1 − s) where s = sigmoid(x) "
            "is the forward's output. Keep s in the cache."
        )
    return None


def _large_logits(c: Context) -> tuple[np.ndarray, np.ndarray] | None:
    """(logits, labels) of a softmax call with logits around ±1000, else None."""
    if len(c.args) < 2 or c.got is None:
        return None
    logits, labels = np.asarray(c.args[0]), np.asarray(c.args[1])
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        return None
    return (logits.astype(np.float64), labels) if np.max(np.abs(logits)) >= 100 else None


@pattern("softmax_not_finite")
def _softmax_not_finite(c: Context) -> str | None:
    """A loss (or gradient) that is not finite at large logits. The students' self-check
    answers its own inputs, on which one bug can give inf where the grader's give NaN, so this
    names everything that goes wrong there and the one fix: which of them happened depends on
    the inputs, not on the code (without the row maximum, exp overflows to NaN; with it, the
    true class's probability still underflows to 0 and its log is −inf: the most common softmax
    there is, CS231n's, does that)."""
    if _large_logits(c) is None or c.comparison.problem != "nonfinite":
        return None
    if c.output not in ("loss", "dlogits"):
        return None
    return (
        f"With large logits (around ±1000) your `{c.output}` is not finite. Subtract each "
        f"row's maximum first (its own, `logits.max(axis=1, keepdims=True)`, not the whole "
        f"batch's): without it, exp overflows to inf, or a row's exps all underflow, and the "
        f"softmax is NaN. Even with it, the true class's probability still underflows to 0 in "
        f"some rows, and log(0) = −inf. So compute the loss from log-softmax, "
        f"log p = (z − max z) − log Σ exp(z − max z), and take the true "
        f"class's entry: nothing overflows, and it never takes the log of 0."
    )


@pattern("softmax_clipped")
def _softmax_clipped(c: Context) -> str | None:
    found = _large_logits(c)
    if found is None or c.output != "loss" or not _probability_clipped(c, *found):
        return None
    return (
        "With large logits (around ±1000) the probability of the true class is tiny or "
        "underflows to 0, and clipping it before the log (np.clip(p, 1e-7, 1), "
        "np.maximum(p, 1e-300), p + 1e-7 or similar) gives a loss that is too small. Compute "
        "the loss from log-softmax instead: logits minus the row maximum minus log-sum-exp of "
        "the shifted logits, which stays exact for any logits."
    )


def _probability_clipped(c: Context, logits: np.ndarray, labels: np.ndarray) -> bool:
    """The loss is finite but too small, and some true-class probability is tiny (below TINY,
    or below what float64 holds): what ``-log(max(p, eps))`` or ``-log(p + eps)`` gives."""
    if c.comparison.problem != "values" or c.got is None:
        return False
    top = logits.max(axis=1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    true_log_p = log_p[np.arange(len(labels)), labels]
    got, expected = float(np.ravel(c.got)[0]), float(np.ravel(c.expected)[0])
    return bool(np.any(true_log_p < TINY_LOG)) and np.isfinite(got) and got < expected


@pattern("pool_average_for_max")
def _pool_average_for_max(c: Context) -> str | None:
    x = np.asarray(c.args[0], dtype=np.float64)
    size, stride = pool_params(c.args, c.kwargs)
    if x.ndim != 2 or size is None:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size))[::stride, ::stride]
    if c.matches(windows.mean(axis=(-1, -2))):
        return "Your output is the mean of each window; max pooling takes the largest value."
    if c.matches(windows.max(axis=(-1, -2))):
        return "Your output is the maximum of each window; average pooling takes the mean."
    return None


def pool_params(args: list[Any], kwargs: dict[str, Any]) -> tuple[int | None, int]:
    """(size, stride) of a pooling call, given by keyword or position; stride defaults to size."""
    size = kwargs.get("size", args[1] if len(args) > 1 else None)
    if size is None:
        return None, 1
    stride = kwargs.get("stride", args[2] if len(args) > 2 else size)
    return int(size), int(stride)


@pattern("pool_every_tie")
def _pool_every_tie(c: Context) -> str | None:
    """max-pool backward that gives dout to every tied maximum of a window, not to one."""
    x = np.asarray(c.args[0]) if c.args else None
    size, stride = c.kwargs.get("size"), c.kwargs.get("stride", c.kwargs.get("size"))
    if c.comparison.problem != "values" or c.upstream is None or x is None or x.ndim != 4:
        return None
    if not (isinstance(size, int) and isinstance(stride, int) and c.upstream.ndim == 4):
        return None
    x = x.astype(np.float64)
    dx, tied = np.zeros_like(x), False
    for i in range(c.upstream.shape[2]):
        for j in range(c.upstream.shape[3]):
            rows, cols = slice(i * stride, i * stride + size), slice(j * stride, j * stride + size)
            window = x[:, :, rows, cols]
            winners = window == window.max(axis=(2, 3), keepdims=True)
            tied = tied or bool(np.any(winners.sum(axis=(2, 3)) > 1))
            dx[:, :, rows, cols] += winners * c.upstream[:, :, i : i + 1, j : j + 1]
    if tied and c.matches(dx):
        return (
            "Where a window has several equal maxima, your `dx` gives the window's full "
            "gradient to every one of them, so that window passes on its gradient several times "
            "over. One winner is expected: send `dout` to a single maximum of each window (any "
            "of them, e.g. the first that np.argmax finds), as the forward's max picks one value."
        )
    return None


@pattern("pool_overlap_overwrite")
def _pool_overlap_overwrite(c: Context) -> str | None:
    """max_pool2d_backward that assigns (=) where overlapping windows must add (+=): the
    window's dout written to its maximum only, or ``mask * dout`` written over the whole window
    (zeros included), windows visited row by row or column by column."""
    if c.upstream is None or c.comparison.problem != "values":
        return None
    x = np.asarray(c.args[0], dtype=np.float64)
    size, stride = pool_params(c.args, c.kwargs)
    if x.ndim != 4 or size is None or stride >= size or c.upstream.ndim != 4:
        return None
    for whole_window in (False, True):
        for by_rows in (True, False):
            if c.matches(_overwritten(x, c.upstream, size, stride, whole_window, by_rows)):
                return _overwrite_message(whole_window)
    return None


def _overwritten(x: np.ndarray, dout: np.ndarray, size: int, stride: int, whole_window: bool,
                 by_rows: bool) -> np.ndarray:
    dx = np.zeros_like(x)
    positions = [(i, j) for i in range(dout.shape[2]) for j in range(dout.shape[3])]
    if not by_rows:
        positions.sort(key=lambda p: (p[1], p[0]))
    for i, j in positions:
        rows, cols = slice(i * stride, i * stride + size), slice(j * stride, j * stride + size)
        window = x[:, :, rows, cols]
        winners = window == window.max(axis=(2, 3), keepdims=True)
        gradient = winners * dout[:, :, i : i + 1, j : j + 1]
        if whole_window:
            dx[:, :, rows, cols] = gradient
        else:
            region = dx[:, :, rows, cols]
            region[winners] = gradient[winners]
    return dx


def _overwrite_message(whole_window: bool) -> str:
    message = (
        "Gradients are lost where pooling windows overlap: when one input is the max of "
        "several windows, add (+=) each window's gradient instead of overwriting it (=)."
    )
    if whole_window:
        message += (
            " Writing `mask * dout` over the whole window also puts zeros over the gradient an "
            "earlier, overlapping window gave its maximum."
        )
    return message


@pattern("padding_crop")
def _padding_crop(c: Context) -> str | None:
    """A backward's dx cut out of the padded gradient at the wrong place: empty where
    ``dx_pad[:, :, pad:-pad, pad:-pad]`` meets pad = 0, one short where the padding is cut
    with a fixed number."""
    pad = c.kwargs.get("pad", 0)
    got, expected = c.got, c.expected
    if c.comparison.problem != "shape" or got is None or expected.ndim != 4:
        return None
    padded = _padded_gradient(c, pad)  # first: the self-check records it for any wrong shape
    if got.ndim != 4:
        return None
    if got.shape[:2] != expected.shape[:2] or not all(
            g <= e + 2 * pad for g, e in zip(got.shape[2:], expected.shape[2:])):
        return None
    if got.shape[2] == 0 or got.shape[3] == 0:
        if pad != 0:
            return None
        return (
            f"`dx` is empty (shape {tuple(got.shape)}): with pad = 0, "
            f"`dx_pad[:, :, pad:-pad, pad:-pad]` keeps nothing, because -0 is 0. Cut the padding "
            f"off with `dx_pad[:, :, pad:pad + H, pad:pad + W]`, which works for every pad."
        )
    offset = _crop_offset(c, padded)
    if offset is None:
        return None
    return (
        f"`dx` has shape {tuple(got.shape)}, expected {tuple(expected.shape)}: it is the right "
        f"gradient, cut out of the padded one at offset {offset} where the call's pad is {pad}. "
        f"Cut the padding off with the call's `pad` (`dx_pad[:, :, pad:pad + H, pad:pad + W]`), "
        f"not a fixed number."
    )


def _padded_gradient(c: Context, pad: int) -> np.ndarray | None:
    """The reference's gradient with respect to the zero-padded input (the call on the padded
    input with pad 0): what a backward cuts its ``dx`` out of."""
    x = np.asarray(c.args[0], dtype=np.float64) if c.args else None
    if x is None or x.ndim != 4:
        return None
    widths = ((0, 0), (0, 0), (pad, pad), (pad, pad))
    padded = c.rerun([np.pad(x, widths), *c.args[1:]], {**c.kwargs, "pad": 0})
    return padded if padded is not None and padded.ndim == 4 else None


def _crop_offset(c: Context, padded: np.ndarray | None) -> int | None:
    """The offset k at which ``got`` is ``padded[:, :, k:k + h, k:k + w]``, if any."""
    if padded is None or c.got is None:
        return None
    h, w = c.got.shape[2:]
    for k in range(max(padded.shape[2] - h, padded.shape[3] - w) + 1):
        window = padded[:, :, k : k + h, k : k + w]
        if window.shape == c.got.shape and c.matches(window):
            return k
    return None
