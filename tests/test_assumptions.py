"""Every assumption about a provider is written in one form and shown in the README's table.

The table is generated from the `# Assumption(<provider>): <what> -- <why>.` comments in
providers/ and sandbox/ (providers/assumptions.py); tests/test_mapping.py keeps the README's
generated sections equal to the code, and this module keeps the comments themselves readable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from linkflow.models import Provider
from providers.assumptions import (
    MalformedAssumption,
    assumptions,
    assumptions_table,
    loose_assumptions,
)


def test_no_assumption_is_written_in_a_form_the_table_would_miss() -> None:
    assert loose_assumptions() == []


def test_every_provider_states_its_assumptions() -> None:
    found = {assumption.provider for assumption in assumptions()}
    assert found == set(Provider)


def test_the_table_has_a_row_for_every_comment() -> None:
    table = assumptions_table().splitlines()
    assert table[0] == "| provider | what we assumed | why | where in the code |"
    assert len(table) == 2 + len(assumptions())


def test_a_comment_spread_over_lines_is_read_whole_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "providers").mkdir()
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "providers" / "acme.py").write_text(
        "def login():\n"
        "    # Assumption(mx): the bank answers within a minute, even on a bad\n"
        "    # day -- its reference states no timeout.\n"
        "    return None\n"
    )
    [assumption] = assumptions(tmp_path)
    assert assumption.provider is Provider.MX
    assert assumption.what == "the bank answers within a minute, even on a bad day"
    assert assumption.why == "its reference states no timeout."
    assert assumption.where == "providers/acme.py (login)"


@pytest.mark.parametrize(
    ("comment", "problem"),
    [
        ("# Assumption(acme): a thing -- a reason.", "no provider called 'acme'"),
        ("# Assumption(mx): a thing with no reason.", "what -- why"),
    ],
)
def test_a_malformed_assumption_is_refused_saying_where(
    tmp_path: Path, comment: str, problem: str
) -> None:
    (tmp_path / "providers").mkdir()
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "acme.py").write_text(f"{comment}\nTHING = 1\n")
    with pytest.raises(MalformedAssumption, match=problem):
        assumptions(tmp_path)
