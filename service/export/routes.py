"""``GET /networks/{id}/onnx``: the network as an ONNX model file."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.core.errors import Invalid
from service.core.openapi import problems
from service.deps import NetworkId, ServiceDep
from service.export.onnx import IR_VERSION, OPSET, ExportTooLarge, onnx_model

ONNX_MEDIA_TYPE = "application/octet-stream"

router = APIRouter(tags=["export"])


@router.get(
    "/networks/{network_id}/onnx",
    response_class=Response,
    summary="Export to ONNX",
    description=f"""
The network as an ONNX model (opset {OPSET}, IR version {IR_VERSION}) that ONNX Runtime and
Triton's ONNX backend run unchanged. As in the V2 protocol, a batch is **one row per
example**: the input `X` is `[m, n_x]` (m dynamic) in the network's dtype (FLOAT for
float32, DOUBLE for float64), and the outputs are `A` `[m, n_L]` and `predictions`: INT64
0/1 per unit for a sigmoid output (A > 0.5), INT64 class indices `[m, 1]` for softmax, `A`
itself otherwise; the numbers of `POST /networks/{{id}}/predict`, transposed.

The model's metadata (`metadata_props`) names the network (`network_id`), its `version`,
`layer_dims` and `activations` (JSON), `loss` and `dtype`. The `ETag` is the version, as
everywhere: the file changes with every change of the parameters.

    curl -o net.onnx $BASE/networks/$ID/onnx
""",
    responses={
        200: {
            "description": "The ONNX model's bytes (a ModelProto), to save as `<id>.onnx`.",
            "content": {ONNX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        **problems(404, 422, 503),
    },
)
def export_onnx(network_id: NetworkId, service: ServiceDep) -> Response:
    with service.warm.reading(network_id, service.owner) as record:
        meta = record.meta
        try:
            content = onnx_model(record.network, name=meta.id, version=meta.version)
        except ExportTooLarge as exc:
            raise Invalid(str(exc)) from None
    return Response(
        content,
        media_type=ONNX_MEDIA_TYPE,
        headers={
            "ETag": f'"{meta.version}"',
            "Content-Disposition": f'attachment; filename="{meta.id}.onnx"',
        },
    )
