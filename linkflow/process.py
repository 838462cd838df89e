"""How linkflow's command-line entry points end.

temporalio/sdk-python issue 300 (open): a process that used the Temporal client can abort at
interpreter exit with `Fatal Python error: PyGILState_Release` (exit 134) while the SDK's native
runtime tears down. So entry points flush their output and leave with `os._exit`, once their work
is done, which skips that teardown and keeps the exit status they meant.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
