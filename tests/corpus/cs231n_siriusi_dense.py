# ruff: noqa
"""siriusi/assignment2, cs231n/layers.py (commit d3b97d1, no licence stated): affine_forward (a
loop over the rows), affine_backward, relu_forward and relu_backward.

Glue: the names.
"""

AUTHOR = "siriusi"
ASSIGNMENT = "backprop"
EXPECTED = {}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    out = np.zeros((x.shape[0], b.shape[0]))
    for i in range(x.shape[0]):
        out[i] = np.dot(x[i].reshape(1, -1), W) + b
    return out, (x, W, b)


def dense_backward(dout, cache):
    x, W, b = cache
    rows = x.reshape(x.shape[0], -1)
    dx = np.dot(dout, W.T).reshape(x.shape[0], *x.shape[1:])
    dW = np.dot(rows.T, dout)
    db = np.sum(dout, axis=0)
    return dx, dW, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    dx = np.zeros(x.shape)
    dx[x > 0] = 1
    dx *= dout
    return dx
