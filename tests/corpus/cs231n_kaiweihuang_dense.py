# ruff: noqa
"""kaiweihuang/CS231n (commit f5088b9, MIT): affine_forward, affine_backward, relu_forward and
relu_backward from assignment2/cs231n/layers.py, and softmax_loss_vectorized from
assignment1/cs231n/classifiers/softmax.py.

Glue: the names; affine's reshape of x to rows kept. The softmax classifier computes its scores
as X.dot(W) and returns dW = X.T.dot(dscores); here the scores are the logits (a new array, as
X.dot(W) is), dscores is returned as dlogits, and the regularisation (reg = 0) is left out.
"""

from tests.corpus import Bug

AUTHOR = "kaiweihuang"
ASSIGNMENT = "backprop"
EXPECTED = {
    "softmax_cross_entropy": Bug(
        "log of the probability after subtracting the row maximum: inf at logits around ±1000",
        "large logits", ("underflows to 0", "log(0)", "log-softmax")),
}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    n = x.shape[0]
    rows = x.reshape(n, -1)
    out = rows.dot(W) + b
    return out, (x, W, b)


def dense_backward(dout, cache):
    x, W, b = cache
    n = x.shape[0]
    rows = x.reshape(n, -1)
    db = np.sum(dout, axis=0)
    dW = rows.T.dot(dout)
    dx = dout.dot(W.T).reshape(x.shape)
    return dx, dW, db


def relu_forward(x):
    relu = lambda x: np.maximum(0, x)
    return relu(x), x


def relu_backward(dout, cache):
    x = cache
    dx = np.copy(dout)
    dx[x < 0] = 0
    return dx


def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    scores = logits.copy()
    shifted = scores - np.max(scores, axis=1)[:, np.newaxis]
    softmax = np.exp(shifted) / np.sum(np.exp(shifted), axis=1)[:, np.newaxis]
    loss = np.sum(-np.log(softmax[range(n), list(y)]))
    loss /= n
    dscores = softmax.copy()
    dscores[range(n), list(y)] += -1
    return loss, dscores / n
