"""Prediction and evaluation of a trained network."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.checks import check_X, check_Y
from model.network import Network, cost_of, forward_pass


def predict(network: Network, X: ArrayLike) -> tuple[NDArray[np.floating], NDArray[np.generic]]:
    """Forward propagation and the predicted labels.

    Parameters
    ----------
    network : Network
    X : array_like (n_x, m)

    Returns
    -------
    A : ndarray (n_L, m)
        A[L], in the network's dtype.
    predictions : ndarray
        Sigmoid output: int64 0/1 per entry (A > 0.5), shape (n_L, m). Softmax output:
        int64 class indices (argmax of each column), shape (1, m). Otherwise a copy of A.
    """
    spec = network.spec
    A = forward_pass(spec, network.W, network.b, check_X(spec, X)).A[-1]
    output = spec.activations[-1]
    predictions: NDArray[np.generic]
    if output == "sigmoid":
        predictions = (A > 0.5).astype(np.int64)
    elif output == "softmax":
        predictions = np.argmax(A, axis=0).astype(np.int64).reshape(1, -1)
    else:
        predictions = A.copy()
    return A, predictions


def evaluate(network: Network, X: ArrayLike, Y: ArrayLike) -> tuple[float, float | None, int]:
    """Cost (with L2) and accuracy on a labelled batch.

    Returns
    -------
    cost : float
    accuracy : float or None
        Sigmoid output: the fraction of entries of (A > 0.5) equal to Y. Softmax: the
        fraction of columns whose argmax matches Y's. None for any other output.
    m : int
        Number of examples.
    """
    spec = network.spec
    X_checked = check_X(spec, X)
    m = int(X_checked.shape[1])
    Y_checked = check_Y(spec, Y, m)
    cache = forward_pass(spec, network.W, network.b, X_checked)
    A = cache.A[-1]
    cost = cost_of(spec, network.W, A, Y_checked, cache.Z[-1])
    output = spec.activations[-1]
    accuracy: float | None = None
    if output == "sigmoid":
        accuracy = float(np.mean((A > 0.5) == Y_checked))
    elif output == "softmax":
        accuracy = float(np.mean(np.argmax(A, axis=0) == np.argmax(Y_checked, axis=0)))
    return cost, accuracy, m
