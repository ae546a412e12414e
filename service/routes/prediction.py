"""Prediction and evaluation."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter

from model import evaluate, predict
from service.deps import EncodingDep, NetworkDep
from service.errors import Invalid
from service.matrices import encode_matrix
from service.openapi import problems
from service.plumbing import OrjsonRoute
from service.responses import ORJSONResponse, versioned
from service.schemas import EvaluateRequest, EvaluateResponse, PredictRequest, PredictResponse

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
def predict_batch(
    body: PredictRequest, record: NetworkDep, encoding: EncodingDep = "json"
) -> ORJSONResponse:
    A, predictions = predict(record.network, body.X)
    if not np.isfinite(A).all():
        raise Invalid(
            "The network's output overflowed to infinity on this X; scale the inputs down."
        )
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
def evaluate_batch(body: EvaluateRequest, record: NetworkDep) -> ORJSONResponse:
    cost, accuracy, m = evaluate(record.network, body.X, body.Y)
    if not np.isfinite(cost):
        raise Invalid("The cost overflowed to infinity on this batch; scale the inputs down.")
    return versioned(
        {"version": record.meta.version, "cost": cost, "accuracy": accuracy, "m": m},
        record.meta.version,
    )
