"""The sections measured through real servers: what each runs (fewer rounds with ``quick``)
and the tables and goals it prints. The measurements are in :mod:`bench.http`,
:mod:`bench.onestep` and :mod:`bench.queue`."""

from __future__ import annotations

import dataclasses
import random
import statistics

from bench.tables import goal, load_average, table
from service.store.checkpoints import CEILING
from tests.support.server import ServerProcess

ONE_WORKER = ("onestep", "http", "throughput", "rates", "latency", "job")
ONE_STEP_GOALS = {"[784, 128, 64, 10]": 3.0, "[784, 512, 512, 10]": 1.5}
CHECKPOINT_SECONDS = 2.0  # the service's default


def run(quick: bool, threads: int, sections: set[str]) -> None:
    from bench.http import server

    if sections & {"throughput", "rates", "workers", "queue"}:
        print(
            "\n(cores, in the tables below: CPU seconds per wall second of the server's or the "
            "workers' processes, of the load generator, and of every other process on the "
            "machine meanwhile, which a shared machine takes from the measurement)"
        )
    if sections & set(ONE_WORKER):
        with server(threads) as process:
            print(f"\n(server: backprop-service, one uvicorn worker, {process.url})")
            for name, section in (
                ("onestep", _onestep),
                ("http", _http),
                ("throughput", _throughput),
                ("rates", _rates),
                ("latency", _latency),
                ("job", _job),
            ):
                if name in sections:
                    section(process, quick)
    if "workers" in sections:
        _workers(quick, threads)
    if "queue" in sections:
        _queue(quick, threads)


def _onestep(process: ServerProcess, quick: bool) -> None:
    from bench.http import LARGE, MEDIUM
    from bench.onestep import measure_one_step

    rounds = 3 if quick else 11
    print(
        "\n## One-step /train calls (epochs=1, base64) over one keep-alive connection, beside "
        "the same step in-process, ms per call, medians"
    )
    print(
        "model.train: train(network, X, Y, epochs=1) on decoded arrays (what the route does: "
        "a Trainer, the step, the final cost's forward pass); step: a warm Trainer's step "
        "alone. /train and /healthz: over the bench's own client (bench.load.KeepAlive: "
        "prebuilt request bytes, the answer read by its Content-Length), which the goal "
        "counts; the same over httpx, which costs its caller about a millisecond more per "
        "call. Ratios: median of per-round ratios"
    )
    rows, lines = [], []
    for case in (MEDIUM, LARGE):
        for optimizer in ("gd", "adam"):
            r = measure_one_step(
                process,
                dataclasses.replace(case, optimizer=optimizer),
                rounds,
                10 if case is MEDIUM else 3,
            )
            rows.append(
                [
                    case.label,
                    optimizer,
                    r.ms["/train"],
                    r.ms["model.train"],
                    r.ratios["model.train"],
                    r.ms["step"],
                    r.ratios["step"],
                    r.ms["/healthz"],
                    r.ms["/train httpx"],
                    r.ratios["httpx model.train"],
                    r.ms["/healthz httpx"],
                ]
            )
            bound = ONE_STEP_GOALS[str(list(case.dims))]
            ratio, step, httpx = (r.ratios[k] for k in ("model.train", "step", "httpx model.train"))
            lines.append(
                f"goal {case.label} {optimizer}: the /train call over model.train {ratio:.2f} "
                f"<= {bound:g} {goal(ratio <= bound)} (over the step alone: {step:.2f}; over "
                f"httpx: {httpx:.2f})"
            )
    print(
        table(
            [
                "case",
                "optimizer",
                "/train",
                "model.train",
                "ratio",
                "step",
                "ratio",
                "GET /healthz",
                "/train httpx",
                "ratio",
                "GET /healthz httpx",
            ],
            rows,
        )
    )
    print("\n".join(lines))


def _http(process: ServerProcess, quick: bool) -> None:
    from bench.http import HTTP_CASES, measure_train

    rounds = 2 if quick else 7
    print(
        "\n## Multi-epoch /train calls beside the same steps in-process (model.train on "
        "decoded arrays), ms per call, medians"
    )
    print("goals on base64 bodies; nested lists for comparison")
    rows, lines = [], []
    for case, epochs in HTTP_CASES:
        r = measure_train(process, case, epochs, rounds)
        b64 = r.ratios["HTTP base64"]
        rows.append(
            [
                case.label,
                epochs,
                r.ms["in-process"],
                r.ms["HTTP base64"],
                b64,
                r.ms["HTTP nested lists"],
                r.ratios["HTTP nested lists"],
            ]
        )
        lines.append(
            f"goal {case.label}, {epochs} epochs: base64 {b64:.2f} <= 1.15 {goal(b64 <= 1.15)}"
        )
    print(table(["case", "epochs", "in-process", "base64", "ratio", "nested lists", "ratio"], rows))
    print("\n".join(lines))


