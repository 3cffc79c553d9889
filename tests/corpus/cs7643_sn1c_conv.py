# ruff: noqa
"""Georgia Tech CS7643, assignment 2, as solved in sn1c/cs7643-deep-learning (commit c108156, no
licence stated): MaxPooling.forward and .backward (assignment2/part1-convnet/modules/max_pool.py).

Glue: kernel_size is size; what the object keeps is the cache, and its dx is returned.
"""

AUTHOR = "sn1c"
ASSIGNMENT = "convolution"
EXPECTED = {}

# --- port ---
import numpy as np


def max_pool2d_forward(x, size, stride):
    N, C, H, W = x.shape
    H_out = int(np.floor((H - size) / stride + 1))
    W_out = int(np.floor((W - size) / stride + 1))
    out = np.zeros((N, C, H_out, W_out))
    for h in range(H_out):
        for w in range(W_out):
            out[:, :, h, w] = np.max(
                x[:, :, h * stride:h * stride + size, w * stride:w * stride + size], axis=(2, 3))
    return out, (x, H_out, W_out, size, stride)


def max_pool2d_backward(dout, cache):
    x, H_out, W_out, size, stride = cache
    N, C, H, W = x.shape
    dx = np.zeros_like(x)
    for h in range(H_out):
        for w in range(W_out):
            flat = x[:, :, h * stride:h * stride + size, w * stride:w * stride + size].reshape(
                N, C, -1)
            winner = np.argmax(flat, axis=2)
            for n in range(N):
                for c in range(C):
                    dh, dw = np.unravel_index(winner[n, c], shape=(size, size))
                    dx[n, c, h * stride + dh, w * stride + dw] += dout[n, c, h, w]
    return dx
