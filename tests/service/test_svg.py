"""The cost-curve SVG: the renderer on its own, and GET /networks/{id}/history.svg."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import httpx
import numpy as np
import pytest

from service.training.svg import Curve, decimate, empty_chart, line_chart, nice_ticks, tick_label
from tests.service.helpers import XOR_X, XOR_Y, assert_problem, create

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg.encode())
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    return root


def texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(f"{SVG}text")]


def paths(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}path"))


def path_points(path: ET.Element) -> np.ndarray:
    d = path.get("d") or ""
    assert d.startswith("M")
    return np.array([[float(v) for v in pair.split(",")] for pair in d[1:].split(" L")])


# ---- the renderer ----------------------------------------------------------------------------


def test_one_path_per_curve_with_axes_labels_and_title() -> None:
    steps = np.arange(1, 501)
    root = parse(
        line_chart(
            [Curve("gd", steps, 0.7 * np.exp(-steps / 100)), Curve("adam", steps, 1 / steps)],
            title="Two <curves> & more",
        )
    )
    assert len(paths(root)) == 2
    labels = texts(root)
    assert "step" in labels
    assert "cost" in labels
    assert "Two <curves> & more" in labels  # escaped in the file, intact once parsed
    assert {"gd", "adam"} <= set(labels)  # a legend, since there are two
    assert {"0", "100", "200", "300", "400", "500"} <= set(labels)  # x ticks
    assert root.find(f"{SVG}title") is not None


def test_the_curve_spans_the_plot_area_in_order() -> None:
    steps = np.arange(1, 101)
    root = parse(line_chart([Curve("c", steps, 1.0 / steps)], title="t"))
    (path,) = paths(root)
    points = path_points(path)
    assert len(points) == 100
    assert np.all(np.diff(points[:, 0]) > 0)  # left to right
    assert np.all(np.diff(points[:, 1]) >= 0)  # a falling cost goes down the page (y grows)
    width, height = float(root.get("width") or 0), float(root.get("height") or 0)
    assert points[:, 0].min() > 0
    assert points[:, 0].max() < width
    assert points[:, 1].min() > 0
    assert points[:, 1].max() < height


def test_log_scale_has_decade_ticks_and_straightens_an_exponential() -> None:
    steps = np.arange(1, 1001)
    costs = 10.0 ** (-steps / 250)  # from 10^-0.004 down to 10^-4
    linear = parse(line_chart([Curve("c", steps, costs)], title="t"))
    log = parse(line_chart([Curve("c", steps, costs)], title="t", scale="log"))
    assert {"1", "0.1", "0.01", "0.001", "0.0001"} <= set(texts(log))
    assert "log scale" in texts(log)
    assert "log scale" not in texts(linear)
    points = path_points(paths(log)[0])
    fit = np.polyval(np.polyfit(points[:, 0], points[:, 1], 1), points[:, 0])
    assert np.abs(fit - points[:, 1]).max() < 0.01  # a straight line (to the 0.01 px drawn)
    # A cost of exactly 0 has no logarithm: drawn at the smallest positive cost.
    with_zero = parse(line_chart([Curve("c", [1, 2, 3], [1.0, 0.1, 0.0])], title="t", scale="log"))
    assert len(path_points(paths(with_zero)[0])) == 3


def test_long_curves_keep_their_extremes_at_a_few_points_per_pixel() -> None:
    x = np.arange(1.0, 1_000_001.0)
    y = np.full_like(x, 0.5)
    y[123_456] = 9.0  # one spike
    xs, ys = decimate(x, y, 600)
    assert len(xs) <= 4 * 600
    assert ys.max() == 9.0
    assert (xs[0], xs[-1]) == (1.0, 1_000_000.0)
    root = parse(line_chart([Curve("c", x, y)], title="t"))
    assert len(path_points(paths(root)[0])) <= 4 * 720


def test_degenerate_inputs_still_draw() -> None:
    one = parse(line_chart([Curve("c", [1], [0.69])], title="t"))
    assert len(paths(one)) == 1
    assert len(list(one.iter(f"{SVG}circle"))) == 1  # a lone point is marked
    flat = parse(line_chart([Curve("c", [1, 2, 3], [0.5, 0.5, 0.5])], title="t"))
    assert len(paths(flat)) == 1
    empty = parse(line_chart([Curve("c", [], [])], title="t"))
    assert paths(empty) == []
    nan = parse(line_chart([Curve("c", [1, 2], [math.nan, math.inf])], title="t"))
    assert paths(nan) == []


def test_empty_chart_says_so() -> None:
    root = parse(empty_chart("Cost history: x", "Nothing yet."))
    assert paths(root) == []
    assert "Nothing yet." in texts(root)


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (1, 2500, [0, 500, 1000, 1500, 2000, 2500]),
        (0.0432, 0.6931, [0, 0.2, 0.4, 0.6, 0.8]),
        (0.31, 0.33, [0.31, 0.315, 0.32, 0.325, 0.33]),
        (-3, 7, [-4, -2, 0, 2, 4, 6, 8]),
    ],
)
def test_nice_ticks(lo: float, hi: float, ticks: list[float]) -> None:
    low, high, found = nice_ticks(lo, hi)
    assert found == pytest.approx(ticks)
    assert (low, high) == (found[0], found[-1])
    assert low <= lo
    assert high >= hi


def test_tick_labels() -> None:
    assert tick_label(0.6000000000000001, 0.2) == "0.6"
    assert tick_label(1500.0, 500.0) == "1500"
    assert tick_label(0.325, 0.005) == "0.325"
    assert tick_label(0.0, 0.1) == "0"
    assert tick_label(2e7, 5e6) == "2e+07"


# ---- the route ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_history_svg_draws_the_trained_cost(client: httpx.AsyncClient) -> None:
    net = await create(client, name="xor <1>")
    blank = await client.get(f"/networks/{net['id']}/history.svg")
    assert blank.status_code == 200
    assert blank.headers["content-type"].startswith("image/svg+xml")
    root = parse(blank.text)
    assert paths(root) == []
    assert any("No training steps" in text for text in texts(root))

    await client.post(f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 40})
    for scale in ("linear", "log"):
        drawn = await client.get(f"/networks/{net['id']}/history.svg", params={"scale": scale})
        assert drawn.status_code == 200
        assert drawn.headers["etag"] == '"2"'
        root = parse(drawn.text)
        assert len(paths(root)) == 1
        assert len(path_points(paths(root)[0])) == 40
        assert {"step", "cost", "Cost history: xor <1>"} <= set(texts(root))


@pytest.mark.anyio
async def test_history_svg_refuses_an_unknown_scale_or_network(client: httpx.AsyncClient) -> None:
    net = await create(client)
    bad = await client.get(f"/networks/{net['id']}/history.svg", params={"scale": "cubic"})
    assert_problem(bad, 422, "scale", "linear", "log")
    assert_problem(await client.get("/networks/nope/history.svg"), 404, "nope")
