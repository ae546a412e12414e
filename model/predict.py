"""Prediction and evaluation of a trained network (forward propagation, never dropout)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.checks import check_X, check_Y
from model.network import Network
from model.propagation import Buffers, cost, forward


def predict(network: Network, X: ArrayLike) -> tuple[NDArray[np.floating], NDArray[np.generic]]:
    """A[L] (n_L, m) in the network's dtype for X (n_x, m), and the predicted labels.

    Predictions: for a sigmoid output int64 0/1 per entry (A > 0.5), shape (n_L, m); for
    softmax int64 class indices (the argmax of each column), shape (1, m); otherwise A.
    """
    spec = network.spec
    X_checked = check_X(spec, X)
    with np.errstate(over="ignore"):  # sigmoid's e^-z (model.propagation says why)
        A = forward(network, X_checked, Buffers(spec, int(X_checked.shape[1]), backward=False))
    output = spec.activations[-1]
    if output == "sigmoid":
        return A, (A > 0.5).astype(np.int64)
    if output == "softmax":
        return A, np.argmax(A, axis=0).astype(np.int64).reshape(1, -1)
    return A, A


def evaluate(network: Network, X: ArrayLike, Y: ArrayLike) -> tuple[float, float | None, int]:
    """The cost (with L2) on a labelled batch, the accuracy (the fraction of entries of
    A > 0.5 equal to Y for sigmoid, of columns whose argmax matches for softmax; None for
    any other output) and the number of examples m."""
    spec = network.spec
    X_checked = check_X(spec, X)
    m = int(X_checked.shape[1])
    Y_checked = check_Y(spec, Y, m)
    buf = Buffers(spec, m, backward=False)
    with np.errstate(over="ignore"):  # sigmoid's e^-z (model.propagation says why)
        A = forward(network, X_checked, buf)
        J = cost(network, buf, Y_checked)
    output = spec.activations[-1]
    accuracy: float | None = None
    if output == "sigmoid":
        accuracy = float(np.mean((A > 0.5) == Y_checked))
    elif output == "softmax":
        accuracy = float(np.mean(np.argmax(A, axis=0) == np.argmax(Y_checked, axis=0)))
    return J, accuracy, m
