# ruff: noqa
"""Deep Learning from Scratch (Koki Saitoh, O'Reilly Japan), oreilly-japan/deep-learning-from-
scratch, common/layers.py and common/functions.py (commit 07b1161, MIT): the Affine, Relu,
Sigmoid and SoftmaxWithLoss layers, with the functions sigmoid, softmax and cross_entropy_error
they call.

Glue: each layer class becomes a forward/backward pair, what the object keeps (x and its shape,
the mask, the output, the probabilities and labels) is the cache, and Affine's dW and db,
kept on the object there, are returned with dx.
"""

from tests.corpus import Bug

AUTHOR = "Koki Saitoh"
ASSIGNMENT = "backprop"
EXPECTED = {
    "relu_backward": Bug(
        "Relu.backward zeroes dout in place and returns it", "inputs unchanged",
        ("changed an input array in place",)),
    "sigmoid_forward": Bug(
        "1 / (1 + exp(-x)) overflows (with NumPy's warning) for x around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
    "softmax_cross_entropy": Bug(
        "log(p + 1e-7): at logits around ±1000 the true class's probability underflows to 0 and "
        "the loss stops at -log(1e-7) = 16.1",
        "large logits", ("underflows to 0", "log-softmax")),
}

# --- port ---
import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def dense_forward(x, W, b):
    shape = x.shape
    rows = x.reshape(x.shape[0], -1)
    out = np.dot(rows, W) + b
    return out, (rows, W, shape)


def dense_backward(dout, cache):
    rows, W, shape = cache
    dx = np.dot(dout, W.T)
    dW = np.dot(rows.T, dout)
    db = np.sum(dout, axis=0)
    return dx.reshape(*shape), dW, db


def relu_forward(x):
    mask = x <= 0
    out = x.copy()
    out[mask] = 0
    return out, mask


def relu_backward(dout, cache):
    mask = cache
    dout[mask] = 0
    dx = dout
    return dx


def sigmoid_forward(x):
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, cache):
    out = cache
    return dout * (1.0 - out) * out


def softmax_cross_entropy(logits, y):
    probabilities = softmax(logits)
    loss = cross_entropy_error(probabilities, y)
    batch_size = y.shape[0]
    if y.size == probabilities.size:
        dlogits = (probabilities - y) / batch_size
    else:
        dlogits = probabilities.copy()
        dlogits[np.arange(batch_size), y] -= 1
        dlogits = dlogits / batch_size
    return loss, dlogits
