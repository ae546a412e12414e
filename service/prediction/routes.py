"""Prediction and evaluation: heavy work, except that a small one on a warm network runs on
the event loop (:meth:`service.warm.WarmNetworks.small`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from model import evaluate, predict
from service.core.admission import check_batch, finite_answers
from service.core.http import JsonRoute, versioned
from service.core.openapi import problems
from service.core.wire import Encoding, Matrix, encode_matrix
from service.deps import (
    EncodingDep,
    NetworkId,
    Service,
    ServiceDep,
)
from service.prediction.schemas import (
    EvaluateRequest,
    EvaluateResponse,
    PredictRequest,
    PredictResponse,
)
from service.store import NetworkRecord

router = APIRouter(route_class=JsonRoute, tags=["prediction"])


async def _on_network(
    network_id: str,
    service: Service,
    examples: int,
    answer: Callable[[NetworkRecord], Response],
    request: Request,
) -> Response:
    """``answer(record)`` on the network at its current version, where its size says."""

    def work(_: object) -> Response:
        with service.warm.reading(network_id, service.owner) as record:
            check_batch(record.meta.spec, examples, service.settings)
            return answer(record)

    small = service.warm.small(network_id, service.owner, examples)
    return await service.heavy.run(work, request.receive, small=small)


@router.post(
    "/networks/{network_id}/predict",
    response_model=PredictResponse,
    summary="Predict",
    description=(
        "Forward propagation only (never dropout): `A` = A[L] `(n_L, m)`, and `predictions`: 0/1 "
        "per entry for a sigmoid output (A > 0.5), class indices `(1, m)` for softmax, A itself "
        "otherwise."
    ),
    responses=problems(400, 404, 413, 415, 422, 503),
)
async def predict_batch(
    network_id: NetworkId,
    body: PredictRequest,
    service: ServiceDep,
    request: Request,
    encoding: EncodingDep = "json",
) -> Response:
    def answer(record: NetworkRecord) -> Response:
        return prediction(record, body.X, encoding)

    return await _on_network(network_id, service, body.X.shape[1], answer, request)


def prediction(record: NetworkRecord, X: Matrix, encoding: Encoding) -> Response:
    with finite_answers() as check:
        A, predictions = predict(record.network, X)
        check(A)
    content = {
        "version": record.meta.version,
        "A": encode_matrix(A, encoding),
        "predictions": encode_matrix(predictions, encoding, record.network.spec.np_dtype),
    }
    return versioned(content, record.meta.version)


@router.post(
    "/networks/{network_id}/evaluate",
    response_model=EvaluateResponse,
    summary="Evaluate on a labelled batch",
    description="The cost (with L2) and, for classifiers, the accuracy on the batch.",
    responses=problems(400, 404, 413, 415, 422, 503),
)
async def evaluate_batch(
    network_id: NetworkId,
    body: EvaluateRequest,
    service: ServiceDep,
    request: Request,
) -> Response:
    def answer(record: NetworkRecord) -> Response:
        with finite_answers() as check:
            cost, accuracy, m = evaluate(record.network, body.X, body.Y)
            check(cost)
        content = {"version": record.meta.version, "cost": cost, "accuracy": accuracy, "m": m}
        return versioned(content, record.meta.version)

    return await _on_network(network_id, service, body.X.shape[1], answer, request)
