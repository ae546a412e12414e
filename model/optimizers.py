"""Parameter updates: gradient descent, momentum and Adam, as the course defines them.

Parameters and their gradients travel as flat lists ``[W1, b1, W2, b2, ...]`` here;
the optimizer state is a dict of such lists named as the network stores them
(``vW``/``vb`` for momentum, plus ``sW``/``sb`` for Adam), all zeros initially.

:func:`apply_update` is the plain, allocating version that reads like the course;
the ``*_into`` functions are the Trainer's in-place versions of the same formulas,
writing into preallocated ``out`` arrays (which may not alias an input) so a step
allocates nothing. Tests check that the two agree.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from model.spec import OptimizerSpec

Array = NDArray[np.floating]

STATE_KEYS: dict[str, tuple[str, ...]] = {
    "gd": (),
    "momentum": ("vW", "vb"),
    "adam": ("vW", "vb", "sW", "sb"),
}


def initial_state(name: str, W: list[Array], b: list[Array]) -> dict[str, list[Array]]:
    """Zero moments shaped like the parameters, for optimizer ``name``."""
    like = {"W": W, "b": b}
    return {key: [np.zeros_like(p) for p in like[key[1:]]] for key in STATE_KEYS[name]}


def apply_update(
    opt: OptimizerSpec,
    learning_rate: float,
    W: list[Array],
    b: list[Array],
    dW: list[Array],
    db: list[Array],
    state: dict[str, list[Array]],
    t: int,
) -> tuple[list[Array], list[Array], dict[str, list[Array]], int]:
    """One update, allocating new arrays and leaving its inputs untouched.

    Parameters
    ----------
    opt : OptimizerSpec
        Which optimizer and its betas/epsilon.
    learning_rate : float
    W, b, dW, db : lists of L arrays, W[l-1], dW[l-1]: (n_l, n_{l-1}); b, db: (n_l, 1)
    state : dict of lists of arrays, as :func:`initial_state` returns
    t : int
        Updates already absorbed into ``state`` (Adam's t before this step).

    Returns
    -------
    W, b, state, t
        The updated parameters and state; t + 1.
    """
    lr = learning_rate
    grads = {"W": dW, "b": db}
    params = {"W": W, "b": b}
    new_state: dict[str, list[Array]] = {}
    t += 1
    if opt.name == "gd":
        step = grads
    elif opt.name == "momentum":
        for k in "Wb":
            new_state["v" + k] = [
                opt.beta * v + (1 - opt.beta) * g
                for v, g in zip(state["v" + k], grads[k], strict=True)
            ]
        step = {k: new_state["v" + k] for k in "Wb"}
    else:  # adam
        step = {}
        for k in "Wb":
            v = [
                opt.beta1 * v + (1 - opt.beta1) * g
                for v, g in zip(state["v" + k], grads[k], strict=True)
            ]
            s = [
                opt.beta2 * s + (1 - opt.beta2) * g**2
                for s, g in zip(state["s" + k], grads[k], strict=True)
            ]
            new_state["v" + k], new_state["s" + k] = v, s
            v_corrected = [x / (1 - opt.beta1**t) for x in v]
            s_corrected = [x / (1 - opt.beta2**t) for x in s]
            step[k] = [
                vc / (np.sqrt(sc) + opt.epsilon)
                for vc, sc in zip(v_corrected, s_corrected, strict=True)
            ]
    new = {k: [p - lr * d for p, d in zip(params[k], step[k], strict=True)] for k in "Wb"}
    return new["W"], new["b"], new_state, t


def gd_into(p: Array, lr_g: Array, out: Array) -> None:
    """out = p - lr_g, where the Trainer already folded the learning rate into lr_g."""
    np.subtract(p, lr_g, out=out)


def momentum_into(
    p: Array, g: Array, v: Array, lr: float, beta: float, p_out: Array, v_out: Array
) -> None:
    """v_out = beta v + (1 - beta) g;  p_out = p - lr v_out."""
    np.multiply(v, beta, out=v_out)
    np.multiply(g, 1 - beta, out=p_out)  # p_out as scratch
    np.add(v_out, p_out, out=v_out)
    np.multiply(v_out, lr, out=p_out)
    np.subtract(p, p_out, out=p_out)


def adam_into(
    p: Array,
    g: Array,
    v: Array,
    s: Array,
    t: int,
    lr: float,
    opt: OptimizerSpec,
    p_out: Array,
    v_out: Array,
    s_out: Array,
) -> None:
    """Adam with bias correction (t counts from 1) into p_out, v_out, s_out."""
    np.multiply(v, opt.beta1, out=v_out)
    np.multiply(g, 1 - opt.beta1, out=p_out)
    np.add(v_out, p_out, out=v_out)
    np.multiply(s, opt.beta2, out=s_out)
    np.multiply(g, g, out=p_out)
    np.multiply(p_out, 1 - opt.beta2, out=p_out)
    np.add(s_out, p_out, out=s_out)
    # p_out = p - lr * (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + epsilon)
    np.divide(s_out, 1 - opt.beta2**t, out=p_out)
    np.sqrt(p_out, out=p_out)
    np.add(p_out, opt.epsilon, out=p_out)
    np.divide(v_out, p_out, out=p_out)
    np.multiply(p_out, lr / (1 - opt.beta1**t), out=p_out)
    np.subtract(p, p_out, out=p_out)
