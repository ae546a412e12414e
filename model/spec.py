"""What a network is: its layer sizes, activations, loss, initialization, optimizer, dropout.

Specs are frozen and validate themselves on construction, so an invalid one cannot
exist; :func:`build_spec` fills in the defaults the HTTP API documents.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any

import numpy as np

from model.activations import ACTIVATION_NAMES
from model.errors import ModelError
from model.initializers import INITIALIZATION_NAMES
from model.losses import (
    DEFAULT_LOSS,
    FALLBACK_LOSS,
    LOSS_NAMES,
    PROBABILITY_LOSSES,
    PROBABILITY_OUTPUTS,
)

OPTIMIZER_NAMES: tuple[str, ...] = ("gd", "momentum", "adam")
DTYPE_NAMES: tuple[str, ...] = ("float64", "float32")
# The hyperparameters each optimizer reads, besides the learning rate.
OPTIMIZER_FIELDS: dict[str, tuple[str, ...]] = {
    "gd": (),
    "momentum": ("beta",),
    "adam": ("beta1", "beta2", "epsilon"),
}
MAX_SEED = 2**32 - 1  # RandomState's range


def check_name(kind: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ModelError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise ModelError(f"Unknown {kind} {value!r}; expected one of {', '.join(allowed)}.")
    return value


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in [minimum, maximum]."""
    # An int is the usual case, and isinstance against the Integral ABC costs microseconds.
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, Integral)):
        raise ModelError(f"{name} must be an integer; received {value!r}.")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ModelError(f"{name} must be an integer {bound}; received {number}.")
    return number


def check_float(
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool,
    high_open: bool,
) -> float:
    """Return ``value`` as a float if it is a finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{name} must be a number; received {value!r}.")
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        if math.isinf(high):
            interval = f"{'>' if low_open else '>='} {low:g}"
        else:
            interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ModelError(f"{name} must be a finite number {interval}; received {number!r}.")
    return number


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and its hyperparameters, as the deeplearning.ai course defines them.

    Hyperparameters the named optimizer does not use are reset to their defaults.

    ``gd``: W -= lr dW. ``momentum``: v = beta v + (1 - beta) dW, W -= lr v.
    ``adam``: v, s as momentum with beta1, beta2 (s on dW**2), bias-corrected by
    1 - beta**t with t counting from 1, W -= lr v_corr / (sqrt(s_corr) + epsilon).
    """

    name: str = "gd"
    learning_rate: float = 0.0075
    beta: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        check_name("optimizer", self.name, OPTIMIZER_NAMES)
        used = ("learning_rate", *OPTIMIZER_FIELDS[self.name])
        for f in fields(self):
            if f.name == "name":
                continue
            if f.name not in used:
                # A hyperparameter this optimizer never reads is reset to its default,
                # so that equal specs mean equal behaviour and to_dict round-trips.
                object.__setattr__(self, f.name, f.default)
            elif f.name in ("learning_rate", "epsilon"):
                value = check_float(
                    f.name, getattr(self, f.name), 0.0, low_open=True, high_open=True
                )
                object.__setattr__(self, f.name, value)
            else:
                value = check_float(
                    f.name, getattr(self, f.name), 0.0, 1.0, low_open=False, high_open=True
                )
                object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, object]:
        """``name``, ``learning_rate`` and the hyperparameters this optimizer uses."""
        d: dict[str, object] = {"name": self.name, "learning_rate": self.learning_rate}
        d.update({key: getattr(self, key) for key in OPTIMIZER_FIELDS[self.name]})
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OptimizerSpec:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(
                f"Unknown optimizer field(s) {', '.join(unknown)}; expected {', '.join(known)}."
            )
        return cls(**d)


@dataclass(frozen=True)
class DropoutSpec:
    """The course's inverted dropout on hidden layers 1..L-1, while training only.

    ``keep_prob[l-1]`` in (0, 1] is layer l's probability of keeping a unit (1 leaves the
    layer alone); ``seed`` fixes every mask (see :mod:`model.training`).
    """

    keep_prob: tuple[float, ...]
    seed: int

    def __post_init__(self) -> None:
        if isinstance(self.keep_prob, str) or not isinstance(self.keep_prob, Sequence):
            raise ModelError(f"keep_prob must be a list of numbers; received {self.keep_prob!r}.")
        keep = tuple(
            check_float(f"dropout keep_prob[{i}]", k, 0.0, 1.0, low_open=True, high_open=False)
            for i, k in enumerate(self.keep_prob)
        )
        object.__setattr__(self, "keep_prob", keep)
        object.__setattr__(self, "seed", check_int("dropout seed", self.seed, 0, MAX_SEED))

    def to_dict(self) -> dict[str, object]:
        return {"keep_prob": list(self.keep_prob), "seed": self.seed}


