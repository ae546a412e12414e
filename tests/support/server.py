"""Run the service as a real server subprocess, for end-to-end tests.

>>> with ServerProcess() as server:            # doctest: +SKIP
...     httpx.get(f"{server.url}/healthz")

:class:`ServerProcess` starts a command (by default ``python -m uvicorn service.main:app`` on a
free loopback port), waits until ``GET /healthz`` answers 200, and stops it with SIGTERM (then
SIGKILL). If the server dies or never answers, :class:`ServerStartError` carries its output.
The module is pytest-free; fixtures that use it live beside the tests that need them.

Hermetic by default: ``BACKPROP_*`` variables of the calling shell are not inherited (pass them
in ``env``), and the working directory is a fresh temporary one, so the default SQLite file
(``./data/``) never lands in the work tree. Pass ``cwd`` (or a ``BACKPROP_DATABASE_URL``) to
keep a store across restarts, for example after :meth:`ServerProcess.kill`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HOST = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server exited, or did not answer ``GET /healthz``, before the timeout."""


def free_port(host: str = HOST) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_command(port: int, host: str = HOST) -> list[str]:
    """The default command: this interpreter's uvicorn serving ``service.main:app``."""
    app = "service.main:app"
    return [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]


class ServerProcess:
    """One server subprocess on a loopback port.

    Parameters
    ----------
    env:
        Variables laid over this process's environment (minus its ``BACKPROP_*`` ones).
    args:
        The command to run; default :func:`uvicorn_command` on ``port``. A custom command
        must listen on ``127.0.0.1:port`` (pass ``port=`` when the command names it).
    cwd:
        Working directory. Default: a temporary directory, removed by :meth:`stop`/:meth:`kill`.
    port:
        The port the server listens on. Default: a free one, chosen now.
    startup_timeout:
        Seconds :meth:`start` waits for ``GET /healthz`` to answer 200.
    ready:
        What :meth:`start` waits for instead of ``GET /healthz`` (a process with no HTTP
        server, such as ``backprop-service worker``).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.port = free_port() if port is None else port
        self.url = f"http://{HOST}:{self.port}"
        self.args = list(args) if args is not None else uvicorn_command(self.port)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
        self.env = {**inherited, **(env or {})}
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self._ready = ready or self._healthy
        self._tmpdir: str | None = None
        self._log: IO[bytes] | None = None
        self._final_output = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running subprocess; :meth:`start` it first."""
        if self._process is None:
            raise RuntimeError("the server has not been started")
        return self._process

    def start(self) -> Self:
        """Start the command and wait until ``GET /healthz`` answers 200."""
        if self._process is not None:
            raise RuntimeError("the server has already been started")
        if self.cwd is None:
            self._tmpdir = tempfile.mkdtemp(prefix="backprop-server-")
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
        # It lives from start() to stop()/kill(), hence no `with`.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            self.args,
            cwd=self.cwd or self._tmpdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() also reaches workers
        )
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready():
            if self._process.poll() is not None:
                code = self._process.returncode
                output = self.output()
                self._cleanup()
                raise ServerStartError(f"server exited with code {code} during startup:\n{output}")
            if time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise ServerStartError(
                    f"{self.args[:3]} was not ready within {self.startup_timeout} s:\n{output}"
                )
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds; return its exit code."""
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        self._cleanup()
        return process.returncode

    def kill(self) -> int:
        """SIGKILL the server's whole process group at once (a crash); return its exit code."""
        process = self.process
        with contextlib.suppress(ProcessLookupError, PermissionError):  # group already gone
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self._cleanup()
        return process.returncode

    def output(self) -> str:
        """Everything the server has printed so far (stdout and stderr, interleaved).

        Still available after :meth:`stop` or :meth:`kill`.
        """
        if self._log is None or self._log.closed:
            return self._final_output
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                status: int = response.status
                return status == 200
        except (OSError, urllib.error.URLError):  # refused, reset, timed out, 5xx
            return False

    def _cleanup(self) -> None:
        if self._log is not None and not self._log.closed:
            self._final_output = self.output()
            self._log.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self.stop()


def worker_process(env: Mapping[str, str] | None = None) -> ServerProcess:
    """``backprop-service worker`` (a queue worker: no HTTP server), not started yet; ready
    once Celery says so."""
    process = ServerProcess(
        env=env,
        args=[str(Path(sys.executable).with_name("backprop-service")), "worker"],
        ready=lambda: re.search(r"backprop-\d+@\S+ ready\.", process.output()) is not None,
    )
    return process
