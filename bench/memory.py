"""Peak memory of one training call, measured in a fresh subprocess by its resident set.

``python -m bench.memory INDEX ENCODING FILE`` reads a /train body from FILE, resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``), parses the body the way the service does
(orjson), resets the mark again, validates it (the request schema), trains, and prints one
JSON line: the growth of the peak resident set beside what the call is allowed to hold (the
parsed body, one decoded copy of the batch in the network's dtype, the activation cache and
the parameter buffers). Resident memory, not tracemalloc: orjson reserves address space
proportional to the body that it never touches, which tracemalloc would count.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.http import batch_body
from bench.reference import Case, make_batch
from bench.steps import local_network
from model import TrainOptions, train
from model.propagation import Buffers
from service.core.http import parse_json
from service.training.schemas import TrainRequest

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
    parsed_mb: float  # resident growth from parsing the JSON body (before decoding)
    parse_peak_mb: float  # peak resident growth while parsing (orjson's scratch included)
    peak_mb: float  # peak resident growth over decoding and training, after the parse
    batch_mb: float  # X and Y once, in the network's dtype
    cache_mb: float  # the step's buffers (Buffers: Z and A of every layer, dZ[L], scratch)
    state_mb: float  # the Trainer's parameter, gradient and moment buffers and the result
    extra_mb: float  # peak - parsed - batch - cache - state: copies beyond the allowance


def _status(field: str) -> float:
    """A VmRSS/VmHWM line of /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def probe(case: Case, body: bytes) -> dict[str, float]:
    network = local_network(case)
    # Warm up numpy, BLAS and pydantic on a small batch, so their one-time buffers are
    # resident before the mark.
    small = Case(case.dims, 2, case.hidden, case.output, case.dtype, case.learning_rate)
    X, Y = make_batch(small)
    train(network, X, Y, TrainOptions(epochs=1))
    TrainRequest.model_validate(parse_json(batch_body(X, Y, "json", epochs=1)))
    del X, Y
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark restarts at the current RSS
    start = _status("VmRSS")
    parsed = parse_json(body)
    parsed_mb = _status("VmRSS") - start
    # orjson's own scratch space while parsing is freed before it returns: reported apart
    # (parse_peak_mb), and the mark restarts so that it does not hide what comes next.
    parse_peak = _status("VmHWM") - start
    Path("/proc/self/clear_refs").write_text("5")
    request = TrainRequest.model_validate(parsed)
    train(network, request.X, request.Y, TrainOptions(epochs=request.epochs))
    peak = _status("VmHWM") - start
    itemsize = network.spec.np_dtype.itemsize
    m = case.m
    params = sum(w.size + b.size for w, b in zip(network.W, network.b, strict=True))
    batch = (case.dims[0] + case.dims[-1]) * m * itemsize / MB
    cache = Buffers(network.spec, m).nbytes / MB
    # Current and spare TrainState (parameters and gradients each), the result's snapshot
    # and its last gradients: six parameter-sized arrays.
    state = 6 * params * itemsize / MB
    return {
        "parsed_mb": parsed_mb,
        "parse_peak_mb": parse_peak,
        "peak_mb": peak,
        "batch_mb": batch,
        "cache_mb": cache,
        "state_mb": state,
        "extra_mb": peak - parsed_mb - batch - cache - state,
    }


def measure_memory(index: int, encoding: str) -> MemoryResult:
    """Run :func:`probe` in a fresh interpreter, so nothing of this process is counted."""
    case = MEMORY_CASES[index]
    X, Y = make_batch(case)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "body.json"
        path.write_bytes(batch_body(X, Y, encoding, epochs=2))
        del X, Y
        output = subprocess.run(
            [sys.executable, "-m", "bench.memory", str(index), str(path)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ},
        ).stdout
    values = json.loads(output.strip().splitlines()[-1])
    return MemoryResult(case, encoding, **values)


if __name__ == "__main__":
    body = Path(sys.argv[2]).read_bytes()
    print(json.dumps(probe(MEMORY_CASES[int(sys.argv[1])], body)))
