"""Round 1 kept a network as one ``.npz`` archive (a JSON header and one array per W, b and
moment), and last gradients likewise; the migration to raw columns reads them here, once."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model import NetworkSpec
from model.network import MOMENTS


def _arrays(body: bytes) -> dict[str, NDArray[Any]]:
    with np.load(io.BytesIO(body), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def network_columns(body: bytes) -> tuple[dict[str, Any], bytes, bytes, int]:
    """(spec dict, parameter bytes, moment bytes, optimizer_t) of a round-1 network body."""
    arrays = _arrays(body)
    header = json.loads(arrays.pop("header").tobytes().decode())
    spec = NetworkSpec.from_dict(header["spec"])
    little = spec.np_dtype.newbyteorder("<")
    layers = range(1, spec.L + 1)

    def flat(prefix: str) -> bytes:
        parts = [arrays[f"{prefix}W{l}"].ravel() for l in layers]
        parts += [arrays[f"{prefix}b{l}"].ravel() for l in layers]
        return np.concatenate(parts).astype(little).tobytes()

    moments = b"".join(flat(name) for name in MOMENTS[spec.optimizer.name])
    return spec.to_dict(), flat(""), moments, int(header["optimizer_t"])


def gradient_bytes(body: bytes, dtype: np.dtype[Any]) -> bytes:
    """Round 1's last gradients (``dW0``, ..., ``db0``, ... 0-based) as one flat vector."""
    arrays = _arrays(body)
    layers = range(len(arrays) // 2)
    parts = [arrays[f"dW{i}"].ravel() for i in layers] + [arrays[f"db{i}"].ravel() for i in layers]
    return np.concatenate(parts).astype(dtype.newbyteorder("<")).tobytes()
