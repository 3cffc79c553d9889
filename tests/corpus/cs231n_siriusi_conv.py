# ruff: noqa
"""siriusi/assignment2, cs231n/layers.py (commit d3b97d1, no licence stated):
conv_forward_naive, conv_backward_naive, max_pool_forward_naive, max_pool_backward_naive.

Glue: conv_param and pool_param as CS231n passes them; the names. (Their loops run over output
columns, then rows: that order is kept, it decides which window's `=` is last.)
"""

from tests.corpus import Bug

AUTHOR = "siriusi"
ASSIGNMENT = "convolution"
EXPECTED = {
    "conv2d_backward": Bug(
        "crops the padding with a fixed 1 (`dx_pad[:, :, 1:H + 1, 1:W + 1]`): wrong shape "
        "whenever pad is not 1",
        "gradient", ("fixed", "pad")),
    "max_pool2d_backward": Bug(
        "assigns (=) each window's dout to its maximum: where windows overlap, a pixel that wins "
        "several windows keeps only the last one's",
        "overlap", ("overlap", "+=")),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    stride = conv_param.get("stride", 1)
    pad = conv_param.get("pad", 1)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    new_h = int(1 + (H + 2 * pad - HH) / stride)
    new_w = int(1 + (W + 2 * pad - WW) / stride)
    out = np.zeros([N, F, new_h, new_w])
    for n in range(N):
        for f in range(F):
            for i in range(new_w):
                for j in range(new_h):
                    xs, ys = i * stride, j * stride
                    out[n, f, j, i] += np.sum(padded[n, :, ys:ys + HH, xs:xs + WW] * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    stride = conv_param.get("stride", 1)
    pad = conv_param.get("pad", 1)
    N, C, H, W = x.shape
    F, C, HH, WW = w.shape
    dw = np.zeros([F, C, HH, WW])
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    dpadded = np.zeros([N, C, H + 2 * pad, W + 2 * pad])
    _, _, dout_h, dout_w = dout.shape
    for n in range(N):
        for f in range(F):
            for i in range(dout_w):
                for j in range(dout_h):
                    xs, ys = i * stride, j * stride
                    dpadded[n, :, ys:ys + HH, xs:xs + WW] += (
                        np.ones([C, HH, WW]) * dout[n, f, j, i] * w[f])
                    dw[f] += np.ones([C, HH, WW]) * dout[n, f, j, i] * padded[n, :, ys:ys + HH,
                                                                             xs:xs + WW]
    db = np.sum(np.sum(np.sum(dout, axis=3), axis=2), axis=0)
    dx = dpadded[:, :, 1:H + 1, 1:W + 1]
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    pw = pool_param.get("pool_width", 1)
    ph = pool_param.get("pool_height", 1)
    stride = pool_param.get("stride", 1)
    N, C, H, W = x.shape
    new_h = int(1 + (H - ph) / stride)
    new_w = int(1 + (W - pw) / stride)
    out = np.zeros([N, C, new_h, new_w])
    for n in range(N):
        for c in range(C):
            for i in range(new_w):
                for j in range(new_h):
                    xs, ys = i * stride, j * stride
                    out[n, c, j, i] = np.max(x[n, c, ys:ys + ph, xs:xs + pw])
    return out, (x, pool_param)


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    pw = pool_param.get("pool_width", 1)
    ph = pool_param.get("pool_height", 1)
    stride = pool_param.get("stride", 1)
    N, C, H, W = x.shape
    N, C, dout_h, dout_w = dout.shape
    dx = np.zeros([N, C, H, W])
    for n in range(N):
        for c in range(C):
            for i in range(dout_w):
                for j in range(dout_h):
                    xs, ys = i * stride, j * stride
                    window = x[n, c, ys:ys + ph, xs:xs + pw]
                    index = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, index[0] + ys, index[1] + xs] = dout[n, c, j, i]
    return dx
