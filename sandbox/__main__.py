"""`python -m sandbox --port N`: serve every provider's sandbox API on localhost."""

from __future__ import annotations

import argparse

import uvicorn

from sandbox.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=0.3,
        help="how long a provider job stays in progress before it resolves",
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(
        create_app(latency_seconds=args.latency_seconds),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
