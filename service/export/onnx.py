"""A network as an ONNX model, built with onnx's own helpers (no hand-written protobuf).

The network works on columns (``Z[l] = W[l] A[l-1] + b[l]``); ONNX models, like the V2
protocol, take **one row per example**, so the graph computes the same thing transposed:

    A0 = X                                  X: [m, n_x], m a dynamic dimension named "m"
    Z_l = A_{l-1} W_l^T + b_l^T             Gemm(A_{l-1}, W_l, b_l, transB=1): [m, n_l]
    A_l = g_l(Z_l)                          one node per activation (see ``_ACTIVATIONS``)
    A = A_L                                 [m, n_L]
    predictions                             as POST /v2/models/{id}/infer answers them

``predictions`` is INT64 ``(A > 0.5)`` ``[m, n_L]`` for a sigmoid output, the INT64 argmax of
each row ``[m, 1]`` for softmax, and otherwise ``A`` itself in the network's dtype: the V2
route's outputs, which are ``/predict``'s transposed.

Gemm with ``transB=1`` keeps each ``W[l]`` in its stored ``(n_l, n_{l-1})`` layout, so the
model's initializers are the network's own bytes; measured against ``/predict`` it gives the
same numbers as MatMul with a transposed copy plus Add (identical outputs in ONNX Runtime
1.32 for every activation and both dtypes).

Only ``network.spec`` and ``network.W`` / ``network.b`` are read, so the engine's internals
are free to change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model import Network
from model.activations import LEAKY_SLOPE

# Opset 21 (ONNX 1.16) and IR version 10: current, and loaded by every ONNX Runtime since
# 1.18 (and so by Triton's ONNX backend since the containers that ship it). Every op used here
# has had its present semantics since opset 13.
OPSET = 21
IR_VERSION = 10
PRODUCER = "backprop-service"
INPUT_NAME = "X"
OUTPUT_NAMES = ("A", "predictions")
BATCH = "m"
# protobuf cannot serialize a message of 2 GiB or more; leave room for everything but the
# parameters' bytes.
MAX_PARAMETER_BYTES = 2**31 - 2**24

_ELEMENT_TYPES: dict[np.dtype[Any], int] = {
    np.dtype("float32"): TensorProto.FLOAT,
    np.dtype("float64"): TensorProto.DOUBLE,
}


class ExportTooLarge(ValueError):
    """The network's parameters do not fit in one ONNX file (protobuf's 2 GiB limit)."""


def producer_version() -> str:
    try:
        return package_version(PRODUCER)
    except PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
        return "0+unknown"


@dataclass
class _Graph:
    """Nodes and initializers as they are added, in the network's dtype."""

    dtype: np.dtype[Any]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _constants: dict[str, str] = field(default_factory=dict)

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(
            helper.make_node(op, inputs, [output], name=f"{output}/{op}", **attributes)
        )
        return output

    def tensor(self, name: str, array: np.ndarray[Any, Any]) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array, self.dtype), name))
        return name

    def constant(self, name: str, value: float) -> str:
        """A scalar in the network's dtype, added once however often it is used."""
        if name not in self._constants:
            self._constants[name] = self.tensor(name, np.array(value))
        return self._constants[name]


def _leaky_relu(graph: _Graph, Z: str, A: str) -> None:
    # max(Z, slope * Z), exactly as model.activations computes it. ONNX's LeakyRelu would take
    # its alpha as a float32 attribute: 0.009999999776 in a float64 graph, 2e-8 off.
    slope = graph.constant("leaky_slope", LEAKY_SLOPE)
    graph.node("Max", [Z, graph.node("Mul", [Z, slope], f"{Z}_scaled")], A)


def _single(op: str, **attributes: Any) -> Callable[[_Graph, str, str], None]:
    def add(graph: _Graph, Z: str, A: str) -> None:
        graph.node(op, [Z], A, **attributes)

    return add


