"""Looking inside: the matrices of a pass on any batch, the gradients of the last training
step, and the finite-difference check that proves them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from model import Layout, compute_gradients, gradient_check
from service.core.admission import check_batch, check_gradient_check, finite_answers
from service.core.capacity import Stop
from service.core.errors import NotFound
from service.core.http import JsonRoute, ORJSONResponse, versioned
from service.core.openapi import problems
from service.core.wire import encode_matrix
from service.deps import (
    EncodingDep,
    NetworkId,
    ServiceDep,
)
from service.inspection.schemas import (
    GradientCheckRequest,
    GradientCheckResponse,
    GradientsRequest,
    GradientsResponse,
    LastGradientsResponse,
)

router = APIRouter(route_class=JsonRoute, tags=["inspection"])

_INTERMEDIATE = frozenset({"Z", "A", "D", "dZ", "dA"})
NO_DROPOUT = (
    "This network has dropout; the check ran without it, as the course advises: with random "
    "masks the cost is not one function of the parameters, so differences cannot match."
)


@router.post(
    "/networks/{network_id}/gradients",
    response_model=GradientsResponse,
    summary="Forward and backward on a batch",
    description=(
        "Runs forward propagation and backpropagation on the batch without updating anything "
        "(no dropout unless `dropout_seed` is given), and answers the cost and, per layer l, what "
        "`include` asks for: `Z` = Z[l], `A` = A[l], `D` = the dropout mask (hidden layers), "
        "`dZ` = "
        "dZ[l], `dA` = dA[l] (per-example gradients, not divided by m), `dW` = dW[l] and `db` = "
        "db[l] (averaged over the batch, with L2). The same code trains: after a full-batch step "
        "without dropout, `GET .../gradients` equals this on the parameters before it, bit for bit."
    ),
    responses=problems(400, 404, 413, 415, 422, 503),
)
async def batch_gradients(
    network_id: NetworkId,
    body: GradientsRequest,
    service: ServiceDep,
    request: Request,
    encoding: EncodingDep = "json",
) -> Response:
    include = list(dict.fromkeys(body.include))

    def work(stop: Stop) -> Response:
        with service.warm.reading(network_id, service.owner) as record, finite_answers() as check:
            check_batch(record.meta.spec, body.X.shape[1], service.settings)
            grads = compute_gradients(
                record.network,
                body.X,
                body.Y,
                intermediate=bool(_INTERMEDIATE & set(include)),
                dropout_seed=body.dropout_seed,
            )
            per_layer: dict[str, list[Any]] = {"dW": grads.dW, "db": grads.db}
            for name in ("Z", "A", "dZ", "dA"):
                per_layer[name] = getattr(grads, name) or []
            per_layer["D"] = [*(grads.D or []), None] if grads.D else []
            check(grads.cost, *(a for name in include for a in per_layer[name] if a is not None))
            layers = [
                {
                    "layer": l,
                    **{
                        n: _matrix(per_layer[n], l, encoding)
                        for n in include
                        if _has(per_layer[n], l)
                    },
                }
                for l in range(1, record.meta.spec.L + 1)
            ]
            return versioned(
                {"version": record.meta.version, "cost": grads.cost, "layers": layers},
                record.meta.version,
            )

    return await service.heavy.run(work, request.receive)


def _has(arrays: list[Any], l: int) -> bool:
    return len(arrays) >= l and arrays[l - 1] is not None


def _matrix(arrays: list[Any], l: int, encoding: Any) -> Any:
    return encode_matrix(arrays[l - 1], encoding)


@router.get(
    "/networks/{network_id}/gradients",
    response_model=LastGradientsResponse,
    summary="Gradients of the last training step",
    description=(
        "dW[l] and db[l] exactly as the last training step computed them (on its batch, before "
        "its update), with that step's number and cost. 404 before any training."
    ),
    responses=problems(404, 422, 503),
)
def last_gradients(
    network_id: NetworkId, service: ServiceDep, encoding: EncodingDep = "json"
) -> ORJSONResponse:
    meta = service.store.get_meta(network_id, service.owner)
    last = service.store.last_gradients(meta.id)
    if last is None:
        raise NotFound(
            f"Network {meta.id!r} has not been trained yet, so it has no last step; POST "
            "/networks/{id}/train first, or POST /networks/{id}/gradients for any batch."
        )
    dW, db = Layout(meta.spec).views(last.grad)
    layers = [
        {"layer": l, "dW": encode_matrix(w, encoding), "db": encode_matrix(b, encoding)}
        for l, (w, b) in enumerate(zip(dW, db, strict=True), start=1)
    ]
    body = {"version": last.version, "step": last.step, "cost": last.cost, "layers": layers}
    return versioned(body, meta.version)


@router.post(
    "/networks/{network_id}/gradient-check",
    response_model=GradientCheckResponse,
    summary="Check backpropagation against finite differences",
    description=(
        "Perturbs every parameter by ±epsilon and compares the two-sided difference quotient "
        "with backpropagation's gradient, both computed by the code that trains: `difference = "
        "||grad - gradapprox|| / (||grad|| + ||gradapprox||)`, in float64, without dropout. The "
        "course's threshold is 2e-7. Refused above the configured parameters and work "
        "(parameters^2 x examples)."
    ),
    responses=problems(400, 404, 413, 415, 422, 503),
)
async def check_gradients(
    network_id: NetworkId,
    body: GradientCheckRequest,
    service: ServiceDep,
    request: Request,
) -> Response:
    def work(stop: Stop) -> Response:
        with service.warm.reading(network_id, service.owner) as record, finite_answers() as check:
            spec = record.meta.spec
            check_gradient_check(spec, body.X.shape[1], service.settings)
            result = gradient_check(
                record.network, body.X, body.Y, epsilon=body.epsilon, stop=stop.check
            )
            check(result.difference, result.layers)
            layers = [
                {"layer": l, "dW_difference": dw, "db_difference": db}
                for l, (dw, db) in enumerate(result.layers, start=1)
            ]
            answer = {
                "difference": result.difference,
                "threshold": result.threshold,
                "passed": result.passed,
                "layers": layers,
                "parameters_checked": result.parameters_checked,
                "dropout": None if spec.dropout is None else NO_DROPOUT,
            }
            return versioned(answer, record.meta.version)

    return await service.heavy.run(work, request.receive)
