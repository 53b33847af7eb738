"""A job's face is drawn once, ahead of time when it can be, and a failed drawing is retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_worker.avatar import presence
from agent_worker.avatar.face import FaceRenderer
from shared.schemas import AvatarStyle
from shared.settings import WorkerSettings

SETTINGS = WorkerSettings()


class Counting(FaceRenderer):
    """The real renderer, counting how often a face is drawn (and failing when told to)."""

    drawn = 0
    fail = False

    def __init__(self, style: AvatarStyle, width: int = 640, height: int = 360) -> None:
        if Counting.fail:
            raise RuntimeError("no paint")
        Counting.drawn += 1
        super().__init__(style, width, height)


@pytest.fixture(autouse=True)
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(presence, "FaceRenderer", Counting)
    monkeypatch.setattr(presence, "_drawn", {})
    monkeypatch.setattr(presence, "_drawing", {})
    Counting.drawn, Counting.fail = 0, False
    yield


async def test_a_prewarmed_face_is_not_drawn_again() -> None:
    presence.prewarm_face(AvatarStyle(), SETTINGS)
    face = await presence.face_for(AvatarStyle(), SETTINGS)
    assert isinstance(face, Counting)
    assert await presence.face_for(AvatarStyle(), SETTINGS) is face
    assert Counting.drawn == 1


async def test_a_face_started_early_is_drawn_once_for_its_job() -> None:
    style = AvatarStyle(skin="#8d5524")
    presence.start_face(style, SETTINGS)
    presence.start_face(style, SETTINGS)  # asked twice while drawing: one drawing
    first = await presence.face_for(style, SETTINGS)
    assert await presence.face_for(style, SETTINGS) is first
    assert Counting.drawn == 1


async def test_a_failed_drawing_reaches_the_job_and_is_tried_again() -> None:
    Counting.fail = True
    with pytest.raises(RuntimeError, match="no paint"):
        await presence.face_for(AvatarStyle(), SETTINGS)
    Counting.fail = False
    assert isinstance(await presence.face_for(AvatarStyle(), SETTINGS), Counting)


async def test_a_process_keeps_a_few_faces_at_most() -> None:
    colours = ["#111111", "#222222", "#333333", "#444444", "#555555", "#666666"]
    for colour in colours:
        await presence.face_for(AvatarStyle(background=colour), SETTINGS)
    assert len(presence._drawn) == presence._MAX_FACES
    await presence.face_for(AvatarStyle(background=colours[-1]), SETTINGS)  # kept: not redrawn
    assert Counting.drawn == len(colours)
