"""The Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker engine.

hadolint lints the Dockerfile; docker-compose.yml is validated against the Compose
Specification's JSON schema, vendored as ``compose-spec.json`` (Apache-2.0, from
compose-spec/compose-spec ``schema/compose-spec.json``, the copy that check-jsonschema 0.39
ships) so the test needs no network. The rest pins down what the files must keep promising.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.core.settings import Settings
from tests.packaging import (
    COMPOSE_FILE,
    DOCKERFILE,
    REPO,
    Instruction,
    dockerignore_admits,
    exec_form,
    read_dockerfile,
    stage_of,
)

SCHEMA = Path(__file__).with_name("compose-spec.json")
BASE_IMAGE = "python:3.12-slim"


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return read_dockerfile()


@pytest.fixture(scope="module")
def runtime(instructions: list[Instruction]) -> list[Instruction]:
    return stage_of(instructions)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def api(compose: dict[str, Any]) -> dict[str, Any]:
    service = compose["services"]["api"]
    assert isinstance(service, dict)
    return service


def values(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.value for i in stage if i.keyword == keyword]


def healthcheck_command(stage: list[Instruction]) -> list[str]:
    [healthcheck] = values(stage, "HEALTHCHECK")
    _options, _, command = healthcheck.partition("CMD ")
    return exec_form(command)


# --- Dockerfile ---------------------------------------------------------------------------


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    # A scratch HOME, so no personal hadolint.yaml can switch rules off.
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_multi_stage_build_on_a_pinned_slim_python(instructions: list[Instruction]) -> None:
    froms = [shlex.split(v) for v in values(instructions, "FROM")]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    assert {f[0] for f in froms} == {BASE_IMAGE}
    builder = froms[0][2]
    assert [f[1].upper() for f in froms] == ["AS"] * len(froms)
    builder_runs = " ".join(values(stage_of(instructions, 0), "RUN"))
    assert "pip wheel" in builder_runs or "-m build" in builder_runs
    copies_from_builder = [
        v for v in values(stage_of(instructions), "COPY") if f"--from={builder}" in v
    ]
    assert copies_from_builder, "the runtime stage takes the wheel from the builder"


def test_runtime_runs_as_a_non_root_user(runtime: list[Instruction]) -> None:
    users = values(runtime, "USER")
    assert users, "the runtime stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_runtime_environment(runtime: list[Instruction]) -> None:
    env = " ".join(values(runtime, "ENV"))
    for setting in (
        "BACKPROP_DATABASE_URL=sqlite:////data/backprop.db",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
    ):
        assert setting in shlex.split(env)


def test_data_volume_is_created_writable_before_it_is_declared(
    runtime: list[Instruction],
) -> None:
    volumes = values(runtime, "VOLUME")
    assert volumes in (["/data"], ['["/data"]'])
    # Changes to a path after VOLUME declares it are discarded, so the chown must come first.
    keywords = [i.keyword for i in runtime]
    volume_at = keywords.index("VOLUME")
    prepares = [n for n, i in enumerate(runtime) if i.keyword == "RUN" and "chown" in i.value]
    prepares = [n for n in prepares if "/data" in runtime[n].value]
    assert prepares, "a RUN must create /data and chown it to the service's user"
    assert prepares[0] < volume_at
    user = values(runtime, "USER")[-1].split(":")[0]
    assert user in runtime[prepares[0]].value, "chown'ed to the user the image runs as"


def test_exposes_8000_and_probes_healthz(runtime: list[Instruction]) -> None:
    assert values(runtime, "EXPOSE") == ["8000"]
    command = healthcheck_command(runtime)
    assert command[:2] == ["python", "-c"], "slim has no curl: the probe uses urllib"
    assert "urllib.request" in command[2]
    assert "http://127.0.0.1:8000/healthz" in command[2]
    compile(command[2], "<HEALTHCHECK>", "exec")


def test_cmd_is_exec_form_and_runs_the_console_script(runtime: list[Instruction]) -> None:
    [cmd] = values(runtime, "CMD")
    assert exec_form(cmd) == ["backprop-service", "--host", "0.0.0.0", "--port", "8000"]
    assert not values(runtime, "ENTRYPOINT")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "backprop-service" in scripts


def test_dockerignore_keeps_the_build_inputs_and_nothing_else(
    instructions: list[Instruction],
) -> None:
    for copy in values(stage_of(instructions, 0), "COPY"):
        *sources, _target = shlex.split(copy)
        for source in sources:
            path = REPO / source
            files = [path] if path.is_file() else list(path.rglob("*.py"))
            assert files, f"COPY {source}: nothing there"
            for file in files:
                if "__pycache__" not in file.parts:
                    relative = file.relative_to(REPO).as_posix()
                    assert dockerignore_admits(relative), relative
    for kept_out in (
        ".git/HEAD",
        ".venv/bin/python",
        "data/backprop.db",
        "tests/__init__.py",
        "service/__pycache__/main.cpython-312.pyc",
        ".mypy_cache/3.11/x.json",
        "Dockerfile",
    ):
        assert not dockerignore_admits(kept_out), kept_out


# --- docker-compose.yml -------------------------------------------------------------------


def check_jsonschema(document: Path) -> subprocess.CompletedProcess[str]:
    """Validate ``document`` against the vendored compose-spec schema, offline."""
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), "--color", "never", "--schemafile", str(SCHEMA), str(document)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid_compose_spec() -> None:
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  api:\n    restart: 1\n    helthcheck: {}\n")
    result = check_jsonschema(broken)
    assert result.returncode == 1
    assert "restart" in result.stdout
    assert "helthcheck" in result.stdout


def test_compose_builds_the_dockerfile_and_publishes_8000(api: dict[str, Any]) -> None:
    build = api["build"]
    context = REPO / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (context / dockerfile).resolve() == DOCKERFILE
    assert "8000:8000" in [str(p) for p in api["ports"]]
    assert api["restart"] == "unless-stopped"


def test_compose_keeps_data_in_a_named_volume(compose: dict[str, Any], api: dict[str, Any]) -> None:
    mounts = []
    for volume in api["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            mounts.append((source, target))
        elif volume.get("type", "volume") == "volume":
            mounts.append((volume["source"], volume["target"]))
    [source] = [source for source, target in mounts if target == "/data"]
    assert source in compose["volumes"], "a named (top-level) volume, not a bind mount"
    assert api["environment"]["BACKPROP_DATABASE_URL"] == "sqlite:////data/backprop.db"


def test_compose_healthcheck_is_the_dockerfiles(
    api: dict[str, Any], runtime: list[Instruction]
) -> None:
    healthcheck = api["healthcheck"]
    assert healthcheck["test"] == ["CMD", *healthcheck_command(runtime)]
    assert not healthcheck.get("disable", False)
    for option in ("interval", "timeout", "start_period", "retries"):
        assert option in healthcheck


def seconds(duration: str) -> float:
    """A compose duration (``40s``, ``1m30s``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number = 0.0, ""
    for part in re.findall(r"\d+(?:\.\d+)?|ms|[hms]", duration):
        if part in units:
            total += float(number) * units[part]
        else:
            number = part
    return total


@pytest.mark.parametrize("name", ["api", "replica"])
def test_compose_stop_grace_outlasts_the_services_drain(compose: dict[str, Any], name: str) -> None:
    """Docker SIGKILLs a container stop_grace_period after SIGTERM (10 s by default); the
    service drains for SHUTDOWN_GRACE_SECONDS, lets a commit under way take up to the database
    timeout, and then checkpoints its jobs (the database timeout again)."""
    service = compose["services"][name]
    defaults = Settings.model_fields
    drain = defaults["shutdown_grace_seconds"].default + 2 * float(
        defaults["database_timeout_seconds"].default
    )
    grace = service["environment"].get("BACKPROP_SHUTDOWN_GRACE_SECONDS")
    assert grace is None, "the drain is the default one; change this test with it"
    assert seconds(service["stop_grace_period"]) > drain


# --- docker-compose.yml: the `scale` profile (PostgreSQL, replicas, nginx) -----------------

SCALE_SERVICES = ("postgres", "rabbitmq", "replica", "worker", "nginx")
NGINX_CONF = REPO / "deploy" / "nginx.conf"


def test_a_plain_up_starts_the_sqlite_service_alone(compose: dict[str, Any]) -> None:
    unprofiled = [name for name, s in compose["services"].items() if not s.get("profiles")]
    assert unprofiled == ["api"]
    for name in SCALE_SERVICES:
        assert compose["services"][name]["profiles"] == ["scale"], name


def test_scale_postgres_is_official_checked_and_persistent(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres"
    assert tag, "a pinned major version"
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    [volume] = postgres["volumes"]
    assert volume["type"] == "volume"
    assert volume["source"] in compose["volumes"]
    assert volume["target"] == "/var/lib/postgresql/data"


def test_scale_runs_three_replicas_of_the_image_on_postgres(
    compose: dict[str, Any], api: dict[str, Any]
) -> None:
    replica = compose["services"]["replica"]
    postgres = compose["services"]["postgres"]["environment"]
    assert replica["image"] == api["image"]
    assert replica["build"] == api["build"]
    assert replica["deploy"]["replicas"] == 3
    assert "ports" not in replica, "reached through nginx only"
    url = replica["environment"]["BACKPROP_DATABASE_URL"]
    assert url.startswith(f"postgresql://{postgres['POSTGRES_USER']}:")
    assert url.endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert replica["healthcheck"] == api["healthcheck"]


def test_scale_replicas_enqueue_and_workers_run_the_jobs(
    compose: dict[str, Any], api: dict[str, Any]
) -> None:
    replica, worker = compose["services"]["replica"], compose["services"]["worker"]
    rabbitmq = compose["services"]["rabbitmq"]
    image, _, tag = rabbitmq["image"].partition(":")
    assert image == "rabbitmq"
    assert tag, "a pinned version"
    assert "consumer_timeout" in rabbitmq["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    user = rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"]
    queue = replica["environment"]["BACKPROP_QUEUE_URL"]
    assert queue.startswith(f"amqp://{user}:")
    assert queue.endswith("@rabbitmq:5672/")
    assert (worker["image"], worker["build"]) == (api["image"], api["build"])
    assert worker["command"] == ["backprop-service", "worker"]
    for name in ("BACKPROP_DATABASE_URL", "BACKPROP_QUEUE_URL"):
        assert worker["environment"][name] == replica["environment"][name], name
    assert worker["environment"]["OPENBLAS_NUM_THREADS"] == "1"
    assert "ports" not in worker
    assert "deploy" not in worker, "scaled with --scale worker=N"
    for service in (replica, worker):
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    # A worker's SIGTERM: the step under way, a checkpoint (the database timeout at most), a
    # message published; well inside its grace.
    database_timeout = float(Settings.model_fields["database_timeout_seconds"].default)
    assert seconds(worker["stop_grace_period"]) > 4 * database_timeout


def test_scale_nginx_is_official_and_serves_the_replicas_on_8000(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    image, _, tag = nginx["image"].partition(":")
    assert image == "nginx"
    major, minor = (int(part) for part in tag.split("-")[0].split(".")[:2])
    assert (major, minor) >= (1, 28), "`resolve` in an upstream needs nginx 1.27.3 or newer"
    assert nginx["ports"] == ["8000:80"]
    assert nginx["depends_on"]["replica"]["condition"] == "service_healthy"
    [mount] = nginx["volumes"]
    assert (REPO / mount["source"]).resolve() == NGINX_CONF
    assert mount["target"] == "/etc/nginx/conf.d/default.conf"
    assert mount["read_only"] is True
    assert "healthz" in " ".join(nginx["healthcheck"]["test"])


def nginx_blocks(text: str) -> dict[str, list[str]]:
    """Every directive of an nginx config (comments dropped), by the block it sits in
    (``upstream backprop_replicas``, ``location /``, ...); checks that braces balance and
    that every directive ends with a semicolon."""
    blocks: dict[str, list[str]] = {}
    stack = ["main"]
    statement = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        for char in line + " ":
            if char == "{":
                stack.append(" ".join(statement.split()))
                statement = ""
            elif char == "}":
                assert not statement.strip(), f"unterminated directive: {statement!r}"
                stack.pop()
                assert stack, "unbalanced '}'"
            elif char == ";":
                blocks.setdefault(stack[-1], []).append(" ".join(statement.split()))
                statement = ""
            else:
                statement += char
    assert stack == ["main"], f"unclosed block(s): {stack[1:]}"
    assert not statement.strip(), f"unterminated directive: {statement!r}"
    return blocks


def test_nginx_conf_balances_the_replicas_and_streams_events() -> None:
    blocks = nginx_blocks(NGINX_CONF.read_text())
    upstream = blocks["upstream backprop_replicas"]
    assert any(d.startswith("server replica:8000 ") and " resolve" in d for d in upstream)
    assert any(d.startswith("zone ") for d in upstream), "`resolve` needs a shared zone"
    assert any(d.startswith("resolver 127.0.0.11") for d in upstream), "Docker's DNS"
    location = blocks["location /"]
    assert "proxy_pass http://backprop_replicas" in location
    assert "proxy_buffering off" in location, "server-sent events must not be buffered"
    assert "proxy_http_version 1.1" in location
    assert not any("non_idempotent" in d for d in location), "a POST is never replayed"
    server = blocks["server"]
    assert "listen 80" in server
    assert "client_max_body_size 0" in server, "the service answers 413 itself"
