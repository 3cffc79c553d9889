# ruff: noqa
"""Alescontrela/Numpy-CNN (Alejandro Escontrela), CNN/forward.py, CNN/backward.py and the
nanargmax of CNN/utils.py (commit be15d01, no licence stated): maxpool and maxpoolBackward.

Glue: the source pools one image (C, H, W) at a time; here a loop over the batch calls it for
each image, the cache is (x, size, stride), and f = size, s = stride.
"""

from tests.corpus import Bug

AUTHOR = "Alejandro Escontrela"
ASSIGNMENT = "convolution"
EXPECTED = {
    "max_pool2d_backward": Bug(
        "assigns (=) each window's dout to its maximum (overlapping windows lose gradients), "
        "and walks the columns only as far as the image's height",
        "overlap", ("overlap", "+=")),
}

# --- port ---
import numpy as np


def nanargmax(arr):
    idx = np.nanargmax(arr)
    return np.unravel_index(idx, arr.shape)


def maxpool(image, f=2, s=2):
    n_c, h_prev, w_prev = image.shape
    h = int((h_prev - f) / s) + 1
    w = int((w_prev - f) / s) + 1
    downsampled = np.zeros((n_c, h, w))
    for i in range(n_c):
        curr_y = out_y = 0
        while curr_y + f <= h_prev:
            curr_x = out_x = 0
            while curr_x + f <= w_prev:
                downsampled[i, out_y, out_x] = np.max(image[i, curr_y:curr_y + f, curr_x:curr_x + f])
                curr_x += s
                out_x += 1
            curr_y += s
            out_y += 1
    return downsampled


def maxpoolBackward(dpool, orig, f, s):
    (n_c, orig_dim, _) = orig.shape
    dout = np.zeros(orig.shape)
    for curr_c in range(n_c):
        curr_y = out_y = 0
        while curr_y + f <= orig_dim:
            curr_x = out_x = 0
            while curr_x + f <= orig_dim:
                (a, b) = nanargmax(orig[curr_c, curr_y:curr_y + f, curr_x:curr_x + f])
                dout[curr_c, curr_y + a, curr_x + b] = dpool[curr_c, out_y, out_x]
                curr_x += s
                out_x += 1
            curr_y += s
            out_y += 1
    return dout


def max_pool2d_forward(x, size, stride):
    return np.stack([maxpool(image, size, stride) for image in x]), (x, size, stride)


def max_pool2d_backward(dout, cache):
    x, size, stride = cache
    return np.stack([maxpoolBackward(d, image, size, stride) for d, image in zip(dout, x)])
