# ruff: noqa
"""Neural Networks from Scratch in Python (Harrison Kinsley and Daniel Kukieła),
Sentdex/nnfs_book, Chapter_22/Ch22_Final.py (commit 9cf2fc4, MIT): Layer_Dense,
Activation_ReLU, Activation_Sigmoid, and Activation_Softmax with Loss_CategoricalCrossentropy
(forward) and Activation_Softmax_Loss_CategoricalCrossentropy (backward), the book's combined
softmax and loss.

Glue: each class becomes a forward/backward pair; what the object keeps is the cache. The book
keeps biases as (1, M): here b is (M,) and dbiases, (1, M) there, is returned with b's shape.
Loss.calculate's mean over the samples is the loss.
"""

from tests.corpus import Bug

AUTHOR = "Harrison Kinsley and Daniel Kukieła"
ASSIGNMENT = "backprop"
EXPECTED = {
    "sigmoid_forward": Bug(
        "1 / (1 + exp(-x)) overflows (with NumPy's warning) for x around -1000",
        "extreme inputs", ("FloatingPointError", "never exponentiates a large positive number")),
    "softmax_cross_entropy": Bug(
        "clips the probabilities to [1e-7, 1 - 1e-7] before the log: at logits around ±1000 the "
        "loss stops at -log(1e-7)",
        "large logits", ("underflows to 0", "clipping", "log-softmax")),
}

# --- port ---
import numpy as np


def dense_forward(x, W, b):
    return np.dot(x, W) + b, (x, W, b)


def dense_backward(dout, cache):
    inputs, weights, biases = cache
    dweights = np.dot(inputs.T, dout)
    dbiases = np.sum(dout, axis=0, keepdims=True)
    dinputs = np.dot(dout, weights.T)
    return dinputs, dweights, dbiases.reshape(biases.shape)


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    inputs = cache
    dinputs = dout.copy()
    dinputs[inputs <= 0] = 0
    return dinputs


def sigmoid_forward(x):
    output = 1 / (1 + np.exp(-x))
    return output, output


def sigmoid_backward(dout, cache):
    output = cache
    return dout * (1 - output) * output


def softmax_cross_entropy(logits, y):
    exp_values = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    probabilities = exp_values / np.sum(exp_values, axis=1, keepdims=True)
    samples = len(probabilities)
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    correct_confidences = clipped[range(samples), y]
    loss = np.mean(-np.log(correct_confidences))
    dinputs = probabilities.copy()
    dinputs[range(samples), y] -= 1
    dinputs = dinputs / samples
    return loss, dinputs
