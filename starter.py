"""Start, answer, inspect and demo account links from a terminal.

    python starter.py link --provider mx --username user_otp      # prompts for password and MFA
    python starter.py link ... --no-wait --json                    # start and print the link id
    python starter.py status LINK_ID [--json]
    python starter.py answer LINK_ID [CHALLENGE_ID=VALUE | VALUE ...] [--signal] [--json]
    python starter.py reauthenticate | resolve-hold | unlink LINK_ID [--json]
    python starter.py update-credentials LINK_ID --username U [--password P] [--json]
    python starter.py demo                                          # dev server + sandbox + worker

Every subcommand talks to Temporal through `LinkClient`; `--json` prints the link snapshot for
scripts. Errors are one sentence on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from pydantic import ValidationError

from linkflow.client import AnswerRefused, LinkClient, LinkNotFound, LinkRefused
from linkflow.config import TemporalSettings
from linkflow.devstack import STATE_DIR, StackError, StackPorts, running_stack
from linkflow.models import (
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkOptions,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
)
from linkflow.process import exit_now
from providers.mapping import IMPLEMENTED_PROVIDERS

EXIT_OK, EXIT_ERROR, EXIT_REFUSED, EXIT_LINK_FAILED = 0, 1, 2, 3
SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


class Terminal:
    """Reads answers from a person at a terminal, or line by line from a pipe."""

    def __init__(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.stdin = stdin
        self.stdout = stdout

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty()

    def say(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def ask(self, prompt: str, *, secret: bool = False) -> str:
        if secret and self.interactive:
            return getpass.getpass(prompt)
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        if not self.interactive:
            self.say()
        return line.strip()


def describe(snapshot: LinkSnapshot) -> str:
    reason = f" ({snapshot.reason.value})" if snapshot.reason else ""
    lines = [f"Link {snapshot.link_id}: {snapshot.status.value}{reason}"]
    if snapshot.provider_status:
        lines.append(
            f"  provider: {snapshot.provider.value}, raw status {snapshot.provider_status}"
        )
    if snapshot.message:
        lines.append(f"  {snapshot.message}")
    for challenge in snapshot.pending_challenges:
        lines.append(f"  challenge {challenge.id} ({challenge.kind.value}): {challenge.prompt}")
        lines.extend(f"    - {option.value}: {option.label}" for option in challenge.options)
    for account in snapshot.accounts:
        mask = f" ••{account.mask}" if account.mask else ""
        balance = (
            f"  {account.balance} {account.currency or ''}".rstrip() if account.balance else ""
        )
        lines.append(f"  account {account.name}{mask} [{account.kind}]{balance}")
    if snapshot.last_refusal:
        lines.append(f"  last signalled answer refused: {snapshot.last_refusal}")
    return "\n".join(lines)


def print_snapshot(snapshot: LinkSnapshot, as_json: bool, terminal: Terminal) -> None:
    terminal.say(snapshot.model_dump_json(indent=2) if as_json else describe(snapshot))


def exit_status_of(snapshot: LinkSnapshot) -> int:
    return EXIT_LINK_FAILED if snapshot.status is LinkStatus.FAILED else EXIT_OK


# ------------------------------------------------------------------ answering


def ask_challenge(challenge: Challenge, terminal: Terminal) -> str:
    terminal.say(f"\n{challenge.prompt}")
    if challenge.image_data_uri:
        terminal.say(f"  (image: {challenge.image_data_uri[:60]}...)")
    if challenge.kind.has_options:
        for number, option in enumerate(challenge.options, start=1):
            terminal.say(f"  {number}) {option.label}")
        choice = terminal.ask("Choose a number: ")
        if choice.isdigit() and 1 <= int(choice) <= len(challenge.options):
            return challenge.options[int(choice) - 1].value
        return choice
    return terminal.ask("> ", secret=challenge.kind is ChallengeKind.SECRET)


async def answer_interactively(
    links: LinkClient, snapshot: LinkSnapshot, terminal: Terminal, as_json: bool
) -> LinkSnapshot:
    """Prompt for every challenge round until the link leaves MFA_REQUIRED."""
    while snapshot.status is LinkStatus.MFA_REQUIRED:
        pending = snapshot.pending_challenges
        deadline = min((c.deadline for c in pending if c.deadline), default=None)
        if deadline and not as_json:
            terminal.say(f"\nThe provider asks (answer by {deadline:%H:%M:%S} UTC):")
        answers = [
            ChallengeAnswer(challenge_id=c.id, value=ask_challenge(c, terminal))
            for c in pending
            if c.kind.needs_answer
        ]
        if not answers:
            for challenge in pending:
                terminal.say(f"\n{challenge.prompt}")
            terminal.say("Waiting for your approval on the device...")
            snapshot = await links.wait_for(snapshot.link_id, SETTLED - {LinkStatus.MFA_REQUIRED})
            continue
        try:
            snapshot = await links.submit_mfa(snapshot.link_id, MfaSubmission(answers=answers))
        except AnswerRefused as refusal:
            terminal.say(f"Refused: {refusal}")
            snapshot = await links.snapshot(snapshot.link_id)
            continue
        if snapshot.status is LinkStatus.CONNECTING:
            snapshot = await links.wait_for(snapshot.link_id, SETTLED)
    return snapshot


def parse_answers(values: Sequence[str], pending: list[Challenge]) -> list[ChallengeAnswer]:
    if len(values) == 1 and "=" not in values[0]:
        if len(pending) != 1:
            raise UserError(
                f"{len(pending)} challenges are pending; answer each as CHALLENGE_ID=VALUE."
            )
        return [ChallengeAnswer(challenge_id=pending[0].id, value=values[0])]
    answers = []
    for value in values:
        challenge_id, separator, answer = value.partition("=")
        if not separator:
            raise UserError(f"{value!r} is not CHALLENGE_ID=VALUE.")
        answers.append(ChallengeAnswer(challenge_id=challenge_id, value=answer))
    return answers


# ------------------------------------------------------------------ subcommands


def password_of(args: argparse.Namespace, terminal: Terminal, what: str = "Password") -> str:
    """`--password`, or asked for without echo."""
    password: str | None = args.password
    if password is None:
        password = terminal.ask(f"{what} for {args.username}: ", secret=True)
    return password


async def cmd_link(args: argparse.Namespace, terminal: Terminal) -> int:
    request = LinkRequest(
        provider=args.provider,
        user_ref=args.user_ref or f"cli-{args.username}",
        credentials=Credentials(username=args.username, password=password_of(args, terminal)),
        options=LinkOptions(mfa_timeout_seconds=args.mfa_timeout),
    )
    links = await LinkClient.connect()
    link_id = await links.start_link(request, args.link_id)
    if args.no_wait:
        if args.json:
            terminal.say(json.dumps({"link_id": link_id}))
        else:
            terminal.say(f"Started link {link_id}")
        return EXIT_OK
    if not args.json:
        terminal.say(f"Started link {link_id}")
        terminal.say(f"Watch it in Temporal Web: {web_url(link_id)}")
    snapshot = await links.wait_for(link_id, SETTLED)
    try:
        snapshot = await answer_interactively(links, snapshot, terminal, args.json)
    except EOFError:
        terminal.say(
            f"\nNo answer given. The link waits until its deadline; answer later with:\n"
            f"  python starter.py answer {link_id}"
        )
        return EXIT_ERROR
    terminal.say()
    print_snapshot(snapshot, args.json, terminal)
    return exit_status_of(snapshot)


async def cmd_status(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await LinkClient.connect()
    print_snapshot(await links.snapshot(args.link_id), args.json, terminal)
    return EXIT_OK


async def cmd_answer(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await LinkClient.connect()
    snapshot = await links.snapshot(args.link_id)
    if not args.answers:
        if snapshot.status is not LinkStatus.MFA_REQUIRED:
            raise UserError(f"Link {args.link_id} has no pending challenge ({snapshot.status}).")
        snapshot = await answer_interactively(links, snapshot, terminal, args.json)
        print_snapshot(snapshot, args.json, terminal)
        return exit_status_of(snapshot)
    submission = MfaSubmission(answers=parse_answers(args.answers, snapshot.pending_challenges))
    if args.signal:
        await links.signal_mfa(args.link_id, submission)
        terminal.say("Answer signalled; `status` shows whether the link took it.")
        return EXIT_OK
    snapshot = await links.submit_mfa(args.link_id, submission)
    print_snapshot(snapshot, args.json, terminal)
    return exit_status_of(snapshot)


async def after_login_again(
    links: LinkClient, snapshot: LinkSnapshot, args: argparse.Namespace, terminal: Terminal
) -> int:
    """Answer the new login's MFA in the terminal (unless scripted), then print the result."""
    if snapshot.status is LinkStatus.MFA_REQUIRED and not args.json:
        snapshot = await answer_interactively(links, snapshot, terminal, args.json)
    print_snapshot(snapshot, args.json, terminal)
    return exit_status_of(snapshot)


