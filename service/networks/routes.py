"""Networks: create, list, get, delete; their parameters: get, replace."""

from __future__ import annotations

import secrets
import uuid

from fastapi import APIRouter, Request, Response
from numpy.typing import ArrayLike

from model import (
    Network,
    NetworkSpec,
    OptimizerSpec,
    build_spec,
    create_network,
    replace_parameters,
)
from service.core.admission import check_network_size
from service.core.http import JsonRoute, ORJSONResponse, versioned
from service.core.idempotency import Retry
from service.core.openapi import problems
from service.core.wire import Encoding, encode_matrix
from service.deps import (
    EncodingDep,
    IdempotencyKey,
    IfMatch,
    NetworkId,
    ServiceDep,
    expected_version,
)
from service.networks.schemas import (
    LayerParametersIn,
    NetworkCreate,
    NetworkList,
    NetworkPublic,
    ParametersPublic,
    ParametersPut,
    network_resource,
)
from service.store import NetworkRecord, Update

router = APIRouter(route_class=JsonRoute, tags=["networks"])


def _seed(value: int | None) -> int:
    return secrets.randbelow(2**32) if value is None else value


def _spec(body: NetworkCreate) -> NetworkSpec:
    dropout = body.dropout
    return build_spec(
        body.layer_dims,
        hidden_activation=body.hidden_activation,
        output_activation=body.output_activation,
        activations=body.activations,
        loss=body.loss,
        initialization=body.initialization,
        seed=_seed(body.seed),
        dtype=body.dtype,
        optimizer=OptimizerSpec(**body.optimizer.model_dump()),
        l2_lambda=body.l2_lambda,
        keep_prob=None if dropout is None else dropout.keep_prob,
        dropout_seed=_seed(None if dropout is None else dropout.seed),
    )


def _network(body: NetworkCreate, spec: NetworkSpec) -> Network:
    if body.parameters is None:
        return create_network(spec)
    return create_network(spec, *_split(body.parameters))


def _split(layers: list[LayerParametersIn]) -> tuple[list[ArrayLike], list[ArrayLike]]:
    return [layer.W for layer in layers], [layer.b for layer in layers]


def _created(record: NetworkRecord) -> ORJSONResponse:
    location = {"Location": f"/networks/{record.meta.id}", "ETag": f'"{record.meta.version}"'}
    return ORJSONResponse(network_resource(record.meta), status_code=201, headers=location)


@router.post(
    "/networks",
    status_code=201,
    response_model=NetworkPublic,
    summary="Create a network",
    description=(
        "Builds an L-layer network from `layer_dims` and initializes its parameters from "
        "`seed` (one `numpy.random.RandomState(seed)` stream, `randn(n_l, n_{l-1})` for "
        "l = 1..L, scaled by the initialization; biases zero), or takes `parameters` as given. "
        "With an `Idempotency-Key`, a repeat answers the first network instead of making another."
    ),
    responses=problems(400, 413, 415, 422, 503, 507),
)
async def create(
    body: NetworkCreate,
    service: ServiceDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    check_network_size(body.layer_dims, service.settings)
    retry = await Retry.of(request, service.store, service.owner, idempotency_key)

    def change() -> Response:
        spec = _spec(body)
        limits = {
            "limit": service.settings.max_networks_per_owner,
            "quota": service.settings.max_stored_bytes_per_key,
        }
        # Before building it: a 507 allocates nothing.
        service.store.check_room(service.owner, spec, **limits)
        record = service.store.create_network(
            uuid.uuid4().hex,
            service.owner,
            body.name,
            _network(body, spec),  # initializing 10M parameters takes a while: heavy work
            **limits,
            idempotency=retry.keeping(_created),
        )
        return _created(record)

    return await service.heavy.run(lambda stop: retry.run(change))


@router.get(
    "/networks",
    response_model=NetworkList,
    summary="List your networks",
    description="Every network the caller created, oldest first.",
    responses=problems(503),
)
def list_networks(service: ServiceDep) -> ORJSONResponse:
    return ORJSONResponse(
        {"networks": [network_resource(m) for m in service.store.list_networks(service.owner)]}
    )


@router.get(
    "/networks/{network_id}",
    response_model=NetworkPublic,
    summary="Get a network",
    description="The network resource: its architecture, optimizer, version and steps trained.",
    responses=problems(404, 503),
)
def get_network(network_id: NetworkId, service: ServiceDep) -> ORJSONResponse:
    meta = service.store.get_meta(network_id, service.owner)
    return versioned(network_resource(meta), meta.version)


@router.delete(
    "/networks/{network_id}",
    status_code=204,
    summary="Delete a network",
    description="Deletes the network with its history, gradients and jobs (and frees their space).",
    responses=problems(404, 503),
)
def delete_network(network_id: NetworkId, service: ServiceDep) -> Response:
    service.store.delete_network(network_id, service.owner)
    service.warm.evict(network_id)
    return Response(status_code=204)


def _parameters(record: NetworkRecord, encoding: Encoding) -> ORJSONResponse:
    network = record.network
    layers = [
        {"layer": l, "W": encode_matrix(W, encoding), "b": encode_matrix(b, encoding)}
        for l, (W, b) in enumerate(zip(network.W, network.b, strict=True), start=1)
    ]
    return versioned({"version": record.meta.version, "layers": layers}, record.meta.version)


@router.get(
    "/networks/{network_id}/parameters",
    response_model=ParametersPublic,
    summary="Get the parameters",
    description="`W[l]` `(n_l, n_{l-1})` and `b[l]` `(n_l, 1)` for l = 1..L, with the version.",
    responses=problems(404, 422, 503),
)
def get_parameters(
    network_id: NetworkId, service: ServiceDep, encoding: EncodingDep = "json"
) -> ORJSONResponse:
    with service.warm.reading(network_id, service.owner) as record:
        return _parameters(record, encoding)


@router.put(
    "/networks/{network_id}/parameters",
    response_model=ParametersPublic,
    summary="Replace the parameters",
    description=(
        "Sets every `W[l]` and `b[l]` (shapes checked against `layer_dims`) and starts the "
        "optimizer state afresh. With `If-Match: <version>` it applies only to that version "
        "(409 otherwise); with an `Idempotency-Key` a repeat changes nothing again."
    ),
    responses=problems(400, 404, 409, 413, 415, 422, 503, 507),
)
async def put_parameters(
    network_id: NetworkId,
    body: ParametersPut,
    service: ServiceDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    encoding: EncodingDep = "json",
) -> Response:
    W, b = _split(body.layers)
    version = expected_version(if_match)
    retry = await Retry.of(request, service.store, service.owner, idempotency_key)

    def change() -> Response:
        def compute(record: NetworkRecord, _: object) -> tuple[Update, None]:
            network = replace_parameters(record.network, W, b)
            respond = lambda new: _parameters(new, encoding)  # noqa: E731
            return Update(network, idempotency=retry.keeping(respond)), None

        record, _ = service.warm.change(network_id, service.owner, compute, if_match=version)
        return _parameters(record, encoding)

    return await service.heavy.run(lambda stop: retry.run(change))
