# ruff: noqa
"""FortiLeiZhang/cs231n, code/cs231n/assignment2/cs231n/layers.py (commit 43867c4, no licence
stated): conv_forward_naive, conv_backward_naive, max_pool_forward_naive,
max_pool_backward_naive.

Glue: conv_param and pool_param as CS231n passes them; the names. Their max-pool backward
refers to `dout_slice`, a name it never defines: kept.
"""

from tests.corpus import Bug

AUTHOR = "FortiLeiZhang"
ASSIGNMENT = "convolution"
EXPECTED = {
    "conv2d_forward": Bug(
        "asserts that the stride divides (H − KH + 2·pad): stride 2 on such sizes raises",
        "output not square", ("raised AssertionError",)),
    "max_pool2d_forward": Bug(
        "asserts that the stride divides (W − pool_width): a 7-wide input with 2x2 windows "
        "raises",
        "values", ("raised AssertionError",)),
    "max_pool2d_backward": Bug(
        "uses `dout_slice`, which it never defines: raises NameError (and overwrites windows)",
        "overlap", ("raised NameError",)),
}

# --- port ---
import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    conv_param = {"stride": stride, "pad": pad}
    s = conv_param.get("stride", 1)
    pad = conv_param.get("pad", 0)
    N, in_c, in_h, in_w = x.shape
    K, in_c, f_h, f_w = w.shape
    K = b.shape[0]
    assert (in_h - f_h + 2 * pad) % s == 0, "Filter height mismatch."
    assert (in_w - f_w + 2 * pad) % s == 0, "Filter width mismatch."
    out_h = np.uint8((in_h - f_h + 2 * pad) / s + 1)
    out_w = np.uint8((in_w - f_w + 2 * pad) / s + 1)
    out = np.zeros((N, K, out_h, out_w))
    pad_x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    for i in range(N):
        for j in range(K):
            for ww in range(out_w):
                for hh in range(out_h):
                    out[i, j, hh, ww] = np.sum(
                        pad_x[i, :, s * hh:s * hh + f_h, s * ww:s * ww + f_w] * w[j]) + b[j]
    return out, (x, w, b, conv_param)


def conv2d_backward(dout, cache):
    x, w, b, conv_param = cache
    dw = np.zeros_like(w)
    s, p = conv_param["stride"], conv_param["pad"]
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), "constant")
    dx_pad = np.zeros_like(x_pad)
    N, in_c, in_h, in_w = x.shape
    N, K, out_h, out_w = dout.shape
    K, in_c, f_h, f_w = w.shape
    for i in range(N):
        for oc in range(K):
            for ww in range(out_w):
                for hh in range(out_h):
                    dx_pad[i, :, s * hh:s * hh + f_h, s * ww:s * ww + f_w] += (
                        dout[i, oc, hh, ww] * w[oc, ...])
                    dw[oc, ...] += dout[i, oc, hh, ww] * x_pad[i, :, s * hh:s * hh + f_h,
                                                               s * ww:s * ww + f_w]
    dx = dx_pad[:, :, p:in_h + p, p:in_w + p]
    db = np.sum(dout, axis=(0, 2, 3))
    return dx, dw, db


def max_pool2d_forward(x, size, stride):
    pool_param = {"pool_height": size, "pool_width": size, "stride": stride}
    pw, ph, s = pool_param["pool_width"], pool_param["pool_height"], pool_param["stride"]
    N, C, in_h, in_w = x.shape
    assert (in_h - ph) % s == 0, "Pool height mismatch."
    assert (in_w - pw) % s == 0, "Pool width mismatch."
    out_h = np.uint8((in_h - ph) / s + 1)
    out_w = np.uint8((in_w - pw) / s + 1)
    out = np.zeros((N, C, out_h, out_w))
    for ww in range(out_w):
        for hh in range(out_h):
            out[:, :, hh, ww] = np.max(x[:, :, s * hh:s * hh + ph, s * ww:s * ww + pw],
                                       axis=(2, 3))
    return out, (x, pool_param)


def max_pool2d_backward(dout, cache):
    x, pool_param = cache
    pw, ph, s = pool_param["pool_width"], pool_param["pool_height"], pool_param["stride"]
    _, _, out_h, out_w = dout.shape
    dx = np.zeros_like(x)
    for ww in range(out_w):
        for hh in range(out_h):
            window = x[:, :, s * hh:s * hh + ph, s * ww:s * ww + pw]
            biggest = np.max(window, axis=(2, 3), keepdims=True)
            winners = window == biggest
            dout_block = dout[:, :, hh, ww]
            dx[:, :, s * hh:s * hh + ph, s * ww:s * ww + pw] = (
                winners * dout_slice[:, :, np.newaxis, np.newaxis])
    return dx
