# ruff: noqa
"""7forz/CS231n_assignments (commit a3d5af2, no licence stated): affine_forward, affine_backward,
relu_forward and relu_backward from assignment2/cs231n/layers.py, and softmax_loss_vectorized
from assignment1/cs231n/classifiers/softmax.py.

Glue: the names. The scores X.dot(W) are a copy of the logits (the source shifts them in place
with -=, on its own new array), dS / N is returned as dlogits, regularisation (reg = 0) left out.
"""

from tests.corpus import Bug

AUTHOR = "7forz"
ASSIGNMENT = "backprop"
EXPECTED = {
    "softmax_cross_entropy": Bug(
        "log of the probability after subtracting the row maximum: inf at logits around ±1000",
        "large logits", ("underflows to 0", "log(0)", "log-softmax")),
}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    rows = x.reshape(x.shape[0], -1)
    return rows.dot(W) + b, (x, W, b)


def dense_backward(dout, cache):
    x, W, b = cache
    dx = dout.dot(W.T).reshape(*x.shape)
    dW = (x.reshape(x.shape[0], -1)).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dW, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    positive = x > 0
    return np.multiply(dout, positive)


def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    scores = logits.copy()
    scores -= (np.max(scores, axis=1)).reshape(-1, 1)
    softmax = np.exp(scores) / (np.sum(np.exp(scores), axis=1)).reshape(-1, 1)
    loss = -np.sum(np.log(softmax[range(n), y]))
    dscores = softmax.copy()
    dscores[range(n), y] -= 1
    loss /= n
    return loss, dscores / n
