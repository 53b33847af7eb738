"""Wire schemas shared by the control plane and the worker (one model per direction)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SessionStatus = Literal["created", "active", "ended"]


HEX_COLOUR = r"^#[0-9A-Fa-f]{6}$"
HairStyle = Literal["short", "bob", "long", "none"]


class AvatarStyle(BaseModel):
    """How a tenant's presenter looks when Podium renders it locally (colours are ``#RRGGBB``).

    ``enabled: false`` makes the tenant's sessions audio-only, whatever the worker runs.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    skin: str = Field(default="#D9A47F", pattern=HEX_COLOUR)
    hair: str = Field(default="#2E211B", pattern=HEX_COLOUR)
    hair_style: HairStyle = "bob"
    eyes: str = Field(default="#4B3A2E", pattern=HEX_COLOUR, description="Iris colour.")
    jacket: str = Field(default="#1E2B45", pattern=HEX_COLOUR)
    shirt: str = Field(default="#F3F5F9", pattern=HEX_COLOUR)
    background: str = Field(default="#E9EEF5", pattern=HEX_COLOUR)
    accent: str = Field(default="#2F6FE4", pattern=HEX_COLOUR, description="Brand colour.")
    glasses: bool = False


class DispatchMetadata(BaseModel):
    """JSON placed in the LiveKit agent dispatch; only the dispatched worker job can read it."""

    model_config = ConfigDict(extra="ignore")

    session_id: UUID
    credential: str  # session-scoped bearer for the control plane's internal API


class SessionCredential(BaseModel):
    """``POST /internal/v1/sessions/{id}/credential``: the job's credential, renewed."""

    credential: str
    expires_in: int = Field(description="Seconds the credential is valid for.")


class OutlineEntry(BaseModel):
    """One slide of the deck's outline, as the presenter's model is told it."""

    index: int
    title: str | None


class SessionContext(BaseModel):
    """What a worker job loads from the control plane before it joins the room."""

    session_id: UUID
    tenant_id: UUID
    room: str
    status: SessionStatus
    deck_id: UUID | None
    participant_name: str | None
    greeting: str
    created_at: datetime
    language: str = Field(
        default="en",
        description="What the presenter speaks and listens in (en, es, de, fr): the session's, "
        "else its deck's.",
    )
    resumed: bool = Field(
        default=False,
        description="A worker already presented this session and was lost: pick it up, "
        "do not greet again.",
    )
    conversation: list[ConversationMessage] = Field(
        default_factory=list,
        description="The conversation so far (resumed sessions), oldest first.",
    )
    record: bool = Field(
        default=False, description="Record the session's audio and upload it when the job ends."
    )
    avatar: AvatarStyle = Field(
        default_factory=AvatarStyle,
        description="How the session's tenant wants its presenter to look (the defaults when "
        "it set none).",
    )
    outline: list[OutlineEntry] = Field(
        default_factory=list,
        description="The deck's slide titles in order (empty without a deck).",
    )


# Postgres text cannot hold NUL: refuse it at the edge with a 422, not a database error.
NO_NUL = r"^[^\x00]*$"
# An integer column (int4) holds no more: a larger value is a 422 here, not a database error.
INT4_MAX = 2**31 - 1


def _storable(value: datetime) -> datetime:
    """A time Postgres can store: with its offset applied it must still fall in year 1 or later
    (0001-01-01T00:00+10:00 is in year 0 in UTC, which Python cannot represent)."""
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("time is before year 1 in UTC") from None
    return value


StorableDatetime = Annotated[datetime, AfterValidator(_storable)]

SlideAction = Literal[
    "next", "previous", "goto", "first", "last", "pause", "resume", "lock", "unlock"
]
# The moves a host's lock keeps from participants (pausing and resuming stay theirs).
NAVIGATION_ACTIONS = frozenset({"next", "previous", "goto", "first", "last"})


class SlideChange(BaseModel):
    """A request to change a session's slide state (API, participant and worker routes alike)."""

    model_config = ConfigDict(extra="forbid")

    action: SlideAction
    index: int | None = Field(
        default=None, description="The slide to show, from 1; required with 'goto', only there."
    )
    expected_version: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Apply only if the state is still at this version (else 409 version_conflict).",
    )
    reason: str | None = Field(
        pattern=NO_NUL, default=None, max_length=200, description="Recorded with the change."
    )

    @model_validator(mode="after")
    def _index_only_with_goto(self) -> SlideChange:
        if (self.action == "goto") != (self.index is not None):
            raise ValueError("'index' is required with action 'goto' and not allowed otherwise")
        return self


