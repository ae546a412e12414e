"""Synchronous training, history and last gradients through the HTTP API (in-process)."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from model import Layout, Trainer, TrainOptions, create_network, train
from service.core.settings import Settings
from service.main import create_app
from service.store import NetworkMissing, Store
from tests.service.helpers import XOR_X, XOR_Y, app_client, assert_problem, b64, create

pytestmark = pytest.mark.anyio


async def test_train_matches_the_model_in_process(client: httpx.AsyncClient, store: Store) -> None:
    net = await create(client)
    before = store.get_network(net["id"], "").network
    response = await client.post(
        f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 50}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = train(before, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=50))
    assert body["steps"] == 50
    assert [c["step"] for c in body["costs"]] == list(range(1, 51))
    np.testing.assert_allclose(
        [c["cost"] for c in body["costs"]], [c.cost for c in expected.costs], rtol=1e-12
    )
    assert body["final_cost"] == pytest.approx(expected.final_cost, rel=1e-12)
    assert body["duration_ms"] > 0
    assert body["network"]["steps_trained"] == 50
    assert body["network"]["version"] == 2
    assert response.headers["etag"] == '"2"'
    saved = store.get_network(net["id"], "").network
    for W, W_expected in zip(saved.W, expected.network.W, strict=True):
        np.testing.assert_array_equal(W, W_expected)

    # Steps continue from the network's first ever update.
    again = (
        await client.post(
            f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 2}
        )
    ).json()
    assert [c["step"] for c in again["costs"]] == [51, 52]
    assert again["network"]["version"] == 3
    history = (await client.get(f"/networks/{net['id']}/history")).json()["costs"]
    assert [c["step"] for c in history] == list(range(1, 53))
    assert history[:50] == body["costs"]


async def test_training_learns_xor(client: httpx.AsyncClient) -> None:
    net = await create(client, optimizer={"name": "adam", "learning_rate": 0.05})
    await client.post(f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 500})
    predicted = (await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})).json()
    assert predicted["predictions"] == [[0, 1, 1, 0]]
    evaluated = (
        await client.post(f"/networks/{net['id']}/evaluate", json={"X": XOR_X, "Y": XOR_Y})
    ).json()
    assert evaluated["accuracy"] == 1.0
    assert evaluated["m"] == 4
    assert evaluated["cost"] < 0.1


async def test_minibatches_and_learning_rate_override(client: httpx.AsyncClient) -> None:
    net = await create(client)
    body = {
        "X": XOR_X,
        "Y": XOR_Y,
        "epochs": 3,
        "batch_size": 3,
        "shuffle_seed": 7,
        "learning_rate": 0.1,
    }
    answer = (await client.post(f"/networks/{net['id']}/train", json=body)).json()
    assert answer["steps"] == 6  # two mini-batches (3 + 1) per epoch
    assert answer["network"]["steps_trained"] == 6


async def test_last_gradients_are_those_of_the_last_step(
    client: httpx.AsyncClient, store: Store
) -> None:
    net = await create(client)
    assert_problem(await client.get(f"/networks/{net['id']}/gradients"), 404, "not been trained")
    before = store.get_network(net["id"], "").network
    await client.post(f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 3})
    last = await client.get(f"/networks/{net['id']}/gradients")
    assert last.status_code == 200
    body = last.json()
    assert body["step"] == 3
    assert body["version"] == 2
    expected = train(before, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=3))
    assert body["cost"] == pytest.approx(expected.costs[-1].cost, rel=1e-12)
    assert expected.gradients is not None
    dW, db = Layout(before.spec).views(expected.gradients)
    for layer, dW_l, db_l in zip(body["layers"], dW, db, strict=True):
        np.testing.assert_allclose(layer["dW"], dW_l, rtol=1e-12)
        np.testing.assert_allclose(layer["db"], db_l, rtol=1e-12)
    encoded = (await client.get(f"/networks/{net['id']}/gradients?encoding=base64")).json()
    assert encoded["layers"][0]["dW"]["shape"] == [4, 2]


async def test_divergence_is_422_and_saves_nothing(client: httpx.AsyncClient, store: Store) -> None:
    net = await create(client, output_activation="linear", layer_dims=[2, 3, 1])
    before = store.get_network(net["id"], "")
    X = [[1e3, -2e3, 3e3, 5e2], [2e3, 1e3, -1e3, 4e3]]
    response = await client.post(
        f"/networks/{net['id']}/train",
        json={"X": X, "Y": [[1.0, 2.0, 3.0, 4.0]], "epochs": 50, "learning_rate": 1e6},
    )
    assert_problem(response, 422, "diverged", "step", "learning rate")
    after = store.get_network(net["id"], "")
    assert after.meta.version == before.meta.version
    for W, W0 in zip(after.network.W, before.network.W, strict=True):
        np.testing.assert_array_equal(W, W0)
    assert (await client.get(f"/networks/{net['id']}/history")).json()["costs"] == []


@pytest.mark.parametrize(
    ("batch", "fragments"),
    [
        ({"X": [[0.0, 1.0, 0.0, 1.0]], "Y": XOR_Y}, ["(2, m)", "(1, 4)"]),
        ({"X": [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], "Y": XOR_Y}, ["transpose"]),
        ({"X": XOR_X, "Y": [[0.0, 1.0, 1.0]]}, ["(1, 4)", "(1, 3)"]),
        ({"X": XOR_X, "Y": [[0.0, 2.0, 1.0, 0.0]]}, ["Y"]),
        ({"X": [[0.0, 1.0], [1.0]], "Y": [[1.0, 0.0]]}, ["same length"]),
        ({"X": [[0.0, True], [1.0, 0.0]], "Y": [[1.0, 0.0]]}, ["true/false"]),
        ({"X": [[0.0, "1.0"], [1.0, 0.0]], "Y": [[1.0, 0.0]]}, ["string"]),
        ({"X": [[0.0, None], [1.0, 0.0]], "Y": [[1.0, 0.0]]}, ["null"]),
        ({"X": [[[0.0]], [[1.0]]], "Y": [[1.0]]}, ["array"]),
        ({"X": [0.0, 1.0], "Y": [[1.0]]}, ["rows"]),
        ({"X": [], "Y": [[1.0]]}, ["at least one row"]),
        ({"X": [[], []], "Y": [[1.0]]}, ["at least one column"]),
        ({"X": 3, "Y": [[1.0]]}, ["matrix"]),
        ({"X": XOR_X, "Y": XOR_Y, "epochs": 0}, ["epochs"]),
        ({"X": XOR_X, "Y": XOR_Y, "epochs": 1.5}, ["epochs"]),
        ({"X": XOR_X, "Y": XOR_Y, "batch_size": 0}, ["batch_size"]),
        ({"X": XOR_X, "Y": XOR_Y, "learning_rate": 0}, ["learning_rate"]),
        ({"X": XOR_X}, ["Y"]),
        (
            {"X": {"shape": [2, 4], "dtype": "float64", "base64": "AAAA"}, "Y": XOR_Y},
            ["64 bytes", "holds 3"],
        ),
        ({"X": {"shape": [2, 4], "dtype": "int8", "base64": ""}, "Y": XOR_Y}, ["dtype"]),
        ({"X": {"shape": [8], "dtype": "float64", "base64": ""}, "Y": XOR_Y}, ["shape"]),
        ({"X": {"shape": [2, 4], "dtype": "float64", "base64": "!!"}, "Y": XOR_Y}, ["base64"]),
        ({"X": b64(np.full((2, 4), np.nan)), "Y": XOR_Y}, ["finite"]),
        ({"X": b64(np.full((2, 4), np.inf), "float32"), "Y": XOR_Y}, ["finite"]),
    ],
)
async def test_bad_batches_are_422_naming_what_was_expected(
    client: httpx.AsyncClient, batch: dict[str, object], fragments: list[str]
) -> None:
    net = await create(client)
    response = await client.post(f"/networks/{net['id']}/train", json=batch)
    assert_problem(response, 422, *fragments)
    assert (await client.get(f"/networks/{net['id']}")).json()["version"] == 1


async def test_nan_in_json_is_422_and_broken_json_is_400(client: httpx.AsyncClient) -> None:
    net = await create(client)
    nan = b'{"X": [[NaN, 0, 1, 1], [0, 1, 0, 1]], "Y": [[0, 1, 1, 0]]}'
    headers = {"content-type": "application/json"}
    response = await client.post(f"/networks/{net['id']}/train", content=nan, headers=headers)
    assert_problem(response, 422, "finite", "NaN")
    inf = b'{"X": [[Infinity, 0, 1, 1], [0, 1, 0, 1]], "Y": [[0, 1, 1, 0]]}'
    response = await client.post(f"/networks/{net['id']}/train", content=inf, headers=headers)
    assert_problem(response, 422, "Infinity")
    huge = b'{"X": [[1e400, 0, 1, 1], [0, 1, 0, 1]], "Y": [[0, 1, 1, 0]]}'
    response = await client.post(f"/networks/{net['id']}/train", content=huge, headers=headers)
    assert_problem(response, 422, "finite")
    broken = await client.post(
        f"/networks/{net['id']}/train", content=b'{"X": [[0', headers=headers
    )
    assert_problem(broken, 400, "not valid JSON")
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_problem(await client.post("/networks", content=deep, headers=headers), 400, "JSON")


async def test_sync_training_work_is_capped(client: httpx.AsyncClient) -> None:
    net = await create(client)  # 17 parameters
    response = await client.post(
        f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 10**9}
    )
    assert_problem(response, 422, "1000000000 x 4 x 17", "68000000000", "jobs")


async def test_the_last_steps_gradients_are_those_of_the_gradients_route_bit_for_bit(
    client: httpx.AsyncClient,
) -> None:
    """The code that trains is the code that inspects: after a full-batch step without dropout,
    GET /gradients equals POST /gradients on the parameters before it, to the last bit."""
    for dtype in ("float64", "float32"):
        net = await create(client, dtype=dtype, layer_dims=[2, 5, 3, 1], l2_lambda=0.1)
        batch = {"X": b64(XOR_X, dtype), "Y": b64(XOR_Y, dtype)}
        url = f"/networks/{net['id']}"
        before = (await client.post(f"{url}/gradients?encoding=base64", json=batch)).json()
        trained = await client.post(f"{url}/train", json={**batch, "epochs": 1})
        assert trained.status_code == 200, trained.text
        last = (await client.get(f"{url}/gradients?encoding=base64")).json()
        assert last["cost"] == before["cost"]
        for got, want in zip(last["layers"], before["layers"], strict=True):
            assert got["dW"] == want["dW"]
            assert got["db"] == want["db"]


async def test_float32_networks_train_in_float32(client: httpx.AsyncClient, store: Store) -> None:
    net = await create(client, dtype="float32")
    body = {"X": b64(XOR_X, "float32"), "Y": b64(XOR_Y, "float32"), "epochs": 5}
    assert (await client.post(f"/networks/{net['id']}/train", json=body)).status_code == 200
    saved = store.get_network(net["id"], "").network
    assert all(W.dtype == np.float32 for W in saved.W)
    assert all(b.dtype == np.float32 for b in saved.b)
    grads = (await client.get(f"/networks/{net['id']}/gradients?encoding=base64")).json()
    assert grads["layers"][0]["dW"]["dtype"] == "float32"


async def test_history_is_thinned_evenly_past_the_limit(store: Store) -> None:
    store.history_points = 100
    async with app_client(Settings(max_history_points=100), store) as client:
        net = await create(client)
        await client.post(
            f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 250}
        )
        costs = (await client.get(f"/networks/{net['id']}/history")).json()["costs"]
    steps = [c["step"] for c in costs]
    # Past 2 x 100 steps, every other one goes: step 1 and the even steps stay.
    assert steps == [1, *range(2, 251, 2)]


def test_network_created_in_process_can_be_committed(store: Store) -> None:
    from model import build_spec

    network = create_network(build_spec([2, 1], seed=0))
    record = store.create_network("abc", "", None, network)
    assert record.meta.version == 1


async def test_a_final_cost_that_overflows_is_divergence(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Trainer, "final_cost", lambda self: None)
    net = await create(client)
    response = await client.post(
        f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 3}
    )
    assert_problem(response, 422, "diverged after step 3", "nothing was saved")
    assert store.get_network(net["id"], "").meta.version == 1


def test_history_is_read_as_of_the_version_it_answers_for(store: Store) -> None:
    from model import build_spec
    from service.training.routes import history_at
    from tests.store.helpers import training_update

    record = store.create_network("n", "", None, create_network(build_spec([2, 1], seed=0)))
    newer = store.commit_update("n", "", 1, training_update(record, 3))
    # A reader that loaded version 1 just before that commit sees version 1's history.
    assert history_at(store, record.meta) == []
    assert [step for step, _ in history_at(store, newer.meta)] == [1, 2, 3]
    # One that loaded it just before a delete answers 404, not an empty history.
    store.delete_network("n", "")
    with pytest.raises(NetworkMissing):
        history_at(store, newer.meta)


async def test_a_float32_network_trains_the_same_from_lists_and_base64_and_refuses_overflow(
    client: httpx.AsyncClient,
) -> None:
    X = (np.random.RandomState(4).rand(2, 6) * 4 - 2).astype(np.float32)
    Y = [[0.0, 1.0, 1.0, 0.0, 1.0, 0.0]]
    answers = []
    for X_wire in (X.tolist(), b64(X, "float32")):
        net = await create(client, dtype="float32")
        response = await client.post(
            f"/networks/{net['id']}/train", json={"X": X_wire, "Y": Y, "epochs": 5}
        )
        assert response.status_code == 200, response.text
        answers.append(response.json()["costs"])
    assert answers[0] == answers[1]
    # Finite as float64, infinite as float32: refused, whichever wire form carries it.
    huge = [[1.0, 1e39, 0.0, 0.0, 0.0, 0.0], [0.0] * 6]
    for X_wire in (huge, b64(huge, "float64")):
        response = await client.post(f"/networks/{net['id']}/train", json={"X": X_wire, "Y": Y})
        assert_problem(response, 422, "X", "finite", "float32 holds magnitudes up to")
    assert (await client.get(f"/networks/{net['id']}")).json()["version"] == 2


async def test_a_train_stopped_by_the_drain_is_503_with_nothing_committed(
    settings: Settings, store: Store
) -> None:
    app_settings = Settings(database_url=settings.database_url, max_train_work=10**13)
    app = create_app(app_settings, store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        net = await create(client, layer_dims=[2, 64, 64, 1])
        call = asyncio.create_task(
            client.post(
                f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 10**7}
            )
        )
        while app.state.heavy.in_flight == 0:
            await asyncio.sleep(0.01)
        app.state.heavy.drain()  # what the drain timer does before the grace period ends
        response = await call
    assert_problem(response, 503, "shutting down", "not applied")
    assert response.headers["retry-after"] == "1"
    assert store.get_meta(net["id"], "").steps_trained == 0
