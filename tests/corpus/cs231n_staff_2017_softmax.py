# ruff: noqa
"""CS231n course staff: `softmax_loss` as handed out from the 2017 edition on (through
log-probabilities); here as kept in siriusi/assignment2, cs231n/layers.py (commit d3b97d1, no
licence stated), and the same in 0809zheng/CS231n-assignment2019 and 7forz/CS231n_assignments.

Glue: the name only.
"""

AUTHOR = "CS231n course staff"
ASSIGNMENT = "backprop"
EXPECTED = {}

# --- port ---
import numpy as np


def softmax_cross_entropy(logits, y):
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    total = np.sum(np.exp(shifted), axis=1, keepdims=True)
    log_probabilities = shifted - np.log(total)
    probabilities = np.exp(log_probabilities)
    n = logits.shape[0]
    loss = -np.sum(log_probabilities[np.arange(n), y]) / n
    dlogits = probabilities.copy()
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    return loss, dlogits
