"""A whole network (spec, parameters, optimizer state, steps trained) to bytes and back.

The bytes are an ``.npz`` archive (``numpy.savez``): a JSON header stored as a uint8
array, plus one ``.npy`` member per array, named as the course names them (W1, b1, ...,
vW1, sb1, ...). Arrays keep their exact dtype and bits, and loading uses
``allow_pickle=False``, so reading untrusted bytes can never execute code.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.checks import check_finite, check_parameters
from model.errors import ModelError
from model.network import Network
from model.optimizers import STATE_KEYS
from model.spec import NetworkSpec, check_int

# numpy reads each .npy header with ast.literal_eval, and CPython 3.11 can raise
# "SystemError: AST constructor recursion depth mismatch" when threads build ASTs at the same
# time (python/cpython gh-106905; seen here in tests/store/test_updates.py): a server
# deserializes networks in several threads, so these reads take turns.
_NPY_READ_LOCK = threading.Lock()

FORMAT = "backprop-service/network"
VERSION = 1


def read_npz(data: bytes) -> dict[str, NDArray[Any]]:
    """Every array of an ``.npz`` archive (no pickles), read in turn with other threads.

    Raises
    ------
    ModelError
        If ``data`` holds a single ``.npy`` array rather than an archive; numpy's own errors
        (ValueError, OSError, zipfile.BadZipFile) for bytes that are neither.
    """
    with _NPY_READ_LOCK:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise _corrupt("expected an .npz archive, found a single array")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}


def to_bytes(network: Network) -> bytes:
    """Serialize ``network`` losslessly (see the module docstring for the layout)."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "spec": network.spec.to_dict(),
        "steps_trained": network.steps_trained,
        "optimizer_t": network.optimizer_t,
    }
    arrays: dict[str, Any] = {  # Any: savez types its keyword arguments loosely
        "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    }
    for l, (W, b) in enumerate(zip(network.W, network.b, strict=True), start=1):
        arrays[f"W{l}"], arrays[f"b{l}"] = W, b
    for key, values in network.optimizer_state.items():
        for l, value in enumerate(values, start=1):
            arrays[f"{key}{l}"] = value
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _corrupt(reason: str) -> ModelError:
    return ModelError(f"These bytes are not a serialized network: {reason}.")


def from_bytes(data: bytes) -> Network:
    """Rebuild a network from :func:`to_bytes` output, validating every part.

    Raises
    ------
    ModelError
        If the bytes are not a complete, consistent serialized network.
    """
    try:
        arrays = read_npz(data)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, ModelError):
            raise
        raise _corrupt(str(error)) from None
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupt("the JSON header is missing or unreadable") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _corrupt(f"the header does not name the format {FORMAT!r}")
    if header.get("version") != VERSION:
        raise _corrupt(f"version {header.get('version')!r}, expected {VERSION}")
    spec = NetworkSpec.from_dict(header.get("spec", {}))
    L, dtype = spec.L, spec.np_dtype
    state_keys = STATE_KEYS[spec.optimizer.name]
    expected = {f"{key}{l}" for key in ("W", "b", *state_keys) for l in range(1, L + 1)}
    if set(arrays) != expected:
        raise _corrupt(f"members {sorted(arrays)}, expected {sorted(expected)}")
    for name, array in arrays.items():
        if array.dtype != dtype:
            raise _corrupt(f"{name} has dtype {array.dtype}, the spec says {dtype}")
    W, b = check_parameters(
        spec, [arrays[f"W{l}"] for l in range(1, L + 1)], [arrays[f"b{l}"] for l in range(1, L + 1)]
    )
    state: dict[str, list[NDArray[np.floating]]] = {}
    for key in state_keys:
        like = W if key.endswith("W") else b
        state[key] = []
        for l in range(1, L + 1):
            array = arrays[f"{key}{l}"]
            if array.shape != like[l - 1].shape:
                raise _corrupt(f"{key}{l} has shape {array.shape}, expected {like[l - 1].shape}")
            check_finite(f"{key}{l}", array)
            state[key].append(array)
    return Network(
        spec=spec,
        W=W,
        b=b,
        optimizer_state=state,
        steps_trained=check_int("steps_trained", header.get("steps_trained"), 0),
        optimizer_t=check_int("optimizer_t", header.get("optimizer_t"), 0),
    )
