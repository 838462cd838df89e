"""The link's workflow module stays the link's story: its parts live in their own modules."""

from __future__ import annotations

import inspect
from pathlib import Path

from workflows.account_link import AccountLinkWorkflow

STORY_LINE_LIMIT = 300


def test_the_link_story_stays_under_300_lines() -> None:
    lines = Path(inspect.getfile(AccountLinkWorkflow)).read_text().splitlines()
    assert len(lines) < STORY_LINE_LIMIT, f"workflows/account_link.py has {len(lines)} lines"
