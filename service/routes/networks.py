"""Networks: create, list, get, delete; their parameters: get, put."""

from __future__ import annotations

import secrets
import uuid

from fastapi import APIRouter, Response
from numpy.typing import ArrayLike

from model import OptimizerSpec, build_spec, create_network, replace_parameters
from service.deps import (
    EncodingDep,
    IfMatch,
    LocksDep,
    MetaDep,
    NetworkDep,
    NetworkId,
    OwnerDep,
    SettingsDep,
    StoreDep,
)
from service.errors import Invalid, network_missing
from service.limits import check_network_size
from service.matrices import Encoding, encode_matrix
from service.openapi import problems
from service.plumbing import OrjsonRoute
from service.resources import network_resource
from service.responses import ORJSONResponse, versioned
from service.schemas import (
    LayerParametersIn,
    NetworkCreate,
    NetworkList,
    NetworkPublic,
    ParametersPublic,
    ParametersPut,
)
from service.store import NetworkLimitReached, NetworkMissing, NetworkRecord, Update
from service.updates import update_network

router = APIRouter(route_class=OrjsonRoute, tags=["networks"])


def _split(layers: list[LayerParametersIn]) -> tuple[list[ArrayLike], list[ArrayLike]]:
    return [layer.W for layer in layers], [layer.b for layer in layers]


def _parameters(record: NetworkRecord, encoding: Encoding) -> ORJSONResponse:
    network = record.network
    layers = [
        {"layer": l, "W": encode_matrix(W, encoding), "b": encode_matrix(b, encoding)}
        for l, (W, b) in enumerate(zip(network.W, network.b, strict=True), start=1)
    ]
    return versioned({"version": record.meta.version, "layers": layers}, record.meta.version)


@router.post(
    "/networks",
    status_code=201,
    response_model=NetworkPublic,
    summary="Create a network",
    description=(
        "Builds an L-layer network from `layer_dims` and initializes its parameters from "
        "`seed` (one `numpy.random.RandomState(seed)` stream, `randn(n_l, n_{l-1})` for "
        "l = 1..L, scaled by the initialization; biases zero), or takes `parameters` as given."
    ),
    responses=problems(400, 413, 422),
)
def create(
    body: NetworkCreate, store: StoreDep, owner: OwnerDep, settings: SettingsDep
) -> ORJSONResponse:
    check_network_size(body.layer_dims, settings)
    spec = build_spec(
        body.layer_dims,
        hidden_activation=body.hidden_activation,
        output_activation=body.output_activation,
        activations=body.activations,
        loss=body.loss,
        initialization=body.initialization,
        seed=secrets.randbelow(2**32) if body.seed is None else body.seed,
        dtype=body.dtype,
        optimizer=OptimizerSpec(**body.optimizer.model_dump()),
        l2_lambda=body.l2_lambda,
    )
    if body.parameters is None:
        network = create_network(spec)
    else:
        network = create_network(spec, *_split(body.parameters))
    try:
        record = store.create_network(
            uuid.uuid4().hex, owner, body.name, network, limit=settings.max_networks_per_owner
        )
    except NetworkLimitReached as reached:
        raise Invalid(
            f"You already keep {reached.limit} networks, the limit; delete one first."
        ) from None
    return ORJSONResponse(
        network_resource(record.meta),
        status_code=201,
        headers={"Location": f"/networks/{record.meta.id}", "ETag": f'"{record.meta.version}"'},
    )


@router.get(
    "/networks",
    response_model=NetworkList,
    summary="List your networks",
    description="Every network the caller created, oldest first.",
)
def list_networks(store: StoreDep, owner: OwnerDep) -> ORJSONResponse:
    return ORJSONResponse({"networks": [network_resource(m) for m in store.list_networks(owner)]})


@router.get(
    "/networks/{network_id}",
    response_model=NetworkPublic,
    summary="Get a network",
    description="The network resource: its architecture, optimizer, version and steps trained.",
    responses=problems(404),
)
def get_network(meta: MetaDep) -> ORJSONResponse:
    return versioned(network_resource(meta), meta.version)


@router.delete(
    "/networks/{network_id}",
    status_code=204,
    summary="Delete a network",
    description="Deletes the network with its history and gradients.",
    responses=problems(404),
)
def delete_network(network_id: NetworkId, store: StoreDep, owner: OwnerDep) -> Response:
    try:
        store.delete_network(network_id, owner)
    except NetworkMissing:
        raise network_missing(network_id) from None
    return Response(status_code=204)


@router.get(
    "/networks/{network_id}/parameters",
    response_model=ParametersPublic,
    summary="Get the parameters",
    description="`W[l]` `(n_l, n_{l-1})` and `b[l]` `(n_l, 1)` for l = 1..L, with the version.",
    responses=problems(404, 422),
)
def get_parameters(record: NetworkDep, encoding: EncodingDep = "json") -> ORJSONResponse:
    return _parameters(record, encoding)


def _parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise Invalid(f'If-Match must be a version number such as "3"; received {value!r}.')
    return int(text)


@router.put(
    "/networks/{network_id}/parameters",
    response_model=ParametersPublic,
    summary="Replace the parameters",
    description=(
        "Sets every `W[l]` and `b[l]` (shapes checked against `layer_dims`) and starts the "
        "optimizer state afresh. With `If-Match: <version>` it applies only to that version "
        "(409 otherwise)."
    ),
    responses=problems(400, 404, 409, 413, 422),
)
def put_parameters(
    network_id: NetworkId,
    body: ParametersPut,
    store: StoreDep,
    locks: LocksDep,
    owner: OwnerDep,
    if_match: IfMatch = None,
    encoding: EncodingDep = "json",
) -> ORJSONResponse:
    expected = _parse_if_match(if_match)
    W, b = _split(body.layers)

    def compute(record: NetworkRecord) -> tuple[Update, None]:
        return Update(replace_parameters(record.network, W, b)), None

    record, _ = update_network(store, locks, network_id, owner, compute, if_match=expected)
    return _parameters(record, encoding)
