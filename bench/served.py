"""The sections measured through real servers: what each runs (fewer rounds with ``quick``)
and the tables and goals it prints. The measurements are in :mod:`bench.http`."""

from __future__ import annotations

from bench.tables import goal, table
from tests.support.server import ServerProcess

ONE_WORKER = ("http", "rates", "latency", "job")


def run(quick: bool, threads: int, sections: set[str]) -> None:
    from bench.http import server

    if sections & set(ONE_WORKER):
        with server(threads) as process:
            print(f"\n(server: backprop-service, one uvicorn worker, {process.url})")
            for name, section in (
                ("http", _http),
                ("rates", _rates),
                ("latency", _latency),
                ("job", _job),
            ):
                if name in sections:
                    section(process, quick)


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
            ],
            [
                [
                    r.healthz,
                    r.other,
                    r.ratio,
                    r.errors,
                    f"{r.server_cores['healthz']:.2f}, {r.server_cores['other']:.2f}",
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