def _throughput(process: ServerProcess, quick: bool) -> None:
    from bench.onestep import CLIENTS, TINY, measure_throughput

    rounds, seconds = (1, 1.5) if quick else (5, 3.0)
    t = measure_throughput(process, rounds, seconds)
    r = t.rates
    print(
        f"\n## One-step /train calls of {list(TINY.dims)} m={TINY.m} (base64) from {CLIENTS} "
        f"keep-alive clients, each on a network of its own, beside GET /healthz from "
        f"{CLIENTS}, one worker, medians of {rounds} rounds of {seconds:g} s"
    )
    print(
        table(
            [
                "GET /healthz req/s",
                "/train calls/s",
                "train/healthz",
                "errors",
                "server cores (healthz, train)",
                "generator cores (healthz, train)",
                "others' cores (healthz, train)",
            ],
            [
                [
                    r.healthz,
                    r.other,
                    r.ratio,
                    r.errors,
                    f"{r.server_cores['healthz']:.2f}, {r.server_cores['other']:.2f}",
                    f"{r.cpu_share['healthz']:.2f}, {r.cpu_share['other']:.2f}",
                    f"{r.other_cores['healthz']:.2f}, {r.other_cores['other']:.2f}",
                ]
            ],
        )
    )
    print(
        f"the load generator (bench/load.py) is not the bottleneck: the same {CLIENTS} /train "
        f"requests sent to a server that answers every request with the same bytes "
        f"(python -m bench.load) go at {t.fixed:.0f}/s, {t.fixed / r.healthz:.1f}x the /healthz "
        f"rate, the generator then using {t.fixed_cpu_share:.2f} of a core; driving the service "
        f"it used {max(r.cpu_share.values()):.2f} of a core at most"
    )
    print(f"goal /train calls >= 0.25x the /healthz rate: {r.ratio:.2f} {goal(r.ratio >= 0.25)}")


def _rates(process: ServerProcess, quick: bool) -> None:
    from bench.http import measure_predict_rate

    rounds, seconds = (1, 2.0) if quick else (3, 4.0)
    r = measure_predict_rate(process, rounds, seconds)
    print(
        "\n## One-example /predict on a [2, 4, 1] network beside GET /healthz, 8 keep-alive "
        f"clients each, one worker, medians of {rounds} rounds of {seconds:g} s"
    )
    print(
        table(
            [
                "GET /healthz req/s",
                "/predict req/s",
                "predict/healthz",
                "errors",
                "server cores (healthz, predict)",
                "others' cores (healthz, predict)",
            ],
            [
                [
                    r.healthz,
                    r.other,
                    r.ratio,
                    r.errors,
                    f"{r.server_cores['healthz']:.2f}, {r.server_cores['other']:.2f}",
                    f"{r.other_cores['healthz']:.2f}, {r.other_cores['other']:.2f}",
                ]
            ],
        )
    )
    print(f"goal /predict >= 0.5x the /healthz rate: {r.ratio:.2f} {goal(r.ratio >= 0.5)}")


def _latency(process: ServerProcess, quick: bool) -> None:
    from bench.http import measure_responsiveness

    r = measure_responsiveness(process, 0.3 if quick else 1.0)
    print(
        "\n## GET /healthz every 10 ms while one long /train runs "
        f"({r.training_s:.1f} s, {r.samples} probes)"
    )
    print(table(["p50 ms", "p99 ms", "max ms"], [[r.p50_ms, r.p99_ms, r.max_ms]]))
    print(f"goal p99 <= 50 ms: {r.p99_ms:.1f} {goal(r.p99_ms <= 50)}")


def _job(process: ServerProcess, quick: bool) -> None:
    from bench.http import JOB_CASE, measure_job

    steps = 250 if quick else 2500
    r = measure_job(process, 1 if quick else 2, steps)
    print(
        f"\n## A job of {steps} steps on {list(JOB_CASE.dims)}, m={JOB_CASE.m}, float64, in the "
        "service (no queue), beside the same steps in-process, seconds, medians"
    )
    print(table(["job s", "in-process s", "ratio"], [[r.job_s, r.in_process_s, r.ratio]]))
    print(f"goal job <= 1.2x in-process: {r.ratio:.2f} {goal(r.ratio <= 1.2)}")


