# ruff: noqa
"""Deeplayer/CS231n-winter-2016, CNN/layers.py (commit 45faf63, no licence stated):
conv_forward_naive, conv_backward_naive, max_pool_forward_naive, max_pool_backward_naive.

Glue: Python 2 to 3 (xrange is range; `/` on ints, Python 2's floor division, is `//`);
conv_param and pool_param as CS231n passes them; the names.
"""

from tests.corpus import Bug

AUTHOR = "Deeplayer"
ASSIGNMENT = "convolution"
EXPECTED = {
    "max_pool2d_backward": Bug(
        "assigns (=) `(window == max) * dout` to the whole window: where windows overlap, the "
        "next window's zeros erase the gradient the previous one gave its maximum",
        "overlap", ("overlap", "+=")),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    H_new = 1 + (H + 2 * pad - HH) // stride
    W_new = 1 + (W + 2 * pad - WW) // stride
    s = stride
    out = np.zeros((N, F, H_new, W_new))
    for i in range(N):
        for f in range(F):
            for j in range(H_new):
                for k in range(W_new):
                    out[i, f, j, k] = np.sum(padded[i, :, j * s:HH + j * s, k * s:WW + k * s]
                                             * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    pad, stride = conv_param["pad"], conv_param["stride"]
    F, C, HH, WW = w.shape
    N, C, H, W = x.shape
    H_new = 1 + (H + 2 * pad - HH) // stride
    W_new = 1 + (W + 2 * pad - WW) // stride
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    s = stride
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    dx_padded = np.pad(dx, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    for i in range(N):
        for f in range(F):
            for j in range(H_new):
                for k in range(W_new):
                    window = padded[i, :, j * s:HH + j * s, k * s:WW + k * s]
                    db[f] += dout[i, f, j, k]
                    dw[f] += window * dout[i, f, j, k]
                    dx_padded[i, :, j * s:HH + j * s, k * s:WW + k * s] += w[f] * dout[i, f, j, k]
    dx = dx_padded[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    HH, WW = pool_param["pool_height"], pool_param["pool_width"]
    s = pool_param["stride"]
    N, C, H, W = x.shape
    H_new = 1 + (H - HH) // s
    W_new = 1 + (W - WW) // s
    out = np.zeros((N, C, H_new, W_new))
    for i in range(N):
        for j in range(C):
            for k in range(H_new):
                for l in range(W_new):
                    out[i, j, k, l] = np.max(x[i, j, k * s:HH + k * s, l * s:WW + l * s])
    return out, (x, pool_param)


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    HH, WW = pool_param["pool_height"], pool_param["pool_width"]
    s = pool_param["stride"]
    N, C, H, W = x.shape
    H_new = 1 + (H - HH) // s
    W_new = 1 + (W - WW) // s
    dx = np.zeros_like(x)
    for i in range(N):
        for j in range(C):
            for k in range(H_new):
                for l in range(W_new):
                    window = x[i, j, k * s:HH + k * s, l * s:WW + l * s]
                    m = np.max(window)
                    dx[i, j, k * s:HH + k * s, l * s:WW + l * s] = (window == m) * dout[i, j, k, l]
    return dx
