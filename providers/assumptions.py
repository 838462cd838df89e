"""Every assumption the adapters and the sandbox make about a provider, read from the code itself.

Where neither a provider's document nor its public reference says how something works, the code
that guesses carries a comment in one form:

    # Assumption(<provider>): <what we assumed> -- <why: what the references leave open>.

(continuation lines may follow as ordinary comment lines). This module collects those comments so
the README's assumptions table is generated from the code, and a person with real credentials can
check them one by one, each with the place in the code that relies on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from linkflow.models import Provider

ROOT = Path(__file__).resolve().parent.parent
SEARCHED = ("providers", "sandbox")

_START = re.compile(r"^\s*#\s*Assumption\((?P<provider>[a-z]+)\):\s*(?P<text>.*)$")
_CONTINUATION = re.compile(r"^\s*#\s?(?P<text>.*)$")
_LOOSE = re.compile(r"Assumption\b(?!\()")


@dataclass(frozen=True)
class Assumption:
    provider: Provider
    what: str
    why: str
    where: str

    @property
    def row(self) -> str:
        cells = (self.provider.value, self.what, self.why, f"`{self.where}`")
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


class MalformedAssumption(ValueError):
    """An assumption comment the table cannot show; the message says where and why."""


def assumptions(root: Path = ROOT) -> list[Assumption]:
    """Every `# Assumption(provider): what -- why.` comment under providers/ and sandbox/."""
    found: list[Assumption] = []
    for folder in SEARCHED:
        for path in sorted((root / folder).glob("*.py")):
            found += _in_file(path, path.relative_to(root).as_posix())
    return sorted(found, key=lambda a: (list(Provider).index(a.provider), a.where))


def _in_file(path: Path, name: str) -> list[Assumption]:
    lines = path.read_text().splitlines()
    found: list[Assumption] = []
    index = 0
    while index < len(lines):
        start = _START.match(lines[index])
        if start is None:
            index += 1
            continue
        where = f"{name} ({_place(lines, index)})"
        text = start.group("text").strip()
        index += 1
        while index < len(lines) and " -- " not in text:
            more = _CONTINUATION.match(lines[index])
            if more is None:
                break
            text += " " + more.group("text").strip()
            index += 1
        while index < len(lines) and not text.endswith("."):
            more = _CONTINUATION.match(lines[index])
            if more is None or _START.match(lines[index]):
                break
            text += " " + more.group("text").strip()
            index += 1
        found.append(_parse(start.group("provider"), text, where))
    return found


_DEFINITION = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?:def|class)\s+(?P<name>\w+)")
_ASSIGNMENT = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?::[^=]*)?=")


def _place(lines: list[str], index: int) -> str:
    """The function or class a comment sits in, or the module-level name it annotates:
    a place that survives edits elsewhere in the file, unlike a line number."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    for line in reversed(lines[:index]):
        definition = _DEFINITION.match(line)
        if definition and len(definition.group("indent")) < indent:
            return definition.group("name")
        if indent and not line[:1].isspace() and line.strip():
            # An entry of a module-level table: the table's name.
            named = _ASSIGNMENT.match(line)
            return named.group("name") if named else "module"
    for line in lines[index + 1 :]:
        if line.strip() and not line.lstrip().startswith("#"):
            named = _DEFINITION.match(line) or _ASSIGNMENT.match(line)
            return named.group("name") if named else "module"
    return "module"


def _parse(provider: str, text: str, where: str) -> Assumption:
    try:
        known = Provider(provider)
    except ValueError:
        raise MalformedAssumption(f"{where}: no provider called {provider!r}") from None
    what, separator, why = text.partition(" -- ")
    if not separator or not what.strip() or not why.strip():
        raise MalformedAssumption(f"{where}: an assumption reads 'what -- why.'")
    return Assumption(known, what.strip(), why.strip(), where)


def loose_assumptions(root: Path = ROOT) -> list[str]:
    """Places that say "Assumption" without the form above, so the table would miss them."""
    loose: list[str] = []
    for folder in SEARCHED:
        for path in sorted((root / folder).glob("*.py")):
            if path.name == Path(__file__).name:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if _LOOSE.search(line) and not _START.match(line):
                    loose.append(f"{path.relative_to(root).as_posix()}:{number}")
    return loose


def assumptions_table(root: Path = ROOT) -> str:
    """The README's table of assumptions, one row per comment, in provider order."""
    rows = ["| provider | what we assumed | why | where in the code |", "|---|---|---|---|"]
    rows += [assumption.row for assumption in assumptions(root)]
    return "\n".join(rows)