# Each of the service's activations as ONNX nodes from Z to A; softmax normalizes each row
# (axis 1: one example per row).
_ACTIVATIONS: dict[str, Callable[[_Graph, str, str], None]] = {
    "relu": _single("Relu"),
    "leaky_relu": _leaky_relu,
    "tanh": _single("Tanh"),
    "sigmoid": _single("Sigmoid"),
    "linear": _single("Identity"),
    "softmax": _single("Softmax", axis=1),
}


def _predictions(graph: _Graph, output: str, A: str) -> tuple[int | None, int | None]:
    """Adds the ``predictions`` node(s); its element type and width (None: as ``A``)."""
    name = OUTPUT_NAMES[1]
    if output == "sigmoid":
        above = graph.node("Greater", [A, graph.constant("half", 0.5)], "above_half")
        graph.node("Cast", [above], name, to=TensorProto.INT64)
        return TensorProto.INT64, None
    if output == "softmax":
        # ArgMax picks the first of equal maxima, as numpy's argmax does.
        graph.node("ArgMax", [A], name, axis=1, keepdims=1, select_last_index=0)
        return TensorProto.INT64, 1
    graph.node("Identity", [A], name)
    return None, None


def _check_size(network: Network) -> None:
    size = sum(W.nbytes + b.nbytes for W, b in zip(network.W, network.b, strict=True))
    if size > MAX_PARAMETER_BYTES:
        raise ExportTooLarge(
            f"The network's parameters take {size} bytes; one ONNX file holds at most "
            f"{MAX_PARAMETER_BYTES} (protobuf's 2 GiB limit)."
        )


def model_proto(network: Network, *, name: str, version: int) -> onnx.ModelProto:
    """The network as an ONNX ``ModelProto``: input ``X`` ``[m, n_x]``, outputs ``A``
    ``[m, n_L]`` and ``predictions``; ``name`` (the network's id) and ``version`` go into
    its metadata."""
    _check_size(network)
    spec = network.spec
    dtype = spec.np_dtype
    element = _ELEMENT_TYPES[dtype]
    graph = _Graph(dtype)
    A_prev = INPUT_NAME
    for l, (W, b, activation) in enumerate(
        zip(network.W, network.b, spec.activations, strict=True), start=1
    ):
        # b (n_l, 1) as a vector [n_l]: Gemm broadcasts it over the m rows.
        inputs = [A_prev, graph.tensor(f"W{l}", W), graph.tensor(f"b{l}", b.reshape(-1))]
        Z = graph.node("Gemm", inputs, f"Z{l}", transB=1)
        A = OUTPUT_NAMES[0] if l == spec.L else f"A{l}"
        _ACTIVATIONS[activation](graph, Z, A)
        A_prev = A
    predictions_type, predictions_width = _predictions(graph, spec.activations[-1], A_prev)
    outputs = [
        helper.make_tensor_value_info(OUTPUT_NAMES[0], element, [BATCH, spec.n_L]),
        helper.make_tensor_value_info(
            OUTPUT_NAMES[1], predictions_type or element, [BATCH, predictions_width or spec.n_L]
        ),
    ]
    onnx_graph = helper.make_graph(
        graph.nodes,
        f"network_{name}",
        [helper.make_tensor_value_info(INPUT_NAME, element, [BATCH, spec.n_x])],
        outputs,
        graph.initializers,
        doc_string=(
            f"Backprop Service network {name}, version {version}: layer_dims "
            f"{list(spec.layer_dims)}, activations {list(spec.activations)}. One row per "
            "example: X [m, n_x] -> A [m, n_L] and predictions."
        ),
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=producer_version(),
        model_version=version,
        doc_string=onnx_graph.doc_string,
    )
    helper.set_model_props(
        model,
        {
            "network_id": name,
            "version": str(version),
            "layer_dims": json.dumps(list(spec.layer_dims)),
            "activations": json.dumps(list(spec.activations)),
            "loss": spec.loss,
            "dtype": spec.dtype,
        },
    )
    return model


def onnx_model(network: Network, *, name: str, version: int) -> bytes:
    """:func:`model_proto`, serialized: the bytes of an ``.onnx`` file."""
    content: bytes = model_proto(network, name=name, version=version).SerializeToString()
    return content
