"""The worker's usage report (``POST /internal/v1/sessions/{id}/usage``).

A job reports cumulative totals since it started, per meter and dimension, every few seconds and
when it ends. Totals, not increments: the control plane adds only what a total grew by since the
last one it took, so a resend or a report that arrives late never counts twice.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.schemas import NO_NUL

WorkerMeter = Literal[
    "stt_audio_seconds",  # by STT provider
    "tts_characters",  # by TTS provider
    "llm_input_tokens",  # by model
    "llm_output_tokens",  # by model
    "avatar_seconds",  # by avatar provider: 'local' or the vendor's name
]
WORKER_METERS: tuple[WorkerMeter, ...] = (
    "stt_audio_seconds",
    "tts_characters",
    "llm_input_tokens",
    "llm_output_tokens",
    "avatar_seconds",
)
# A job's totals stay far below this; a larger one is a bug or a forgery, refused with a 422.
MAX_QUANTITY = 1e12


class UsageTotal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meter: WorkerMeter
    dimension: str = Field(
        min_length=1, max_length=200, pattern=NO_NUL, description="Provider or model."
    )
    quantity: float = Field(ge=0, le=MAX_QUANTITY, description="Total since the job started.")

    @field_validator("quantity")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("quantity must be a finite number")
        return value


class UsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=100, pattern=r"^[\w.:-]+$")
    totals: list[UsageTotal] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> UsageReport:
        keys = [(t.meter, t.dimension) for t in self.totals]
        if len(set(keys)) != len(keys):
            raise ValueError("each (meter, dimension) may appear once in a report")
        return self
