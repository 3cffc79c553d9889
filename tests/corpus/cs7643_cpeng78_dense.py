# ruff: noqa
"""Georgia Tech CS7643, assignment 1, as solved in cpeng78/Deep-Learning-for-Visual-Recognition
(commit 0678756, no licence stated): softmax, cross_entropy_loss, sigmoid, sigmoid_dev, ReLU and
ReLU_dev of assignment1/models/_base_network.py, and the gradient of the scores from
SoftmaxRegression.forward (assignment1/models/softmax_regression.py).

Glue: the methods become functions; the scores (relu1 there) are the logits; an activation's
backward multiplies dout by its _dev at the cached input, as the two-layer network does.
"""

from tests.corpus import Bug

AUTHOR = "cpeng78"
ASSIGNMENT = "backprop"
EXPECTED = {
    "sigmoid_forward": Bug(
        "1 / (1 + exp(-x)) overflows (with NumPy's warning) for x around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
    "softmax_cross_entropy": Bug(
        "subtracts the maximum of the whole batch, not each row's: a row whose scores are far "
        "below the batch's maximum gets exp 0 / 0 = NaN",
        "large logits", ("whole batch", "each row's maximum")),
}

# --- port ---
import numpy as np


def softmax(scores):
    s_exp = np.exp(scores - np.max(scores))
    s_sum = np.sum(s_exp, axis=1, keepdims=True)
    return s_exp / s_sum


def cross_entropy_loss(x_pred, y):
    nb_classes = x_pred.shape[1]
    res = np.eye(nb_classes)[np.array(y).reshape(-1)]
    return -np.where(res == 1, np.log(x_pred), 0).sum() / len(y)


def sigmoid(X):
    return 1 / (1 + np.exp(-X))


def sigmoid_dev(x):
    s = sigmoid(x)
    return s * (1 - s)


def ReLU(X):
    return np.where(X < 0, 0, X)


def ReLU_dev(X):
    return np.where(X < 0, 0, 1)


def relu_forward(x):
    return ReLU(x), x


def relu_backward(dout, cache):
    return dout * ReLU_dev(cache)


def sigmoid_forward(x):
    return sigmoid(x), x


def sigmoid_backward(dout, cache):
    return dout * sigmoid_dev(cache)


def softmax_cross_entropy(logits, y):
    probabilities = softmax(logits)
    loss = cross_entropy_loss(probabilities, y)
    m = y.shape[0]
    grad = softmax(logits)
    grad[range(m), y] -= 1
    return loss, grad / m
