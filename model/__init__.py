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

dZ and dA are gradients of the per-example loss; 1/m enters in dW and db. Each equation
has one implementation, in :mod:`model.propagation`; training (:mod:`model.training`),
inspection, prediction and the gradient check (:mod:`model.gradcheck`) all run it.
Python lists are 0-based, so ``W[0]`` is the course's W1. Every bad input raises
:class:`ModelError`, a ``ValueError``.
"""

from model.activations import ACTIVATION_NAMES
from model.checks import check_X, check_Y
from model.errors import ModelError, TrainingDiverged
from model.gradcheck import GradCheckResult, gradient_check
from model.initializers import INITIALIZATION_NAMES
from model.losses import LOSS_NAMES
from model.network import Layout, Network, create_network, replace_parameters
from model.predict import evaluate, predict
from model.propagation import Pass, compute_gradients
from model.serialize import network_from_bytes, state_bytes
from model.spec import OPTIMIZER_NAMES, DropoutSpec, NetworkSpec, OptimizerSpec, build_spec
from model.training import StepRecord, Trainer, TrainOptions, TrainResult, Workspace, train

__all__ = [
    "ACTIVATION_NAMES",
    "INITIALIZATION_NAMES",
    "LOSS_NAMES",
    "OPTIMIZER_NAMES",
    "DropoutSpec",
    "GradCheckResult",
    "Layout",
    "ModelError",
    "Network",
    "NetworkSpec",
    "OptimizerSpec",
    "Pass",
    "StepRecord",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "Workspace",
    "build_spec",
    "check_X",
    "check_Y",
    "compute_gradients",
    "create_network",
    "evaluate",
    "gradient_check",
    "network_from_bytes",
    "predict",
    "replace_parameters",
    "state_bytes",
    "train",
]
