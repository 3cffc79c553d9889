# ruff: noqa
"""Neural Networks and Deep Learning (Michael Nielsen), mnielsen/neural-networks-and-deep-learning,
src/network.py (commit 72db53d, no licence file): sigmoid, sigmoid_prime, and the dense layer's
part of Network.feedforward and Network.backprop.

Glue: Nielsen's weights are (out, in) and his examples are columns; here w = W.T and the batch's
examples are the columns of x.T, so one matrix product does what his loop over the mini-batch
does. nabla_b, one column per example there, is summed over the batch as update_mini_batch sums
it. The sigmoid's cache is its input z, which sigmoid_prime takes.
"""

from tests.corpus import Bug

AUTHOR = "Michael Nielsen"
ASSIGNMENT = "backprop"
EXPECTED = {
    "sigmoid_forward": Bug(
        "1.0 / (1.0 + exp(-z)) overflows (with NumPy's warning) for z around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
}

# --- port ---
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def dense_forward(x, W, b):
    w, activation = W.T, x.T
    z = np.dot(w, activation) + b[:, None]
    return z.T, (w, activation)


def dense_backward(dout, cache):
    w, activation = cache
    delta = dout.T
    nabla_b = delta.sum(axis=1)
    nabla_w = np.dot(delta, activation.transpose())
    dx = np.dot(w.transpose(), delta)
    return dx.T, nabla_w.T, nabla_b


def sigmoid_forward(x):
    return sigmoid(x), x


def sigmoid_backward(dout, cache):
    return dout * sigmoid_prime(cache)
