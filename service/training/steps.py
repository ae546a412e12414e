"""Stepping a trainer in chunks that each take about :data:`CHUNK_SECONDS`: long enough that
checking whether to stop costs nothing next to the steps (a tiny network makes thousands a
second), short enough that a stop, a progress report or a checkpoint is never late."""

from __future__ import annotations

import time

from model import StepRecord, Trainer
from service.core.capacity import Stop
from service.store import LastGradients

CHUNK_SECONDS = 0.02


class Stepper:
    """Steps one trainer, learning how many steps fit in a chunk."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._chunk = 1

    def step_for(
        self, seconds: float, stop: Stop | None = None, records: list[StepRecord] | None = None
    ) -> list[StepRecord]:
        """Steps for about ``seconds`` (at least one chunk), or until done; their records,
        appended to ``records`` as they are made (so they outlive a divergence). Raises
        :class:`~service.core.capacity.Stopped` when ``stop`` is set."""
        records = [] if records is None else records
        deadline = time.perf_counter() + seconds
        while not self.trainer.done:
            if stop is not None:
                stop.check()
            started = time.perf_counter()
            self.trainer.run(self._chunk, records)
            took = time.perf_counter() - started
            if took < CHUNK_SECONDS / 2:
                self._chunk *= 2
            elif took > 2 * CHUNK_SECONDS and self._chunk > 1:
                self._chunk //= 2
            if started + took >= deadline:
                break
        return records

    def run(self, stop: Stop | None = None) -> list[StepRecord]:
        """Every remaining step."""
        return self.step_for(float("inf"), stop)


def last_gradients(trainer: Trainer, version: int) -> LastGradients:
    """The gradients of the trainer's last step, as the commit that makes ``version`` keeps them."""
    last, grad = trainer.last_step, trainer.gradients
    assert last is not None
    assert grad is not None
    return LastGradients(version, last.step, last.cost, grad)
