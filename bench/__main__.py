"""``python -m bench [--quick] [--threads N] [--only SECTION ...]``: every performance
measurement of issue #5, side by side in one run, printed as tables of ratios.

BLAS is pinned to one thread (``--threads``) before numpy is imported, here and in the
server subprocess. Each ratio is the median over rounds of a ratio measured within one
round (see :mod:`bench.timing`), so the load of a shared machine mostly cancels out; the
load average is printed at the start and at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

SECTIONS = ("steps", "wire", "http", "rates", "latency", "memory", "job", "playground")


def _pin_threads(threads: int) -> None:
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _goal(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        if value >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter runs")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    _pin_threads(args.threads)
    sections = set(args.only or SECTIONS)

    import numpy as np  # after the thread pinning

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    quick: bool = args.quick
    print(f"python -m bench{' --quick' if quick else ''} --threads {args.threads}")
    print(f"{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}")
    try:
        import torch

        print(f"torch {torch.__version__}", end="; ")
    except ImportError:
        print("torch not installed", end="; ")
    try:
        import sklearn

        print(f"scikit-learn {sklearn.__version__}")
    except ImportError:
        print("scikit-learn not installed")
    print(f"start: {_load()}")
    started = time.perf_counter()
    runners: dict[str, Callable[[bool, int], None]] = {
        "steps": _steps,
        "wire": _wire,
        "memory": _memory,
    }
    for name in ("steps", "wire", "memory"):
        if name in sections:
            runners[name](quick, args.threads)
    if sections & {"http", "rates", "latency", "job"}:
        _server_sections(quick, args.threads, sections)
    if "playground" in sections:
        _playground(quick, args.threads)
    print(f"\nend: {_load()}; {time.perf_counter() - started:.0f} s in all")
    return 0


def _steps(quick: bool, threads: int) -> None:
    from bench.steps import LARGE, TINY, measure_step

    rounds, seconds = (3, 0.05) if quick else (11, 0.15)
    print("\n## One full-batch training step (gradient descent), ms per step, medians")
    print("ratios are model/ over the other, median of per-round ratios (< 1: model/ faster)")
    rows = []
    goals = []
    for case in LARGE:
        r = measure_step(case, rounds, seconds, threads)
        rows.append(
            [
                case.label,
                r.ms["model"],
                r.ms["products"],
                r.ratios["products"],
                r.ms["course"],
                r.ratios["course"],
                r.ms.get("torch"),
                r.ratios.get("torch"),
                r.ms.get("sklearn"),
                r.ratios.get("sklearn"),
            ]
        )
        goals.append((case.label, r.ratios["products"], r.ratios.get("torch"), r.blas))
    print(
        _table(
            [
                "case",
                "model/",
                "products",
                "/products",
                "course",
                "/course",
                "torch",
                "/torch",
                "sklearn",
                "/sklearn",
            ],
            rows,
        )
    )
    for label, products, torch, blas in goals:
        line = f"goal {label}: model/products {products:.2f} <= 1.15 {_goal(products <= 1.15)}"
        if torch is not None:
            line += f"; model/torch {torch:.2f} <= 1 {_goal(torch <= 1.0)}"
        if blas is not None:
            # Each library's products on its own BLAS: what no step code can change.
            line += f" (numpy's products take {blas:.2f}x PyTorch's)"
        print(line)
    print("\n## Tiny networks: per-step overhead = model/ step - the products alone")
    rows = []
    for case in TINY:
        r = measure_step(case, rounds, seconds, threads)
        overhead = r.ms["model"] - r.ms["products"]
        rows.append(
            [
                f"{case.label} {case.hidden}/{case.output}",
                r.ms["model"],
                r.ms["products"],
                overhead,
                r.ms["course"],
                r.ms.get("torch"),
                r.ms.get("sklearn"),
            ]
        )
        print(f"goal {case.label}: overhead {overhead:.4f} ms < 0.03 ms {_goal(overhead < 0.03)}")
    print(
        _table(
            [
                "case",
                "model/ ms",
                "products ms",
                "overhead ms",
                "course ms",
                "torch ms",
                "sklearn ms",
            ],
            rows,
        )
    )


def _wire(quick: bool, threads: int) -> None:
    from bench.wire import SHAPE, measure_wire

    result = measure_wire(3 if quick else 9)
    print(f"\n## Parsing a {SHAPE[0]}x{SHAPE[1]} matrix (float64 data) into numpy, ms, medians")
    print("ratio: each over the service's nested-list path (> 1: the service is faster)")
    print(
        _table(
            ["path", "ms", "ratio"],
            [[name, ms, result.parse_ratios[name]] for name, ms in result.parse_ms.items()],
        )
    )
    fastapi = result.parse_ratios["FastAPI default (json.loads + pydantic list[list[float]])"]
    pyd = result.parse_ratios["pydantic list[list[float]] from JSON text"]
    # The baseline (47 ms against orjson's 13 ms on its machine) is a route declaring
    # list[list[float]]: FastAPI's default path. pydantic-core parsing the text is context.
    print(
        f"goal nested lists >= 3x faster than pydantic list[list[float]] (FastAPI's default "
        f"path): {fastapi:.2f}x {_goal(fastapi >= 3)}; for comparison, {pyd:.2f}x against "
        "pydantic-core parsing the JSON text itself"
    )
    print(f"\n## Serializing a {SHAPE[0]}x{SHAPE[1]} answer, ms, medians")
    print(_table(["form", "ms"], [[k, v] for k, v in result.encode_ms.items()]))


def _memory(quick: bool, threads: int) -> None:
    from bench.memory import MEMORY_CASES, measure_memory

    print("\n## Peak resident memory of one /train call's parsing, decoding and training")
    print(
        "(a fresh subprocess; MB of growth over the resident set before the call; parse peak: "
        "orjson's scratch while parsing, freed when it returns; peak: decoding and training, "
        "after the parse) extra = peak - parsed body - one decoded batch - activation cache - "
        "parameter buffers"
    )
    rows = []
    for index, case in enumerate(MEMORY_CASES):
        for encoding in ("base64", "json"):
            if quick and encoding == "json" and index == 0:
                continue
            r = measure_memory(index, encoding)
            rows.append(
                [
                    case.label,
                    "base64" if encoding == "base64" else "nested lists",
                    r.parsed_mb,
                    r.parse_peak_mb,
                    r.peak_mb,
                    r.batch_mb,
                    r.cache_mb,
                    r.state_mb,
                    r.extra_mb,
                    f"{r.extra_mb / r.batch_mb:.2f}",
                ]
            )
    print(
        _table(
            [
                "case",
                "body",
                "parsed MB",
                "parse peak MB",
                "peak MB",
                "batch MB",
                "cache MB",
                "params MB",
                "extra MB",
                "extra/batch",
            ],
            rows,
        )
    )


def _playground(quick: bool, threads: int) -> None:
    from bench.playground import CHROMIUM, RATE_GOAL, REDRAW_GOAL_MS, measure_playground

    print("\n## The playground in Chromium: decision-boundary redraws and curve updates")
    if not CHROMIUM.exists():
        print(f"skipped: {CHROMIUM} is missing (apt-get install chromium)")
        return
    r = measure_playground(threads, redraws=5 if quick else 15, seconds=3.0 if quick else 6.0)
    print(
        _table(
            ["redraw median ms", "min ms", "max ms", "redraws"],
            [[r.median_ms, min(r.redraw_ms), max(r.redraw_ms), len(r.redraw_ms)]],
        )
    )
    print(
        _table(
            ["curve redraws/s", "new points/s", "job steps/s", "lag steps", "lag ms"],
            [[r.curve_rate, r.event_rate, r.steps_per_second, r.lag_steps, r.lag_ms]],
        )
    )
    met = _goal(r.median_ms < REDRAW_GOAL_MS)
    print(
        f"goal a 100x100 boundary redraw (one base64 /predict, painted) < {REDRAW_GOAL_MS:.0f} ms: "
        f"{r.median_ms:.1f} ms {met}"
    )
    print(
        f"goal curves redrawn >= {RATE_GOAL:.0f} times a second while a [2, 8, 8, 1] job "
        f"trains: {r.curve_rate:.1f}/s {_goal(r.curve_rate >= RATE_GOAL)} "
        f"(showing the job {r.lag_ms:.0f} ms behind)"
    )


def _server_sections(quick: bool, threads: int, sections: set[str]) -> None:
    from bench.http import (
        HTTP_CASES,
        measure_job,
        measure_rates,
        measure_responsiveness,
        measure_train,
        server,
    )

    with server(threads) as process:
        print(f"\n(server: backprop-service, one uvicorn worker, {process.url})")
        if "http" in sections:
            rounds, fraction = (1, 0.1) if quick else (5, 0.5)
            print(
                "\n## /train over HTTP beside the same steps in-process (model.train on "
                "decoded arrays), ms per call, medians"
            )
            print(f"epochs = {fraction:g} x the largest synchronous call (200000 // m)")
            rows = []
            for case in HTTP_CASES:
                r = measure_train(process, case, rounds, fraction)
                rows.append(
                    [
                        case.label,
                        r.epochs,
                        r.ms["in-process"],
                        r.ms["HTTP base64"],
                        r.ratios["HTTP base64"],
                        r.ms["HTTP nested lists"],
                        r.ratios["HTTP nested lists"],
                    ]
                )
                b64, nested = r.ratios["HTTP base64"], r.ratios["HTTP nested lists"]
                print(
                    f"goal {case.label}: base64 {b64:.2f} <= 1.15 {_goal(b64 <= 1.15)}; "
                    f"nested lists {nested:.2f} <= 1.5 {_goal(nested <= 1.5)}"
                )
            print(
                _table(
                    ["case", "epochs", "in-process", "base64", "ratio", "nested lists", "ratio"],
                    rows,
                )
            )
        if "rates" in sections:
            rates = measure_rates(process, 1 if quick else 3, 2.0 if quick else 4.0)
            print("\n## Request rates, 8 concurrent keep-alive clients, one worker")
            print(
                _table(
                    [
                        "GET /healthz req/s",
                        "one-example /predict req/s",
                        "predict/healthz",
                        "errors",
                    ],
                    [[rates.healthz, rates.predict, rates.ratio, rates.errors]],
                )
            )
            met = _goal(rates.ratio >= 0.5)
            print(f"goal predict >= half the /healthz rate: {rates.ratio:.2f} {met}")
        if "latency" in sections:
            r2 = measure_responsiveness(process, 0.3 if quick else 1.0)
            print(
                "\n## GET /healthz every 10 ms while one long /train runs "
                f"({r2.training_s:.1f} s, {r2.samples} probes)"
            )
            print(_table(["p50 ms", "p99 ms", "max ms"], [[r2.p50_ms, r2.p99_ms, r2.max_ms]]))
            print(f"goal p99 <= 50 ms: {r2.p99_ms:.1f} {_goal(r2.p99_ms <= 50)}")
        if "job" in sections:
            steps = 250 if quick else 2500
            r3 = measure_job(process, 1 if quick else 2, steps)
            print(
                f"\n## A job of {steps} steps on [12288, 20, 7, 5, 1], m=209, float64, beside "
                "the same steps in-process, seconds, medians"
            )
            if r3.ratio is None or r3.job_s is None:
                print(f"job: {r3.note}; in-process {r3.in_process_s:.2f} s")
            else:
                print(
                    _table(
                        ["job s", "in-process s", "ratio"], [[r3.job_s, r3.in_process_s, r3.ratio]]
                    )
                )
                print(f"goal job <= 1.2x in-process: {r3.ratio:.2f} {_goal(r3.ratio <= 1.2)}")


if __name__ == "__main__":
    sys.exit(main())
