"""The network: its parameters, and the plain forward propagation, cost and backpropagation.

Indexing: Python lists are 0-based and layers are 1-based, so list entry ``i`` belongs
to layer l = i + 1 (``W[0]`` is the course's W1) -- except ``Cache.A``, which also
holds A[0] = X, so ``Cache.A[l]`` is A[l] exactly.

These functions are the simple, obviously-correct path (they allocate freely); the
Trainer's in-place step in :mod:`model.fast` must agree with them, which the tests check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.activations import ACTIVATIONS
from model.checks import check_parameters, check_X, check_Y
from model.errors import ModelError
from model.initializers import initialize
from model.losses import LOSSES
from model.optimizers import apply_update, initial_state
from model.spec import NetworkSpec

Array = NDArray[np.floating]

__all__ = [
    "Cache",
    "Gradients",
    "Network",
    "backward",
    "check_X",
    "check_Y",
    "compute_cost",
    "compute_gradients",
    "create_network",
    "forward",
    "replace_parameters",
    "update_parameters",
]


@dataclass(eq=False)
class Network:
    """A network's spec, parameters and training state.

    Attributes
    ----------
    spec : NetworkSpec
    W : list of L arrays, W[l-1] of shape (n_l, n_{l-1})
    b : list of L arrays, b[l-1] of shape (n_l, 1)
    optimizer_state : dict of lists of arrays
        ``{}`` for gd, ``{"vW", "vb"}`` for momentum, plus ``{"sW", "sb"}`` for Adam;
        shaped like W and b, in the network's dtype.
    steps_trained : int
        Updates made since creation (the step number of the last update).
    optimizer_t : int
        Updates absorbed into ``optimizer_state`` since it was last reset to zeros
        (Adam's t before its next step). Equals ``steps_trained`` unless the parameters
        were replaced.
    """

    spec: NetworkSpec
    W: list[Array]
    b: list[Array]
    optimizer_state: dict[str, list[Array]] = field(default_factory=dict)
    steps_trained: int = 0
    optimizer_t: int = 0

    def copy(self) -> Network:
        """A deep copy: no array is shared with this network."""
        return Network(
            spec=self.spec,
            W=[w.copy() for w in self.W],
            b=[x.copy() for x in self.b],
            optimizer_state={k: [a.copy() for a in v] for k, v in self.optimizer_state.items()},
            steps_trained=self.steps_trained,
            optimizer_t=self.optimizer_t,
        )


@dataclass(eq=False)
class Cache:
    """What backpropagation needs from forward propagation.

    Attributes
    ----------
    Z : list of L arrays; Z[l-1] is Z[l] of layer l, shape (n_l, m)
    A : list of L + 1 arrays; A[0] = X (n_x, m) and A[l] of layer l is (n_l, m)
    """

    Z: list[Array]
    A: list[Array]


@dataclass(eq=False)
class Gradients:
    """Gradients of the cost (dW, db) and, on request, per-example dZ and dA.

    Attributes
    ----------
    dW : list of L arrays, dW[l-1] of shape (n_l, n_{l-1}), including the L2 term
    db : list of L arrays, db[l-1] of shape (n_l, 1)
    dZ : list of L arrays or None; dZ[l-1] is dZ[l], shape (n_l, m), not divided by m
    dA : list of L arrays or None; dA[l-1] is dA[l] = dLoss/dA[l], shape (n_l, m).
        dA[0] (the gradient with respect to X) is never computed.
    """

    dW: list[Array]
    db: list[Array]
    dZ: list[Array] | None = None
    dA: list[Array] | None = None


def create_network(
    spec: NetworkSpec,
    W: Sequence[ArrayLike] | None = None,
    b: Sequence[ArrayLike] | None = None,
) -> Network:
    """A new network: initialized from ``spec.seed``, or from the given W and b.

    Given parameters are validated (shapes against ``layer_dims``, finiteness), copied
    and cast to the spec's dtype. The optimizer state starts at zeros.
    """
    if (W is None) != (b is None):
        raise ModelError("Give both W and b, or neither (to initialize from the seed).")
    if W is None or b is None:
        W_list, b_list = initialize(spec.layer_dims, spec.initialization, spec.seed, spec.np_dtype)
    else:
        W_list, b_list = check_parameters(spec, W, b)
    state = initial_state(spec.optimizer.name, W_list, b_list)
    return Network(spec=spec, W=W_list, b=b_list, optimizer_state=state)


def replace_parameters(network: Network, W: Sequence[ArrayLike], b: Sequence[ArrayLike]) -> Network:
    """A new network with the given (validated) parameters and a fresh optimizer state.

    ``steps_trained`` is kept; ``optimizer_t`` restarts at 0 with the zeroed moments.
    """
    new = create_network(network.spec, W, b)
    new.steps_trained = network.steps_trained
    return new


def forward_pass(spec: NetworkSpec, W: Sequence[Array], b: Sequence[Array], X: Array) -> Cache:
    """Forward propagation without validation: Z[l] = W[l] A[l-1] + b[l], A[l] = g[l](Z[l])."""
    Z: list[Array] = []
    A: list[Array] = [X]
    for W_l, b_l, name in zip(W, b, spec.activations, strict=True):
        Z_l = W_l @ A[-1] + b_l
        Z.append(Z_l)
        A.append(ACTIVATIONS[name].forward(Z_l, None))
    return Cache(Z=Z, A=A)


def cost_of(spec: NetworkSpec, W: Sequence[Array], AL: Array, Y: Array, ZL: Array | None) -> float:
    """The cost, with L2, without validation; from ZL where that is the stable form."""
    loss = LOSSES[spec.loss]
    m = int(Y.shape[1])
    if ZL is not None and loss.logit_cost and spec.activations[-1] == loss.canonical_activation:
        total = loss.logit_cost(ZL, Y)
    else:
        total = loss.cost(AL, Y)
    cost = total / m
    if spec.l2_lambda:
        cost += spec.l2_lambda / (2 * m) * sum(float(np.vdot(W_l, W_l)) for W_l in W)
    return cost


def output_dA_dZ(spec: NetworkSpec, AL: Array, ZL: Array, Y: Array) -> tuple[Array, Array]:
    """dA[L] and dZ[L], per example, of shape (n_L, m).

    For the canonical pairs (sigmoid + binary cross-entropy, softmax + categorical
    cross-entropy, linear + mean squared error) dZ[L] = A[L] - Y: the derivatives of
    the loss and of the activation cancel, and this form stays exact where A[L]
    saturates at 0 or 1. Any other pair takes the general chain rule
    dZ[L] = dA[L] * g'(Z[L]) (for softmax, the Jacobian-vector product).
    """
    loss = LOSSES[spec.loss]
    output = spec.activations[-1]
    dAL = loss.gradient(AL, Y)
    if output == loss.canonical_activation:
        return dAL, AL - Y
    return dAL, ACTIVATIONS[output].backward(dAL, ZL, AL, None)


def backward_pass(
    spec: NetworkSpec, W: Sequence[Array], cache: Cache, Y: Array, *, keep_intermediate: bool
) -> Gradients:
    """Backpropagation without validation, exactly as the notation in API.md writes it."""
    L, m, lambd = spec.L, Y.shape[1], spec.l2_lambda
    # Built from layer L down to layer 1, reversed at the end.
    dW: list[Array] = []
    db: list[Array] = []
    dZs: list[Array] = []
    dAs: list[Array] = []
    dA, dZ = output_dA_dZ(spec, cache.A[L], cache.Z[L - 1], Y)
    for i in reversed(range(L)):  # layer l = i + 1
        dZs.append(dZ)
        dAs.append(dA)
        A_prev = cache.A[i]
        dW.append((dZ @ A_prev.T) / m + (lambd / m) * W[i])
        db.append(np.sum(dZ, axis=1, keepdims=True) / m)
        if i > 0:  # dA[0], the gradient with respect to X, is never needed
            dA = W[i].T @ dZ
            dZ = ACTIVATIONS[spec.activations[i - 1]].backward(dA, cache.Z[i - 1], cache.A[i], None)
    if keep_intermediate:
        return Gradients(dW=dW[::-1], db=db[::-1], dZ=dZs[::-1], dA=dAs[::-1])
    return Gradients(dW=dW[::-1], db=db[::-1])


def _check_cache(network: Network, cache: Cache) -> int:
    spec = network.spec
    if len(cache.A) != spec.L + 1 or len(cache.Z) != spec.L:
        raise ModelError(
            f"The cache must hold L + 1 = {spec.L + 1} activations A and L = {spec.L} "
            f"pre-activations Z; received {len(cache.A)} and {len(cache.Z)}."
        )
    X = check_X(spec, cache.A[0])
    return int(X.shape[1])


def forward(network: Network, X: ArrayLike) -> Cache:
    """Validate X (n_x, m) and propagate it forward, keeping Z[l] and A[l] for every layer."""
    X = check_X(network.spec, X)
    return forward_pass(network.spec, network.W, network.b, X)


def compute_cost(
    network: Network, AL: ArrayLike, Y: ArrayLike, *, ZL: ArrayLike | None = None
) -> float:
    """The cost of predictions AL (n_L, m) against labels Y, plus the L2 term.

    Pass ``ZL`` (the output layer's Z, shape (n_L, m)) to get the stable cost from
    logits for sigmoid + binary cross-entropy and softmax + categorical cross-entropy;
    without it, A[L] is clipped to [eps, 1 - eps] before its logs are taken.
    """
    spec = network.spec
    AL_array = np.asarray(AL, dtype=spec.np_dtype)
    if AL_array.ndim != 2 or AL_array.shape[0] != spec.n_L or AL_array.shape[1] == 0:
        raise ModelError(
            f"AL must have shape (n_L, m) = ({spec.n_L}, m); received {AL_array.shape}."
        )
    Y_array = check_Y(spec, Y, AL_array.shape[1])
    ZL_array = None if ZL is None else np.asarray(ZL, dtype=spec.np_dtype)
    if ZL_array is not None and ZL_array.shape != AL_array.shape:
        raise ModelError(
            f"ZL must have the shape of AL {AL_array.shape}; received {ZL_array.shape}."
        )
    return cost_of(spec, network.W, AL_array, Y_array, ZL_array)


def backward(
    network: Network, cache: Cache, Y: ArrayLike, *, keep_intermediate: bool = False
) -> Gradients:
    """Backpropagate from ``cache`` (as :func:`forward` returns it) against labels Y.

    Returns dW and db (with the L2 term); with ``keep_intermediate`` also dZ[l] and
    dA[l] for every layer l = 1..L.
    """
    m = _check_cache(network, cache)
    Y_checked = check_Y(network.spec, Y, m)
    return backward_pass(
        network.spec, network.W, cache, Y_checked, keep_intermediate=keep_intermediate
    )


def compute_gradients(
    network: Network, X: ArrayLike, Y: ArrayLike, *, keep_intermediate: bool = False
) -> tuple[float, Cache, Gradients]:
    """Validate X and Y, then forward, cost and backward on the whole batch.

    Returns
    -------
    cost : float
    cache : Cache
    gradients : Gradients
    """
    spec = network.spec
    X_checked = check_X(spec, X)
    Y_checked = check_Y(spec, Y, X_checked.shape[1])
    cache = forward_pass(spec, network.W, network.b, X_checked)
    cost = cost_of(spec, network.W, cache.A[-1], Y_checked, cache.Z[-1])
    grads = backward_pass(spec, network.W, cache, Y_checked, keep_intermediate=keep_intermediate)
    return cost, cache, grads


def update_parameters(
    network: Network, gradients: Gradients, learning_rate: float | None = None
) -> Network:
    """A new network one optimizer step further (the plain path; inputs untouched).

    ``learning_rate`` overrides the spec's for this step.
    """
    spec = network.spec
    lr = spec.optimizer.learning_rate if learning_rate is None else learning_rate
    if not (math.isfinite(lr) and lr > 0):
        raise ModelError(f"learning_rate must be a finite number > 0; received {lr!r}.")
    W, b, state, t = apply_update(
        spec.optimizer,
        lr,
        network.W,
        network.b,
        gradients.dW,
        gradients.db,
        network.optimizer_state,
        network.optimizer_t,
    )
    return Network(spec, W, b, state, network.steps_trained + 1, t)
