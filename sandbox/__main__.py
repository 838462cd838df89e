"""`python -m sandbox --port N`: serve every provider's sandbox API on localhost.

uvicorn handles SIGINT and SIGTERM (it finishes in-flight requests, then exits); the default log
level is `warning` so that a test run or the demo's log stays quiet. The fault flags set the
initial `FaultPlan` (see `sandbox/faults.py`); `/_sandbox/faults` changes it while running. The
MFA window flags shorten how long Arcadia and MX wait for an answer, so that a test sees a
provider stop waiting within seconds.
"""

from __future__ import annotations

import argparse

import uvicorn
from pydantic import ValidationError

from sandbox.app import create_app
from sandbox.arcadia import MFA_EXPIRY_SECONDS
from sandbox.faults import FaultPlan


def _rate(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        message = f"must be a whole number of seconds, not {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
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
    windows = parser.add_argument_group(
        "MFA windows", "how long a provider waits for the answers to its MFA request"
    )
    windows.add_argument(
        "--arcadia-mfa-window-seconds",
        type=_positive_float,
        default=MFA_EXPIRY_SECONDS,
        help="then the job ends MULTI_FACTOR_AUTHENTICATION_TIMEOUT"
        f" (default {MFA_EXPIRY_SECONDS:g})",
    )
    windows.add_argument(
        "--mx-mfa-window-seconds",
        type=_positive_float,
        default=None,
        help="then the member is EXPIRED (default: the sandbox's banks wait for ever)",
    )
    parser.add_argument(
        "--synapse-oauth-lifetime-seconds",
        type=_positive_float,
        default=None,
        help="how long a Synapse oauth key lives (default: Synapse's two hours)",
    )
    faults = parser.add_argument_group(
        "faults", "injected into provider routes; the four rates may add up to at most 1"
    )
    faults.add_argument(
        "--error-rate", type=_rate, default=0.0, help="share of requests answered 500/502/503"
    )
    faults.add_argument(
        "--throttle-rate", type=_rate, default=0.0, help="share answered 429 with Retry-After"
    )
    faults.add_argument(
        "--timeout-rate",
        type=_rate,
        default=0.0,
        help="share left hanging for --hang-seconds, then cut off",
    )
    faults.add_argument(
        "--drop-rate",
        type=_rate,
        default=0.0,
        help="share the provider processes whose response is then cut off",
    )
    faults.add_argument(
        "--retry-after-seconds",
        type=_non_negative_int,
        default=1,
        help="Retry-After of a throttled answer (default 1)",
    )
    faults.add_argument(
        "--hang-seconds",
        type=_non_negative_float,
        default=25.0,
        help="how long a timeout fault hangs (default 25, past the client's 20 s read timeout)",
    )
    faults.add_argument("--fault-seed", type=_seed, default=None, help="seed for the fault draws")
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, FaultPlan]:
    """The command line and the fault plan it asks for; exits with a usage error if invalid."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.latency_seconds < 0:
        parser.error("--latency-seconds must not be negative")
    try:
        plan = FaultPlan(
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            timeout_rate=args.timeout_rate,
            drop_rate=args.drop_rate,
            retry_after_seconds=args.retry_after_seconds,
            hang_seconds=args.hang_seconds,
            seed=args.fault_seed,
        )
    except ValidationError as invalid:
        parser.error(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in invalid.errors())
        )
    return args, plan


def main(argv: list[str] | None = None) -> None:
    args, plan = parse_args(argv)
    uvicorn.run(
        create_app(
            latency_seconds=args.latency_seconds,
            fault_plan=plan,
            mfa_window_seconds={
                "arcadia": args.arcadia_mfa_window_seconds,
                "mx": args.mx_mfa_window_seconds,
            },
            synapse_oauth_lifetime_seconds=args.synapse_oauth_lifetime_seconds,
        ),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
