# ruff: noqa
"""ML-From-Scratch (Erik Linder-Norén), eriklindernoren/ML-From-Scratch (commit a2806c6, MIT):
the Dense layer (mlfromscratch/deep_learning/layers.py), the ReLU, Sigmoid and Softmax
activations (activation_functions.py) and the CrossEntropy loss (loss_functions.py), combined
as NeuralNetwork.train_on_batch combines them: the loss is the mean of CrossEntropy.loss, and
the gradient is CrossEntropy.gradient times the softmax activation's gradient.

Glue: the Dense layer keeps its bias as (1, M): b is (M,) here and grad_w0 is returned with b's
shape (and the optimiser's update is left out); the labels become one-hot as the library's
examples do (to_categorical); an activation's backward multiplies dout by its gradient at the
cached input, as the Activation layer does.
"""

from tests.corpus import Bug

AUTHOR = "Erik Linder-Norén"
ASSIGNMENT = "backprop"
EXPECTED = {
    "sigmoid_forward": Bug(
        "1 / (1 + exp(-x)) overflows (with NumPy's warning) for x around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
    "softmax_cross_entropy": Bug(
        "the loss is the binary cross-entropy of every class, averaged over N·C entries, and "
        "the gradient p − y lacks the 1/N",
        "values"),
}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    return x.dot(W) + b, (x, W, b)


def dense_backward(dout, cache):
    layer_input, W, w0 = cache
    grad_w = layer_input.T.dot(dout)
    grad_w0 = np.sum(dout, axis=0, keepdims=True)
    return dout.dot(W.T), grad_w, grad_w0.reshape(w0.shape)


def relu_forward(x):
    return np.where(x >= 0, x, 0), x


def relu_backward(dout, cache):
    return dout * np.where(cache >= 0, 1, 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_forward(x):
    return sigmoid(x), x


def sigmoid_backward(dout, cache):
    return dout * (sigmoid(cache) * (1 - sigmoid(cache)))


def softmax(x):
    e_x = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e_x / np.sum(e_x, axis=-1, keepdims=True)


def softmax_gradient(x):
    p = softmax(x)
    return p * (1 - p)


def cross_entropy_loss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -y * np.log(p) - (1 - y) * np.log(1 - p)


def cross_entropy_gradient(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -(y / p) + (1 - y) / (1 - p)


def softmax_cross_entropy(logits, y):
    onehot = np.eye(logits.shape[1])[y]
    p = softmax(logits)
    loss = np.mean(cross_entropy_loss(onehot, p))
    dlogits = cross_entropy_gradient(onehot, p) * softmax_gradient(logits)
    return loss, dlogits
