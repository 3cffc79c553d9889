"""One submission per bug pattern the grader diagnoses: the right function loses points, the
diagnosis names the bug in plain words, and every other function keeps full marks.

The check logic is what is tested here, so the notebooks run in this process (``grade_here``,
through the engine's seam); the runtime guard, which lives in the sandbox, is tested there."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import UNIT_KINDS, assert_only_function_loses, grade_here


@dataclass(frozen=True)
class Bug:
    name: str
    assignment: str
    function: str  # the function whose tests must lose points
    code: str  # its buggy definition
    words: tuple[str, ...]  # what the diagnosis must say (case-insensitive)


BUGS = [
    Bug(
        "dense backward averages over the batch",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            n = x.shape[0]
            return dout @ W.T, x.T @ dout / n, dout.sum(axis=0) / n
        """,
        ("times too small", "averaged", "sum"),
    ),
    Bug(
        "dense backward with a flipped sign",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return -(dout @ W.T), x.T @ dout, dout.sum(axis=0)
        """,
        ("opposite sign",),
    ),
    Bug(
        "dense backward with dW transposed",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return dout @ W.T, dout.T @ x, dout.sum(axis=0)
        """,
        ("transpose",),
    ),
    Bug(
        "db keeps an extra axis",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return dout @ W.T, x.T @ dout, dout.sum(axis=0, keepdims=True)
        """,
        ("right values but shape (1, 3)", "expected (3,)"),
    ),
    Bug(
        "softmax gradient without 1/N",
        "backprop",
        "softmax_cross_entropy",
        """
        def softmax_cross_entropy(logits, y):
            n = logits.shape[0]
            shifted = logits - logits.max(axis=1, keepdims=True)
            p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            loss = -np.log(p[np.arange(n), y]).mean()
            p[np.arange(n), y] -= 1
            return loss, p
        """,
        ("times too large", "divide by the batch size"),
    ),
    Bug(
        "softmax that overflows",
        "backprop",
        "softmax_cross_entropy",
        """
        def softmax_cross_entropy(logits, y):
            n = logits.shape[0]
            p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            loss = -np.log(p[np.arange(n), y]).mean()
            p[np.arange(n), y] -= 1
            return loss, p / n
        """,
        ("overflow", "subtract each row's maximum"),
    ),
    Bug(
        "relu backward without its mask",
        "backprop",
        "relu_backward",
        """
        def relu_backward(dout, cache):
            return dout
        """,
        ("unchanged", "mask"),
    ),
    Bug(
        "relu backward that edits dout in place",
        "backprop",
        "relu_backward",
        """
        def relu_backward(dout, cache):
            dout[cache <= 0] = 0
            return dout
        """,
        ("in place", "copy", "The notebook asks: “A backward pass computes new arrays"),
    ),
    Bug(
        "sigmoid that overflows for large negative inputs (right values, with a warning)",
        "backprop",
        "sigmoid_forward",
        """
        def sigmoid_forward(x):
            out = 1 / (1 + np.exp(-x))
            return out, out
        """,
        ("FloatingPointError", "overflow", "never exponentiates a large positive number"),
    ),
    Bug(
        "sigmoid derivative from the input",
        "backprop",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            x = np.log(cache / (1 - cache))  # back to the input, then the wrong formula
            return dout * x * (1 - x)
        """,
        ("s·(1 − s)",),
    ),
    Bug(
        "sigmoid that produces NaN",
        "backprop",
        "sigmoid_forward",
        """
        def sigmoid_forward(x):
            e = np.exp(x)
            out = e / (1 + e)
            return out, out
        """,
        ("overflow",),
    ),
    Bug(
        "conv1d flips the kernel",
        "convolution",
        "conv1d",
        """
        def conv1d(x, w, stride=1):
            x, w = np.asarray(x, float), np.asarray(w, float)[::-1]
            n = (len(x) - len(w)) // stride + 1
            return np.array([x[i * stride:i * stride + len(w)] @ w for i in range(n)])
        """,
        ("flipped", "cross-correlation"),
    ),
    Bug(
        "conv1d ignores the stride",
        "convolution",
        "conv1d",
        """
        def conv1d(x, w, stride=1):
            x, w = np.asarray(x, float), np.asarray(w, float)
            n = len(x) - len(w) + 1
            return np.array([x[i:i + len(w)] @ w for i in range(n)])
        """,
        ("stride 1", "stride=3"),
    ),
    Bug(
        "conv1d output one too short",
        "convolution",
        "conv1d",
        """
        def conv1d(x, w, stride=1):
            x, w = np.asarray(x, float), np.asarray(w, float)
            n = (len(x) - len(w)) // stride
            return np.array([x[i * stride:i * stride + len(w)] @ w for i in range(n)])
        """,
        ("has shape", "expected", "(L − K) // stride + 1"),
    ),
    Bug(
        "conv2d flips the kernel",
        "convolution",
        "conv2d",
        """
        def conv2d(x, w, stride=1):
            x, w = np.asarray(x, float), np.asarray(w, float)[::-1, ::-1]
            kh, kw = w.shape
            oh, ow = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
            return np.array([[np.sum(x[i*stride:i*stride+kh, j*stride:j*stride+kw] * w)
                              for j in range(ow)] for i in range(oh)])
        """,
        ("flipped", "cross-correlation"),
    ),
    Bug(
        "conv2d_forward ignores the padding",
        "convolution",
        "conv2d_forward",
        """
        def conv2d_forward(x, w, b, stride=1, pad=0):
            n, c, h, wd = x.shape
            f, _, kh, kw = w.shape
            oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
            out = np.zeros((n, f, oh, ow))
            for i in range(oh):
                for j in range(ow):
                    patch = x[:, :, i*stride:i*stride+kh, j*stride:j*stride+kw]
                    out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, w) + b
            return out, (x, w, b, stride, pad)
        """,
        ("pad=0", "zeros"),
    ),
    Bug(
        "max pooling that averages",
        "convolution",
        "max_pool2d",
        """
        def max_pool2d(x, size, stride):
            x = np.asarray(x, float)
            oh, ow = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
            return np.array([[x[i*stride:i*stride+size, j*stride:j*stride+size].mean()
                              for j in range(ow)] for i in range(oh)])
        """,
        ("mean of each window", "largest"),
    ),
    Bug(
        "max-pool backward overwrites overlapping windows",
        "convolution",
        "max_pool2d_backward",
        """
        def max_pool2d_backward(dout, cache):
            x, size, stride = cache
            dx = np.zeros(x.shape)
            n, c, oh, ow = dout.shape
            for i in range(oh):
                for j in range(ow):
                    window = x[:, :, i*stride:i*stride+size, j*stride:j*stride+size]
                    mask = window == window.max(axis=(2, 3), keepdims=True)
                    region = dx[:, :, i*stride:i*stride+size, j*stride:j*stride+size]
                    region[mask] = (mask * dout[:, :, i:i+1, j:j+1])[mask]
            return dx
        """,
        ("overlap", "+="),
    ),
    Bug(
        "softmax that takes the log of an underflowed probability (CS231n's given recipe)",
        "backprop",
        "softmax_cross_entropy",
        """
        def softmax_cross_entropy(logits, y):
            n = logits.shape[0]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            loss = -np.sum(np.log(p[np.arange(n), y])) / n
            dlogits = p.copy()
            dlogits[np.arange(n), y] -= 1
            return loss, dlogits / n
        """,
        ("is not finite", "underflows to 0", "log(0)", "log-softmax"),
    ),
    Bug(
        "softmax that adds 1e-12 before the log",
        "backprop",
        "softmax_cross_entropy",
        """
        def softmax_cross_entropy(logits, y):
            n = logits.shape[0]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            loss = -np.sum(np.log(p[np.arange(n), y] + 1e-12)) / n
            dlogits = p.copy()
            dlogits[np.arange(n), y] -= 1
            return loss, dlogits / n
        """,
        ("tiny or underflows to 0", "p + 1e-7", "log-softmax"),
    ),
    Bug(
        "max-pool backward writes mask * dout over the whole window",
        "convolution",
        "max_pool2d_backward",
        """
        def max_pool2d_backward(dout, cache):
            x, size, stride = cache
            dx = np.zeros(x.shape)
            n, c, oh, ow = dout.shape
            for i in range(oh):
                for j in range(ow):
                    window = x[:, :, i*stride:i*stride+size, j*stride:j*stride+size]
                    mask = window == window.max(axis=(2, 3), keepdims=True)
                    dx[:, :, i*stride:i*stride+size, j*stride:j*stride+size] = (
                        mask * dout[:, :, i:i+1, j:j+1])
            return dx
        """,
        ("overlap", "+=", "whole window"),
    ),
    Bug(
        "conv2d_backward cuts the padding off with pad:-pad",
        "convolution",
        "conv2d_backward",
        """
        def conv2d_backward(dout, cache):
            x, w, b, stride, pad = cache
            kh, kw = w.shape[2:]
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            dx_pad, dw = np.zeros(x_pad.shape), np.zeros(w.shape)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    rows, cols = slice(i*stride, i*stride+kh), slice(j*stride, j*stride+kw)
                    dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], x_pad[:, :, rows, cols])
                    dx_pad[:, :, rows, cols] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], w)
            return dx_pad[:, :, pad:-pad, pad:-pad], dw, dout.sum(axis=(0, 2, 3))
        """,
        ("`dx` is empty", "-0 is 0", "pad:pad + h"),
    ),
    Bug(
        "conv2d_backward cuts a padding of 1 off, whatever pad is",
        "convolution",
        "conv2d_backward",
        """
        def conv2d_backward(dout, cache):
            x, w, b, stride, pad = cache
            h, wd = x.shape[2:]
            kh, kw = w.shape[2:]
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            dx_pad, dw = np.zeros(x_pad.shape), np.zeros(w.shape)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    rows, cols = slice(i*stride, i*stride+kh), slice(j*stride, j*stride+kw)
                    dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], x_pad[:, :, rows, cols])
                    dx_pad[:, :, rows, cols] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], w)
            return dx_pad[:, :, 1:h + 1, 1:wd + 1], dw, dout.sum(axis=(0, 2, 3))
        """,
        ("right gradient", "offset 1", "not a fixed number"),
    ),
    Bug(
        "conv1d that returns a dict of its outputs",
        "convolution",
        "conv1d",
        """
        def conv1d(x, w, stride=1):
            x, w = np.asarray(x, float), np.asarray(w, float)
            n = (len(x) - len(w)) // stride + 1
            return {i: float(x[i * stride:i * stride + len(w)] @ w) for i in range(n)}
        """,
        ("should be a numpy array",),
    ),
    Bug(
        "dense forward that divides by zero",
        "backprop",
        "dense_forward",
        """
        def dense_forward(x, W, b):
            return (x @ W + b) / (0 * b), (x, W)
        """,
        ("contains nan or inf", "division by zero"),
    ),
    Bug(
        "sigmoid backward still returning a placeholder of zeros",
        "backprop",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            return np.zeros_like(dout)
        """,
        ("all zeros", "placeholder"),
    ),
    Bug(
        "dense backward with one number for every bias gradient",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return dout @ W.T, x.T @ dout, np.full(dout.shape[1], np.abs(dout).sum())
        """,
        ("holds the same value", "compute it from the inputs"),
    ),
    Bug(
        "sigmoid backward that passes dout through",
        "backprop",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            return dout.copy()
        """,
        ("`dout` unchanged", "local derivative"),
    ),
    Bug(
        "dense backward with dx off by a factor of 2",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return 2 * (dout @ W.T), x.T @ dout, dout.sum(axis=0)
        """,
        ("constant factor of about 2",),
    ),
    Bug(
        "dense backward with dW of transposed shape and wrong values",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return dout @ W.T, 2 * (dout.T @ x), dout.sum(axis=0)
        """,
        ("the transpose of the expected",),
    ),
    Bug(
        "average pooling that takes the maximum",
        "convolution",
        "avg_pool2d",
        """
        def avg_pool2d(x, size, stride):
            x = np.asarray(x, float)
            oh, ow = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
            return np.array([[x[i*stride:i*stride+size, j*stride:j*stride+size].max()
                              for j in range(ow)] for i in range(oh)])
        """,
        ("maximum of each window", "takes the mean"),
    ),
    Bug(
        "conv1d with np.convolve",
        "convolution",
        "conv1d",
        """
        def conv1d(x, w, stride=1):
            return np.convolve(np.asarray(x, float), np.asarray(w, float)[::-1], "valid")[::stride]
        """,
        ("forbidden shortcut",),
    ),
]


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_bug_is_diagnosed(bug: Bug, submission) -> None:
    path = submission(bug.assignment, replace={bug.function: bug.code})
    result = grade_here(path, bug.assignment)
    assert_only_function_loses(result, {bug.function})
    failing = [t for t in result.tests if t.function == bug.function and t.score < t.max_score]
    text = " ".join(f"{t.message} {t.diagnosis or ''}" for t in failing).lower()
    missing = [w for w in bug.words if w.lower() not in text]
    assert not missing, f"diagnosis lacks {missing}: {text}"


def test_forward_without_its_cache(submission) -> None:
    code = """
        def relu_forward(x):
            return np.maximum(0, x)
        """
    result = grade_here(submission("backprop", replace={"relu_forward": code}), "backprop")
    assert_only_function_loses(result, {"relu_forward", "relu_backward"})
    failing = [t for t in result.tests if t.function.startswith("relu") and t.max_score]
    assert all("must return a tuple (out, cache)" in t.message for t in failing), failing


def test_float32_passes_with_a_note(submission) -> None:
    code = """
        def dense_forward(x, W, b):
            x32, W32, b32 = (a.astype(np.float32) for a in (x, W, b))
            return x32 @ W32 + b32, (x, W)
        """
    result = grade_here(submission("backprop", replace={"dense_forward": code}), "backprop")
    test = next(t for t in result.tests if t.function == "dense_forward")
    assert test.status == "passed" and test.score == test.max_score
    assert "float32" in test.message


def test_relu_kink_accepts_either_slope(submission) -> None:
    code = """
        def relu_backward(dout, cache):
            return dout * (cache >= 0)
        """
    result = grade_here(submission("backprop", replace={"relu_backward": code}), "backprop")
    kink = next(t for t in result.tests if t.name == "relu_backward: at exactly zero")
    assert kink.status == "passed"


def test_max_pool_tie_accepts_any_winner(submission) -> None:
    code = """
        def max_pool2d_backward(dout, cache):
            x, size, stride = cache
            dx = np.zeros(x.shape)
            n, c, oh, ow = dout.shape
            for i in range(oh):
                for j in range(ow):
                    window = x[:, :, i*stride:i*stride+size, j*stride:j*stride+size]
                    flat = window.reshape(n, c, -1)
                    last = flat.shape[2] - 1 - np.argmax(flat[:, :, ::-1], axis=2)  # last winner
                    mask = (np.arange(size * size) == last[:, :, None]).reshape(window.shape)
                    dx[:, :, i*stride:i*stride+size, j*stride:j*stride+size] += (
                        mask * dout[:, :, i:i+1, j:j+1])
            return dx
        """
    result = grade_here(submission("convolution", replace={"max_pool2d_backward": code}),
                        "convolution")
    assert_only_function_loses(result, set())


def test_runtime_guard_catches_hidden_library_call(submission, grade_notebook) -> None:
    code = """
        def conv1d(x, w, stride=1):
            f = getattr(np, "conv" + "olve")
            return f(np.asarray(x, float), np.asarray(w, float)[::-1], "valid")[::stride]
        """
    result = grade_notebook(
        submission("convolution", replace={"conv1d": code}), "convolution", kinds=UNIT_KINDS
    )
    assert_only_function_loses(result, {"conv1d"})
    assert all("numpy.convolve" in t.message for t in result.tests if t.function == "conv1d")


def test_forbidden_import_fails_the_rule(submission) -> None:
    path = submission("convolution", extra_cells=["import scipy.signal as signal\n"])
    result = grade_here(path, "convolution")
    rule = next(t for t in result.tests if t.name.startswith("Rules"))
    assert rule.status == "failed" and "scipy.signal" in rule.message


def test_softmax_clipping_before_the_log_is_explained(submission) -> None:
    # issue 11 item 9: this used to read "loss is off by a constant factor of about 0.7056"
    code = """
        def softmax_cross_entropy(logits, y):
            n = logits.shape[0]
            shifted = logits - logits.max(axis=1, keepdims=True)
            p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            loss = -np.log(np.maximum(p[np.arange(n), y], 1e-300)).mean()
            dlogits = p.copy()
            dlogits[np.arange(n), y] -= 1
            return loss, dlogits / n
        """
    result = grade_here(submission("backprop", replace={"softmax_cross_entropy": code}),
                        "backprop")
    test = next(t for t in result.tests if t.name.endswith("large and shifted logits"))
    assert test.score < test.max_score
    text = (test.diagnosis or "").lower()
    assert all(w in text for w in ("underflows to 0", "clipping", "log-softmax")), text
    assert "constant factor" not in text


def test_max_pool_gradient_to_every_tied_maximum_is_explained(submission) -> None:
    code = """
        def max_pool2d_backward(dout, cache):
            x, size, stride = cache
            dx = np.zeros(x.shape)
            n, c, oh, ow = dout.shape
            for i in range(oh):
                for j in range(ow):
                    window = x[:, :, i*stride:i*stride+size, j*stride:j*stride+size]
                    winners = window == window.max(axis=(2, 3), keepdims=True)
                    dx[:, :, i*stride:i*stride+size, j*stride:j*stride+size] += (
                        winners * dout[:, :, i:i+1, j:j+1])
            return dx
        """
    result = grade_here(submission("convolution", replace={"max_pool2d_backward": code}),
                        "convolution")
    assert_only_function_loses(result, {"max_pool2d_backward"})
    tie = next(t for t in result.tests if t.name == "max_pool2d_backward: tied maxima")
    assert tie.score < tie.max_score
    text = (tie.diagnosis or "").lower()
    assert all(w in text for w in ("several equal maxima", "one winner is expected")), text


def test_softmax_with_the_batch_maximum_subtracted_is_explained(submission) -> None:
    """Not in BUGS: where its NaN falls, so its partial credit, depends on the inputs, and the
    self-check (tests/test_selfcheck.py) draws other inputs than the grader."""
    code = """
        def softmax_cross_entropy(logits, y):
            n = logits.shape[0]
            e = np.exp(logits - np.max(logits))
            p = e / e.sum(axis=1, keepdims=True)
            loss = -np.log(p[np.arange(n), y]).mean()
            dlogits = p.copy()
            dlogits[np.arange(n), y] -= 1
            return loss, dlogits / n
        """
    result = grade_here(submission("backprop", replace={"softmax_cross_entropy": code}),
                        "backprop")
    assert_only_function_loses(result, {"softmax_cross_entropy"})
    test = next(t for t in result.tests if t.name.endswith("large and shifted logits"))
    assert test.score < test.max_score
    text = (test.diagnosis or "").lower()
    assert all(w in text for w in ("not finite", "each row's maximum", "whole batch")), text
