"""A network's state: its spec, parameters, optimizer moments and step counters.

The parameters live in ONE flat vector ``theta`` laid out ``[W1, ..., WL, b1, ..., bL]``,
with ``W[l-1]`` and ``b[l-1]`` as C-contiguous views into it, and the optimizer's moments
in one ``(k, size)`` array shaped the same way (k = 0 for gd, 1 for momentum, 2 for Adam):
an update is a handful of whole-vector operations whatever the depth, the finiteness check
one dot product, and the stored form is these arrays' bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.checks import check_parameters
from model.errors import ModelError
from model.initializers import initialize
from model.spec import NetworkSpec

Array = NDArray[np.floating]

# The optimizer's moments, in the order of the rows of Network.moments.
MOMENTS: dict[str, tuple[str, ...]] = {"gd": (), "momentum": ("v",), "adam": ("v", "s")}


class Layout:
    """Where each layer's W and b sit in a flat vector of a spec's parameters."""

    def __init__(self, spec: NetworkSpec) -> None:
        pairs = list(itertools.pairwise(spec.layer_dims))
        self.W_shapes = [(n_l, n_prev) for n_prev, n_l in pairs]
        self.b_shapes = [(n_l, 1) for _, n_l in pairs]
        self.n_W = sum(r * c for r, c in self.W_shapes)
        self.size = self.n_W + sum(r for r, _ in self.b_shapes)

    def views(self, flat: Array) -> tuple[list[Array], list[Array]]:
        """W and b as views into ``flat`` (writes go through to it)."""
        W: list[Array] = []
        b: list[Array] = []
        start = 0
        for shapes, out in ((self.W_shapes, W), (self.b_shapes, b)):
            for rows, cols in shapes:
                out.append(flat[start : start + rows * cols].reshape(rows, cols))
                start += rows * cols
        return W, b

    def flat(self, vector: Array) -> Flat:
        return Flat(vector, *self.views(vector))

    def layer_of(self) -> NDArray[np.intp]:
        """For each entry of the flat vector, its layer's 0-based index."""
        sizes = [r * c for r, c in self.W_shapes] + [r for r, _ in self.b_shapes]
        layers = list(range(len(self.W_shapes))) * 2
        return np.repeat(np.array(layers, dtype=np.intp), sizes)


@dataclass(eq=False)
class Flat:
    """A vector in the layout of a spec's parameters (a gradient, say), with per-layer views."""

    vector: Array
    W: list[Array]
    b: list[Array]


@dataclass(eq=False)
class Network:
    """A network's state.

    Attributes
    ----------
    spec : NetworkSpec
    theta : (size,) array, the parameters [W1, ..., WL, b1, ..., bL] in the spec's dtype
    moments : (k, size) array, the optimizer's moments by :data:`MOMENTS` (v, then s)
    optimizer_t : int
        Updates absorbed into the moments since they were last zero (Adam's t before its
        next step). Equals ``steps_trained`` unless the parameters were replaced.
    steps_trained : int
        Updates made since creation (the step number of the last update).
    W : list of L views, W[l-1] of shape (n_l, n_{l-1})
    b : list of L views, b[l-1] of shape (n_l, 1)
    """

    spec: NetworkSpec
    theta: Array
    moments: Array
    optimizer_t: int = 0
    steps_trained: int = 0
    layout: Layout = field(init=False, repr=False)
    W: list[Array] = field(init=False, repr=False)
    b: list[Array] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.layout = Layout(self.spec)
        expected = (len(MOMENTS[self.spec.optimizer.name]), self.layout.size)
        if self.theta.shape != expected[1:] or self.moments.shape != expected:
            raise ModelError(
                f"A {self.spec.optimizer.name} network of {self.layout.size} parameters needs "
                f"theta {expected[1:]} and moments {expected}; received {self.theta.shape} "
                f"and {self.moments.shape}."
            )
        self.W, self.b = self.layout.views(self.theta)

    @property
    def moment_views(self) -> dict[str, tuple[list[Array], list[Array]]]:
        """Each moment's (W, b) views, by name (v, s)."""
        names = MOMENTS[self.spec.optimizer.name]
        return {name: self.layout.views(row) for name, row in zip(names, self.moments, strict=True)}

    def copy(self) -> Network:
        """A deep copy: no array is shared with this network."""
        return Network(
            self.spec, self.theta.copy(), self.moments.copy(), self.optimizer_t, self.steps_trained
        )

    def empty_like(self) -> Network:
        """A network of the same spec whose arrays are uninitialized (a buffer to write into)."""
        return Network(self.spec, np.empty_like(self.theta), np.empty_like(self.moments))

    def copy_into(self, other: Network) -> Network:
        """Write this network's state into ``other`` (same spec) and return it."""
        np.copyto(other.theta, self.theta)
        np.copyto(other.moments, self.moments)
        other.optimizer_t, other.steps_trained = self.optimizer_t, self.steps_trained
        return other


def create_network(
    spec: NetworkSpec,
    W: Sequence[ArrayLike] | None = None,
    b: Sequence[ArrayLike] | None = None,
) -> Network:
    """A new network: initialized from ``spec.seed``, or from the given W and b (validated
    against ``layer_dims``, copied and cast to the spec's dtype). The moments start at zero."""
    if (W is None) != (b is None):
        raise ModelError("Give both W and b, or neither (to initialize from the seed).")
    if W is None or b is None:
        W_list, b_list = initialize(spec.layer_dims, spec.initialization, spec.seed, spec.np_dtype)
    else:
        W_list, b_list = check_parameters(spec, W, b)
    theta = np.concatenate([w.ravel() for w in W_list] + [x.ravel() for x in b_list])
    moments = np.zeros((len(MOMENTS[spec.optimizer.name]), theta.size), spec.np_dtype)
    return Network(spec, theta.astype(spec.np_dtype, copy=False), moments)


def replace_parameters(network: Network, W: Sequence[ArrayLike], b: Sequence[ArrayLike]) -> Network:
    """A new network with the given (validated) parameters and zero moments; ``steps_trained``
    is kept, ``optimizer_t`` restarts at 0."""
    new = create_network(network.spec, W, b)
    new.steps_trained = network.steps_trained
    return new
