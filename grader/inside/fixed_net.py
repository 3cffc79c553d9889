"""The MNIST diagnostic's fixed network, assembled from whatever layer functions it is given.

This is a training *loop*, not a solution: every layer's forward, backward and the loss are the
functions handed in (the student's, or the reference for one of them in a diagnostic rerun).
784-128-10, ReLU, softmax cross-entropy, plain SGD with learning rate 0.1, batches of 64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

HIDDEN, CLASSES, LEARNING_RATE, BATCH = 128, 10, 0.1, 64


def train_and_predict(
    functions: Mapping[str, Callable],
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    epochs: int,
    seed: int,
) -> np.ndarray:
    params = train(functions, train_x, train_y, epochs=epochs, seed=seed)
    return predict(functions, params, test_x)


def train(
    functions: Mapping[str, Callable],
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    epochs: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """The trained parameters (W1, b1, W2, b2): the same seed and the same functions give the
    same ones, which is what the culprit search compares."""
    dense_fwd, dense_bwd = functions["dense_forward"], functions["dense_backward"]
    relu_fwd, relu_bwd = functions["relu_forward"], functions["relu_backward"]
    loss_fn = functions["softmax_cross_entropy"]
    rng = np.random.default_rng(seed)
    features = train_x.shape[1]
    params = {
        "W1": rng.standard_normal((features, HIDDEN)) * np.sqrt(2.0 / features),
        "b1": np.zeros(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, CLASSES)) * np.sqrt(2.0 / HIDDEN),
        "b2": np.zeros(CLASSES),
    }
    for _ in range(epochs):
        order = rng.permutation(len(train_x))
        for start in range(0, len(order), BATCH):
            batch = np.sort(order[start : start + BATCH])
            x = np.asarray(train_x[batch], dtype=np.float64)
            hidden, cache1 = dense_fwd(x, params["W1"], params["b1"])
            active, cache_relu = relu_fwd(hidden)
            logits, cache2 = dense_fwd(active, params["W2"], params["b2"])
            _, dlogits = loss_fn(logits, np.asarray(train_y[batch], dtype=np.int64))
            dactive, dW2, db2 = dense_bwd(dlogits, cache2)
            dhidden = relu_bwd(dactive, cache_relu)
            _, dW1, db1 = dense_bwd(dhidden, cache1)
            for name, grad in (("W1", dW1), ("b1", db1), ("W2", dW2), ("b2", db2)):
                params[name] = params[name] - LEARNING_RATE * np.asarray(grad, dtype=np.float64)
    return params


def predict(functions: Mapping[str, Callable], params: dict, test_x: np.ndarray) -> np.ndarray:
    dense_fwd, relu_fwd = functions["dense_forward"], functions["relu_forward"]
    labels = []
    for start in range(0, len(test_x), 1000):
        x = np.asarray(test_x[start : start + 1000], dtype=np.float64)
        hidden, _ = dense_fwd(x, params["W1"], params["b1"])
        active, _ = relu_fwd(hidden)
        logits, _ = dense_fwd(active, params["W2"], params["b2"])
        labels.append(np.argmax(np.nan_to_num(np.asarray(logits, dtype=np.float64)), axis=1))
    return np.concatenate(labels).astype(np.int64)
