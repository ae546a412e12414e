"""Synchronous training and the cost history."""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Response

from model import TrainOptions, TrainResult, train
from service.deps import (
    LocksDep,
    MetaDep,
    MetricsDep,
    NetworkId,
    OwnerDep,
    SettingsDep,
    StoreDep,
)
from service.errors import Invalid, network_missing
from service.limits import check_batch
from service.openapi import problems
from service.plumbing import OrjsonRoute
from service.resources import network_resource
from service.responses import ORJSONResponse, versioned
from service.schemas import HistoryResponse, TrainRequest, TrainResponse
from service.store import NetworkMeta, NetworkMissing, NetworkRecord, Store, Update
from service.svg import Curve, Scale, empty_chart, line_chart
from service.updates import training_update, update_network

router = APIRouter(route_class=OrjsonRoute, tags=["training"])


def costs_body(points: list[tuple[int, float]]) -> list[dict[str, float | int]]:
    return [{"step": step, "cost": cost} for step, cost in points]


@router.post(
    "/networks/{network_id}/train",
    response_model=TrainResponse,
    summary="Train synchronously",
    description=(
        "Runs `epochs` passes of forward propagation, backpropagation and an optimizer update "
        "over the batch (full batch by default: one epoch is one step), inside the request. "
        "Each step's cost is the one its forward pass computed, before its update. "
        "A step that makes the cost or the parameters NaN or infinite is undone and the call "
        "answers 422 with nothing saved. Long runs belong in `POST /networks/{id}/jobs`."
    ),
    responses=problems(400, 404, 409, 413, 422),
)
def train_network(
    network_id: NetworkId,
    body: TrainRequest,
    store: StoreDep,
    locks: LocksDep,
    owner: OwnerDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> ORJSONResponse:
    m = body.X.shape[1]
    if body.epochs * m > settings.max_train_examples:
        raise Invalid(
            f"epochs x examples = {body.epochs} x {m} = {body.epochs * m} is more than one "
            f"synchronous call may run ({settings.max_train_examples}); start a job with "
            f"POST /networks/{network_id}/jobs instead."
        )
    options = TrainOptions(
        epochs=body.epochs,
        batch_size=body.batch_size,
        shuffle_seed=body.shuffle_seed,
        learning_rate=body.learning_rate,
    )
    started = time.perf_counter()

    def compute(record: NetworkRecord) -> tuple[Update, TrainResult]:
        check_batch(record.network.spec, m, settings)
        result = train(record.network, body.X, body.Y, options)
        if result.final_cost is None:
            # The last update left finite parameters but a cost that overflows: the next
            # step would diverge, and the answer cannot carry an infinite final_cost.
            last = result.costs[-1].step if result.costs else record.network.steps_trained
            raise Invalid(
                f"Training diverged after step {last}: the cost on this batch overflowed, so "
                "nothing was saved. Try a smaller learning rate."
            )
        return training_update(result, record.meta.version), result

    record, result = update_network(store, locks, network_id, owner, compute)
    metrics.training_steps.inc(len(result.costs))
    answer = {
        "network": network_resource(record.meta),
        "steps": len(result.costs),
        "costs": costs_body([(s.step, s.cost) for s in result.costs]),
        "final_cost": result.final_cost,
        "duration_ms": (time.perf_counter() - started) * 1000.0,
    }
    return versioned(answer, record.meta.version)


def history_at(store: Store, meta: NetworkMeta) -> list[tuple[int, float]]:
    """The history as of ``meta.version``: rows are read after ``meta``, so a commit in
    between may have added steps past ``meta.steps_trained``; they belong to a later version
    (steps and their rows are committed together), and leaving them out keeps the answer
    consistent with its ETag. A delete in between would leave no rows at all: the network
    must still exist once they are read (a deleted id never comes back), else a 404."""
    points = store.history(meta.id)
    try:
        store.get_version(meta.id, meta.owner)
    except NetworkMissing:
        raise network_missing(meta.id) from None
    return [point for point in points if point[0] <= meta.steps_trained]


@router.get(
    "/networks/{network_id}/history",
    response_model=HistoryResponse,
    summary="The cost history",
    description=(
        "Every recorded step's cost, in order; thinned evenly (keeping the first and the "
        "last) only past the configured maximum number of points."
    ),
    responses=problems(404),
)
def history(meta: MetaDep, store: StoreDep, settings: SettingsDep) -> ORJSONResponse:
    points = history_at(store, meta)
    limit = settings.max_history_points
    if len(points) > limit:
        keep = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(np.int64))
        points = [points[i] for i in keep]
    return versioned({"costs": costs_body(points)}, meta.version)


@router.get(
    "/networks/{network_id}/history.svg",
    response_class=Response,
    summary="The cost curve, as an SVG image",
    description=(
        "Cost against step for every recorded step, with axes, tick labels and a title; "
        "`?scale=log` draws the cost on a log scale. Before any training the image says so. "
        "Open it in a browser: `curl -o cost.svg $BASE/networks/$ID/history.svg`."
    ),
    responses={
        200: {
            "description": "The chart",
            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
        },
        **problems(404, 422),
    },
)
def history_svg(
    meta: MetaDep,
    store: StoreDep,
    scale: Annotated[Scale, Query(description="linear or log (the cost axis)")] = "linear",
) -> Response:
    title = f"Cost history: {meta.name or meta.id}"
    points = history_at(store, meta)
    if points:
        steps, costs = zip(*points, strict=True)
        svg = line_chart([Curve(meta.name or "cost", steps, costs)], title=title, scale=scale)
    else:
        svg = empty_chart(title, "No training steps recorded yet: train the network, then reload.")
    return Response(svg, media_type="image/svg+xml", headers={"ETag": f'"{meta.version}"'})
