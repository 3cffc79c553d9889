# ruff: noqa
"""0809zheng/CS231n-assignment2019, assignment2/cs231n/layers.py (commit 3f5c853, no licence
stated): conv_forward_naive, conv_backward_naive, max_pool_forward_naive,
max_pool_backward_naive.

Glue: conv_param and pool_param as CS231n passes them; the names. `int()` of a one-element
array, which the NumPy of 2019 allowed and NumPy 2 refuses, is `as_python_int()`: the old rule (one
element gives its value, more raise TypeError).
"""

from tests.corpus import Bug

AUTHOR = "0809zheng"
ASSIGNMENT = "convolution"
EXPECTED = {
    "conv2d_backward": Bug(
        "crops the padding with dx_pad[:, :, pad:-pad, pad:-pad], empty when pad = 0",
        "gradient", ("pad:-pad", "empty")),
    "max_pool2d_backward": Bug(
        "assigns (=) each window's dout to its maximum: where windows overlap, a pixel that wins "
        "several windows keeps only the last one's (and int() of two tied positions raises)",
        "overlap", ("overlap", "+=")),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    H_ = int((H + 2 * pad - HH) / stride + 1)
    W_ = int((W + 2 * pad - WW) / stride + 1)
    out = np.zeros((N, F, H_, W_))
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant", constant_values=0)
    for f in range(F):
        for i in range(H_):
            for j in range(W_):
                product = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW] * w[f]
                out[:, f, i, j] = np.sum(product, axis=(1, 2, 3), keepdims=False) + b[f]
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant", constant_values=0)
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    H_ = int((H + 2 * pad - HH) / stride + 1)
    W_ = int((W + 2 * pad - WW) / stride + 1)
    dx_pad = np.zeros((N, C, H + pad * 2, W + pad * 2))
    dw = np.zeros((F, C, HH, WW))
    for f in range(F):
        for i in range(H_):
            for j in range(W_):
                upstream = dout[:, f, i, j].reshape(-1, 1, 1, 1)
                window = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                dw[f] += np.sum(window * upstream, axis=0, keepdims=False)
                dx_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += (
                    w[f] * upstream)
    dx = dx_pad[:, :, pad:-pad, pad:-pad]
    db = np.sum(dout, axis=(0, 2, 3))
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_ = int((H - ph) / stride + 1)
    W_ = int((W - pw) / stride + 1)
    out = np.zeros((N, C, H_, W_))
    for i in range(H_):
        for j in range(W_):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    return out, (x, pool_param)


def as_python_int(a):
    if np.size(a) != 1:
        raise TypeError("only size-1 arrays can be converted to Python scalars")
    return int(np.asarray(a).item())


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_ = int((H - ph) / stride + 1)
    W_ = int((W - pw) / stride + 1)
    assert dout.shape == (N, C, H_, W_)
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(H_):
                for j in range(W_):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    row, col = np.where(window == np.max(window))
                    dx[n, c, i * stride + as_python_int(row), j * stride + as_python_int(col)] = dout[n, c, i, j]
    return dx
