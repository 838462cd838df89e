"""`python -m api [--host 127.0.0.1] [--port 8098]`: serve linkflow's HTTP app with uvicorn.

Without the codec's keys (LINKFLOW_CODEC_KEYS or LINKFLOW_CODEC_KEY_FILE) it says so in one line
and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from api.app import create_app
from linkflow.config import ConfigurationError

DEFAULT_PORT = 8098


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api", description="Serve linkflow's codec server (and later its API)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    try:
        app = create_app()
    except ConfigurationError as error:
        print(f"The linkflow API cannot start: {error}", file=sys.stderr)
        return 1
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
