"""Service configuration, read once from ``BACKPROP_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_database_url() -> str:
    return f"sqlite:///{Path('data') / 'backprop.db'}"


def _cores() -> int:
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Every knob of the service. Defaults suit one machine with a few GiB to spare."""

    model_config = SettingsConfigDict(env_prefix="BACKPROP_", frozen=True)

    # ---- the store ---------------------------------------------------------------------
    database_url: str = Field(
        default_factory=_default_database_url,
        description="sqlite:///path/to/file.db (default: ./data/backprop.db) or postgresql://...",
    )
    database_pool_size: int = Field(
        10, ge=1, le=1000, description="PostgreSQL connections per process (SQLite: unused)."
    )
    database_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="The longest any call waits for the database (a connection, a lock); "
        "then it answers 503 with Retry-After.",
    )
    disk_reserve_bytes: int = Field(
        8 * 1024 * 1024,
        ge=0,
        description="SQLite: bytes kept in a file beside the database (<name>.reserve) so that "
        "deleting networks works on a full disk; other writes are refused (507) while it cannot "
        "be kept. 0: none.",
    )
    sqlite_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="SQLite: the memory its page caches may hold together in a process (a soft "
        "limit), so that a commit of a large network's state is written from memory, not read "
        "back from the file. 0: SQLite's default, 2 MB per connection.",
    )
    # ---- what one request may ask for ---------------------------------------------------
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_v2_decompressed_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest V2 body once its gzip/deflate is undone."
    )
    max_parameters: int = Field(10_000_000, ge=1, description="Most parameters in one network.")
    max_layers: int = Field(64, ge=1, description="Most layers (L) in one network.")
    max_units: int = Field(100_000, ge=1, description="Most units in one layer (n_x included).")
    max_examples: int = Field(1_000_000, ge=1, description="Most examples (m) in one request.")
    max_activations: int = Field(
        50_000_000,
        ge=1,
        description="Most activations one batch may make: m x the units of all layers (V2 "
        "and jobs included).",
    )
    max_train_work: int = Field(
        50_000_000_000,
        ge=1,
        description="Most work in one synchronous /train call: epochs x examples x parameters "
        "(about the multiply-adds of its forward passes); longer runs are jobs.",
    )
    max_gradcheck_work: int = Field(
        10_000_000_000,
        ge=1,
        description="Most work in one gradient check: parameters^2 x examples.",
    )
    max_gradcheck_parameters: int = Field(
        20_000, ge=1, description="Most parameters a gradient check may perturb."
    )
    max_job_steps: int = Field(10_000_000, ge=1, description="Most steps one job may take.")
    max_body_bytes_in_flight: int = Field(
        128 * 1024 * 1024,
        ge=1024,
        description="Most bytes of request bodies one process holds at once, while they arrive "
        "and are parsed (JSON numbers take about ten times their text in memory); past it, 503 "
        "with Retry-After. Never less than max_body_bytes.",
    )
    max_validation_errors: int = Field(
        20, ge=1, le=1000, description="Most validation errors one 422 answer lists."
    )
    # ---- connections (backprop-service; bare uvicorn: see the README) -------------------
    max_connections: int = Field(
        1000,
        ge=1,
        description="Most connections one process keeps open; past it, the one that has waited "
        "longest for its client is closed to make room (503 if every one is busy).",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A request's line and headers must arrive within this, from the connection's "
        "start or its previous answer; else 408 and the connection closes.",
    )
    max_header_bytes: int = Field(
        65536, ge=1024, description="Largest request line and headers; past it, 431."
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A request's body must arrive within this of its headers; else 408 and the "
        "connection closes.",
    )
    # ---- what one key may keep ----------------------------------------------------------
    max_networks_per_owner: int = Field(
        10_000, ge=1, description="Most networks one API key (or the open service) may keep."
    )
    max_stored_bytes_per_key: int = Field(
        4 * 1024**3,
        ge=1,
        description="Most bytes one API key's networks may take in the store (their "
        "parameters, moments, last gradients and history); past it, 507.",
    )
    max_ended_jobs_per_network: int = Field(
        100,
        ge=1,
        description="Ended jobs a network keeps the records of; a new job removes the oldest "
        "past it. An ended job's batch is dropped when it ends.",
    )
    max_history_points: int = Field(
        100_000,
        ge=100,
        description="A network's history is thinned evenly past twice this many steps.",
    )
    # ---- capacity ----------------------------------------------------------------------
    heavy_workers: int = Field(
        default_factory=_cores,
        ge=1,
        description="Threads for heavy work (training, gradients, large predictions), apart "
        "from those serving reads.",
    )
    heavy_queue: int = Field(
        64,
        ge=0,
        description="Heavy calls that may wait for a thread; past it, 503 with Retry-After.",
    )
    warm_bytes: int = Field(
        512 * 1024 * 1024, ge=0, description="Memory for networks kept warm between calls."
    )
    # ---- jobs --------------------------------------------------------------------------
    max_concurrent_jobs: int = Field(
        default_factory=_cores,
        ge=1,
        description="Training jobs one process runs at once; the rest wait, queued.",
    )
    checkpoint_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="A running job commits a checkpoint at least this often: a crash loses at "
        "most this much of its work.",
    )
    max_job_restarts: int = Field(
        5, ge=0, description="Interruptions after which a job ends failed instead of resuming."
    )
    queue_url: str = Field(
        "",
        description="A message broker's URL (amqp://...): the service then only enqueues jobs, "
        "and `backprop-service worker` processes run them. Empty: jobs run in this service.",
    )
    job_slice_seconds: float = Field(
        600.0,
        gt=0,
        description="With a queue, a worker runs a job this long, then re-enqueues it from its "
        "checkpoint (well inside the broker's 30-minute consumer timeout).",
    )
    # ---- access, logs and shutdown ------------------------------------------------------
    api_keys: str = Field("", description="Comma-separated API keys; empty: the service is open.")
    metrics_key: str = Field(
        "",
        description="A key /metrics needs (as a bearer key); empty: /metrics answers anyone "
        "who may call the service.",
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line.")
    log_level: str = Field("info", description="debug, info, warning or error.")
    opentelemetry: bool = Field(
        False,
        description="FastAPI's own OpenTelemetry spans, metrics and logs, sent to the providers "
        "the process configures (opentelemetry-sdk, opentelemetry-instrument). Off, no request "
        "pays for looking them up (8-14 µs each, measured).",
    )
    shutdown_grace_seconds: int = Field(
        20,
        ge=0,
        le=3600,
        description="On SIGTERM, how long requests in flight may take to finish; then they are "
        "stopped and answered 503 with nothing committed.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///path/to/file.db or postgresql://...")
        return value

    @property
    def body_bytes_in_flight(self) -> int:
        """The bodies' budget: room for at least one body of the largest size."""
        return max(self.max_body_bytes_in_flight, self.max_body_bytes)

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(key.strip() for key in self.api_keys.split(",") if key.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
