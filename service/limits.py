"""The bounds every request is held to, from settings, each refused with a clear 422 before
anything is allocated: nothing a caller sends can make the process allocate gigabytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise

import numpy as np

from model import NetworkSpec
from service.errors import Invalid
from service.settings import Settings


def check_network_size(layer_dims: list[int], settings: Settings) -> None:
    layers = len(layer_dims) - 1
    if layers > settings.max_layers:
        raise Invalid(f"layer_dims asks for {layers} layers; the limit is {settings.max_layers}.")
    widest = max(layer_dims)
    if widest > settings.max_units:
        raise Invalid(
            f"layer_dims asks for a layer of {widest} units; the limit is {settings.max_units}."
        )
    count = sum(n * (n_prev + 1) for n_prev, n in pairwise(layer_dims))
    if count > settings.max_parameters:
        raise Invalid(
            f"layer_dims {layer_dims} makes {count} parameters; the limit is "
            f"{settings.max_parameters}."
        )


def check_batch(spec: NetworkSpec, m: int, settings: Settings) -> None:
    """A batch of ``m`` examples: its count, and the activations it would make (the cache
    holds Z[l] and A[l], n_l x m each, for every layer)."""
    if m > settings.max_examples:
        raise Invalid(f"The batch has {m} examples; the limit is {settings.max_examples}.")
    activations = m * sum(spec.layer_dims[1:])
    if activations > settings.max_activations:
        raise Invalid(
            f"{m} examples through layers of {list(spec.layer_dims[1:])} units make "
            f"{activations} activations; the limit is {settings.max_activations}. "
            "Send fewer examples per request."
        )


@contextmanager
def finite_answers() -> Iterator[Callable[..., None]]:
    """Run numpy work whose results go into an answer: overflow is not warned about but
    checked, and any non-finite result is a 422 (answers never carry NaN or Infinity)."""

    def check(*arrays: object) -> None:
        for array in arrays:
            if not np.isfinite(np.asarray(array)).all():
                raise Invalid(
                    "The computation overflowed to infinity or NaN on this batch; scale the "
                    "inputs down."
                )

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        yield check
