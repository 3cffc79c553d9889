# ruff: noqa
"""FortiLeiZhang/cs231n, code/cs231n/assignment2/cs231n/layers.py (commit 43867c4, no licence
stated): affine_forward, affine_backward, relu_forward, relu_backward and softmax_loss.

Glue: the names.
"""

from tests.corpus import Bug

AUTHOR = "FortiLeiZhang"
ASSIGNMENT = "backprop"
EXPECTED = {
    "softmax_cross_entropy": Bug(
        "log of (exp of the shifted true score / sum): inf at logits around ±1000",
        "large logits", ("underflows to 0", "log(0)", "log-softmax")),
}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    n = x.shape[0]
    return x.reshape(n, -1).dot(W) + b, (x, W, b)


def dense_backward(dout, cache):
    x, W, b = cache
    n = x.shape[0]
    dx = dout.dot(W.T).reshape(*x.shape)
    dW = x.reshape(n, -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dW, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    return dout * (x > 0)


def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    stable = logits - np.max(logits, axis=1, keepdims=True)
    exp_scores = np.exp(stable)
    correct = exp_scores[np.arange(n), y]
    loss = -np.log(correct / np.sum(exp_scores, axis=1))
    loss = np.sum(loss) / n
    dlogits = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    dlogits[np.arange(n), y] -= 1
    dlogits = dlogits / n
    return loss, dlogits