async def cmd_reauthenticate(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await LinkClient.connect()
    return await after_login_again(links, await links.reauthenticate(args.link_id), args, terminal)


async def cmd_update_credentials(args: argparse.Namespace, terminal: Terminal) -> int:
    credentials = Credentials(
        username=args.username, password=password_of(args, terminal, "New password")
    )
    links = await LinkClient.connect()
    snapshot = await links.update_credentials(args.link_id, credentials)
    return await after_login_again(links, snapshot, args, terminal)


async def cmd_resolve_hold(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await LinkClient.connect()
    print_snapshot(await links.resolve_hold(args.link_id), args.json, terminal)
    return EXIT_OK


async def cmd_unlink(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await LinkClient.connect()
    print_snapshot(await links.unlink(args.link_id), args.json, terminal)
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace, terminal: Terminal) -> int:
    ports = StackPorts(temporal=args.temporal_port, ui=args.ui_port, sandbox=args.sandbox_port)
    terminal.say("Starting the Temporal dev server, the provider sandbox and a worker...")
    with running_stack(ports, args.state_dir) as stack:
        terminal.say(f"Temporal Web: {ports.ui_url}   (logs in {stack.log_dir})")
        os.environ.update(stack.client_env())
        terminal.say(
            f"Linking the {args.provider} sandbox's test user {args.username!r} (password"
            " pass_good). Its right answer to every question is `correct`; any offered option"
            " is a right choice."
        )
        link_args = argparse.Namespace(
            provider=Provider(args.provider),
            username=args.username,
            password="pass_good",
            user_ref=None,
            link_id=None,
            mfa_timeout=300,
            no_wait=False,
            json=False,
        )
        status = await cmd_link(link_args, terminal)
        if args.exit_when_done or not terminal.interactive:
            return status
        terminal.say(
            f"\nThe stack keeps running for you to explore {ports.ui_url}; Ctrl-C stops it."
        )
        await asyncio.Event().wait()
        return status


def web_url(link_id: str) -> str:
    ui = os.environ.get("LINKFLOW_WEB_URL", "http://localhost:8233").rstrip("/")
    return f"{ui}/namespaces/{TemporalSettings.from_env().namespace}/workflows/{link_id}"


# ------------------------------------------------------------------ argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter.py", description="Start, answer, inspect and demo account links."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    link = commands.add_parser("link", help="start a link and answer its MFA in the terminal")
    link.add_argument(
        "--provider", type=Provider, choices=IMPLEMENTED_PROVIDERS, default=Provider.MX
    )
    link.add_argument("--username", required=True)
    link.add_argument("--password", help="prompted for when omitted")
    link.add_argument("--user-ref", help="your app's reference for the end user")
    link.add_argument("--link-id", help="a link id of your own; the same id never starts twice")
    link.add_argument("--mfa-timeout", type=int, default=300, help="seconds per MFA round")
    link.add_argument("--no-wait", action="store_true", help="start the link and return")
    link.add_argument("--json", action="store_true")

    status = commands.add_parser("status", help="print a link's snapshot")
    status.add_argument("link_id")
    status.add_argument("--json", action="store_true")

    answer = commands.add_parser("answer", help="answer a link's pending challenges")
    answer.add_argument("link_id")
    answer.add_argument(
        "answers", nargs="*", help="CHALLENGE_ID=VALUE, or one VALUE; prompted for when omitted"
    )
    answer.add_argument("--signal", action="store_true", help="send by signal, not update")
    answer.add_argument("--json", action="store_true")

    reauthenticate = commands.add_parser(
        "reauthenticate", help="log a link in again when its provider wants a fresh MFA"
    )
    reauthenticate.add_argument("link_id")
    reauthenticate.add_argument("--json", action="store_true")

    update = commands.add_parser(
        "update-credentials", help="resume a link whose password changed, with the new one"
    )
    update.add_argument("link_id")
    update.add_argument("--username", required=True)
    update.add_argument("--password", help="prompted for when omitted")
    update.add_argument("--json", action="store_true")

    resolve = commands.add_parser("resolve-hold", help="tell a held link the user has acted")
    resolve.add_argument("link_id")
    resolve.add_argument("--json", action="store_true")

    unlink = commands.add_parser("unlink", help="revoke a link at the provider and end it")
    unlink.add_argument("link_id")
    unlink.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", help="run the dev stack and link a test user")
    demo.add_argument("--provider", choices=[p.value for p in IMPLEMENTED_PROVIDERS], default="mx")
    demo.add_argument("--username", default="user_otp")
    demo.add_argument("--temporal-port", type=int, default=7233)
    demo.add_argument("--ui-port", type=int, default=8233)
    demo.add_argument("--sandbox-port", type=int, default=8099)
    demo.add_argument("--state-dir", type=Path, default=STATE_DIR)
    demo.add_argument(
        "--exit-when-done", action="store_true", help="stop the stack once the link settles"
    )
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Terminal], Awaitable[int]]] = {
    "link": cmd_link,
    "status": cmd_status,
    "answer": cmd_answer,
    "reauthenticate": cmd_reauthenticate,
    "update-credentials": cmd_update_credentials,
    "resolve-hold": cmd_resolve_hold,
    "unlink": cmd_unlink,
    "demo": cmd_demo,
}


async def run(argv: Sequence[str], terminal: Terminal) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        return await command(args, terminal)
    except (UserError, StackError, LinkNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except LinkRefused as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"error: invalid input: {problems}", file=sys.stderr)
        return EXIT_ERROR
    except RuntimeError as error:
        if "connect" in str(error).lower():
            print(
                f"error: cannot reach Temporal at {TemporalSettings.from_env().address}."
                " Is the dev server running? (`python3 dev.py demo` starts one.)",
                file=sys.stderr,
            )
            return EXIT_ERROR
        raise


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    # Ctrl-C (and SIGTERM) must interrupt a prompt at once and unwind through the dev stack's
    # cleanup; asyncio.run's own SIGINT handling would only cancel the task on the first press.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    terminal = Terminal()
    try:
        status = asyncio.run(run(sys.argv[1:] if argv is None else argv, terminal))
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        status = 130
    exit_now(status)


if __name__ == "__main__":
    main()
