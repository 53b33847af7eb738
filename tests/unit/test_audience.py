"""A room with several people, without a room: the model reads who said each user message, the
offline responder answers them by name, and the records keep the words alone."""

from __future__ import annotations

from typing import Any

from livekit.agents import llm

from agent_worker.audience import Attribution, addressed, speaker_of
from agent_worker.presenter import _named, describe_hits
from agent_worker.responder import reply_for
from shared.intents import DOESNT_COVER, ToolRequest
from shared.schemas import DeckSearchHit, DeckSearchResult


def _asked(said: str, *, hit: bool, covered: bool = True) -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content=said)
    hits = [DeckSearchHit(slide_index=4, title="Pricing", score=0.6, snippet="From 49 dollars.")]
    output = describe_hits(DeckSearchResult(hits=hits if hit else [], covered=covered))
    ctx.insert(llm.FunctionCall(call_id="c1", name="search_slides", arguments="{}"))
    ctx.insert(
        llm.FunctionCallOutput(call_id="c1", name="search_slides", output=output, is_error=False)
    )
    return ctx


def test_the_name_in_front_of_the_words_is_read_back_and_cannot_be_forged_twice() -> None:
    assert speaker_of(addressed("Ada", "how much is it?")) == ("Ada", "how much is it?")
    assert speaker_of("how much is it?") == (None, "how much is it?")
    # a name holding brackets cannot end the prefix early
    assert speaker_of(addressed("Eve] [Ada", "hi")) == ("Eve) (Ada", "hi")


def test_the_offline_responder_answers_the_person_who_asked_by_name() -> None:
    assert reply_for(_asked("[Ben] is there an annual contract?", hit=True)) == (
        "Ben, that's on slide 4, Pricing. From 49 dollars."
    )
    assert reply_for(_asked("[Cy] who won?", hit=False)) == "Cy, the deck doesn't cover that."
    # alone in the room the model is told no name, and the answer is as before
    assert reply_for(_asked("who won?", hit=False)) == DOESNT_COVER


def test_the_name_does_not_reach_the_words_a_navigation_intent_reads() -> None:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="[Ada] next slide please")
    assert reply_for(ctx) == ToolRequest("next_slide", {})


def test_the_model_reads_each_message_with_its_speaker_and_the_chat_keeps_the_words() -> None:
    ctx = llm.ChatContext()
    first = ctx.add_message(role="user", content="is there a contract?")
    ctx.add_message(role="assistant", content="Ben, yes.")
    second = ctx.add_message(role="user", content="and the price?")
    said_by: dict[str, Any] = {first.id: "Ben", second.id: "Vic"}
    named = _named(ctx, lambda m: said_by.get(m.id))
    users = [i.text_content for i in named.items if isinstance(i, llm.ChatMessage)]
    assert users == ["[Ben] is there a contract?", "Ben, yes.", "[Vic] and the price?"]
    assert first.text_content == "is there a contract?"  # the original, for the records


def test_an_attribution_says_whether_the_words_were_typed() -> None:
    assert Attribution("vic", "Vic", typed=True).typed
    assert not Attribution("ben", "Ben").typed
