"""How a turn's records say the presenter declined a question ("the deck doesn't cover that").

The worker writes each ``search_slides`` result for the model with a verdict line that the
control plane's coverage model decided (agent_worker/presenter.py: ``NOT_COVERED``,
``NO_MATCH``); these markers are their fixed openings, pinned to the worker's constants by
tests/unit/test_analytics.py. The verdict is the robust signal: it holds whatever model spoke
the answer, and redaction never touches it (it carries no personal data). A model may still
decline a question the search thought covered, so the answer's words count too.
"""

from __future__ import annotations

import re
from typing import Any

SEARCH_TOOL = "search_slides"
NOT_COVERED_MARK = "Verdict: no slide answers this question."
NO_MATCH_MARK = "No slide matches that."
_DECLINED_WORDS = re.compile(r"\b(?:doesn't|does not|don't|do not|didn't|did not) cover\b", re.I)


def search_calls(record: dict[str, Any]) -> list[dict[str, Any]]:
    calls = record.get("tool_calls") or []
    return [c for c in calls if isinstance(c, dict) and c.get("name") == SEARCH_TOOL]


def is_declined(record: dict[str, Any]) -> bool:
    """True when the turn's search said no slide answers, or its answer says the deck does
    not cover the question."""
    for call in search_calls(record):
        output = call.get("output") or ""
        if NOT_COVERED_MARK in output or output.strip() == NO_MATCH_MARK:
            return True
    return bool(_DECLINED_WORDS.search(record.get("agent_text") or ""))