def _workers(quick: bool, threads: int) -> None:
    from bench.onestep import measure_workers

    rounds, seconds = (2, 1.5) if quick else (6, 3.0)
    print(f"\n(now: {load_average()})")
    r = measure_workers(threads, rounds, seconds)
    print(
        f"\n## One-step /train calls of {r.case.label} (gd, base64) from 2 keep-alive clients, "
        "each on a network of its own: backprop-service --workers 1 beside --workers 2 (both "
        f"up, measured in turn), medians of {rounds} rounds of {seconds:g} s"
    )
    print(
        table(
            ["server", "calls/s", "server cores", "generator cores", "others' cores"],
            [
                [name, rate, r.server_cores[name], r.cpu_share[name], r.other_cores[name]]
                for name, rate in r.rates.items()
            ],
        )
    )
    print(
        f"errors: {r.errors}. The kernel gives a new connection to whichever worker accepts "
        f"first: {r.placements} pairs of connections were opened for {rounds} rounds until "
        "each worker held one (as a load balancer in front would place them); "
        f"{r.placements - rounds} had both on one worker"
    )
    per_cpu = ", ".join(f"{n} {rate / r.server_cores[n]:.0f}" for n, rate in r.rates.items())
    print(f"calls per CPU second of the server's processes (from the medians): {per_cpu}")
    wal = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in r.wal_bytes.items())
    print(f"the SQLite WAL file after the rounds (at most {CEILING} times its limit): {wal}")
    print(f"goal 2 workers >= 1.6x 1 worker: {r.ratio:.2f} {goal(r.ratio >= 1.6)}")


def _queue(quick: bool, threads: int) -> None:
    from bench.http import JOB_CASE, measure_job
    from bench.queue import broker_missing, cluster, measure_job_scaling, measure_kills

    print(
        "\n## Jobs on a queue: a service with BACKPROP_QUEUE_URL (RabbitMQ, a scratch virtual "
        "host) and `backprop-service worker` processes, one SQLite store file they all open, "
        f"BACKPROP_CHECKPOINT_SECONDS={CHECKPOINT_SECONDS:g}; jobs train {list(JOB_CASE.dims)} "
        f"m={JOB_CASE.m} float64"
    )
    missing = broker_missing()
    if missing:
        print(f"skipped: {missing}")
        return
    with cluster(threads, CHECKPOINT_SECONDS) as running:
        running.add_worker()
        steps = 250 if quick else 2500
        # Four rounds: a 20 s job on a shared machine moves by more than the goal's margin.
        job = measure_job(running.service, 1 if quick else 4, steps)
        print(
            f"\n### A job of {steps} steps through the queue (the service and one worker) "
            "beside the same steps in-process, seconds from POST to the final event, medians"
        )
        print(table(["job s", "in-process s", "ratio"], [[job.job_s, job.in_process_s, job.ratio]]))
        print(f"goal job <= 1.1x in-process: {job.ratio:.2f} {goal(job.ratio <= 1.1)}")

        running.add_worker()
        rounds, steps = (1, 200) if quick else (3, 1500)
        print(f"\n(now: {load_average()})")
        s = measure_job_scaling(running, rounds, steps)
        print(
            f"\n### One worker running one job of {steps} steps beside two workers running two "
            f"at once (in turn, {rounds} rounds), steps per second, medians"
        )
        print(
            table(
                ["", "steps/s", "workers' cores", "others' cores"],
                [
                    [name, rate, s.worker_cores[name], s.other_cores[name]]
                    for name, rate in s.rates.items()
                ],
            )
        )
        print(
            "a job's rate: its steps / (finished_at - started_at) in the store; two workers': "
            f"the sum of their jobs' rates (the second started {s.stagger_s:.2f} s after the "
            "first, median)"
        )
        per_cpu = ", ".join(f"{n} {v / s.worker_cores[n]:.0f}" for n, v in s.rates.items())
        print(f"steps per CPU second of the workers (from the medians): {per_cpu}")
        print(f"goal 2 workers >= 1.7x 1 worker: {s.ratio:.2f} {goal(s.ratio >= 1.7)}")

        trials = 2 if quick else 6
        seed = random.SystemRandom().randrange(2**32)
        kills = measure_kills(running, trials, CHECKPOINT_SECONDS, random.Random(seed))
        print(
            f"\n### SIGKILL of the worker running a job, at a random moment (seed {seed}), "
            f"{trials} trials; another worker resumes it"
        )
        print(
            "killed: seconds after the job's first checkpoint was seen; trained: the steps made "
            "when killed, estimated from the last report (every 0.5 s, read every 20 ms) and "
            "the job's rate; lost: (trained - checkpoint) / rate, and the same from the last "
            "report alone (a lower bound)"
        )
        print(
            table(
                [
                    "killed s",
                    "checkpoint",
                    "reported",
                    "trained",
                    "steps/s",
                    "lost s",
                    "lost s (reported)",
                    "resumed from",
                    "resumed after s",
                ],
                [
                    [
                        k.killed_after_s,
                        k.checkpoint_step,
                        k.reported_step,
                        round(k.trained_step),
                        k.steps_per_s,
                        k.lost_s,
                        k.reported_lost_s,
                        k.resumed_from,
                        k.resumed_after_s,
                    ]
                    for k in kills
                ],
            )
        )
        lost = [k.lost_s for k in kills]
        worst = max(lost)
        print(
            f"goal work lost to a SIGKILL <= one checkpoint interval ({CHECKPOINT_SECONDS:g} s): "
            f"max {worst:.2f} s, median {statistics.median(lost):.2f} s "
            f"{goal(worst <= CHECKPOINT_SECONDS)}"
        )
