"""Our own verdict on a ported function, independent of the grader's code.

Every function is held to what its notebook asks, with inputs of our own: forward values against
plain loops written here, gradients against central differences of those loops, and the edge
inputs the rubric cares about (logits around ±1000 and shifted by 1000, exact zeros at ReLU's
kink, overlapping pooling windows, windows and strides that do not divide the input, padding,
tied maxima, an output that is not square). A backward also leaves its inputs unchanged, gives
the same gradients twice and maps a zero ``dout`` to zero, as both notebooks ask. A backward is
run on the cache of its own forward, as the grader and a student's network run it.

``failures(function, namespace)`` lists the probes a function fails (empty: correct).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

TOLERANCE = 1e-6  # scale-free relative error, as loose as the grader's own


def relative_error(got: Any, expected: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(expected))):
        return float("inf")
    scale = max(float(np.max(np.abs(expected))), float(np.max(np.abs(got))), 1e-12)
    return float(np.max(np.abs(got - expected)) / scale)


def close(got: Any, expected: np.ndarray) -> bool:
    return relative_error(got, np.asarray(expected, dtype=np.float64)) <= TOLERANCE


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


# --- plain loops: what each function must compute ----------------------------------------


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    padded = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    padded[:, :, pad : pad + h, pad : pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = padded[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            for k in range(f):
                out[:, k, i, j] = (window * w[k]).sum(axis=(1, 2, 3)) + b[k]
    return out


def pool(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    n, c, h, w = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * stride : i * stride + size,
                                j * stride : j * stride + size].max(axis=(2, 3))
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x / 2))  # never overflows, and no formula the notebooks use


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    lse = np.logaddexp.reduce(logits, axis=1)
    n = len(y)
    loss = float(np.mean(lse - logits[np.arange(n), y]))
    onehot = np.zeros_like(logits)
    onehot[np.arange(n), y] = 1
    return loss, (np.exp(logits - lse[:, None]) - onehot) / n


# --- probes ------------------------------------------------------------------------------


class ForwardFailed(Exception):
    """A backward's own forward raised on a probe's inputs: that probe says nothing of the
    backward (the forward's probes blame the forward)."""


Probe = Callable[[dict[str, Callable]], bool]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _distinct(shape: tuple[int, ...], seed: int) -> np.ndarray:
    size = int(np.prod(shape))
    return _rng(seed).permutation(size).reshape(shape) / size * 4 - 2


def _backward_case(ns: dict[str, Callable], forward: str, backward: str, args: list,
                   kwargs: dict, dout: np.ndarray) -> tuple[list, list, list, np.ndarray, Any]:
    """Run a port's forward then backward on copies; returns (the gradients, the forward's args
    as sent, the args after both calls, dout after the call, the cache)."""
    sent = [a.copy() for a in args]
    try:
        _, cache = ns[forward](*sent, **kwargs)
    except Exception as error:  # noqa: BLE001 - the forward's fault, judged by its own probes
        raise ForwardFailed(type(error).__name__) from error
    received = dout.copy()
    grads = ns[backward](received, cache)
    grads = list(grads) if isinstance(grads, tuple | list) else [grads]
    return grads, args, sent, received, cache


def _gradient_probe(forward: str, backward: str, reference: Callable, args: list,
                    kwargs: dict, seed: int) -> Probe:
    """The gradients against central differences of our own loop, for every input."""

    def probe(ns: dict[str, Callable]) -> bool:
        out = reference(*args, **kwargs)
        dout = _rng(seed).standard_normal(out.shape)
        grads, *_ = _backward_case(ns, forward, backward, args, kwargs, dout)
        if len(grads) < len(args):
            return False
        for index, grad in enumerate(grads[: len(args)]):
            work = [a.copy() for a in args]
            target = work[index]
            expected = numerical_gradient(lambda w=work: float(np.sum(reference(*w, **kwargs)
                                                                      * dout)), target)
            if not close(grad, expected):
                return False
        return True

    return probe


def _sides(forward: str, backward: str, reference: Callable, args: list,
           kwargs: dict) -> dict[str, Probe]:
    """The three side checks the notebooks ask of every backward."""
    dout = _rng(99).standard_normal(reference(*args, **kwargs).shape)

    def unchanged(ns: dict[str, Callable]) -> bool:
        _, before, after, received, _ = _backward_case(ns, forward, backward, args, kwargs, dout)
        return all(np.array_equal(a, b) for a, b in zip(before, after)) and np.array_equal(
            received, dout)

    def repeatable(ns: dict[str, Callable]) -> bool:
        try:
            _, cache = ns[forward](*[a.copy() for a in args], **kwargs)
        except Exception as error:  # noqa: BLE001
            raise ForwardFailed(type(error).__name__) from error
        first = ns[backward](dout.copy(), cache)
        second = ns[backward](dout.copy(), cache)
        first = first if isinstance(first, tuple | list) else [first]
        second = second if isinstance(second, tuple | list) else [second]
        return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, second))

    def zero(ns: dict[str, Callable]) -> bool:
        grads, *_ = _backward_case(ns, forward, backward, args, kwargs, np.zeros_like(dout))
        return all(not np.any(np.asarray(g)) for g in grads)

    return {"inputs unchanged": unchanged, "repeatable": repeatable, "zero upstream": zero}


