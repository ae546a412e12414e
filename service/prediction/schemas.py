"""Bodies of the prediction routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.core.schemas import XOR_X, XOR_Y, Batch, RequestModel
from service.core.wire import Matrix, MatrixOut


class PredictRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"X": XOR_X}]})

    X: Matrix = Field(description="(n_x, m): one column per example")


class EvaluateRequest(Batch):
    model_config = ConfigDict(json_schema_extra={"examples": [{"X": XOR_X, "Y": XOR_Y}]})


class PredictResponse(BaseModel):
    version: int
    A: MatrixOut = Field(description="A[L], (n_L, m)")
    predictions: MatrixOut = Field(
        description="0/1 per entry for a sigmoid output (A > 0.5), class indices (1, m) for "
        "softmax, A otherwise"
    )


class EvaluateResponse(BaseModel):
    version: int
    cost: float = Field(description="J on the batch, with L2")
    accuracy: float | None = Field(description="the fraction predicted right; null for regression")
    m: int = Field(description="examples in the batch")
