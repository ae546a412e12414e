"""Gradient checking: backpropagation against two-sided finite differences, both computed by
the functions that train (:mod:`model.propagation`).

Always in float64, on a float64 copy of the parameters, even for float32 networks (float32's
1e-7 rounding would swamp an epsilon of 1e-7), and without dropout: with random masks the
cost is not one function of the parameters (the course checks its gradients the same way).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.checks import check_X, check_Y
from model.network import Network
from model.propagation import Buffers, backward, cost, forward
from model.spec import check_float

Array = NDArray[np.floating]


@dataclasses.dataclass
class GradCheckResult:
    """How far backpropagation's gradient is from the numerical one.

    ``difference`` is ||grad - approx|| / (||grad|| + ||approx||) over all parameters (0 if
    both are 0), ``passed`` is ``difference < threshold``, and ``layers`` holds
    (dW_difference, db_difference) for layers l = 1..L by the same formula.
    """

    difference: float
    threshold: float
    passed: bool
    layers: list[tuple[float, float]]
    parameters_checked: int


def relative_difference(grad: Array, approx: Array) -> float:
    """||grad - approx|| / (||grad|| + ||approx||), and 0 when both are zero."""
    denominator = float(np.linalg.norm(grad) + np.linalg.norm(approx))
    return float(np.linalg.norm(grad - approx)) / denominator if denominator else 0.0


def gradient_check(
    network: Network,
    X: ArrayLike,
    Y: ArrayLike,
    epsilon: float = 1e-7,
    threshold: float = 2e-7,
    *,
    stop: Callable[[], object] = lambda: None,
) -> GradCheckResult:
    """Compare backpropagation with (J(theta + eps) - J(theta - eps)) / (2 eps), entry by entry.

    Parameters
    ----------
    network : Network, not modified
    X : array_like (n_x, m)
    Y : array_like (n_L, m), or (1, m) class indices for softmax
    epsilon : float, the perturbation (the course's 1e-7)
    threshold : float, ``passed`` is ``difference < threshold`` (the course's 2e-7)
    stop : called before each parameter is perturbed; it may raise to abandon the check
    """
    epsilon = check_float("epsilon", epsilon, 0.0, low_open=True, high_open=True)
    threshold = check_float("threshold", threshold, 0.0, low_open=True, high_open=True)
    spec = dataclasses.replace(network.spec, dtype="float64", dropout=None)
    X64 = check_X(spec, X)
    Y64 = check_Y(spec, Y, int(X64.shape[1]))
    net = Network(spec, network.theta.astype(np.float64), network.moments.astype(np.float64))
    # Sigmoid's e^-z may overflow, to the right limit (model.propagation says why).
    with np.errstate(over="ignore"):
        buf = Buffers(spec, int(X64.shape[1]))
        forward(net, X64, buf)
        flat = net.layout.flat(np.empty_like(net.theta))
        backward(net, X64, Y64, buf, flat, np.empty_like(net.theta))
        grad = flat.vector
        theta, approx = net.theta, np.empty_like(net.theta)  # theta is perturbed in place
        layer_of = net.layout.layer_of()
        for i in range(spec.L):
            # Perturbing layer i + 1 leaves A[1..i] as they are: propagate from there only.
            for k in np.flatnonzero(layer_of == i):
                stop()
                original = theta[k]
                theta[k] = original + epsilon
                forward(net, X64, buf, start=i)
                J_plus = cost(net, buf, Y64)
                theta[k] = original - epsilon
                forward(net, X64, buf, start=i)
                J_minus = cost(net, buf, Y64)
                theta[k] = original
                approx[k] = (J_plus - J_minus) / (2 * epsilon)
            forward(net, X64, buf, start=i)  # the unperturbed A[i + 1], for the layers after it
    dW, db = flat.W, flat.b
    dW_approx, db_approx = net.layout.views(approx)
    layers = [
        (relative_difference(dW[i], dW_approx[i]), relative_difference(db[i], db_approx[i]))
        for i in range(spec.L)
    ]
    difference = relative_difference(grad, approx)
    return GradCheckResult(difference, threshold, difference < threshold, layers, theta.size)
