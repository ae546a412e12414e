"""``python -m bench [--quick] [--threads N] [--only SECTION ...]``: the performance goals
(issues 5, 15 and 20), side by side in one run, printed as tables of ratios.

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

from bench.tables import goal, load_average, table

SECTIONS = (
    "steps",
    "wire",
    "memory",
    "onestep",
    "http",
    "throughput",
    "rates",
    "latency",
    "job",
    "workers",
    "queue",
    "playground",
)


def _pin_threads(threads: int) -> None:
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


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
    print(f"start: {load_average()}")
    started = time.perf_counter()
    runners: dict[str, Callable[[bool, int], None]] = {
        "steps": _steps,
        "wire": _wire,
        "memory": _memory,
    }
    for name in ("steps", "wire", "memory"):
        if name in sections:
            runners[name](quick, args.threads)
    from bench import served

    served.run(quick, args.threads, sections)
    if "playground" in sections:
        _playground(quick, args.threads)
    print(f"\nend: {load_average()}; {time.perf_counter() - started:.0f} s in all")
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
        table(
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
        line = f"goal {label}: model/products {products:.2f} <= 1.15 {goal(products <= 1.15)}"
        if torch is not None:
            line += f"; model/torch {torch:.2f} <= 1 {goal(torch <= 1.0)}"
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
        print(f"goal {case.label}: overhead {overhead:.4f} ms < 0.03 ms {goal(overhead < 0.03)}")
    print(
        table(
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
        table(
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
        f"path): {fastapi:.2f}x {goal(fastapi >= 3)}; for comparison, {pyd:.2f}x against "
        "pydantic-core parsing the JSON text itself"
    )
    print(f"\n## Serializing a {SHAPE[0]}x{SHAPE[1]} answer, ms, medians")
    print(table(["form", "ms"], [[k, v] for k, v in result.encode_ms.items()]))


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
        table(
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
    from bench.playground import RATE_GOAL, REDRAW_GOAL_MS, measure_playground
    from tests.support.chromium import CHROMIUM

    print("\n## The playground in Chromium: decision-boundary redraws and curve updates")
    if not CHROMIUM.exists():
        print(f"skipped: {CHROMIUM} is missing (apt-get install chromium)")
        return
    r = measure_playground(threads, redraws=5 if quick else 15, seconds=3.0 if quick else 6.0)
    print(
        table(
            ["redraw median ms", "min ms", "max ms", "redraws"],
            [[r.median_ms, min(r.redraw_ms), max(r.redraw_ms), len(r.redraw_ms)]],
        )
    )
    print(
        table(
            ["curve redraws/s", "new points/s", "job steps/s", "lag steps", "lag ms"],
            [[r.curve_rate, r.event_rate, r.steps_per_second, r.lag_steps, r.lag_ms]],
        )
    )
    met = goal(r.median_ms < REDRAW_GOAL_MS)
    print(
        f"goal a 100x100 boundary redraw (one base64 /predict, painted) < {REDRAW_GOAL_MS:.0f} ms: "
        f"{r.median_ms:.1f} ms {met}"
    )
    print(
        f"goal curves redrawn >= {RATE_GOAL:.0f} times a second while a [2, 8, 8, 1] job "
        f"trains: {r.curve_rate:.1f}/s {goal(r.curve_rate >= RATE_GOAL)} "
        f"(showing the job {r.lag_ms:.0f} ms behind)"
    )


if __name__ == "__main__":
    sys.exit(main())
