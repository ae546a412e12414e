"""Through real servers on the embedded store: a server SIGKILLed in the middle of a training
job loses nothing but the steps since the job's last checkpoint. The next server resumes the
job from that checkpoint, and it ends with exactly the parameters of a run that was never
interrupted (mini-batches, a shuffle seed, Adam and dropout included). A job whose process
keeps dying ends failed after the configured number of restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from service.store import open_store
from tests.e2e.resumable import JOB, STEPS, assert_uninterrupted, ended, start_job
from tests.support.server import ServerProcess
from tests.support.waiting import poll


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    return {"BACKPROP_DATABASE_URL": url, "BACKPROP_CHECKPOINT_SECONDS": "0.3", **extra}


def _killed_after_two_checkpoints(server: ServerProcess, net: dict[str, Any]) -> None:
    try:
        poll(
            lambda: httpx.get(f"{server.url}/networks/{net['id']}").json(),
            lambda n: n["version"] >= 3,
            timeout=60,
        )
    finally:
        server.kill()


def test_a_killed_servers_job_resumes_and_ends_as_if_never_interrupted(tmp_path: Path) -> None:
    env = _env(tmp_path)
    server = ServerProcess(env=env).start()
    net, job, initial = start_job(server.url)
    _killed_after_two_checkpoints(server, net)

    store = open_store(env["BACKPROP_DATABASE_URL"])
    try:
        at_kill = store.get_job(job["id"], "")
    finally:
        store.close()
    assert at_kill.status == "running"
    assert 0 < at_kill.checkpoint_step < at_kill.total_steps

    with ServerProcess(env=env) as server:
        done = ended(server.url, job["id"])
        assert (done["status"], done["step"], done["restarts"]) == ("succeeded", STEPS, 1), done
        assert_uninterrupted(server.url, env["BACKPROP_DATABASE_URL"], net, initial)


def test_a_job_that_keeps_killing_its_process_ends_failed(tmp_path: Path) -> None:
    env = _env(tmp_path, BACKPROP_MAX_JOB_RESTARTS="1")
    server = ServerProcess(env=env).start()
    net, job, _ = start_job(server.url)
    _killed_after_two_checkpoints(server, net)
    server = ServerProcess(env=env).start()  # it resumes (restart 1) ...
    poll(
        lambda: httpx.get(f"{server.url}/jobs/{job['id']}").json(),
        lambda j: j["restarts"] == 1,
        timeout=60,
    )
    version = httpx.get(f"{server.url}/networks/{net['id']}").json()["version"]
    try:
        poll(
            lambda: httpx.get(f"{server.url}/networks/{net['id']}").json(),
            lambda n: n["version"] > version,
            timeout=60,
        )
    finally:
        server.kill()  # ... and dies again
    with ServerProcess(env=env) as server:
        failed = ended(server.url, job["id"])
        assert failed["status"] == "failed", failed
        assert "interrupted 2 times" in failed["error"]
        assert "resumed 1 times" in failed["error"]
        assert failed["restarts"] == 1
        network = httpx.get(f"{server.url}/networks/{net['id']}").json()
        assert 0 < network["steps_trained"] < STEPS  # it keeps its last checkpoint
        again = httpx.post(f"{server.url}/networks/{net['id']}/train", json={**JOB, "epochs": 1})
        assert again.status_code == 200, again.text  # the network is free again
