# ruff: noqa
"""Georgia Tech CS7643, assignment 1, as solved in mjfox314/Deep_Learning-CS7643 (commit f413bd0,
no licence stated): softmax, cross_entropy_loss, sigmoid, sigmoid_dev, ReLU and ReLU_dev of
assignment1/models/_base_network.py, and the gradient of the scores from SoftmaxRegression.forward
(assignment1/models/softmax_regression.py).

Glue: the methods become functions; the scores are the logits; an activation's backward
multiplies dout by its _dev at the cached input, as the two-layer network does.
"""

from tests.corpus import Bug

AUTHOR = "mjfox314"
ASSIGNMENT = "backprop"
EXPECTED = {
    "sigmoid_forward": Bug(
        "1 / (1 + exp(-x)) overflows (with NumPy's warning) for x around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
    "softmax_cross_entropy": Bug(
        "one-hot labels of as many columns as the batch has distinct labels (and 10 in the "
        "loss) whatever the number of classes: raises IndexError or ValueError",
        "values", ("`softmax_cross_entropy` raised",)),
}

# --- port ---
import numpy as np


def softmax(scores):
    max_score = np.max(scores, axis=1)
    max_score = max_score[:, np.newaxis]
    exponential = np.exp(scores - max_score)
    sum_exponential = np.sum(exponential, axis=1)
    sum_exponential = sum_exponential[:, np.newaxis]
    return exponential / sum_exponential


def cross_entropy_loss(x_pred, y):
    y_encode = np.zeros((y.size, 10))
    y_encode[np.arange(y.size), y] = 1.0
    return np.mean(-np.sum(y_encode * np.log(x_pred), axis=1))


def sigmoid(X):
    return 1 / (1 + np.exp(-X))


def sigmoid_dev(x):
    return sigmoid(x) * (1 - sigmoid(x))


def ReLU(X):
    return np.maximum(0, X)


def ReLU_dev(X):
    return (X > 0) * 1


def relu_forward(x):
    return ReLU(x), x


def relu_backward(dout, cache):
    return dout * ReLU_dev(cache)


def sigmoid_forward(x):
    return sigmoid(x), x


def sigmoid_backward(dout, cache):
    return dout * sigmoid_dev(cache)


def softmax_cross_entropy(logits, y):
    n_class = np.unique(y).shape[0]
    y_encode = np.zeros((y.shape[0], n_class))
    for index, value in enumerate(y):
        y_encode[index, value] = 1.0
    probabilities = softmax(logits)
    loss = cross_entropy_loss(probabilities, y)
    r1 = probabilities - y_encode
    return loss, r1 / len(y)
