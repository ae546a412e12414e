"""One training step per call, as a client streaming mini-batches sends them: what such a call
costs beside the same step in-process, how many of them a server answers per second beside
``GET /healthz``, and how that rate grows with a second uvicorn worker.

Every call commits (the network's version goes up by one), so successive calls train the
same warm network, as a streaming client's do. Each client trains a network of its own:
calls on one network take turns on its version, so clients sharing one would measure that
queue rather than the server.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.http import MEDIUM, RequestRates, batch_body, create, server, train_call, versus_healthz
from bench.load import (
    KeepAlive,
    Load,
    interleaved_loads,
    median_rate,
    medians,
    rate_ratio,
    request_bytes,
    serving_processes,
)
from bench.reference import Case, make_batch
from bench.steps import local_network, trainer_for
from bench.timing import WALL, interleaved
from model import TrainOptions, train
from tests.support.server import ServerProcess, free_port

TINY = Case((2, 4, 1), 4, "tanh", "sigmoid", "float64", 0.5)
CLIENTS = 8
ONE_STEP = TrainOptions(epochs=1)


@dataclass(frozen=True)
class OneStepCost:
    case: Case
    ms: dict[str, float]  # per call or step, median over rounds
    ratios: dict[str, float]  # the /train call over each in-process contender (httpx's too)


def measure_one_step(process: ServerProcess, case: Case, rounds: int, calls: int) -> OneStepCost:
    """``calls`` one-step /train calls over one keep-alive connection, beside as many steps
    in-process: ``model.train`` with epochs=1 (the work the route does: a Trainer, the step
    and the final cost's forward pass) and a warm Trainer's bare step (the floor).

    The calls go over two clients in turn: the bench's own (:class:`bench.load.KeepAlive`,
    prebuilt request bytes: what a call costs the server) and httpx (what it costs a client
    that uses httpx, about a millisecond more); ``GET /healthz`` over each shows what any
    call costs that client and the server."""
    X, Y = make_batch(case)
    network = local_network(case)
    trainer = trainer_for(case)
    body = batch_body(X, Y, "base64", epochs=1)

    def repeat(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                call()

        return run

    with httpx.Client(base_url=process.url, timeout=120) as client:
        network_id = create(client, case)
        train_request = request_bytes(f"{process.url}/networks/{network_id}/train", "POST", body)
        healthz_request = request_bytes(f"{process.url}/healthz")
        raw = KeepAlive(process.url)
        contenders: dict[str, Callable[[], object]] = {
            "/train": repeat(lambda: raw.send(train_request)),
            "/train httpx": repeat(lambda: train_call(client, network_id, body)),
            "model.train": repeat(lambda: train(network, X, Y, ONE_STEP)),
            "step": lambda: trainer.run(calls),
            "/healthz": repeat(lambda: raw.send(healthz_request)),
            "/healthz httpx": repeat(lambda: client.get("/healthz").raise_for_status()),
        }
        units = dict.fromkeys(contenders, calls)
        try:
            timings = interleaved(contenders, rounds, units, warmup=True, clock=WALL)
        finally:
            raw.close()
    ms = {name: timings.median(name) * 1e3 for name in contenders}
    ratios = {
        name: timings.ratio(call, baseline)
        for name, call, baseline in (
            ("model.train", "/train", "model.train"),
            ("step", "/train", "step"),
            ("httpx model.train", "/train httpx", "model.train"),
        )
    }
    return OneStepCost(case, ms, ratios)


@dataclass(frozen=True)
class Throughput:
    rates: RequestRates  # one-step /train calls beside GET /healthz
    fixed: float  # the generator's rate against a server answering the same bytes to all
    fixed_cpu_share: float


def measure_throughput(process: ServerProcess, rounds: int, seconds: float) -> Throughput:
    """One-step /train calls of the [2, 4, 1] network on 4 examples from 8 clients, each on a
    network of its own, beside 8 clients of ``GET /healthz``; then the same /train requests
    against the fixed server of :mod:`bench.load`, the generator's own ceiling."""
    X, Y = make_batch(TINY)
    body = batch_body(X, Y, "base64", epochs=1)
    with httpx.Client(base_url=process.url, timeout=60) as client:
        ids = [create(client, TINY) for _ in range(CLIENTS)]
    payloads = [
        request_bytes(f"{process.url}/networks/{network_id}/train", "POST", body)
        for network_id in ids
    ]
    rates = versus_healthz(process, payloads, rounds, seconds)
    port = free_port()
    command = [sys.executable, "-m", "bench.load", str(port)]
    with ServerProcess(args=command, port=port) as fixed_server:
        results = interleaved_loads({"fixed": Load(fixed_server.url, payloads)}, rounds, seconds)
    fixed = results["fixed"]
    return Throughput(rates, median_rate(fixed), statistics.median(r.cpu_share for r in fixed))


