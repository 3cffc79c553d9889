# ruff: noqa
"""leehanchung/cs182 (Berkeley CS182, CS231n's layers), assignment1/deeplearning/layers.py
(commit a8e8437, MIT): affine_forward, affine_backward, relu_forward, relu_backward.

Glue: the names.
"""

AUTHOR = "leehanchung"
ASSIGNMENT = "backprop"
EXPECTED = {}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    out = x.reshape(x.shape[0], W.shape[0]).dot(W) + b
    return out, (x, W, b)


def dense_backward(dout, cache):
    x, W, b = cache
    dx = dout.dot(W.T).reshape(x.shape)
    dW = x.reshape(x.shape[0], W.shape[0]).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dW, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    dx = np.array(dout, copy=True)
    dx[x <= 0] = 0
    return dx
