"""Through a real server (``backprop-service`` in a subprocess, one worker, loopback only):
/train beside the same steps in-process, request rates, /healthz latency under training, and
a job beside the same steps in-process."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson

from bench.load import LoadResult, hammer
from bench.reference import Array, Case, make_batch
from bench.steps import local_network
from bench.timing import WALL, interleaved
from model import (
    TrainOptions,
    train,
)
from service.core.wire import encode_matrix
from tests.support.server import ServerProcess, free_port

HTTP_CASES = [
    Case((784, 128, 64, 10), 256, "relu", "softmax", "float32"),
    Case((784, 512, 512, 10), 1024, "relu", "softmax", "float32"),
    Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float64", 0.0075),
]
JOB_CASE = Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float64", 0.0075)
MAX_TRAIN_EXAMPLES = 200_000  # the service's default bound on epochs x m per /train call


@contextmanager
def server(threads: int) -> Iterator[ServerProcess]:
    env = {
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "BACKPROP_MAX_BODY_BYTES": str(512 * 1024 * 1024),
        "BACKPROP_LOG_LEVEL": "warning",
    }
    # The command the Docker image runs (no uvicorn access log: the service logs requests
    # itself), so the figures are the shipped server's.
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "--port", str(port)]
    with ServerProcess(env=env, args=command, port=port, startup_timeout=60) as process:
        yield process


def network_body(case: Case) -> dict[str, Any]:
    return {
        "layer_dims": list(case.dims),
        "hidden_activation": case.hidden,
        "output_activation": case.output,
        "initialization": "he",
        "seed": 1,
        "dtype": case.dtype,
        "optimizer": {"name": "gd", "learning_rate": case.learning_rate},
    }


def batch_body(X: Array, Y: Array, encoding: str, **extra: Any) -> bytes:
    if encoding == "base64":
        matrices = {"X": encode_matrix(X, "base64"), "Y": encode_matrix(Y, "base64")}
    else:
        matrices = {"X": X, "Y": Y}
    return orjson.dumps({**matrices, **extra}, option=orjson.OPT_SERIALIZE_NUMPY)


def create(client: httpx.Client, case: Case) -> str:
    response = client.post("/networks", json=network_body(case))
    response.raise_for_status()
    network_id: str = response.json()["id"]
    return network_id


@dataclass(frozen=True)
class TrainOverhead:
    case: Case
    epochs: int
    ms: dict[str, float]  # median per call
    ratios: dict[str, float]  # each HTTP form over in-process


def measure_train(
    process: ServerProcess, case: Case, rounds: int, epoch_fraction: float
) -> TrainOverhead:
    epochs = max(1, int(MAX_TRAIN_EXAMPLES // case.m * epoch_fraction))
    X, Y = make_batch(case)
    network = local_network(case)
    options = TrainOptions(epochs=epochs)
    bodies = {enc: batch_body(X, Y, enc, epochs=epochs) for enc in ("base64", "json")}
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=process.url, timeout=600) as client:
        network_id = create(client, case)

        def over_http(body: bytes) -> Callable[[], None]:
            def call() -> None:
                response = client.post(
                    f"/networks/{network_id}/train", content=body, headers=headers
                )
                if response.status_code != 200:
                    raise RuntimeError(f"/train answered {response.status_code}: {response.text}")

            return call

        contenders: dict[str, Callable[[], object]] = {
            "in-process": lambda: train(network, X, Y, options),
            "HTTP base64": over_http(bodies["base64"]),
            "HTTP nested lists": over_http(bodies["json"]),
        }
        timings = interleaved(contenders, rounds, warmup=False, clock=WALL)
    ms = {name: timings.median(name) * 1e3 for name in contenders}
    ratios = {
        name: timings.ratio(name, "in-process") for name in contenders if name != "in-process"
    }
    return TrainOverhead(case, epochs, ms, ratios)


@dataclass(frozen=True)
class RequestRates:
    healthz: float  # requests per second, median over rounds
    predict: float
    ratio: float  # predict / healthz, median of per-round ratios
    errors: int


def measure_rates(process: ServerProcess, rounds: int, seconds: float) -> RequestRates:
    tiny = Case((2, 4, 1), 1, "tanh", "sigmoid", "float64", 0.5)
    with httpx.Client(base_url=process.url, timeout=60) as client:
        network_id = create(client, tiny)
    predict_body = orjson.dumps({"X": [[0.5], [0.25]]})
    healthz, predict, errors = [], [], 0
    for _ in range(rounds):
        results: list[LoadResult] = [
            hammer(f"{process.url}/healthz", seconds=seconds),
            hammer(
                f"{process.url}/networks/{network_id}/predict", "POST", predict_body, 8, seconds
            ),
        ]
        healthz.append(results[0].rate)
        predict.append(results[1].rate)
        errors += results[0].errors + results[1].errors
    ratio = statistics.median(p / h for p, h in zip(predict, healthz, strict=True))
    return RequestRates(statistics.median(healthz), statistics.median(predict), ratio, errors)


@dataclass(frozen=True)
class Responsiveness:
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    training_s: float


def measure_responsiveness(process: ServerProcess, epoch_fraction: float) -> Responsiveness:
    """GET /healthz every 10 ms while one long /train call runs."""
    case = HTTP_CASES[1]
    epochs = max(1, int(MAX_TRAIN_EXAMPLES // case.m * epoch_fraction))
    X, Y = make_batch(case)
    body = batch_body(X, Y, "base64", epochs=epochs)
    latencies: list[float] = []
    with httpx.Client(base_url=process.url, timeout=600) as client:
        network_id = create(client, case)
        done = threading.Event()
        started = time.perf_counter()

        def training() -> None:
            try:
                client.post(
                    f"/networks/{network_id}/train",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            finally:
                done.set()

        worker = threading.Thread(target=training)
        worker.start()
        time.sleep(0.2)  # let the body arrive and the training start
        with httpx.Client(base_url=process.url, timeout=60) as probe:
            while not done.is_set():
                start = time.perf_counter()
                probe.get("/healthz")
                latencies.append(time.perf_counter() - start)
                time.sleep(0.01)
        worker.join()
        elapsed = time.perf_counter() - started
    if not latencies:
        latencies = [float("nan")]
    ordered = np.sort(np.array(latencies)) * 1e3
    return Responsiveness(
        float(np.percentile(ordered, 50)),
        float(np.percentile(ordered, 99)),
        float(ordered[-1]),
        len(latencies),
        elapsed,
    )


@dataclass(frozen=True)
class JobOverhead:
    steps: int
    job_s: float | None
    in_process_s: float
    ratio: float | None
    note: str


def measure_job(process: ServerProcess, rounds: int, steps: int) -> JobOverhead:
    case = JOB_CASE
    X, Y = make_batch(case)
    network = local_network(case)
    body = batch_body(X, Y, "base64", epochs=steps)
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=process.url, timeout=600) as client:

        def job() -> None:
            network_id = create(client, case)
            response = client.post(f"/networks/{network_id}/jobs", content=body, headers=headers)
            if response.status_code != 202:
                raise LookupError(f"POST /networks/{{id}}/jobs answered {response.status_code}")
            location = response.headers.get("location") or f"/jobs/{response.json()['id']}"
            # Followed as the README shows, through its server-sent events: the stream ends
            # with the final event (polling every few ms would load the server it measures).
            with client.stream("GET", f"{location}/events") as events:
                for line in events.iter_lines():
                    if line.startswith("event: ") and line[7:] in ("failed", "cancelled"):
                        raise RuntimeError(f"the job ended {line[7:]}")
                    if line == "event: succeeded":
                        return
            raise RuntimeError("the job's event stream ended without a final event")

        try:
            timings = interleaved(
                {
                    "job": job,
                    "in-process": lambda: train(network, X, Y, TrainOptions(epochs=steps)),
                },
                rounds,
                warmup=False,
                clock=WALL,
            )
        except LookupError as missing:
            in_process = time.perf_counter()
            train(network, X, Y, TrainOptions(epochs=steps))
            elapsed = time.perf_counter() - in_process
            return JobOverhead(steps, None, elapsed, None, f"not measurable yet: {missing}")
    return JobOverhead(
        steps,
        timings.median("job"),
        timings.median("in-process"),
        timings.ratio("job", "in-process"),
        "",
    )
