"""Synchronous training, and the cost history."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from model import Trainer, TrainingDiverged
from service.core.admission import check_training
from service.core.capacity import Stop
from service.core.errors import Invalid
from service.core.http import JsonRoute, ORJSONResponse, versioned
from service.core.idempotency import Retry
from service.core.openapi import problems
from service.deps import (
    IdempotencyKey,
    IfMatch,
    NetworkId,
    ServiceDep,
    expected_version,
)
from service.networks.schemas import network_resource
from service.store import NetworkMeta, NetworkRecord, Store, Update
from service.training.schemas import HistoryResponse, TrainRequest, TrainResponse, costs_body
from service.training.steps import Stepper, last_gradients
from service.training.svg import Curve, Scale, empty_chart, line_chart
from service.warm import Scratch

router = APIRouter(route_class=JsonRoute, tags=["training"])
Answer = Callable[[NetworkRecord], Response]


@router.post(
    "/networks/{network_id}/train",
    response_model=TrainResponse,
    summary="Train synchronously",
    description=(
        "Runs `epochs` passes of forward propagation, backpropagation and an optimizer update "
        "over the batch (full batch by default: one epoch is one step), inside the request. "
        "Each step's cost is the one its forward pass computed, before its update. A step that "
        "makes the cost or the parameters NaN or infinite is undone and the call answers 422 "
        "with nothing saved. `If-Match` trains only the named version; an `Idempotency-Key` "
        "makes a retry safe. Long runs belong in `POST /networks/{id}/jobs`."
    ),
    responses=problems(400, 404, 409, 413, 415, 422, 503, 507),
)
async def train(
    network_id: NetworkId,
    body: TrainRequest,
    service: ServiceDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> Response:
    options = body.options()
    m = body.X.shape[1]
    version = expected_version(if_match)
    retry = await Retry.of(request, service.store, service.owner, idempotency_key)

    def work(stop: Stop) -> Response:
        steps_before = [0]

        def compute(record: NetworkRecord, scratch: Scratch) -> tuple[Update, Answer]:
            check_training(record.meta.spec, m, options, service.settings, job=False)
            steps_before[0] = record.meta.steps_trained
            started = time.perf_counter()
            trainer = Trainer(
                record.network,
                body.X,
                body.Y,
                options,
                workspace=scratch.workspace,
                spares=scratch.spares,
            )
            try:
                costs = Stepper(trainer).run(stop)
            except TrainingDiverged as diverged:
                raise Invalid(f"{diverged} Nothing was saved.") from None
            final = trainer.final_cost()
            if final is None:  # finite parameters whose cost overflows: the next step diverges
                raise Invalid(
                    f"Training diverged after step {costs[-1].step}: the cost on this batch "
                    "overflowed, "
                    "so nothing was saved. Try a smaller learning rate."
                )
            scratch.left.extend(trainer.spares())
            grads = last_gradients(trainer, record.meta.version + 1)
            took = (time.perf_counter() - started) * 1000.0

            def answer(new: NetworkRecord) -> Response:
                content = {
                    "network": network_resource(new.meta),
                    "steps": len(costs),
                    "costs": costs_body([(c.step, c.cost) for c in costs]),
                    "final_cost": final,
                    "duration_ms": took,
                }
                return versioned(content, new.meta.version)

            history = [(c.step, c.cost) for c in costs]
            return Update(
                trainer.network, history, grads, idempotency=retry.keeping(answer)
            ), answer

        record, answer = service.warm.change(
            network_id, service.owner, compute, if_match=version, wait=stop.may_wait
        )
        service.metrics.training_steps.inc(record.meta.steps_trained - steps_before[0])
        return answer(record)

    small = service.warm.small(network_id, service.owner, m, options.steps_for(m))
    return await service.heavy.run(
        lambda stop: retry.run(lambda: work(stop)), request.receive, small=small
    )


def history_at(store: Store, meta: NetworkMeta) -> list[tuple[int, float]]:
    """The history as of ``meta.version``. Rows are read after ``meta``, so a commit in between
    may have added steps past ``meta.steps_trained``: they belong to a later version and are left
    out, keeping the answer consistent with its ETag. A delete in between leaves no rows, so the
    network must still exist once they are read (a deleted id never comes back), else a 404."""
    points = store.history(meta.id)
    store.get_version(meta.id, meta.owner)
    return [point for point in points if point[0] <= meta.steps_trained]


@router.get(
    "/networks/{network_id}/history",
    response_model=HistoryResponse,
    summary="The cost history",
    description=(
        "Every recorded step's cost, in order. Past twice `BACKPROP_MAX_HISTORY_POINTS` steps "
        "(default 100,000) the history is thinned evenly, keeping steps at a stride that doubles "
        "as it grows, so it never holds fewer than that many points, nor many more."
    ),
    responses=problems(404, 503),
)
def history(network_id: NetworkId, service: ServiceDep) -> ORJSONResponse:
    meta = service.store.get_meta(network_id, service.owner)
    return versioned({"costs": costs_body(history_at(service.store, meta))}, meta.version)


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
        **problems(404, 422, 503),
    },
)
def history_svg(
    network_id: NetworkId,
    service: ServiceDep,
    scale: Annotated[Scale, Query(description="linear or log (the cost axis)")] = "linear",
) -> Response:
    meta = service.store.get_meta(network_id, service.owner)
    title = f"Cost history: {meta.name or meta.id}"
    points = history_at(service.store, meta)
    if points:
        steps, costs = zip(*points, strict=True)
        svg = line_chart([Curve(meta.name or "cost", steps, costs)], title=title, scale=scale)
    else:
        svg = empty_chart(title, "No training steps recorded yet: train the network, then reload.")
    return Response(svg, media_type="image/svg+xml", headers={"ETag": f'"{meta.version}"'})
