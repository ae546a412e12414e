"""The bounds every request is held to, one rule per kind of work, checked before anything is
allocated wherever such work is admitted (HTTP routes, V2, jobs). Each is a setting, and each
refusal is a 422 naming the bound and the value, so nothing a caller sends can make the
process allocate gigabytes or compute for hours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise

import numpy as np

from model import NetworkSpec, TrainOptions
from service.core.errors import Invalid
from service.core.settings import Settings


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
    """A batch of ``m`` examples through the network: its count, and the activations it makes
    (a pass holds Z[l] and A[l], n_l x m each, for every layer)."""
    if m > settings.max_examples:
        raise Invalid(
            f"The batch has {m} examples; the limit is {settings.max_examples} per request."
        )
    activations = m * sum(spec.layer_dims[1:])
    if activations > settings.max_activations:
        raise Invalid(
            f"{m} examples through layers of {list(spec.layer_dims[1:])} units make "
            f"{activations} "
            f"activations; the limit is {settings.max_activations}. Send fewer examples per "
            "request."
        )


def check_training(
    spec: NetworkSpec, m: int, options: TrainOptions, settings: Settings, *, job: bool
) -> int:
    """A training run of ``options`` on ``m`` examples; return its number of steps. A call
    inside a request is bounded by its work (epochs x examples x parameters), a job by its
    steps; both by the batch rule."""
    check_batch(spec, m, settings)  # a run's final cost is one pass over the whole batch
    steps = options.steps_for(m)
    if job:
        if steps > settings.max_job_steps:
            raise Invalid(
                f"This job would take {steps} steps ({options.epochs} epochs of "
                f"{options.steps_per_epoch(m)}); the limit is {settings.max_job_steps} "
                "(BACKPROP_MAX_JOB_STEPS). Run fewer epochs, or larger batches."
            )
        return steps
    work = options.epochs * m * spec.parameter_count
    if work > settings.max_train_work:
        raise Invalid(
            f"epochs x examples x parameters = {options.epochs} x {m} x {spec.parameter_count} = "
            f"{work} is more than one synchronous call may run ({settings.max_train_work}); start "
            "a job (POST /networks/{id}/jobs) instead."
        )
    return steps


def check_gradient_check(spec: NetworkSpec, m: int, settings: Settings) -> None:
    """A gradient check runs two forward passes per parameter: its work is parameters^2 x m."""
    check_batch(spec, m, settings)
    count = spec.parameter_count
    if count > settings.max_gradcheck_parameters:
        raise Invalid(
            f"A gradient check perturbs every parameter; this network has {count}, more than the "
            f"limit of {settings.max_gradcheck_parameters}. Check a smaller network."
        )
    work = count * count * m
    if work > settings.max_gradcheck_work:
        raise Invalid(
            f"A gradient check of {count} parameters on {m} examples is {work} units of work "
            f"(parameters^2 x examples); the limit is {settings.max_gradcheck_work}. Check on "
            "fewer examples."
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
