"""Bodies of the network routes, and the network resource."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.core.schemas import PositiveFloat, RequestModel, Seed
from service.core.wire import Matrix, MatrixOut
from service.store import NetworkMeta

HiddenActivation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
OutputActivation = Literal["sigmoid", "softmax", "linear", "relu", "tanh"]
Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear", "softmax"]
Loss = Literal["binary_cross_entropy", "categorical_cross_entropy", "mean_squared_error"]
Initialization = Literal["he", "xavier", "glorot", "scaled_normal", "zeros"]
DType = Literal["float64", "float32"]
KeepProb = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
# No control characters (C0, DEL, C1), line separators or the non-characters XML forbids: a
# name goes into logs and into history.svg, which must stay one line and well-formed.
Name = Annotated[
    str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]*$")
]


class OptimizerIn(RequestModel):
    name: Literal["gd", "momentum", "adam"] = "gd"
    learning_rate: PositiveFloat = Field(0.0075, description="alpha")
    beta: float = Field(0.9, ge=0, lt=1, description="momentum only")
    beta1: float = Field(0.9, ge=0, lt=1, description="adam only")
    beta2: float = Field(0.999, ge=0, lt=1, description="adam only")
    epsilon: PositiveFloat = Field(1e-8, description="adam only")


class DropoutIn(RequestModel):
    keep_prob: KeepProb | Annotated[list[KeepProb], Field(max_length=1000)] = Field(
        description="each hidden unit's probability of being kept while training: one number "
        "for every hidden layer, or one per hidden layer (L - 1 of them); 1 leaves a layer alone"
    )
    seed: Seed | None = Field(None, description="fixes every mask; default: random")


class LayerParametersIn(RequestModel):
    W: Matrix = Field(description="W[l], shape (n_l, n_{l-1})")
    b: Matrix = Field(description="b[l], shape (n_l, 1)")


class NetworkCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "layer_dims": [2, 4, 1],
                    "hidden_activation": "tanh",
                    "output_activation": "sigmoid",
                    "initialization": "xavier",
                    "seed": 1,
                    "optimizer": {"name": "gd", "learning_rate": 0.5},
                }
            ]
        }
    )

    name: Name | None = Field(None, description="optional label (no control characters)")
    layer_dims: list[Annotated[int, Field(ge=1, le=2**31)]] = Field(
        min_length=2, max_length=1000, description="[n_x, n_1, ..., n_L]; L >= 1"
    )
    hidden_activation: HiddenActivation = "relu"
    output_activation: OutputActivation = "sigmoid"
    activations: list[Activation] | None = Field(
        None, max_length=1000, description="L names, one per layer, overriding the two above"
    )
    loss: Loss | None = Field(None, description="default follows the output activation")
    initialization: Initialization = "he"
    seed: Seed | None = Field(None, description="same seed, same parameters; default: random")
    dtype: DType = "float64"
    optimizer: OptimizerIn = Field(default_factory=OptimizerIn)
    l2_lambda: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="lambda of L2 regularization"
    )
    dropout: DropoutIn | None = Field(
        None, description="the course's inverted dropout on the hidden layers, while training only"
    )
    parameters: list[LayerParametersIn] | None = Field(
        None,
        max_length=1000,
        description="optional [{W, b}, ...] to start from instead of initializing",
    )


class ParametersPut(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "layers": [
                        {
                            "W": [[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [0.5, 0.5]],
                            "b": [[0.0], [0.0], [-1.0], [0.0]],
                        },
                        {"W": [[1.0, 1.0, -1.0, 0.0]], "b": [[0.0]]},
                    ]
                }
            ]
        }
    )

    layers: list[LayerParametersIn] = Field(min_length=1, max_length=1000)


# ---- answers -------------------------------------------------------------------------------


class OptimizerOut(BaseModel):
    name: str
    learning_rate: float
    beta: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    epsilon: float | None = None


class DropoutOut(BaseModel):
    keep_prob: list[float] = Field(description="per hidden layer, l = 1..L-1")
    seed: int


class NetworkPublic(BaseModel):
    id: str
    name: str | None
    layer_dims: list[int] = Field(description="[n_x, n_1, ..., n_L]")
    activations: list[str] = Field(description="g[l] of layers l = 1..L")
    loss: str
    initialization: str
    seed: int
    dtype: str
    optimizer: OptimizerOut
    l2_lambda: float
    dropout: DropoutOut | None = Field(description="null: no dropout")
    parameter_count: int = Field(description="sum over layers of n_l (n_{l-1} + 1)")
    steps_trained: int = Field(description="updates made since creation")
    version: int = Field(description="1 at creation, + 1 with every change of the parameters")
    created_at: str
    updated_at: str


class NetworkList(BaseModel):
    networks: list[NetworkPublic]


class LayerParametersOut(BaseModel):
    layer: int = Field(description="l, from 1")
    W: MatrixOut = Field(description="W[l], (n_l, n_{l-1})")
    b: MatrixOut = Field(description="b[l], (n_l, 1)")


class ParametersPublic(BaseModel):
    version: int
    layers: list[LayerParametersOut]


def network_resource(meta: NetworkMeta) -> dict[str, Any]:
    """The network resource of the API reference."""
    spec = meta.spec
    return {
        "id": meta.id,
        "name": meta.name,
        "layer_dims": list(spec.layer_dims),
        "activations": list(spec.activations),
        "loss": spec.loss,
        "initialization": spec.initialization,
        "seed": spec.seed,
        "dtype": spec.dtype,
        "optimizer": spec.optimizer.to_dict(),
        "l2_lambda": spec.l2_lambda,
        "dropout": None if spec.dropout is None else spec.dropout.to_dict(),
        "parameter_count": spec.parameter_count,
        "steps_trained": meta.steps_trained,
        "version": meta.version,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
    }
