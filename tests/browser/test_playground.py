"""The playground in a real browser: build, train, pause, step, reset; the step-by-step
equations against /gradients; the gradient check; a reload; labels, keyboard and a narrow
window. One server and one browser for the module; every wait is on state."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from axe_playwright_python.sync_playwright import Axe
from numpy.typing import NDArray
from playwright.sync_api import Page, expect

from tests.browser.conftest import NARROW, Watched
from tests.browser.tex import matrices, number

DATA = "?data=xor&points=120&noise=0.05&split=0.5&seed=2"
XOR_X = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]]
XOR_Y = [[0.0, 1.0, 1.0, 0.0]]


def network_of(page: Page) -> str:
    ids = parse_qs(urlsplit(page.url).query).get("network", [])
    return ids[0] if ids else ""


def readout(page: Page, item: str) -> str:
    text = page.locator(f'#readout [data-item="{item}"]').inner_text()
    return text.removeprefix(item).strip()


def create_network(api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body = {
        "layer_dims": [2, 8, 8, 1],
        "hidden_activation": "tanh",
        "output_activation": "sigmoid",
        "initialization": "xavier",
        "seed": 3,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        **overrides,
    }
    response = api.post("/networks", json=body)
    assert response.status_code == 201, response.text
    network: dict[str, Any] = response.json()
    return network


def last_job(api: httpx.Client, network: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = api.get(f"/networks/{network}/jobs").json()["jobs"]
    return jobs[-1]


def test_build_train_pause_step_and_reset(fresh: Watched, api: httpx.Client) -> None:
    page = fresh.page
    fresh.goto("?data=circle&points=200&noise=0.05&split=0.7&seed=3")
    page.get_by_label("API key").fill("playground-test-key")
    page.get_by_role("button", name="Use key").click()
    page.get_by_label("Hidden layers (units, comma-separated)").fill("8, 8")
    page.get_by_label("Hidden activation").select_option("tanh")
    page.get_by_label("Learning rate").fill("0.02")
    page.get_by_role("button", name="Create network").click()
    page.wait_for_url(re.compile(r"network=\w+"))
    network = network_of(page)
    created = api.get(f"/networks/{network}").json()
    assert created["layer_dims"] == [2, 8, 8, 1]
    assert created["activations"] == ["tanh", "tanh", "sigmoid"]
    expect(page.locator("#network-diagram svg line")).to_have_count(2 * 8 + 8 * 8 + 8)
    fresh.shoot("build")

    # Play: a job long enough to be running when it is paused.
    page.get_by_label("Steps per play").fill("5000000")
    page.get_by_role("button", name="Play").click()
    plot = page.locator("#cost-plot")
    # Progress events put points on the curve while the job runs, and a checkpoint redraws
    # the decision boundary (each redraw leaves a performance measure).
    page.wait_for_function(
        "() => Number(document.querySelector('#cost-plot').dataset.points) >= 5"
        " && performance.getEntriesByName('boundary-redraw').length >= 2"
    )
    job = last_job(api, network)
    assert job["status"] == "running"
    fresh.shoot("training", at="#train")

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Play")).to_be_enabled()
    assert last_job(api, network)["status"] == "cancelled"
    expect(page.locator("#call-log")).to_contain_text(f"POST /jobs/{job['id']}/cancel")
    costs = api.get(f"/networks/{network}/history").json()["costs"]
    assert len(costs) > 10
    assert costs[-1]["cost"] < costs[0]["cost"] / 2, "the cost falls while training"
    # After the job the curve is redrawn from /history, every step of it.
    expect(plot).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))

    steps = api.get(f"/networks/{network}").json()["steps_trained"]
    expect(page.locator('#readout [data-item="steps"]')).to_have_text(f"steps {steps}")
    page.get_by_role("button", name="One step").click()
    expect(page.locator('#readout [data-item="steps"]')).to_have_text(f"steps {steps + 1}")
    assert api.get(f"/networks/{network}").json()["steps_trained"] == steps + 1

    page.get_by_role("button", name="Reset").click()
    page.wait_for_url(lambda url: network_of_url(url) not in {"", network})
    fresh_network = api.get(f"/networks/{network_of(page)}").json()
    assert fresh_network["steps_trained"] == 0
    assert fresh_network["layer_dims"] == created["layer_dims"]
    assert fresh_network["seed"] == created["seed"]
    expect(page.locator('#readout [data-item="steps"]')).to_have_text("steps 0")
    expect(plot).to_have_attribute("data-points", "0")


def network_of_url(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("network", [""])[0]


def expected_matrices(
    answer: dict[str, Any], parameters: dict[str, Any], X: NDArray[np.float64], Y: Any
) -> dict[str, NDArray[np.float64]]:
    """Every tag the step-by-step view may show, from the service's own answers."""
    expected: dict[str, NDArray[np.float64]] = {"A0": X, "Y": np.array(Y, dtype=np.float64)}
    for layer in answer["layers"]:
        l = layer["layer"]
        for name in ("Z", "A", "dZ", "dA", "dW", "db"):
            expected[f"{name}{l}"] = np.array(layer[name], dtype=np.float64)
    for layer in parameters["layers"]:
        expected[f"W{layer['layer']}"] = np.array(layer["W"], dtype=np.float64)
        expected[f"b{layer['layer']}"] = np.array(layer["b"], dtype=np.float64)
    for tag in list(expected):
        expected[f"{tag}T"] = expected[tag].T
    return expected