class SlideState(BaseModel):
    """The current slide of a session, as every client and the worker see it."""

    session_id: UUID
    deck_id: UUID
    index: int = Field(description="The slide shown, from 1.")
    count: int = Field(description="Slides in the deck.")
    version: int = Field(description="Grows by one with every change; ignore lower versions.")
    title: str | None
    image_url: str | None = Field(description="Signed, short-lived URL of the slide image.")
    paused: bool = Field(description="Presentation mode paused (the presenter waits).")
    locked: bool = Field(
        default=False,
        description="Navigation locked by the host: only the host, the presenter and the API "
        "change the slides; participants' changes answer 409 navigation_locked.",
    )
    changed_by: str = Field(description="'agent', 'api' or 'participant:<identity>'.")
    changed_at: datetime


class DeckSearchHit(BaseModel):
    """One slide that matches a question, best first (worker route)."""

    slide_index: int = Field(description="The slide, from 1.")
    title: str | None
    score: float = Field(description="Relevance: higher is better; comparable within one deck.")
    snippet: str = Field(description="The slide's text or notes that matched best.")


class DeckSearchResult(BaseModel):
    """What ``GET /internal/v1/sessions/{id}/search`` answers."""

    hits: list[DeckSearchHit]
    covered: bool = Field(
        default=True, description="Whether the best hit answers the question (or the topic)."
    )
    confidence: float = Field(default=1.0, description="Confidence in 'covered', 0 to 1.")


class SlideContent(BaseModel):
    """One slide's words, for the presenter to narrate or quote (worker route)."""

    index: int = Field(description="The slide, from 1.")
    title: str | None
    text: str
    notes: str | None


MessageRole = Literal["user", "assistant"]

# Who a person in the room is: the 'host' speaks, navigates and may lock navigation; a
# 'participant' speaks and navigates unless the host locked it; a 'viewer' watches, listens and
# may type questions.
Role = Literal["host", "participant", "viewer"]
# The LiveKit participant attribute (set in every participant token) that carries its Role.
ROLE_ATTRIBUTE = "podium.role"


class ConversationMessage(BaseModel):
    """One finished message of a session's conversation, as the worker's chat holds it."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=100, pattern=r"^[\w.:-]+$")
    role: MessageRole
    text: str = Field(max_length=10_000, pattern=NO_NUL)
    interrupted: bool = False
    started_at: datetime | None = Field(default=None, description="When it began to be spoken.")
    ended_at: datetime | None = Field(default=None, description="When it was done being spoken.")
    speaker: str | None = Field(
        default=None,
        max_length=64,
        pattern=NO_NUL,
        description="The participant identity whose words a user message holds.",
    )


class ConversationBatch(BaseModel):
    """What a worker sends to ``POST /internal/v1/sessions/{id}/messages``; resending a
    message (same ``item_id``) stores it once."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ConversationMessage] = Field(min_length=1, max_length=100)


class EscalationRequest(BaseModel):
    """The presenter asks for a person (worker route); the control plane adds the transcript."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL)
    slide_index: int | None = Field(default=None, ge=1, le=INT4_MAX)
    last_question: str | None = Field(default=None, max_length=2_000, pattern=NO_NUL)
    attempted_answer: str | None = Field(default=None, max_length=2_000, pattern=NO_NUL)


class TranscriptLine(BaseModel):
    role: MessageRole
    text: str
    interrupted: bool


class Escalation(BaseModel):
    """A recorded request for a human, with what they need to take over."""

    escalation_id: UUID
    session_id: UUID
    reason: str
    slide_index: int | None = Field(description="The slide showing when it was requested.")
    last_question: str | None
    attempted_answer: str | None
    transcript: list[TranscriptLine] = Field(description="The conversation up to the request.")
    created_at: datetime


class JobAlive(BaseModel):
    """A presenting job's report (``POST /internal/v1/sessions/{id}/alive``)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=100, pattern=r"^[\w.:-]+$")


# SessionContext names ConversationMessage, defined after it.
SessionContext.model_rebuild()


# -- Turn log -------------------------------------------------------------------------------

Stage = Literal["stt", "eou", "llm", "tts"]

# Workers may run a newer version than the control plane during a rolling upgrade: a record
# with a field this version does not know is stored without it, not refused (and lost).
_RECORD = ConfigDict(extra="ignore")