def _values(function: str, reference: Callable, args: list, kwargs: dict | None = None,
            *, first: bool = True) -> Probe:
    kwargs = kwargs or {}

    def probe(ns: dict[str, Callable]) -> bool:
        result = ns[function](*[a.copy() for a in args], **kwargs)
        got = result[0] if first else result
        return close(got, reference(*args, **kwargs))

    return probe


# backprop ---------------------------------------------------------------------------------


def _dense(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0], W.shape[1]))
    for n in range(x.shape[0]):
        for m in range(W.shape[1]):
            out[n, m] = sum(x[n, d] * W[d, m] for d in range(W.shape[0])) + b[m]
    return out


def _normal(*shapes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = _rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _away_from_zero(shape: tuple[int, ...], seed: int, zeros: float = 0.0) -> np.ndarray:
    rng = _rng(seed)
    x = rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    x[rng.random(shape) < zeros] = 0.0
    return x


def _relu_kink(ns: dict[str, Callable]) -> bool:
    """At exactly zero, a slope of 0 or 1: either is a valid subgradient."""
    x = _away_from_zero((5, 3), 7, zeros=0.3)
    dout = _rng(8).standard_normal(x.shape)
    grads, *_ = _backward_case(ns, "relu_forward", "relu_backward", [x], {}, dout)
    dx = np.asarray(grads[0], dtype=np.float64)
    if dx.shape != x.shape:
        return False
    zero = x == 0
    ok_elsewhere = close(np.where(zero, 0, dx), np.where(zero, 0, dout * (x > 0)))
    return ok_elsewhere and bool(np.all(np.isclose(dx[zero], 0) | np.isclose(dx[zero],
                                                                              dout[zero])))


def _sigmoid_extreme(ns: dict[str, Callable]) -> bool:
    """Inputs around ±1000 with NumPy's warnings as errors, as the notebook's check cell has."""
    x = _rng(11).standard_normal((2, 5)) * 1000
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        out, _ = ns["sigmoid_forward"](x.copy())
    return close(out, sigmoid(x))


def _softmax(logits: np.ndarray, y: np.ndarray) -> Probe:
    def probe(ns: dict[str, Callable]) -> bool:
        loss, dlogits = ns["softmax_cross_entropy"](logits.copy(), y.copy())
        expected_loss, expected_grad = cross_entropy(logits, y)
        return close(np.asarray(loss).reshape(()), np.asarray(expected_loss)) and close(
            dlogits, expected_grad)

    return probe


def _softmax_gradient(ns: dict[str, Callable]) -> bool:
    logits, y = _rng(12).standard_normal((6, 4)), _rng(13).integers(0, 4, 6)
    _, dlogits = ns["softmax_cross_entropy"](logits.copy(), y.copy())
    expected = numerical_gradient(lambda: cross_entropy(logits, y)[0], logits, h=1e-5)
    return close(dlogits, expected)


def _softmax_unchanged(ns: dict[str, Callable]) -> bool:
    logits, y = _rng(14).standard_normal((5, 3)) * 1000, _rng(15).integers(0, 3, 5)
    sent, labels = logits.copy(), y.copy()
    with np.errstate(all="ignore"):
        ns["softmax_cross_entropy"](sent, labels)
    return np.array_equal(sent, logits) and np.array_equal(labels, y)


def _labels(n: int, classes: int, seed: int) -> np.ndarray:
    return _rng(seed).integers(0, classes, n)


DENSE = _normal((4, 5), (5, 3), (3,), seed=1)
DENSE_WIDE = _normal((6, 7), (7, 2), (2,), seed=2)

PROBES: dict[str, dict[str, Probe]] = {
    "dense_forward": {
        "values": _values("dense_forward", _dense, _normal((3, 5), (5, 4), (4,), seed=3)),
        "other sizes": _values("dense_forward", _dense, _normal((7, 2), (2, 6), (6,), seed=4)),
    },
    "dense_backward": {
        "gradient": _gradient_probe("dense_forward", "dense_backward", _dense, DENSE, {}, 5),
        "other sizes": _gradient_probe("dense_forward", "dense_backward", _dense, DENSE_WIDE,
                                       {}, 6),
        **_sides("dense_forward", "dense_backward", _dense, DENSE, {}),
    },
    "relu_forward": {
        "values": _values("relu_forward", lambda x: np.maximum(x, 0),
                          [_away_from_zero((4, 6), 21, zeros=0.2)]),
    },
    "relu_backward": {
        "gradient": _gradient_probe("relu_forward", "relu_backward", lambda x: np.maximum(x, 0),
                                    [_away_from_zero((4, 6), 22)], {}, 23),
        "kink": _relu_kink,
        **_sides("relu_forward", "relu_backward", lambda x: np.maximum(x, 0),
                 [_away_from_zero((4, 6), 24)], {}),
    },
    "sigmoid_forward": {
        "values": _values("sigmoid_forward", sigmoid, _normal((3, 7), seed=31)),
        "extreme inputs": _sigmoid_extreme,
    },
    "sigmoid_backward": {
        "gradient": _gradient_probe("sigmoid_forward", "sigmoid_backward", sigmoid,
                                    _normal((5, 3), seed=32), {}, 33),
        **_sides("sigmoid_forward", "sigmoid_backward", sigmoid, _normal((5, 3), seed=34), {}),
    },
    "softmax_cross_entropy": {
        "values": _softmax(_rng(41).standard_normal((5, 4)), _labels(5, 4, 42)),
        "gradient": _softmax_gradient,
        "large logits": _softmax(_rng(43).standard_normal((4, 5)) * 1000, _labels(4, 5, 44)),
        "shifted logits": _softmax(_rng(45).standard_normal((3, 4)) + 1000, _labels(3, 4, 46)),
        "inputs unchanged": _softmax_unchanged,
    },
}

# convolution ------------------------------------------------------------------------------


def _conv_case(x: tuple, w: tuple, stride: int, pad: int, seed: int) -> tuple[list, dict]:
    return _normal(x, w, (w[0],), seed=seed), {"stride": stride, "pad": pad}


def _conv_values(case: tuple[list, dict]) -> Probe:
    return _values("conv2d_forward", conv, *case)


def _conv_gradient(case: tuple[list, dict], seed: int) -> Probe:
    return _gradient_probe("conv2d_forward", "conv2d_backward", conv, *case, seed)


CONV_PLAIN = _conv_case((2, 3, 6, 5), (4, 3, 3, 2), 1, 0, 51)
CONV_STRIDED = _conv_case((2, 2, 7, 6), (3, 2, 3, 2), 2, 1, 52)
CONV_UNEVEN = _conv_case((1, 2, 9, 5), (2, 2, 2, 3), 3, 2, 53)  # 4 x 2 outputs


def _pool_case(shape: tuple[int, ...], size: int, stride: int, seed: int) -> tuple[list, dict]:
    return [_distinct(shape, seed)], {"size": size, "stride": stride}


POOL_APART = _pool_case((2, 3, 6, 7), 2, 2, 61)  # 7 columns: the stride does not divide
POOL_OVERLAP = _pool_case((2, 2, 7, 7), 3, 2, 62)
POOL_OVERLAP_WIDE = _pool_case((1, 2, 5, 8), 3, 1, 63)


def _pool_ties(ns: dict[str, Callable]) -> bool:
    """Tied maxima in windows apart: each window's gradient sits on its maxima and adds up to
    its dout (one winner, or any split among them, is a valid subgradient)."""
    x = _rng(64).integers(0, 3, (2, 2, 4, 6)).astype(float)
    dout = _rng(65).standard_normal((2, 2, 2, 3))
    grads, *_ = _backward_case(ns, "max_pool2d_forward", "max_pool2d_backward", [x],
                               {"size": 2, "stride": 2}, dout)
    dx = np.asarray(grads[0], dtype=np.float64)
    if dx.shape != x.shape:
        return False
    for i in range(2):
        for j in range(3):
            window, grad = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], dx[:, :, 2 * i : 2 * i
                                                                            + 2, 2 * j : 2 * j + 2]
            winners = window == window.max(axis=(2, 3), keepdims=True)
            if np.any(np.abs(grad[~winners]) > 1e-12):
                return False
            if not np.allclose(grad.sum(axis=(2, 3)), dout[:, :, i, j]):
                return False
    return True


