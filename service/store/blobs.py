"""Byte encodings shared by the store backends (no pickle anywhere)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from model import NetworkSpec
from service.store.base import LastGradients


def gradients_to_bytes(gradients: LastGradients) -> bytes:
    arrays = {f"dW{i}": dW for i, dW in enumerate(gradients.dW)}
    arrays.update({f"db{i}": db for i, db in enumerate(gradients.db)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def gradients_from_bytes(data: bytes, version: int, step: int, cost: float) -> LastGradients:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        layers = len(arrays.files) // 2
        dW = [arrays[f"dW{i}"] for i in range(layers)]
        db = [arrays[f"db{i}"] for i in range(layers)]
    return LastGradients(version=version, step=step, cost=cost, dW=dW, db=db)


def spec_to_json(spec: NetworkSpec) -> str:
    return json.dumps(spec.to_dict())


def spec_from_json(text: str) -> NetworkSpec:
    data: dict[str, Any] = json.loads(text)
    return NetworkSpec.from_dict(data)