class ToolCallRecord(BaseModel):
    """One tool call the model made in a turn, with what the tool answered."""

    model_config = _RECORD

    call_id: str = Field(max_length=200, pattern=NO_NUL)
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    arguments: str = Field(max_length=10_000, pattern=NO_NUL, description="JSON, as the model sent")
    output: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)
    is_error: bool = False
    started_at: float | None = Field(default=None, description="Unix time the call was made.")
    duration: float | None = Field(default=None, ge=0, description="Seconds until its result.")


class StageCall(BaseModel):
    """One provider request in a turn (an STT, LLM or TTS call), as the framework measured it."""

    model_config = _RECORD

    stage: Stage
    request_id: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    provider: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    model: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    started_at: float | None = Field(default=None, description="Unix time the request began.")
    duration: float | None = Field(default=None, ge=0, description="Seconds, start to end.")
    first_output: float | None = Field(
        default=None, description="Seconds to the first token (LLM) or first audio byte (TTS)."
    )
    cancelled: bool = False


class TurnTimings(BaseModel):
    """The per-stage delays of one turn, in seconds, as the framework reports them."""

    model_config = _RECORD

    user_stopped_at: float | None = Field(default=None, description="Unix time, end of speech.")
    end_of_turn_delay: float | None = None
    transcription_delay: float | None = None
    on_user_turn_completed_delay: float | None = None
    llm_ttft: float | None = None
    tts_ttfb: float | None = None
    e2e_latency: float | None = Field(default=None, description="End of speech → agent audio.")
    playback_latency: float | None = None
    agent_started_at: float | None = Field(default=None, description="Unix time, agent audio.")
    agent_stopped_at: float | None = None


class WordTiming(BaseModel):
    """One word the speech recogniser heard, with when it was spoken (Unix times)."""

    model_config = _RECORD

    word: str = Field(
        max_length=10_000,
        pattern=NO_NUL,
        description="A word, or a whole utterance when the recogniser gives no word timings.",
    )
    start: float
    end: float


class TurnRecord(BaseModel):
    """One turn of the voice loop: what the user said and what the presenter heard, thought,
    did and said, with its timings. The worker sends it; ``turn_id`` (the framework's speech
    id) makes a resend harmless."""

    model_config = _RECORD

    type: Literal["turn"] = "turn"
    turn_id: str = Field(min_length=1, max_length=100, pattern=r"^[\w.:-]+$")
    job_id: str | None = Field(default=None, max_length=100, pattern=NO_NUL)
    started_at: StorableDatetime
    ended_at: StorableDatetime
    user_text: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)
    speaker: str | None = Field(
        default=None,
        max_length=64,
        pattern=NO_NUL,
        description="The participant identity whose words user_text holds.",
    )
    typed: bool = Field(
        default=False, description="user_text was typed (a question on the join page), not spoken."
    )
    user_words: list[WordTiming] = Field(
        default_factory=list,
        max_length=3000,
        description="user_text's words with their times, where the recogniser gives them: the "
        "control plane silences the recording over personal data with them, and does not keep "
        "them.",
    )
    agent_text: str | None = Field(default=None, max_length=20_000, pattern=NO_NUL)
    interrupted: bool = False
    tool_calls: list[ToolCallRecord] = Field(default_factory=list, max_length=50)
    slide_before: int | None = Field(default=None, ge=1)
    slide_after: int | None = Field(default=None, ge=1)
    version_before: int | None = Field(default=None, ge=1)
    version_after: int | None = Field(default=None, ge=1)
    timings: TurnTimings = Field(default_factory=TurnTimings)
    calls: list[StageCall] = Field(default_factory=list, max_length=100)
    # Stored in jsonb, which has no \u0000 either.
    providers: dict[
        Annotated[str, Field(max_length=100, pattern=NO_NUL)],
        Annotated[str, Field(max_length=200, pattern=NO_NUL)],
    ] = Field(
        default_factory=dict,
        max_length=20,
        description="Stage → 'provider/model' used in this turn.",
    )


class TurnBatch(BaseModel):
    """What a worker sends to ``POST /internal/v1/sessions/{id}/turns``."""

    model_config = _RECORD

    turns: list[TurnRecord] = Field(min_length=1, max_length=50)


class StoredTurn(TurnRecord):
    """A turn as the API answers it: numbered from 1 in the order the session lived them."""

    model_config = ConfigDict(extra="ignore")

    number: int
    session_id: UUID
