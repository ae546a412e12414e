"""Peak memory of one training call, measured with tracemalloc in a fresh subprocess.

``python -m bench.memory INDEX ENCODING`` parses a /train body the way the service does
(orjson, then the request schema), trains, and prints one JSON line: the peak traced
bytes beside what the call is allowed to hold (one decoded copy of the batch in the
network's dtype, the activation cache, and the parameter buffers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass

from bench.http import batch_body, local_network
from bench.reference import Case, make_batch
from model import TrainOptions, train
from service.plumbing import parse_json
from service.schemas import TrainRequest

MEMORY_CASES = [
    Case((784, 512, 512, 10), 1024, "relu", "softmax", "float32"),
    Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float32", 0.0075),
    Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float64", 0.0075),
]
MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryResult:
    case: Case
    encoding: str
    parsed_mb: float  # the parsed JSON body (Python objects), before decoding
    peak_mb: float  # peak traced during decoding and training, the parsed body included
    batch_mb: float  # X and Y once, in the network's dtype
    cache_mb: float  # Z, A, dZ, dA of every layer
    state_mb: float  # the Trainer's parameter, gradient and moment buffers and the result
    extra_mb: float  # peak - parsed - batch - cache - state: copies beyond the allowance


def probe(case: Case, encoding: str) -> dict[str, float]:
    X, Y = make_batch(case)
    body = batch_body(X, Y, encoding, epochs=2)
    network = local_network(case)
    del X, Y
    itemsize = network.spec.np_dtype.itemsize
    m = case.m
    tracemalloc.start()
    parsed = parse_json(body)
    parsed_bytes = tracemalloc.get_traced_memory()[0]
    request = TrainRequest.model_validate(parsed)
    train(network, request.X, request.Y, TrainOptions(epochs=request.epochs))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    params = sum(w.size + b.size for w, b in zip(network.W, network.b, strict=True))
    batch = (case.dims[0] + case.dims[-1]) * m * itemsize
    cache = sum(4 * n * m for n in case.dims[1:]) * itemsize
    # Current and spare TrainState (theta + gradient each), the result's snapshot and its
    # last gradients: six parameter-sized arrays.
    state = 6 * params * itemsize
    return {
        "parsed_mb": parsed_bytes / MB,
        "peak_mb": peak / MB,
        "batch_mb": batch / MB,
        "cache_mb": cache / MB,
        "state_mb": state / MB,
        "extra_mb": (peak - parsed_bytes - batch - cache - state) / MB,
    }


def measure_memory(index: int, encoding: str) -> MemoryResult:
    """Run :func:`probe` in a fresh interpreter, so nothing of this process is counted."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.memory", str(index), encoding],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ},
    ).stdout
    values = json.loads(output.strip().splitlines()[-1])
    return MemoryResult(MEMORY_CASES[index], encoding, **values)


if __name__ == "__main__":
    print(json.dumps(probe(MEMORY_CASES[int(sys.argv[1])], sys.argv[2])))
