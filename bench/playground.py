"""The playground's two speed goals, measured in Debian's Chromium against a real server:

* a 100×100 decision-boundary redraw (one base64 ``/predict`` of the whole grid, decoded and
  painted as a heat map with ImageData) in under 100 ms: the page times each redraw from the
  request to the painted image as a ``boundary-redraw`` performance measure, and this reads
  them after clicking "One step" (each step is a new version, so a redraw);
* the cost curves redrawn at least 10 times a second while a job trains a [2, 8, 8, 1]
  network, without falling behind it: the page counts its curve redraws (``data-redraws`` on
  the plot), and the lag is how far the step it shows trails the job's own step.

Not part of the test suite.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

import httpx

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.server import ServerProcess, free_port

NETWORK = {
    "layer_dims": [2, 8, 8, 1],
    "hidden_activation": "tanh",
    "output_activation": "sigmoid",
    "initialization": "xavier",
    "seed": 1,
    "optimizer": {"name": "adam", "learning_rate": 0.01},
}
DATA = "data=circle&points=200&noise=0.1&split=0.7&seed=1"
REDRAW_GOAL_MS = 100.0
RATE_GOAL = 10.0


@dataclass
class PlaygroundResult:
    redraw_ms: list[float]  # one per redraw after the first
    curve_rate: float  # curve redraws per second while the job ran
    event_rate: float  # new points per second on the curve (progress events with a new step)
    lag_steps: int  # the job's step minus the step the page showed, at the same moment
    steps_per_second: float  # the job's speed

    @property
    def median_ms(self) -> float:
        return statistics.median(self.redraw_ms)

    @property
    def lag_ms(self) -> float:
        return 1000 * self.lag_steps / self.steps_per_second if self.steps_per_second else 0.0


def measure_playground(threads: int, redraws: int, seconds: float) -> PlaygroundResult:
    """Start a server, open the page in Chromium and measure both goals."""
    from playwright.sync_api import sync_playwright

    env = {
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "BACKPROP_LOG_LEVEL": "warning",
    }
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "--port", str(port)]
    with (
        ServerProcess(env=env, args=command, port=port, startup_timeout=60) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            network = api.post("/networks", json=NETWORK).json()["id"]
            page.goto(f"{server.url}/playground?network={network}&{DATA}")
            count = "performance.getEntriesByName('boundary-redraw').length"
            page.wait_for_function(f"() => {count} >= 1")
            step = page.get_by_role("button", name="One step")
            for done in range(1, redraws + 1):
                step.click()
                page.wait_for_function(f"() => {count} >= {done + 1}")
                page.wait_for_function("() => !document.querySelector('#step').disabled")
            durations: list[float] = page.evaluate(
                "() => performance.getEntriesByName('boundary-redraw').map((e) => e.duration)"
            )

            page.get_by_label("Steps per play").fill("5000000")  # under BACKPROP_MAX_JOB_STEPS
            page.get_by_role("button", name="Play").click()
            points = "Number(document.querySelector('#cost-plot').dataset.points)"
            shown = f"() => {points}"
            page.wait_for_function(f"() => {points} > {redraws + 1}")
            job = api.get(f"/networks/{network}/jobs").json()["jobs"][-1]["id"]
            redrawn = "() => Number(document.querySelector('#cost-plot').dataset.redraws)"
            redraws0, points0, t0 = page.evaluate(redrawn), page.evaluate(shown), time.monotonic()
            step0 = api.get(f"/jobs/{job}").json()["step"]
            time.sleep(seconds)
            redraws1, points1, t1 = page.evaluate(redrawn), page.evaluate(shown), time.monotonic()
            # The step the page shows and the job's own, read one right after the other.
            status = page.locator('#readout [data-item="job"]').inner_text()
            live = api.get(f"/jobs/{job}").json()
            shown_step = int(status.split("step ", 1)[1].split()[0]) if "step " in status else 0
            if api.post(f"/jobs/{job}/cancel").status_code >= 400:
                api.delete(f"/jobs/{job}")  # before POST /cancel existed, DELETE cancelled
            elapsed = t1 - t0
            return PlaygroundResult(
                redraw_ms=durations[1:],
                curve_rate=(redraws1 - redraws0) / elapsed,
                event_rate=(points1 - points0) / elapsed,
                lag_steps=max(0, live["step"] - shown_step),
                steps_per_second=(live["step"] - step0) / (time.monotonic() - t0),
            )
        finally:
            browser.close()
