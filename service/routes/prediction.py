"""Prediction and evaluation."""

from __future__ import annotations

from fastapi import APIRouter

from model import evaluate, predict
from service.deps import EncodingDep, NetworkLoaderDep
from service.limits import finite_answers
from service.matrices import Encoding, Matrix, encode_matrix
from service.openapi import problems
from service.plumbing import OrjsonRoute
from service.responses import ORJSONResponse, versioned
from service.schemas import EvaluateRequest, EvaluateResponse, PredictRequest, PredictResponse
from service.store import NetworkRecord

router = APIRouter(route_class=OrjsonRoute, tags=["prediction"])


@router.post(
    "/networks/{network_id}/predict",
    response_model=PredictResponse,
    summary="Predict",
    description=(
        "Forward propagation only: `A` = A[L] `(n_L, m)`, and `predictions`: 0/1 per entry "
        "for a sigmoid output (A > 0.5), class indices `(1, m)` for softmax, A itself "
        "otherwise."
    ),
    responses=problems(400, 404, 413, 422),
)
async def predict_batch(
    body: PredictRequest,
    network: NetworkLoaderDep,
    encoding: EncodingDep = "json",
) -> ORJSONResponse:
    return await network.run(
        lambda record: prediction(record, body.X, encoding), examples=body.X.shape[1]
    )


def prediction(record: NetworkRecord, X: Matrix, encoding: Encoding) -> ORJSONResponse:
    """The answer of :func:`predict_batch` (and of :mod:`service.inline`, its fast lane)."""
    with finite_answers() as check:
        A, predictions = predict(record.network, X)
        check(A)
    return versioned(
        {
            "version": record.meta.version,
            "A": encode_matrix(A, encoding),
            "predictions": encode_matrix(predictions, encoding, record.network.spec.np_dtype),
        },
        record.meta.version,
    )


@router.post(
    "/networks/{network_id}/evaluate",
    response_model=EvaluateResponse,
    summary="Evaluate on a labelled batch",
    description="The cost (with L2) and, for classifiers, the accuracy on the batch.",
    responses=problems(400, 404, 413, 422),
)
async def evaluate_batch(body: EvaluateRequest, network: NetworkLoaderDep) -> ORJSONResponse:
    def work(record: NetworkRecord) -> ORJSONResponse:
        with finite_answers() as check:
            cost, accuracy, m = evaluate(record.network, body.X, body.Y)
            check(cost)
        return versioned(
            {"version": record.meta.version, "cost": cost, "accuracy": accuracy, "m": m},
            record.meta.version,
        )

    return await network.run(work, examples=body.X.shape[1])
