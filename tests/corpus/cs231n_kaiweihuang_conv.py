# ruff: noqa
"""kaiweihuang/CS231n, assignment2/cs231n/layers.py (commit f5088b9, MIT): conv_forward_naive,
conv_backward_naive, max_pool_forward_naive, max_pool_backward_naive.

Glue: stride and pad go into CS231n's conv_param, size and stride into its pool_param
(pool_height = pool_width = size); the names.
"""

AUTHOR = "kaiweihuang"
ASSIGNMENT = "convolution"
EXPECTED = {}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    pad, stride = conv_param["pad"], conv_param["stride"]
    H_out = int(((H - HH + 2 * pad) / stride) + 1)
    W_out = int(((W - WW + 2 * pad) / stride) + 1)
    out = np.zeros((N, F, H_out, W_out))
    x_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for n in range(N):
        for c in range(C):
            x_pad[n, c] = np.pad(x[n, c], (pad, pad), "constant", constant_values=(0, 0))
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                for f in range(F):
                    window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f])
                out[n, :, i, j] += b
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    pad, stride = conv_param["pad"], conv_param["stride"]
    N, C, H, W = x.shape
    _, F, H_out, W_out = dout.shape
    _, _, HH, WW = w.shape
    db = np.zeros(F)
    dw = np.zeros((F, C, HH, WW))
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    x_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for n in range(N):
        for c in range(C):
            x_pad[n, c] = np.pad(x[n, c], (pad, pad), "constant", constant_values=(0, 0))
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                db += dout[n, :, i, j]
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    dw[f] += dout[n, f, i, j] * window
                    dx_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += (
                        dout[n, f, i, j] * w[f])
    dx = dx_pad[:, :, pad:H + pad, pad:W + pad]
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    N, C, H, W = x.shape
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    H_out = int(((H - ph) / s) + 1)
    W_out = int(((W - pw) / s) + 1)
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = np.max(x[n, c, i * s:i * s + ph, j * s:j * s + pw])
    return out, (x, pool_param)


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    N, C, H_out, W_out = dout.shape
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    k, l = np.unravel_index(window.argmax(), window.shape)
                    dx[n, c, i * s + k, j * s + l] += dout[n, c, i, j]
    return dx
