"""The presenter: what the agent is told to be and do in the room."""

from __future__ import annotations

from livekit.agents import Agent

INSTRUCTIONS = (
    "You are Podium, a friendly presenter walking an audience through a slide deck. "
    "Speak in short, clear sentences and stay on the current slide unless asked."
)


class Presenter(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)
