"""What deck search reads out of a listener's words (control_plane/decks/queries.py)."""

from __future__ import annotations

import pytest

from control_plane.decks.queries import asks_for, names_in, spoken_query, topic_query


@pytest.mark.parametrize(
    ("said", "query"),
    [
        ("So, um, can you tell me how much it costs?", "how much it costs?"),
        ("Quick question, what does FAC stand for?", "what does FAC stand for?"),
        ("I was wondering about the roadmap", "the roadmap"),
        ("Pricing?", "Pricing?"),  # nothing but the question: kept as said
    ],
)
def test_a_spoken_lead_in_is_dropped(said: str, query: str) -> None:
    assert spoken_query(said) == query


def test_a_section_name_also_searches_what_decks_call_it() -> None:
    words = topic_query("the wrap-up").split()
    assert {"wrap", "summary", "conclusion", "questions"} <= set(words)
    assert topic_query("the market slide").split()[:3] == ["the", "market", "slide"]


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("Is Farmify registered with SEBI?", {"farmify", "sebi"}),
        ("Does PyO3 support Python 3.13?", {"pyo3", "python", "3.13"}),
        ("What was total income in 2022?", {"2022"}),
        ("How much does it cost?", set()),
        ("Do they partner with edX?", {"edx"}),
    ],
)
def test_names_and_numbers_in_a_question(question: str, names: set[str]) -> None:
    assert names_in(question) == names


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How much does it cost?", "price"),
        ("When does forecasting ship?", "date"),
        ("How many customers do they have?", "number"),
        ("How do I reach your sales team?", "contact"),
        ("Is my data encrypted?", None),
    ],
)
def test_the_kind_of_fact_a_question_asks_for(question: str, kind: str | None) -> None:
    assert asks_for(question) == kind
