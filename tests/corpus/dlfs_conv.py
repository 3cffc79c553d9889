# ruff: noqa
"""Deep Learning from Scratch (Koki Saitoh, O'Reilly Japan), oreilly-japan/deep-learning-from-
scratch, common/layers.py and common/util.py (commit 07b1161, MIT): the Convolution and Pooling
layers with the im2col and col2im they call.

Glue: each layer class becomes a forward/backward pair; what the object keeps is the cache, and
Convolution's dW and db, kept on the object there, are returned with dx. Pooling gets
pool_h = pool_w = size.
"""

AUTHOR = "Koki Saitoh"
ASSIGNMENT = "convolution"
EXPECTED = {}

# --- port ---
import numpy as np


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


def conv2d_forward(x, w, b, stride=1, pad=0):
    FN, C, FH, FW = w.shape
    N, C, H, W = x.shape
    out_h = 1 + int((H + 2 * pad - FH) / stride)
    out_w = 1 + int((W + 2 * pad - FW) / stride)
    col = im2col(x, FH, FW, stride, pad)
    col_W = w.reshape(FN, -1).T
    out = np.dot(col, col_W) + b
    out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)
    return out, (x, w, col, col_W, stride, pad)


def conv2d_backward(dout, cache):
    x, w, col, col_W, stride, pad = cache
    FN, C, FH, FW = w.shape
    dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
    db = np.sum(dout, axis=0)
    dW = np.dot(col.T, dout)
    dW = dW.transpose(1, 0).reshape(FN, C, FH, FW)
    dcol = np.dot(dout, col_W.T)
    dx = col2im(dcol, x.shape, FH, FW, stride, pad)
    return dx, dW, db


def max_pool2d_forward(x, size, stride):
    pool_h = pool_w = size
    N, C, H, W = x.shape
    out_h = int(1 + (H - pool_h) / stride)
    out_w = int(1 + (W - pool_w) / stride)
    col = im2col(x, pool_h, pool_w, stride, 0)
    col = col.reshape(-1, pool_h * pool_w)
    arg_max = np.argmax(col, axis=1)
    out = np.max(col, axis=1)
    out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
    return out, (x, arg_max, pool_h, pool_w, stride)


def max_pool2d_backward(dout, cache):
    x, arg_max, pool_h, pool_w, stride = cache
    dout = dout.transpose(0, 2, 3, 1)
    pool_size = pool_h * pool_w
    dmax = np.zeros((dout.size, pool_size))
    dmax[np.arange(arg_max.size), arg_max.flatten()] = dout.flatten()
    dmax = dmax.reshape(dout.shape + (pool_size,))
    dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
    return col2im(dcol, x.shape, pool_h, pool_w, stride, 0)
