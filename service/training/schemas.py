"""Bodies of the training routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from model import TrainOptions
from service.core.schemas import XOR_X, XOR_Y, Batch, Int64, PositiveFloat, Seed
from service.networks.schemas import NetworkPublic


class TrainRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"X": XOR_X, "Y": XOR_Y, "epochs": 500}]}
    )

    epochs: Int64 = Field(1, description="passes over this batch")
    batch_size: Int64 | None = Field(
        None, description="null: full batch; else mini-batches, reshuffled every epoch"
    )
    shuffle_seed: Seed | None = Field(None, description="fixes the shuffles; null: a fresh one")
    learning_rate: PositiveFloat | None = Field(None, description="override for this call")

    def options(self) -> TrainOptions:
        return TrainOptions(
            epochs=self.epochs,
            batch_size=self.batch_size,
            shuffle_seed=self.shuffle_seed,
            learning_rate=self.learning_rate,
        )


class CostPoint(BaseModel):
    step: int = Field(description="the network's step number (its first update is 1)")
    cost: float = Field(description="the cost the step's forward pass computed, before its update")


class TrainResponse(BaseModel):
    network: NetworkPublic
    steps: int = Field(description="updates this call made")
    costs: list[CostPoint]
    final_cost: float = Field(description="the whole batch's cost after the last update")
    duration_ms: float


class HistoryResponse(BaseModel):
    costs: list[CostPoint]


def costs_body(points: list[tuple[int, float]]) -> list[dict[str, float | int]]:
    return [{"step": step, "cost": cost} for step, cost in points]