@dataclass(frozen=True)
class NetworkSpec:
    """The architecture and training setup of a network.

    ``layer_dims`` is (n_x, n_1, ..., n_L); ``activations`` holds one name per layer
    l = 1..L. Construct with :func:`build_spec` to get the documented defaults.
    """

    layer_dims: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    initialization: str
    seed: int
    dtype: str
    optimizer: OptimizerSpec
    l2_lambda: float
    dropout: DropoutSpec | None = None

    def __post_init__(self) -> None:
        if isinstance(self.layer_dims, str | bytes) or not isinstance(self.layer_dims, Sequence):
            raise ModelError(
                f"layer_dims must be a list of integers; received {self.layer_dims!r}."
            )
        if len(self.layer_dims) < 2:
            raise ModelError(
                "layer_dims must have at least 2 entries [n_x, n_1, ..., n_L]; "
                f"received {list(self.layer_dims)!r}."
            )
        dims = tuple(check_int(f"layer_dims[{i}]", n, 1) for i, n in enumerate(self.layer_dims))
        if isinstance(self.activations, str) or not isinstance(self.activations, Sequence):
            raise ModelError(f"activations must be a list of names; received {self.activations!r}.")
        L = len(dims) - 1
        if len(self.activations) != L:
            raise ModelError(
                f"activations must name one activation per layer (L = {L}); "
                f"received {len(self.activations)}: {list(self.activations)!r}."
            )
        acts = tuple(check_name("activation", a, ACTIVATION_NAMES) for a in self.activations)
        if "softmax" in acts[:-1]:
            raise ModelError("softmax is only allowed as the output activation (layer L).")
        check_name("loss", self.loss, LOSS_NAMES)
        check_name("initialization", self.initialization, INITIALIZATION_NAMES)
        check_name("dtype", self.dtype, DTYPE_NAMES)
        if not isinstance(self.optimizer, OptimizerSpec):
            raise ModelError(f"optimizer must be an OptimizerSpec; received {self.optimizer!r}.")
        n_L, output = dims[-1], acts[-1]
        if output == "softmax" and n_L < 2:
            raise ModelError(f"A softmax output needs n_L >= 2 units; received n_L = {n_L}.")
        if self.loss in PROBABILITY_LOSSES and output not in PROBABILITY_OUTPUTS:
            raise ModelError(
                f"Loss {self.loss} needs outputs in (0, 1): use output activation sigmoid "
                f"or softmax; received {output}."
            )
        if self.loss == "categorical_cross_entropy" and n_L < 2:
            raise ModelError(
                f"categorical_cross_entropy needs n_L >= 2 classes; received n_L = {n_L}."
            )
        object.__setattr__(self, "layer_dims", dims)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0, MAX_SEED))
        l2 = check_float("l2_lambda", self.l2_lambda, 0.0, low_open=False, high_open=True)
        object.__setattr__(self, "l2_lambda", l2)
        if self.dropout is not None:
            if not isinstance(self.dropout, DropoutSpec):
                raise ModelError(f"dropout must be a DropoutSpec; received {self.dropout!r}.")
            if L < 2:
                raise ModelError(
                    "Dropout acts on hidden layers, and this network has none (L = 1): "
                    "add a hidden layer or leave dropout out."
                )
            if len(self.dropout.keep_prob) != L - 1:
                raise ModelError(
                    f"dropout keep_prob must be one number, or one per hidden layer (L - 1 = "
                    f"{L - 1}); received {len(self.dropout.keep_prob)}: "
                    f"{list(self.dropout.keep_prob)!r}."
                )

    @property
    def L(self) -> int:
        """Number of layers with parameters."""
        return len(self.layer_dims) - 1

    @property
    def n_x(self) -> int:
        """Number of input features (rows of X)."""
        return self.layer_dims[0]

    @property
    def n_L(self) -> int:
        """Number of output units (rows of A[L] and Y)."""
        return self.layer_dims[-1]

    @property
    def np_dtype(self) -> np.dtype[np.floating]:
        """The numpy dtype of every parameter, cache and gradient."""
        return np.dtype(self.dtype)

    @property
    def parameter_count(self) -> int:
        """Sum over layers of n_l * n_{l-1} + n_l."""
        dims = self.layer_dims
        return sum(n_l * (n_prev + 1) for n_prev, n_l in itertools.pairwise(dims))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return {
            "layer_dims": list(self.layer_dims),
            "activations": list(self.activations),
            "loss": self.loss,
            "initialization": self.initialization,
            "seed": self.seed,
            "dtype": self.dtype,
            "optimizer": self.optimizer.to_dict(),
            "l2_lambda": self.l2_lambda,
            "dropout": None if self.dropout is None else self.dropout.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetworkSpec:
        """Rebuild (and validate) a spec from :meth:`to_dict`'s output."""
        expected = {f.name for f in fields(cls)}
        if isinstance(d, Mapping) and "dropout" not in d:  # stored before dropout existed
            d = {**d, "dropout": None}
        if not isinstance(d, Mapping) or set(d) != expected:
            keys = sorted(d, key=str) if isinstance(d, Mapping) else d
            raise ModelError(
                f"A network spec needs exactly the keys {', '.join(sorted(expected))}; "
                f"received {keys!r}."
            )
        optimizer = d["optimizer"]
        if not isinstance(optimizer, Mapping):
            raise ModelError(f"optimizer must be a mapping; received {optimizer!r}.")
        dropout = d["dropout"]
        if dropout is not None and not isinstance(dropout, Mapping):
            raise ModelError(f"dropout must be a mapping or null; received {dropout!r}.")
        if dropout is not None and set(dropout) != {"keep_prob", "seed"}:
            keys = sorted(dropout, key=str)
            raise ModelError(f"dropout needs exactly the keys keep_prob, seed; received {keys!r}.")
        return cls(
            **{
                **d,
                "optimizer": OptimizerSpec.from_dict(optimizer),
                "dropout": None if dropout is None else DropoutSpec(**dropout),
            }
        )


def build_spec(
    layer_dims: Sequence[int],
    *,
    hidden_activation: str = "relu",
    output_activation: str = "sigmoid",
    activations: Sequence[str] | None = None,
    loss: str | None = None,
    initialization: str = "he",
    seed: int = 0,
    dtype: str = "float64",
    optimizer: OptimizerSpec | None = None,
    l2_lambda: float = 0.0,
    keep_prob: float | Sequence[float] | None = None,
    dropout_seed: int = 0,
) -> NetworkSpec:
    """Validate a network description and fill in the defaults.

    ``activations`` (one name per layer) overrides ``hidden_activation`` and
    ``output_activation``. The default loss follows the output activation:
    sigmoid -> binary_cross_entropy, softmax -> categorical_cross_entropy, anything
    else -> mean_squared_error. ``keep_prob`` (one number for every hidden layer, or one per
    hidden layer) turns on dropout, with masks from ``dropout_seed``.

    Raises
    ------
    ModelError
        For any invalid value, with a message naming the expected and received value.
    """
    if isinstance(layer_dims, str | bytes) or not isinstance(layer_dims, Sequence):
        raise ModelError(f"layer_dims must be a list of integers; received {layer_dims!r}.")
    if activations is None:
        check_name("hidden activation", hidden_activation, ACTIVATION_NAMES)
        check_name("output activation", output_activation, ACTIVATION_NAMES)
        if hidden_activation == "softmax" and len(layer_dims) > 2:
            raise ModelError("softmax is only allowed as the output activation, not as hidden.")
        activations = [hidden_activation] * (len(layer_dims) - 2) + [output_activation]
    if loss is None:
        output = activations[-1] if len(activations) else None
        loss = DEFAULT_LOSS.get(output, FALLBACK_LOSS) if isinstance(output, str) else FALLBACK_LOSS
    dropout = None
    if keep_prob is not None:
        hidden = max(len(layer_dims) - 2, 0)
        keep: object = keep_prob
        if isinstance(keep, Real):  # numpy's scalars too
            keep = [keep] * max(hidden, 1)
        if isinstance(keep, Iterable) and not isinstance(keep, str | bytes):
            keep = tuple(keep)
        # DropoutSpec refuses anything that is not numbers in (0, 1].
        dropout = DropoutSpec(keep_prob=keep, seed=dropout_seed)  # type: ignore[arg-type]
    return NetworkSpec(
        layer_dims=tuple(layer_dims),
        activations=tuple(activations),
        loss=loss,
        initialization=initialization,
        seed=seed,
        dtype=dtype,
        optimizer=optimizer if optimizer is not None else OptimizerSpec(),
        l2_lambda=l2_lambda,
        dropout=dropout,
    )