def equation_tex(page: Page) -> list[str]:
    texts: list[str] = page.locator(
        '#equations annotation[encoding="application/x-tex"]'
    ).all_text_contents()
    return texts


def test_step_by_step_shows_what_gradients_answers(keyed: Watched, api: httpx.Client) -> None:
    network = create_network(api, seed=5)
    trained = api.post(
        f"/networks/{network['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 25}
    )
    assert trained.status_code == 200
    page = keyed.page
    keyed.goto(f"{DATA}&network={network['id']}")
    page.get_by_label("Examples in the batch").fill("4")
    page.get_by_label("First training example").fill("3")
    page.get_by_role("button", name="Compute").click()
    request = page.locator('[data-request$="/gradients"]')
    expect(request).to_contain_text(f"/networks/{network['id']}/gradients")
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('[data-request$=\"/gradients\"]')"
        ".textContent.split('\\n\\n')[1]).X[0].length === 4"
    )

    # The exact request the page sent, sent again by the test.
    body = json.loads((request.text_content() or "").split("\n\n", 1)[1])
    assert body["include"] == ["Z", "A", "dZ", "dA", "dW", "db"]
    answer = api.post(f"/networks/{network['id']}/gradients", json=body).json()
    parameters = api.get(f"/networks/{network['id']}/parameters").json()
    assert answer["version"] == parameters["version"] == trained.json()["network"]["version"]
    expected = expected_matrices(answer, parameters, np.array(body["X"]), body["Y"])

    seen: set[str] = set()
    for tex in equation_tex(page):
        for tag, value in matrices(tex):
            if tag.startswith(("gprime", "typo")):
                continue
            want = expected[tag]
            assert value.shape == want.shape, tag
            np.testing.assert_allclose(value, want, rtol=1e-3, atol=1e-300, err_msg=tag)
            seen.add(tag)
    L = 3
    for l in range(1, L + 1):
        assert {f"W{l}", f"b{l}", f"Z{l}", f"A{l}", f"dZ{l}", f"dW{l}", f"db{l}"} <= seen
    assert {"A0", "Y", "dA1", "dA2", "dA3", "W2T", "W3T", "A0T"} <= seen
    # The cost of the batch, as /gradients computed it.
    cost = page.locator('[data-eq="cost"] annotation').text_content() or ""
    assert number(cost.rsplit("=", 1)[1]) == pytest.approx(answer["cost"], rel=1e-3)
    derivation = page.locator(".derivation annotation").first.text_content() or ""
    assert derivation.endswith("= a - y \\end{aligned}"), derivation
    keyed.shoot("step-by-step", at="#backprop")

    # The typos: A[L]^T gives dW[1] the wrong shape; dW^T gives dA the right shape and
    # wrong numbers, which fail a gradient-check-style comparison.
    page.get_by_label("show the typos").check()
    typo_dW1 = page.locator('[data-eq="typo-dW1"]')
    expect(typo_dW1).to_contain_text("mismatched shapes")
    expect(typo_dW1).to_contain_text("8×1")
    typo_dA2 = page.locator('[data-eq="typo-dA2"]')
    expect(typo_dA2).to_contain_text("the gradient check fails")
    dW3, dZ3 = expected["dW3"], expected["dZ3"]
    for tex in equation_tex(page):
        for tag, value in matrices(tex):
            if tag == "typo_dA2":
                np.testing.assert_allclose(value, dW3.T @ dZ3, rtol=1e-3, atol=1e-300)
                seen.add(tag)
    assert "typo_dA2" in seen
    keyed.shoot("typos", at='[data-eq="dA2"]')

    # The gradient check of the same batch, beside the service's own answer.
    page.get_by_label("Check on").select_option("step")
    page.get_by_role("button", name="Run gradient check").click()
    verdict = page.locator("#check-result .verdict")
    expect(verdict).to_contain_text("difference =")
    check = api.post(
        f"/networks/{network['id']}/gradient-check",
        json={"X": body["X"], "Y": body["Y"], "epsilon": 1e-7},
    ).json()
    expect(verdict).to_have_attribute("data-passed", str(check["passed"]).lower())
    expect(verdict).to_contain_text(f"{check['difference']:.3e}".replace("e-0", "e-"))
    rows = page.locator("#check-result tbody tr")
    expect(rows).to_have_count(L)
    for layer in check["layers"]:
        row = rows.nth(layer["layer"] - 1)
        expect(row).to_contain_text(f"{layer['dW_difference']:.3e}".replace("e-0", "e-"))
    expect(page.locator("#check-explain")).to_contain_text("without dropout")
    keyed.shoot("gradient-check", at="#gradcheck")


