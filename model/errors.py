"""The model's one family of exceptions: every bad input is a :class:`ModelError`."""

from __future__ import annotations


class ModelError(ValueError):
    """Input the model cannot use; the message names what was expected and what was received."""


class TrainingDiverged(ModelError):
    """A training step produced a non-finite cost or non-finite parameters and was undone.

    ``step`` is the global step number (the first update of a new network is 1) of the step
    that went non-finite; ``last_finite_cost`` the most recent finite cost a forward pass
    computed (possibly that step's own, computed before its update), or None. The trainer
    stays at the last finite state.
    """

    def __init__(self, message: str, *, step: int, last_finite_cost: float | None) -> None:
        super().__init__(message)
        self.step = step
        self.last_finite_cost = last_finite_cost
