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


class Settings(BaseSettings):
    """Every knob of the service. Defaults suit one machine with a few GiB to spare."""

    model_config = SettingsConfigDict(env_prefix="BACKPROP_", frozen=True)

    database_url: str = Field(
        default_factory=_default_database_url,
        description="sqlite:///path/to/file.db (default: ./data/backprop.db) or postgresql://...",
    )
    database_pool_size: int = Field(
        10, ge=1, le=1000, description="PostgreSQL connections per process (SQLite: unused)."
    )
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_parameters: int = Field(10_000_000, ge=1, description="Most parameters in one network.")
    max_layers: int = Field(64, ge=1, description="Most layers (L) in one network.")
    max_units: int = Field(100_000, ge=1, description="Most units in one layer (n_x included).")
    max_examples: int = Field(1_000_000, ge=1, description="Most examples (m) in one request.")
    max_activations: int = Field(
        50_000_000,
        ge=1,
        description="Most activations (examples x units summed over layers) one batch may make.",
    )
    max_train_examples: int = Field(
        200_000,
        ge=1,
        description="Most epochs x examples in one synchronous /train call; longer runs are jobs.",
    )
    max_gradcheck_parameters: int = Field(
        20_000, ge=1, description="Most parameters a gradient check may perturb."
    )
    max_history_points: int = Field(
        100_000, ge=100, description="GET /history thins evenly past this many points."
    )
    max_concurrent_jobs: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Training jobs one process runs at once; the rest wait, queued.",
    )
    checkpoint_seconds: float = Field(
        2.0, gt=0, le=3600, description="A running job commits its progress this often."
    )
    job_lease_seconds: float = Field(
        10.0,
        ge=0.2,
        le=3600,
        description="A process's hold on its jobs, renewed every quarter of it; once it runs "
        "out (the process hung or died) any other process fails them.",
    )
    api_keys: str = Field("", description="Comma-separated API keys; empty: the service is open.")
    max_networks_per_owner: int = Field(
        10_000, ge=1, description="Most networks one API key (or the open service) may keep."
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line.")
    log_level: str = Field("info", description="debug, info, warning or error.")
    shutdown_grace_seconds: int = Field(
        30, ge=0, description="On SIGTERM, how long requests in flight may take to finish."
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///path/to/file.db or postgresql://...")
        return value

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(key.strip() for key in self.api_keys.split(",") if key.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
