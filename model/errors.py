"""The model's one family of exceptions: every bad input is a :class:`ModelError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.training import TrainResult


class ModelError(ValueError):
    """Input the model cannot use; the message names what was expected and what was received."""


class TrainingDiverged(ModelError):
    """A training step produced a non-finite cost or non-finite parameters and was undone.

    Attributes
    ----------
    step : int
        Global step number (``network.steps_trained`` numbering, the first update of a
        new network is 1) of the step that went non-finite.
    last_finite_cost : float or None
        The most recent finite cost a forward pass computed (possibly the diverging
        step's own cost, which is computed before its update); None if there was none.
    partial : TrainResult
        The steps completed before the divergence; ``partial.network`` is the last
        finite state (equal in value to the input network if no step completed).
    """

    def __init__(
        self, message: str, *, step: int, last_finite_cost: float | None, partial: TrainResult
    ) -> None:
        super().__init__(message)
        self.step = step
        self.last_finite_cost = last_finite_cost
        self.partial = partial
