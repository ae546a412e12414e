"""``backprop-service``: start the server; ``backprop-service worker``: run queued jobs.

Every other setting is a ``BACKPROP_*`` environment variable (see the README's
configuration table). Connections are bounded by ``BACKPROP_MAX_CONNECTIONS``,
``BACKPROP_HEADER_TIMEOUT_SECONDS``, ``BACKPROP_MAX_HEADER_BYTES`` and
``BACKPROP_BODY_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import resource
import signal
from collections.abc import Sequence
from types import FrameType

import uvicorn

from service.core.settings import get_settings

logger = logging.getLogger("backprop.cli")
# File descriptors kept beside the connections: the store's files and connections, the
# listening socket, the log, the interpreter's own.
SPARE_FILES = 128
PROTOCOL = "service.core.connections:BoundedHttp"


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _room_for_connections(max_connections: int) -> None:
    """Raise the soft limit on open files to what the connections need (up to the hard
    limit), so the process never runs out of descriptors; warn if even that is too few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning(
            "BACKPROP_MAX_CONNECTIONS is %d but the process may open only %d files; lower it "
            "or raise the limit (ulimit -n)",
            max_connections,
            soft,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop-service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("BACKPROP_HOST", "127.0.0.1"),
        help="address to listen on (default: BACKPROP_HOST, else 127.0.0.1; 0.0.0.0 for every "
        "interface)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("BACKPROP_PORT", "8000")),
        help="TCP port to listen on (default: BACKPROP_PORT, else 8000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BACKPROP_WORKERS", "1")),
        help="server processes sharing the port, each with its own bounds (default: "
        "BACKPROP_WORKERS, else 1)",
    )
    parser.add_argument(
        "--database-url",
        help="sqlite:///path/to/file.db or postgresql://... (default: BACKPROP_DATABASE_URL, "
        "else ./data/backprop.db)",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{worker}", help="without a command: serve the HTTP API"
    )
    worker = commands.add_parser(
        "worker",
        help="run training jobs from the queue (BACKPROP_QUEUE_URL) until SIGTERM",
        description="Run the training jobs that service processes publish to the broker "
        "BACKPROP_QUEUE_URL names, against the store BACKPROP_DATABASE_URL names. Start one "
        "per core, on any machine that reaches both.",
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="jobs this process runs at once (default 1)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.database_url:
        # Through the environment, so that every worker process reads the same setting.
        os.environ["BACKPROP_DATABASE_URL"] = args.database_url
    settings = get_settings()
    if args.command == "worker":
        if not settings.queue_url:
            parser.error("worker needs BACKPROP_QUEUE_URL (a broker's URL, amqp://...)")
        from service.jobs.queue import serve

        serve(settings, args.concurrency)
        return
    _room_for_connections(settings.max_connections)
    # uvicorn drains on SIGTERM (requests in flight finish, then the lifespan shuts down and
    # checkpoints jobs), then re-raises the signal to the handler it found: this one, so a
    # drained shutdown exits 0 rather than "killed by SIGTERM".
    signal.signal(signal.SIGTERM, _exit_zero)
    uvicorn.run(
        "service.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=PROTOCOL,  # head deadline and size, and at most max_connections connections
        log_level=settings.log_level,
        access_log=False,  # service.observability logs every request, with its request id
        # Heavy work still running is stopped a second before the grace period ends (and
        # answered 503); a commit already under way may take up to the database timeout to
        # end, and is answered as it ends (never cut off into a 500 that hides it).
        timeout_graceful_shutdown=math.ceil(
            settings.shutdown_grace_seconds + settings.database_timeout_seconds
        ),
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
