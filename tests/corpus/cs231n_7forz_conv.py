# ruff: noqa
"""7forz/CS231n_assignments, assignment2/cs231n/layers.py (commit a3d5af2, no licence stated):
conv_forward_naive, conv_backward_naive (which cites lightaime/cs231n as its model),
max_pool_forward_naive, max_pool_backward_naive.

Glue: conv_param and pool_param as CS231n passes them; the names.
"""

from tests.corpus import Bug

AUTHOR = "7forz"
ASSIGNMENT = "convolution"
EXPECTED = {
    "conv2d_backward": Bug(
        "crops the padding with dx_pad[:, :, pad:-pad, pad:-pad], empty when pad = 0",
        "gradient", ("pad:-pad", "empty")),
    "max_pool2d_backward": Bug(
        "sends dout to every tied maximum of a window (max == window)",
        "ties", ("several equal maxima",)),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_new = int(1 + (H + 2 * pad - HH) / stride)
    W_new = int(1 + (W + 2 * pad - WW) / stride)
    out = np.zeros((N, F, H_new, W_new))
    for n in range(N):
        padded = np.pad(x[n], ((0, 0), (pad, pad), (pad, pad)), "constant", constant_values=0)
        for f in range(F):
            kernel = w[f].flatten()
            for i in range(H_new):
                for j in range(W_new):
                    part = padded[:, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.dot(kernel, part.flatten()) + b[f]
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_new = int(1 + (H + 2 * pad - HH) / stride)
    W_new = int(1 + (W + 2 * pad - WW) / stride)
    x_pad = np.pad(x, ((0,), (0,), (pad,), (pad,)), mode="constant", constant_values=0)
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for i in range(H_new):
        for j in range(W_new):
            window = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            for k in range(F):
                dw[k] += np.sum(window * (dout[:, k, i, j])[:, None, None, None], axis=0)
            for n in range(N):
                dx_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += np.sum(
                    w * (dout[n, :, i, j])[:, None, None, None], axis=0)
    dx = dx_pad[:, :, pad:-pad, pad:-pad]
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    N, C, H, W = x.shape
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    H_new = int(1 + (H - ph) / stride)
    W_new = int(1 + (W - pw) / stride)
    out = np.zeros((N, C, H_new, W_new))
    for i in range(H_new):
        for j in range(W_new):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    return out, (x, pool_param)


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    N, C, H, W = x.shape
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    H_new = int(1 + (H - ph) / stride)
    W_new = int(1 + (W - pw) / stride)
    dx = np.zeros_like(x)
    for i in range(H_new):
        for j in range(W_new):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            biggest = np.max(window, axis=(2, 3))[:, :, None, None]
            is_max = biggest == window
            dx[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw] += (
                (dout[:, :, i, j])[:, :, None, None] * is_max)
    return dx
