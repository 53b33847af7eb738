"""Languages without a room: a deck's language told from its text, Spanish requests read as the
same tool calls as English ones, and the offline presenter speaking Spanish in a Spanish
session (answers with the slide, declines, navigation confirmations, narration)."""

from __future__ import annotations

import pytest
from livekit.agents import llm
from pydantic import ValidationError

from agent_worker.narration import narration_script
from agent_worker.presenter import describe_hits
from agent_worker.responder import reply_for
from control_plane.decks.queries import names_in
from control_plane.sessions.schemas import SessionCreate
from shared.intents import ToolRequest, intent_for
from shared.languages import PHRASES, detect_language
from shared.schemas import DeckSearchHit, DeckSearchResult, SlideContent
from tests.data.languages.spanish_deck import SLIDES

pytestmark = pytest.mark.unit


def test_a_decks_language_is_told_from_its_function_words() -> None:
    spanish = " ".join(part for slide in SLIDES for part in slide)
    assert detect_language(spanish) == "es"
    assert detect_language("Die Preise für unsere Kunden sind in der Tabelle auf der Folie") == "de"
    assert detect_language("Nous proposons une offre pour les équipes et les entreprises") == "fr"
    assert detect_language("Pricing for teams: the plan costs 49 dollars a month") == "en"
    # too little text to tell: English, the default
    assert detect_language("Q3 2025 — KPIs") == "en"


def test_every_language_has_the_sentences_the_offline_presenter_needs_in_spanish() -> None:
    assert set(PHRASES["es"]) == set(PHRASES["en"])


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Siguiente diapositiva, por favor", ToolRequest("next_slide")),
        ("vuelve a la anterior", ToolRequest("previous_slide")),
        ("ve a la diapositiva 7", ToolRequest("goto_slide", {"slide_number": 7})),
        ("pasa a la diapositiva tres", ToolRequest("goto_slide", {"slide_number": 3})),
        ("llévame a los precios", ToolRequest("goto_slide", {"topic": "precios"})),
        ("muéstrame la diapositiva del equipo", ToolRequest("goto_slide", {"topic": "equipo"})),
        ("pausa", ToolRequest("pause_presentation")),
        ("sí, continúa", ToolRequest("resume_presentation")),
        ("¿Cuánto cuesta?", ToolRequest("search_slides", {"query": "¿Cuánto cuesta?"})),
    ],
)
def test_spanish_requests_become_the_tool_calls_english_ones_do(
    said: str, expected: ToolRequest
) -> None:
    assert intent_for(said, "es") == expected


def test_the_opening_question_mark_does_not_make_the_first_word_a_name() -> None:
    assert names_in("¿Cuánto cuesta el plan básico?") == set()
    assert names_in("¿Qué hace Rutalia?") == {"rutalia"}


def _asked(said: str, output: str, tool: str = "search_slides") -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content=said)
    ctx.insert(llm.FunctionCall(call_id="c1", name=tool, arguments="{}"))
    ctx.insert(llm.FunctionCallOutput(call_id="c1", name=tool, output=output, is_error=False))
    return ctx


def test_the_offline_responder_answers_declines_and_confirms_in_spanish() -> None:
    hit = DeckSearchHit(
        slide_index=4, title="Precios", score=0.6, snippet="Precios: Plan Básico: 49 euros al mes."
    )
    found = describe_hits(DeckSearchResult(hits=[hit], covered=True))
    assert reply_for(_asked("¿Cuánto cuesta?", found), "es") == (
        "Eso está en la diapositiva 4, Precios. Plan Básico: 49 euros al mes."
    )
    none = describe_hits(DeckSearchResult(hits=[hit], covered=False))
    assert reply_for(_asked("¿Tienen oficinas en México?", none), "es") == (
        "La presentación no trata ese tema."
    )
    moved = "Now on slide 5 of 10: Seguridad y privacidad."
    assert reply_for(_asked("siguiente", moved, "next_slide"), "es") == (
        "Ahora en la diapositiva 5 de 10: Seguridad y privacidad."
    )
    assert reply_for(_asked("siguiente", moved, "next_slide")) == moved  # English unchanged


def test_a_slide_is_narrated_with_a_spanish_lead() -> None:
    content = SlideContent(
        index=4, title="Precios", text="Plan Básico", notes="El primer mes es gratis."
    )
    assert narration_script(content, "es") == [
        "Diapositiva 4: Precios.",
        "El primer mes es gratis.",
    ]


def test_a_session_language_is_a_supported_bcp47_tag() -> None:
    assert SessionCreate(language="es-MX").language == "es"
    assert SessionCreate().language is None
    with pytest.raises(ValidationError, match="language must be one of en, es, de, fr"):
        SessionCreate(language="ja")
