"""Weight initializations: one seeded stream of standard normals, scaled per layer.

For l = 1..L in order, W[l] = scale(randn(n_l, n_{l-1})) drawn from ONE
``numpy.random.RandomState(seed)``, then cast to the network's dtype; every b[l] is 0.
The legacy ``RandomState`` (not ``numpy.random.default_rng``) is kept on purpose: it is
the generator behind the course's ``np.random.seed(1)``, so seed 1 with ``xavier`` is
bit-for-bit the course's ``initialize_parameters_deep``. It is a private object, never
numpy's global state (which every thread of a server shares).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

# scale(draw, n_prev, n_l) -> W, computed in float64 exactly as the course writes it:
# xavier DIVIDES by sqrt(n_prev), which does not round like multiplying by sqrt(1/n_prev).
SCALES: dict[str, Callable[[NDArray[np.float64], int, int], NDArray[np.float64]]] = {
    "he": lambda draw, n_prev, n_l: draw * np.sqrt(2.0 / n_prev),
    "xavier": lambda draw, n_prev, n_l: draw / np.sqrt(n_prev),
    "glorot": lambda draw, n_prev, n_l: draw * np.sqrt(2.0 / (n_prev + n_l)),
    "scaled_normal": lambda draw, n_prev, n_l: draw * 0.01,
    # Zeros still consume the stream (so every name draws the same numbers), and are
    # written as zeros rather than draw * 0, which would leave signed -0.0 entries.
    "zeros": lambda draw, n_prev, n_l: np.zeros_like(draw),
}
INITIALIZATION_NAMES: tuple[str, ...] = tuple(SCALES)


def initialize(
    layer_dims: Sequence[int], name: str, seed: int, dtype: np.dtype[np.floating]
) -> tuple[list[Array], list[Array]]:
    """Draw the initial parameters.

    Parameters
    ----------
    layer_dims : sequence of int
        [n_x, n_1, ..., n_L].
    name : str
        A key of :data:`SCALES` (validated by the spec).
    seed : int
        Seed of the private ``RandomState`` stream, 0 <= seed < 2**32.
    dtype : numpy dtype
        float64 or float32; the float64 draw is cast once at the end.

    Returns
    -------
    W : list of arrays, W[l-1] of shape (n_l, n_{l-1})
    b : list of arrays, b[l-1] of shape (n_l, 1), all zeros
    """
    rng = np.random.RandomState(seed)
    scale = SCALES[name]
    W: list[Array] = []
    b: list[Array] = []
    for n_prev, n_l in itertools.pairwise(layer_dims):
        W.append(scale(rng.randn(n_l, n_prev), n_prev, n_l).astype(dtype))
        b.append(np.zeros((n_l, 1), dtype=dtype))
    return W, b
