# ruff: noqa
"""Georgia Tech CS7643, assignment 2, as solved in cpeng78/Deep-Learning-for-Visual-Recognition
(commit 0678756, no licence stated): Conv2D.forward and .backward
(assignment2/part1-convnet/modules/convolution.py), MaxPooling.forward and .backward
(modules/max_pool.py).

Glue: the module's weight, bias, stride and padding are the arguments; what the object keeps
is the cache, and its dx, dw, db are returned. MaxPooling's kernel_size is size.
"""

from tests.corpus import Bug

AUTHOR = "cpeng78"
ASSIGNMENT = "convolution"
EXPECTED = {
    "conv2d_backward": Bug(
        "crops the padding with [padding:-padding], empty when padding = 0; its loop over output "
        "columns also runs to H_out, not W_out",
        "gradient", ("pad:-pad", "empty")),
    "max_pool2d_backward": Bug(
        "sends dout to every tied maximum of a window (pool == max)",
        "ties", ("several equal maxima",)),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    N, C, H, W = x.shape
    F, CC, HH, WW = w.shape
    assert C == CC
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    out = np.zeros((N, F, H_out, W_out))
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant", constant_values=0)
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, stride, pad)


def conv2d_backward(dout, cache):
    x, w, stride, pad = cache
    _, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant", constant_values=0)
    dx = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for i in range(H_out):
        for j in range(H_out):
            dx[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += np.sum(
                dout[:, :, np.newaxis, i:i + 1, j:j + 1] * w[np.newaxis, :, :, :, :], axis=1)
            dw += np.sum(dout[:, :, np.newaxis, i:i + 1, j:j + 1]
                         * x_pad[:, np.newaxis, :, i * stride:i * stride + HH,
                                 j * stride:j * stride + WW], axis=0)
    dx = dx[:, :, pad:-pad, pad:-pad]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    n, c, h_in, w_in = x.shape
    H_out = 1 + (h_in - size) // stride
    W_out = 1 + (w_in - size) // stride
    out = np.zeros((n, c, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    return out, (x, H_out, W_out, size, stride)


def max_pool2d_backward(dout, cache):
    x, H_out, W_out, size, stride = cache
    dx = np.zeros_like(x)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            mask = window == np.max(window, axis=(2, 3), keepdims=True)
            dx[:, :, i * stride:i * stride + size, j * stride:j * stride + size] += (
                dout[:, :, i:i + 1, j:j + 1] * mask)
    return dx