def test_a_reload_or_another_browser_shows_the_same_network(
    keyed: Watched, api: httpx.Client
) -> None:
    network = create_network(api, seed=7, layer_dims=[2, 4, 1], dtype="float32")
    epochs = 40
    assert (
        api.post(
            f"/networks/{network['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": epochs}
        ).status_code
        == 200
    )
    page = keyed.page
    url = f"{DATA}&network={network['id']}"
    plot = page.locator("#cost-plot")
    W1 = api.get(f"/networks/{network['id']}/parameters").json()["layers"][0]["W"]

    def shows_the_network() -> None:
        expect(page.locator('#readout [data-item="steps"]')).to_have_text(f"steps {epochs}")
        expect(plot).to_have_attribute("data-points", str(epochs))  # every step of /history
        expect(page.get_by_label("Hidden layers (units, comma-separated)")).to_have_value("4")
        expect(page.locator("#network-diagram svg line")).to_have_count(2 * 4 + 4)
        # The decision boundary of the float32 network, from a float32 base64 /predict.
        page.wait_for_function("() => performance.getEntriesByName('boundary-redraw').length")
        titles = page.locator("#network-diagram svg line title").all_text_contents()
        first = next(t for t in titles if t.startswith("W[1] row 1, column 1 = "))
        assert float(first.rsplit("=", 1)[1]) == pytest.approx(W1[0][0], rel=1e-3)

    keyed.goto(url)
    shows_the_network()
    page.reload()
    shows_the_network()
    assert network_of(page) == network["id"]
    # The data parameters came back from the URL too.
    expect(page.get_by_label("Dataset")).to_have_value("xor")
    expect(page.get_by_label("Points")).to_have_value("120")

    # Another browser (a new context: no storage shared) with the same link and the key.
    other = keyed.context.browser
    assert other is not None
    elsewhere = other.new_context()
    try:
        second = elsewhere.new_page()
        second.goto(f"{keyed.origin}/playground{url}")
        second.get_by_label("API key").fill("playground-test-key")
        second.get_by_role("button", name="Use key").click()
        expect(second.locator('#readout [data-item="steps"]')).to_have_text(f"steps {epochs}")
    finally:
        elsewhere.close()


def test_labelled_keyboard_usable_readable_and_narrow(keyed: Watched, api: httpx.Client) -> None:
    network = create_network(api, seed=11)
    page = keyed.page
    keyed.goto(f"{DATA}&network={network['id']}")
    expect(page.get_by_role("button", name="Play")).to_be_enabled()
    expect(page.locator("#equations .equation").first).to_be_visible()

    # Every control has an accessible name, and every clickable thing is a real button.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((el) => !(el.labels?.length || el.getAttribute('aria-label')
                              || (el.tagName === 'BUTTON' && el.textContent.trim())))
            .map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    assert page.locator("[role=button], a:not([href])").count() == 0
    # axe-core: labels, names, contrast (WCAG 2 A and AA), landmarks, and the rest.
    results = Axe().run(page, options={"runOnly": ["wcag2a", "wcag2aa", "wcag21aa"]})
    assert results.violations_count == 0, results.generate_report()

    # The keyboard reaches the main controls, in order.
    reached: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.id"))
    main_controls = ["api-key", "data-kind", "hidden-layers", "create", "play", "step", "reset"]
    positions = [reached.index(name) for name in main_controls]
    assert positions == sorted(positions), reached
    page.locator("#compute").focus()
    page.keyboard.press("Enter")
    expect(page.locator('[data-request$="/gradients"]')).to_be_attached()
    keyed.shoot("wide")
    keyed.shoot("layers", at="#layers")

    page.set_viewport_size(NARROW)
    page.evaluate("() => window.scrollTo(0, 0)")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the narrow window scrolls sideways"
    keyed.shoot("narrow")
    keyed.shoot("narrow-train", at="#train")


