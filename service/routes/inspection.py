"""Looking inside: the gradients of any batch, those of the last training step, and the
finite-difference check that proves them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from model import compute_gradients, gradient_check
from service.deps import EncodingDep, MetaDep, NetworkDep, SettingsDep, StoreDep
from service.errors import Invalid, NotFound
from service.limits import check_batch, finite_answers
from service.matrices import encode_matrix
from service.openapi import problems
from service.plumbing import OrjsonRoute
from service.responses import ORJSONResponse, versioned
from service.schemas import (
    GradientCheckRequest,
    GradientCheckResponse,
    GradientsRequest,
    GradientsResponse,
    LastGradientsResponse,
)

router = APIRouter(route_class=OrjsonRoute, tags=["inspection"])

_INTERMEDIATE = frozenset({"Z", "A", "dZ", "dA"})


@router.post(
    "/networks/{network_id}/gradients",
    response_model=GradientsResponse,
    summary="Forward and backward on a batch",
    description=(
        "Runs forward propagation and backpropagation on the batch without updating "
        "anything, and answers the cost and, per layer l, what `include` asks for: `Z` = "
        "Z[l], `A` = A[l], `dZ` = dZ[l], `dA` = dA[l] (per-example gradients, not divided by "
        "m), `dW` = dW[l] and `db` = db[l] (averaged over the batch, with L2)."
    ),
    responses=problems(400, 404, 413, 422),
)
def batch_gradients(
    body: GradientsRequest,
    record: NetworkDep,
    settings: SettingsDep,
    encoding: EncodingDep = "json",
) -> ORJSONResponse:
    check_batch(record.network.spec, body.X.shape[1], settings)
    include = list(dict.fromkeys(body.include))
    with finite_answers() as check:
        cost, cache, grads = compute_gradients(
            record.network, body.X, body.Y, keep_intermediate=bool(_INTERMEDIATE & set(include))
        )
        per_layer: dict[str, list[Any]] = {"dW": grads.dW, "db": grads.db}
        if grads.dZ is not None and grads.dA is not None:
            per_layer.update(Z=cache.Z, A=cache.A[1:], dZ=grads.dZ, dA=grads.dA)
        check(cost, *(array for name in include for array in per_layer[name]))
    layers = [
        {"layer": l, **{name: encode_matrix(per_layer[name][l - 1], encoding) for name in include}}
        for l in range(1, record.network.spec.L + 1)
    ]
    return versioned(
        {"version": record.meta.version, "cost": cost, "layers": layers}, record.meta.version
    )


@router.get(
    "/networks/{network_id}/gradients",
    response_model=LastGradientsResponse,
    summary="Gradients of the last training step",
    description=(
        "dW[l] and db[l] exactly as the last training step computed them (on its batch, "
        "before its update), with that step's number and cost. 404 before any training."
    ),
    responses=problems(404, 422),
)
def last_gradients(
    meta: MetaDep, store: StoreDep, encoding: EncodingDep = "json"
) -> ORJSONResponse:
    last = store.last_gradients(meta.id)
    if last is None:
        raise NotFound(
            f"Network {meta.id!r} has not been trained yet, so it has no last step; "
            "POST /networks/{id}/train first, or POST /networks/{id}/gradients for any batch."
        )
    layers = [
        {"layer": l, "dW": encode_matrix(dW, encoding), "db": encode_matrix(db, encoding)}
        for l, (dW, db) in enumerate(zip(last.dW, last.db, strict=True), start=1)
    ]
    body = {"version": last.version, "step": last.step, "cost": last.cost, "layers": layers}
    return versioned(body, meta.version)


@router.post(
    "/networks/{network_id}/gradient-check",
    response_model=GradientCheckResponse,
    summary="Check backpropagation against finite differences",
    description=(
        "Perturbs every parameter by ±epsilon and compares the two-sided difference quotient "
        "with backpropagation's gradient: `difference = ||grad - gradapprox|| / (||grad|| + "
        "||gradapprox||)`, computed in float64. The course's threshold is 2e-7. Refused "
        "above the configured parameter count."
    ),
    responses=problems(400, 404, 413, 422),
)
def check_gradients(
    body: GradientCheckRequest, record: NetworkDep, settings: SettingsDep
) -> ORJSONResponse:
    check_batch(record.network.spec, body.X.shape[1], settings)
    count = record.network.spec.parameter_count
    if count > settings.max_gradcheck_parameters:
        raise Invalid(
            f"A gradient check perturbs every parameter; this network has {count}, more than "
            f"the limit of {settings.max_gradcheck_parameters}. Check a smaller network."
        )
    with finite_answers() as check:
        result = gradient_check(record.network, body.X, body.Y, epsilon=body.epsilon)
        check(result.difference, result.layers)
    return versioned(
        {
            "difference": result.difference,
            "threshold": result.threshold,
            "passed": result.passed,
            "layers": [
                {"layer": l, "dW_difference": dW_diff, "db_difference": db_diff}
                for l, (dW_diff, db_diff) in enumerate(result.layers, start=1)
            ],
            "parameters_checked": result.parameters_checked,
        },
        record.meta.version,
    )
