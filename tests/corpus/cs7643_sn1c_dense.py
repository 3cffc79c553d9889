# ruff: noqa
"""Georgia Tech CS7643, assignment 1, as solved in sn1c/cs7643-deep-learning (commit c108156, no
licence stated): softmax, cross_entropy_loss, sigmoid, sigmoid_dev, ReLU and ReLU_dev of
assignment1/models/_base_network.py, and the gradient of the scores from SoftmaxRegression.forward
(assignment1/models/softmax_regression.py).

Glue: the methods become functions; the scores (A there) are the logits; an activation's backward
multiplies dout by its _dev at the cached input, as the two-layer network does.
"""

from tests.corpus import Bug

AUTHOR = "sn1c"
ASSIGNMENT = "backprop"
EXPECTED = {
    "sigmoid_forward": Bug(
        "1 / (1 + exp(-x)) overflows (with NumPy's warning) for x around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
    "softmax_cross_entropy": Bug(
        "exp of the raw scores: overflows to inf at logits around 1000, and the loss is NaN",
        "large logits", ("overflows", "subtract each row's maximum")),
}

# --- port ---
import numpy as np


def softmax(scores):
    exp = np.exp(scores)
    return exp / np.sum(exp, axis=1, keepdims=True)


def cross_entropy_loss(x_pred, y):
    p = x_pred[np.arange(len(y)), y]
    return np.mean(-np.log(p))


def sigmoid(X):
    return 1 / (1 + np.exp(-X))


def sigmoid_dev(x):
    sigma = sigmoid(x)
    return sigma * (1 - sigma)


def ReLU(X):
    return np.maximum(0, X)


def ReLU_dev(X):
    return np.where(X > 0, 1, 0)


def relu_forward(x):
    return ReLU(x), x


def relu_backward(dout, cache):
    return dout * ReLU_dev(cache)


def sigmoid_forward(x):
    return sigmoid(x), x


def sigmoid_backward(dout, cache):
    return dout * sigmoid_dev(cache)


def softmax_cross_entropy(logits, y):
    p = softmax(logits)
    loss = cross_entropy_loss(p, y)
    n = logits.shape[0]
    y_expanded = np.zeros_like(p)
    y_expanded[np.arange(n), y] = 1
    return loss, 1 / n * (p - y_expanded)
