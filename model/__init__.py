"""Backprop Service's neural-network engine: L-layer networks in pure numpy.

Notation (the deeplearning.ai course's): examples are COLUMNS. For
``layer_dims = [n_x, n_1, ..., n_L]`` and a batch of m examples::

    A[0] = X                        (n_x, m)
    Z[l] = W[l] A[l-1] + b[l]       W[l]: (n_l, n_{l-1}), b[l]: (n_l, 1), Z[l]: (n_l, m)
    A[l] = g[l](Z[l])               A[L] = Y_hat: (n_L, m), Y: (n_L, m)
    dZ[L] = A[L] - Y                for sigmoid + binary cross-entropy, softmax +
                                    categorical cross-entropy, linear + mean squared
                                    error; otherwise dZ[L] = dA[L] * g'[L](Z[L])
    dW[l] = (1/m) dZ[l] A[l-1]^T (+ (lambda/m) W[l])
    db[l] = (1/m) sum(dZ[l], axis=1)
    dA[l-1] = W[l]^T dZ[l],   dZ[l-1] = dA[l-1] * g'[l-1](Z[l-1])

dZ and dA are gradients of the per-example loss; 1/m enters in dW and db. Python
lists are 0-based, so ``W[0]`` is the course's W1 (``Cache.A`` alone also holds A[0]).
Every bad input raises :class:`ModelError`, a ``ValueError``.
"""

from model.activations import ACTIVATION_NAMES
from model.errors import ModelError, TrainingDiverged
from model.gradcheck import GradCheckResult, gradient_check
from model.initializers import INITIALIZATION_NAMES
from model.losses import LOSS_NAMES
from model.network import (
    Cache,
    Gradients,
    Network,
    backward,
    check_X,
    check_Y,
    compute_cost,
    compute_gradients,
    create_network,
    forward,
    replace_parameters,
    update_parameters,
)
from model.predict import evaluate, predict
from model.serialize import from_bytes, to_bytes
from model.spec import OPTIMIZER_NAMES, NetworkSpec, OptimizerSpec, build_spec
from model.training import StepRecord, Trainer, TrainOptions, TrainResult, train

__all__ = [
    "ACTIVATION_NAMES",
    "INITIALIZATION_NAMES",
    "LOSS_NAMES",
    "OPTIMIZER_NAMES",
    "Cache",
    "GradCheckResult",
    "Gradients",
    "ModelError",
    "Network",
    "NetworkSpec",
    "OptimizerSpec",
    "StepRecord",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "backward",
    "build_spec",
    "check_X",
    "check_Y",
    "compute_cost",
    "compute_gradients",
    "create_network",
    "evaluate",
    "forward",
    "from_bytes",
    "gradient_check",
    "predict",
    "replace_parameters",
    "to_bytes",
    "train",
    "update_parameters",
]
