"""Shared helpers for the benchmarks that run a real dev stack and measure it.

A benchmark needs the same few things each time: Temporal's dev server (SQLite on disk) and the
provider sandbox on free ports with a chosen job latency, linkflow's worker, sometimes extra
processes beside them (a second sandbox, a second worker, another worker program), a `LinkClient`
bound to the stack, the CPU time each process has used (from /proc), and a line that says which
machine the figures come from. `BenchStack` is a `linkflow.devstack.DevStack` without the HTTP API
(no benchmark needs it), whose extra processes (`DevStack.spawn`) log, stop and are reaped like the
rest.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from linkflow.client import LinkClient  # noqa: E402
from linkflow.config import TemporalSettings  # noqa: E402
from linkflow.devstack import (  # noqa: E402
    PROJECT_ROOT,
    WORKER_READY_LINE,
    DevStack,
    StackError,
    StackPorts,
    free_port,
    port_is_open,
)
from linkflow.temporal import connect, quiet_runtime  # noqa: E402
from linkflow.webhook_policy import ALLOWED_HOSTS_VARIABLE, WebhookPolicy  # noqa: E402

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# A user's pace: the pause before an answer in the benchmarks' paced samples. Far beyond a webhook
# event's delivery after the reply before it (about 11 ms at p50), quicker than anyone types a code.
PACED_SECONDS = 0.25


@dataclass
class BenchStack(DevStack):
    """A `DevStack` for benchmarks: no HTTP API, extra processes with their own environment.

    `sandbox_latency_seconds` is how long the sandbox's provider jobs stay in progress (the
    sandbox's `--latency-seconds`); `webhook_hosts` are receivers the workers may deliver to
    although they are local (`LINKFLOW_WEBHOOK_ALLOWED_HOSTS`, plain http allowed).
    """

    sandbox_latency_seconds: float = 0.0
    webhook_hosts: tuple[str, ...] = ()

    @classmethod
    def on_free_ports(
        cls,
        *,
        sandbox_latency_seconds: float = 0.0,
        task_queue: str = "linkflow-bench",
        webhook_hosts: Sequence[str] = (),
        state_dir: Path | None = None,
    ) -> Self:
        return cls(
            ports=StackPorts.free(),
            state_dir=state_dir or Path(tempfile.mkdtemp(prefix="linkflow-bench-")),
            task_queue=task_queue,
            sandbox_args=("--latency-seconds", str(sandbox_latency_seconds)),
            sandbox_latency_seconds=sandbox_latency_seconds,
            webhook_hosts=tuple(webhook_hosts),
        )

    def env(self) -> dict[str, str]:
        hosts = {ALLOWED_HOSTS_VARIABLE: ",".join(self.webhook_hosts)} if self.webhook_hosts else {}
        return super().env() | hosts

    def start(self, *, worker: bool = True) -> None:
        """The dev server, the sandbox and (unless told not to) linkflow's worker; no API."""
        for port in (self.ports.temporal, self.ports.ui, self.ports.sandbox):
            if port_is_open(port):
                raise StackError(f"Port {port} is already in use; pick other ports.")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_keys()
        self.start_temporal()
        self.start_sandbox()
        if worker:
            self.start_worker()

    def spawn_sandbox(self, name: str, latency_seconds: float) -> str:
        """Another sandbox beside the stack's, with its own job latency; returns its URL."""
        port = free_port()
        command = [sys.executable, "-m", "sandbox", "--port", str(port)]
        self.spawn(name, [*command, "--latency-seconds", str(latency_seconds)], ready_port=port)
        return f"http://127.0.0.1:{port}"

    def spawn_linkflow_worker(self, name: str, task_queue: str, sandbox_url: str) -> int:
        """Another linkflow worker (`worker.py`) on its own task queue and sandbox."""
        return self.spawn(
            name,
            [sys.executable, str(PROJECT_ROOT / "worker.py")],
            env={"LINKFLOW_TASK_QUEUE": task_queue, "LINKFLOW_SANDBOX_URL": sandbox_url},
            ready_line=WORKER_READY_LINE,
        )

    def pids(self) -> dict[str, int]:
        """Every process of the stack by name, for a `CpuMeter`."""
        return {name: process.pid for name, process, _log in self.processes}

    async def link_client(
        self, task_queue: str | None = None, *, webhook_policy: WebhookPolicy | None = None
    ) -> LinkClient:
        """A `LinkClient` on this stack (its codec key), for `task_queue` (default: the stack's)."""
        queue = task_queue or self.task_queue
        settings = TemporalSettings(address=self.ports.temporal_address, task_queue=queue)
        client = await connect(settings, runtime=quiet_runtime(), key_ring=self.key_ring())
        policy = webhook_policy or WebhookPolicy.allowing(*self.webhook_hosts)
        return LinkClient(client, queue, webhook_policy=policy)


@dataclass
class WebhookReceiver:
    """A local webhook receiver: answers 200 and keeps each event's JSON, or answers 503 to a
    share (`refuse_share`) of deliveries, as a receiver having a bad moment would."""

    port: int = field(default_factory=free_port)
    refuse_share: float = 0.0
    seed: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    # When each event arrived (time.perf_counter(), this process's clock), beside `events`.
    arrivals: list[float] = field(default_factory=list)
    refused: int = 0
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/linkflow-events"

    async def start(self) -> None:
        self._dice = Random(self.seed)
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length)
            status = b"200 OK"
            if self._dice.random() < self.refuse_share:
                self.refused += 1
                status = b"503 Service Unavailable"
            else:
                self.events.append(json.loads(body))
                self.arrivals.append(time.perf_counter())
            writer.write(b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % status)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far, all its threads together."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after it are space-separated.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS_PER_SECOND


@dataclass
class CpuMeter:
    """CPU seconds used by named processes between `start()` and `stop()`."""

    pids: dict[str, int]
    began: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def start(self) -> CpuMeter:
        self.began = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {name: cpu_seconds(pid) - self.began[name] for name, pid in self.pids.items()}
        return self.used


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine has spent busy, and in all, since boot (all CPUs)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    total = sum(ticks[:8])  # guest time is counted in user time already
    return (total - idle) / CLOCK_TICKS_PER_SECOND, total / CLOCK_TICKS_PER_SECOND


@dataclass
class MachineMeter:
    """How busy the whole machine was between `start()` and `stop()`, other programs included."""

    began: tuple[float, float] = (0.0, 0.0)

    def start(self) -> MachineMeter:
        self.began = machine_cpu_seconds()
        return self

    def stop(self) -> tuple[float, float]:
        """Busy CPU seconds and elapsed CPU seconds (all CPUs) since `start()`."""
        busy, total = machine_cpu_seconds()
        return busy - self.began[0], total - self.began[1]


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    python: str
    system: str
    load_average: float

    def line(self) -> str:
        return (
            f"machine: {self.cpus} CPUs ({self.cpu_model}), {self.memory_gib:.1f} GiB RAM,"
            f" Python {self.python}, {self.system}; load average {self.load_average:.1f} at start"
        )


def machine() -> Machine:
    """What the figures were measured on: nproc, the CPU model and the RAM, from /proc."""
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(),
        memory_gib=_memory_kib() / 1024 / 1024,
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()}",
        load_average=os.getloadavg()[0],
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
