"""`python -m sandbox --port N`: serve every provider's sandbox API on localhost.

uvicorn handles SIGINT and SIGTERM (it finishes in-flight requests, then exits); the default log
level is `warning` so that a test run or the demo's log stays quiet.
"""

from __future__ import annotations

import argparse

import uvicorn

from sandbox.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Serve the provider sandbox over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=0.3,
        help="how long a provider job stays in progress before it resolves (default 0.3)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    args = parser.parse_args(argv)
    if args.latency_seconds < 0:
        parser.error("--latency-seconds must not be negative")
    uvicorn.run(
        create_app(latency_seconds=args.latency_seconds),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
