"""Start, answer, inspect and demo account links from a terminal.

    .venv/bin/python starter.py link --provider mx --username user_otp  # asks password, MFA
    .venv/bin/python starter.py link ... --no-wait --json                # prints the link id
    .venv/bin/python starter.py status LINK_ID [--json]
    .venv/bin/python starter.py answer LINK_ID [--challenge ID] [--signal] [--json]
    .venv/bin/python starter.py reauthenticate | resolve-hold | unlink LINK_ID [--json]
    .venv/bin/python starter.py update-credentials LINK_ID --username U [--json]
    .venv/bin/python starter.py demo                          # dev server, sandbox, worker, API

Passwords and MFA answers never come from the command line, where every user of the machine can
read them in the process list. They are asked for at a prompt (without echo for secrets), read
one line per value from standard input when it is not a terminal, or, for scripts, taken from
LINKFLOW_PASSWORD (`link`, `update-credentials`) and LINKFLOW_ANSWERS (`answer`: one VALUE for the
one pending challenge, or CHALLENGE_ID=VALUE lines).

Every subcommand talks to Temporal through `LinkClient`; `--json` prints the link snapshot on
stdout for scripts and sends the conversation to stderr. Whatever the input, an error is one line
on stderr and an exit status (0 ok, 1 error, 2 refused, 3 link failed, 130 interrupted), never a
traceback, and never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from pydantic import ValidationError
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from linkflow.client import AnswerRefused, LinkClient, LinkNotFound, LinkRefused
from linkflow.codec import KEY_FILE_VARIABLE as CODEC_KEY_FILE_VARIABLE
from linkflow.codec import KEYS_VARIABLE as CODEC_KEYS_VARIABLE
from linkflow.config import ConfigurationError, TemporalSettings
from linkflow.devstack import STATE_DIR, DevStack, StackError, StackPorts, running_stack
from linkflow.lookup import KEY_FILE_VARIABLE as LOOKUP_KEY_FILE_VARIABLE
from linkflow.lookup import KEY_VARIABLE as LOOKUP_KEY_VARIABLE
from linkflow.models import (
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkOptions,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
)
from linkflow.process import exit_now
from providers.registry import IMPLEMENTED_PROVIDERS

EXIT_OK, EXIT_ERROR, EXIT_REFUSED, EXIT_LINK_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}

PASSWORD_VARIABLE = "LINKFLOW_PASSWORD"
ANSWERS_VARIABLE = "LINKFLOW_ANSWERS"
NEVER_FROM_ARGV = (
    f"passwords and answers are read from a prompt, stdin or {PASSWORD_VARIABLE}/"
    f"{ANSWERS_VARIABLE}, never from the command line"
)
# The dev stack's keys, which `python3 dev.py demo` creates on its first run: the codec's, and the
# user_ref lookup key that lets the API list a user's links (`GET /v1/links?user_ref=`). Each is
# (its file's variable): (the file, the variable that gives the key itself).
_DEV_STACK = DevStack(ports=StackPorts(), state_dir=STATE_DIR)
DEV_STACK_KEY_FILES = {
    CODEC_KEY_FILE_VARIABLE: (_DEV_STACK.codec_key_file, CODEC_KEYS_VARIABLE),
    LOOKUP_KEY_FILE_VARIABLE: (_DEV_STACK.lookup_key_file, LOOKUP_KEY_VARIABLE),
}
# Secrets shorter than this are not masked in error lines: masking "1" would garble the sentence.
SHORTEST_MASKED_SECRET = 4
LONGEST_ERROR_LINE = 500


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


class NoInput(UserError):
    """Standard input ended where a value was needed."""


class Terminal:
    """Talks with a person at a terminal, or reads their values line by line from a pipe.

    Results go to `out`; prompts and narration go to `talk`, which is stderr under `--json` so
    that stdout stays one JSON document. Every secret read is remembered so that no error line
    can repeat it.
    """

    def __init__(self, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
        self.stdin = stdin
        self.out = out
        self.talk = out
        self.secrets: set[str] = set()

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty()

    def say(self, text: str = "") -> None:
        print(text, file=self.talk, flush=True)

    def show(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ask(self, prompt: str, *, missing: str, secret: bool = False) -> str:
        """One value from the prompt, or the next line of a pipe. `missing` names it on EOF."""
        try:
            if secret and self.interactive:
                value = getpass.getpass(prompt)
            else:
                value = self._read_line(prompt)
        except EOFError:
            if self.interactive:
                self.say()  # Ctrl-D left the cursor on the prompt's line
            raise NoInput(f"No input: {missing}.") from None
        if secret:
            self.remember(value)
        return value if secret else value.strip()

    def _read_line(self, prompt: str) -> str:
        self.talk.write(prompt)
        self.talk.flush()
        line = self.stdin.readline()
        if not self.interactive:
            self.say()  # a pipe's line is not echoed: end the prompt's line ourselves
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def remember(self, secret: str) -> None:
        if len(secret) >= SHORTEST_MASKED_SECRET:
            self.secrets.add(secret)

    def masked(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def describe(snapshot: LinkSnapshot) -> str:
    reason = f" ({snapshot.reason.value})" if snapshot.reason else ""
    lines = [f"Link {snapshot.link_id}: {snapshot.status.value}{reason}"]
    if snapshot.provider and snapshot.provider_status:
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
    if snapshot.last_answer_rejected:
        lines.append("  the provider did not accept the last answer and asks again")
    if snapshot.last_refusal:
        lines.append(f"  last signalled answer refused: {snapshot.last_refusal}")
    return "\n".join(lines)


def print_snapshot(snapshot: LinkSnapshot, as_json: bool, terminal: Terminal) -> None:
    terminal.show(snapshot.model_dump_json(indent=2) if as_json else describe(snapshot))


def exit_status_of(snapshot: LinkSnapshot) -> int:
    return EXIT_LINK_FAILED if snapshot.status is LinkStatus.FAILED else EXIT_OK


# ------------------------------------------------------------------ secrets in


def read_password(terminal: Terminal, prompt: str) -> str:
    """LINKFLOW_PASSWORD for scripts, else the prompt (or stdin's next line)."""
    # Popped so that no process this one starts inherits it.
    password = os.environ.pop(PASSWORD_VARIABLE, "")
    if password:
        terminal.remember(password)
        return password
    password = terminal.ask(prompt, missing="no password given", secret=True)
    if not password:
        raise UserError("The password is empty.")
    return password


def scripted_answer_lines(terminal: Terminal) -> list[str] | None:
    """LINKFLOW_ANSWERS as its non-blank lines, or None when it is not set."""
    raw = os.environ.pop(ANSWERS_VARIABLE, "")
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    for line in lines:
        terminal.remember(line)
        terminal.remember(line.partition("=")[2])
    return lines or None


def scripted_answers(
    lines: Sequence[str], pending: Sequence[Challenge], challenge_id: str | None
) -> list[ChallengeAnswer]:
    """Read LINKFLOW_ANSWERS: one VALUE for the one pending challenge, or CHALLENGE_ID=VALUE lines.

    A line is a pair only when it names a pending challenge, so an answer that itself holds `=`
    is never split into a made-up challenge id (which a refusal would then quote).
    """
    if challenge_id is not None:
        if len(lines) != 1:
            raise UserError(f"With --challenge, {ANSWERS_VARIABLE} holds one value.")
        named, separator, value = lines[0].partition("=")
        return [
            ChallengeAnswer(
                challenge_id=challenge_id,
                value=value if separator and named.strip() == challenge_id else lines[0],
            )
        ]
    pending_ids = {challenge.id for challenge in pending}
    pairs = [line.partition("=") for line in lines]
    if all(separator and named.strip() in pending_ids for named, separator, _ in pairs):
        return [
            ChallengeAnswer(challenge_id=named.strip(), value=value.strip())
            for named, _, value in pairs
        ]
    awaiting = [challenge for challenge in pending if challenge.kind.needs_answer]
    if len(lines) == 1 and len(awaiting) == 1:
        return [ChallengeAnswer(challenge_id=awaiting[0].id, value=lines[0])]
    raise UserError(
        f"{ANSWERS_VARIABLE} must be one VALUE for the one pending challenge, or one"
        f" CHALLENGE_ID=VALUE line per challenge; pending: {', '.join(sorted(pending_ids))}."
    )


# ------------------------------------------------------------------ answering


def ask_challenge(challenge: Challenge, terminal: Terminal) -> str:
    terminal.say(f"\n{challenge.prompt}")
    if challenge.image_data_uri:
        terminal.say(f"  (image: {challenge.image_data_uri[:60]}...)")
    missing = f"no answer to challenge {challenge.id}"
    if challenge.kind.has_options:
        for number, option in enumerate(challenge.options, start=1):
            terminal.say(f"  {number}) {option.label}")
        count = len(challenge.options)
        while True:
            choice = terminal.ask("Choose a number: ", missing=missing)
            if not choice.isdigit():
                return choice  # an option's own value, as a script may send it
            if 1 <= int(choice) <= count:
                return challenge.options[int(choice) - 1].value
            if not terminal.interactive:
                raise UserError(f"choose a number from 1 to {count}, not {choice}.")
            terminal.say(f"Choose a number from 1 to {count}.")
    answer = terminal.ask("> ", missing=missing, secret=challenge.kind is ChallengeKind.SECRET)
    terminal.remember(answer)
    return answer


def ask_round(
    snapshot: LinkSnapshot, terminal: Terminal, challenge_id: str | None = None
) -> list[ChallengeAnswer]:
    """Ask for every pending challenge that needs an answer (or only for `challenge_id`)."""
    if challenge_id is not None:
        named = [c for c in snapshot.pending_challenges if c.id == challenge_id]
        if not named:
            value = terminal.ask(f"Answer to {challenge_id}: ", missing="no answer", secret=True)
            return [ChallengeAnswer(challenge_id=challenge_id, value=value)]
        challenges = named
    else:
        challenges = [c for c in snapshot.pending_challenges if c.kind.needs_answer]
    if not challenges:
        raise UserError(
            f"Link {snapshot.link_id} waits for approval on the device; there is nothing to answer."
        )
    return [
        ChallengeAnswer(challenge_id=challenge.id, value=ask_challenge(challenge, terminal))
        for challenge in challenges
    ]


async def answer_interactively(
    links: LinkClient, snapshot: LinkSnapshot, terminal: Terminal, as_json: bool
) -> LinkSnapshot:
    """Prompt for every challenge round until the link leaves MFA_REQUIRED."""
    try:
        while snapshot.status is LinkStatus.MFA_REQUIRED:
            snapshot = await answer_one_round(links, snapshot, terminal, as_json)
    except NoInput:
        raise NoInput(
            "No input: no answer given. The link waits until its deadline; answer later with"
            f" `.venv/bin/python starter.py answer {snapshot.link_id}`."
        ) from None
    return snapshot


async def answer_one_round(
    links: LinkClient, snapshot: LinkSnapshot, terminal: Terminal, as_json: bool
) -> LinkSnapshot:
    pending = snapshot.pending_challenges
    deadline = min((c.deadline for c in pending if c.deadline), default=None)
    if snapshot.last_answer_rejected and not as_json:
        terminal.say("\nThe provider did not accept that answer; it asks again.")
    if deadline and not as_json:
        terminal.say(f"\nThe provider asks (answer by {deadline:%H:%M:%S} UTC):")
    if not any(challenge.kind.needs_answer for challenge in pending):
        for challenge in pending:
            terminal.say(f"\n{challenge.prompt}")
            if challenge.kind is ChallengeKind.REDIRECT and challenge.url:
                terminal.say(
                    f"Open this page to log in at the provider, then come back:\n  {challenge.url}"
                )
        if any(challenge.kind is ChallengeKind.PUSH_APPROVAL for challenge in pending):
            terminal.say("Waiting for your approval on the device...")
        else:
            terminal.say("Waiting for the provider...")
        return await links.wait_for(snapshot.link_id, SETTLED - {LinkStatus.MFA_REQUIRED})
    answers = ask_round(snapshot, terminal)
    try:
        snapshot = await links.submit_mfa(snapshot.link_id, MfaSubmission(answers=answers))
    except AnswerRefused as refusal:
        terminal.say(f"Refused: {terminal.masked(str(refusal))}")
        return await links.snapshot(snapshot.link_id)
    if snapshot.status is LinkStatus.CONNECTING:
        snapshot = await links.wait_for(snapshot.link_id, SETTLED)
    return snapshot


# ------------------------------------------------------------------ subcommands


def use_the_dev_stack_keys() -> None:
    """Point the client at the dev stack's codec and lookup keys where none is configured.

    starter.py is the dev stack's companion in the terminal, so with no key of its own it uses
    the ones `python3 dev.py demo` keeps under .linkflow/ (a link it starts is then listed by its
    user_ref in the dev stack's API, as the API's own are); every other process is configured
    explicitly. Before those keys exist, nothing changes.
    """
    for file_variable, (path, variable) in DEV_STACK_KEY_FILES.items():
        configured = (variable, file_variable)
        if any(os.environ.get(name, "").strip() for name in configured):
            continue
        if path.is_file():
            os.environ[file_variable] = str(path)


async def connect_links() -> LinkClient:
    use_the_dev_stack_keys()
    try:
        return await LinkClient.connect()
    except ConfigurationError:
        raise
    except RuntimeError as error:
        if "connect" not in str(error).lower():
            raise
        raise UserError(
            f"cannot reach Temporal at {TemporalSettings.from_env().address}."
            " Is the dev server running? (`python3 dev.py demo` starts one.)"
        ) from None


async def cmd_link(args: argparse.Namespace, terminal: Terminal) -> int:
    password = read_password(terminal, f"Password for {args.username}: ")
    return await link(args, password, terminal)


async def link(args: argparse.Namespace, password: str, terminal: Terminal) -> int:
    """Start the link, then answer its MFA in the terminal until it settles."""
    request = LinkRequest(
        provider=args.provider,
        user_ref=args.user_ref or f"cli-{args.username}",
        credentials=Credentials(username=args.username, password=password),
        options=LinkOptions(mfa_timeout_seconds=args.mfa_timeout),
    )
    links = await connect_links()
    if args.link_id is not None and await links.held_by_another(args.link_id, request):
        raise UserError(
            f"link id {args.link_id} is taken by another user's or provider's link;"
            " nothing was started. Choose another --link-id (or leave it out)."
        )
    if args.no_wait:
        link_id = await links.start_link(request, args.link_id)
        terminal.show(json.dumps({"link_id": link_id}) if args.json else f"Started link {link_id}")
        return EXIT_OK
    # One round trip: the start and the first challenge (or the result) together.
    link_id, snapshot = await links.start_and_wait(request, args.link_id)
    if not args.json:
        terminal.say(f"Started link {link_id}")
        terminal.say(f"Watch it in Temporal Web: {web_url(link_id)}")
    snapshot = await answer_interactively(links, snapshot, terminal, args.json)
    terminal.say()
    print_snapshot(snapshot, args.json, terminal)
    return exit_status_of(snapshot)


async def cmd_status(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await connect_links()
    print_snapshot(await links.snapshot(args.link_id), args.json, terminal)
    return EXIT_OK


async def cmd_answer(args: argparse.Namespace, terminal: Terminal) -> int:
    """A person at a terminal answers round after round; a pipe or the variable answers one."""
    scripted = scripted_answer_lines(terminal)
    links = await connect_links()
    snapshot = await links.snapshot(args.link_id)
    if args.challenge is None and snapshot.status is not LinkStatus.MFA_REQUIRED:
        raise UserError(f"Link {args.link_id} has no pending challenge ({snapshot.status.value}).")
    one_round = bool(scripted is not None or args.challenge or args.signal)
    if not one_round and terminal.interactive:
        snapshot = await answer_interactively(links, snapshot, terminal, args.json)
        print_snapshot(snapshot, args.json, terminal)
        return exit_status_of(snapshot)
    if scripted is not None:
        answers = scripted_answers(scripted, snapshot.pending_challenges, args.challenge)
    else:
        answers = ask_round(snapshot, terminal, args.challenge)
    submission = MfaSubmission(answers=answers)
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
    if (
        snapshot.status is LinkStatus.ACTION_REQUIRED
        and snapshot.reason is LinkReason.REAUTH_REQUIRED
    ):
        return EXIT_REFUSED  # the provider turned the login down: the caller's update did not take
    return exit_status_of(snapshot)


async def connect_to_link(link_id: str) -> LinkClient:
    """Connect, and read the link once before an update waits on it.

    An update to a link no worker runs waits for one indefinitely; a query gives up, so an
    unknown link, or one nobody can answer for, is one line now instead of a hang.
    """
    links = await connect_links()
    await links.snapshot(link_id)
    return links


async def cmd_reauthenticate(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await connect_to_link(args.link_id)
    return await after_login_again(links, await links.reauthenticate(args.link_id), args, terminal)


async def cmd_update_credentials(args: argparse.Namespace, terminal: Terminal) -> int:
    password = read_password(terminal, f"New password for {args.username}: ")
    credentials = Credentials(username=args.username, password=password)
    links = await connect_to_link(args.link_id)
    snapshot = await links.update_credentials(args.link_id, credentials)
    return await after_login_again(links, snapshot, args, terminal)


async def cmd_resolve_hold(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await connect_to_link(args.link_id)
    print_snapshot(await links.resolve_hold(args.link_id), args.json, terminal)
    return EXIT_OK


async def cmd_unlink(args: argparse.Namespace, terminal: Terminal) -> int:
    links = await connect_to_link(args.link_id)
    print_snapshot(await links.unlink(args.link_id), args.json, terminal)
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace, terminal: Terminal) -> int:
    ports = StackPorts(
        temporal=args.temporal_port, ui=args.ui_port, sandbox=args.sandbox_port, api=args.api_port
    )
    terminal.say(
        "Starting the Temporal dev server, the provider sandbox, the codec server and a worker..."
    )
    with running_stack(ports, args.state_dir) as stack:
        terminal.say(f"Temporal Web: {ports.ui_url}   (logs in {stack.log_dir})")
        os.environ.update(stack.client_env())
        # A fresh link session from the API, so the user can link in a browser as well.
        import httpx

        async with httpx.AsyncClient(base_url=ports.api_url, timeout=30) as api:
            session = await api.post(
                "/v1/link-sessions",
                headers={"Authorization": f"Bearer {stack.api_key()}"},
                json={"provider": args.provider, "user_ref": "demo-browser-user"},
            )
        if session.status_code == 201:
            terminal.say(
                "Link in your browser (the same test users; the page is valid for 30 minutes):"
                f"\nconnect_url: {session.json()['connect_url']}"
            )
        else:
            terminal.say(f"The API gave no link session (HTTP {session.status_code}); see its log.")
        terminal.say(
            f"Linking the {args.provider} sandbox's test user {args.username!r} (password"
            " pass_good). Its right answer to every question is `correct`; any offered option"
            " is a right choice."
        )
        link_args = argparse.Namespace(
            provider=Provider(args.provider),
            username=args.username,
            user_ref=None,
            link_id=None,
            mfa_timeout=300,
            no_wait=False,
            json=False,
        )
        status = await link(link_args, "pass_good", terminal)
        if args.exit_when_done or not terminal.interactive:
            return status
        terminal.say(
            f"\nThe stack keeps running for you to explore {ports.ui_url}; Ctrl-C stops it."
        )
        return await until_a_process_ends(stack, terminal)


async def until_a_process_ends(stack: DevStack, terminal: Terminal) -> int:
    """Wait while the stack runs; if one of its processes ends by itself, say which (and where
    its log is) and stop the rest, rather than leave a stack that quietly no longer works."""
    while True:
        ended = [name for name, process, _ in stack.processes if process.poll() is not None]
        if ended:
            name = ended[0]
            terminal.say(
                f"\nThe {name} process stopped by itself; see {stack.log_path(name)}."
                " Stopping the rest of the stack."
            )
            return EXIT_ERROR
        await asyncio.sleep(1.0)


def web_url(link_id: str) -> str:
    ui = os.environ.get("LINKFLOW_WEB_URL", "http://localhost:8233").rstrip("/")
    return f"{ui}/namespaces/{TemporalSettings.from_env().namespace}/workflows/{link_id}"


# ------------------------------------------------------------------ argument parsing


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit status 1 (2 means "refused" here)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="starter.py",
        description="Start, answer, inspect and demo account links.",
        epilog=f"Secrets: {NEVER_FROM_ARGV}.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    link = commands.add_parser(
        "link",
        help="start a link and answer its MFA in the terminal",
        description="Start a link. The password is asked for, or read from stdin's first line"
        f" when it is not a terminal, or taken from {PASSWORD_VARIABLE}.",
    )
    link.add_argument(
        "--provider", choices=[p.value for p in IMPLEMENTED_PROVIDERS], default=Provider.MX.value
    )
    link.add_argument("--username", required=True)
    link.add_argument("--user-ref", help="your app's reference for the end user")
    link.add_argument("--link-id", help="a link id of your own; the same id never starts twice")
    link.add_argument("--mfa-timeout", type=int, default=300, help="seconds per MFA round")
    link.add_argument("--no-wait", action="store_true", help="start the link and return")
    link.add_argument("--json", action="store_true")

    status = commands.add_parser("status", help="print a link's snapshot")
    status.add_argument("link_id")
    status.add_argument("--json", action="store_true")

    answer = commands.add_parser(
        "answer",
        help="answer a link's pending challenges",
        description="Answer the pending challenges: at a terminal, round after round until the"
        " link leaves MFA_REQUIRED; from a pipe (one line per challenge) or from"
        f" {ANSWERS_VARIABLE} (one VALUE for the one pending challenge, or CHALLENGE_ID=VALUE"
        " lines), the pending round only.",
    )
    answer.add_argument("link_id")
    answer.add_argument("--challenge", help="answer this challenge id only")
    answer.add_argument("--signal", action="store_true", help="send by signal, not update")
    answer.add_argument("--json", action="store_true")

    reauthenticate = commands.add_parser(
        "reauthenticate", help="log a link in again when its provider wants a fresh MFA"
    )
    reauthenticate.add_argument("link_id")
    reauthenticate.add_argument("--json", action="store_true")

    update = commands.add_parser(
        "update-credentials",
        help="resume a link whose password changed, with the new one",
        description="The new password is asked for, or read from stdin's first line when it is"
        f" not a terminal, or taken from {PASSWORD_VARIABLE}.",
    )
    update.add_argument("link_id")
    update.add_argument("--username", required=True)
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
    demo.add_argument("--api-port", type=int, default=8098, help="the codec server's port")
    demo.add_argument("--state-dir", type=Path, default=STATE_DIR)
    demo.add_argument(
        "--exit-when-done", action="store_true", help="stop the stack once the link settles"
    )
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse argv, refusing anything left over without repeating it: it may be a secret."""
    args, leftover = build_parser().parse_known_args(argv)
    if any(word.startswith("--password") for word in leftover):
        raise UserError(f"--password is not taken: {NEVER_FROM_ARGV}.")
    if leftover:
        raise UserError(
            f"{len(leftover)} unexpected argument(s), not repeated here in case they are secrets:"
            f" {NEVER_FROM_ARGV}."
        )
    return args


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


# ------------------------------------------------------------------ errors out


def fail(terminal: Terminal, text: str, status: int = EXIT_ERROR) -> int:
    """Print one line on stderr, with every secret this process read masked."""
    line = " ".join(terminal.masked(text).split())
    if len(line) > LONGEST_ERROR_LINE:
        line = line[: LONGEST_ERROR_LINE - 1] + "…"
    print(line, file=sys.stderr, flush=True)
    return status


def invalid_input(error: ValidationError) -> str:
    """Name each invalid field and what is wrong with it, never the value given."""
    problems = "; ".join(
        f"{'.'.join(map(str, problem['loc'])) or 'value'}: {problem['msg']}"
        for problem in error.errors(include_input=False, include_url=False)
    )
    return f"error: invalid input: {problems}"


async def run(args: argparse.Namespace, terminal: Terminal) -> int:
    """Run one subcommand; every way it can fail ends here as one line and an exit status."""
    command = COMMANDS[args.command]
    link_id = getattr(args, "link_id", None) or "LINK_ID"
    unanswered = (
        f"error: link {link_id} did not answer in time; is a worker running?"
        f" (`.venv/bin/python starter.py status {link_id}` shows where it stands.)"
    )
    try:
        return await command(args, terminal)
    except LinkRefused as refusal:
        return fail(terminal, f"refused: {refusal}", EXIT_REFUSED)
    except (UserError, LinkNotFound, ConfigurationError) as error:
        return fail(terminal, f"error: {error}")
    except StackError as error:
        # The dev stack's own diagnostics (a log tail) are worth their several lines.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as error:
        return fail(terminal, invalid_input(error))
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        return fail(terminal, f"error: link {link_id} cannot be read now: {error}")
    except (TimeoutError, RPCTimeoutOrCancelledError):
        return fail(terminal, unanswered)
    except RPCError as error:
        if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return fail(terminal, unanswered)
        return fail(terminal, f"error: Temporal refused the call ({error.status.name}): {error}")
    except Exception as error:  # the CLI's promise: one line, never a traceback
        return fail(terminal, f"error: unexpected {type(error).__name__}: {error}")


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    # Ctrl-C (and SIGTERM) must interrupt a prompt at once and unwind through the dev stack's
    # cleanup; asyncio.run's own SIGINT handling would only cancel the task on the first press.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # With stdin closed (`<&-`) there is nothing to read: every prompt meets end of input.
    terminal = Terminal(stdin=sys.stdin if sys.stdin is not None else io.StringIO())
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        if getattr(args, "json", False):
            terminal.talk = sys.stderr
        status = asyncio.run(run(args, terminal))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # The newline moves off the prompt that ^C interrupted.
        print("\nStopped.", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except (UserError, ConfigurationError) as error:
        status = fail(terminal, f"error: {error}")
    except Exception as error:  # the CLI's promise: one line, never a traceback
        status = fail(terminal, f"error: unexpected {type(error).__name__}: {error}")
    exit_now(status)


if __name__ == "__main__":
    main()
