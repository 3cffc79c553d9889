# ruff: noqa
"""CS231n course staff: `softmax_loss`, handed out complete in assignment2/cs231n/layers.py of
the 2016-2017 editions; here as kept in kaiweihuang/CS231n (commit f5088b9, MIT) and the same in
Deeplayer/CS231n-winter-2016 and leehanchung/cs182 (CS7643 hands out the same recipe as
SoftmaxCE). The most common softmax cross-entropy there is.

Glue: the name only (`softmax_loss(x, y)` already returns the mean loss and its gradient).
"""

from tests.corpus import Bug

AUTHOR = "CS231n course staff"
ASSIGNMENT = "backprop"
EXPECTED = {
    "softmax_cross_entropy": Bug(
        "subtracts the row maximum, then takes the log of the probability: the true class's "
        "probability underflows to 0 at logits around ±1000 and the loss is inf",
        "large logits", ("underflows to 0", "log(0)", "log-softmax")),
}

# --- port ---
import numpy as np


def softmax_cross_entropy(logits, y):
    probabilities = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    probabilities /= np.sum(probabilities, axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.sum(np.log(probabilities[np.arange(n), y])) / n
    dlogits = probabilities.copy()
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    return loss, dlogits