PROBES.update({
    "conv2d_forward": {
        "values": _conv_values(CONV_PLAIN),
        "stride and padding": _conv_values(CONV_STRIDED),
        "output not square": _conv_values(CONV_UNEVEN),
    },
    "conv2d_backward": {
        "gradient": _conv_gradient(CONV_PLAIN, 54),
        "stride and padding": _conv_gradient(CONV_STRIDED, 55),
        "output not square": _conv_gradient(CONV_UNEVEN, 56),
        **_sides("conv2d_forward", "conv2d_backward", conv, *CONV_STRIDED),
    },
    "max_pool2d_forward": {
        "values": _values("max_pool2d_forward", pool, *POOL_APART),
        "overlap": _values("max_pool2d_forward", pool, *POOL_OVERLAP),
        "output not square": _values("max_pool2d_forward", pool, *POOL_OVERLAP_WIDE),
    },
    "max_pool2d_backward": {
        "gradient": _gradient_probe("max_pool2d_forward", "max_pool2d_backward", pool,
                                    *POOL_APART, 66),
        "overlap": _gradient_probe("max_pool2d_forward", "max_pool2d_backward", pool,
                                   *POOL_OVERLAP, 67),
        "output not square": _gradient_probe("max_pool2d_forward", "max_pool2d_backward", pool,
                                             *POOL_OVERLAP_WIDE, 68),
        "ties": _pool_ties,
        **_sides("max_pool2d_forward", "max_pool2d_backward", pool, *POOL_OVERLAP),
    },
})


def failures(function: str, namespace: dict[str, Callable]) -> list[str]:
    """The probes ``function`` fails: a wrong value, or an exception (named after the probe).
    A backward's probe on which its own forward raises is skipped."""
    failed = []
    for name, probe in PROBES[function].items():
        try:
            with np.errstate(all="ignore"):  # a probe that needs warnings sets its own
                ok = probe(namespace)
        except ForwardFailed:
            continue
        except Exception as error:  # noqa: BLE001 - a port that raises fails the probe
            failed.append(f"{name} ({type(error).__name__})")
            continue
        if not ok:
            failed.append(name)
    return failed


def finds(failed: list[str], probe: str) -> bool:
    """Whether ``probe`` is among the failures, with or without the exception it raised."""
    return any(f == probe or f.startswith(f"{probe} (") for f in failed)
