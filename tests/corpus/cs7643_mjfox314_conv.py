# ruff: noqa
"""Georgia Tech CS7643, assignment 2, as solved in mjfox314/Deep_Learning-CS7643 (commit
f413bd0, no licence stated): MaxPooling.forward and .backward
(assignment2/part1-convnet/modules/max_pool.py).

Glue: kernel_size is size; what the object keeps is the cache, and its dx is returned.
"""

from tests.corpus import Bug

AUTHOR = "mjfox314"
ASSIGNMENT = "convolution"
EXPECTED = {
    "max_pool2d_backward": Bug(
        "assigns (=) `mask * dout` to the whole window: where windows overlap, the next "
        "window's zeros erase the gradient the previous one gave its maximum",
        "overlap", ("overlap", "+=")),
}

# --- port ---
import numpy as np


def max_pool2d_forward(x, size, stride):
    kernels, channels, height, width = x.shape
    H_out = int((height - size) / stride) + 1
    W_out = int((width - size) / stride) + 1
    out = np.zeros((kernels, channels, H_out, W_out))
    for kernel in range(kernels):
        for channel in range(channels):
            for h in range(H_out):
                top = h * stride
                for w in range(W_out):
                    left = w * stride
                    out[kernel, channel, h, w] = np.max(x[kernel, channel, top:top + size,
                                                          left:left + size])
    return out, (x, H_out, W_out, size, stride)


def max_pool2d_backward(dout, cache):
    x, H_out, W_out, size, stride = cache
    kernels, channels, height, width = dout.shape
    dx = np.zeros(x.shape)
    for kernel in range(kernels):
        for channel in range(channels):
            for h in range(height):
                top = h * stride
                for w in range(width):
                    left = w * stride
                    window = x[kernel, channel, top:top + size, left:left + size]
                    mask = window == np.max(window)
                    dx[kernel, channel, top:top + size, left:left + size] = (
                        mask * dout[kernel, channel, h, w])
    return dx
