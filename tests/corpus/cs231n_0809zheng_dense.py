# ruff: noqa
"""0809zheng/CS231n-assignment2019 (commit 3f5c853, no licence stated): affine_forward,
affine_backward, relu_forward and relu_backward from assignment2/cs231n/layers.py, and
softmax_loss_vectorized from assignment1/cs231n/classifiers/softmax.py.

Glue: the names. The softmax classifier's scores X.dot(W) are the logits, its dscores (called
mask there) divided by N is returned as dlogits, regularisation (reg = 0) left out.
"""

from tests.corpus import Bug

AUTHOR = "0809zheng"
ASSIGNMENT = "backprop"
EXPECTED = {
    "relu_backward": Bug(
        "zeroes dout in place (`dx = dout; dx[x <= 0] = 0`) and returns it",
        "inputs unchanged", ("changed an input array in place",)),
    "softmax_cross_entropy": Bug(
        "log of the probability after subtracting the row maximum: inf at logits around ±1000",
        "large logits", ("underflows to 0", "log(0)", "log-softmax")),
}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    rows = x.copy()
    rows = rows.reshape((x.shape[0], -1))
    return rows.dot(W) + b, (x, W, b)


def dense_backward(dout, cache):
    x, W, b = cache
    rows = x.reshape((x.shape[0], -1))
    dx = dout.dot(W.T)
    dx = dx.reshape(x.shape)
    dW = rows.T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dW, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    dx = dout
    dx[x <= 0] = 0
    return dx


def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    scores = logits.copy()
    stable = scores - np.max(scores, axis=1, keepdims=True)
    exp_scores = np.exp(stable)
    probabilities = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    loss = -np.sum(np.log(probabilities[np.arange(n), y])) / n
    mask = probabilities.copy()
    mask[np.arange(n), y] -= 1
    return loss, mask / n
