"""The same training step in PyTorch (eager, CPU) and scikit-learn, when they are installed
(``pip install -e '.[bench]'``). Both take examples as rows, so the batch is transposed
once, outside the timed step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.reference import Array, Case, initial_parameters


def torch_step(case: Case, X: Array, Y: Array, threads: int) -> Callable[[], float] | None:
    """One SGD step of an nn.Sequential with the fused logit losses (BCEWithLogitsLoss,
    CrossEntropyLoss), the cost read back as a Python float as model/ does."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    dtype = torch.float32 if case.dtype == "float32" else torch.float64
    W, b = initial_parameters(case)
    layers: list[Any] = []
    for i, (W_l, b_l) in enumerate(zip(W, b, strict=True)):
        linear = torch.nn.Linear(W_l.shape[1], W_l.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W_l))
            linear.bias.copy_(torch.from_numpy(b_l[:, 0]))
        layers.append(linear)
        if i < len(W) - 1:
            layers.append(torch.nn.ReLU() if case.hidden == "relu" else torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    inputs = torch.from_numpy(np.ascontiguousarray(X.T))
    loss_fn: Any
    if case.output == "softmax":
        loss_fn = torch.nn.CrossEntropyLoss()
        target = torch.from_numpy(np.argmax(Y, axis=0))
    else:
        loss_fn = torch.nn.BCEWithLogitsLoss()
        target = torch.from_numpy(np.ascontiguousarray(Y.T))
    optimizer = torch.optim.SGD(model.parameters(), lr=case.learning_rate)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), target)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step


def torch_products(case: Case, X: Array, threads: int) -> Callable[[], None] | None:
    """The products of :func:`torch_step` alone, as :func:`bench.reference.products_only`
    times them for numpy: examples are rows, so A[l] = A[l-1] W[l]^T, dW[l] = dZ[l]^T
    A[l-1] and, for layers 2..L, dA[l-1] = dZ[l] W[l]. Beside numpy's products this
    compares the two BLAS libraries (PyTorch's wheels bring their own)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    W = [torch.from_numpy(W_l) for W_l in initial_parameters(case)[0]]
    m = X.shape[1]
    dtype = W[0].dtype
    A = [torch.from_numpy(np.ascontiguousarray(X.T))]
    A += [torch.empty((m, w.shape[0]), dtype=dtype) for w in W]
    dZ = [torch.full((m, w.shape[0]), 1e-3, dtype=dtype) for w in W]
    dW = [torch.empty_like(w) for w in W]
    dA = [torch.empty((m, w.shape[1]), dtype=dtype) for w in W]

    def products() -> None:
        for i, W_l in enumerate(W):
            torch.mm(A[i], W_l.T, out=A[i + 1])
        for i, W_l in enumerate(W):
            torch.mm(dZ[i].T, A[i], out=dW[i])
            if i > 0:
                torch.mm(dZ[i], W_l, out=dA[i])

    return products


def sklearn_step(case: Case, X: Array, Y: Array) -> Callable[[], float] | None:
    """One ``partial_fit`` of an MLPClassifier with plain SGD on the whole batch."""
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    classifier = MLPClassifier(
        hidden_layer_sizes=case.dims[1:-1],
        activation="relu" if case.hidden == "relu" else "tanh",
        solver="sgd",
        alpha=0.0,
        batch_size=case.m,
        learning_rate_init=case.learning_rate,
        momentum=0.0,
        nesterovs_momentum=False,
        shuffle=False,
        random_state=0,
    )
    inputs = np.ascontiguousarray(X.T)
    if case.output == "softmax":
        labels = np.argmax(Y, axis=0)
        classes = np.arange(case.dims[-1])
    else:
        labels = Y[0].astype(np.int64)
        classes = np.array([0, 1])
    classifier.partial_fit(inputs, labels, classes=classes)

    def step() -> float:
        classifier.partial_fit(inputs, labels)
        return float(classifier.loss_)

    return step
