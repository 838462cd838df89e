"""Set up the project and run it: the two commands a new machine needs.

    python3 dev.py demo         # the dev stack, then link an MX test user through MFA
    python3 dev.py test         # lint, type-check and the whole test suite
    python3 dev.py test --fast  # lint, type-check, and only the tests that start no process

`test --fast` is the inner loop: ruff, mypy (run beside the tests) and the unit and time-skipping
server tests, leaving out every test marked `slow` (tests/conftest.py marks those that use a dev
server, the sandbox, a stack or a browser). Other arguments after `test` go to pytest.

Only the standard library is used here: this file runs before anything is installed. It makes
`.venv/`, installs the project with its test extras when `pyproject.toml` changed since the last
install, then hands over to the venv's Python. For the browser tests, `test` (not `--fast`) and
`setup` also install Debian's `chromium` when it is missing and this user may run apt-get;
Playwright drives that browser, and `playwright install` (which downloads a browser of its own) is
never run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".linkflow-installed"
INSTALL_LOG = VENV / "install.log"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs under whatever python3 is
        sys.exit(f"linkflow needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("Installing linkflow and its test tools into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    with INSTALL_LOG.open("w") as log:
        for step in (["--upgrade", "pip"], ["--editable", f"{ROOT}[test]"]):
            if subprocess.run([*pip, *step], stdout=log, stderr=subprocess.STDOUT).returncode:
                print(INSTALL_LOG.read_text()[-4000:], file=sys.stderr)
                raise subprocess.CalledProcessError(1, " ".join(step))
    STAMP.write_text(wanted)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_LOG = VENV / "chromium-install.log"


def ensure_browser() -> None:
    """Debian's chromium for the browser tests (tests/test_browser.py), installed when missing.

    Only root can install it here (as CI does); anyone else is told the one command to run, and
    the browser tests say they were skipped for want of it.
    """
    if CHROMIUM.exists():
        return
    apt_get = shutil.which("apt-get")
    if apt_get is None or os.geteuid() != 0:
        print(
            f"The browser tests need Debian's chromium at {CHROMIUM}:"
            " `sudo apt-get install chromium` (they are skipped without it).",
            file=sys.stderr,
        )
        return
    print("Installing chromium for the browser tests ...", flush=True)
    environment = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    with CHROMIUM_LOG.open("w") as log:
        for step in (
            [apt_get, "update", "-qq"],
            [apt_get, "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        ):
            finished = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, env=environment)
            if finished.returncode:
                print(CHROMIUM_LOG.read_text()[-4000:], file=sys.stderr)
                raise subprocess.CalledProcessError(1, " ".join(step[1:]))


def run(command: list[str]) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


LINTS = [["ruff", "check", "."], ["ruff", "format", "--check", "."]]
TYPE_CHECK = ["mypy", "."]
FAST_TESTS = ["-m", "not slow"]


def test(extra: list[str]) -> int:
    if "--fast" in extra:
        return fast_test([argument for argument in extra if argument != "--fast"])
    for check in [*LINTS, TYPE_CHECK]:
        print("$", " ".join(check), flush=True)
        if status := run([str(PYTHON), "-m", *check]):
            return status
    return pytest(extra)


def fast_test(extra: list[str]) -> int:
    """Lint, then the type check beside the tests that start no process (its output after)."""
    for check in LINTS:
        print("$", " ".join(check), flush=True)
        if status := run([str(PYTHON), "-m", *check]):
            return status
    print("$", " ".join(TYPE_CHECK), "(beside the tests)", flush=True)
    type_check = subprocess.Popen(
        [str(PYTHON), "-m", *TYPE_CHECK],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tests = pytest([*FAST_TESTS, *extra])
    report, _ = type_check.communicate()
    print("$", " ".join(TYPE_CHECK), flush=True)
    print(report, end="", flush=True)
    return type_check.returncode or tests


def pytest(extra: list[str]) -> int:
    status = run([str(PYTHON), "-m", "pytest", *extra])
    # pytest's 5 means no test ran: never a pass.
    return 1 if status == 5 else status


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    try:
        ensure_environment()
    except subprocess.CalledProcessError as error:
        print(f"Setting up .venv failed ({error}); see {INSTALL_LOG}.", file=sys.stderr)
        return 1
    if command == "setup" or (command == "test" and "--fast" not in extra):
        try:
            ensure_browser()
        except subprocess.CalledProcessError as error:
            print(f"Installing chromium failed ({error}); see {CHROMIUM_LOG}.", file=sys.stderr)
            return 1
    if command == "setup":
        return 0
    if command == "test":
        return test(extra)
    os.execv(PYTHON, [str(PYTHON), str(ROOT / "starter.py"), "demo", *extra])


if __name__ == "__main__":
    sys.exit(main())
