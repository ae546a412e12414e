"""Through a real server (``backprop-service`` in a subprocess, loopback only): multi-epoch
/train calls beside the same steps in-process, request rates beside ``/healthz``, /healthz
latency under training, and a job beside the same steps in-process."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson

from bench.load import Load, interleaved_loads, median_rate, medians, rate_ratio, request_bytes
from bench.reference import Array, Case, make_batch
from bench.steps import local_network
from bench.timing import WALL, interleaved
from model import (
    TrainOptions,
    train,
)
from service.core.settings import Settings
from service.core.wire import encode_matrix
from tests.support.server import ServerProcess, free_port

MEDIUM = Case((784, 128, 64, 10), 256, "relu", "softmax", "float32")
LARGE = Case((784, 512, 512, 10), 1024, "relu", "softmax", "float32")
CAT = Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float64", 0.0075)  # the course's
# Epochs per multi-epoch call (issue 15): a few dozen steps of the medium case, a few of the
# large one, and the course's 200-epoch run of the cat network.
HTTP_CASES = [(MEDIUM, 40), (LARGE, 6), (CAT, 200)]
JOB_CASE = CAT
MAX_TRAIN_EXAMPLES = 200_000  # epochs x m of the long /train call the latency section makes


def blas_env(threads: int) -> dict[str, str]:
    """BLAS pinned to ``threads`` in a server or worker, as the bench pins its own."""
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {name: str(threads) for name in names}


@contextmanager
def server(
    threads: int, workers: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    settings = {
        **blas_env(threads),
        "BACKPROP_MAX_BODY_BYTES": str(512 * 1024 * 1024),
        "BACKPROP_LOG_LEVEL": "warning",
        **(env or {}),
    }
    # The command the Docker image runs (no uvicorn access log: the service logs requests
    # itself), so the figures are the shipped server's.
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "--port", str(port), "--workers", str(workers)]
    with ServerProcess(env=settings, args=command, port=port, startup_timeout=60) as process:
        yield process


def network_body(case: Case) -> dict[str, Any]:
    return {
        "layer_dims": list(case.dims),
        "hidden_activation": case.hidden,
        "output_activation": case.output,
        "initialization": "he",
        "seed": 1,
        "dtype": case.dtype,
        "optimizer": {"name": case.optimizer, "learning_rate": case.learning_rate},
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


def measure_train(process: ServerProcess, case: Case, epochs: int, rounds: int) -> TrainOverhead:
    """One /train call of ``epochs`` full-batch steps beside model.train making them."""
    X, Y = make_batch(case)
    network = local_network(case)
    options = TrainOptions(epochs=epochs)
    bodies = {enc: batch_body(X, Y, enc, epochs=epochs) for enc in ("base64", "json")}
    with httpx.Client(base_url=process.url, timeout=600) as client:
        network_id = create(client, case)

        def over_http(body: bytes) -> Callable[[], None]:
            return lambda: train_call(client, network_id, body)

        contenders: dict[str, Callable[[], object]] = {
            "in-process": lambda: train(network, X, Y, options),
            "HTTP base64": over_http(bodies["base64"]),
            "HTTP nested lists": over_http(bodies["json"]),
        }
        # The warm-up call loads the network into the server's memory, as every call after
        # a client's first finds it.
        timings = interleaved(contenders, rounds, warmup=True, clock=WALL)
    ms = {name: timings.median(name) * 1e3 for name in contenders}
    ratios = {
        name: timings.ratio(name, "in-process") for name in contenders if name != "in-process"
    }
    return TrainOverhead(case, epochs, ms, ratios)


def train_call(client: httpx.Client, network_id: str, body: bytes) -> None:
    response = client.post(
        f"/networks/{network_id}/train",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"/train answered {response.status_code}: {response.text}")


@dataclass(frozen=True)
class RequestRates:
    """Requests per second over 8 keep-alive connections: ``GET /healthz`` and another
    request, on the same server, one after the other in every round."""

    healthz: float  # median over rounds
    other: float
    ratio: float  # other / healthz, median of per-round ratios
    errors: int
    cpu_share: dict[str, float]  # the load generator's CPU time over wall time, median
    server_cores: dict[str, float]  # the server's CPU time over wall time, median
    other_cores: dict[str, float]  # other processes' on the machine meanwhile, median


def versus_healthz(
    process: ServerProcess, payloads: list[bytes], rounds: int, seconds: float
) -> RequestRates:
    """``payloads`` (one connection each) beside as many connections sending GET /healthz."""
    healthz = [request_bytes(f"{process.url}/healthz")] * len(payloads)
    pid = process.process.pid
    loads = {
        "healthz": Load(process.url, healthz, server_pid=pid),
        "other": Load(process.url, payloads, server_pid=pid),
    }
    results = interleaved_loads(loads, rounds, seconds)
    return RequestRates(
        median_rate(results["healthz"]),
        median_rate(results["other"]),
        rate_ratio(results["other"], results["healthz"]),
        sum(r.errors for runs in results.values() for r in runs),
        medians(results, lambda r: r.cpu_share),
        medians(results, lambda r: r.server_cores),
        medians(results, lambda r: r.other_cores),
    )


def measure_predict_rate(process: ServerProcess, rounds: int, seconds: float) -> RequestRates:
    """One-example /predict on a [2, 4, 1] network, 8 connections."""
    tiny = Case((2, 4, 1), 1, "tanh", "sigmoid", "float64", 0.5)
    with httpx.Client(base_url=process.url, timeout=60) as client:
        network_id = create(client, tiny)
    body = orjson.dumps({"X": [[0.5], [0.25]]})
    url = f"{process.url}/networks/{network_id}/predict"
    return versus_healthz(process, [request_bytes(url, "POST", body)] * 8, rounds, seconds)


@dataclass(frozen=True)
class Responsiveness:
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    training_s: float


def measure_responsiveness(process: ServerProcess, epoch_fraction: float) -> Responsiveness:
    """GET /healthz every 10 ms while one long /train call runs."""
    case = LARGE
    # Within the work one synchronous call may run (BACKPROP_MAX_TRAIN_WORK's default).
    parameters = sum(n * (fan_in + 1) for fan_in, n in zip(case.dims, case.dims[1:], strict=False))
    most = Settings.model_fields["max_train_work"].default // (case.m * parameters)
    epochs = max(1, int(min(MAX_TRAIN_EXAMPLES // case.m, most) * epoch_fraction))
    X, Y = make_batch(case)
    body = batch_body(X, Y, "base64", epochs=epochs)
    latencies: list[float] = []
    with httpx.Client(base_url=process.url, timeout=600) as client:
        network_id = create(client, case)
        done = threading.Event()
        started = time.perf_counter()

        def training() -> None:
            try:
                answer = client.post(
                    f"/networks/{network_id}/train",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                answer.raise_for_status()
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
    job_s: float  # from POST /networks/{id}/jobs to the final event, median
    in_process_s: float
    ratio: float  # median of per-round ratios


def measure_job(process: ServerProcess, rounds: int, steps: int) -> JobOverhead:
    """A job of ``steps`` full-batch steps of the cat network, on a new network each round,
    beside model.train making them; the job is timed from its POST to its final event."""
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
                raise RuntimeError(f"POST /networks/{{id}}/jobs answered {response.status_code}")
            # Followed as the README shows, through its server-sent events: the stream ends
            # with the final event (polling every few ms would load the server it measures).
            with client.stream("GET", f"/jobs/{response.json()['id']}/events") as events:
                for line in events.iter_lines():
                    if line.startswith("event: ") and line[7:] in ("failed", "cancelled"):
                        raise RuntimeError(f"the job ended {line[7:]}")
                    if line == "event: succeeded":
                        return
            raise RuntimeError("the job's event stream ended without a final event")

        contenders: dict[str, Callable[[], object]] = {
            "job": job,
            "in-process": lambda: train(network, X, Y, TrainOptions(epochs=steps)),
        }
        timings = interleaved(contenders, rounds, warmup=False, clock=WALL)
    return JobOverhead(
        steps,
        timings.median("job"),
        timings.median("in-process"),
        timings.ratio("job", "in-process"),
    )