@dataclass(frozen=True)
class WorkerScaling:
    case: Case
    rates: dict[str, float]  # calls per second with 1 and 2 workers, median over rounds
    ratio: float  # 2 workers over 1, median of per-round ratios
    cpu_share: dict[str, float]  # the load generator's, median
    server_cores: dict[str, float]  # the server's CPU time over wall time, median
    other_cores: dict[str, float]  # other processes' on the machine meanwhile, median
    errors: int
    placements: int  # connection pairs opened for the 2-worker server
    rounds: int
    wal_bytes: dict[str, int]  # each server's SQLite WAL file after the rounds


def measure_workers(threads: int, rounds: int, seconds: float) -> WorkerScaling:
    """Two clients, each streaming one-step calls of the medium case to a network of its
    own, against ``backprop-service --workers 1`` and ``--workers 2`` (both running, measured
    in turn within each round).

    The kernel hands a new connection to whichever worker process accepts it first, and a
    keep-alive connection stays there: two clients may well both land on one worker. For
    the two-worker server the connections are opened again until each worker holds one, as
    a load balancer in front would place them; how many pairs that took is reported."""
    case = MEDIUM
    X, Y = make_batch(case)
    body = batch_body(X, Y, "base64", epochs=1)
    loads: dict[str, Load] = {}
    wals: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        for workers in (1, 2):
            data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            store = {"BACKPROP_DATABASE_URL": f"sqlite:///{data / 'bench.db'}"}
            process = stack.enter_context(server(threads, workers, store))
            with httpx.Client(base_url=process.url, timeout=60) as client:
                ids = [create(client, case) for _ in range(2)]
                for network_id in ids:  # loaded warm in whichever worker answers
                    train_call(client, network_id, body)
            payloads = [
                request_bytes(f"{process.url}/networks/{n}/train", "POST", body) for n in ids
            ]
            placed = None if workers == 1 else _one_connection_per_worker(process)
            name = f"{workers} worker{'s' * (workers > 1)}"
            loads[name] = Load(process.url, payloads, placed, process.process.pid)
            wals[name] = data / "bench.db-wal"
        results = interleaved_loads(loads, rounds, seconds)
        wal_bytes = {name: path.stat().st_size for name, path in wals.items()}
    one, two = results["1 worker"], results["2 workers"]
    return WorkerScaling(
        case,
        {name: median_rate(runs) for name, runs in results.items()},
        rate_ratio(two, one),
        medians(results, lambda r: r.cpu_share),
        medians(results, lambda r: r.server_cores),
        medians(results, lambda r: r.other_cores),
        sum(r.errors for runs in results.values() for r in runs),
        sum(r.placements for r in two),
        rounds,
        wal_bytes,
    )


def _one_connection_per_worker(process: ServerProcess) -> Callable[[list[int]], bool]:
    def placed(client_ports: list[int]) -> bool:
        # A connection is established before a worker accepts it: wait for the accepts.
        deadline = time.monotonic() + 2.0
        while -1 in (pids := serving_processes(process.process.pid, process.port, client_ports)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker of {process.url} accepted a connection in 2 s")
            time.sleep(0.01)
        return len(set(pids)) == len(pids)

    return placed
