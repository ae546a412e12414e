"""Byte encodings shared by the store backends (no pickle anywhere)."""

from __future__ import annotations

import functools
import io
import json
from typing import Any

import numpy as np

from model import NetworkSpec, TrainOptions
from model.serialize import read_npz
from service.store.base import JobRequest, LastGradients


def gradients_to_bytes(gradients: LastGradients) -> bytes:
    arrays = {f"dW{i}": dW for i, dW in enumerate(gradients.dW)}
    arrays.update({f"db{i}": db for i, db in enumerate(gradients.db)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def gradients_from_bytes(data: bytes, version: int, step: int, cost: float) -> LastGradients:
    arrays = read_npz(data)
    layers = len(arrays) // 2
    dW = [arrays[f"dW{i}"] for i in range(layers)]
    db = [arrays[f"db{i}"] for i in range(layers)]
    return LastGradients(version=version, step=step, cost=cost, dW=dW, db=db)


def spec_to_json(spec: NetworkSpec) -> str:
    return json.dumps(spec.to_dict())


@functools.lru_cache(maxsize=4096)
def spec_from_json(text: str) -> NetworkSpec:
    """The spec a metadata row holds. Cached by its text: every read of a network (each
    prediction) parses it, and a spec is immutable, so equal text means an equal spec."""
    data: dict[str, Any] = json.loads(text)
    return NetworkSpec.from_dict(data)


def job_request_to_bytes(request: JobRequest) -> bytes:
    """X, Y and the options (as JSON text in a string array) in one ``.npz``."""
    options = request.options
    settings = {
        "epochs": options.epochs,
        "batch_size": options.batch_size,
        "shuffle_seed": options.shuffle_seed,
        "learning_rate": options.learning_rate,
    }
    buffer = io.BytesIO()
    np.savez(buffer, X=request.X, Y=request.Y, options=np.array(json.dumps(settings)))
    return buffer.getvalue()


def job_request_from_bytes(data: bytes) -> JobRequest:
    arrays = read_npz(data)
    settings: dict[str, Any] = json.loads(str(arrays["options"]))
    return JobRequest(X=arrays["X"], Y=arrays["Y"], options=TrainOptions(**settings))
