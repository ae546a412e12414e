"""Bodies of the inspection routes: a pass's matrices, and the gradient check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.core.schemas import XOR_X, XOR_Y, Batch, Seed
from service.core.wire import MatrixOut

Include = Literal["Z", "A", "D", "dZ", "dA", "dW", "db"]


class GradientsRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"X": XOR_X, "Y": XOR_Y, "include": ["Z", "A", "dZ", "dA", "dW", "db"]}]
        }
    )

    include: list[Include] = Field(
        default_factory=lambda: list[Include](["dW", "db"]),
        max_length=7,
        description="what each layer of the answer holds",
    )
    dropout_seed: Seed | None = Field(
        None,
        description="on a network with dropout, apply it with the masks "
        "numpy.random.RandomState(dropout_seed).rand(n_l, m) < keep_prob[l], l = 1..L-1 in order "
        "(the course's forward_propagation_with_dropout); null: no dropout",
    )


class GradientCheckRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"X": XOR_X, "Y": XOR_Y, "epsilon": 1e-7}]}
    )

    epsilon: float = Field(
        1e-7, gt=0, le=1e-2, allow_inf_nan=False, description="the two-sided perturbation"
    )


class LayerGradients(BaseModel):
    layer: int = Field(description="l, from 1")
    Z: MatrixOut | None = Field(None, description="Z[l] = W[l] A[l-1] + b[l], (n_l, m)")
    A: MatrixOut | None = Field(None, description="A[l] = g(Z[l]) (after dropout), (n_l, m)")
    D: MatrixOut | None = Field(None, description="dropout mask of a hidden layer (0/1), (n_l, m)")
    dZ: MatrixOut | None = Field(
        None, description="dZ[l], per example (not divided by m), (n_l, m)"
    )
    dA: MatrixOut | None = Field(
        None, description="dA[l], per example (not divided by m), (n_l, m)"
    )
    dW: MatrixOut | None = Field(
        None, description="dW[l] = (1/m) dZ[l] A[l-1]^T (+ L2), (n_l, n_{l-1})"
    )
    db: MatrixOut | None = Field(None, description="db[l] = (1/m) sum(dZ[l], axis=1), (n_l, 1)")


class GradientsResponse(BaseModel):
    version: int = Field(description="the parameters' version these gradients are of")
    cost: float = Field(description="J of the batch (with L2)")
    layers: list[LayerGradients]


class LastGradientsResponse(BaseModel):
    version: int = Field(description="the version the last training step produced")
    step: int = Field(description="that step's number")
    cost: float = Field(description="that step's cost, from its forward pass")
    layers: list[LayerGradients]


class LayerCheck(BaseModel):
    layer: int = Field(description="l, from 1")
    dW_difference: float = Field(description="the relative difference over W[l]'s entries alone")
    db_difference: float = Field(description="the relative difference over b[l]'s entries alone")


class GradientCheckResponse(BaseModel):
    difference: float = Field(
        description="||grad - gradapprox|| / (||grad|| + ||gradapprox||) over all parameters: "
        "grad from backpropagation, gradapprox from two-sided differences "
        "(J(theta + eps) - J(theta - eps)) / (2 eps), entry by entry, in float64"
    )
    threshold: float = Field(description="the course's 2e-7: below it, backpropagation is right")
    passed: bool = Field(
        description="difference < threshold. It judges the whole gradient; the per-layer "
        "differences show where a failure sits (a layer whose gradients are tiny may show a "
        "larger relative difference without failing the check)"
    )
    layers: list[LayerCheck]
    parameters_checked: int = Field(description="every W and b entry, each perturbed twice")
    dropout: str | None = Field(
        description="on a network with dropout, why the check ran without it"
    )
