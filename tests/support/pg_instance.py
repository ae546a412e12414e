"""A PostgreSQL server of a test's own, to stop and start at will (the shared one of
:mod:`tests.support.postgres` is never stopped).

>>> with PrivatePostgres() as pg:              # doctest: +SKIP
...     pg.url                                  # postgresql://postgres@127.0.0.1:<port>/postgres
...     pg.stop_immediately()                   # as a crash: connections drop, nothing flushed
...     pg.start()                              # crash recovery, then it accepts connections

It is ``initdb`` into a temporary directory and ``pg_ctl`` on a free loopback port (its socket
in that directory too), with the binaries of the machine's PostgreSQL packages
(``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root, so as root (tests
run as root in CI) the server runs as the ``postgres`` OS user, with a directory it owns.

:func:`private_postgres_or_skip` skips with the reason when that is impossible (no packages, no
``postgres`` user), unless ``CI`` is true: then it fails, so CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import pytest

from tests.support.server import free_port

OS_USER = "postgres"


def _binaries() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _skip_or_fail(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}; the fault tests must run in CI.", pytrace=False)
    pytest.skip(reason)


class PrivatePostgres:
    """One throwaway PostgreSQL server: ``start``, ``stop_immediately``, ``start`` again."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.root = Path(tempfile.mkdtemp(prefix="backprop-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", OS_USER, "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [*self._as_user, str(self.bin_dir / args[0]), *args[1:]]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{self.server_log()}"
            )

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def init(self) -> Self:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E",
            "UTF8",
        )  # fmt: skip
        return self

    def start(self) -> float:
        """Start the server; return the monotonic time at which it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100 -c shared_buffers=16MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waited for it; make sure a TCP client gets in too
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return time.monotonic()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop_immediately(self) -> None:
        """``pg_ctl stop -m immediate``: every backend ends at once, as in a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.init()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def private_postgres_or_skip() -> PrivatePostgres:
    """A server not started yet (use it as a context manager); skip, or fail under CI, when the
    machine cannot run one."""
    bin_dir = _binaries()
    if bin_dir is None:
        _skip_or_fail(
            "no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
        raise AssertionError  # unreachable: skip and fail raise
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            _skip_or_fail(
                f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL as"
            )
        if shutil.which("runuser") is None:
            _skip_or_fail("running as root and there is no runuser to run PostgreSQL as postgres")
    return PrivatePostgres(bin_dir)
