"""`python -m api [--host 127.0.0.1] [--port 8098]`: serve linkflow's HTTP app with uvicorn.

Without the codec's keys (LINKFLOW_CODEC_KEYS or LINKFLOW_CODEC_KEY_FILE), or with API keys but
no link-token secret or lookup key, it says so in one line and exits with status 1. Without API
keys it serves the codec routes alone and says so in its log.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn

from api.app import create_app
from api.server import server_config
from api.settings import API_KEYS_FILE_VARIABLE, API_KEYS_VARIABLE
from linkflow.config import ConfigurationError
from linkflow.telemetry import configure_tracing, shutdown_tracing

DEFAULT_PORT = 8098


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api", description="Serve linkflow's HTTP API and codec server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    # Before the app exists: it reads the header-capture policy when it is instrumented.
    tracing = configure_tracing("linkflow-api")
    try:
        app = create_app()
    except ConfigurationError as error:
        print(f"The linkflow API cannot start: {error}", file=sys.stderr)
        return 1
    config = server_config(app, host=args.host, port=args.port, log_level=args.log_level)
    if app.state.linkflow_api is None:
        logging.getLogger("uvicorn.error").warning(
            "No API key is configured (%s or %s): serving the codec routes only.",
            API_KEYS_VARIABLE,
            API_KEYS_FILE_VARIABLE,
        )
    try:
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing(tracing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
