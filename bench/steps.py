"""One full-batch training step: model/ (the Trainer) beside the matrix products alone, the
course-style numpy step, PyTorch eager and scikit-learn, interleaved round by round."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.reference import Case, course_step, make_batch, products_only
from bench.rivals import sklearn_step, torch_products, torch_step
from bench.timing import calls_for, interleaved
from model import Network, OptimizerSpec, Trainer, TrainOptions, build_spec, create_network

LARGE = [
    Case((784, 128, 64, 10), 256, "relu", "softmax", "float32"),
    Case((784, 128, 64, 10), 256, "relu", "softmax", "float64"),
    Case((784, 512, 512, 10), 1024, "relu", "softmax", "float32"),
    Case((784, 512, 512, 10), 1024, "relu", "softmax", "float64"),
    Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float32", 0.0075),
    Case((12288, 20, 7, 5, 1), 209, "relu", "sigmoid", "float64", 0.0075),
]
TINY = [
    Case((2, 4, 1), 256, "tanh", "sigmoid", "float64", 0.5),  # the course's planar network
    Case((2, 4, 1), 256, "tanh", "sigmoid", "float32", 0.5),
    Case((2, 4, 1), 256, "relu", "sigmoid", "float64", 0.5),
]


@dataclass(frozen=True)
class StepResult:
    case: Case
    ms: dict[str, float]  # median milliseconds per step, by contender
    ratios: dict[str, float]  # model over each other contender (median of per-round ratios)
    blas: float | None  # numpy's products over PyTorch's (its own BLAS), same rounds


def local_network(case: Case) -> Network:
    """The case's network in model/: he initialization from seed 1, the case's optimizer
    (the same network the HTTP benchmarks create through the API)."""
    spec = build_spec(
        list(case.dims),
        hidden_activation=case.hidden,
        output_activation=case.output,
        initialization="he",
        seed=1,
        dtype=case.dtype,
        optimizer=OptimizerSpec(name=case.optimizer, learning_rate=case.learning_rate),
    )
    return create_network(spec)


def trainer_for(case: Case) -> Trainer:
    """A Trainer on the case's batch with steps to spare; ``run(k)`` makes k steps."""
    X, Y = make_batch(case)
    return Trainer(local_network(case), X, Y, TrainOptions(epochs=10**9))


def measure_step(case: Case, rounds: int, seconds: float, threads: int) -> StepResult:
    X, Y = make_batch(case)
    trainer = trainer_for(case)
    steps: dict[str, Callable[[], object]] = {
        "model": lambda: trainer.run(1),
        "products": products_only(case, X),
        "course": course_step(case, X, Y),
    }
    torch = torch_step(case, X, Y, threads)
    if torch is not None:
        steps["torch"] = torch
    torch_alone = torch_products(case, X, threads)
    if torch_alone is not None:
        steps["torch_products"] = torch_alone
    sklearn = sklearn_step(case, X, Y)
    if sklearn is not None:
        steps["sklearn"] = sklearn
    units = {name: calls_for(seconds, step) for name, step in steps.items()}

    def repeat(step: Callable[[], object], k: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(k):
                step()

        return run

    calls: dict[str, Callable[[], object]] = {
        name: repeat(step, units[name]) for name, step in steps.items()
    }
    # The Trainer's own loop for the model: one call of run(k), as train() makes it.
    calls["model"] = lambda: trainer.run(units["model"])
    timings = interleaved(calls, rounds, units)
    ms = {name: timings.median(name) * 1e3 for name in calls}
    ratios = {name: timings.ratio("model", name) for name in calls if name != "model"}
    blas = timings.ratio("products", "torch_products") if "torch_products" in calls else None
    return StepResult(case, ms, ratios, blas)
