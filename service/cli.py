"""``backprop-service``: start the server."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import uvicorn


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="backprop-service", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("BACKPROP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("BACKPROP_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BACKPROP_WORKERS", "1")))
    parser.add_argument(
        "--database-url",
        help="sqlite:///path/to/file.db or postgresql://... (default: BACKPROP_DATABASE_URL, "
        "else ./data/backprop.db)",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.database_url:
        # Through the environment, so that every worker process reads the same setting.
        os.environ["BACKPROP_DATABASE_URL"] = args.database_url
    uvicorn.run(
        "service.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
