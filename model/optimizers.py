"""Parameter updates: gradient descent, momentum and Adam, as the course defines them.

:func:`update` writes the next state into another network's arrays and reads the current
one, so a step that comes out non-finite is undone by keeping the current one. Each
operation runs once over the whole flat vector, whatever the number of layers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from model.network import Network
from model.spec import OptimizerSpec

Array = NDArray[np.floating]


def update(opt: OptimizerSpec, lr: float, cur: Network, grad: Array, nxt: Network) -> None:
    """One update of ``cur`` by ``grad`` (dW, db in the flat layout), written into ``nxt``.

    ``nxt.theta`` doubles as scratch before it receives the new parameters; ``nxt``'s
    optimizer_t becomes ``cur``'s + 1 (t counts from 1 in Adam's bias correction).
    """
    theta, out = cur.theta, nxt.theta
    t = cur.optimizer_t + 1
    if opt.name == "gd":  # W = W - alpha dW
        np.multiply(grad, lr, out=out)
        np.subtract(theta, out, out=out)
    elif opt.name == "momentum":  # v = beta v + (1 - beta) dW;  W = W - alpha v
        v, v_out = cur.moments[0], nxt.moments[0]
        np.multiply(v, opt.beta, out=v_out)
        np.multiply(grad, 1 - opt.beta, out=out)
        np.add(v_out, out, out=v_out)
        np.multiply(v_out, lr, out=out)
        np.subtract(theta, out, out=out)
    else:  # adam
        v, s = cur.moments
        v_out, s_out = nxt.moments
        np.multiply(v, opt.beta1, out=v_out)  # v = beta1 v + (1 - beta1) dW
        np.multiply(grad, 1 - opt.beta1, out=out)
        np.add(v_out, out, out=v_out)
        np.multiply(s, opt.beta2, out=s_out)  # s = beta2 s + (1 - beta2) dW^2
        np.multiply(grad, grad, out=out)
        np.multiply(out, 1 - opt.beta2, out=out)
        np.add(s_out, out, out=s_out)
        # W = W - alpha v_corr / (sqrt(s_corr) + epsilon), with s_corr = s / (1 - beta2^t),
        # and v's correction 1 / (1 - beta1^t) folded into the scalar step alpha.
        np.divide(s_out, 1 - opt.beta2**t, out=out)
        np.sqrt(out, out=out)
        np.add(out, opt.epsilon, out=out)
        np.divide(v_out, out, out=out)
        np.multiply(out, lr / (1 - opt.beta1**t), out=out)
        np.subtract(theta, out, out=out)
    nxt.optimizer_t = t
