# ruff: noqa
"""leehanchung/cs182 (Berkeley CS182, CS231n's layers), assignment1/deeplearning/layers.py
(commit a8e8437, MIT): conv_forward_naive, conv_backward_naive, max_pool_forward_naive,
max_pool_backward_naive.

Glue: conv_param and pool_param as CS231n passes them (the source unpacks them with .values(),
so their key order is kept); the names.
"""

from tests.corpus import Bug

AUTHOR = "leehanchung"
ASSIGNMENT = "convolution"
EXPECTED = {
    "max_pool2d_forward": Bug(
        "asserts that the window size divides the input (H % pool_height == 0): a 7-wide input "
        "with 2-wide windows raises",
        "values", ("raised AssertionError",)),
    "max_pool2d_backward": Bug(
        "sends dout to every tied maximum of a window (mask == max); and its forward raises "
        "where the window does not divide the input",
        "ties", ("several equal maxima", "fix the forward first")),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param.values()
    out_h = 1 + (H + 2 * pad - HH) // stride
    out_w = 1 + (W + 2 * pad - WW) // stride
    out = np.zeros((N, F, out_h, out_w))
    padded = np.pad(x, ((0,), (0,), (pad,), (pad,)), "constant")
    for n in range(N):
        for f in range(F):
            for i in range(out_h):
                for j in range(out_w):
                    out[n, f, i, j] = np.sum(
                        padded[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                        * w[f, :]) + b[f]
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param.values()
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, out_h, out_w = dout.shape
    padded = np.pad(x, ((0,), (0,), (pad,), (pad,)), "constant")
    dx_padded = np.zeros_like(padded)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(out_h):
                for j in range(out_w):
                    dw[f] += padded[n, :, i * stride:i * stride + HH,
                                    j * stride:j * stride + WW] * dout[n, f, i, j]
                    dx_padded[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += (
                        w[f] * dout[n, f, i, j])
    dx = dx_padded[:, :, pad:H + pad, pad:W + pad]
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    ph, pw, stride = pool_param.values()
    N, C, H, W = x.shape
    assert H % ph == 0
    assert W % pw == 0
    out_h = 1 + (H - ph) // stride
    out_w = 1 + (W - pw) // stride
    out = np.zeros((N, C, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    return out, (x, pool_param)


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param.values()
    N, C, H, W = x.shape
    out_h = 1 + (H - ph) // stride
    out_w = 1 + (W - pw) // stride
    dx = np.zeros((N, C, H, W))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            mask = window == np.max(window, axis=(2, 3))[:, :, None, None]
            dx[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw] += (
                dout[:, :, i, j][:, :, None, None] * mask)
    return dx
