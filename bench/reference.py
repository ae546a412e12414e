"""What model/ is measured against, in plain numpy: the course's own style of training step,
and the matrix products a step cannot avoid (the floor).

Examples are columns, as everywhere in this project: X is (n_x, m), W[l] is (n_l, n_{l-1}).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


@dataclass(frozen=True)
class Case:
    """One benchmark network and batch: layer sizes, hidden activation, output, dtype, m,
    and its optimizer."""

    dims: tuple[int, ...]
    m: int
    hidden: str  # relu | tanh
    output: str  # sigmoid | softmax
    dtype: str
    learning_rate: float = 0.01
    optimizer: str = "gd"  # gd | adam (the course's reference step is gd)

    @property
    def label(self) -> str:
        return f"{list(self.dims)} m={self.m} {self.dtype}"


def make_batch(case: Case, seed: int = 0) -> tuple[Array, Array]:
    """X (n_x, m) in [0, 1) like pixels, and labels: 0/1 rows or one-hot columns."""
    rng = np.random.RandomState(seed)
    X = rng.rand(case.dims[0], case.m).astype(case.dtype)
    n_L = case.dims[-1]
    if case.output == "softmax":
        Y = np.zeros((n_L, case.m), case.dtype)
        Y[rng.randint(0, n_L, case.m), np.arange(case.m)] = 1.0
    else:
        Y = (rng.rand(n_L, case.m) > 0.5).astype(case.dtype)
    return X, Y


def initial_parameters(case: Case, seed: int = 1) -> tuple[list[Array], list[Array]]:
    """He-scaled normal weights and zero biases, as model/ makes them for ``he``."""
    rng = np.random.RandomState(seed)
    W, b = [], []
    for n_prev, n in zip(case.dims[:-1], case.dims[1:], strict=True):
        W.append((rng.randn(n, n_prev) * np.sqrt(2.0 / n_prev)).astype(case.dtype))
        b.append(np.zeros((n, 1), case.dtype))
    return W, b


def course_step(case: Case, X: Array, Y: Array) -> Callable[[], float]:
    """One full-batch gradient-descent step written as the course writes it: a dict of
    parameters, caches of (A_prev, W, b, Z), relu_backward by boolean indexing, dA_prev for
    every layer (the first included), and a new array for every intermediate."""
    W, b = initial_parameters(case)
    params = {}
    for l, (W_l, b_l) in enumerate(zip(W, b, strict=True), start=1):
        params[f"W{l}"], params[f"b{l}"] = W_l, b_l
    L, m, lr = len(W), X.shape[1], case.learning_rate

    def g(name: str, Z: Array) -> Array:
        if name == "relu":
            return np.maximum(0, Z)
        if name == "tanh":
            return np.tanh(Z)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-Z))
        e = np.exp(Z - np.max(Z, axis=0, keepdims=True))
        softmax: Array = e / np.sum(e, axis=0, keepdims=True)
        return softmax

    def step() -> float:
        caches = []
        A = X
        for l in range(1, L + 1):
            A_prev = A
            Z = np.dot(params[f"W{l}"], A_prev) + params[f"b{l}"]
            A = g(case.hidden if l < L else case.output, Z)
            caches.append((A_prev, Z, A))
        AL = A
        if case.output == "sigmoid":
            cost = -1 / m * np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL))
            dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
            dZ = dAL * AL * (1 - AL)
        else:
            cost = -1 / m * np.sum(Y * np.log(AL))
            dZ = AL - Y
        grads = {}
        dA = dZ  # replaced by W^T dZ of the layer above before any use
        for l in range(L, 0, -1):
            A_prev, Z, A = caches[l - 1]
            if l < L:  # dA came from the layer above
                if case.hidden == "relu":
                    dZ = np.array(dA, copy=True)
                    dZ[Z <= 0] = 0
                else:
                    dZ = dA * (1 - np.power(A, 2))
            grads[f"dW{l}"] = 1 / m * np.dot(dZ, A_prev.T)
            grads[f"db{l}"] = 1 / m * np.sum(dZ, axis=1, keepdims=True)
            dA = np.dot(params[f"W{l}"].T, dZ)
        for l in range(1, L + 1):
            params[f"W{l}"] = params[f"W{l}"] - lr * grads[f"dW{l}"]
            params[f"b{l}"] = params[f"b{l}"] - lr * grads[f"db{l}"]
        return float(cost)

    return step


def products_only(case: Case, X: Array) -> Callable[[], None]:
    """The matrix products of one step, alone, into preallocated arrays: W[l] A[l-1] for
    every layer, dZ[l] A[l-1]^T for every layer and W[l]^T dZ[l] for layers 2..L."""
    W, _ = initial_parameters(case)
    m = X.shape[1]
    A = [X] + [np.empty((w.shape[0], m), case.dtype) for w in W]
    dZ = [np.full((w.shape[0], m), 1e-3, case.dtype) for w in W]
    dW = [np.empty_like(w) for w in W]
    dA = [np.empty((w.shape[1], m), case.dtype) for w in W]

    def products() -> None:
        for i, W_l in enumerate(W):
            np.dot(W_l, A[i], out=A[i + 1])
        for i, W_l in enumerate(W):
            np.dot(dZ[i], A[i].T, out=dW[i])
            if i > 0:
                np.dot(W_l.T, dZ[i], out=dA[i])

    return products