def test_dropout_masks_in_the_step_by_step_view(keyed: Watched, api: httpx.Client) -> None:
    network = create_network(api, seed=13, dropout={"keep_prob": 0.5, "seed": 4})
    assert network["dropout"]["keep_prob"] == [0.5, 0.5]
    page = keyed.page
    keyed.goto(f"{DATA}&network={network['id']}")
    page.get_by_label("Examples in the batch").fill("6")
    page.get_by_label("apply dropout").check()
    page.get_by_label("with masks from seed").fill("9")
    page.get_by_role("button", name="Compute").click()
    expect(page.locator('[data-eq="D2"]')).to_be_attached()
    request = page.locator('[data-request$="/gradients"]')
    body = json.loads((request.text_content() or "").split("\n\n", 1)[1])
    assert body["dropout_seed"] == 9
    answer = api.post(f"/networks/{network['id']}/gradients", json=body).json()
    masks = {f"D{layer['layer']}": np.array(layer["D"]) for layer in answer["layers"][:-1]}
    found = {}
    for tex in equation_tex(page):
        for tag, value in matrices(tex):
            if tag.startswith("D"):
                np.testing.assert_array_equal(value, masks[tag])
                found[tag] = value
    assert sorted(found) == ["D1", "D2"]


def test_own_csv_softmax_and_a_typo_whose_shapes_fit(fresh: Watched, api: httpx.Client) -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[-0.6, -0.5], [0.6, -0.5], [0.0, 0.6]])
    lines = ["x1,x2,class"]
    for k in range(45):
        x = centres[k % 3] + 0.15 * rng.standard_normal(2)
        lines.append(f"{x[0]:.4f},{x[1]:.4f},{k % 3}")
    page = fresh.page
    fresh.goto()
    page.get_by_label("API key").fill("playground-test-key")
    page.get_by_role("button", name="Use key").click()
    page.get_by_label("Dataset").select_option("csv")
    csv = page.get_by_label("CSV: one example per line, features then the label last")
    csv.fill("\n".join(lines))
    csv.blur()
    expect(page.locator("#data-summary")).to_contain_text("2 features, 3 classes")
    expect(page.get_by_label("Output activation")).to_have_value("softmax")
    page.get_by_label("Hidden layers (units, comma-separated)").fill("3")
    page.get_by_role("button", name="Create network").click()
    page.wait_for_url(re.compile(r"network=\w+.*data=csv&csv="))
    network = api.get(f"/networks/{network_of(page)}").json()
    assert network["layer_dims"] == [2, 3, 3]
    assert network["loss"] == "categorical_cross_entropy"

    page.get_by_label("Examples in the batch").fill("5")
    page.get_by_label("show the typos").check()
    typo = page.locator('[data-eq="typo-dW2"]')
    # dZ[2] A[2]^T is 3x3, as W[2] is: the shapes fit, so only the numbers can tell.
    expect(typo).to_contain_text("the shapes happen to fit")
    expect(typo).to_contain_text("the gradient check fails")
    request = page.locator('[data-request$="/gradients"]')
    body = json.loads((request.text_content() or "").split("\n\n", 1)[1])
    assert len(body["Y"]) == 3  # one-hot, (n_L, m)
    answer = api.post(f"/networks/{network['id']}/gradients", json=body).json()
    dZ2, A2 = (np.array(answer["layers"][1][name]) for name in ("dZ", "A"))
    wrong = dZ2 @ A2.T / 5
    right = np.array(answer["layers"][1]["dW"])
    difference = np.linalg.norm(wrong - right) / (np.linalg.norm(wrong) + np.linalg.norm(right))
    shown = dict(m for tex in equation_tex(page) for m in matrices(tex))
    np.testing.assert_allclose(shown["typo_dW2"], wrong, rtol=1e-3, atol=1e-300)
    expect(typo).to_contain_text(f"= {float(f'{difference:.4g}')}")
    derivation = page.locator(".derivation annotation").first.text_content() or ""
    assert "a_i - y_i" in derivation

    page.reload()  # the CSV comes back from localStorage, named by the URL
    expect(page.locator("#data-summary")).to_contain_text("2 features, 3 classes")
    expect(page.locator('#readout [data-item="network"]')).to_have_text(
        f"network {network['id'][:8]}"
    )


def test_a_reload_follows_the_running_job(keyed: Watched, api: httpx.Client) -> None:
    network = create_network(api, seed=17)
    job = api.post(
        f"/networks/{network['id']}/jobs", json={"X": XOR_X, "Y": XOR_Y, "epochs": 5_000_000}
    ).json()
    page = keyed.page
    keyed.goto(f"{DATA}&network={network['id']}")
    job_item = page.locator('#readout [data-item="job"]')
    expect(job_item).to_contain_text(f"{job['id'][:8]} running: step")
    expect(page.get_by_role("button", name="Play")).to_be_disabled()
    page.get_by_role("button", name="Pause").click()
    expect(job_item).to_contain_text(f"{job['id'][:8]} cancelled after")
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    expect(page.get_by_role("button", name="Play")).to_be_enabled()
    # The whole run is on the curve now, from /history.
    steps = api.get(f"/networks/{network['id']}").json()["steps_trained"]
    expect(page.locator("#cost-plot")).to_have_attribute("data-points", re.compile(r"^\d+$"))
    assert steps > 0
