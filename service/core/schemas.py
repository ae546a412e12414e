"""What every request and answer shares: strict request models, the batch of a labelled
request, the XOR examples, and the problem body."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.core.wire import Matrix

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Int64 = Annotated[int, Field(ge=1, le=2**63 - 1)]

# The XOR problem: the smallest batch a linear model cannot fit. Examples are columns.
XOR_X: JsonValue = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]]
XOR_Y: JsonValue = [[0.0, 1.0, 1.0, 0.0]]


class RequestModel(BaseModel):
    """Requests are strict: no extra keys, no "1" for 1."""

    model_config = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)


class Batch(RequestModel):
    X: Matrix = Field(description="(n_x, m): one column per example")
    Y: Matrix = Field(description="(n_L, m); for softmax also (1, m) integer class indices")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        None, description="For a request that is not valid: each error's location and message."
    )
