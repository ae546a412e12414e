"""The bytes and text of stored values (no pickle anywhere): a spec as JSON, a job's request
as a small JSON header followed by its raw arrays, gradients as raw little-endian bytes."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model import ModelError, NetworkSpec, TrainOptions
from service.store.records import JobRequest


def spec_to_json(spec: NetworkSpec) -> str:
    return json.dumps(spec.to_dict())


@functools.lru_cache(maxsize=4096)
def spec_from_json(text: str) -> NetworkSpec:
    """The spec a row holds. Cached by its text: every read parses it, and a spec is
    immutable, so equal text means an equal spec."""
    data: dict[str, Any] = json.loads(text)
    return NetworkSpec.from_dict(data)


def little_endian(array: NDArray[Any]) -> memoryview:
    """The C-order little-endian bytes of ``array`` (its own memory on a little-endian machine)."""
    if array.size == 0:
        return memoryview(b"")
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return little.reshape(-1).data.cast("B")


def array_from(
    data: bytes | memoryview, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> NDArray[Any]:
    """A writable native array from :func:`little_endian` bytes."""
    little = np.frombuffer(data, dtype=dtype.newbyteorder("<"))
    if little.size != int(np.prod(shape)):
        raise ModelError(f"stored bytes hold {little.size} values, expected {shape}")
    return little.astype(dtype).reshape(shape)


def job_request_to_bytes(request: JobRequest) -> bytes:
    """A 4-byte header length, the JSON header (shapes, dtype, options), then X and Y."""
    options = request.options
    header = json.dumps(
        {
            "dtype": request.X.dtype.name,
            "X": list(request.X.shape),
            "Y": list(request.Y.shape),
            "options": {
                "epochs": options.epochs,
                "batch_size": options.batch_size,
                "shuffle_seed": options.shuffle_seed,
                "learning_rate": options.learning_rate,
            },
        }
    ).encode()
    return b"".join(
        [
            len(header).to_bytes(4, "little"),
            header,
            little_endian(request.X),
            little_endian(request.Y),
        ]
    )


def job_request_from_bytes(data: bytes | memoryview) -> JobRequest:
    view = memoryview(data)
    length = int.from_bytes(view[:4], "little")
    header = json.loads(bytes(view[4 : 4 + length]))
    dtype = np.dtype(header["dtype"])
    x_shape, y_shape = tuple(header["X"]), tuple(header["Y"])
    x_end = 4 + length + int(np.prod(x_shape)) * dtype.itemsize
    X = array_from(view[4 + length : x_end], dtype, x_shape)
    Y = array_from(view[x_end:], dtype, y_shape)
    return JobRequest(X=X, Y=Y, options=TrainOptions(**header["options"]))
