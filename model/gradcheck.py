"""Gradient checking: backpropagation against two-sided finite differences.

Always done in float64, on a float64 copy of the network, even for float32 networks:
float32's 1e-7 rounding would swamp an epsilon of 1e-7.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.activations import ACTIVATIONS
from model.checks import check_X, check_Y
from model.network import Network, backward_pass, cost_of, forward_pass
from model.spec import check_float

Array = NDArray[np.floating]


@dataclasses.dataclass
class GradCheckResult:
    """How far backpropagation's gradient is from the numerical one.

    Attributes
    ----------
    difference : float
        ||grad - approx|| / (||grad|| + ||approx||) over all parameters (0 if both are 0).
    threshold : float
    passed : bool
        ``difference < threshold``.
    layers : list of (float, float)
        (dW_difference, db_difference) for layers l = 1..L, by the same formula.
    parameters_checked : int
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
    network: Network, X: ArrayLike, Y: ArrayLike, epsilon: float = 1e-7, threshold: float = 2e-7
) -> GradCheckResult:
    """Compare backpropagation with (J(theta + eps) - J(theta - eps)) / (2 eps), entry by entry.

    Parameters
    ----------
    network : Network
        Not modified.
    X : array_like (n_x, m)
    Y : array_like (n_L, m), or (1, m) class indices for softmax
    epsilon : float
        The perturbation, > 0 (the course's 1e-7).
    threshold : float
        ``passed`` is ``difference < threshold`` (the course's 2e-7).

    Returns
    -------
    GradCheckResult
    """
    epsilon = check_float("epsilon", epsilon, 0.0, low_open=True, high_open=True)
    threshold = check_float("threshold", threshold, 0.0, low_open=True, high_open=True)
    spec = dataclasses.replace(network.spec, dtype="float64")
    X64 = check_X(spec, X)
    Y64 = check_Y(spec, Y, int(X64.shape[1]))
    W = [w.astype(np.float64) for w in network.W]  # private copies, perturbed in place
    b = [x.astype(np.float64) for x in network.b]
    base = forward_pass(spec, W, b, X64)
    grads = backward_pass(spec, W, base, Y64, keep_intermediate=False)

    def cost_from(i: int) -> float:
        # Perturbing layer i + 1 leaves A[0..i] unchanged: propagate from A[i] only.
        A, Z = base.A[i], base.Z[i]
        for j in range(i, spec.L):
            Z = W[j] @ A + b[j]
            A = ACTIVATIONS[spec.activations[j]].forward(Z, None)
        return cost_of(spec, W, A, Y64, Z)

    layers: list[tuple[float, float]] = []
    all_grads: list[Array] = []
    all_approx: list[Array] = []
    for i in range(spec.L):
        pair: list[float] = []
        for theta, grad in ((W[i], grads.dW[i]), (b[i], grads.db[i])):
            approx = np.empty_like(theta)
            for index in np.ndindex(theta.shape):
                original = theta[index]
                theta[index] = original + epsilon
                J_plus = cost_from(i)
                theta[index] = original - epsilon
                J_minus = cost_from(i)
                theta[index] = original
                approx[index] = (J_plus - J_minus) / (2 * epsilon)
            pair.append(relative_difference(grad, approx))
            all_grads.append(grad.ravel())
            all_approx.append(approx.ravel())
        layers.append((pair[0], pair[1]))
    difference = relative_difference(np.concatenate(all_grads), np.concatenate(all_approx))
    return GradCheckResult(
        difference=difference,
        threshold=threshold,
        passed=difference < threshold,
        layers=layers,
        parameters_checked=spec.parameter_count,
    )
