"""Request and response bodies. Requests are strict (no extra keys, no "1" for 1) and decode
their matrices through :data:`service.matrices.Matrix`; responses document the answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.matrices import Matrix, MatrixOut

HiddenActivation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
OutputActivation = Literal["sigmoid", "softmax", "linear", "relu", "tanh"]
Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear", "softmax"]
Loss = Literal["binary_cross_entropy", "categorical_cross_entropy", "mean_squared_error"]
Initialization = Literal["he", "xavier", "glorot", "scaled_normal", "zeros"]
DType = Literal["float64", "float32"]
Include = Literal["Z", "A", "dZ", "dA", "dW", "db"]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# The XOR problem: the smallest batch a linear model cannot fit. Examples are columns.
XOR_X: JsonValue = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]]
XOR_Y: JsonValue = [[0.0, 1.0, 1.0, 0.0]]


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)


class OptimizerIn(RequestModel):
    name: Literal["gd", "momentum", "adam"] = "gd"
    learning_rate: PositiveFloat = 0.0075
    beta: float = Field(0.9, ge=0, lt=1, description="momentum only")
    beta1: float = Field(0.9, ge=0, lt=1, description="adam only")
    beta2: float = Field(0.999, ge=0, lt=1, description="adam only")
    epsilon: PositiveFloat = Field(1e-8, description="adam only")


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

    name: str | None = Field(None, max_length=200, description="optional label")
    layer_dims: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=2, description="[n_x, n_1, ..., n_L]; L >= 1"
    )
    hidden_activation: HiddenActivation = "relu"
    output_activation: OutputActivation = "sigmoid"
    activations: list[Activation] | None = Field(
        None, description="L names, one per layer, overriding the two above"
    )
    loss: Loss | None = Field(None, description="default follows the output activation")
    initialization: Initialization = "he"
    seed: Seed | None = Field(None, description="same seed, same parameters; default: random")
    dtype: DType = "float64"
    optimizer: OptimizerIn = Field(default_factory=OptimizerIn)
    l2_lambda: float = Field(0.0, ge=0, allow_inf_nan=False)
    parameters: list[LayerParametersIn] | None = Field(
        None, description="optional [{W, b}, ...] to start from instead of initializing"
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

    layers: list[LayerParametersIn] = Field(min_length=1)


class Batch(RequestModel):
    X: Matrix = Field(description="(n_x, m): one column per example")
    Y: Matrix = Field(description="(n_L, m); for softmax also (1, m) integer class indices")


class TrainRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"X": XOR_X, "Y": XOR_Y, "epochs": 500}]}
    )

    epochs: int = Field(1, ge=1, description="passes over this batch")
    batch_size: int | None = Field(None, ge=1, description="null: full batch")
    shuffle_seed: Seed | None = None
    learning_rate: PositiveFloat | None = Field(None, description="override for this call")


class GradientsRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"X": XOR_X, "Y": XOR_Y, "include": ["Z", "A", "dZ", "dA", "dW", "db"]}]
        }
    )

    include: list[Include] = Field(default_factory=lambda: list[Include](["dW", "db"]))


class GradientCheckRequest(Batch):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"X": XOR_X, "Y": XOR_Y, "epsilon": 1e-7}]}
    )

    epsilon: float = Field(1e-7, gt=0, le=1e-2, allow_inf_nan=False)


class PredictRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"X": XOR_X}]})

    X: Matrix = Field(description="(n_x, m): one column per example")


class EvaluateRequest(Batch):
    model_config = ConfigDict(json_schema_extra={"examples": [{"X": XOR_X, "Y": XOR_Y}]})


# ---- answers -------------------------------------------------------------------------------


class OptimizerOut(BaseModel):
    name: str
    learning_rate: float
    beta: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    epsilon: float | None = None


class NetworkPublic(BaseModel):
    id: str
    name: str | None
    layer_dims: list[int]
    activations: list[str]
    loss: str
    initialization: str
    seed: int
    dtype: str
    optimizer: OptimizerOut
    l2_lambda: float
    parameter_count: int
    steps_trained: int
    version: int
    created_at: str
    updated_at: str


class NetworkList(BaseModel):
    networks: list[NetworkPublic]


class LayerParametersOut(BaseModel):
    layer: int
    W: MatrixOut
    b: MatrixOut


class ParametersPublic(BaseModel):
    version: int
    layers: list[LayerParametersOut]


class CostPoint(BaseModel):
    step: int
    cost: float


class TrainResponse(BaseModel):
    network: NetworkPublic
    steps: int
    costs: list[CostPoint]
    final_cost: float
    duration_ms: float


class HistoryResponse(BaseModel):
    costs: list[CostPoint]


class JobPublic(BaseModel):
    id: str
    network_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    step: int = Field(description="updates this job has made (0 to total_steps)")
    total_steps: int = Field(description="updates the job makes: epochs x batches per epoch")
    cost: float | None = Field(description="the last step's cost, from its forward pass")
    final_cost: float | None = Field(
        description="succeeded: the whole batch's cost after the last update"
    )
    elapsed_s: float | None = Field(description="seconds since the job started")
    eta_seconds: float | None = Field(description="while running: estimated seconds left")
    eta_s: float | None = Field(description="the same as eta_seconds, as progress events name it")
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None = Field(description="why a failed job failed")


class JobList(BaseModel):
    jobs: list[JobPublic]


class JobProgress(BaseModel):
    """The data of a ``progress`` event."""

    step: int
    total_steps: int
    cost: float | None
    elapsed_s: float | None
    eta_s: float | None


class LayerGradients(BaseModel):
    layer: int
    Z: MatrixOut | None = None
    A: MatrixOut | None = None
    dZ: MatrixOut | None = None
    dA: MatrixOut | None = None
    dW: MatrixOut | None = None
    db: MatrixOut | None = None


class GradientsResponse(BaseModel):
    version: int
    cost: float
    layers: list[LayerGradients]


class LastGradientsResponse(BaseModel):
    version: int
    step: int
    cost: float
    layers: list[LayerGradients]


class LayerCheck(BaseModel):
    layer: int
    dW_difference: float
    db_difference: float


class GradientCheckResponse(BaseModel):
    difference: float
    threshold: float
    passed: bool
    layers: list[LayerCheck]
    parameters_checked: int


class PredictResponse(BaseModel):
    version: int
    A: MatrixOut
    predictions: MatrixOut


class EvaluateResponse(BaseModel):
    version: int
    cost: float
    accuracy: float | None
    m: int


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: str
