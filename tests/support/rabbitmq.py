"""A RabbitMQ broker for tests: a virtual host of their own on the server, deleted afterwards.

The server is the one ``BACKPROP_TEST_AMQP_URL`` names (default
``amqp://guest:guest@127.0.0.1:5672//``), administered with ``rabbitmqctl`` on this machine.
Without a server, tests skip with the reason, unless the variable is set or ``CI`` is true:
then a missing broker is a failure, so CI can never pass by skipping the queue tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import Connection

ENV = "BACKPROP_TEST_AMQP_URL"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def server_url() -> str:
    return os.environ.get(ENV) or DEFAULT_URL


def missing(url: str) -> str:
    """Why the broker at ``url`` cannot be used here ("" if it can)."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH"
    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.connect()
    except OSError as error:
        return f"no RabbitMQ broker answers at {url} ({error})"
    return ""


def server_url_or_skip() -> str:
    url = server_url()
    reason = missing(url)
    if reason:
        if os.environ.get(ENV) or os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}. The queue tests must run here.", pytrace=False)
        pytest.skip(f"{reason}; set {ENV} to run the queue tests")
    return url


@contextmanager
def scratch_vhost(server_url: str) -> Iterator[str]:
    """A new virtual host (its URL), for the server's user, deleted on exit."""
    name = f"backprop_test_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(server_url)
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        rabbitmqctl("delete_vhost", name)


@contextmanager
def broker_setting(key: str, value: int) -> Iterator[None]:
    """One of the broker's settings (``rabbit``'s application environment: global, as
    RabbitMQ 3.10 has no per-queue consumer timeout) changed, and restored on exit."""
    before = rabbitmqctl("eval", f"application:get_env(rabbit, {key}).").strip()
    rabbitmqctl("eval", f"application:set_env(rabbit, {key}, {value}).")
    try:
        yield
    finally:
        if before.startswith("{ok,"):
            rabbitmqctl("eval", f"application:set_env(rabbit, {key}, {before[4:-1]}).")
        else:
            rabbitmqctl("eval", f"application:unset_env(rabbit, {key}).")
